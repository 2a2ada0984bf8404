//! berth-registry: the OCI distribution client — `/v2/` ping, Basic and Bearer challenges,
//! manifest HEAD/GET to resolve tags to digests, tag lists, platform checks.
//!
//! It never pulls layers: the data plane pulls, with credentials berth hands it.
//! Depends only on berth-core. (The client lands with the registries issue; this crate holds
//! its place in the workspace so the dependency direction is fixed from the start.)
