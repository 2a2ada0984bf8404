//! berth-core: the domain vocabulary of berth — names and their rules, roles, and the wire
//! models shared by the server and the CLI (so both encode and decode the same shapes).
//!
//! This crate does no I/O: no tokio, no sockets, no files. Everything else depends on it; it
//! depends on nothing of ours.

pub mod api;
pub mod names;
pub mod role;

pub use names::{NameError, validate_description, validate_display_name, validate_name};
pub use role::Role;
