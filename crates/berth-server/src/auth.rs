//! Authentication (bearer tokens), authorization (roles) and the audit trail.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::role::Action;
use berth_store::{NewAuditEntry, Principal};
use tracing::error;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};

/// The authenticated caller, taken from the request by handlers.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.0.role.allows(action) {
            return Ok(());
        }
        let needed = match action {
            Action::Read => "viewer",
            Action::Write => "developer",
            Action::Administer => "admin",
        };
        Err(ApiError::forbidden(format!(
            "user {:?} has role {}; this needs role {needed} or higher",
            self.0.user, self.0.role
        )))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or_else(ApiError::unauthorized)
    }
}

pub(crate) fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The path the client called (nested routers see a stripped one) and its IP address, for
/// the audit row.
pub(crate) fn call_site(req: &Request) -> (String, String) {
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.0.path().to_owned());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    (path, source)
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates every `/api/v1` request and writes an audit row for every mutating one
/// (including those refused), after the answer is known.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let (path, source) = call_site(&req);
    let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();

    let principal = match bearer(&req) {
        Some(token) => match state.store().authenticate(token).await {
            Ok(p) => p,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    let actor = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), Principal::actor);
    let response = match principal {
        Some(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    };
    if is_mutating(&method) {
        let entry = NewAuditEntry {
            actor: &actor,
            method: method.as_str(),
            path: &path,
            status: response.status().as_u16(),
            request_id: &request_id,
            source: &source,
        };
        if let Err(e) = state.store().insert_audit(&entry).await {
            error!(error = %e, %path, "writing the audit row failed");
        }
    }
    response
}
