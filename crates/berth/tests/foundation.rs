//! The foundation end to end: the real `berth` binary, a temp data dir, real HTTP.
#![allow(clippy::print_stderr)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ServerProc, http, stderr, stdout};
use serde_json::{Value, json};

fn assert_error_shape(resp: reqwest::blocking::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let request_id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = resp.json().expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["requestId"], request_id.as_str(), "{body}");
    body
}

#[test]
fn first_start_bootstraps_and_restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProc::start(&data);
    let token = server.admin_token();
    assert!(token.starts_with("berth_pat_"), "{token}");
    assert!(
        server.stdout.contains(&token),
        "first start prints the admin token: {:?}",
        server.stdout
    );
    for file in ["admin-token", "master.key"] {
        let mode = std::fs::metadata(data.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o077, 0, "data dir is private");

    let out = server.cli(&["project", "create", "shop", "--description", "the shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["project", "list", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list["items"][0]["name"], "shop");
    assert_eq!(list["items"][0]["description"], "the shop");

    let envs: Value =
        serde_json::from_str(&stdout(&server.cli(&["env", "list", "-o", "json"]))).unwrap();
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["development", "production"]);

    let status = server.sigterm();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    let logs = server.drain_logs().join("\n");
    assert!(
        !logs.contains(&token),
        "the admin token never reaches the logs"
    );

    let server = ServerProc::start(&data);
    assert!(
        !server.stdout.contains("berth_pat_"),
        "second start does not print a token: {:?}",
        server.stdout
    );
    assert_eq!(server.admin_token(), token, "the token file is kept");
    let out = server.cli(&["project", "get", "shop", "-o", "yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("name: shop"), "{}", stdout(&out));
}

#[test]
fn authentication_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let c = http();
    let url = format!("{}/api/v1/orgs/default/projects", server.url);

    let missing = assert_error_shape(c.get(&url).send().unwrap(), 401, "unauthorized");
    let wrong = assert_error_shape(
        c.get(&url)
            .bearer_auth("berth_pat_0000000000000000000000000000000000000000")
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    let garbage = assert_error_shape(
        c.get(&url)
            .header("authorization", "Basic Zm9vOmJhcg==")
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    // One identical message whatever was wrong: no oracle for token guessing.
    assert_eq!(missing["error"]["message"], wrong["error"]["message"]);
    assert_eq!(missing["error"]["message"], garbage["error"]["message"]);

    // A viewer reads but cannot write; a developer writes projects but not users.
    let out = server.cli(&["user", "create", "vera", "--role", "viewer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["user", "create", "dave", "--role", "developer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&[
        "token", "create", "--user", "vera", "--name", "laptop", "-o", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let viewer = created["secret"].as_str().unwrap().to_owned();
    assert!(viewer.starts_with("berth_pat_"));
    let out = server.cli(&[
        "token", "create", "--user", "dave", "--name", "ci", "-o", "json",
    ]);
    let dev: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let dev = dev["secret"].as_str().unwrap().to_owned();

    let resp = c.get(&url).bearer_auth(&viewer).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body = assert_error_shape(
        c.post(&url)
            .bearer_auth(&viewer)
            .json(&json!({"name": "nope"}))
            .send()
            .unwrap(),
        403,
        "forbidden",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("developer"),
        "{body}"
    );
    let resp = c
        .post(&url)
        .bearer_auth(&dev)
        .json(&json!({"name": "devs"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_error_shape(
        c.post(format!("{}/api/v1/users", server.url))
            .bearer_auth(&dev)
            .json(&json!({"name": "eve", "role": "admin"}))
            .send()
            .unwrap(),
        403,
        "forbidden",
    );

    // A token never outlives the one that makes it: dave's 2-day token mints only tokens
    // that expire with it at the latest (asked for none: its expiry).
    let short: Value = c
        .post(format!("{}/api/v1/tokens", server.url))
        .bearer_auth(&dev)
        .json(&json!({"user": "dave", "name": "short", "expiresInDays": 2}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let short_secret = short["secret"].as_str().unwrap().to_owned();
    let short_expires = short["expiresAt"].as_str().unwrap().to_owned();
    let body = assert_error_shape(
        c.post(format!("{}/api/v1/tokens", server.url))
            .bearer_auth(&short_secret)
            .json(&json!({"user": "dave", "name": "longer", "expiresInDays": 30}))
            .send()
            .unwrap(),
        422,
        "validation_failed",
    );
    assert_eq!(body["error"]["field"], "expiresInDays", "{body}");
    let inherited: Value = c
        .post(format!("{}/api/v1/tokens", server.url))
        .bearer_auth(&short_secret)
        .json(&json!({"user": "dave", "name": "forever"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        inherited["expiresAt"].as_str(),
        Some(short_expires.as_str()),
        "{inherited}"
    );

    // Listing never shows secrets; revoking makes the token useless at once.
    let out = server.cli(&["token", "list", "-o", "json"]);
    let listed = stdout(&out);
    assert!(
        !listed.contains(&viewer) && !listed.contains(&dev),
        "{listed}"
    );
    let id = created["id"].as_str().unwrap();
    let out = server.cli(&["token", "revoke", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_error_shape(
        c.get(&url).bearer_auth(&viewer).send().unwrap(),
        401,
        "unauthorized",
    );

    // The CLI says what to do when it has no token.
    let out = server.cli_env(&["project", "list"], &[("BERTH_DATA_DIR", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("BERTH_TOKEN"), "{}", stderr(&out));

    // `berth login` saves a token that later commands use.
    let mut login = std::process::Command::new(common::BIN)
        .args(["login", "--token-stdin"])
        .env("BERTH_SERVER", &server.url)
        .env("BERTH_DATA_DIR", "/nonexistent")
        .env("XDG_CONFIG_HOME", dir.path().join("cfg"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(dev.as_bytes())
        .unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = dir.path().join("cfg/berth/credentials.json");
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = server.cli_env(
        &["whoami", "-o", "json"],
        &[
            ("BERTH_DATA_DIR", "/nonexistent"),
            ("XDG_CONFIG_HOME", dir.path().join("cfg").to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let who: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(who["user"], "dave");
    assert_eq!(who["role"], "developer");
}

#[test]
fn bad_input_gets_precise_4xx_never_500() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let c = http();
    let token = server.admin_token();
    let projects = format!("{}/api/v1/orgs/default/projects", server.url);
    let post = |body: &str| {
        c.post(&projects)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap()
    };

    assert_eq!(post(r#"{"name":"shop"}"#).status(), 201);
    let body = assert_error_shape(post(r#"{"name":"shop"}"#), 409, "conflict");
    assert_eq!(body["error"]["field"], "name");

    let body = assert_error_shape(post(r#"{"name":"Bad_Name"}"#), 422, "validation_failed");
    assert_eq!(body["error"]["field"], "name");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("^[a-z][a-z0-9-]*$"),
        "the rule is named: {body}"
    );
    let body = assert_error_shape(
        post(&format!(r#"{{"name":"{}"}}"#, "a".repeat(41))),
        422,
        "validation_failed",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 40"),
        "{body}"
    );

    let body = assert_error_shape(
        post(r#"{"name":"ok","colour":"red"}"#),
        422,
        "validation_failed",
    );
    assert_eq!(body["error"]["field"], "colour");
    let body = assert_error_shape(post(r#"{"displayName":"x"}"#), 422, "validation_failed");
    assert_eq!(body["error"]["field"], "name");
    let body = assert_error_shape(
        post(r#"{"name":"ok","displayName":7}"#),
        422,
        "validation_failed",
    );
    assert_eq!(body["error"]["field"], "displayName");
    assert_error_shape(post(r#"{"name":"#), 400, "bad_request");

    let big = format!(
        r#"{{"name":"ok","description":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    assert_error_shape(post(&big), 413, "payload_too_large");

    let resp = c
        .post(&projects)
        .bearer_auth(&token)
        .body(r#"{"name":"ok"}"#)
        .send()
        .unwrap();
    assert_error_shape(resp, 415, "unsupported_media_type");
    let resp = c
        .post(&projects)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"name":"ok"}"#)
        .send()
        .unwrap();
    assert_error_shape(resp, 415, "unsupported_media_type");

    let resp = c
        .get(format!("{projects}/nope"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let body = assert_error_shape(resp, 404, "not_found");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nope"),
        "{body}"
    );
    let resp = c
        .get(format!("{}/api/v1/orgs/ghost/projects", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_error_shape(resp, 404, "not_found");
    let resp = c
        .get(format!("{}/api/v1/nothing-here", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_error_shape(resp, 404, "not_found");
    let resp = c.put(&projects).bearer_auth(&token).send().unwrap();
    assert_error_shape(resp, 405, "method_not_allowed");

    // Names are immutable; display names are checked.
    let resp = c
        .patch(format!("{projects}/shop"))
        .bearer_auth(&token)
        .json(&json!({"name": "renamed"}))
        .send()
        .unwrap();
    let body = assert_error_shape(resp, 422, "validation_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("immutable"),
        "{body}"
    );
    let resp = c
        .patch(format!("{projects}/shop"))
        .bearer_auth(&token)
        .json(&json!({"displayName": "   "}))
        .send()
        .unwrap();
    assert_error_shape(resp, 422, "validation_failed");
    let resp = c
        .patch(format!("{projects}/shop"))
        .bearer_auth(&token)
        .json(&json!({"displayName": "The Shop"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Deleting an organization with projects is refused and changes nothing.
    let resp = c
        .delete(format!("{}/api/v1/orgs/default", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let body = assert_error_shape(resp, 409, "conflict");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("shop"),
        "{body}"
    );
    let resp = c
        .get(format!("{projects}/shop"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let project: Value = resp.json().unwrap();
    assert_eq!(project["displayName"], "The Shop");

    // Query strings are checked too.
    let resp = c
        .get(format!("{}/api/v1/audit?limit=0", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_error_shape(resp, 422, "validation_failed");

    // Every mutating call above is in the audit log with its result, newest first.
    let resp = c
        .get(format!("{}/api/v1/audit?limit=1000", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let audit: Value = resp.json().unwrap();
    let rows = audit["items"].as_array().unwrap();
    let statuses: Vec<i64> = rows
        .iter()
        .filter(|r| r["path"] == "/api/v1/orgs/default/projects" && r["method"] == "POST")
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [415, 415, 413, 400, 422, 422, 422, 422, 422, 409, 201]
    );
    assert!(rows.iter().all(|r| r["actor"] == "admin/bootstrap"));
    assert!(rows.iter().all(|r| r["source"] == "127.0.0.1"));
    let logs = server.drain_logs().join("\n");
    assert!(
        !logs.contains("\"status\":500") && !logs.contains(" 500 "),
        "no 500 in: {logs}"
    );
}

#[test]
fn health_readiness_openapi_and_cli_basics() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let c = http();
    let health: Value = c
        .get(format!("{}/healthz", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");

    let resp = c.get(format!("{}/readyz", server.url)).send().unwrap();
    let code = resp.status().as_u16();
    let ready: Value = resp.json().unwrap();
    assert_eq!(ready["store"]["ok"], true, "{ready}");
    if std::env::var("BERTH_REQUIRE_ENGINE").as_deref() == Ok("1") {
        assert_eq!(code, 200, "{ready}");
        assert_eq!(ready["engine"]["ok"], true, "{ready}");
    } else if code != 200 {
        eprintln!("skipping the engine part of /readyz: no engine here: {ready}");
    }

    // An engine that is not there: /readyz says so with 503 and the reason.
    let dir2 = tempfile::tempdir().unwrap();
    let gone = ServerProc::start_with(
        dir2.path(),
        &[("BERTH_ENGINE", "unix:///nonexistent/engine.sock")],
    );
    let resp = c.get(format!("{}/readyz", gone.url)).send().unwrap();
    assert_eq!(resp.status(), 503);
    let ready: Value = resp.json().unwrap();
    assert_eq!(ready["status"], "not-ready");
    assert_eq!(ready["engine"]["ok"], false);
    assert!(
        ready["engine"]["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/engine.sock"),
        "{ready}"
    );

    let doc: Value = c
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/orgs/{org}/projects", "/api/v1/tokens", "/readyz"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["schemas"].get("ApiError").is_some());

    let out = server.cli(&["--version"]);
    assert!(stdout(&out).starts_with("berth "), "{}", stdout(&out));
    let out = server.cli(&["completions", "bash"]);
    assert!(out.status.success() && stdout(&out).contains("berth"));

    // Orgs: create, get, table output, delete needs --yes.
    let out = server.cli(&["org", "create", "acme", "--display-name", "Acme Inc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["org", "list"]);
    let table = stdout(&out);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("acme") && table.contains("Acme Inc"),
        "{table}"
    );
    let out = server.cli(&["org", "delete", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--yes"));
    let out = server.cli(&["org", "delete", "acme", "--yes", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["org", "get", "acme", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(err["error"]["code"], "not_found");

    // The CLI reports an unreachable server clearly.
    let out = server.cli_env(
        &["project", "list"],
        &[("BERTH_SERVER", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the berth server"),
        "{}",
        stderr(&out)
    );
}

/// The human log format writes plain text when stderr is not a terminal (a file, a pipe,
/// journald): no colour escape codes in the lines; and the last lines get out at exit.
#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_end_with_the_exit() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::serve_command(dir.path(), "pretty")
        .env("BERTH_ENGINE", "unix:///nonexistent/berth-test.sock")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    for line in (&mut stderr).lines().map_while(Result::ok) {
        let listening = line.contains("listening");
        lines.push(line);
        if listening || lines.len() > 200 {
            break;
        }
    }
    // SIGTERM: the lines logged while stopping reach the pipe before the process ends (they
    // are written in batches, and the last batch must not be lost).
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    lines.extend(stderr.lines().map_while(Result::ok));
    assert!(child.wait().unwrap().success());
    assert!(
        lines.iter().any(|l| l.contains("listening")),
        "no listening line: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("stopped")),
        "a line says it stopped: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in piped logs: {lines:?}"
    );
}
