//! Console handler tests through `router(state).oneshot(…)`: sign-in and sessions, the CSRF
//! check on every POST, escaping of user content, inline form errors, routing next to the API.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use berth_store::Store;
use berth_store::keys::MasterKey;
use tower::ServiceExt;

use crate::{AppState, RuntimeConfig, router};

struct Fixture {
    state: AppState,
    token: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::load_or_create(dir.path()).unwrap();
    let store = Store::open_in_memory().await.unwrap().with_master_key(&key);
    let token = store.bootstrap().await.unwrap().unwrap().admin_token;
    let state = AppState::new(
        store,
        Err("no engine in this test".into()),
        RuntimeConfig {
            ssrf: berth_registry::SsrfPolicy::default(),
            ready_timeout: std::time::Duration::from_secs(5),
            drain: std::time::Duration::from_millis(10),
            public_url: "http://127.0.0.1:7400".into(),
            ci_rate_per_minute: 30,
            kubernetes: Default::default(),
        },
        Arc::new(crate::gateway::Gateway::new("http://127.0.0.1:7480".into())),
    );
    Fixture {
        state,
        token,
        _dir: dir,
    }
}

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

    let (session, csrf) = sign_in(&f.state, &f.token).await;
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
