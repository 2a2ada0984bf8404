//! External CI: component-bound CI tokens (managed by users), the deploy webhook and its status
//! URL (called with a CI token), and ready-to-paste snippets.
//!
//! The webhook lives outside the user-authenticated API (a CI token is no user token): its own
//! middleware authenticates the CI token, applies a per-token rate, and audits every call with
//! the actor `ci:<component>/<token name>`. The contract is documented in docs/ci.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_core::api::{
    CiDeployRequest, CiSnippet, CiToken, CreateCiToken, CreatedCiToken, DeployAccepted, Deployment,
    List,
};
use berth_core::ci::{
    SnippetKind, SnippetTarget, render_snippet, same_repository, validate_idempotency_key,
};
use berth_core::reference::{ImageRef, validate_digest, validate_tag};
use berth_core::role::Action;
use berth_core::validate_name;
use berth_store::{AuditRow, CiPrincipal, ComponentRef, IdempotentAnswer, NewAuditEntry, Origin};
use tracing::info;

use crate::AppState;
use crate::api::components::{DeployWhat, component_or_404, deploy_context, deploy_with};
use crate::auth::{Auth, bearer};
use crate::error::{ApiError, ApiResult, REQUEST_ID};
use crate::extract::{Json, Path};

/// Deploy requests a CI token may make per minute (a token bucket of this size, refilled
/// evenly): enough for any pipeline, small enough that a leaked token cannot hammer registries.
pub const HOOK_REQUESTS_PER_MINUTE: u32 = 30;

/// The path of the deploy webhook (also in snippets and docs/ci.md).
pub const HOOK_PATH: &str = "/api/v1/hooks/deploy";

fn unauthorized() -> ApiError {
    // One body for missing, malformed, unknown, revoked and expired tokens alike.
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing, unknown, revoked or expired CI token; send `Authorization: Bearer berth_ci_…` \
         with a CI token of the component",
    )
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-tokens", tag = "ci",
    responses((status = 200, body = List<CiToken>), (status = 404, body = berth_core::api::ApiError)))]
pub async fn list_ci_tokens(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
) -> ApiResult<Json<List<CiToken>>> {
    auth.require(Action::Write)?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    component_or_404(&state, &org, &project, &component).await?;
    Ok(Json(List::new(state.store().list_ci_tokens(target).await?)))
}

/// Creates a CI token bound to the component. The secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-tokens", tag = "ci",
    request_body = CreateCiToken,
    responses((status = 201, body = CreatedCiToken), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_ci_token(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component)): Path<(String, String, String)>,
    Json(body): Json<CreateCiToken>,
) -> ApiResult<(StatusCode, Json<CreatedCiToken>)> {
    auth.require(Action::Write)?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    component_or_404(&state, &org, &project, &component).await?;
    validate_name("name", &body.name)?;
    let expires_at = crate::api::users::token_expiry(&auth, body.expires_in_days)?;
    let (token, secret) = state
        .store()
        .insert_ci_token(target, &body.name, &auth.0.actor(), expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedCiToken { token, secret })))
}

/// Revokes a CI token by id or name; at once, its next webhook call is a 401.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-tokens/{id}", tag = "ci",
    responses((status = 200, body = CiToken), (status = 404, body = berth_core::api::ApiError)))]
pub async fn revoke_ci_token(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component, id)): Path<(String, String, String, String)>,
) -> ApiResult<Json<CiToken>> {
    auth.require(Action::Write)?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    component_or_404(&state, &org, &project, &component).await?;
    Ok(Json(state.store().revoke_ci_token(target, &id).await?))
}

/// A ready-to-paste snippet (`curl`, `github-actions`, `gitlab-ci`) that posts the image built in
/// CI to the deploy webhook and waits for the outcome. It holds no token: it reads the CI secret
/// `BERTH_TOKEN`.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-snippets/{kind}", tag = "ci",
    responses((status = 200, body = CiSnippet), (status = 404, body = berth_core::api::ApiError)))]
pub async fn ci_snippet(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, component, kind)): Path<(String, String, String, String)>,
) -> ApiResult<Json<CiSnippet>> {
    let kind: SnippetKind = kind.parse().map_err(|e: String| {
        ApiError::not_found(format!("no snippet here: {e}")).with_field("kind")
    })?;
    let c = component_or_404(&state, &org, &project, &component).await?;
    let image = ImageRef::parse(&c.image)
        .map_err(|e| ApiError::internal(format!("stored image {:?}: {e}", c.image)))?;
    let webhook_url = format!("{}{HOOK_PATH}", state.config().public_url);
    let text = render_snippet(
        kind,
        &SnippetTarget {
            webhook_url: &webhook_url,
            org: &org,
            project: &project,
            component: &component,
            image: &image,
        },
    );
    Ok(Json(CiSnippet {
        kind,
        webhook_url,
        text,
    }))
}

/// The component a webhook call acts for, put there by [`authenticate`].
#[derive(Debug, Clone)]
pub struct CiAuth(pub CiPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for CiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CiPrincipal>()
            .cloned()
            .map(CiAuth)
            .ok_or_else(unauthorized)
    }
}

/// Per-token token buckets for the deploy webhook, in memory (a restart refills them).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(HOOK_REQUESTS_PER_MINUTE)
    }
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Buckets exist only for authenticated tokens, so the map is bounded by the tokens in
        // the store; still drop full ones now and then so revoked tokens do not linger.
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "this CI token made more than {HOOK_REQUESTS_PER_MINUTE} deploy requests in a minute; \
             retry in {seconds} s"
        ),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Authenticates the CI token of every `/api/v1/hooks` request, rate-limits deploy requests
/// per token, and writes an audit row for every deploy request (including refused ones)
/// before answering it (group-committed with concurrent calls: `crate::audit`).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.0.path().to_owned());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
    let principal = match bearer(&req) {
        Some(token) => match state.store().authenticate_ci(token).await {
            Ok(p) => p,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    let actor = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), CiPrincipal::actor);
    // Status polls are reads: not rate-limited (a wait loop polls for minutes) nor audited.
    let mutating = method != Method::GET && method != Method::HEAD;
    let response = match principal {
        None => unauthorized().into_response(),
        Some(p) => {
            let allowed = if mutating {
                state.ci_limiter().check(&p.token_id, Instant::now())
            } else {
                Ok(())
            };
            match allowed {
                Err(wait) => too_many_requests(wait),
                Ok(()) => {
                    req.extensions_mut().insert(p);
                    next.run(req).await
                }
            }
        }
    };
    if mutating {
        let status = response.status().as_u16();
        info!(%actor, status, %source, "deploy webhook called");
        let entry = NewAuditEntry {
            actor: &actor,
            method: method.as_str(),
            path: &path,
            status,
            request_id: &request_id,
            source: &source,
        };
        // Committed (with the rows of concurrent calls) before the answer goes out.
        state.audit().write(AuditRow::now(&entry)).await;
    }
    response
}

/// The webhook routes, with their own CI-token middleware (mounted at `/api/v1/hooks`).
pub fn hooks(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/deploy", post(deploy_hook))
        .route("/deployments/{id}", get(hook_deployment))
        .layer(middleware::from_fn_with_state(state, authenticate))
}

fn status_url(state: &AppState, id: &str) -> String {
    format!(
        "{}/api/v1/hooks/deployments/{id}",
        state.config().public_url
    )
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A 422 of the shared deploy path saying the tag or digest does not exist is the webhook's 404.
fn not_found_as_404(e: ApiError, field: &str, what: &str, repository: &str) -> ApiError {
    let missing = e.status == StatusCode::UNPROCESSABLE_ENTITY
        && matches!(e.field.as_deref(), Some("tag" | "image"))
        && e.message.contains(" not found in ");
    if missing {
        ApiError::not_found(format!("{what} not found in {repository}")).with_field(field)
    } else {
        e
    }
}

/// The deploy webhook. With `Authorization: Bearer berth_ci_…` and exactly one of `image`,
/// `tag`, `digest` (in the component's repository): resolves it to a digest, creates a release
/// and deploys it to the first environment. 202 with a status URL; 200 with the existing
/// deployment when that digest is already deployed there.
#[utoipa::path(post, path = "/api/v1/hooks/deploy", tag = "ci", request_body = CiDeployRequest,
    security(("ci_token" = [])),
    responses((status = 202, body = DeployAccepted), (status = 200, body = DeployAccepted),
              (status = 401, body = berth_core::api::ApiError), (status = 403, body = berth_core::api::ApiError),
              (status = 404, body = berth_core::api::ApiError), (status = 422, body = berth_core::api::ApiError),
              (status = 429, body = berth_core::api::ApiError), (status = 502, body = berth_core::api::ApiError)))]
pub async fn deploy_hook(
    State(state): State<AppState>,
    CiAuth(ci): CiAuth,
    Json(body): Json<CiDeployRequest>,
) -> ApiResult<Response> {
    if let Some(key) = &body.idempotency_key {
        validate_idempotency_key(key).map_err(|m| ApiError::validation("idempotencyKey", m))?;
    }
    // What was asked, for refusing a key reused for another request (only with a key).
    let request_hash = body.idempotency_key.as_ref().map(|_| {
        berth_store::hash_token(
            &serde_json::to_string(&CiDeployRequest {
                idempotency_key: None,
                ..body.clone()
            })
            .unwrap_or_default(),
        )
    });
    if let Some(key) = &body.idempotency_key
        && let Some(previous) = state
            .store()
            .get_ci_idempotent_answer(&ci.token_id, key)
            .await?
    {
        if Some(&previous.request_hash) != request_hash.as_ref() {
            return Err(ApiError::validation(
                "idempotencyKey",
                "was used for another request of this token within 24 hours; use a new key",
            ));
        }
        let status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::OK);
        let mut response = json_response(status, previous.body);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }

    let target = ci.component_ref();
    // The token's component is gone (deleted since the token was read): as if the token were.
    let context = deploy_context(&state, target)
        .await
        .map_err(|e| match e.status {
            StatusCode::NOT_FOUND => unauthorized(),
            _ => e,
        })?;
    let current = ImageRef::parse(&context.component.image).map_err(|e| {
        ApiError::internal(format!("stored image {:?}: {e}", context.component.image))
    })?;
    let repository = current.name();
    let (what, field, described) = match (body.image, body.tag, body.digest) {
        (Some(image), None, None) => {
            let requested = ImageRef::parse(&image)
                .map_err(|e| ApiError::validation("image", e.to_string()))?;
            if !same_repository(&current, &requested) {
                return Err(ApiError::forbidden(format!(
                    "this CI token deploys only images of {repository} (the repository of \
                     component {:?}); {} is another repository",
                    target.component,
                    requested.name()
                ))
                .with_field("image"));
            }
            let described = format!("image {:?}", requested.normalized());
            (DeployWhat::Image(image), "image", described)
        }
        (None, Some(tag), None) => {
            validate_tag(&tag).map_err(|e| ApiError::validation("tag", e.to_string()))?;
            let described = format!("tag {tag:?}");
            (DeployWhat::Tag(tag), "tag", described)
        }
        (None, None, Some(digest)) => {
            validate_digest(&digest).map_err(|e| ApiError::validation("digest", e.to_string()))?;
            let described = format!("digest {digest}");
            (
                DeployWhat::Image(format!("{repository}@{digest}")),
                "digest",
                described,
            )
        }
        (None, None, None) => {
            return Err(ApiError::validation(
                "image",
                "give exactly one of image, tag and digest",
            ));
        }
        (image, tag, _) => {
            // Name the second field given: the one that is too many.
            let extra = if image.is_some() && tag.is_some() {
                "tag"
            } else {
                "digest"
            };
            return Err(ApiError::validation(
                extra,
                "give exactly one of image, tag and digest",
            ));
        }
    };
    let actor = ci.actor();
    let origin = Origin {
        trigger: "ci",
        actor: &actor,
    };
    let (d, created) = deploy_with(&state, target, context, what, false, origin)
        .await
        .map_err(|e| not_found_as_404(e, field, &described, &repository))?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let accepted = DeployAccepted {
        deployment_id: d.id.clone(),
        environment: d.environment.clone(),
        image: d.image.clone(),
        digest: d.digest.clone(),
        created,
        status_url: status_url(&state, &d.id),
    };
    let text = serde_json::to_string(&accepted)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    if let (Some(key), Some(request_hash)) = (&body.idempotency_key, request_hash) {
        state
            .store()
            .put_ci_idempotent_answer(
                &ci.token_id,
                key,
                &IdempotentAnswer {
                    request_hash,
                    status: status.as_u16(),
                    body: text.clone(),
                },
            )
            .await?;
    }
    Ok(json_response(status, text))
}

/// The status URL of a webhook deployment: the deployment, for a CI token of its component
/// (any other deployment is a 404, as if it did not exist).
#[utoipa::path(get, path = "/api/v1/hooks/deployments/{id}", tag = "ci", security(("ci_token" = [])),
    responses((status = 200, body = Deployment), (status = 401, body = berth_core::api::ApiError),
              (status = 404, body = berth_core::api::ApiError)))]
pub async fn hook_deployment(
    State(state): State<AppState>,
    CiAuth(ci): CiAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Deployment>> {
    state
        .store()
        .get_deployment(&id)
        .await?
        .map(|w| w.deployment)
        .filter(|d| d.org == ci.org && d.project == ci.project && d.component == ci.component)
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "deployment {id:?} not found among the deployments of component {:?}",
                ci.component
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_evenly_per_token() {
        let limiter = RateLimiter::new(30);
        let t0 = Instant::now();
        for _ in 0..30 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        // Another token has its own bucket.
        assert!(limiter.check("b", t0).is_ok());
        // One request every two seconds comes back.
        assert!(limiter.check("a", t0 + Duration::from_secs(2)).is_ok());
        assert!(limiter.check("a", t0 + Duration::from_secs(2)).is_err());
        // Never more than the capacity, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..30 {
            assert!(limiter.check("a", later).is_ok());
        }
        assert!(limiter.check("a", later).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let r = too_many_requests(Duration::from_millis(1200));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = too_many_requests(Duration::from_millis(10));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
