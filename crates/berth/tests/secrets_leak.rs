//! Secrets never leak: the real server runs at trace level (`BERTH_LOG=trace`, every crate)
//! while the test plants distinct secrets — the test registry's password (a real deploy pulls
//! with it), a planted registry password and a docker-config credential (both refused by the
//! registry, so their error paths run), config secret values, a CI token and an API token —
//! and then uses them through the API (create, list, get, errors that echo fields), the CLI
//! (tables and `-o json`), the console's HTML pages (signed in with a session cookie) and the
//! CI webhook. Every capture — server stdout and trace log, every response body and header,
//! CLI stdout and stderr, console HTML — is searched for each secret, plain and base64 (at any
//! alignment, both alphabets, so a `user:password` basic header or a base64 JSON blob such as
//! `X-Registry-Auth` is found too).
//!
//! The only places a secret may appear are the answers whose job is to show it once: the
//! creation of a token shows its secret. Those captures are excluded for that one secret.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use common::{ServerProc, cli_stdin, http, json_out, ok, stderr, stdout};
use serde_json::{Value, json};

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for component in &self.0 {
            let Ok(out) = Command::new("podman")
                .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
                .arg(format!("label=berth.component={component}"))
                .output()
            else {
                return;
            };
            for name in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("podman").args(["rm", "-f", name]).output();
            }
        }
    }
}

/// One captured text and where it came from.
struct Capture {
    source: String,
    text: String,
}

#[derive(Default)]
struct Captures(Vec<Capture>);

impl Captures {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push(Capture {
            source: source.into(),
            text: text.into(),
        });
    }

    fn cli(&mut self, what: &str, o: &std::process::Output) {
        self.add(format!("CLI {what} (stdout)"), stdout(o));
        self.add(format!("CLI {what} (stderr)"), stderr(o));
    }

    /// Sends `req`, captures status line, headers and body; returns (status, body).
    fn send(&mut self, what: &str, req: reqwest::blocking::RequestBuilder) -> (u16, String) {
        let r = req
            .timeout(Duration::from_secs(60))
            .send()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        let body = r.text().unwrap_or_default();
        self.add(format!("{what} (headers)"), headers);
        self.add(format!("{what} (body)"), body.clone());
        (status, body)
    }
}

/// The forms a secret may take in a capture: itself, and the stable middle of its base64
/// encoding at each of the three alignments in both alphabets (found inside any longer base64
/// text, e.g. `base64(user:password)` or a base64 JSON header).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    for engine in [&STANDARD, &URL_SAFE] {
        for lead in 0..3usize {
            let mut bytes = vec![b'x'; lead];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            // Characters touching the lead or the unknown bytes after the secret vary.
            let skip = (lead * 4).div_ceil(3);
            let keep = enc.len().saturating_sub(skip + 4);
            if keep >= 8 && !out.contains(&enc[skip..skip + keep].to_owned()) {
                out.push(enc[skip..skip + keep].to_owned());
            }
        }
    }
    out
}

/// Every (secret name, form, capture source, context) hit, `allowed` captures excepted.
fn hits(captures: &Captures, secrets: &[(&str, &str, Vec<String>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, secret, allowed) in secrets {
        for form in forms(secret) {
            for c in &captures.0 {
                if allowed.iter().any(|a| a == &c.source) {
                    continue;
                }
                if let Some(at) = c.text.find(&form) {
                    let bytes = c.text.as_bytes();
                    let start = at.saturating_sub(80);
                    let end = (at + form.len() + 80).min(bytes.len());
                    found.push(format!(
                        "{name} ({form}) in {}: …{}…",
                        c.source,
                        String::from_utf8_lossy(&bytes[start..end])
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn base64_forms_are_found_at_any_alignment() {
    let secret = "planted-secret-value";
    for prefix in ["", "a", "ab", "abc", "user:"] {
        let text = format!("{prefix}{secret}-tail");
        for engine in [&STANDARD, &URL_SAFE] {
            let mut c = Captures::default();
            c.add("t", format!("Basic {}", engine.encode(&text)));
            assert_eq!(
                hits(&c, &[("s", secret, vec![])]).len(),
                1,
                "{prefix:?} not found"
            );
        }
    }
    let mut c = Captures::default();
    c.add("t", "nothing to see");
    assert!(hits(&c, &[("s", secret, vec![])]).is_empty());
}

/// Signs in to the console with `token`: the session cookie header value.
fn console_session(server: &ServerProc, captures: &mut Captures, token: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{}/login", server.url)).send().unwrap();
    let login_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("berth_login="))
        .expect("login cookie");
    let html = page.text().unwrap();
    let marker = r#"name="csrf" value=""#;
    let at = html.find(marker).expect("csrf field") + marker.len();
    let csrf = html[at..at + html[at..].find('"').unwrap()].to_owned();
    captures.add("console GET /login", html);
    let resp = client
        .post(format!("{}/login", server.url))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        // Tokens and CSRF values are URL-safe: no escaping needed.
        .body(format!("token={token}&csrf={csrf}&next=%2F"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "signing in");
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("berth_session="))
        .expect("session cookie");
    captures.add(
        "console POST /login (headers)",
        format!("{:?}", resp.headers()),
    );
    session
}

#[test]
fn planted_secrets_never_appear_in_responses_cli_output_console_or_trace_logs() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let pid = std::process::id();
    let web = format!("berth-it-leak-{pid}");
    let bad = format!("berth-it-leakbad-{pid}");
    let _cleanup = Cleanup(vec![web.clone(), bad.clone()]);
    // Distinct, recognizable, not guessable from anything else in the captures.
    let planted_registry = format!("planted-registry-pw-{pid}-Qx7");
    let planted_docker = format!("planted-dockercfg-pw-{pid}-Zr4");
    let planted_env = format!("planted-config-env-{pid}-Mk2");
    let planted_file = format!("planted-config-file-{pid}-Lp9");

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[
            ("BERTH_LOG", "trace"),
            ("BERTH_DRAIN_MS", "200"),
            ("BERTH_READY_TIMEOUT", "30"),
        ],
    );
    let admin = server.admin_token();
    let mut cap = Captures::default();
    let api = |path: &str| format!("{}/api/v1{path}", server.url);

    // Registries: the real one (basic auth, real password) through the CLI's stdin, one with a
    // planted wrong password on the same host, one with a planted docker config.
    let o = ok(cli_stdin(
        &server,
        &[
            "registry",
            "add",
            "local",
            "--host",
            &env.registry,
            "--auth",
            "basic",
            "--username",
            &env.user,
            "--password-stdin",
        ],
        &env.password,
    ));
    cap.cli("registry add local", &o);
    let (code, _) = cap.send(
        "POST registries wrongpw",
        http()
            .post(api("/orgs/default/registries"))
            .bearer_auth(&admin)
            .json(
                &json!({"name": "wrongpw", "host": env.registry, "authType": "basic",
                          "username": env.user, "password": planted_registry}),
            ),
    );
    assert_eq!(code, 201);
    let docker_config = json!({"auths": {env.registry.clone(): {
        "auth": STANDARD.encode(format!("dockercfg-user:{planted_docker}"))}}})
    .to_string();
    let (code, body) = cap.send(
        "POST registries dockercfg",
        http()
            .post(api("/orgs/default/registries"))
            .bearer_auth(&admin)
            .json(&json!({"name": "dockercfg", "host": env.registry,
                          "authType": "docker-config", "dockerConfig": docker_config})),
    );
    assert_eq!(code, 201, "{body}");
    // Error paths that echo fields: an invalid name next to a password, an invalid host.
    for (what, body) in [
        (
            "POST registries bad name",
            json!({"name": "Bad Name!", "host": env.registry, "authType": "basic",
                   "username": "u", "password": planted_registry}),
        ),
        (
            "POST registries bad host",
            json!({"name": "badhost", "host": "no host here",
                   "authType": "basic", "username": "u", "password": planted_registry}),
        ),
        (
            "POST registries anonymous with a password",
            json!({"name": "anon", "host": env.registry, "authType": "anonymous",
                   "password": planted_registry}),
        ),
        (
            "POST registries malformed docker config",
            json!({"name": "dc2", "host": env.registry, "authType": "docker-config",
                   "dockerConfig": format!("{{\"auths\": {{\"x\": {{\"auth\": \"{planted_docker}\"")}),
        ),
    ] {
        let (code, body) = cap.send(
            what,
            http()
                .post(api("/orgs/default/registries"))
                .bearer_auth(&admin)
                .json(&body),
        );
        assert!((400..500).contains(&code), "{what}: {code} {body}");
    }
    let (code, _) = cap.send(
        "POST registries malformed JSON",
        http()
            .post(api("/orgs/default/registries"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"x","password":"{planted_registry}""#)),
    );
    assert_eq!(code, 400);
    // Tests against the registry: the real password works, the planted ones are refused.
    for name in ["local", "wrongpw", "dockercfg"] {
        cap.send(
            &format!("POST registries/{name}/test"),
            http()
                .post(api(&format!("/orgs/default/registries/{name}/test")))
                .bearer_auth(&admin),
        );
        let o = server.cli(&["registry", "test", name]);
        cap.cli(&format!("registry test {name}"), &o);
    }
    for (what, path) in [
        ("GET registries", "/orgs/default/registries".to_owned()),
        (
            "GET registries/local",
            "/orgs/default/registries/local".into(),
        ),
        (
            "GET registries/wrongpw",
            "/orgs/default/registries/wrongpw".into(),
        ),
        (
            "GET registries/dockercfg",
            "/orgs/default/registries/dockercfg".into(),
        ),
        (
            "GET tags local",
            "/orgs/default/registries/local/tags?repository=test/web".into(),
        ),
        (
            "GET tags wrongpw",
            "/orgs/default/registries/wrongpw/tags?repository=test/web".into(),
        ),
    ] {
        cap.send(what, http().get(api(&path)).bearer_auth(&admin));
    }
    for args in [
        vec!["registry", "list"],
        vec!["registry", "list", "-o", "json"],
        vec!["registry", "get", "wrongpw", "-o", "json"],
        vec!["registry", "get", "dockercfg", "-o", "yaml"],
    ] {
        let o = server.cli(&args);
        cap.cli(&args.join(" "), &o);
    }

    // A component on the real registry, deployed for real (the engine pulls with the
    // password), and one on the planted password, whose deploy is refused by the registry.
    let o = ok(server.cli(&["project", "create", "shop"]));
    cap.cli("project create", &o);
    for (name, registry) in [(&web, "local"), (&bad, "wrongpw")] {
        let mut args = vec![
            "component",
            "create",
            name,
            "--project",
            "shop",
            "--type",
            "service",
            "--registry",
            registry,
            "--port",
            "8080",
        ];
        let image = format!("{}/test/web:v1", env.registry);
        args.extend(["--image", &image]);
        if registry == "wrongpw" {
            args.push("--no-verify");
        }
        let o = ok(server.cli(&args));
        cap.cli(&format!("component create {name}"), &o);
    }
    let o = ok(server.cli(&["deploy", "--project", "shop", "--component", &web, "--wait"]));
    cap.cli("deploy web", &o);
    let o = server.cli(&["deploy", "--project", "shop", "--component", &bad, "--wait"]);
    assert!(
        !o.status.success(),
        "deploying with a wrong password failed"
    );
    cap.cli("deploy bad", &o);

    // Config secrets, set through stdin and a file, then read back every way.
    let target = [
        "--project",
        "shop",
        "--component",
        &web,
        "--env",
        "development",
    ];
    let mut args = vec!["config", "set", "--secret", "API_KEY"];
    args.extend(target);
    let o = ok(cli_stdin(&server, &args, &format!("{planted_env}\n")));
    cap.cli("config set --secret", &o);
    let secret_file = dir.path().join("key.txt");
    std::fs::write(&secret_file, &planted_file).unwrap();
    let mut args = vec![
        "config",
        "set-file",
        "--secret",
        "--path",
        "/run/secrets/key",
        "--from-file",
        secret_file.to_str().unwrap(),
    ];
    args.extend(target);
    let o = ok(server.cli(&args));
    cap.cli("config set-file --secret", &o);
    for extra in [&[][..], &["-o", "json"][..], &["-o", "yaml"][..]] {
        let mut args = vec!["config", "list"];
        args.extend(target);
        args.extend(extra);
        let o = ok(server.cli(&args));
        cap.cli(&args.join(" "), &o);
    }
    let configs = api(&format!(
        "/orgs/default/projects/shop/components/{web}/environments/development/configs"
    ));
    cap.send("GET configs", http().get(&configs).bearer_auth(&admin));
    let (code, _) = cap.send(
        "PATCH configs invalid name",
        http().patch(&configs).bearer_auth(&admin).json(&json!({
            "set": [{"kind": "secret-env", "name": "not a name!", "value": planted_env}]})),
    );
    assert_eq!(code, 422);
    let (code, _) = cap.send(
        "PATCH configs unknown kind",
        http().patch(&configs).bearer_auth(&admin).json(&json!({
            "set": [{"kind": "nope", "name": "X", "value": planted_env}]})),
    );
    assert_eq!(code, 422);

    // An API token for the rest (its creation output is the one place it may appear).
    let o = ok(server.cli(&[
        "token", "create", "--user", "admin", "--name", "leak", "-o", "json",
    ]));
    let api_token = json_out(&o)["secret"].as_str().unwrap().to_owned();
    cap.cli("token create", &o);
    // A CI token, used on the webhook (its creation output likewise).
    let o = ok(server.cli(&[
        "ci",
        "token",
        "create",
        "--project",
        "shop",
        "--component",
        &web,
        "--name",
        "gh",
        "-o",
        "json",
    ]));
    let ci_token = json_out(&o)["secret"].as_str().unwrap().to_owned();
    cap.cli("ci token create", &o);
    let (code, body) = cap.send(
        "POST hooks/deploy",
        http()
            .post(format!("{}/api/v1/hooks/deploy", server.url))
            .bearer_auth(&ci_token)
            .json(&json!({"tag": "v1"})),
    );
    assert!(code == 200 || code == 202, "{code} {body}");
    let hook: Value = serde_json::from_str(&body).unwrap();
    if let Some(url) = hook["statusUrl"].as_str() {
        cap.send("GET hook status", http().get(url).bearer_auth(&ci_token));
    }
    cap.send(
        "POST hooks/deploy bad body",
        http()
            .post(format!("{}/api/v1/hooks/deploy", server.url))
            .bearer_auth(&ci_token)
            .json(&json!({"tag": "no such tag!", "digest": "sha256:zz"})),
    );
    cap.send(
        "POST hooks/deploy with the API token",
        http()
            .post(format!("{}/api/v1/hooks/deploy", server.url))
            .bearer_auth(&api_token)
            .json(&json!({"tag": "v1"})),
    );
    for (what, path) in [
        ("GET tokens", "/tokens".to_owned()),
        (
            "GET ci-tokens",
            format!("/orgs/default/projects/shop/components/{web}/ci-tokens"),
        ),
        (
            "GET components web",
            format!("/orgs/default/projects/shop/components/{web}"),
        ),
        (
            "GET deployments web",
            format!("/orgs/default/projects/shop/components/{web}/deployments"),
        ),
        (
            "GET deployments bad",
            format!("/orgs/default/projects/shop/components/{bad}/deployments"),
        ),
        ("GET audit", "/audit?limit=500".into()),
        ("GET whoami", "/whoami".into()),
        (
            "GET ci snippet",
            format!("/orgs/default/projects/shop/components/{web}/ci-snippets/github-actions"),
        ),
        (
            "GET logs",
            format!("/orgs/default/projects/shop/components/{web}/logs?env=development"),
        ),
    ] {
        cap.send(what, http().get(api(&path)).bearer_auth(&api_token));
    }
    for d in ["web", "bad"] {
        let name = if d == "web" { &web } else { &bad };
        let list: Value = serde_json::from_str(
            &cap.send(
                &format!("GET deployments {d} again"),
                http()
                    .get(api(&format!(
                        "/orgs/default/projects/shop/components/{name}/deployments"
                    )))
                    .bearer_auth(&api_token),
            )
            .1,
        )
        .unwrap();
        for dep in list["items"].as_array().into_iter().flatten() {
            let id = dep["id"].as_str().unwrap();
            cap.send(
                &format!("GET deployment {d} {id}"),
                http()
                    .get(api(&format!("/deployments/{id}")))
                    .bearer_auth(&api_token),
            );
            cap.send(
                &format!("GET deployment events {d} {id}"),
                http()
                    .get(api(&format!("/deployments/{id}/events")))
                    .bearer_auth(&api_token),
            );
        }
    }
    for args in [
        vec!["component", "get", &web, "--project", "shop", "-o", "json"],
        vec![
            "deployment",
            "list",
            "--project",
            "shop",
            "--component",
            &bad,
            "-o",
            "json",
        ],
        vec![
            "deployment",
            "list",
            "--project",
            "shop",
            "--component",
            &bad,
        ],
        vec!["token", "list", "-o", "json"],
        vec![
            "ci",
            "token",
            "list",
            "--project",
            "shop",
            "--component",
            &web,
            "-o",
            "json",
        ],
        vec!["audit", "list", "-o", "json"],
    ] {
        let o = server.cli(&args);
        cap.cli(&args.join(" "), &o);
    }

    // The console, signed in with the API token.
    let session = console_session(&server, &mut cap, &api_token);
    let component_page = format!("/orgs/default/projects/shop/components/{web}");
    for page in [
        "/".to_owned(),
        "/orgs/default".into(),
        "/orgs/default/settings/registries".into(),
        "/orgs/default/settings/tokens".into(),
        "/orgs/default/settings/audit".into(),
        component_page.clone(),
        format!("/orgs/default/projects/shop/components/{bad}"),
        format!("{component_page}/configs?env=development"),
        format!("{component_page}/ci"),
        format!("{component_page}/logs?env=development"),
    ] {
        let (code, body) = cap.send(
            &format!("console GET {page}"),
            http()
                .get(format!("{}{page}", server.url))
                .header("cookie", &session),
        );
        assert_eq!(code, 200, "console {page}: {body}");
    }

    // Give the server a moment to log what the calls above started (rollouts, pulls).
    std::thread::sleep(Duration::from_secs(2));
    let log = server.drain_logs().join("\n");
    assert!(
        log.contains("TRACE") || log.contains("\"level\":\"TRACE\""),
        "the server did not log at trace level"
    );
    cap.add("server stdout (banner)", server.stdout.clone());
    cap.add("server trace log", log);

    let secrets = [
        ("test registry password", env.password.as_str(), vec![]),
        (
            "planted registry password",
            planted_registry.as_str(),
            vec![],
        ),
        ("docker config password", planted_docker.as_str(), vec![]),
        ("config secret env", planted_env.as_str(), vec![]),
        ("config secret file", planted_file.as_str(), vec![]),
        (
            "CI token",
            ci_token.as_str(),
            vec!["CLI ci token create (stdout)".to_owned()],
        ),
        (
            "API token",
            api_token.as_str(),
            vec!["CLI token create (stdout)".to_owned()],
        ),
        (
            "admin token",
            admin.as_str(),
            // The first start prints it once, by design.
            vec!["server stdout (banner)".to_owned()],
        ),
    ];
    // The basic credentials as sent on the wire, too.
    let basic = format!("{}:{}", env.user, env.password);
    let mut all = secrets.to_vec();
    all.push(("test registry user:password", basic.as_str(), vec![]));
    let found = hits(&cap, &all);
    assert!(
        found.is_empty(),
        "{} leaks in {} captures:\n{}",
        found.len(),
        cap.0.len(),
        found.join("\n")
    );
}
