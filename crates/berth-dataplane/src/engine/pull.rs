//! Image pulls with per-pull credentials.
//!
//! Credentials travel in the request's `X-Registry-Auth` header only: nothing is written to the
//! engine's configuration. Engines report pull failures *inside* an HTTP 200 stream, so the
//! whole stream is drained and every item checked.

use std::collections::HashSet;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};

use super::{Engine, is_status};
use crate::{Error, PullAuth, PullPolicy, Result, RolloutEvent};

impl Engine {
    /// Pulls `image` (`host/repo@sha256:…` or `host/repo:tag`) unless `policy` allows the copy
    /// the engine already has. Progress goes to `events` as [`RolloutEvent::PullProgress`], one
    /// event per distinct status. A refused pull is [`Error::Pull`] with the registry's words
    /// (`unauthorized: authentication required`, `manifest unknown`, …).
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<&PullAuth>,
        policy: PullPolicy,
        events: &UnboundedSender<RolloutEvent>,
    ) -> Result<()> {
        let c = self.client().await?;
        if policy == PullPolicy::IfNotPresent {
            match c.docker.inspect_image(image).await {
                Ok(_) => {
                    debug!(image, "image present; not pulling");
                    return Ok(());
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(self.engine_error(e)),
            }
        }
        let _ = events.send(RolloutEvent::Pulling {
            image: image.to_owned(),
        });
        self.fault_hold(crate::DeploymentPhase::Pulling).await;
        let mut options = CreateImageOptionsBuilder::default().from_image(image);
        if !has_tag_or_digest(image) {
            // Without a tag the engine would pull every tag of the repository.
            options = options.tag("latest");
        }
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let mut stream = c
            .docker
            .create_image(Some(options.build()), None, credentials);
        let mut seen = HashSet::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status.filter(|s| !s.is_empty())
                        && seen.insert(status.clone())
                    {
                        let _ = events.send(RolloutEvent::PullProgress { status });
                    }
                }
                Err(e) => return Err(self.pull_error(image, e)),
            }
        }
        info!(image, "pulled");
        let _ = events.send(RolloutEvent::Pulled {
            image: image.to_owned(),
        });
        Ok(())
    }

    fn pull_error(&self, image: &str, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        let reason = match e {
            // In-band error of an HTTP 200 stream (podman: wrong or missing credentials,
            // unknown manifest).
            B::DockerStreamError { error } => error,
            // Docker refuses some pulls up front (404 "pull access denied", 500 "unauthorized").
            B::DockerResponseServerError {
                status_code,
                message,
            } => format!("{message} (HTTP {status_code})"),
            other => return self.engine_error(other),
        };
        Error::Pull {
            image: image.to_owned(),
            reason,
        }
    }
}

/// Whether the reference names a tag or digest (`repo:tag`, `repo@sha256:…`); a `:` before the
/// last `/` is a registry port.
fn has_tag_or_digest(image: &str) -> bool {
    image.contains('@')
        || image
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_detection() {
        assert!(has_tag_or_digest("127.0.0.1:5000/test/web:v1"));
        assert!(has_tag_or_digest("127.0.0.1:5000/test/web@sha256:abc"));
        assert!(has_tag_or_digest("busybox:1"));
        assert!(!has_tag_or_digest("127.0.0.1:5000/test/web"));
        assert!(!has_tag_or_digest("busybox"));
    }
}
