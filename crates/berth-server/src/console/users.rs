//! Users and API tokens (server-wide: everyone manages their own tokens, admins everyone's
//! and the users), and the audit log (admins) — through the API's user, token and audit
//! handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    ApiToken, AuditEntry, CreateApiToken, CreateUser, CreatedApiToken, Org, User,
};
use berth_core::role::Role;
use serde::Deserialize;

use super::overview::org_or_404;
use super::{
    Chrome, Console, Form, NAME_RULE, PageResult, Problem, non_empty, render_status, see_other,
};
use crate::AppState;
use crate::api::users::{AuditQuery, TokenQuery};
use crate::extract::{Json, Path, Query};

#[derive(Default)]
pub struct TokenFormView {
    user: String,
    name: String,
    expires: String,
}

#[derive(Default)]
pub struct UserFormView {
    name: String,
    display_name: String,
    role: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    chrome: Chrome,
    csrf: String,
    org: Org,
    me: String,
    admin: bool,
    tokens: Vec<ApiToken>,
    /// Admins only.
    users: Vec<User>,
    roles: [Role; 3],
    created: Option<CreatedApiToken>,
    token_form: TokenFormView,
    token_problem: Problem,
    user_form: UserFormView,
    user_problem: Problem,
    notice: Option<&'static str>,
    name_rule: &'static str,
}

#[derive(Default)]
struct Extras {
    status: StatusCode,
    created: Option<CreatedApiToken>,
    token_form: TokenFormView,
    token_problem: Problem,
    user_form: UserFormView,
    user_problem: Problem,
    notice: Option<&'static str>,
}

async fn tokens_page(state: &AppState, c: &Console, org: &str, extras: Extras) -> PageResult {
    let org = org_or_404(state, org).await?;
    let admin = c
        .principal
        .role
        .allows(berth_core::role::Action::Administer);
    let Json(tokens) = crate::api::users::list_tokens(
        State(state.clone()),
        c.auth(),
        crate::extract::Query(TokenQuery { user: None }),
    )
    .await?;
    let users = if admin {
        crate::api::users::list_users(State(state.clone()), c.auth())
            .await?
            .0
            .items
    } else {
        Vec::new()
    };
    let mut token_form = extras.token_form;
    if token_form.user.is_empty() {
        token_form.user = c.principal.user.clone();
    }
    let mut user_form = extras.user_form;
    if user_form.role.is_empty() {
        user_form.role = Role::Developer.as_str().to_owned();
    }
    render_status(
        extras.status,
        &TokensPage {
            chrome: c.chrome(
                &org.name,
                "tokens",
                if admin {
                    "Users and API tokens"
                } else {
                    "API tokens"
                },
            ),
            csrf: c.csrf.clone(),
            org,
            me: c.principal.user.clone(),
            admin,
            tokens: tokens.items,
            users,
            roles: Role::ALL,
            created: extras.created,
            token_form,
            token_problem: extras.token_problem,
            user_form,
            user_problem: extras.user_problem,
            notice: extras.notice,
            name_rule: NAME_RULE,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
    /// The id of a token just created: its secret is shown on this page, once.
    #[serde(default)]
    created: Option<String>,
}

/// `GET /orgs/{org}/settings/tokens`.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let mut notice = match q.done.as_deref() {
        Some("revoked") => Some("Token revoked: it no longer signs in, and its sessions ended."),
        Some("user") => Some("User created. Create an API token for them below."),
        Some("user-deleted") => Some("User deleted, with their tokens."),
        _ => None,
    };
    let mut created = None;
    if let Some(id) = q.created {
        match c.take_flash(&state, &format!("token:{id}")) {
            Some(secret) => {
                created = state
                    .store()
                    .get_token(&id)
                    .await?
                    .map(|token| CreatedApiToken {
                        token,
                        secret: secret.expose().to_owned(),
                    });
            }
            None => {
                notice = Some(
                    "A new token is shown only once, right after it is created. Revoke it and create another if it was not kept.",
                );
            }
        }
    }
    tokens_page(
        &state,
        &c,
        &org,
        Extras {
            notice,
            created,
            ..Extras::default()
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "expiresInDays")]
    expires: String,
}

/// `POST /orgs/{org}/settings/tokens`: the API's create-token; the secret waits in the session
/// for the page the browser is redirected to, and is shown there once.
pub async fn create_token(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    // Before the token exists: its one-time secret is shown on this organization's page.
    org_or_404(&state, &org).await?;
    let view = TokenFormView {
        user: form.user.clone(),
        name: form.name.clone(),
        expires: form.expires.clone(),
    };
    let refused = |status: StatusCode, problem: Problem| Extras {
        status,
        token_form: TokenFormView {
            user: view.user.clone(),
            name: view.name.clone(),
            expires: view.expires.clone(),
        },
        token_problem: problem,
        ..Extras::default()
    };
    let expires_in_days = match non_empty(&form.expires).map(|d| d.parse::<u32>()) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            let p = Problem::field("expiresInDays", "must be a whole number of days");
            return tokens_page(
                &state,
                &c,
                &org,
                refused(StatusCode::UNPROCESSABLE_ENTITY, p),
            )
            .await;
        }
    };
    let user = non_empty(&form.user).unwrap_or_else(|| c.principal.user.clone());
    match crate::api::users::create_token(
        State(state.clone()),
        c.auth(),
        Json(CreateApiToken {
            user,
            name: form.name.trim().to_owned(),
            expires_in_days,
        }),
    )
    .await
    {
        Ok((_, Json(created))) => {
            c.flash(
                &state,
                &format!("token:{}", created.token.id),
                berth_core::Secret::new(created.secret),
            );
            Ok(see_other(&format!(
                "/orgs/{org}/settings/tokens?created={}",
                created.token.id
            )))
        }
        Err(e) => tokens_page(&state, &c, &org, refused(e.status, Problem::from_api(&e))).await,
    }
}

/// `POST /orgs/{org}/settings/tokens/{id}/revoke`: the API's revoke.
pub async fn revoke_token(
    State(state): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    match crate::api::users::revoke_token(State(state.clone()), c.auth(), Path(id)).await {
        Ok(_) => Ok(see_other(&format!(
            "/orgs/{org}/settings/tokens?done=revoked"
        ))),
        Err(e) => {
            tokens_page(
                &state,
                &c,
                &org,
                Extras {
                    status: e.status,
                    token_problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "displayName")]
    display_name: String,
    #[serde(default)]
    role: String,
}

/// `POST /orgs/{org}/settings/users`: the API's create-user (admins).
pub async fn create_user(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Form(form): Form<UserForm>,
) -> PageResult {
    let view = || UserFormView {
        name: form.name.clone(),
        display_name: form.display_name.clone(),
        role: form.role.clone(),
    };
    let Some(role) = Role::ALL.into_iter().find(|r| r.as_str() == form.role) else {
        return tokens_page(
            &state,
            &c,
            &org,
            Extras {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                user_form: view(),
                user_problem: Problem::field("role", "must be admin, developer or viewer"),
                ..Extras::default()
            },
        )
        .await;
    };
    match crate::api::users::create_user(
        State(state.clone()),
        c.auth(),
        Json(CreateUser {
            name: form.name.trim().to_owned(),
            display_name: non_empty(&form.display_name),
            role,
        }),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/orgs/{org}/settings/tokens?done=user"))),
        Err(e) => {
            tokens_page(
                &state,
                &c,
                &org,
                Extras {
                    status: e.status,
                    user_form: view(),
                    user_problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

/// `POST /orgs/{org}/settings/users/{user}/delete`: the API's delete-user (admins).
pub async fn delete_user(
    State(state): State<AppState>,
    c: Console,
    Path((org, user)): Path<(String, String)>,
) -> PageResult {
    match crate::api::users::delete_user(State(state.clone()), c.auth(), Path(user)).await {
        Ok(_) => Ok(see_other(&format!(
            "/orgs/{org}/settings/tokens?done=user-deleted"
        ))),
        Err(e) => {
            tokens_page(
                &state,
                &c,
                &org,
                Extras {
                    status: e.status,
                    user_problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    org: Org,
    entries: Vec<AuditEntry>,
    limit: u32,
    /// The link to older entries, when there are more.
    older: Option<String>,
    /// This is an older page (not the newest entries).
    paged: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct LimitQuery {
    #[serde(default)]
    limit: Option<u32>,
    /// The page after this cursor (the API's).
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /orgs/{org}/settings/audit?limit=…&cursor=…`: the API's audit log (admins), a page at
/// a time.
pub async fn audit(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<LimitQuery>,
) -> PageResult {
    let org = org_or_404(&state, &org).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let Json(list) = crate::api::users::list_audit(
        State(state.clone()),
        c.auth(),
        crate::extract::Query(AuditQuery {
            limit: Some(limit),
            cursor: q.cursor.clone(),
        }),
    )
    .await?;
    let older = list.next_cursor.map(|cursor| {
        format!(
            "/orgs/{}/settings/audit?limit={limit}&cursor={cursor}",
            org.name
        )
    });
    render_status(
        StatusCode::OK,
        &AuditPage {
            chrome: c.chrome(&org.name, "audit", "Audit log"),
            org,
            entries: list.items,
            limit,
            older,
            paged: q.cursor.is_some(),
        },
    )
}
