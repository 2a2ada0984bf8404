//! Components and deployments on the real engine and registry: ordered environments (create,
//! reorder, delete), deploys landing in the first one and promotion through all of them with
//! one digest, each environment's own configs, a tag moved in the registry, precise answers to
//! bad input, and a delete that removes everything but the audit trail.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ServerProc, add_local_registry, get_body, http, json_out, ok, stderr, stdout};
use serde_json::{Value, json};

/// Runs the CLI and expects exit 1 with a JSON error envelope; returns its `error`.
fn cli_err(server: &ServerProc, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = server.cli(&all);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    json_out(&out)["error"].clone()
}

/// One API call with the admin token: (status, body as JSON or Null).
fn api(server: &ServerProc, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    api_as(server, &server.admin_token(), method, path, body)
}

fn api_as(
    server: &ServerProc,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Names of the containers of a component (optionally of one environment), found by label
/// through podman: an independent view of the engine.
fn containers(component: &str, env: Option<&str>, running_only: bool) -> Vec<String> {
    let mut cmd = Command::new("podman");
    cmd.arg("ps");
    if !running_only {
        cmd.arg("-a");
    }
    cmd.args(["--format", "{{.Names}}", "--filter"])
        .arg(format!("label=berth.component={component}"));
    if let Some(env) = env {
        cmd.arg("--filter").arg(format!("label=berth.env={env}"));
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn exec(container: &str, script: &str) -> String {
    let out = Command::new("podman")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes a component's containers (and optionally a test repository) whatever happens.
struct Cleanup {
    component: String,
    /// `host/repo:tag` to delete from the registry.
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers(&self.component, None, false) {
            let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        }
        if let Some(image) = &self.image {
            // Best effort: the registry may not allow deletes.
            let _ = Command::new("skopeo")
                .args([
                    "delete",
                    "--tls-verify=false",
                    "--creds",
                    "berth:s3cret",
                    &format!("docker://{image}"),
                ])
                .output();
        }
    }
}

/// A server with the private registry registered as `local` and a project `shop`.
fn start(env: &berth_testkit::TestEnv, dir: &std::path::Path) -> ServerProc {
    let server = ServerProc::start_with(
        dir,
        &[("BERTH_READY_TIMEOUT", "30"), ("BERTH_DRAIN_MS", "300")],
    );
    add_local_registry(&server, env, None);
    ok(server.cli(&["project", "create", "shop"]));
    server
}

fn create_component(server: &ServerProc, name: &str, image: &str) {
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
        image,
        "--port",
        "8080",
    ]));
}

fn deploy(server: &ServerProc, component: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "deploy",
        "--project",
        "shop",
        "--component",
        component,
        "--wait",
        "-o",
        "json",
    ];
    args.extend(extra);
    let d = json_out(&ok(server.cli(&args)));
    assert_eq!(d["status"], "ready", "{d}");
    d
}

fn promote(server: &ServerProc, component: &str, from: &str, to: &str) -> Value {
    let d = json_out(&ok(server.cli(&[
        "promote",
        "--project",
        "shop",
        "--component",
        component,
        "--from",
        from,
        "--to",
        to,
        "--wait",
        "-o",
        "json",
    ])));
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(d["environment"], to, "{d}");
    d
}

fn env_names(server: &ServerProc, org: &str) -> Vec<String> {
    let list = json_out(&ok(server.cli(&["--org", org, "env", "list", "-o", "json"])));
    let items = list["items"].as_array().unwrap();
    for (i, e) in items.iter().enumerate() {
        assert_eq!(e["position"], i as i64, "positions stay 0, 1, …: {list}");
    }
    items
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `component status` as (environment → serving digest).
fn serving(server: &ServerProc, component: &str) -> Vec<(String, Option<String>)> {
    let status = json_out(&ok(server.cli(&[
        "component",
        "status",
        component,
        "--project",
        "shop",
        "-o",
        "json",
    ])));
    status["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["environment"].as_str().unwrap().to_owned(),
                e["current"]["digest"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn url(server: &ServerProc, component: &str, env: &str) -> String {
    format!("{}/default/shop/{component}/{env}/", server.gateway)
}

#[test]
fn ordered_environments_first_gets_deploys_promotion_keeps_the_digest() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-comp-env-{}", std::process::id());
    let _cleanup = Cleanup {
        component: component.clone(),
        image: None,
    };
    let server = start(&env, dir.path());

    // Create `staging` between the two defaults; reorder; refusals name the problem.
    let staging = json_out(&ok(server.cli(&[
        "env",
        "create",
        "staging",
        "--display-name",
        "Staging",
        "--position",
        "1",
        "-o",
        "json",
    ])));
    assert_eq!(staging["position"], 1, "{staging}");
    assert_eq!(
        env_names(&server, "default"),
        ["development", "staging", "production"]
    );
    let err = cli_err(&server, &["env", "create", "Bad_Name"]);
    assert_eq!(err["field"], "name", "{err}");
    let err = cli_err(&server, &["env", "create", "staging"]);
    assert_eq!(err["code"], "conflict", "{err}");
    let err = cli_err(&server, &["env", "create", "qa", "--position", "4"]);
    assert_eq!(err["field"], "position", "{err}");
    let err = cli_err(&server, &["env", "reorder", "staging", "development"]);
    assert_eq!(err["field"], "order", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("missing production"),
        "{err}"
    );
    let err = cli_err(
        &server,
        &[
            "env",
            "reorder",
            "staging",
            "development",
            "production",
            "qa",
        ],
    );
    assert!(
        err["message"].as_str().unwrap().contains("unknown qa"),
        "{err}"
    );
    assert_eq!(
        env_names(&server, "default"),
        ["development", "staging", "production"],
        "a refused reorder changes nothing"
    );
    // Mutations are for admins only.
    ok(server.cli(&["user", "create", "dev", "--role", "developer"]));
    let token = json_out(&ok(server.cli(&[
        "token", "create", "--name", "t", "--user", "dev", "-o", "json",
    ])))["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _) = api_as(
        &server,
        &token,
        "POST",
        "/api/v1/orgs/default/environments",
        Some(json!({"name": "qa"})),
    );
    assert_eq!(code, 403);
    let (code, _) = api_as(
        &server,
        &token,
        "PUT",
        "/api/v1/orgs/default/environments/order",
        Some(json!({"order": ["production", "staging", "development"]})),
    );
    assert_eq!(code, 403);

    // With `staging` first, a deploy lands there.
    let reordered = json_out(&ok(server.cli(&[
        "env",
        "reorder",
        "staging",
        "development",
        "production",
        "-o",
        "json",
    ])));
    assert_eq!(reordered["items"][0]["name"], "staging", "{reordered}");
    let image = format!("{}/test/web:v1", env.registry);
    let digest = env.skopeo_digest(&image);
    create_component(&server, &component, &image);
    let d = deploy(&server, &component, &[]);
    assert_eq!(d["environment"], "staging", "{d}");
    assert_eq!(d["digest"], digest.as_str());
    assert_eq!(
        get_body(&url(&server, &component, "staging")).1.trim(),
        "hello from v1"
    );
    assert_eq!(
        get_body(&url(&server, &component, "development")).0,
        404,
        "nothing deployed to development"
    );

    // Back to development → staging → production: deploy, then promote along the chain.
    ok(server.cli(&["env", "reorder", "development", "staging", "production"]));
    let d = deploy(&server, &component, &[]);
    assert_eq!(d["environment"], "development", "{d}");
    let s = promote(&server, &component, "development", "staging");
    let p = promote(&server, &component, "staging", "production");
    assert_eq!(s["digest"], digest.as_str());
    assert_eq!(p["digest"], digest.as_str());
    let all = serving(&server, &component);
    assert_eq!(
        all,
        ["development", "staging", "production"]
            .map(|e| (e.to_owned(), Some(digest.clone())))
            .to_vec()
    );
    for e in ["development", "staging", "production"] {
        assert_eq!(
            get_body(&url(&server, &component, e)).1.trim(),
            "hello from v1",
            "{e}"
        );
        assert_eq!(
            containers(&component, Some(e), true).len(),
            1,
            "one instance in {e}"
        );
    }

    // In use by deployments: 409 naming the component; nothing removed.
    let err = cli_err(&server, &["env", "delete", "staging", "--yes"]);
    assert_eq!(err["code"], "conflict", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("shop/{component}")) && message.contains("deployments"),
        "{err}"
    );
    // In use by configs only: 409 too.
    ok(server.cli(&["env", "create", "qa"]));
    ok(server.cli(&[
        "config",
        "set",
        "A=1",
        "--project",
        "shop",
        "--component",
        &component,
        "--env",
        "qa",
    ]));
    let (code, body) = api(
        &server,
        "DELETE",
        "/api/v1/orgs/default/environments/qa",
        None,
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("configs of shop/{component}")),
        "{body}"
    );
    // Unused: 204, and the positions close up.
    ok(server.cli(&["env", "create", "scratch", "--position", "0"]));
    assert_eq!(env_names(&server, "default")[0], "scratch");
    let (code, _) = api(
        &server,
        "DELETE",
        "/api/v1/orgs/default/environments/scratch",
        None,
    );
    assert_eq!(code, 204);
    assert_eq!(
        env_names(&server, "default"),
        ["development", "staging", "production", "qa"]
    );
    let (code, _) = api(
        &server,
        "DELETE",
        "/api/v1/orgs/default/environments/scratch",
        None,
    );
    assert_eq!(code, 404);
    // Still serving after all of it.
    assert_eq!(
        get_body(&url(&server, &component, "staging")).1.trim(),
        "hello from v1"
    );

    // The new routes are documented.
    let doc: Value = http()
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for (path, method) in [
        ("/api/v1/orgs/{org}/environments", "post"),
        ("/api/v1/orgs/{org}/environments/order", "put"),
        ("/api/v1/orgs/{org}/environments/{env}", "delete"),
    ] {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{method} {path} documented"
        );
    }

    // The last environment of an organization stays.
    ok(server.cli(&["org", "create", "solo"]));
    ok(server.cli(&["--org", "solo", "env", "delete", "production", "--yes"]));
    let err = cli_err(
        &server,
        &["--org", "solo", "env", "delete", "development", "--yes"],
    );
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(err["message"].as_str().unwrap().contains("last"), "{err}");
    assert_eq!(env_names(&server, "solo"), ["development"]);
}

#[test]
fn promotion_runs_with_the_target_environments_configs() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-comp-cfg-{}", std::process::id());
    let _cleanup = Cleanup {
        component: component.clone(),
        image: None,
    };
    let server = start(&env, dir.path());
    create_component(
        &server,
        &component,
        &format!("{}/test/web:v1", env.registry),
    );
    for (e, value) in [("development", "dev"), ("production", "prod")] {
        let pair = format!("GREETING={value}");
        ok(server.cli(&[
            "config",
            "set",
            &pair,
            "--project",
            "shop",
            "--component",
            &component,
            "--env",
            e,
        ]));
    }
    let d = deploy(&server, &component, &[]);
    let p = promote(&server, &component, "development", "production");
    assert_eq!(p["digest"], d["digest"], "the same release");
    assert_eq!(p["release"], d["release"], "the same release");
    for (e, expected) in [("development", "dev"), ("production", "prod")] {
        let running = containers(&component, Some(e), true);
        assert_eq!(running.len(), 1, "{e}: {running:?}");
        assert_eq!(exec(&running[0], "echo $GREETING"), expected, "{e}");
    }
}

#[test]
fn a_moved_tag_changes_nothing_until_the_next_deploy() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let component = format!("berth-it-comp-retag-{pid}");
    let image = format!("{}/test/retag-{pid}:v1", env.registry);
    let _cleanup = Cleanup {
        component: component.clone(),
        image: Some(image.clone()),
    };
    let copy = |from: &str| env.copy_image(from, &image);
    copy("test/web:v1");
    let v1 = env.skopeo_digest(&image);
    assert_eq!(
        v1,
        env.skopeo_digest(&format!("{}/test/web:v1", env.registry))
    );

    let server = start(&env, dir.path());
    create_component(&server, &component, &image);
    let d1 = deploy(&server, &component, &[]);
    assert_eq!(d1["digest"], v1.as_str());
    let dev = url(&server, &component, "development");
    assert_eq!(get_body(&dev).1.trim(), "hello from v1");

    // Someone pushes other content under the same tag.
    copy("test/web:v2");
    let v2 = env.skopeo_digest(&image);
    assert_ne!(v1, v2, "the tag moved");
    // The running release is pinned to its digest: nothing changes by itself.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        serving(&server, &component)[0],
        ("development".to_owned(), Some(v1.clone()))
    );
    assert_eq!(get_body(&dev).1.trim(), "hello from v1");

    // A plain deploy re-resolves the tag and picks the new digest.
    let d2 = deploy(&server, &component, &[]);
    assert_eq!(d2["digest"], v2.as_str(), "{d2}");
    assert_eq!(d2["tag"], "v1", "{d2}");
    assert_eq!(get_body(&dev).1.trim(), "hello from v2");
    assert_eq!(
        serving(&server, &component)[0],
        ("development".to_owned(), Some(v2.clone()))
    );
    // Both digests are in the history, under the same tag.
    let prev = json_out(&ok(server.cli(&[
        "component",
        "previous-images",
        &component,
        "--project",
        "shop",
        "-o",
        "json",
    ])));
    let digests: Vec<&str> = prev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [v2.as_str(), v1.as_str()]);
}

/// A component created from a pinned image (`web:v1@sha256:…`): Update Image Tag deploys the
/// new tag's content, not the old pin. A digest-only Update Image URL of another repository
/// makes that repository the component's image, so a later deploy resolves it (and not the
/// old repository with the new registry's credentials).
#[test]
fn update_image_tag_drops_an_old_pin_and_a_digest_url_moves_the_repository() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-comp-pin-{}", std::process::id());
    let _cleanup = Cleanup {
        component: component.clone(),
        image: None,
    };
    let web = |tag: &str| format!("{}/test/web:{tag}", env.registry);
    let v1 = env.skopeo_digest(&web("v1"));
    let v2 = env.skopeo_digest(&web("v2"));
    let server = start(&env, dir.path());
    create_component(&server, &component, &format!("{}@{v1}", web("v1")));
    let d1 = deploy(&server, &component, &[]);
    assert_eq!(d1["digest"], v1.as_str(), "{d1}");

    let d2 = deploy(&server, &component, &["--tag", "v2"]);
    assert_eq!(d2["digest"], v2.as_str(), "{d2}");
    assert_eq!(d2["tag"], "v2", "{d2}");
    let dev = url(&server, &component, "development");
    assert_eq!(get_body(&dev).1.trim(), "hello from v2");

    // By digest from another repository (the task image's), then a plain deploy: it stays
    // on that repository.
    let task = format!("{}/test/task:latest", env.registry);
    let task_digest = env.skopeo_digest(&task);
    let by_digest = format!("{}/test/task@{task_digest}", env.registry);
    let (code, accepted) = api(
        &server,
        "POST",
        &format!("/api/v1/orgs/default/projects/shop/components/{component}/deploy"),
        Some(json!({ "image": by_digest })),
    );
    assert_eq!(code, 202, "{accepted}");
    let (_, got) = api(
        &server,
        "GET",
        &format!("/api/v1/orgs/default/projects/shop/components/{component}"),
        None,
    );
    assert!(
        got["image"].as_str().unwrap().contains("/test/task@"),
        "the component kept its old repository: {got}"
    );
}

/// A request that must be refused: method, path, body, status, field named, message part.
type Case<'a> = (&'a str, String, Value, u16, Option<&'a str>, &'a str);

#[test]
fn bad_input_is_refused_precisely_and_delete_removes_everything() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-comp-del-{}", std::process::id());
    let _cleanup = Cleanup {
        component: component.clone(),
        image: None,
    };
    let server = start(&env, dir.path());
    let image = format!("{}/test/web:v1", env.registry);
    create_component(&server, &component, &image);
    deploy(&server, &component, &[]);

    let components = "/api/v1/orgs/default/projects/shop/components";
    let this = format!("{components}/{component}");
    let snapshot = |server: &ServerProc| {
        let (_, list) = api(server, "GET", components, None);
        let (_, deployments) = api(server, "GET", &format!("{this}/deployments"), None);
        let (_, releases) = api(server, "GET", &format!("{this}/previous-images"), None);
        (list, deployments, releases)
    };
    let before = snapshot(&server);
    assert_eq!(before.0["items"].as_array().unwrap().len(), 1);
    let create = |extra: Value| {
        let mut body = json!({
            "name": "other", "type": "service", "registry": "local", "image": image, "port": 8080,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<Case> = vec![
        (
            "POST",
            components.to_owned(),
            create(json!({"registry": "nope"})),
            422,
            Some("registry"),
            "not found",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"image": "docker.io/library/nginx:1.27"})),
            422,
            Some("image"),
            "docker.io",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"image": format!("{}/Test/Web:v1", env.registry)})),
            422,
            Some("image"),
            "",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"image": format!("{}/test/web:v1:v2", env.registry)})),
            422,
            Some("image"),
            "",
        ),
        (
            "POST",
            format!("{this}/deploy"),
            json!({"tag": "v 1"}),
            422,
            Some("tag"),
            "",
        ),
        (
            "POST",
            format!("{this}/deploy"),
            json!({"tag": "v404"}),
            422,
            Some("tag"),
            "not found",
        ),
        (
            "POST",
            format!("{this}/deploy"),
            json!({"previous": format!("sha256:{}", "0".repeat(64))}),
            422,
            Some("previous"),
            "",
        ),
        (
            "POST",
            format!("{this}/deploy"),
            json!({"tag": "v2", "image": format!("{}/test/web:v2", env.registry)}),
            422,
            None,
            "at most one",
        ),
        (
            "POST",
            format!("{this}/deploy"),
            json!({"tag": "v2", "previous": "sha256:00"}),
            422,
            None,
            "at most one",
        ),
        (
            "POST",
            "/api/v1/orgs/default/projects/nope/components".to_owned(),
            create(json!({})),
            404,
            None,
            "nope",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"name": component})),
            409,
            Some("name"),
            "already exists",
        ),
        (
            "PATCH",
            this.clone(),
            json!({"name": "renamed"}),
            422,
            Some("name"),
            "immutable",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"type": "lambda"})),
            422,
            Some("type"),
            "",
        ),
        (
            "POST",
            components.to_owned(),
            create(json!({"port": 0})),
            422,
            Some("port"),
            "",
        ),
        (
            "PATCH",
            this.clone(),
            json!({"port": 0}),
            422,
            Some("port"),
            "",
        ),
    ];
    for (method, path, body, status, field, needle) in cases {
        let (code, answer) = api(&server, method, &path, Some(body.clone()));
        assert_eq!(code, status, "{method} {path} {body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{body}: {answer}"
        );
        assert_eq!(
            snapshot(&server),
            before,
            "nothing half-created by {method} {path} {body}"
        );
    }
    // The same through the CLI: exit 1 with the field.
    let err = cli_err(
        &server,
        &[
            "deploy",
            "--project",
            "shop",
            "--component",
            &component,
            "--tag",
            "v404",
        ],
    );
    assert_eq!(err["field"], "tag", "{err}");
    let out = server.cli(&["component", "delete", &component, "--project", "shop"]);
    assert_eq!(out.status.code(), Some(1), "no --yes: {}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(snapshot(&server), before);

    // Running in two environments, then deleted: nothing left anywhere.
    promote(&server, &component, "development", "production");
    let urls = [
        url(&server, &component, "development"),
        url(&server, &component, "production"),
    ];
    for u in &urls {
        assert_eq!(get_body(u).1.trim(), "hello from v1", "{u}");
    }
    assert_eq!(containers(&component, None, false).len(), 2);
    ok(server.cli(&[
        "component",
        "delete",
        &component,
        "--project",
        "shop",
        "--yes",
    ]));
    assert_eq!(containers(&component, None, false), Vec::<String>::new());
    for u in &urls {
        assert_eq!(get_body(u).0, 404, "{u}");
    }
    let (code, _) = api(&server, "GET", &this, None);
    assert_eq!(code, 404);
    let (_, list) = api(&server, "GET", components, None);
    assert_eq!(list["items"], json!([]));

    // The audit log keeps the component's calls.
    let audit = json_out(&ok(
        server.cli(&["audit", "list", "--limit", "500", "-o", "json"])
    ));
    let rows: Vec<(String, String, i64)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().contains(&this))
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    for wanted in [
        ("POST", format!("{this}/deploy"), 202),
        ("POST", format!("{this}/deploy"), 422),
        ("POST", format!("{this}/promote"), 202),
        ("PATCH", this.clone(), 422),
        ("DELETE", this.clone(), 204),
    ] {
        assert!(
            rows.iter()
                .any(|(m, p, s)| (m.as_str(), p, *s) == (wanted.0, &wanted.1, wanted.2)),
            "audit lacks {wanted:?}: {rows:?}"
        );
    }
}
