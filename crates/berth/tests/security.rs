//! Security refusals through the real server (no engine needed): path traversal in schema
//! names and config mount paths, body limits per route family, and the SSRF guard on registry
//! traffic (metadata and link-local always, loopback when the operator blocks it).
//! The CI token's cross-component 403 is in ci.rs, the secret-leak test in secrets_leak.rs,
//! the audit row of every mutating operation in berth-server's api/tests.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{ServerProc, http};
use serde_json::{Value, json};

/// Sends a raw HTTP/1.1 request (no client-side path normalization): (status, body).
fn raw(server: &ServerProc, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Project `shop` and component `web` on an unreachable registry (created unverified).
fn component(server: &ServerProc, admin: &str) {
    let api = |p: &str| format!("{}/api/v1{p}", server.url);
    let post = |p: &str, body: Value| {
        let r = http()
            .post(api(p))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{p}: {}", r.text().unwrap());
    };
    post("/orgs/default/projects", json!({"name": "shop"}));
    post(
        "/orgs/default/registries",
        json!({"name": "ext", "host": "registry.example", "authType": "anonymous"}),
    );
    post(
        "/orgs/default/projects/shop/components",
        json!({"name": "web", "type": "service", "registry": "ext",
               "image": "registry.example/web:v1", "port": 8080, "noVerify": true}),
    );
}

#[test]
fn path_traversal_in_schema_names_and_mount_paths_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let admin = server.admin_token();
    component(&server, &admin);
    let base = "/api/v1/orgs/default/projects/shop/components/web";
    let schema = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n";

    // A good name is stored: the refusals below are about the name, nothing else.
    let (code, body) = raw(
        &server,
        "PUT",
        &format!("{base}/schemas/api/openapi.yaml"),
        &admin,
        schema,
    );
    assert_eq!(code, 204, "{body}");
    for name in [
        "../escape.yaml",
        "api/../../escape.yaml",
        "..%2F..%2Fescape.yaml",
        "%2E%2E/escape.yaml",
        "./openapi.yaml",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "api/./x.yaml",
        "api//x.yaml",
        "a%00b.yaml",
        "a%5C..%5Cb.yaml",
    ] {
        let (code, body) = raw(
            &server,
            "PUT",
            &format!("{base}/schemas/{name}"),
            &admin,
            schema,
        );
        assert!(
            code == 422 || code == 404 || code == 400,
            "schema name {name}: {code} {body}"
        );
        if code == 422 {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["field"], "name", "{name}: {body}");
        }
    }
    let endpoints: Value = http()
        .get(format!("{}{base}/endpoints", server.url))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        endpoints["schemas"],
        json!(["api/openapi.yaml"]),
        "{endpoints}"
    );
    // Nothing was written outside the data dir's database either.
    assert!(!dir.path().join("escape.yaml").exists());
    assert!(!dir.path().parent().unwrap().join("escape.yaml").exists());

    // Mount paths of config files and secret files.
    let configs = format!("{}{base}/environments/development/configs", server.url);
    for kind in ["file", "secret-file"] {
        for path in [
            "/etc/../passwd",
            "/app/./x",
            "relative/x",
            "/proc/self/environ",
            "/sys/kernel/x",
            "/dev/sda",
            "/run/secrets/kubernetes.io/serviceaccount/token",
            "/a//b",
            "/",
            "/x\u{0}y",
        ] {
            let r = http()
                .patch(&configs)
                .bearer_auth(&admin)
                .json(&json!({"set": [{"kind": kind, "name": path, "value": "x"}], "apply": false}))
                .send()
                .unwrap();
            let code = r.status().as_u16();
            let body: Value = r.json().unwrap();
            assert_eq!(code, 422, "{kind} {path:?}: {body}");
            let field = body["error"]["field"].as_str().unwrap_or_default();
            assert!(field.contains("name"), "{kind} {path:?}: {body}");
        }
    }
    let listed: Value = http()
        .get(&configs)
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["items"], json!([]), "{listed}");
}

#[test]
fn body_limits_hold_on_every_route_family() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let admin = server.admin_token();
    component(&server, &admin);
    let mib = 1024 * 1024;
    let send = |method: reqwest::Method, url: String, content_type: &str, body: String| {
        let r = http()
            .request(method, url)
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let api = |p: &str| format!("{}/api/v1{p}", server.url);
    let json_of = |n: usize| format!(r#"{{"name":"ok","description":"{}"}}"#, "x".repeat(n));

    // The API's 1 MiB.
    let (code, body) = send(
        reqwest::Method::POST,
        api("/orgs/default/projects"),
        "application/json",
        json_of(mib + 10),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    // Plain-text bodies (schema uploads) too, in the same JSON error shape.
    let (code, body) = send(
        reqwest::Method::PUT,
        api("/orgs/default/projects/shop/components/web/schemas/big.yaml"),
        "text/plain",
        "x".repeat(mib + 10),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    // A schema that is not UTF-8 text, and a path segment that does not decode to UTF-8: 4xx
    // answers in the JSON error shape, not axum's plain text.
    let r = http()
        .put(api(
            "/orgs/default/projects/shop/components/web/schemas/bin.yaml",
        ))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body(vec![b'a', 0xff, 0xfe, b'\n'])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["field"], "content", "{v}");
    let r = http()
        .get(api("/orgs/%FF/projects"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["field"], "path", "{v}");
    // Unauthenticated routes: the CI webhook and registry notifications.
    let (code, _) = send(
        reqwest::Method::POST,
        api("/hooks/deploy"),
        "application/json",
        json_of(mib + 10),
    );
    assert!(code == 413 || code == 401, "{code}");
    let (code, _) = send(
        reqwest::Method::POST,
        api("/registry-notifications/default/ext"),
        "application/json",
        json_of(mib + 10),
    );
    assert!(code == 413 || code == 401, "{code}");
    // Config changes get 3 MiB: 2 MiB passes the limit (refused for its content, not its size)…
    let configs =
        api("/orgs/default/projects/shop/components/web/environments/development/configs");
    let change = |n: usize| {
        json!({"set": [{"kind": "file", "name": "/etc/big", "value": "x".repeat(n)}], "apply": false})
            .to_string()
    };
    let (code, body) = send(
        reqwest::Method::PATCH,
        configs.clone(),
        "application/json",
        change(2 * mib),
    );
    assert_ne!(code, 413, "{body}");
    assert!(code < 500, "{code} {body}");
    // …4 MiB does not.
    let (code, body) = send(
        reqwest::Method::PATCH,
        configs,
        "application/json",
        change(4 * mib),
    );
    assert_eq!(code, 413, "{body}");
    // The console's forms.
    let (code, _) = send(
        reqwest::Method::POST,
        format!("{}/login", server.url),
        "application/x-www-form-urlencoded",
        format!("token={}", "x".repeat(2 * mib)),
    );
    assert_eq!(code, 413);
    // The server is still fine.
    let r = http()
        .get(api("/whoami"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// `registry test NAME` through the API: (status, message).
fn test_registry(server: &ServerProc, admin: &str, host: &str) -> (u16, String) {
    let name = format!(
        "r{}",
        host.len() + host.bytes().map(usize::from).sum::<usize>()
    );
    let r = http()
        .post(format!("{}/api/v1/orgs/default/registries", server.url))
        .bearer_auth(admin)
        .json(&json!({"name": name, "host": host, "authType": "anonymous", "insecure": true}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let created: Value = r.json().unwrap();
    if status != 201 {
        return (status, created.to_string());
    }
    let r = http()
        .post(format!(
            "{}/api/v1/orgs/default/registries/{name}/test",
            server.url
        ))
        .bearer_auth(admin)
        .json(&json!({}))
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn ssrf_guard_refuses_metadata_link_local_and_blocked_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let admin = server.admin_token();
    // Always refused: cloud metadata by address and by name, link-local, IPv4-mapped.
    for (host, why) in [
        ("169.254.169.254", "link-local"),
        ("169.254.169.254:80", "link-local"),
        ("metadata.google.internal", "metadata"),
        ("[::ffff:a9fe:a9fe]", "link-local"), // 169.254.169.254, IPv4-mapped
        ("[fe80::1]:5000", "link-local"),
    ] {
        let (code, body) = test_registry(&server, &admin, host);
        assert!(
            body.contains(why),
            "{host}: expected a refusal naming {why}, got {code} {body}"
        );
        assert!(
            code < 500 || body.contains("refus"),
            "{host}: {code} {body}"
        );
    }
    drop(server);

    // Loopback when blocked: the test registry's address is refused before any connection.
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(dir.path(), &[("BERTH_REGISTRY_BLOCK_LOOPBACK", "true")]);
    let admin = server.admin_token();
    for host in ["127.0.0.1:5000", "localhost:5000", "[::1]:5000"] {
        let (code, body) = test_registry(&server, &admin, host);
        assert!(body.contains("loopback"), "{host}: {code} {body}");
    }
}
