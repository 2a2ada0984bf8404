//! Sign in (API token → session) and sign out.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::Secret;
use serde::Deserialize;

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, clear_cookie, cookie, random_hex, set_cookie, tokens_match,
};
use super::{
    Chrome, Form, PageError, PageResult, Source, audit, cross_site, render_status, safe_next,
};
use crate::AppState;
use crate::extract::Query;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in form's CSRF token lives in its own cookie until there is a session
/// (double submit: a cross-site page can neither read the cookie nor set it).
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    error: Option<String>,
) -> PageResult {
    let csrf = match cookie(headers, LOGIN_COOKIE) {
        Some(c) if c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => c.to_owned(),
        _ => random_hex(32).map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?,
    };
    let page = LoginPage {
        chrome: Chrome::anonymous("Sign in"),
        csrf: csrf.clone(),
        next: safe_next(next).to_owned(),
        error,
    };
    let mut resp = render_status(status, &page)?;
    let value = set_cookie(LOGIN_COOKIE, &csrf, "/login", super::secure_cookies(state));
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&value).expect("cookie value is ASCII"),
    );
    Ok(resp)
}

/// `GET /login`: the form, or straight on when already signed in.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = q.next.unwrap_or_else(|| "/".into());
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Some(s) = state.sessions().get(id)
        && state
            .store()
            .authenticate(s.token.expose())
            .await?
            .is_some()
    {
        return Ok(super::see_other(safe_next(&next)));
    }
    login_page(&state, &headers, StatusCode::OK, &next, None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: checks the token with the store, opens a session, sets the cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Source(source): Source,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if cross_site(&headers) || !tokens_match(expected, &form.csrf) {
        let resp = PageError::new(
            StatusCode::FORBIDDEN,
            "The sign-in form is stale or came from another site (CSRF check failed). Open the sign-in page again.",
        )
        .into_response();
        audit(
            &state,
            "anonymous",
            &Method::POST,
            "/login",
            resp.status(),
            &source,
        )
        .await;
        return Ok(resp);
    }
    let token = form.token.trim();
    let principal = if token.is_empty() {
        None
    } else {
        state.store().authenticate(token).await?
    };
    let Some(principal) = principal else {
        let resp = login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("That token is unknown, revoked or expired.".into()),
        )?;
        audit(
            &state,
            "anonymous",
            &Method::POST,
            "/login",
            resp.status(),
            &source,
        )
        .await;
        return Ok(resp);
    };
    // A fresh id on every sign-in (no session fixation); an older session of this browser ends.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        state.sessions().remove(old);
    }
    let (id, _) = state
        .sessions()
        .create(Secret::new(token))
        .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let secure = super::secure_cookies(&state);
    let mut resp = super::see_other(safe_next(&form.next));
    let h = resp.headers_mut();
    for value in [
        set_cookie(SESSION_COOKIE, &id, "/", secure),
        clear_cookie(LOGIN_COOKIE, "/login", secure),
    ] {
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&value).expect("cookie value is ASCII"),
        );
    }
    audit(
        &state,
        &principal.actor(),
        &Method::POST,
        "/login",
        resp.status(),
        &source,
    )
    .await;
    Ok(resp)
}

/// `POST /logout` (CSRF-checked by the guard): ends the session and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions().remove(id);
    }
    let mut resp = super::see_other("/login");
    let value = clear_cookie(SESSION_COOKIE, "/", super::secure_cookies(&state));
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&value).expect("cookie value is ASCII"),
    );
    resp
}
