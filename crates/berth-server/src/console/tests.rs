//! Console handler tests through `router(state).oneshot(…)`: sign-in and sessions, the CSRF
//! check on every POST, escaping of user content, inline form errors, routing next to the API.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

use crate::{AppState, router};

use crate::test_support::{Fixture, fixture};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf_field(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let at = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body));
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn send(state: &AppState, req: Request<Body>) -> Answer {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(Method::GET).uri(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn post_form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).unwrap()
}

/// `name=value` of the cookie `name` among `Set-Cookie` headers.
fn cookie_pair(a: &Answer, name: &str) -> String {
    a.cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", a.cookies()))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Signs in with `token`; returns the session cookie and the session's CSRF token.
async fn sign_in(state: &AppState, token: &str) -> (String, String) {
    let form = send(state, get("/login", None)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let login_cookie = cookie_pair(&form, "berth_login");
    let csrf = form.csrf_field();
    let signed = send(
        state,
        post_form(
            "/login",
            Some(&login_cookie),
            &[("token", token), ("csrf", &csrf), ("next", "/orgs/default")],
        ),
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/orgs/default");
    let set = signed
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("berth_session="))
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    assert!(!set.contains(token), "the token must not reach the cookie");
    let session = cookie_pair(&signed, "berth_session");
    let page = send(state, get("/orgs/default", Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (session, page.csrf_field())
}

#[tokio::test]
async fn pages_need_a_session_and_the_api_keeps_its_json() {
    let f = fixture().await;
    let a = send(&f.state, get("/", None)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/login");
    let a = send(&f.state, get("/orgs/default/settings/registries?x=1", None)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.location(),
        "/login?next=/orgs/default/settings/registries%3Fx%3D1"
    );
    // htmx gets a redirect instruction instead of a login page inside a fragment.
    let mut req = get("/orgs/default/image-preview?image=nginx", None);
    req.headers_mut()
        .insert("hx-request", "true".parse().unwrap());
    let a = send(&f.state, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["hx-redirect"], "/login");
    // A stale or forged session cookie is no session.
    let a = send(&f.state, get("/orgs/default", Some("berth_session=forged"))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // POSTs without a session do nothing.
    let a = send(
        &f.state,
        post_form("/orgs/default/projects", None, &[("name", "shop")]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        f.state
            .store()
            .list_projects("default")
            .await
            .unwrap()
            .is_empty()
    );

    // The API, health and its JSON 404 are untouched; other unknown paths get an HTML page.
    let a = send(&f.state, get("/healthz", None)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
    let a = send(&f.state, get("/api/v1/nothing-here", None)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
    assert!(a.body.contains(r#""code":"not_found""#), "{}", a.body);
    let a = send(&f.state, get("/api/v1/orgs", None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
    let a = send(&f.state, get("/no/such/page", None)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn sign_in_and_out() {
    let f = fixture().await;
    // A wrong token is refused on the form, with the reason.
    let form = send(&f.state, get("/login", None)).await;
    let login_cookie = cookie_pair(&form, "berth_login");
    let csrf = form.csrf_field();
    let a = send(
        &f.state,
        post_form(
            "/login",
            Some(&login_cookie),
            &[("token", "berth_pat_0000000000wrong"), ("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("unknown, revoked or expired"), "{}", a.body);
    assert!(a.cookies().iter().all(|c| !c.starts_with("berth_session=")));
    // The sign-in form has its own CSRF token (login CSRF).
    let a = send(
        &f.state,
        post_form(
            "/login",
            Some(&login_cookie),
            &[("token", &f.token), ("csrf", "0000")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(
        &f.state,
        post_form("/login", None, &[("token", &f.token), ("csrf", &csrf)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // `next` only goes to this site.
    let a = send(
        &f.state,
        post_form(
            "/login",
            Some(&login_cookie),
            &[
                ("token", &f.token),
                ("csrf", &csrf),
                ("next", "//evil.example/"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/");
    // A `next` a Location header cannot carry (control characters, spaces, non-ASCII) goes
    // home instead of failing the sign-in with a 500.
    for next in ["/\u{1}", "/\u{7f}", "/a b", "/caf\u{e9}"] {
        let a = send(
            &f.state,
            post_form(
                "/login",
                Some(&login_cookie),
                &[("token", &f.token), ("csrf", &csrf), ("next", next)],
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{next:?}: {}", a.body);
        assert_eq!(a.location(), "/", "{next:?}");
    }

    let (session, csrf) = sign_in(&f.state, &f.token).await;
    // A token made under an organization that does not exist: a 404 before anything is
    // created (its one-time secret would be shown on that organization's page).
    let a = send(
        &f.state,
        post_form(
            "/orgs/%7F/settings/tokens",
            Some(&session),
            &[("csrf", &csrf), ("name", "nowhere")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let tokens = f.state.store().list_tokens(None).await.unwrap();
    assert!(tokens.iter().all(|t| t.name != "nowhere"), "{tokens:?}");
    let page = send(&f.state, get("/", Some(&session))).await;
    assert_eq!(page.location(), "/orgs/default");
    let page = send(&f.state, get("/orgs/default", Some(&session))).await;
    assert!(page.body.contains("admin"), "{}", page.body);
    assert!(page.body.contains("Sign out"));
    // Sign-in page while signed in: straight on.
    let a = send(&f.state, get("/login", Some(&session))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);

    let out = send(
        &f.state,
        post_form("/logout", Some(&session), &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(
        out.cookies()
            .iter()
            .any(|c| c.starts_with("berth_session=;") && c.contains("Max-Age=0"))
    );
    let a = send(&f.state, get("/orgs/default", Some(&session))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "the session must be gone");
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let f = fixture().await;
    let (tok, secret) = f
        .state
        .store()
        .insert_token("admin", "browser", None)
        .await
        .unwrap();
    let (session, _) = sign_in(&f.state, &secret).await;
    f.state.store().revoke_token(&tok.id).await.unwrap();
    let a = send(&f.state, get("/orgs/default", Some(&session))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.location().starts_with("/login"));
}

#[tokio::test]
async fn every_post_needs_the_session_csrf_token() {
    let f = fixture().await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let (other_session, other_csrf) = sign_in(&f.state, &f.token).await;
    assert_ne!(csrf, other_csrf, "CSRF tokens are per session");
    let path = "/orgs/default/projects";
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "no token",
            post_form(path, Some(&session), &[("name", "shop")]),
        ),
        (
            "wrong token",
            post_form(path, Some(&session), &[("name", "shop"), ("csrf", "f00d")]),
        ),
        (
            "another session's token",
            post_form(
                path,
                Some(&session),
                &[("name", "shop"), ("csrf", &other_csrf)],
            ),
        ),
        ("cross-site origin", {
            let mut r = post_form(path, Some(&session), &[("name", "shop"), ("csrf", &csrf)]);
            r.headers_mut()
                .insert(header::HOST, "127.0.0.1:7400".parse().unwrap());
            r.headers_mut()
                .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
            r
        }),
        ("cross-site fetch", {
            let mut r = post_form(path, Some(&session), &[("name", "shop"), ("csrf", &csrf)]);
            r.headers_mut()
                .insert("sec-fetch-site", "cross-site".parse().unwrap());
            r
        }),
        (
            "logout without token",
            post_form("/logout", Some(&other_session), &[]),
        ),
    ];
    for (what, req) in cases {
        let a = send(&f.state, req).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
        assert!(a.body.contains("CSRF"), "{what}");
    }
    assert!(
        f.state
            .store()
            .list_projects("default")
            .await
            .unwrap()
            .is_empty(),
        "a refused POST must change nothing"
    );
    // The other session survived its refused logout.
    let a = send(&f.state, get("/orgs/default", Some(&other_session))).await;
    assert_eq!(a.status, StatusCode::OK);

    // The right token in the form or in htmx's header: accepted.
    let mut same_origin = post_form(path, Some(&session), &[("name", "shop"), ("csrf", &csrf)]);
    same_origin
        .headers_mut()
        .insert(header::HOST, "127.0.0.1:7400".parse().unwrap());
    same_origin
        .headers_mut()
        .insert(header::ORIGIN, "http://127.0.0.1:7400".parse().unwrap());
    let a = send(&f.state, same_origin).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/orgs/default?done=project");
    let mut htmx = post_form(path, Some(&session), &[("name", "cart")]);
    htmx.headers_mut()
        .insert("x-csrf-token", csrf.parse().unwrap());
    let a = send(&f.state, htmx).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let names: Vec<String> = f
        .state
        .store()
        .list_projects("default")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["cart", "shop"]);

    // Refused and accepted console POSTs are audited like API calls.
    let audit = f.state.store().list_audit(100).await.unwrap();
    let rows: Vec<(String, i64)> = audit
        .iter()
        .filter(|e| e.path == path)
        .map(|e| (e.actor.clone(), e.status))
        .collect();
    assert_eq!(rows.iter().filter(|r| r.1 == 403).count(), 5, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.1 == 303).count(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.0 == "admin/bootstrap"), "{rows:?}");
}

#[tokio::test]
async fn user_content_is_escaped() {
    let f = fixture().await;
    f.state
        .store()
        .insert_project(
            "default",
            "xss",
            r#""><img src=x onerror=alert(1)>"#,
            "<script>alert('owned')</script>",
        )
        .await
        .unwrap();
    let (session, _) = sign_in(&f.state, &f.token).await;
    let page = send(&f.state, get("/orgs/default", Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
    assert!(!page.body.contains(r#""><img"#), "{}", page.body);
    let escaped = ["&lt;script&gt;alert(", "&#60;script&#62;alert("];
    assert!(
        escaped.iter().any(|e| page.body.contains(e)),
        "the description is shown, escaped: {}",
        page.body
    );
    // Pages forbid inline script outright, so even a missed escape could not run.
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn registry_form_errors_inline_and_secrets_stay_write_only() {
    let f = fixture().await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let path = "/orgs/default/settings/registries";
    let a = send(
        &f.state,
        post_form(
            path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "local"),
                ("host", "127.0.0.1:5000"),
                ("authType", "basic"),
                ("username", ""),
                ("password", "hunter2-very-secret"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains(r#"id="reg-username-error""#),
        "the error sits next to the username field: {}",
        a.body
    );
    assert!(a.body.contains("username: is required"), "{}", a.body);
    assert!(!a.body.contains("hunter2"), "a password is never sent back");
    assert!(
        a.body.contains(r#"value="127.0.0.1:5000""#),
        "other fields are kept"
    );

    let a = send(
        &f.state,
        post_form(
            path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "local"),
                ("displayName", "Local <b>registry</b>"),
                ("host", "127.0.0.1:5000"),
                ("authType", "basic"),
                ("username", "berth"),
                ("password", "hunter2-very-secret"),
                // Fields of other auth types are not sent to the API.
                ("dockerConfig", "{}"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, settings) = f
        .state
        .store()
        .registry_settings("default", "local")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settings.password.unwrap().expose(), "hunter2-very-secret");
    let page = send(&f.state, get(a.location(), Some(&session))).await;
    assert!(page.body.contains("Registry added"), "{}", page.body);
    assert!(page.body.contains("127.0.0.1:5000"));
    assert!(page.body.contains("password set"));
    assert!(!page.body.contains("hunter2"));
    assert!(
        !page.body.contains("<b>registry</b>"),
        "display names are escaped"
    );

    // Docker config: the host comes from the file; a broken file is named.
    let a = send(
        &f.state,
        post_form(
            path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "dc"),
                ("authType", "docker-config"),
                ("dockerConfig", r#"{"auths":{}}"#),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains(r#"id="reg-docker-config-error""#),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn image_preview_and_component_form_errors() {
    let f = fixture().await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let a = send(
        &f.state,
        get("/orgs/default/image-preview?image=nginx", Some(&session)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("docker.io/library/nginx:latest"),
        "{}",
        a.body
    );
    assert!(a.body.contains("<code>library/</code> added"), "{}", a.body);
    assert!(a.body.contains("Docker Hub, the default"), "{}", a.body);
    let a = send(
        &f.state,
        get(
            "/orgs/default/image-preview?image=127.0.0.1%3A5000%2Ftest%2Fweb%3Av1",
            Some(&session),
        ),
    )
    .await;
    assert!(a.body.contains("127.0.0.1:5000/test/web:v1"), "{}", a.body);
    assert!(!a.body.contains("library/"), "{}", a.body);
    let a = send(
        &f.state,
        get(
            "/orgs/default/image-preview?image=Nginx%3Cx%3E",
            Some(&session),
        ),
    )
    .await;
    assert!(a.body.contains("Not an image reference"), "{}", a.body);
    assert!(!a.body.contains("<x>"), "{}", a.body);

    f.state
        .store()
        .insert_project("default", "shop", "Shop", "")
        .await
        .unwrap();
    let new = send(
        &f.state,
        get("/orgs/default/projects/shop/new-component", Some(&session)),
    )
    .await;
    assert_eq!(new.status, StatusCode::OK);
    assert!(
        new.body.contains("Add one first"),
        "no registry yet: {}",
        new.body
    );

    let a = send(
        &f.state,
        post_form(
            "/orgs/default/projects/shop/components",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("type", "service"),
                ("registry", "none"),
                ("image", "127.0.0.1:5000/test/web:v1"),
                ("name", "Bad_Name"),
                ("description", "<i>kept</i>"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains(r#"id="name-error""#), "{}", a.body);
    assert!(
        a.body.contains("must start with a lowercase letter"),
        "{}",
        a.body
    );
    assert!(a.body.contains(r#"value="Bad_Name""#), "{}", a.body);
    assert!(!a.body.contains("<i>kept</i>"), "{}", a.body);
    let a = send(
        &f.state,
        post_form(
            "/orgs/default/projects/shop/components",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("type", "service"),
                ("registry", "none"),
                ("image", "x"),
                ("name", "web"),
                ("port", "http"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains(r#"id="port-error""#), "{}", a.body);
    let a = send(
        &f.state,
        post_form(
            "/orgs/default/projects/shop/components",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("type", "service"),
                ("registry", "none"),
                ("image", "x"),
                ("name", "web"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains(r#"id="registry-error""#), "{}", a.body);
    // Unknown component: an HTML 404 page.
    let a = send(
        &f.state,
        get(
            "/orgs/default/projects/shop/components/nope",
            Some(&session),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body.contains("nope"), "{}", a.body);
}

#[tokio::test]
async fn assets_are_embedded_and_cached_by_content() {
    let f = fixture().await;
    let login = send(&f.state, get("/login", None)).await;
    let css = super::assets::css_url();
    let js = super::assets::js_url();
    assert!(login.body.contains(css) && login.body.contains(js));
    for url in [css, js] {
        let a = send(&f.state, get(url, None)).await;
        assert_eq!(a.status, StatusCode::OK, "{url}");
        assert_eq!(
            a.headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
    let a = send(&f.state, get(js, None)).await;
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let a = send(&f.state, get("/assets/console.0000000000000000.css", None)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[test]
fn templates_need_no_inline_script_or_style() {
    // The Content-Security-Policy allows only same-origin files: an inline style, script or
    // event handler in a template would be blocked in the browser, so none may exist.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/console");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        seen += 1;
        for bad in [
            " style=\"",
            "<style",
            "<script>",
            " onclick=",
            " onload=",
            " onsubmit=",
            "javascript:",
            "hx-on",
        ] {
            assert!(!text.contains(bad), "{} contains {bad:?}", path.display());
        }
    }
    assert!(seen >= 10, "templates not found in {}", dir.display());
}

// ---------------------------------------------------------------------------------------------
// Component pages, configs, tasks, CI, users and tokens, audit, live streams

use berth_core::api::{ComponentType, DeploymentStatus, RegistryAuthType};
use berth_store::{
    ComponentRef, NewComponent, NewRelease, Origin, RegistrySettings, ReleaseChoice,
};

const XSS_NAME: &str = r#""><script>alert("name")</script>"#;
const XSS_DESCRIPTION: &str = r#"<script>alert('desc')</script>' onmouseover='alert(1)"#;
const BASE: &str = "/orgs/default/projects/shop/components";

/// Project `shop`, registry `local` and a component of `kind` (no network is used: nothing
/// here resolves tags).
async fn with_component(f: &Fixture, name: &str, kind: ComponentType) {
    let store = f.state.store();
    if store
        .get_project("default", "shop")
        .await
        .unwrap()
        .is_none()
    {
        store
            .insert_project("default", "shop", "Shop", "")
            .await
            .unwrap();
        store
            .insert_registry(
                "default",
                "local",
                &RegistrySettings {
                    display_name: "Local".into(),
                    host: "127.0.0.1:5000".into(),
                    auth_type: RegistryAuthType::Anonymous,
                    username: None,
                    password: None,
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
    }
    store
        .insert_component(
            "default",
            "shop",
            &NewComponent {
                name,
                display_name: XSS_NAME,
                description: XSS_DESCRIPTION,
                kind,
                registry: "local",
                image: "127.0.0.1:5000/test/web:v1",
                port: Some(8080),
            },
        )
        .await
        .unwrap();
}

/// A deployment of `name` to development with `status`; returns its id.
async fn deployment(f: &Fixture, name: &str, status: DeploymentStatus) -> String {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let id = deployment_of(f, name, &digest, "v1").await;
    if status != DeploymentStatus::Pending {
        f.state
            .store()
            .set_deployment_status(&id, status, None)
            .await
            .unwrap();
    }
    id
}

/// A new release of `digest` (tagged `tag`) deployed to development, pending; returns its id.
async fn deployment_of(f: &Fixture, name: &str, digest: &str, tag: &str) -> String {
    let d = f
        .state
        .store()
        .create_deployment(
            ComponentRef {
                org: "default",
                project: "shop",
                component: name,
            },
            "development",
            ReleaseChoice::New(NewRelease {
                registry: "local",
                repository: "127.0.0.1:5000/test/web",
                tag: Some(tag),
                digest,
                port: Some(8080),
                endpoints: "[]",
                config: "{}",
            }),
            None,
            Origin {
                trigger: "user",
                actor: "admin/bootstrap",
            },
        )
        .await
        .unwrap();
    d.id
}

fn assert_inert(body: &str) {
    for bad in ["<script>alert", r#""><script"#, "' onmouseover='", "<b>"] {
        assert!(
            !body.contains(bad),
            "{bad:?} came through unescaped:\n{body}"
        );
    }
}

fn multipart(csrf: Option<&str>, file_name: &str, content: &str) -> (String, String) {
    let boundary = "berth-test-boundary-7d1f";
    let mut body = String::new();
    if let Some(c) = csrf {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{c}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/yaml\r\n\r\n{content}\r\n--{boundary}--\r\n"
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn every_component_page_renders_names_and_descriptions_inert() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    with_component(&f, "job", ComponentType::ManualTask).await;
    let (session, _) = sign_in(&f.state, &f.token).await;
    for path in [
        "/orgs/default".to_owned(),
        format!("{BASE}/web"),
        format!("{BASE}/web/logs"),
        format!("{BASE}/web/configs"),
        format!("{BASE}/web/ci"),
        format!("{BASE}/job"),
        format!("{BASE}/job/tasks"),
    ] {
        let a = send(&f.state, get(&path, Some(&session))).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_inert(&a.body);
        assert!(
            a.body.contains("&#34;&#62;&#60;script&#62;alert(")
                || a.body.contains("&quot;&gt;&lt;script&gt;alert("),
            "{path}: the display name is shown, escaped:\n{}",
            a.body
        );
    }
    // Services have logs, tasks have runs; not the other way round.
    let a = send(&f.state, get(&format!("{BASE}/web/tasks"), Some(&session))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(&f.state, get(&format!("{BASE}/web"), Some(&session))).await;
    assert!(a.body.contains("Runtime logs") && !a.body.contains(">Runs<"));
    assert!(a.body.contains(r#"id="endpoints""#), "{}", a.body);
    let a = send(&f.state, get(&format!("{BASE}/job"), Some(&session))).await;
    assert!(
        !a.body.contains(r#"id="endpoints""#),
        "tasks have no endpoints pane"
    );
}

#[tokio::test]
async fn endpoints_editor_shows_every_issue_inline_and_schemas_upload() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let path = format!("{BASE}/web/endpoints");
    let broken = "version: 0.1\nendpoints:\n  - name: web\n    port: 80\n    type: rest\n  - port: 70000\n    type: REST\n    context: <b>x</b>\n";
    let a = send(
        &f.state,
        post_form(
            &path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("fileName", "endpoints.yaml"),
                ("content", broken),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains(r#"id="endpoints-error""#), "{}", a.body);
    assert!(
        a.body.contains("Not saved: the file has 5 problems."),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("<code>endpoints[1].port</code> must be less than 65535"),
        "{}",
        a.body
    );
    for issue in [
        "<code>endpoints[0].port</code>",
        "<code>endpoints[1].port</code>",
    ] {
        assert!(a.body.contains(issue), "{issue} not listed:\n{}", a.body);
    }
    // What was typed stays in the editor (escaped), which stays open.
    assert!(a.body.contains("&#60;b&#62;x&#60;/b&#62;") || a.body.contains("&lt;b&gt;x"));
    assert!(a.body.contains(r#"aria-invalid="true""#));
    assert_inert(&a.body);
    assert!(
        f.state
            .store()
            .endpoints_file(ComponentRef {
                org: "default",
                project: "shop",
                component: "web"
            })
            .await
            .unwrap()
            .is_none(),
        "a refused file is not stored"
    );

    // A schema the file names must be uploaded first: the upload is multipart.
    let openapi = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n";
    let (ct, body) = multipart(None, "openapi.yaml", openapi);
    let no_csrf = Request::builder()
        .method(Method::POST)
        .uri(format!("{BASE}/web/schemas"))
        .header(header::CONTENT_TYPE, &ct)
        .header(header::COOKIE, &session)
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&f.state, no_csrf).await.status, StatusCode::FORBIDDEN);
    let upload = |content: &str| {
        let (ct, body) = multipart(Some(&csrf), "openapi.yaml", content);
        Request::builder()
            .method(Method::POST)
            .uri(format!("{BASE}/web/schemas"))
            .header(header::CONTENT_TYPE, ct)
            .header(header::COOKIE, &session)
            .body(Body::from(body))
            .unwrap()
    };
    let a = send(&f.state, upload("openapi: 2.5\n")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains(r#"id="schema-error""#), "{}", a.body);
    let a = send(&f.state, upload(openapi)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), format!("{BASE}/web?done=schema#endpoints"));

    let good = "version: 0.1\nendpoints:\n  - name: api\n    port: 8080\n    type: REST\n    networkVisibility: Public\n    context: /api\n    schemaFilePath: openapi.yaml\n";
    let a = send(
        &f.state,
        post_form(
            &path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("fileName", "endpoints.yaml"),
                ("content", good),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), format!("{BASE}/web?done=endpoints#endpoints"));
    let page = send(
        &f.state,
        get(&format!("{BASE}/web?done=endpoints"), Some(&session)),
    )
    .await;
    assert!(page.body.contains("Endpoints saved"), "{}", page.body);
    assert!(
        page.body.contains("<code>openapi.yaml</code>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"class="mono">/api<div"#),
        "{}",
        page.body
    );
    // Deleting a schema the stored file still names is the API's decision; here: allowed.
    let a = send(
        &f.state,
        post_form(
            &format!("{BASE}/web/schemas/delete"),
            Some(&session),
            &[("csrf", &csrf), ("name", "nope.yaml")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.body.contains("schema-error"), "{}", a.body);
}

#[tokio::test]
async fn configs_keep_secrets_write_only() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let path = format!("{BASE}/web/configs");
    let set = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str()), ("env", "development")];
        all.extend_from_slice(fields);
        post_form(&path, Some(&session), &all)
    };
    let a = send(
        &f.state,
        set(&[("kind", "env"), ("name", "LEVEL"), ("value", "debug")]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location(),
        format!("{BASE}/web/configs?env=development&done=saved")
    );
    let a = send(
        &f.state,
        set(&[
            ("kind", "secret-env"),
            ("name", "DB_PASSWORD"),
            ("value", "hunter2-secret-value"),
            ("apply", "true"),
        ]),
    )
    .await;
    // Nothing runs yet: nothing to roll out, saved for the next deployment.
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = send(&f.state, get(&path, Some(&session))).await;
    assert!(page.body.contains("DB_PASSWORD"), "{}", page.body);
    assert!(page.body.contains("<code>debug</code>"), "{}", page.body);
    assert!(page.body.contains("write-only"));
    assert!(!page.body.contains("hunter2"), "secrets never come back");
    // A refused form names the field and does not echo a secret.
    let a = send(
        &f.state,
        set(&[
            ("kind", "secret-env"),
            ("name", "1BAD"),
            ("value", "another-secret-value"),
        ]),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains(r#"id="config-error""#), "{}", a.body);
    assert!(a.body.contains("set[0].name"), "{}", a.body);
    assert!(!a.body.contains("another-secret-value"));
    // Other environments have their own.
    let prod = send(
        &f.state,
        get(&format!("{path}?env=production"), Some(&session)),
    )
    .await;
    assert!(!prod.body.contains("DB_PASSWORD"), "{}", prod.body);
    let a = send(
        &f.state,
        post_form(
            &format!("{path}/unset"),
            Some(&session),
            &[
                ("csrf", &csrf),
                ("env", "development"),
                ("class", "env"),
                ("name", "DB_PASSWORD"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = send(&f.state, get(&path, Some(&session))).await;
    assert!(!page.body.contains("DB_PASSWORD"), "{}", page.body);
}

#[tokio::test]
async fn tasks_schedule_preview_runs_and_executions() {
    let f = fixture().await;
    with_component(&f, "report", ComponentType::ScheduledTask).await;
    with_component(&f, "other", ComponentType::ManualTask).await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let base = format!("{BASE}/report");
    // The preview uses the scheduler's cron rules.
    let a = send(
        &f.state,
        get(
            &format!("{base}/schedule-preview?schedule=0+3+*+*+*&timeZone=Europe%2FBerlin"),
            Some(&session),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.matches("<time").count(), 5, "{}", a.body);
    assert!(a.body.contains("T03:00:00+0"), "{}", a.body);
    let a = send(
        &f.state,
        get(
            &format!("{base}/schedule-preview?schedule=61+*+*+*+*"),
            Some(&session),
        ),
    )
    .await;
    assert!(
        a.body.contains("field-error") && a.body.contains("61"),
        "{}",
        a.body
    );

    // Save: refused inline, then accepted with the next five fire times.
    let save = |expr: &str| {
        post_form(
            &format!("{base}/schedule"),
            Some(&session),
            &[
                ("csrf", &csrf),
                ("env", "development"),
                ("schedule", expr),
                ("timeZone", "UTC"),
                ("concurrencyPolicy", "forbid"),
                ("successfulHistoryLimit", "10"),
                ("failedHistoryLimit", "10"),
            ],
        )
    };
    let a = send(&f.state, save("not cron")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains(r#"id="schedule-error""#), "{}", a.body);
    assert!(a.body.contains(r#"value="not cron""#), "kept: {}", a.body);
    let a = send(&f.state, save("*/15 * * * *")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location(),
        format!("{base}/tasks?env=development&done=schedule")
    );
    let page = send(&f.state, get(a.location(), Some(&session))).await;
    assert!(page.body.contains("Schedule saved"), "{}", page.body);
    let fire = &page.body[page.body.find("fire-times").expect("fire times")..];
    assert_eq!(fire.matches("<time").count(), 5, "{}", page.body);
    assert!(
        page.body.contains("Deploy it first"),
        "nothing deployed yet"
    );

    // Run with Arguments: split like the CLI; a broken quote is the field's error.
    let run = |args: &str| {
        post_form(
            &format!("{base}/runs"),
            Some(&session),
            &[
                ("csrf", &csrf),
                ("env", "development"),
                ("args", args),
                ("envOverrides", "LEVEL=very-secret-override"),
            ],
        )
    };
    let a = send(&f.state, run("a 'b")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains("unterminated single quote"), "{}", a.body);
    assert!(!a.body.contains("very-secret-override"), "{}", a.body);
    let a = send(&f.state, run("a 'b c'")).await;
    assert_eq!(
        a.status,
        StatusCode::CONFLICT,
        "nothing deployed: {}",
        a.body
    );
    assert!(
        a.body.contains("nothing is deployed to development"),
        "{}",
        a.body
    );

    deployment(&f, "report", DeploymentStatus::Ready).await;
    let a = send(&f.state, run("a 'b c'")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let execution = a.location().to_owned();
    assert!(
        execution.starts_with(&format!("{base}/executions/")),
        "{execution}"
    );
    let id = execution.rsplit('/').next().unwrap().to_owned();
    let x = f.state.store().get_execution(&id).await.unwrap().unwrap();
    assert_eq!(x.execution.args, ["a", "b c"]);
    assert_eq!(x.execution.env_overrides, ["LEVEL"]);
    assert_eq!(x.execution.trigger.as_str(), "manual");
    // Without an engine it fails; the page says so (with its reason) and stops refreshing.
    let mut page = send(&f.state, get(&execution, Some(&session))).await;
    for _ in 0..50 {
        if !page.body.contains("every 1s") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        page = send(&f.state, get(&execution, Some(&session))).await;
    }
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(r#"data-testid="execution-status">failed"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("a &#39;b c&#39;") || page.body.contains("a &#x27;b c&#x27;"),
        "{}",
        page.body
    );
    let list = send(
        &f.state,
        get(&format!("{base}/tasks?env=development"), Some(&session)),
    )
    .await;
    assert!(
        list.body.contains(&format!("data-execution=\"{id}\"")),
        "{}",
        list.body
    );
    // Another component's execution is not shown under this one.
    let a = send(
        &f.state,
        get(&format!("{BASE}/other/executions/{id}"), Some(&session)),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}

#[tokio::test]
async fn ci_tokens_are_shown_once_and_snippets_name_the_webhook() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let path = format!("{BASE}/web/ci");
    let page = send(&f.state, get(&path, Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("http://127.0.0.1:7400/api/v1/hooks/deploy")
    );
    for kind in ["curl", "github-actions", "gitlab-ci"] {
        assert!(
            page.body.contains(&format!(r#"id="snippet-{kind}""#)),
            "{kind}: {}",
            page.body
        );
    }
    assert!(page.body.contains("secrets.BERTH_TOKEN"), "{}", page.body);
    let a = send(
        &f.state,
        post_form(
            &format!("{path}/tokens"),
            Some(&session),
            &[("csrf", &csrf), ("name", "Bad Name")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains(r#"id="ci-token-error""#), "{}", a.body);
    let a = send(
        &f.state,
        post_form(
            &format!("{path}/tokens"),
            Some(&session),
            &[("csrf", &csrf), ("name", "github"), ("expiresInDays", "30")],
        ),
    )
    .await;
    // Post/Redirect/Get: the secret waits in the session for the page after the redirect.
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(
        a.location().starts_with(&format!("{path}?created=")),
        "{}",
        a.location()
    );
    assert!(!a.location().contains("berth_ci_"));
    let shown = a.location().to_owned();
    let a = send(&f.state, get(&shown, Some(&session))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let at = a
        .body
        .find(r#"id="ci-secret">"#)
        .expect("the secret is shown");
    let secret: String = a.body[at + r#"id="ci-secret">"#.len()..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    assert!(secret.starts_with("berth_ci_"), "{secret}");
    assert!(
        a.body.contains(r##"data-copy="#ci-secret""##),
        "copy button"
    );
    // …once: the same page again (a reload) shows it no more.
    let page = send(&f.state, get(&shown, Some(&session))).await;
    assert!(!page.body.contains(&secret));
    assert!(page.body.contains("shown only once"), "{}", page.body);
    let page = send(&f.state, get(&path, Some(&session))).await;
    assert!(!page.body.contains(&secret));
    assert!(
        page.body.contains(r#"data-ci-token="github""#),
        "{}",
        page.body
    );
    let tokens = f
        .state
        .store()
        .list_ci_tokens(ComponentRef {
            org: "default",
            project: "shop",
            component: "web",
        })
        .await
        .unwrap();
    let a = send(
        &f.state,
        post_form(
            &format!("{path}/tokens/{}/revoke", tokens[0].id),
            Some(&session),
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(
        f.state
            .store()
            .authenticate_ci(&secret)
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
}

#[tokio::test]
async fn users_tokens_and_the_audit_log() {
    let f = fixture().await;
    let (session, csrf) = sign_in(&f.state, &f.token).await;
    let path = "/orgs/default/settings/tokens";
    let page = send(&f.state, get(path, Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Users and API tokens"));
    assert!(page.body.contains(r#"data-user="admin""#), "{}", page.body);
    let a = send(
        &f.state,
        post_form(
            "/orgs/default/settings/users",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "dev"),
                ("displayName", "<i>Dev</i>"),
                ("role", "developer"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = send(
        &f.state,
        post_form(
            path,
            Some(&session),
            &[("csrf", &csrf), ("user", "dev"), ("name", "laptop")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let shown = a.location().to_owned();
    let a = send(&f.state, get(&shown, Some(&session))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(!a.body.contains("<i>Dev</i>"));
    let at = a.body.find(r#"id="api-secret">"#).expect("secret shown");
    let dev_token: String = a.body[at + r#"id="api-secret">"#.len()..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    let again = send(&f.state, get(&shown, Some(&session))).await;
    assert!(!again.body.contains(&dev_token), "shown once");
    assert!(again.body.contains("shown only once"), "{}", again.body);
    assert!(dev_token.starts_with("berth_pat_"), "{dev_token}");

    // A developer sees their own tokens, no users, no audit log.
    let (dev_session, _) = sign_in(&f.state, &dev_token).await;
    let page = send(&f.state, get(path, Some(&dev_session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Your API tokens"));
    assert!(!page.body.contains(r#"data-user="admin""#));
    assert!(!page.body.contains("Audit log"));
    let a = send(
        &f.state,
        get("/orgs/default/settings/audit", Some(&dev_session)),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = send(
        &f.state,
        get("/orgs/default/settings/audit", Some(&session)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("POST /orgs/default/settings/users"),
        "{}",
        a.body
    );
    assert!(a.body.contains("POST /login"), "{}", a.body);
}

/// Reads an SSE body until it ends (or `limit` passes, which fails the test).
async fn read_stream(body: Body, limit: std::time::Duration) -> String {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => return text,
            Err(_) => panic!("the stream did not end within {limit:?}:\n{text}"),
        }
    }
}

#[tokio::test]
async fn live_stream_follows_a_deployment_and_ends_with_it() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    let (session, _) = sign_in(&f.state, &f.token).await;
    let events = format!("{BASE}/web/live/events");
    // Nothing in progress: the current state, `done`, and the end.
    let resp = router(f.state.clone())
        .oneshot(get(&events, Some(&session)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let text = read_stream(resp.into_body(), std::time::Duration::from_secs(5)).await;
    assert!(text.contains("event: live\n"), "{text}");
    assert!(text.contains("event: done\ndata: finished"), "{text}");
    assert_inert(&text);

    // A running deployment: the page streams; the stream ends once it is ready.
    let id = deployment(&f, "web", DeploymentStatus::Pending).await;
    let page = send(&f.state, get(&format!("{BASE}/web"), Some(&session))).await;
    assert!(
        page.body
            .contains(r#"sse-connect="/orgs/default/projects/shop/components/web/live/events""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"sse-close="done""#));
    let resp = router(f.state.clone())
        .oneshot(get(&events, Some(&session)))
        .await
        .unwrap();
    let reader = tokio::spawn(read_stream(
        resp.into_body(),
        std::time::Duration::from_secs(20),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(
        !reader.is_finished(),
        "the stream must stay open while pending"
    );
    // The rollout's phase moves on: the stream shows it (done, current, to do).
    f.state
        .store()
        .set_deployment_phase(&id, berth_core::api::DeploymentPhase::Switching)
        .await
        .unwrap();
    f.state
        .store()
        .add_deployment_event(&id, "pulling <img src=x onerror=alert(1)>")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    f.state
        .store()
        .set_deployment_status(&id, DeploymentStatus::Ready, None)
        .await
        .unwrap();
    let text = reader.await.unwrap();
    let live: Vec<&str> = text.split("event: live\n").skip(1).collect();
    assert!(live.len() >= 2, "the first state and the final one: {text}");
    assert!(live[0].contains(">pending<"), "{text}");
    assert!(
        live[0].contains(r#"<li class="current" aria-current="step">Pulling the image</li>"#),
        "{text}"
    );
    let switching = live
        .iter()
        .find(|l| l.contains(r#"aria-current="step">Switching traffic<"#))
        .unwrap_or_else(|| panic!("no update showed the switching phase: {text}"));
    assert!(
        switching.contains(r#"<li class="done">Starting and probing</li>"#),
        "{switching}"
    );
    assert!(
        switching.contains(r#"<li class="todo">Draining the old version</li>"#),
        "{switching}"
    );
    assert!(
        !live.last().unwrap().contains("Rollout phases"),
        "a finished deployment shows no phases: {text}"
    );
    assert!(live.last().unwrap().contains(">ready<"), "{text}");
    assert!(live.last().unwrap().contains("pulling &#60;img"), "{text}");
    assert!(!text.contains("<img"), "{text}");
    assert!(
        text.trim_end().ends_with("event: done\ndata: finished"),
        "{text}"
    );

    // Signing out (revoking the token) ends a stream too.
    let id = deployment(&f, "web", DeploymentStatus::Pending).await;
    let (tok, secret) = f
        .state
        .store()
        .insert_token("admin", "stream", None)
        .await
        .unwrap();
    let (other, _) = sign_in(&f.state, &secret).await;
    let resp = router(f.state.clone())
        .oneshot(get(&events, Some(&other)))
        .await
        .unwrap();
    let reader = tokio::spawn(read_stream(
        resp.into_body(),
        std::time::Duration::from_secs(20),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    f.state.store().revoke_token(&tok.id).await.unwrap();
    let text = reader.await.unwrap();
    assert!(text.contains("event: done\ndata: signed out"), "{text}");
    let _ = id;
}

#[tokio::test]
async fn logs_say_why_there_are_none_and_the_stream_ends() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    let (session, _) = sign_in(&f.state, &f.token).await;
    let page = send(&f.state, get(&format!("{BASE}/web/logs"), Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("no engine in this test"),
        "{}",
        page.body
    );
    let page = send(
        &f.state,
        get(
            &format!("{BASE}/web/logs?env=development&follow=1"),
            Some(&session),
        ),
    )
    .await;
    assert!(page.body.contains(r#"sse-connect="/orgs/default/projects/shop/components/web/logs/stream?env=development""#), "{}", page.body);
    let resp = router(f.state.clone())
        .oneshot(get(
            &format!("{BASE}/web/logs/stream?env=development"),
            Some(&session),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = read_stream(resp.into_body(), std::time::Duration::from_secs(5)).await;
    assert!(
        text.contains(
            "event: line\ndata: <div class=\"log-line log-note\">[berth] no engine in this test"
        ),
        "{text}"
    );
    assert!(text.contains("event: done"), "{text}");
}

#[tokio::test]
async fn cross_site_posts_are_refused_even_without_a_session() {
    let f = fixture().await;
    let mut r = post_form("/orgs/default/projects", None, &[("name", "evil")]);
    r.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    r.headers_mut()
        .insert(header::HOST, "127.0.0.1:7400".parse().unwrap());
    let a = send(&f.state, r).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("CSRF"));
    let audit = f.state.store().list_audit(10).await.unwrap();
    assert!(
        audit.iter().any(|e| e.path == "/orgs/default/projects"
            && e.status == 403
            && e.actor == "anonymous"),
        "{audit:?}"
    );
    assert!(
        f.state
            .store()
            .list_projects("default")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Components in `project` (created with the registry of [`with_component`]): `n` of them,
/// named `c000`, `c001`, …
async fn many_components(f: &Fixture, project: &str, n: usize) {
    let store = f.state.store();
    if store
        .get_project("default", project)
        .await
        .unwrap()
        .is_none()
    {
        store
            .insert_project("default", project, project, "")
            .await
            .unwrap();
    }
    for i in 0..n {
        store
            .insert_component(
                "default",
                project,
                &NewComponent {
                    name: &format!("c{i:03}"),
                    display_name: &format!("Component {i}"),
                    description: "",
                    kind: ComponentType::Service,
                    registry: "local",
                    image: "127.0.0.1:5000/test/web:v1",
                    port: Some(8080),
                },
            )
            .await
            .unwrap();
    }
}

/// `project/component` of each component row of an overview page, in order.
fn overview_rows(body: &str) -> Vec<String> {
    body.split("href=\"/orgs/default/projects/")
        .skip(1)
        .filter_map(|rest| {
            let link = &rest[..rest.find('"').unwrap()];
            let (project, component) = link.split_once("/components/")?;
            Some(format!("{project}/{component}"))
        })
        .collect()
}

/// An attribute value as a browser reads it (askama writes `&` as `&#38;`).
fn unescape(attr: &str) -> String {
    attr.replace("&#38;", "&").replace("&amp;", "&")
}

/// The href of the link marked `rel="next"`, unescaped.
fn next_link(body: &str) -> Option<String> {
    let at = body.find("\" rel=\"next\"")?;
    let start = body[..at].rfind("href=\"")? + "href=\"".len();
    Some(unescape(&body[start..at]))
}

/// The overview shows 50 components a page in (project, name) order, grouped by project, with
/// a link to the next page: walking the links shows every component once. Empty projects show
/// on the page whose range they fall in; a project filter pages through that project only; a
/// link made for another list is refused.
#[tokio::test]
async fn the_overview_pages_through_the_components() {
    let f = fixture().await;
    // `shop` with its registry and one deployed component first (`web`, ready).
    with_component(&f, "web", ComponentType::Service).await;
    deployment(&f, "web", DeploymentStatus::Ready).await;
    for empty in ["alpha", "zeta"] {
        f.state
            .store()
            .insert_project("default", empty, empty, "")
            .await
            .unwrap();
    }
    many_components(&f, "beta", 60).await;
    many_components(&f, "gamma", 5).await;
    let (session, _) = sign_in(&f.state, &f.token).await;

    let mut pages = Vec::new();
    let mut url = Some("/orgs/default".to_owned());
    while let Some(u) = url {
        let page = send(&f.state, get(&u, Some(&session))).await;
        assert_eq!(page.status, StatusCode::OK, "{u}: {}", page.body);
        url = next_link(&page.body);
        pages.push(page.body);
        assert!(pages.len() <= 3, "more pages than expected");
    }
    assert_eq!(pages.len(), 2);
    let seen: Vec<String> = pages.iter().flat_map(|p| overview_rows(p)).collect();
    let mut expected: Vec<String> = (0..60)
        .map(|i| format!("beta/c{i:03}"))
        .chain((0..5).map(|i| format!("gamma/c{i:03}")))
        .collect();
    expected.push("shop/web".into());
    assert_eq!(seen, expected, "every component once, in order");
    assert_eq!(overview_rows(&pages[0]).len(), 50);
    // Page 1: alpha (empty, before beta) and the first 50 of beta; page 2: the rest of beta,
    // gamma, shop and zeta (empty, at the end).
    assert!(pages[0].contains("id=\"project-alpha\""));
    assert!(pages[0].contains("No components yet."));
    assert!(!pages[0].contains("id=\"project-gamma\""));
    assert!(!pages[1].contains("id=\"project-alpha\""));
    assert!(pages[1].contains("(continued)"));
    assert!(pages[1].contains("id=\"project-zeta\""));
    assert!(pages[1].contains("rel=\"first\""));
    assert!(!pages[0].contains("rel=\"first\""));
    // What runs where is shown for the page's components.
    let web = &pages[1][pages[1].find("id=\"project-shop\"").unwrap()..];
    let cell = &web[web.find("data-env=\"development\"").unwrap()..];
    assert!(
        cell[..cell.find("</td>").unwrap()].contains(">ready<"),
        "{cell}"
    );
    // Every project is offered by the filter.
    for p in ["alpha", "beta", "gamma", "shop", "zeta"] {
        assert!(pages[0].contains(&format!("<option value=\"{p}\"")), "{p}");
    }

    // One project: its components only, a page of them.
    let beta = send(&f.state, get("/orgs/default?project=beta", Some(&session))).await;
    assert_eq!(beta.status, StatusCode::OK);
    let rows = overview_rows(&beta.body);
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r.starts_with("beta/")), "{rows:?}");
    assert!(beta.body.contains("<option value=\"beta\" selected>"));
    let next = next_link(&beta.body).unwrap();
    assert!(next.contains("project=beta"), "{next}");
    let rest = send(&f.state, get(&next, Some(&session))).await;
    assert_eq!(
        overview_rows(&rest.body),
        (50..60)
            .map(|i| format!("beta/c{i:03}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(next_link(&rest.body), None);
    let gamma = send(&f.state, get("/orgs/default?project=gamma", Some(&session))).await;
    assert_eq!(overview_rows(&gamma.body).len(), 5);
    assert_eq!(next_link(&gamma.body), None);
    let alpha = send(&f.state, get("/orgs/default?project=alpha", Some(&session))).await;
    assert!(alpha.body.contains("No components yet."));

    // A project that does not exist; a link that is not a cursor; beta's cursor without the
    // filter (another list).
    let a = send(&f.state, get("/orgs/default?project=nope", Some(&session))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(&f.state, get("/orgs/default?after=garbage", Some(&session))).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let cursor = next.split("after=").nth(1).unwrap();
    let a = send(
        &f.state,
        get(&format!("/orgs/default?after={cursor}"), Some(&session)),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
}

/// Previous Images on the Deploy page: the 50 most recently deployed, then a link to the older
/// ones (which opens the Previous Images form); the audit log links to older entries.
#[tokio::test]
async fn previous_images_and_the_audit_log_link_to_older_pages() {
    let f = fixture().await;
    with_component(&f, "web", ComponentType::Service).await;
    for i in 0..55 {
        deployment_of(&f, "web", &format!("sha256:{i:064x}"), &format!("v{i}")).await;
    }
    let (session, _) = sign_in(&f.state, &f.token).await;
    let options = |body: &str| -> usize {
        let select = &body[body.find("id=\"deploy-previous\"").unwrap()..];
        select[..select.find("</select>").unwrap()]
            .matches("<option")
            .count()
    };
    let page = send(&f.state, get(&format!("{BASE}/web"), Some(&session))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(options(&page.body), 50);
    assert!(page.body.contains(">v54 @ "), "the newest first");
    let marker = "id=\"older-images\"";
    let at = page.body.find(marker).expect("a link to older images");
    let start = page.body[..at].rfind("href=\"").unwrap() + "href=\"".len();
    let older = unescape(&page.body[start..page.body[start..].find('"').unwrap() + start]);
    let older_page = send(&f.state, get(&older, Some(&session))).await;
    assert_eq!(older_page.status, StatusCode::OK, "{}", older_page.body);
    assert_eq!(options(&older_page.body), 5);
    assert!(older_page.body.contains(">v0 @ "));
    assert!(
        older_page
            .body
            .contains("<details id=\"previous-images\" open>")
    );
    assert!(older_page.body.contains("Most recent images"));
    assert!(!older_page.body.contains(marker));

    // The audit log: 100 entries a page by default, then a link to older ones.
    let rows: Vec<berth_store::AuditRow> = (0..150)
        .map(|n| berth_store::AuditRow {
            at: format!("2026-01-01T00:00:00.{n:03}Z"),
            actor: "admin/bootstrap".into(),
            method: "POST".into(),
            path: format!("/api/v1/test/{n}"),
            status: 201,
            request_id: format!("r{n}"),
            source: "127.0.0.1".into(),
        })
        .collect();
    f.state.store().insert_audit_rows(&rows).await.unwrap();
    let audit = send(
        &f.state,
        get("/orgs/default/settings/audit", Some(&session)),
    )
    .await;
    assert_eq!(audit.status, StatusCode::OK);
    assert_eq!(audit.body.matches("<time ").count(), 100);
    let older = next_link(&audit.body).expect("a link to older entries");
    let rest = send(&f.state, get(&older, Some(&session))).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.body);
    assert!(
        rest.body.contains("/api/v1/test/0<"),
        "the oldest row is on page 2"
    );
    assert!(!rest.body.contains("/api/v1/test/149<"));
    assert!(rest.body.contains("newest entries"));
}
