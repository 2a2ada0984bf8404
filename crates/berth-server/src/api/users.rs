//! Users, API tokens and the audit log (admin), plus `whoami`.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    ApiToken, AuditEntry, CreateApiToken, CreateUser, CreatedApiToken, List, User, WhoAmI,
};
use berth_core::role::Action;
use berth_core::{validate_display_name, validate_name};
use serde::Deserialize;

use crate::AppState;
use crate::api::page::{Limits, ListScope};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

#[utoipa::path(get, path = "/api/v1/whoami", tag = "users", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(auth: Auth) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: auth.0.user,
        role: auth.0.role,
        token: auth.0.token_name,
    })
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = List<User>)))]
pub async fn list_users(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<List<User>>> {
    auth.require(Action::Administer)?;
    Ok(Json(List::new(state.store().list_users().await?)))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = berth_core::api::ApiError)))]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    auth.require(Action::Administer)?;
    validate_name("name", &body.name)?;
    let display_name = body.display_name.unwrap_or_else(|| body.name.clone());
    validate_display_name("displayName", &display_name)?;
    let user = state
        .store()
        .insert_user(&body.name, &display_name, body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users",
    responses((status = 200, body = User), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<User>> {
    if auth.0.user != user {
        auth.require(Action::Administer)?;
    }
    state
        .store()
        .get_user(&user)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("user {user:?} not found")))
}

#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users",
    responses((status = 204), (status = 409, body = berth_core::api::ApiError)))]
pub async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Administer)?;
    state.store().delete_user(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Only this user's tokens (admins); others always see only their own.
    pub user: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(TokenQuery),
    responses((status = 200, body = List<ApiToken>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<TokenQuery>,
) -> ApiResult<Json<List<ApiToken>>> {
    let user = if auth.0.role.allows(Action::Administer) {
        query.user
    } else {
        Some(auth.0.user.clone())
    };
    Ok(Json(List::new(
        state.store().list_tokens(user.as_deref()).await?,
    )))
}

/// The expiry of a token `auth` makes (a personal or a CI token): `days` from now (1–3650), or
/// none. Never later than the maker's own token: otherwise a short-lived (or stolen) credential
/// could mint itself permanent access; no `days` gives the maker's expiry.
pub(crate) fn token_expiry(auth: &Auth, days: Option<u32>) -> ApiResult<Option<String>> {
    let asked = match days {
        None => None,
        Some(days @ 1..=3650) => Some(
            (chrono::Utc::now() + chrono::Duration::days(i64::from(days)))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        Some(_) => {
            return Err(ApiError::validation(
                "expiresInDays",
                "must be between 1 and 3650 (days); omit it for a token that expires with the \
                 one that makes it (never, if that one does not)",
            ));
        }
    };
    match (asked, &auth.0.expires_at) {
        (None, maker) => Ok(maker.clone()),
        (Some(asked), Some(maker)) if asked > *maker => Err(ApiError::validation(
            "expiresInDays",
            format!(
                "a token may not outlive the token that makes it (yours expires at {maker}); \
                 ask for fewer days, or sign in with a longer-lived token"
            ),
        )),
        (asked, _) => Ok(asked),
    }
}

/// Creates an API token. Anyone may create tokens for themselves; admins for anyone.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateApiToken,
    responses((status = 201, body = CreatedApiToken), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<CreateApiToken>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    if body.user != auth.0.user {
        auth.require(Action::Administer)?;
    }
    validate_name("name", &body.name)?;
    // A body field naming nothing is the caller's 422 (the path names nothing here).
    if state.store().get_user(&body.user).await?.is_none() {
        return Err(ApiError::validation(
            "user",
            format!("user {:?} not found", body.user),
        ));
    }
    let expires_at = token_expiry(&auth, body.expires_in_days)?;
    let (token, secret) = state
        .store()
        .insert_token(&body.user, &body.name, expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedApiToken { token, secret })))
}

/// Revokes a token (by id). Anyone may revoke their own tokens; admins anyone's.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    responses((status = 200, body = ApiToken), (status = 404, body = berth_core::api::ApiError)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiToken>> {
    let token = state
        .store()
        .get_token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token {id:?} not found")))?;
    if token.user != auth.0.user {
        auth.require(Action::Administer)?;
    }
    Ok(Json(state.store().revoke_token(&id).await?))
}

/// Page sizes of the audit log.
pub const AUDIT_LIMITS: Limits = Limits {
    default: 100,
    max: 1000,
};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many rows, newest first (1–1000, default 100).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page (older rows).
    pub cursor: Option<String>,
}

/// The audit log, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = List<AuditEntry>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn list_audit(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<List<AuditEntry>>> {
    auth.require(Action::Administer)?;
    let limit = AUDIT_LIMITS.pick(query.limit)?;
    let scope = ListScope::new("audit", &[]);
    let before = match scope.single(query.cursor.as_deref())? {
        Some(id) => Some(
            id.parse::<i64>()
                .map_err(|_| ApiError::validation("cursor", "is not a cursor of this server"))?,
        ),
        None => None,
    };
    let page = state.store().audit_page(before, limit).await?;
    Ok(Json(List {
        next_cursor: page.next(|r| scope.cursor(&[&r.id.to_string()])),
        items: page.items,
    }))
}
