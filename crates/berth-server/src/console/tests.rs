//! Console handler tests.
