//! Auto-deploy settings of a component (`…/auto-deploy`) and an immediate check
//! (`…/auto-deploy/check`). The poller itself is in [`crate::auto_deploy`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use berth_core::auto_deploy::{
    AutoDeploy, AutoDeployCheck, DEFAULT_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS, PolicyKind, PutAutoDeploy, RegistryNotificationAccepted,
    RegistryNotificationSecret, parse_range, parse_regex, pushed_repositories,
};
use berth_core::reference::ImageRef;
use berth_core::reference::validate_tag;
use berth_core::role::Action;
use berth_store::{ComponentRef, NewAutoDeploy};
use tracing::{info, warn};

use crate::AppState;
use crate::api::components::component_or_404;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};

fn trimmed(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn not_set(component: &str) -> ApiError {
    ApiError::not_found(format!(
        "component {component:?} has no auto-deploy settings; set them with PUT (berth auto-deploy set)"
    ))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy", tag = "auto-deploy",
    responses((status = 200, body = AutoDeploy), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_auto_deploy(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
) -> ApiResult<Json<AutoDeploy>> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &component).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    let s = state
        .store()
        .get_auto_deploy(target)
        .await?
        .ok_or_else(|| not_set(&component))?;
    Ok(Json(s.settings))
}

/// Sets (replaces) the component's auto-deploy policy; the first check is due at once.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy", tag = "auto-deploy",
    request_body = PutAutoDeploy,
    responses((status = 200, body = AutoDeploy), (status = 404, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn put_auto_deploy(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
    Json(body): Json<PutAutoDeploy>,
) -> ApiResult<Json<AutoDeploy>> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &component).await?;
    let interval = body.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS);
    if !(MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&interval) {
        return Err(ApiError::validation(
            "intervalSeconds",
            format!(
                "must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS} seconds (default {DEFAULT_INTERVAL_SECONDS})"
            ),
        ));
    }
    let unused = |field: &str, value: bool| {
        if value {
            Err(ApiError::validation(
                field,
                format!("does not apply to the {} policy", body.policy.as_str()),
            ))
        } else {
            Ok(())
        }
    };
    let (tag, range, regex) = (
        trimmed(&body.tag),
        trimmed(&body.range),
        trimmed(&body.regex),
    );
    match body.policy {
        PolicyKind::Digest => {
            unused("range", range.is_some())?;
            unused("regex", regex.is_some())?;
            unused("sort", body.sort.is_some())?;
            if let Some(tag) = tag {
                validate_tag(tag).map_err(|e| ApiError::validation("tag", e.to_string()))?;
            }
        }
        PolicyKind::Semver => {
            unused("tag", tag.is_some())?;
            unused("regex", regex.is_some())?;
            unused("sort", body.sort.is_some())?;
            let range = range.ok_or_else(|| {
                ApiError::validation("range", "the semver policy needs a range (e.g. ^1.2)")
            })?;
            parse_range(range).map_err(|e| ApiError::validation("range", e))?;
        }
        PolicyKind::Regex => {
            unused("tag", tag.is_some())?;
            unused("range", range.is_some())?;
            let pattern = regex.ok_or_else(|| {
                ApiError::validation(
                    "regex",
                    "the regex policy needs a pattern (e.g. build-(\\d+))",
                )
            })?;
            parse_regex(pattern).map_err(|e| ApiError::validation("regex", e))?;
        }
    }
    let sort = match body.policy {
        PolicyKind::Regex => Some(body.sort.unwrap_or_default()),
        _ => None,
    };
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    let actor = auth.0.actor();
    let s = state
        .store()
        .put_auto_deploy(
            target,
            &NewAutoDeploy {
                policy: body.policy,
                tag,
                range,
                regex,
                sort,
                interval_seconds: interval,
                enabled: body.enabled.unwrap_or(true),
                created_by: &actor,
            },
        )
        .await?;
    Ok(Json(s.settings))
}

/// Turns auto-deploy off for the component (removes its settings); returns what they were.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy", tag = "auto-deploy",
    responses((status = 200, body = AutoDeploy), (status = 404, body = berth_core::api::ApiError)))]
pub async fn delete_auto_deploy(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
) -> ApiResult<Json<AutoDeploy>> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &component).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    let s = state
        .store()
        .delete_auto_deploy(target)
        .await?
        .ok_or_else(|| not_set(&component))?;
    Ok(Json(s.settings))
}

/// Runs one check now (also when disabled) and answers what it decided: `deploy` (with the
/// new deployment), `none` or `error`. The check is recorded like the poller's.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy/check", tag = "auto-deploy",
    responses((status = 200, body = AutoDeployCheck), (status = 404, body = berth_core::api::ApiError)))]
pub async fn check_auto_deploy(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
) -> ApiResult<Json<AutoDeployCheck>> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &component).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    let s = state
        .store()
        .get_auto_deploy(target)
        .await?
        .ok_or_else(|| not_set(&component))?;
    Ok(Json(crate::auto_deploy::check(&state, &s).await))
}

/// The path prefix of the registry notification receiver (outside the user API: the registry
/// authenticates with its notification secret).
pub const NOTIFICATIONS_PATH: &str = "/api/v1/registry-notifications";

/// Creates or replaces the secret a registry sends with its notifications; shown once, with the
/// URL to configure as the registry's notification endpoint. Admins only.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/registries/{registry}/notification-secret", tag = "auto-deploy",
    responses((status = 200, body = RegistryNotificationSecret), (status = 404, body = berth_core::api::ApiError)))]
pub async fn rotate_notification_secret(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, registry)): Path<(String, String)>,
) -> ApiResult<Json<RegistryNotificationSecret>> {
    auth.require(Action::Administer)?;
    if state
        .store()
        .registry_settings(&org, &registry)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "registry {registry:?} not found in organization {org:?}"
        )));
    }
    let secret = state
        .store()
        .rotate_registry_notification_secret(&org, &registry, &auth.0.actor())
        .await?;
    Ok(Json(RegistryNotificationSecret {
        url: format!(
            "{}{NOTIFICATIONS_PATH}/{org}/{registry}",
            state.config().public_url
        ),
        registry,
        secret,
    }))
}

/// The receiver of a CNCF distribution registry's notifications (`Authorization: Bearer
/// <notification secret>`): each manifest push starts an auto-deploy check of the components
/// whose image is in that repository, in the background; answers how many at once.
#[utoipa::path(post, path = "/api/v1/registry-notifications/{org}/{registry}", tag = "auto-deploy",
    request_body(content = String, description = "a CNCF distribution notification envelope", content_type = "application/vnd.docker.distribution.events.v1+json"),
    responses((status = 200, body = RegistryNotificationAccepted), (status = 401, body = berth_core::api::ApiError),
              (status = 400, body = berth_core::api::ApiError)))]
pub async fn registry_notification(
    State(state): State<AppState>,
    Path((org, registry)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<RegistryNotificationAccepted>> {
    let unauthorized = || {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong notification secret; send `Authorization: Bearer <secret>` with \
             the registry's notification secret",
        )
    };
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    if !state
        .store()
        .registry_notification_secret_matches(&org, &registry, secret)
        .await?
    {
        return Err(unauthorized());
    }
    let envelope: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("not a registry notification envelope (JSON): {e}"))
    })?;
    let repositories = pushed_repositories(&envelope);
    if repositories.is_empty() {
        return Ok(Json(RegistryNotificationAccepted { checks: 0 }));
    }
    let matching: Vec<_> = state
        .store()
        .auto_deploys_of_registry(&org, &registry)
        .await?
        .into_iter()
        .filter(|(_, image)| {
            ImageRef::parse(image).is_ok_and(|i| repositories.iter().any(|r| r == i.path()))
        })
        .map(|(s, _)| s)
        .collect();
    let checks = u32::try_from(matching.len()).unwrap_or(u32::MAX);
    info!(%org, %registry, ?repositories, checks, "registry notification");
    tokio::spawn(async move {
        for s in matching {
            let c = crate::auto_deploy::check(&state, &s).await;
            if c.decision == berth_core::auto_deploy::CheckDecision::Error {
                warn!(component = %s.settings.component, message = %c.message, "auto-deploy check after a registry notification failed");
            }
        }
    });
    Ok(Json(RegistryNotificationAccepted { checks }))
}

/// Routes under [`NOTIFICATIONS_PATH`], each call audited (it can start deploys).
pub fn notifications(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/{org}/{registry}", post(registry_notification))
        .layer(axum::middleware::from_fn_with_state(
            state,
            audit_notification,
        ))
}

/// Writes the audit row of a registry notification once its answer is known: the actor is
/// the registry (`registry:<org>/<name>`) when its secret matched, else `anonymous`.
async fn audit_notification(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let (path, source) = crate::auth::call_site(&req);
    let request_id = crate::error::REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status();
    let actor = match path.strip_prefix(NOTIFICATIONS_PATH) {
        Some(rest) if status != axum::http::StatusCode::UNAUTHORIZED => {
            format!("registry:{}", rest.trim_start_matches('/'))
        }
        _ => "anonymous".to_owned(),
    };
    let entry = berth_store::NewAuditEntry {
        actor: &actor,
        method: method.as_str(),
        path: &path,
        status: status.as_u16(),
        request_id: &request_id,
        source: &source,
    };
    if let Err(e) = state.store().insert_audit(&entry).await {
        tracing::error!(error = %e, %path, "writing the audit row failed");
    }
    response
}
