//! The web console: server-rendered pages (askama) over the same handlers the API serves, with
//! htmx (vendored, embedded) for partial updates. No JavaScript build step, nothing to install
//! besides the `berth` binary.
//!
//! Pages never re-implement a rule: they turn a form into the API's request type, call the API
//! handler, and show its answer — or its error next to the field it names.
//!
//! Security: sessions are random ids in `HttpOnly; SameSite=Strict` cookies ([`session`]); every
//! POST carries the session's CSRF token (hidden field `csrf` or header `X-CSRF-Token`),
//! compared in constant time, and a cross-site `Origin`/`Sec-Fetch-Site` is refused outright.
//! Pages are sent with a strict Content-Security-Policy (no inline script at all). Mutating
//! console requests are audited like API ones.

pub mod assets;
mod ci;
mod components;
mod configs;
mod endpoints;
mod live;
mod login;
mod overview;
mod registries;
pub mod session;
mod tasks;
mod users;

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use berth_store::{NewAuditEntry, Principal};
use serde::de::DeserializeOwned;
use tracing::{debug, error};

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};
use session::{SESSION_COOKIE, cookie, tokens_match};

/// The console's routes. Sign-in and assets are public; everything else needs a session.
pub fn routes(state: AppState) -> Router<AppState> {
    let org = "/orgs/{org}";
    let component = "/orgs/{org}/projects/{project}/components/{component}";
    let at = |suffix: &str| format!("{component}{suffix}");
    let protected = Router::new()
        .route("/", get(overview::home))
        .route("/logout", post(login::logout))
        .route(org, get(overview::overview))
        .route(&format!("{org}/projects"), post(overview::create_project))
        .route(
            &format!("{org}/settings/registries"),
            get(registries::page).post(registries::create),
        )
        .route(
            &format!("{org}/settings/registries/{{registry}}/test"),
            post(registries::test),
        )
        .route(
            &format!("{org}/settings/registries/{{registry}}/delete"),
            post(registries::delete),
        )
        .route(
            &format!("{org}/settings/tokens"),
            get(users::page).post(users::create_token),
        )
        .route(
            &format!("{org}/settings/tokens/{{id}}/revoke"),
            post(users::revoke_token),
        )
        .route(&format!("{org}/settings/users"), post(users::create_user))
        .route(
            &format!("{org}/settings/users/{{user}}/delete"),
            post(users::delete_user),
        )
        .route(&format!("{org}/settings/audit"), get(users::audit))
        .route(&format!("{org}/image-preview"), get(components::preview))
        .route(
            &format!("{org}/projects/{{project}}/new-component"),
            get(components::new_page),
        )
        .route(
            &format!("{org}/projects/{{project}}/components"),
            post(components::create),
        )
        .route(component, get(components::page))
        .route(&at("/live/events"), get(live::events))
        .route(&at("/tags"), get(components::tags))
        .route(&at("/deploy"), post(components::deploy))
        .route(&at("/promote"), post(components::promote))
        .route(&at("/endpoints"), post(endpoints::save))
        .route(&at("/schemas"), post(endpoints::upload))
        .route(&at("/schemas/delete"), post(endpoints::delete_schema))
        .route(&at("/logs"), get(live::logs_page))
        .route(&at("/logs/stream"), get(live::logs_stream))
        .route(&at("/configs"), get(configs::page).post(configs::set))
        .route(&at("/configs/unset"), post(configs::unset))
        .route(&at("/tasks"), get(tasks::page))
        .route(&at("/schedule"), post(tasks::save_schedule))
        .route(&at("/schedule/delete"), post(tasks::delete_schedule))
        .route(&at("/schedule-preview"), get(tasks::preview))
        .route(&at("/runs"), post(tasks::run))
        .route(&at("/executions/{id}"), get(tasks::execution_page))
        .route(&at("/executions/{id}/logs"), get(tasks::execution_fragment))
        .route(&at("/executions/{id}/cancel"), post(tasks::cancel))
        .route(&at("/ci"), get(ci::page))
        .route(&at("/ci/tokens"), post(ci::create))
        .route(&at("/ci/tokens/{id}/revoke"), post(ci::revoke))
        .layer(middleware::from_fn_with_state(state, guard));
    Router::new()
        .route("/login", get(login::page).post(login::login))
        .route("/assets/{name}", get(assets::asset))
        .merge(protected)
        .layer(middleware::from_fn(security_headers))
}

/// Answers an unknown path: JSON under `/api/`, an HTML page elsewhere.
pub async fn not_found(uri: OriginalUri) -> Response {
    let path = uri.0.path();
    if path == "/api" || path.starts_with("/api/") {
        return crate::api::system::not_found().await.into_response();
    }
    let mut resp =
        PageError::new(StatusCode::NOT_FOUND, "There is no page at this address.").into_response();
    add_security_headers(resp.headers_mut());
    resp
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn add_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages carry CSRF tokens and private data: never cache them (assets set their own).
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_security_headers(resp.headers_mut());
    resp
}

/// The signed-in user of a console request (put there by [`guard`]).
#[derive(Debug, Clone)]
pub struct Console {
    pub principal: Principal,
    pub csrf: String,
    /// The session's API token, so long-lived streams can check it is still valid.
    token: berth_core::Secret,
    /// The session id (for one-time secrets kept in the session).
    session: berth_core::Secret,
}

impl Console {
    /// The API's view of the caller, for calling API handlers.
    fn auth(&self) -> crate::auth::Auth {
        crate::auth::Auth(self.principal.clone())
    }

    /// Whether the session's token still signs in (streams re-check it while they run, so
    /// revoking a token ends its open streams too).
    async fn still_valid(&self, state: &AppState) -> bool {
        matches!(
            state.store().authenticate(self.token.expose()).await,
            Ok(Some(_))
        )
    }

    /// Keeps a just-created secret for the page the browser is redirected to.
    fn flash(&self, state: &AppState, what: &str, secret: berth_core::Secret) {
        state
            .sessions()
            .set_flash(self.session.expose(), what, secret);
    }

    /// The secret kept by [`Console::flash`] for `what`, once.
    fn take_flash(&self, state: &AppState, what: &str) -> Option<berth_core::Secret> {
        state.sessions().take_flash(self.session.expose(), what)
    }

    fn chrome(&self, org: &str, section: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            org: org.to_owned(),
            section,
            css_url: assets::css_url(),
            js_url: assets::js_url(),
            sse_url: assets::sse_url(),
            app_js_url: assets::app_js_url(),
            signed_in: Some(Signed {
                user: self.principal.user.clone(),
                role: self.principal.role.as_str().to_owned(),
                admin: self
                    .principal
                    .role
                    .allows(berth_core::role::Action::Administer),
                csrf: self.csrf.clone(),
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Console {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Console>()
            .cloned()
            .ok_or_else(|| PageError::new(StatusCode::UNAUTHORIZED, "Sign in to use the console."))
    }
}

/// What every page's layout needs.
pub struct Chrome {
    pub title: String,
    /// The organization in the navigation; empty for none.
    pub org: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    pub css_url: &'static str,
    pub js_url: &'static str,
    pub sse_url: &'static str,
    pub app_js_url: &'static str,
    pub signed_in: Option<Signed>,
}

impl Chrome {
    /// Layout for pages without a session (sign-in, errors).
    fn anonymous(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            org: String::new(),
            section: "",
            css_url: assets::css_url(),
            js_url: assets::js_url(),
            sse_url: assets::sse_url(),
            app_js_url: assets::app_js_url(),
            signed_in: None,
        }
    }
}

pub struct Signed {
    pub user: String,
    pub role: String,
    /// Whether the user may administer (users, audit log).
    pub admin: bool,
    pub csrf: String,
}

/// An error the API returned for a form, shown at the top and next to the field it names.
#[derive(Debug, Default)]
pub struct Problem {
    message: Option<String>,
    field: Option<String>,
    /// Every issue when the API reports several (an invalid endpoints file).
    details: Vec<berth_core::api::ErrorDetail>,
}

impl Problem {
    fn from_api(e: &ApiError) -> Self {
        Self {
            message: Some(e.message.clone()),
            field: e.field.clone(),
            details: e.details.clone().unwrap_or_default(),
        }
    }

    /// A problem the console found before asking the API (a form value of the wrong kind).
    fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            message: Some(format!("{field}: {message}")),
            field: Some(field.to_owned()),
            details: Vec::new(),
        }
    }

    /// The API's list of issues, when it gave one.
    pub fn details(&self) -> &[berth_core::api::ErrorDetail] {
        &self.details
    }

    /// The issues as (path, what is wrong there), without repeating the path the message
    /// starts with.
    pub fn issues(&self) -> Vec<(String, String)> {
        self.details
            .iter()
            .map(|d| {
                let rest = d
                    .message
                    .strip_prefix(d.path.as_str())
                    .filter(|_| !d.path.is_empty())
                    .map_or(d.message.as_str(), str::trim_start);
                (d.path.clone(), rest.to_owned())
            })
            .collect()
    }

    /// The message, if any.
    pub fn any(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether the error is about `field` (or a part of it, like `dockerConfig.auths`).
    pub fn invalid(&self, field: &str) -> bool {
        self.field.as_deref().is_some_and(|f| {
            f == field
                || f.strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    /// The message when it is about `field`.
    pub fn on(&self, field: &str) -> Option<&str> {
        if self.invalid(field) {
            self.message.as_deref()
        } else {
            None
        }
    }
}

/// An error page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            error!(status = %e.status, code = e.code, message = %e.message, "console request failed");
        }
        Self::new(e.status, e.message)
    }
}

impl From<berth_store::Error> for PageError {
    fn from(e: berth_store::Error) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    heading: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Sign in",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(heading),
            heading,
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                error!(error = %e, "rendering the error page failed");
                (self.status, self.message).into_response()
            }
        }
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// Renders a template as a page with `status`.
fn render_status<T: Template>(status: StatusCode, t: &T) -> PageResult {
    let html = t.render().map_err(|e| {
        error!(error = %e, "rendering a console template failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the page failed",
        )
    })?;
    Ok((status, Html(html)).into_response())
}

fn render<T: Template>(t: &T) -> PageResult {
    render_status(StatusCode::OK, t)
}

/// 303 See Other: the answer to a successful form POST. Bytes a `Location` header cannot
/// carry as they are (controls, spaces, non-ASCII: names from decoded path segments) are
/// percent-encoded, so the redirect is always sent.
fn see_other(to: &str) -> Response {
    let mut location = String::with_capacity(to.len());
    for b in to.bytes() {
        if b.is_ascii_graphic() {
            location.push(char::from(b));
        } else {
            location.push_str(&format!("%{b:02X}"));
        }
    }
    Redirect::to(&location).into_response()
}

/// Whether htmx sent the request (it wants a fragment, not a page).
fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A form body (`application/x-www-form-urlencoded`); a malformed one is a 400 page.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|f| Form(f.0))
            .map_err(|e| {
                // Past the body limit is a 413 like everywhere else; any other bad form a 400.
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
                } else {
                    PageError::new(StatusCode::BAD_REQUEST, e.body_text())
                }
            })
    }
}

/// An empty form field is an absent one.
fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The first 12 hex digits of a digest, for display.
fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Percent-encodes a path+query for the `next` parameter.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Only same-site paths are followed after sign-in (no `//host`, no scheme).
fn safe_next(next: &str) -> &str {
    // Visible ASCII only: a path and query as the browser sent them are percent-encoded.
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic())
    {
        next
    } else {
        "/"
    }
}

fn secure_cookies(state: &AppState) -> bool {
    state.config().public_url.starts_with("https://")
}

/// Where the browser was sent to sign in.
fn to_login(req: &Request) -> Response {
    let path_and_query = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().clone(), |u| u.0.clone());
    let next = path_and_query
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let login = if req.method() == Method::GET && next != "/" && !is_htmx(req.headers()) {
        format!("/login?next={}", encode_component(&next))
    } else {
        "/login".to_owned()
    };
    if is_htmx(req.headers()) {
        // htmx follows HX-Redirect with a full page load.
        return (
            StatusCode::UNAUTHORIZED,
            [(HeaderName::from_static("hx-redirect"), login)],
        )
            .into_response();
    }
    Redirect::to(&login).into_response()
}

/// Refuses requests a browser marks as cross-site (defence in depth; the CSRF token decides).
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin_host != Some(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The CSRF token a POST presents: the `X-CSRF-Token` header (htmx) or the `csrf` field of a
/// urlencoded or multipart form (file uploads).
async fn presented_csrf(headers: &HeaderMap, body: &axum::body::Bytes) -> Option<String> {
    if let Some(v) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return Some(v.to_owned());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())?;
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v);
    }
    if content_type.starts_with("multipart/form-data") {
        let req = Request::builder()
            .method(Method::POST)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.clone()))
            .ok()?;
        let mut form = axum::extract::Multipart::from_request(req, &())
            .await
            .ok()?;
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some("csrf") {
                return field.text().await.ok();
            }
        }
    }
    None
}

fn source_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// The client's address for the audit log (`unknown` without connect info, as in tests).
pub struct Source(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(source_of(&parts.extensions)))
    }
}

/// Writes the audit row of a mutating console request.
async fn audit(
    state: &AppState,
    actor: &str,
    method: &Method,
    path: &str,
    status: StatusCode,
    source: &str,
) {
    let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
    let entry = NewAuditEntry {
        actor,
        method: method.as_str(),
        path,
        status: status.as_u16(),
        request_id: &request_id,
        source,
    };
    if let Err(e) = state.store().insert_audit(&entry).await {
        error!(error = %e, %path, "writing the audit row failed");
    }
}

/// The refusal of a forged or cross-site POST.
fn csrf_refusal() -> Response {
    PageError::new(
        StatusCode::FORBIDDEN,
        "This form is stale or came from another site (CSRF check failed). Reload the page and try again.",
    )
    .into_response()
}

/// Session check for every protected route; for POSTs also the CSRF check and the audit row.
async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.0.path().to_owned());
    let source = source_of(req.extensions());
    let session = cookie(req.headers(), SESSION_COOKIE)
        .map(str::to_owned)
        .and_then(|id| state.sessions().get(&id).map(|s| (id, s)));
    let principal = match &session {
        None => None,
        Some((id, s)) => match state.store().authenticate(s.token.expose()).await {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                // The token was revoked or expired: the session goes with it.
                state.sessions().remove(id);
                None
            }
            Err(e) => return PageError::from(e).into_response(),
        },
    };
    // A POST a browser marks as cross-site is refused whoever sends it (with SameSite=Strict
    // it carries no session cookie anyway); the CSRF token below decides the rest.
    if mutating && cross_site(req.headers()) {
        debug!(%path, "cross-site console POST refused");
        let resp = csrf_refusal();
        let actor = principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), Principal::actor);
        audit(&state, &actor, &method, &path, resp.status(), &source).await;
        return resp;
    }
    let (Some(principal), Some((session_id, session))) = (principal, session) else {
        return to_login(&req);
    };
    if mutating {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, crate::extract::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
                    .into_response();
            }
        };
        let ok = presented_csrf(&parts.headers, &bytes)
            .await
            .is_some_and(|t| tokens_match(&session.csrf, &t));
        if !ok {
            debug!(%path, "console POST without a valid CSRF token");
            let resp = csrf_refusal();
            audit(
                &state,
                &principal.actor(),
                &method,
                &path,
                resp.status(),
                &source,
            )
            .await;
            return resp;
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let actor = principal.actor();
    req.extensions_mut().insert(Console {
        principal,
        csrf: session.csrf,
        token: session.token,
        session: berth_core::Secret::new(session_id),
    });
    let resp = next.run(req).await;
    if mutating {
        audit(&state, &actor, &method, &path, resp.status(), &source).await;
    }
    resp
}

/// The name rule, as shown next to name fields.
const NAME_RULE: &str = "Lowercase letters, digits and '-', starting with a letter, at most 40 characters, no '--' and no '-' at the end.";

#[cfg(test)]
mod tests;
