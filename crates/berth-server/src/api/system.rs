//! Health, readiness and the OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_core::api::{Health, Probe, Readiness};
use berth_dataplane::DataPlane;
use utoipa::OpenApi;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Json;

/// How long `/readyz` waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `/readyz` answers from its last check of the engine.
const ENGINE_PROBE_FRESH: Duration = Duration::from_secs(1);

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system", security(), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store and the container engine answer. 503 when either does not.
#[utoipa::path(get, path = "/readyz", tag = "system", security(),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = match tokio::time::timeout(PROBE_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => Probe {
            ok: true,
            detail: match state.store().backend() {
                berth_store::Backend::Sqlite => "sqlite answers",
                berth_store::Backend::Postgres => "postgresql answers",
            }
            .into(),
        },
        Ok(Err(e)) => Probe {
            ok: false,
            detail: e.to_string(),
        },
        Err(_) => Probe {
            ok: false,
            detail: format!("no answer within {PROBE_TIMEOUT:?}"),
        },
    };
    let engine = shared_engine_probe(&state).await;
    let ready = store.ok && engine.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not-ready" }.into(),
        store,
        engine,
        role: if state.leadership().is_leader() {
            "leader"
        } else {
            "follower"
        }
        .into(),
    };
    (status, Json(body))
}

/// Prometheus metrics: the gateway's per-route request counts and latency sums.
#[utoipa::path(get, path = "/metrics", tag = "system", security(),
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.gateway().metrics_text(),
    )
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", security(),
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    axum::Json(super::ApiDoc::openapi())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API lives under /api/v1 (see /api/v1/openapi.json)")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support that method (see /api/v1/openapi.json)",
    )
}

/// `/readyz`'s view of the engine: the last check and when it was made, and the check in
/// flight.
#[derive(Default)]
pub(crate) struct EngineProbe {
    last: Option<(std::time::Instant, Probe)>,
    running: Option<tokio::sync::watch::Receiver<Option<Probe>>>,
}

/// The engine check `/readyz` reports. Load balancers and orchestrators poll often, and under
/// load the engine takes seconds to answer: the last check serves for [`ENGINE_PROBE_FRESH`],
/// and callers meanwhile wait for the check in flight. That check runs as a task of its own,
/// so it finishes (and is kept) even when the callers that waited for it gave up.
async fn shared_engine_probe(state: &AppState) -> Probe {
    let mut outcome = {
        let mut p = state.engine_probe();
        if let Some((at, probe)) = &p.last
            && at.elapsed() < ENGINE_PROBE_FRESH
        {
            return probe.clone();
        }
        match &p.running {
            Some(running) => running.clone(),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                p.running = Some(rx.clone());
                let state = state.clone();
                tokio::spawn(async move {
                    let probe = probe_engine(&state).await;
                    {
                        let mut p = state.engine_probe();
                        p.last = Some((std::time::Instant::now(), probe.clone()));
                        p.running = None;
                    }
                    let _ = tx.send(Some(probe));
                });
                rx
            }
        }
    };
    let answer = match outcome.wait_for(Option::is_some).await {
        Ok(probe) => probe.clone(),
        Err(_) => None,
    };
    answer.unwrap_or_else(|| Probe {
        ok: false,
        detail: "the engine check ended without an answer".into(),
    })
}

/// Whether the container engine (or cluster) answers, and what it is.
async fn probe_engine(state: &AppState) -> Probe {
    match state.engine() {
        Err(reason) => Probe {
            ok: false,
            detail: reason.to_owned(),
        },
        Ok(engine) => match tokio::time::timeout(PROBE_TIMEOUT, engine.ping()).await {
            Ok(Ok(info)) => Probe {
                ok: true,
                detail: format!(
                    "{} {} at {} (API {})",
                    info.product, info.version, info.endpoint, info.api_version
                ),
            },
            Ok(Err(e)) => Probe {
                ok: false,
                detail: e.to_string(),
            },
            Err(_) => Probe {
                ok: false,
                detail: format!(
                    "{} did not answer within {PROBE_TIMEOUT:?}",
                    engine.endpoint()
                ),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// `/readyz` calls against an engine that never answers share one check, also with a
    /// caller that gave up before it ended: the engine sees one connection, and every caller
    /// gets its outcome.
    #[tokio::test]
    async fn readyz_callers_share_one_engine_check() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(conn); // never answered
            }
        });
        let engine =
            berth_dataplane::engine::Engine::connect(&format!("unix://{}", socket.display()))
                .unwrap();
        let fx = crate::test_support::fixture_with_engine(Ok(engine)).await;
        // A caller that gives up (a probe with a short timeout) does not take the check along.
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            readyz(State(fx.state.clone())),
        )
        .await;
        assert!(gave_up.is_err());
        let calls = (0..5).map(|_| readyz(State(fx.state.clone())));
        for answer in futures_util::future::join_all(calls).await {
            let resp = answer.into_response();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let r: Readiness = serde_json::from_slice(&body).unwrap();
            assert!(r.store.ok, "{r:?}");
            assert!(!r.engine.ok, "{r:?}");
            assert!(r.engine.detail.contains("did not answer"), "{r:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
