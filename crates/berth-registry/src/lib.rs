//! berth-registry: the OCI distribution client — `/v2/` ping, Basic and Bearer challenges with
//! a per-scope token cache, manifest HEAD/GET to resolve tags to digests (OCI index, OCI
//! manifest, Docker manifest list, Docker manifest v2), tag lists with pagination, platform
//! checks, and step-by-step diagnostics for `berth registry test`.
//!
//! It never pulls layers: the data plane pulls, with credentials berth hands it. Every request
//! goes through an SSRF guard (checked after DNS resolution), has a timeout and a bounded body,
//! and is retried with backoff on 429/5xx. Depends on nothing of ours; callers pass plain
//! hosts, repository paths and references.

mod challenge;
mod client;
mod coalesce;
mod error;
mod guard;

pub use challenge::{Challenge, parse_challenges};
pub use client::{
    Credentials, MediaType, Platform, RegistryClient, RegistryOptions, Resolved, TestStep,
    test_connection,
};
/// Also used by the server to share database reads among concurrent webhook calls.
pub use coalesce::{Canceled, Coalescer};
pub use error::{Error, Result, Step};
pub use guard::SsrfPolicy;
