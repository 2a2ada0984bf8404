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
    let engine = match state.engine() {
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
    };
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
