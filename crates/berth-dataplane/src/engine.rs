//! The engine driver: Docker Engine or Podman through the Docker-compatible API.

use std::path::Path;

use bollard::Docker;
use tracing::debug;

use crate::{DataPlane, EngineInfo, Error, Result};

/// Unix sockets tried, in order, when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Seconds bollard waits for an engine answer before giving up.
const TIMEOUT_SECS: u64 = 30;

/// A Docker/Podman engine reached over its API.
///
/// The connection is made on first use and retried on later calls, so a server started before
/// its engine (or outliving an engine restart) recovers by itself.
#[derive(Debug)]
pub struct Engine {
    endpoint: String,
    kind: Transport,
    docker: std::sync::Mutex<Option<Docker>>,
}

#[derive(Debug, Clone)]
enum Transport {
    Unix(String),
    Http(String),
}

/// Where to find the engine: an explicit endpoint (flag or `DOCKER_HOST`), else the first
/// default socket that exists.
pub fn discover_endpoint(explicit: Option<&str>) -> Result<String> {
    if let Some(e) = explicit.filter(|e| !e.is_empty()) {
        return Ok(e.to_owned());
    }
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
    {
        return Ok(host);
    }
    DEFAULT_SOCKETS
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("unix://{p}"))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "DOCKER_HOST is not set and none of {} exists; start Docker or Podman \
                 (scripts/setup-engine does it) or pass --engine",
                DEFAULT_SOCKETS.join(", ")
            ))
        })
}

impl Engine {
    /// Checks the endpoint's form; no request is made until the first call.
    pub fn connect(endpoint: &str) -> Result<Self> {
        let kind = if let Some(path) = endpoint.strip_prefix("unix://") {
            Transport::Unix(path.to_owned())
        } else if endpoint.starts_with('/') {
            Transport::Unix(endpoint.to_owned())
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Transport::Http(endpoint.to_owned())
        } else {
            return Err(Error::Unavailable {
                endpoint: endpoint.to_owned(),
                reason: "expected unix:///path/to/socket, /path/to/socket or tcp://host:port"
                    .into(),
            });
        };
        Ok(Self {
            endpoint: endpoint.to_owned(),
            kind,
            docker: std::sync::Mutex::new(None),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The client, connecting first when there is none yet.
    fn docker(&self) -> Result<Docker> {
        let mut slot = self
            .docker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let docker = match &self.kind {
            Transport::Unix(path) => {
                Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            Transport::Http(url) => {
                Docker::connect_with_http(url, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
        }
        .map_err(|e| self.unavailable(e))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }
}

impl DataPlane for Engine {
    async fn ping(&self) -> Result<EngineInfo> {
        // Negotiate on every ping: the engine may have been upgraded or replaced meanwhile, and
        // podman reports an older API (1.41) than bollard's default.
        let docker = self
            .docker()?
            .negotiate_version()
            .await
            .map_err(|e| self.unavailable(e))?;
        let version = docker.version().await.map_err(|e| self.unavailable(e))?;
        let product = version
            .components
            .as_ref()
            .and_then(|c| c.first())
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "Docker Engine".to_owned());
        let info = EngineInfo {
            endpoint: self.endpoint.clone(),
            product,
            version: version.version.unwrap_or_default(),
            api_version: docker.client_version().to_string(),
        };
        debug!(endpoint = %info.endpoint, product = %info.product, version = %info.version, "engine answered");
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_endpoint_wins() {
        assert_eq!(
            discover_endpoint(Some("unix:///tmp/x.sock")).unwrap(),
            "unix:///tmp/x.sock"
        );
    }

    #[test]
    fn rejects_unknown_scheme() {
        let err = Engine::connect("ftp://x").unwrap_err();
        assert!(err.to_string().contains("expected unix://"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_unavailable_not_a_panic() {
        let engine = Engine::connect("unix:///nonexistent/berth-test.sock").unwrap();
        let err = engine.ping().await.unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string().contains("/nonexistent/berth-test.sock"),
            "{err}"
        );
    }
}
