//! External CI end to end on the real engine and registry: a component-bound CI token, the
//! deploy webhook driven by the curl snippet after a new tag is pushed (development only,
//! production untouched), the answers of the webhook contract (200 for a repeated digest, 401
//! with one body, 403 for another repository, 404, 422, 429, 502, idempotency keys), the status
//! URL, snippets, revocation and the audit trail.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, ServerProc, add_local_registry, get_body, http, json_out, ok, stderr, stdout};
use serde_json::{Value, json};

fn containers(component: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=berth.component={component}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for component in &self.0 {
            for name in containers(component) {
                let _ = Command::new("podman").args(["rm", "-f", &name]).output();
            }
        }
    }
}

/// An answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// The error without its request id: what must be identical across 401s.
    fn error(&self) -> (u16, Value, Value, Value) {
        (
            self.status,
            self.body["error"]["code"].clone(),
            self.body["error"]["message"].clone(),
            self.body["error"]["field"].clone(),
        )
    }
}

fn send(req: reqwest::blocking::RequestBuilder) -> Answer {
    let r = req.timeout(Duration::from_secs(60)).send().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// POST /api/v1/hooks/deploy with a raw body.
fn hook_raw(server: &ServerProc, token: Option<&str>, body: &str) -> Answer {
    let mut req = http()
        .post(format!("{}/api/v1/hooks/deploy", server.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(req)
}

fn hook(server: &ServerProc, token: &str, body: Value) -> Answer {
    hook_raw(server, Some(token), &body.to_string())
}

fn get_with(url: &str, token: Option<&str>) -> Answer {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(req)
}

/// Polls a status URL with the CI token until the deployment is final.
fn settle(status_url: &str, token: &str) -> Value {
    for _ in 0..600 {
        let a = get_with(status_url, Some(token));
        assert_eq!(a.status, 200, "{}", a.body);
        if matches!(
            a.body["status"].as_str(),
            Some("ready" | "failed" | "rolled-back" | "superseded")
        ) {
            return a.body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("deployment at {status_url} did not settle");
}

fn deployments(server: &ServerProc, component: &str, env: &str) -> Vec<Value> {
    json_out(&ok(server.cli(&[
        "deployment",
        "list",
        "--project",
        "shop",
        "--component",
        component,
        "--env",
        env,
        "-o",
        "json",
    ])))["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn create_token(server: &ServerProc, component: &str, name: &str) -> String {
    let created = json_out(&ok(server.cli(&[
        "ci",
        "token",
        "create",
        "--project",
        "shop",
        "--component",
        component,
        "--name",
        name,
        "-o",
        "json",
    ])));
    created["secret"].as_str().unwrap().to_owned()
}

#[test]
fn ci_token_webhook_snippets_end_to_end() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let pid = std::process::id();
    let a = format!("berth-it-ci-{pid}");
    let b = format!("berth-it-cib-{pid}");
    let dead = format!("berth-it-cic-{pid}");
    let _cleanup = Cleanup(vec![a.clone(), b.clone(), dead.clone()]);
    let repo_a = format!("{}/test/ci-{pid}", env.registry);
    let repo_b = format!("{}/test/cib-{pid}", env.registry);
    env.copy_image("test/web:v1", &format!("{repo_a}:v1"));
    env.copy_image("test/web:v1", &format!("{repo_b}:v1"));

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[("BERTH_DRAIN_MS", "500"), ("BERTH_READY_TIMEOUT", "30")],
    );
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));
    for (name, repo) in [(&a, &repo_a), (&b, &repo_b)] {
        ok(server.cli(&[
            "component",
            "create",
            name,
            "--project",
            "shop",
            "--type",
            "service",
            "--registry",
            "local",
            "--image",
            &format!("{repo}:v1"),
            "--port",
            "8080",
        ]));
    }
    // v1 runs in development and production.
    ok(server.cli(&["deploy", "--project", "shop", "--component", &a, "--wait"]));
    ok(server.cli(&[
        "promote",
        "--project",
        "shop",
        "--component",
        &a,
        "--from",
        "development",
        "--to",
        "production",
        "--wait",
    ]));
    let dev_url = format!("{}/default/shop/{a}/development/", server.gateway);
    let prod_url = format!("{}/default/shop/{a}/production/", server.gateway);
    assert_eq!(get_body(&prod_url).1.trim(), "hello from v1");
    let prod_before = deployments(&server, &a, "production");

    // Tokens: the secret once (JSON: `secret`; table: one line on stdout), a listing without it.
    let token = create_token(&server, &a, "github");
    assert!(
        token.starts_with("berth_ci_") && token.len() == 49,
        "{token}"
    );
    let table = ok(server.cli(&[
        "ci",
        "token",
        "create",
        "--project",
        "shop",
        "--component",
        &a,
        "--name",
        "laptop",
        "--expires-in-days",
        "30",
    ]));
    assert!(
        stdout(&table).trim().starts_with("berth_ci_"),
        "{}",
        stdout(&table)
    );
    assert!(stderr(&table).contains("shown once"), "{}", stderr(&table));
    let listed = ok(server.cli(&[
        "ci",
        "token",
        "list",
        "--project",
        "shop",
        "--component",
        &a,
        "-o",
        "json",
    ]));
    assert!(
        !stdout(&listed).contains(&token),
        "the secret is never listed"
    );
    let items = json_out(&listed)["items"].as_array().unwrap().clone();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["laptop", "github"]);
    assert_eq!(items[1]["prefix"].as_str().unwrap(), &token[..17]);
    assert!(items[0]["expiresAt"].is_string() && items[1]["expiresAt"].is_null());
    assert_eq!(items[1]["createdBy"], "admin/bootstrap");
    // A CI token made with a short-lived personal token expires with it at the latest.
    let short: Value = http()
        .post(format!("{}/api/v1/tokens", server.url))
        .bearer_auth(server.admin_token())
        .json(&serde_json::json!({"user": "admin", "name": "short", "expiresInDays": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ci_tokens = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{a}/ci-tokens",
        server.url
    );
    let made = http()
        .post(&ci_tokens)
        .bearer_auth(short["secret"].as_str().unwrap())
        .json(&serde_json::json!({"name": "from-short"}))
        .send()
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let made: Value = made.json().unwrap();
    assert_eq!(made["expiresAt"], short["expiresAt"], "{made}");
    let refused = http()
        .post(&ci_tokens)
        .bearer_auth(short["secret"].as_str().unwrap())
        .json(&serde_json::json!({"name": "longer", "expiresInDays": 30}))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    for (args, code, field) in [
        (vec!["--name", "github"], "conflict", "name"),
        (vec!["--name", "Bad Name"], "validation_failed", "name"),
        (
            vec!["--name", "zero", "--expires-in-days", "0"],
            "validation_failed",
            "expiresInDays",
        ),
    ] {
        let mut full = vec![
            "ci",
            "token",
            "create",
            "--project",
            "shop",
            "--component",
            &a,
            "-o",
            "json",
        ];
        full.extend(args);
        let out = server.cli(&full);
        assert_eq!(out.status.code(), Some(1));
        let err = json_out(&out);
        assert_eq!(
            (
                err["error"]["code"].as_str(),
                err["error"]["field"].as_str()
            ),
            (Some(code), Some(field)),
            "{err}"
        );
    }

    // CI pushes v2, then runs the curl snippet with bash.
    env.copy_image("test/web:v2", &format!("{repo_a}:v2"));
    let v2_digest = env.skopeo_digest(&format!("{repo_a}:v2"));
    let snippet = stdout(&ok(server.cli(&[
        "ci",
        "snippet",
        "--project",
        "shop",
        "--component",
        &a,
        "--kind",
        "curl",
    ])));
    let hook_url = format!("{}/api/v1/hooks/deploy", server.url);
    assert!(snippet.contains(&hook_url), "{snippet}");
    assert!(!snippet.contains(&token), "snippets never hold the token");
    let script = dir.path().join("deploy.sh");
    std::fs::write(&script, &snippet).unwrap();
    let run = Command::new("bash")
        .arg(&script)
        .env("BERTH_TOKEN", &token)
        .env("IMAGE", format!("{repo_a}:v2"))
        .output()
        .unwrap();
    let run_out = stdout(&run);
    assert!(
        run.status.success(),
        "stdout: {run_out}\nstderr: {}",
        stderr(&run)
    );
    assert!(run_out.contains("deployment status: ready"), "{run_out}");
    let accepted: Value = serde_json::from_str(run_out.lines().next().unwrap()).unwrap();
    assert_eq!(accepted["environment"], "development", "{accepted}");
    assert_eq!(accepted["digest"], v2_digest.as_str());
    assert_eq!(accepted["created"], true);
    let deployment_id = accepted["deploymentId"].as_str().unwrap().to_owned();
    let status_url = accepted["statusUrl"].as_str().unwrap().to_owned();
    assert_eq!(
        status_url,
        format!("{}/api/v1/hooks/deployments/{deployment_id}", server.url)
    );

    // Deployed to development only; production untouched.
    assert_eq!(get_body(&dev_url).1.trim(), "hello from v2");
    assert_eq!(get_body(&prod_url).1.trim(), "hello from v1");
    assert_eq!(deployments(&server, &a, "production"), prod_before);
    let dev = deployments(&server, &a, "development");
    assert_eq!(dev[0]["id"], deployment_id.as_str());
    assert_eq!(dev[0]["trigger"], "ci");
    assert_eq!(dev[0]["actor"], format!("ci:{a}/github"));
    assert_eq!(dev[0]["status"], "ready");
    let dev_count = dev.len();

    // The same digest again, by image, digest or tag: 200 with the existing deployment.
    for body in [
        json!({ "image": format!("{repo_a}:v2") }),
        json!({ "digest": v2_digest }),
        json!({ "tag": "v2" }),
        json!({ "image": format!("{repo_a}@{v2_digest}") }),
    ] {
        let again = hook(&server, &token, body.clone());
        assert_eq!(again.status, 200, "{body}: {}", again.body);
        assert_eq!(again.body["deploymentId"], deployment_id.as_str());
        assert_eq!(again.body["created"], false);
        assert_eq!(again.body["statusUrl"], status_url.as_str());
    }
    assert_eq!(deployments(&server, &a, "development").len(), dev_count);

    // The status URL answers the CI token of the component with the deployment, nobody else.
    let status = get_with(&status_url, Some(&token));
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["id"], deployment_id.as_str());
    assert_eq!(status.body["status"], "ready");
    let token_b = create_token(&server, &b, "github");
    let foreign = get_with(&status_url, Some(&token_b));
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    let admin = server.admin_token();
    assert_eq!(get_with(&status_url, Some(&admin)).status, 401);
    assert_eq!(get_with(&status_url, None).status, 401);

    // Another repository: 403 with the reason, both ways round.
    let other = hook(&server, &token, json!({ "image": format!("{repo_b}:v1") }));
    assert_eq!(other.status, 403, "{}", other.body);
    let reason = other.body["error"]["message"].as_str().unwrap();
    assert!(
        reason.contains(&repo_a)
            && reason.contains(&repo_b)
            && reason.contains("another repository"),
        "{reason}"
    );
    let other = hook(
        &server,
        &token_b,
        json!({ "image": format!("{repo_a}:v2") }),
    );
    assert_eq!(other.status, 403, "{}", other.body);
    let other = hook(
        &server,
        &token,
        json!({ "image": format!("{}/test/web:v2", env.registry) }),
    );
    assert_eq!(other.status, 403, "{}", other.body);

    // 401: missing, garbage, well-formed unknown, a user token, a revoked token: one body.
    let revoked = create_token(&server, &a, "revoked");
    ok(server.cli(&[
        "ci",
        "token",
        "revoke",
        "--project",
        "shop",
        "--component",
        &a,
        "revoked",
    ]));
    let body = json!({ "tag": "v2" }).to_string();
    let unknown = format!("berth_ci_{}", "0".repeat(40));
    let refusals: Vec<Answer> = [
        None,
        Some("garbage"),
        Some(unknown.as_str()),
        Some(admin.as_str()),
        Some(revoked.as_str()),
    ]
    .into_iter()
    .map(|t| hook_raw(&server, t, &body))
    .collect();
    let first = refusals[0].error();
    assert_eq!(first.0, 401);
    assert_eq!(first.1, "unauthorized");
    for r in &refusals {
        assert_eq!(r.error(), first, "{}", r.body);
    }
    // The CI token reaches nothing of the user API.
    let api = get_with(&format!("{}/api/v1/orgs", server.url), Some(&token));
    assert_eq!(api.status, 401, "{}", api.body);
    let deploy_path = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{a}/deploy",
        server.url
    );
    let api = send(
        http()
            .post(&deploy_path)
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({})),
    );
    assert_eq!(api.status, 401, "{}", api.body);

    // Bad bodies: 422 naming the field (400 for malformed JSON).
    for (raw, field) in [
        ("{}", "image"),
        (r#"{"image":"a","tag":"b"}"#, "tag"),
        (r#"{"tag":"v2","digest":"sha256:00"}"#, "digest"),
        (r#"{"colour":1}"#, "colour"),
        (r#"{"tag":"bad tag!"}"#, "tag"),
        (r#"{"digest":"sha256:xyz"}"#, "digest"),
        (r#"{"image":"127.0.0.1:5000/test/Web:v1"}"#, "image"),
        (r#"{"tag":"v2","idempotencyKey":""}"#, "idempotencyKey"),
        (r#""v2""#, "body"),
    ] {
        let r = hook_raw(&server, Some(&token), raw);
        assert_eq!(r.status, 422, "{raw}: {}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{raw}: {}", r.body);
    }
    assert_eq!(hook_raw(&server, Some(&token), "{\"tag\":").status, 400);

    // A tag that does not exist: 404.
    let missing = hook(&server, &token, json!({ "tag": "v404" }));
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["error"]["field"], "tag");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("v404"),
        "{}",
        missing.body
    );

    // Idempotency key: the same answer again (here a 202, where a new call would be a 200).
    let keyed = hook(
        &server,
        &token,
        json!({ "tag": "v1", "idempotencyKey": "run-1" }),
    );
    assert_eq!(keyed.status, 202, "{}", keyed.body);
    let replay = hook(
        &server,
        &token,
        json!({ "tag": "v1", "idempotencyKey": "run-1" }),
    );
    assert_eq!(replay.status, 202, "{}", replay.body);
    assert_eq!(replay.body, keyed.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let v1_deployment = settle(keyed.body["statusUrl"].as_str().unwrap(), &token);
    assert_eq!(v1_deployment["status"], "ready", "{v1_deployment}");
    assert_eq!(get_body(&dev_url).1.trim(), "hello from v1");
    let reused = hook(
        &server,
        &token,
        json!({ "tag": "v2", "idempotencyKey": "run-1" }),
    );
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["error"]["field"], "idempotencyKey");
    let fresh = hook(&server, &token, json!({ "tag": "v1" }));
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(deployments(&server, &a, "development").len(), dev_count + 1);

    // Registry unreachable: 502.
    let port = berth_testkit::free_port();
    let dead_host = format!("127.0.0.1:{port}");
    ok(server.cli(&[
        "registry",
        "add",
        "dead",
        "--host",
        &dead_host,
        "--auth",
        "anonymous",
    ]));
    ok(server.cli(&[
        "component",
        "create",
        &dead,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "dead",
        "--image",
        &format!("{dead_host}/x/y:v1"),
        "--no-verify",
    ]));
    let token_dead = create_token(&server, &dead, "github");
    let unreachable = hook(&server, &token_dead, json!({ "tag": "v2" }));
    assert_eq!(unreachable.status, 502, "{}", unreachable.body);

    // Past the per-token rate: 429 with Retry-After (other tokens are unaffected).
    let burst = create_token(&server, &a, "burst");
    let mut refused = None;
    let mut sent = 0;
    while sent < 45 {
        sent += 1;
        let r = hook_raw(&server, Some(&burst), "{}");
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 422, "{}", r.body);
    }
    let refused = refused.expect("no 429 after 45 quick requests");
    assert!(sent > 30, "refused after only {sent} requests");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert_eq!(hook_raw(&server, Some(&token), "{}").status, 422);

    // Snippets for GitHub Actions and GitLab CI: YAML with the URL, the secret reference, the
    // image built in CI and a wait loop that is valid shell.
    for (kind, secret_ref, image_ref) in [
        (
            "github-actions",
            "${{ secrets.BERTH_TOKEN }}",
            format!("{repo_a}:${{{{ github.sha }}}}"),
        ),
        (
            "gitlab-ci",
            "$BERTH_TOKEN",
            format!("{repo_a}:$CI_COMMIT_SHORT_SHA"),
        ),
    ] {
        let s = json_out(&ok(server.cli(&[
            "ci",
            "snippet",
            "--project",
            "shop",
            "--component",
            &a,
            "--kind",
            kind,
            "-o",
            "json",
        ])));
        assert_eq!(s["kind"], kind);
        assert_eq!(s["webhookUrl"], hook_url.as_str());
        let text = s["text"].as_str().unwrap();
        assert!(
            text.contains(secret_ref) && text.contains(&hook_url),
            "{text}"
        );
        let yaml: Value = serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let (image, run) = if kind == "github-actions" {
            let steps = yaml["jobs"]["deploy"]["steps"].as_array().unwrap();
            let deploy = steps.last().unwrap();
            assert_eq!(deploy["env"]["BERTH_TOKEN"], secret_ref);
            (
                yaml["jobs"]["deploy"]["env"]["IMAGE"].clone(),
                deploy["run"].as_str().unwrap().to_owned(),
            )
        } else {
            (
                yaml["variables"]["IMAGE"].clone(),
                yaml["deploy"]["script"][0].as_str().unwrap().to_owned(),
            )
        };
        assert_eq!(image, image_ref.as_str(), "{text}");
        assert!(
            run.contains("statusUrl") && run.contains("ready) exit 0"),
            "{run}"
        );
        let check = Command::new("sh")
            .args(["-n", "-c", &run])
            .output()
            .unwrap();
        assert!(check.status.success(), "{kind}: {}\n{run}", stderr(&check));
    }
    let unknown_kind = send(
        http()
            .get(format!(
                "{}/api/v1/orgs/default/projects/shop/components/{a}/ci-snippets/jenkins",
                server.url
            ))
            .header("authorization", format!("Bearer {admin}")),
    );
    assert_eq!(unknown_kind.status, 404, "{}", unknown_kind.body);

    // Every webhook call is audited: actor, source, result.
    let audit = json_out(&ok(
        server.cli(&["audit", "list", "--limit", "500", "-o", "json"])
    ));
    let rows: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/api/v1/hooks/deploy")
        .collect();
    let seen = |actor: &str, status: u64| {
        rows.iter()
            .any(|r| r["actor"] == actor && r["status"] == status && r["source"] == "127.0.0.1")
    };
    let me = format!("ci:{a}/github");
    for status in [202, 200, 403, 404, 422] {
        assert!(seen(&me, status), "no audit row {me} {status}: {rows:?}");
    }
    assert!(seen("anonymous", 401), "{rows:?}");
    assert!(seen(&format!("ci:{a}/burst"), 429), "{rows:?}");
    assert!(seen(&format!("ci:{dead}/github"), 502), "{rows:?}");
    let listed = json_out(&ok(server.cli(&[
        "ci",
        "token",
        "list",
        "--project",
        "shop",
        "--component",
        &a,
        "-o",
        "json",
    ])));
    let github = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "github")
        .unwrap()
        .clone();
    assert!(github["lastUsedAt"].is_string(), "{github}");

    // Revoked: the next call is the same 401, and so is the status URL.
    let revoked_now = json_out(&ok(server.cli(&[
        "ci",
        "token",
        "revoke",
        "--project",
        "shop",
        "--component",
        &a,
        github["id"].as_str().unwrap(),
        "-o",
        "json",
    ])));
    assert!(revoked_now["revokedAt"].is_string(), "{revoked_now}");
    let after = hook_raw(&server, Some(&token), &body);
    assert_eq!(after.error(), first, "{}", after.body);
    assert_eq!(get_with(&status_url, Some(&token)).status, 401);
}

/// Concurrent webhook calls for one new digest create one deployment (one 202, the others 200
/// with it); a burst for a digest already deployed creates nothing; every call has its audit row
/// as soon as it is answered; a token revoked after a burst (answered from memory) is refused at
/// once.
#[test]
fn concurrent_webhook_calls_deploy_once_and_are_all_audited() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let pid = std::process::id();
    let name = format!("berth-it-cid-{pid}");
    let _cleanup = Cleanup(vec![name.clone()]);
    let repo = format!("{}/test/cid-{pid}", env.registry);
    env.copy_image("test/web:v1", &format!("{repo}:v1"));
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[
            ("BERTH_DRAIN_MS", "0"),
            ("BERTH_CI_RATE_PER_MINUTE", "1000"),
        ],
    );
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
        "component",
        "create",
        &name,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "local",
        "--image",
        &format!("{repo}:v1"),
        "--port",
        "8080",
    ]));
    let token = create_token(&server, &name, "github");
    let hook_url = format!("{}/api/v1/hooks/deploy", server.url);
    let burst = |body: Value| -> Vec<Answer> {
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..24)
                .map(|_| {
                    s.spawn(|| {
                        send(
                            http()
                                .post(&hook_url)
                                .header("authorization", format!("Bearer {token}"))
                                .json(&body),
                        )
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        })
    };
    let audited = |status: u64| -> usize {
        let audit = json_out(&ok(
            server.cli(&["audit", "list", "--limit", "500", "-o", "json"])
        ));
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["path"] == "/api/v1/hooks/deploy"
                    && r["actor"] == format!("ci:{name}/github")
                    && r["status"] == status
            })
            .count()
    };

    // A new digest from 24 clients at once: one deployment.
    let first = burst(json!({ "tag": "v1" }));
    let created: Vec<&Answer> = first.iter().filter(|a| a.status == 202).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        first.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    let id = created[0].body["deploymentId"].clone();
    for a in &first {
        assert!(matches!(a.status, 200 | 202), "{}", a.body);
        assert_eq!(a.body["deploymentId"], id, "{}", a.body);
    }
    assert_eq!(deployments(&server, &name, "development").len(), 1);
    // Audited before answered: no waiting here.
    assert_eq!((audited(202), audited(200)), (1, 23));

    // The same digest again (by digest this time): nothing new.
    let digest = created[0].body["digest"].as_str().unwrap().to_owned();
    let again = burst(json!({ "digest": digest }));
    assert!(
        again
            .iter()
            .all(|a| a.status == 200 && a.body["deploymentId"] == id),
        "{:?}",
        again.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert_eq!(deployments(&server, &name, "development").len(), 1);
    assert_eq!((audited(202), audited(200)), (1, 47));

    // Revoked right after calls answered from memory: refused at once.
    ok(server.cli(&[
        "ci",
        "token",
        "revoke",
        "--project",
        "shop",
        "--component",
        &name,
        "github",
    ]));
    let refused = hook(&server, &token, json!({ "tag": "v1" }));
    assert_eq!(refused.status, 401, "{}", refused.body);
    settle(
        &format!("{}/api/v1/deployments/{}", server.url, id.as_str().unwrap()),
        &server.admin_token(),
    );
}

/// `--public-url` is the base of the snippets' webhook URL; a bad one stops `berth serve` with
/// the reason. The OpenAPI document lists the CI routes. (No registry or engine needed.)
#[test]
fn public_url_shapes_snippets_and_the_api_lists_ci_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[("BERTH_PUBLIC_URL", "https://berth.example.com/")],
    );
    let host = format!("127.0.0.1:{}", berth_testkit::free_port());
    ok(server.cli(&[
        "registry",
        "add",
        "anon",
        "--host",
        &host,
        "--auth",
        "anonymous",
    ]));
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
        "component",
        "create",
        "web",
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "anon",
        "--image",
        &format!("{host}/acme/web:v1"),
        "--no-verify",
    ]));
    let s = json_out(&ok(server.cli(&[
        "ci",
        "snippet",
        "--project",
        "shop",
        "--component",
        "web",
        "--kind",
        "curl",
        "-o",
        "json",
    ])));
    assert_eq!(
        s["webhookUrl"],
        "https://berth.example.com/api/v1/hooks/deploy"
    );
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .contains("\"https://berth.example.com/api/v1/hooks/deploy\""),
        "{s}"
    );

    let doc = get_with(&format!("{}/api/v1/openapi.json", server.url), None).body;
    for path in [
        "/api/v1/hooks/deploy",
        "/api/v1/hooks/deployments/{id}",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-tokens",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-tokens/{id}",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/ci-snippets/{kind}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["ci_token"].is_object());

    let bad = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--internal-gateway-listen",
            "127.0.0.1:0",
            "--public-url",
            "ftp://berth.example.com",
            "--data-dir",
        ])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--public-url") && stderr(&bad).contains("http://"),
        "{}",
        stderr(&bad)
    );
}
