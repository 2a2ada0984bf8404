//! Auto-deploy on the real engine and registry: a semver policy picks 1.3.0 over 1.2.9 and never
//! 2.0.0; a digest policy follows a retagged `stable`; an unchanged registry decides nothing and
//! creates no deployment; invalid settings are 422s naming the field; and the poller deploys on
//! its own (tick shortened with the test-only BERTH_AUTO_DEPLOY_TICK_MS).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{ServerProc, add_local_registry, get_body, json_out, ok};
use serde_json::Value;

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for component in &self.0 {
            let out = Command::new("podman")
                .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
                .arg(format!("label=berth.component={component}"))
                .output();
            if let Ok(out) = out {
                for name in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = Command::new("podman").args(["rm", "-f", name]).output();
                }
            }
        }
    }
}

fn ad(server: &ServerProc, action: &str, component: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "auto-deploy",
        action,
        "--project",
        "shop",
        "--component",
        component,
        "-o",
        "json",
    ];
    args.extend(extra);
    server.cli(&args)
}

fn deployments(server: &ServerProc, component: &str) -> Vec<Value> {
    json_out(&ok(server.cli(&[
        "deployment",
        "list",
        "--project",
        "shop",
        "--component",
        component,
        "--env",
        "development",
        "-o",
        "json",
    ])))["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the newest deployment is final; returns it.
fn settle(server: &ServerProc, component: &str) -> Value {
    for _ in 0..600 {
        let list = deployments(server, component);
        if let Some(d) = list.first()
            && matches!(
                d["status"].as_str(),
                Some("ready" | "failed" | "rolled-back" | "superseded")
            )
        {
            return d.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("deployment of {component} did not settle");
}

fn create(server: &ServerProc, name: &str, image: &str) {
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
    ok(server.cli(&["deploy", "--project", "shop", "--component", name, "--wait"]));
}

fn setup(env: &berth_testkit::TestEnv, tick_ms: &str) -> (tempfile::TempDir, ServerProc) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[
            ("BERTH_DRAIN_MS", "500"),
            ("BERTH_READY_TIMEOUT", "30"),
            ("BERTH_AUTO_DEPLOY_TICK_MS", tick_ms),
        ],
    );
    add_local_registry(&server, env, None);
    ok(server.cli(&["project", "create", "shop"]));
    (dir, server)
}

fn field_of(out: &Output) -> (Option<i32>, Value, Value) {
    let err = json_out(out);
    (
        out.status.code(),
        err["error"]["code"].clone(),
        err["error"]["field"].clone(),
    )
}

#[test]
fn semver_and_digest_policies_check_now() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let pid = std::process::id();
    let semver_c = format!("berth-it-auto-{pid}");
    let digest_c = format!("berth-it-autod-{pid}");
    let _cleanup = Cleanup(vec![semver_c.clone(), digest_c.clone()]);
    let repo = format!("{}/test/auto-{pid}", env.registry);
    env.copy_image("test/web:v1", &format!("{repo}:1.2.9"));
    env.copy_image("test/web:v2", &format!("{repo}:1.3.0"));
    env.copy_image("test/web:v1", &format!("{repo}:2.0.0"));
    env.copy_image("test/web:v1", &format!("{repo}:stable"));
    // The poller never runs during this test: every decision is a `check` call's.
    let (_dir, server) = setup(&env, "3600000");
    create(&server, &semver_c, &format!("{repo}:1.2.9"));
    let url = format!("{}/default/shop/{semver_c}/development/", server.gateway);
    assert_eq!(get_body(&url).1.trim(), "hello from v1");

    // Nothing set yet: 404 for get and check.
    let out = ad(&server, "get", &semver_c, &[]);
    assert_eq!(field_of(&out).0, Some(1));
    assert_eq!(json_out(&out)["error"]["code"], "not_found");

    // Bad inputs: 422 naming the field; nothing stored.
    for (args, field) in [
        (vec!["--policy", "semver", "--range", "banana"], "range"),
        (vec!["--policy", "semver"], "range"),
        (vec!["--policy", "regex", "--regex", "build-(\\d+"], "regex"),
        (vec!["--policy", "regex"], "regex"),
        (
            vec!["--policy", "semver", "--range", "^1.2", "--interval", "29"],
            "intervalSeconds",
        ),
        (vec!["--policy", "digest", "--range", "^1.2"], "range"),
        (vec!["--policy", "digest", "--tag", "bad tag"], "tag"),
    ] {
        let out = ad(&server, "set", &semver_c, &args);
        assert_eq!(
            field_of(&out),
            (
                Some(1),
                Value::from("validation_failed"),
                Value::from(field)
            ),
            "{args:?}"
        );
    }
    assert_eq!(ad(&server, "get", &semver_c, &[]).status.code(), Some(1));

    // semver ^1.2: 1.3.0 over 1.2.9, never 2.0.0; deployed with trigger `auto`.
    let set = json_out(&ok(ad(
        &server,
        "set",
        &semver_c,
        &["--policy", "semver", "--range", "^1.2"],
    )));
    assert_eq!(set["policy"], "semver");
    assert_eq!(set["range"], "^1.2");
    assert_eq!(set["intervalSeconds"], 60);
    assert_eq!(set["enabled"], true);
    let before = deployments(&server, &semver_c).len();
    let decided = json_out(&ok(ad(&server, "check", &semver_c, &[])));
    assert_eq!(decided["decision"], "deploy", "{decided}");
    assert_eq!(decided["tag"], "1.3.0", "{decided}");
    assert_eq!(
        decided["digest"].as_str().unwrap(),
        env.skopeo_digest(&format!("{repo}:1.3.0"))
    );
    let d = settle(&server, &semver_c);
    assert_eq!(d["id"], decided["deploymentId"]);
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(d["trigger"], "auto");
    assert_eq!(d["actor"], "auto-deploy");
    assert_eq!(d["tag"], "1.3.0");
    assert_eq!(get_body(&url).1.trim(), "hello from v2");
    assert_eq!(deployments(&server, &semver_c).len(), before + 1);
    // Nothing changed: nothing decided, no new deployment; 2.0.0 is still never taken.
    let again = json_out(&ok(ad(&server, "check", &semver_c, &[])));
    assert_eq!(again["decision"], "none", "{again}");
    assert_eq!(again["tag"], "1.3.0");
    assert_eq!(deployments(&server, &semver_c).len(), before + 1);
    let got = json_out(&ok(ad(&server, "get", &semver_c, &[])));
    assert_eq!(got["lastTag"], "1.3.0");
    assert!(
        got["lastCheckedAt"].is_string() && got["lastError"].is_null(),
        "{got}"
    );

    // digest policy on `stable`: nothing while it is what runs; a retag is deployed.
    create(&server, &digest_c, &format!("{repo}:stable"));
    let durl = format!("{}/default/shop/{digest_c}/development/", server.gateway);
    assert_eq!(get_body(&durl).1.trim(), "hello from v1");
    ok(ad(
        &server,
        "set",
        &digest_c,
        &["--policy", "digest", "--interval", "30"],
    ));
    let none = json_out(&ok(ad(&server, "check", &digest_c, &[])));
    assert_eq!(none["decision"], "none", "{none}");
    let before = deployments(&server, &digest_c).len();
    env.copy_image("test/web:v2", &format!("{repo}:stable"));
    let decided = json_out(&ok(ad(&server, "check", &digest_c, &[])));
    assert_eq!(decided["decision"], "deploy", "{decided}");
    assert_eq!(decided["tag"], "stable");
    let d = settle(&server, &digest_c);
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(d["trigger"], "auto");
    assert_eq!(
        d["digest"].as_str().unwrap(),
        env.skopeo_digest(&format!("{repo}:stable"))
    );
    assert_eq!(get_body(&durl).1.trim(), "hello from v2");
    let after = deployments(&server, &digest_c).len();
    assert_eq!(after, before + 1);
    let again = json_out(&ok(ad(&server, "check", &digest_c, &[])));
    assert_eq!(again["decision"], "none", "{again}");
    assert_eq!(deployments(&server, &digest_c).len(), after);

    // Disable removes the settings.
    let off = json_out(&ok(ad(&server, "disable", &digest_c, &[])));
    assert_eq!(off["policy"], "digest");
    assert_eq!(ad(&server, "get", &digest_c, &[]).status.code(), Some(1));
    assert_eq!(ad(&server, "check", &digest_c, &[]).status.code(), Some(1));

    // A registry notification (the envelope the distribution registry posts) for a push of
    // 1.4.0 checks the semver component at once; without the secret it is a 401.
    let created = json_out(&ok(server.cli(&[
        "auto-deploy",
        "notification-secret",
        "--registry",
        "local",
        "-o",
        "json",
    ])));
    let secret = created["secret"].as_str().unwrap().to_owned();
    let hook = created["url"].as_str().unwrap().to_owned();
    assert!(
        hook.ends_with("/api/v1/registry-notifications/default/local"),
        "{hook}"
    );
    env.copy_image("test/web:v1", &format!("{repo}:1.4.0"));
    let envelope = serde_json::json!({"events": [{
        "id": "e1",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "repository": format!("test/auto-{pid}"),
            "tag": "1.4.0",
        },
    }]})
    .to_string();
    let post = |auth: Option<&str>| {
        let mut req = common::http()
            .post(format!(
                "{}/api/v1/registry-notifications/default/local",
                server.url
            ))
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(envelope.clone());
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap())
    };
    assert_eq!(post(None).0, 401);
    assert_eq!(post(Some("berth_rn_wrong")).0, 401);
    let before = deployments(&server, &semver_c).len();
    let (status, answer) = post(Some(&secret));
    assert_eq!(
        (status, answer["checks"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let mut found = None;
    for _ in 0..150 {
        let list = deployments(&server, &semver_c);
        if list.len() > before {
            found = Some(list[0].clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = found.expect("the notification deployed 1.4.0");
    assert_eq!(
        (d["tag"].as_str(), d["trigger"].as_str()),
        (Some("1.4.0"), Some("auto"))
    );
    let d = settle(&server, &semver_c);
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(get_body(&url).1.trim(), "hello from v1");

    // The API is described.
    let spec: Value = common::http()
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in [
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/auto-deploy/check",
        "/api/v1/orgs/{org}/registries/{registry}/notification-secret",
        "/api/v1/registry-notifications/{org}/{registry}",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from openapi.json"
        );
    }
}

#[test]
fn poller_deploys_without_being_asked() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let pid = std::process::id();
    let name = format!("berth-it-autop-{pid}");
    let _cleanup = Cleanup(vec![name.clone()]);
    let repo = format!("{}/test/autop-{pid}", env.registry);
    env.copy_image("test/web:v1", &format!("{repo}:build-9"));
    env.copy_image("test/web:v2", &format!("{repo}:build-10"));
    env.copy_image("test/web:v1", &format!("{repo}:other-99"));
    let (_dir, server) = setup(&env, "300");
    create(&server, &name, &format!("{repo}:build-9"));
    let before = deployments(&server, &name).len();
    // Numeric order on the first group: build-10 over build-9 (alphabetical would pick 9).
    let set = json_out(&ok(ad(
        &server,
        "set",
        &name,
        &[
            "--policy",
            "regex",
            "--regex",
            "build-(\\d+)",
            "--sort",
            "numeric",
        ],
    )));
    assert_eq!(set["sort"], "numeric");
    let mut deployed = None;
    for _ in 0..150 {
        let list = deployments(&server, &name);
        if list.len() > before {
            deployed = Some(list[0].clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = deployed.expect("the poller deployed within 30 s");
    assert_eq!(d["trigger"], "auto");
    assert_eq!(d["tag"], "build-10");
    let d = settle(&server, &name);
    assert_eq!(d["status"], "ready", "{d}");
    let url = format!("{}/default/shop/{name}/development/", server.gateway);
    assert_eq!(get_body(&url).1.trim(), "hello from v2");
    // The next check is an interval (≥ 30 s) away: no second deployment meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(deployments(&server, &name).len(), before + 1);
    let got = json_out(&ok(ad(&server, "get", &name, &[])));
    assert_eq!(got["lastTag"], "build-10");

    // Developers and up manage auto-deploy; viewers do not; the notification secret is for
    // admins.
    let token_of = |user: &str, role: &str| {
        ok(server.cli(&["user", "create", user, "--role", role]));
        json_out(&ok(server.cli(&[
            "token", "create", "--user", user, "--name", "t", "-o", "json",
        ])))["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let viewer = token_of("vera", "viewer");
    let dev = token_of("dave", "developer");
    let settings = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{name}/auto-deploy",
        server.url
    );
    let body = serde_json::json!({"policy": "semver", "range": "^1", "intervalSeconds": 30});
    let status = |req: reqwest::blocking::RequestBuilder| req.send().unwrap().status().as_u16();
    let c = common::http();
    assert_eq!(
        status(c.put(&settings).bearer_auth(&viewer).json(&body)),
        403
    );
    assert_eq!(status(c.get(&settings).bearer_auth(&viewer)), 403);
    assert_eq!(status(c.put(&settings).bearer_auth(&dev).json(&body)), 200);
    assert_eq!(
        status(c.post(format!("{settings}/check")).bearer_auth(&dev)),
        200
    );
    let secret_url = format!(
        "{}/api/v1/orgs/default/registries/local/notification-secret",
        server.url
    );
    assert_eq!(status(c.post(&secret_url).bearer_auth(&dev)), 403);
    assert_eq!(status(c.delete(&settings).bearer_auth(&dev)), 200);
}

/// A real CNCF distribution registry configured with berth as its notification endpoint: a push
/// of 1.1.0 makes the registry post its event envelope itself (with the secret as a header) and
/// berth deploys that tag at once (the poller is slowed to an hour, so only the notification can
/// have done it); a registry with a wrong secret is refused and deploys nothing.
#[test]
fn a_real_registry_push_notification_deploys() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let (_dir, server) = setup(&env, "3600000");
    let pid = std::process::id();
    let component = format!("berth-it-notify-{pid}");
    let _cleanup = Cleanup(vec![component.clone()]);
    let host = format!("127.0.0.1:{}", berth_testkit::free_port());
    ok(server.cli(&[
        "registry",
        "add",
        "notif",
        "--host",
        &host,
        "--auth",
        "anonymous",
    ]));
    let created = json_out(&ok(server.cli(&[
        "auto-deploy",
        "notification-secret",
        "--registry",
        "notif",
        "-o",
        "json",
    ])));
    let secret = created["secret"].as_str().unwrap().to_owned();
    let url = created["url"].as_str().unwrap().to_owned();

    let registry = NotifyingRegistry::start(&host, &url, &secret);
    let copy = |from: &str, tag: &str| {
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg("--src-creds")
            .arg(format!("{}:{}", env.user, env.password))
            .arg(format!("docker://{}/{from}", env.registry))
            .arg(format!("docker://{host}/notify/web:{tag}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    copy("test/web:v1", "1.0.0");
    ok(server.cli(&[
        "component",
        "create",
        &component,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "notif",
        "--image",
        &format!("{host}/notify/web:1.0.0"),
        "--port",
        "8080",
    ]));
    ok(ad(
        &server,
        "set",
        &component,
        &["--policy", "semver", "--range", "^1"],
    ));
    assert!(deployments(&server, &component).is_empty());

    copy("test/web:v2", "1.1.0");
    let digest = env.skopeo_digest(&format!("{host}/notify/web:1.1.0"));
    let mut found = None;
    for _ in 0..150 {
        if let Some(d) = deployments(&server, &component).first() {
            found = Some(d.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = found.expect("the registry's push notification made berth deploy 1.1.0");
    assert_eq!(
        (
            d["tag"].as_str(),
            d["trigger"].as_str(),
            d["digest"].as_str()
        ),
        (Some("1.1.0"), Some("auto"), Some(digest.as_str())),
        "{d}"
    );
    assert!(
        server
            .drain_logs()
            .iter()
            .any(|l| l.contains("registry notification")),
        "berth logged the registry's notification"
    );
    // The registry's own pull is not trusted by Podman here (plain HTTP on a random port), so
    // the rollout's outcome is not what this test is about: let it settle before cleanup.
    settle(&server, &component);
    drop(registry);

    // Same registry setup with a wrong secret: its notifications are refused (401) and a new
    // tag deploys nothing.
    let wrong = NotifyingRegistry::start(&host, &url, "berth_rn_wrong");
    let before = deployments(&server, &component).len();
    copy("test/web:v1", "1.2.0");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(deployments(&server, &component).len(), before);
    drop(wrong);
    ok(server.cli(&[
        "component",
        "delete",
        &component,
        "--project",
        "shop",
        "--yes",
    ]));
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("berth-it-notify-{pid}")));
}

/// docker-registry (CNCF distribution) on `host`, posting its events to `url` with the
/// notification secret as a bearer token. Stopped on drop; its storage outlives it (a temp
/// dir of this test process), so a second instance serves the same images.
struct NotifyingRegistry {
    _process: berth_testkit::RegistryProcess,
    _dir: tempfile::TempDir,
}

impl NotifyingRegistry {
    fn start(host: &str, url: &str, secret: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "version: 0.1\nlog: {{level: info}}\nstorage:\n  filesystem: {{rootdirectory: {data}}}\nhttp:\n  addr: {host}\nnotifications:\n  endpoints:\n    - name: berth\n      url: {url}\n      headers:\n        Authorization: [\"Bearer {secret}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n",
            data = std::env::temp_dir()
                .join(format!("berth-it-notify-{}", std::process::id()))
                .display()
        );
        let log = dir.path().join("registry.log");
        let process = berth_testkit::RegistryProcess::start(dir.path(), host, &config, Some(&log));
        Self {
            _process: process,
            _dir: dir,
        }
    }
}
