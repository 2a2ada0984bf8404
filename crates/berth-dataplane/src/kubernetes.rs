//! The Kubernetes data plane.
//!
//! [`render`] turns specs into manifests: a pure function (no I/O), used by the driver, by the
//! server's render route and so by `berth render`, so what is printed is what is applied.
//! [`Kubernetes`] (cargo feature `kubernetes`) applies them with server-side apply (field
//! manager `berth`), prunes what berth no longer wants and reads status, events and logs.

#[cfg(feature = "kubernetes")]
mod client;
pub mod render;

#[cfg(feature = "kubernetes")]
pub use client::Kubernetes;
pub use render::{GatewayRef, RenderOptions, Routing};
