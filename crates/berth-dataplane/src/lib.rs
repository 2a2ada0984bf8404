//! berth-dataplane: the [`DataPlane`] trait — what berth asks of wherever components run — and
//! its drivers. The engine driver talks to Docker or Podman through the Docker-compatible API
//! (bollard); a Kubernetes driver follows.
//!
//! Drivers never read the store: the reconciler hands them complete specs.

pub mod engine;

use std::future::Future;

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// No engine socket answered; the message lists where berth looked.
    #[error("no container engine found: {0}")]
    NotFound(String),
    /// The engine is configured but does not answer (socket gone, daemon stopped).
    #[error("container engine at {endpoint} is unavailable: {reason}")]
    Unavailable { endpoint: String, reason: String },
}

impl Error {
    /// Whether retrying later may help (an engine that went away may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// What the data plane reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Where berth reaches it, e.g. `unix:///run/podman/podman.sock`.
    pub endpoint: String,
    /// `Docker Engine` or `Podman Engine`, and its version.
    pub product: String,
    pub version: String,
    /// The API version berth negotiated.
    pub api_version: String,
}

/// The data plane. Every method is idempotent.
pub trait DataPlane: Send + Sync {
    /// Checks that the data plane answers and says what it is. Never changes anything.
    fn ping(&self) -> impl Future<Output = Result<EngineInfo>> + Send;
}
