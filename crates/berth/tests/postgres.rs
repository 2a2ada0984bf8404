//! Two `berth serve` processes on one PostgreSQL database (docs/postgres.md): both serve the
//! API and the gateway, one leads. A deployment requested through the follower is run by the
//! leader; after `kill -9` of the leader the follower takes over within 15 s and its reconciler
//! brings back an instance that died while nobody led.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProc, add_local_registry, http, json_out, ok, stderr, stdout};
use serde_json::Value;

fn containers(component: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.State}} {{.Labels}}",
            "--filter",
        ])
        .arg(format!("label=berth.component={component}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for line in containers(&self.0) {
            let name = line.split_whitespace().next().unwrap_or_default();
            let _ = Command::new("podman").args(["rm", "-f", name]).output();
        }
    }
}

fn readyz(server: &ServerProc) -> Value {
    http()
        .get(format!("{}/readyz", server.url))
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Waits until `server` says it has `role`; returns how long that took.
fn wait_role(server: &ServerProc, role: &str, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let r = readyz(server);
        if r["role"] == role {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < timeout, "not {role} after {timeout:?}: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body `url` answers with within `timeout`, once it contains `want`.
fn wait_body(url: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let body = http()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .unwrap_or_default();
        if body.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answered {body:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies the owner-only file `name` of one data dir to another (as docs/postgres.md says).
fn copy_owner_only(from: &Path, to: &Path, name: &str) {
    std::fs::copy(from.join(name), to.join(name)).unwrap();
    std::fs::set_permissions(to.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn two_servers_one_database_follower_deploys_and_takes_over() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let Some(db) = env.fresh_postgres_database() else {
        return;
    };
    let component = format!("berth-it-ha-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let envs = [
        ("BERTH_DATABASE_URL", db.as_str()),
        ("BERTH_READY_TIMEOUT", "30"),
        ("BERTH_DRAIN_MS", "300"),
    ];
    let mut a = ServerProc::start_with(dir_a.path(), &envs);
    assert!(a.stdout.contains("Admin token"), "{}", a.stdout);
    // The second server gets the first one's master key (and, for the CLI, its admin token).
    copy_owner_only(dir_a.path(), dir_b.path(), "master.key");
    copy_owner_only(dir_a.path(), dir_b.path(), "admin-token");
    // PostgreSQL's text has no NUL character: one in a path segment or a body is bad input
    // (a 422 naming the reason), never a 500.
    for (method, path, body) in [
        ("GET", "/api/v1/orgs/a%00b/projects", None),
        (
            "POST",
            "/api/v1/tokens",
            Some(serde_json::json!({"user": "a\u{0}b", "name": "t"})),
        ),
    ] {
        let mut req = http()
            .request(method.parse().unwrap(), format!("{}{path}", a.url))
            .bearer_auth(a.admin_token());
        if let Some(body) = &body {
            req = req.json(body);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        assert!(
            (400..500).contains(&status) && text.contains("NUL"),
            "{method} {path}: {status} {text}"
        );
    }
    let b = ServerProc::start_with(dir_b.path(), &envs);
    assert!(
        !b.stdout.contains("Admin token"),
        "bootstrapped once: {}",
        b.stdout
    );

    // A started first and leads; B follows. Both are ready and say which store they use.
    wait_role(&a, "leader", Duration::from_secs(20));
    let rb = readyz(&b);
    assert_eq!(rb["role"], "follower", "{rb}");
    assert_eq!(rb["status"], "ready", "{rb}");
    assert_eq!(rb["store"]["detail"], "postgresql answers", "{rb}");

    // A server with another master key refuses to start on this database.
    let dir_c = tempfile::tempdir().unwrap();
    let refused = Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
        ])
        .args(["--internal-gateway-listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir_c.path())
        .env("BERTH_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not the master key this database"),
        "{}",
        stderr(&refused)
    );

    // What one server writes, the other reads.
    add_local_registry(&b, &env, None);
    ok(a.cli(&["project", "create", "shop"]));
    ok(b.cli(&[
        "component",
        "create",
        &component,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "local",
        "--image",
        &format!("{}/test/web:v1", env.registry),
        "--port",
        "8080",
    ]));
    let listed = stdout(&ok(a.cli(&[
        "component",
        "list",
        "--project",
        "shop",
        "-o",
        "json",
    ])));
    assert!(listed.contains(&component), "{listed}");

    // A deployment requested through the follower: the leader runs it.
    let d = json_out(&ok(b.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
        "-o",
        "json",
    ])));
    assert_eq!(d["status"], "ready", "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let path = format!("/default/shop/{component}/development/");
    // Both gateways route it (the follower's from the store and what runs).
    wait_body(
        &format!("{}{path}", a.gateway),
        "hello from v1",
        Duration::from_secs(10),
    );
    wait_body(
        &format!("{}{path}", b.gateway),
        "hello from v1",
        Duration::from_secs(10),
    );
    assert_eq!(
        containers(&component).len(),
        1,
        "{:?}",
        containers(&component)
    );

    // kill -9 the leader, and while nobody leads, the service's process dies too.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    let name = containers(&component)[0]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    ok(Command::new("podman")
        .args(["kill", &name])
        .output()
        .unwrap());

    // B takes over within 15 s …
    wait_role(&b, "leader", Duration::from_secs(15));
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "takeover took {took:?}");
    // … and leads: its reconciler (only a leader's changes the engine) starts the service
    // again and says so on the deployment.
    let deadline = killed + Duration::from_secs(40);
    loop {
        let events = stdout(&ok(b.cli(&["deployment", "events", &id, "-o", "json"])));
        if events.contains("liveness") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not restarted by the new leader: {events}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_body(
        &format!("{}{path}", b.gateway),
        "hello from v1",
        Duration::from_secs(20),
    );

    // The new leader deploys; what the old leader started was adopted, not duplicated.
    let d2 = json_out(&ok(b.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--tag",
        "v2",
        "--wait",
        "-o",
        "json",
    ])));
    assert_eq!(d2["status"], "ready", "{d2}");
    wait_body(
        &format!("{}{path}", b.gateway),
        "hello from v2",
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = containers(&component);
        if c.len() == 1 && c[0].contains(d2["id"].as_str().unwrap()) {
            break;
        }
        assert!(Instant::now() < deadline, "one instance of v2 only: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_bad_database_url_fails_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
        ])
        .args(["--internal-gateway-listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        // Nothing listens on port 1.
        .env(
            "BERTH_DATABASE_URL",
            "postgres://berth:hunter2-s3cret@127.0.0.1:1/berth",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let mysql = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BERTH_DATABASE_URL", "mysql://u:p@127.0.0.1/x")
        .output()
        .unwrap();
    assert!(!mysql.status.success());
    assert!(
        stderr(&mysql).contains("only postgres://"),
        "{}",
        stderr(&mysql)
    );
}
