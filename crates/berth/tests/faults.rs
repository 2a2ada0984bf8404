//! Fault injection on the real binary, registry and engine: a registry that dies during a
//! deploy, SIGTERM with a request in flight, and a data directory on a full filesystem.
//! (`kill -9` during rollouts and an engine that goes away are in restart.rs.)
// Skips say why, and the fault tests show the errors users would see.
#![allow(clippy::print_stderr)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProc, add_local_registry, get_body, http, json_out, ok, push_unique, stderr};
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

/// Removes the component's containers and the images pulled from `images` (a repository
/// prefix such as `127.0.0.1:PORT/`) on drop.
struct Cleanup {
    component: String,
    images: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers(&self.component) {
            let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        }
        if let Some(prefix) = &self.images {
            // By id: images pulled by digest have no tag.
            let out = Command::new("podman")
                .args(["images", "--format", "{{.Repository}} {{.ID}}"])
                .output()
                .unwrap();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((repo, id)) = line.split_once(' ')
                    && repo.starts_with(prefix.as_str())
                {
                    let _ = Command::new("podman").args(["rmi", "-f", id]).output();
                }
            }
        }
    }
}

/// A private CNCF distribution registry (`docker-registry`) on a free loopback port, serving
/// TLS with the test environment's server certificate. The engine trusts it through a
/// `certs.d/<host:port>/ca.crt` drop-in (Podman's, and Docker's when dockerd is installed)
/// that lives as long as this value.
struct OwnRegistry {
    host: String,
    process: berth_testkit::RegistryProcess,
    _dir: tempfile::TempDir,
    certs_d: PathBuf,
    docker_certs_d: Option<PathBuf>,
}

impl OwnRegistry {
    fn start(env: &berth_testkit::TestEnv) -> Option<Self> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("BERTH_REQUIRE_ENGINE").is_none(),
                "docker-registry (Debian package docker-registry) is not installed"
            );
            eprintln!("skipping: docker-registry is not installed");
            return None;
        }
        let tls = env.ca_file.parent().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = berth_testkit::free_port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {host}\n  tls:\n    certificate: {}\n    key: {}\n",
            dir.path().join("data").display(),
            tls.join("server.crt").display(),
            tls.join("server.key").display(),
        );
        let certs_d = PathBuf::from("/etc/containers/certs.d").join(&host);
        // A Docker engine reads its per-registry CAs from /etc/docker/certs.d.
        let docker_certs_d = Command::new("dockerd")
            .arg("--version")
            .output()
            .is_ok()
            .then(|| PathBuf::from("/etc/docker/certs.d").join(&host));
        for dir in std::iter::once(&certs_d).chain(&docker_certs_d) {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::copy(&env.ca_file, dir.join("ca.crt")).unwrap();
        }
        let process = berth_testkit::RegistryProcess::start(dir.path(), &host, &config, None);
        Some(Self {
            host,
            process,
            _dir: dir,
            certs_d,
            docker_certs_d,
        })
    }

    /// Copies `from` (a repository:tag on the shared test registry) here as `to`.
    fn copy_from(&self, env: &berth_testkit::TestEnv, from: &str, to: &str) {
        let creds = format!("{}:{}", env.user, env.password);
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--src-creds",
                &creds,
                "--dest-cert-dir",
            ])
            .arg(&self.certs_d)
            .arg(format!("docker://{}/{from}", env.registry))
            .arg(format!("docker://{}/{to}", self.host))
            .output()
            .expect("running skopeo copy");
        assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    }

    /// An image of its own built from `base`, pushed here as `name` (see `push_unique`).
    fn push_unique(&self, env: &berth_testkit::TestEnv, base: &str, name: &str) -> String {
        let image = format!("{}/{name}", self.host);
        let certs = self.certs_d.to_str().unwrap();
        push_unique(env, base, &image, &["--cert-dir", certs]);
        image
    }

    fn kill(&mut self) {
        self.process.kill();
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.certs_d);
        if let Some(dir) = &self.docker_certs_d {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn deployment(server: &ServerProc, id: &str) -> Value {
    json_out(&ok(server.cli(&["deployment", "get", id, "-o", "json"])))
}

fn deployments(server: &ServerProc, component: &str) -> Vec<Value> {
    let url = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{component}/deployments",
        server.url
    );
    let body: Value = http()
        .get(url)
        .bearer_auth(server.admin_token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["items"].as_array().cloned().unwrap_or_default()
}

/// The gateway answers `hello from v1`: asserted on every call.
fn assert_v1(url: &str, when: &str) {
    let (code, body) = get_body(url);
    assert_eq!(
        (code, body.trim()),
        (200, "hello from v1"),
        "the old version must keep serving {when}"
    );
}

#[test]
fn registry_dies_during_a_deploy_old_version_keeps_serving() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let Some(mut registry) = OwnRegistry::start(&env) else {
        return;
    };
    let pid = std::process::id();
    // Images of their own (new digests): each deploy of them pulls from this registry.
    let v1 = registry.push_unique(&env, "test/web:v1", &format!("test/web:v1-{pid}"));
    let v2 = registry.push_unique(&env, "test/web:v2", &format!("test/web:v2-{pid}"));
    let slow = format!("{}/test/never-ready:{pid}", registry.host);
    registry.copy_from(
        &env,
        "test/never-ready:latest",
        &format!("test/never-ready:{pid}"),
    );
    let component = format!("berth-it-regdown-{pid}");
    let _cleanup = Cleanup {
        component: component.clone(),
        images: Some(format!("{}/", registry.host)),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start_with(
        dir.path(),
        &[("BERTH_READY_TIMEOUT", "8"), ("BERTH_DRAIN_MS", "200")],
    );
    ok(server.cli(&[
        "registry",
        "add",
        "own",
        "--host",
        &registry.host,
        "--auth",
        "anonymous",
        "--ca-file",
        env.ca_file.to_str().unwrap(),
    ]));
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
        "component",
        "create",
        &component,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "own",
        "--image",
        &v1,
        "--port",
        "8080",
    ]));
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));
    let url = format!("{}/default/shop/{component}/development/", server.gateway);
    assert_v1(&url, "after the first deploy");

    // Occupy the workload's runner with a release that never becomes ready, so the next
    // deployment is accepted (its digest resolved at the registry) but pulled only later.
    let deploy_image = |image: &str| {
        json_out(&ok(server.cli(&[
            "deploy",
            "--project",
            "shop",
            "--component",
            &component,
            "--image",
            image,
            "-o",
            "json",
        ])))["deploymentId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let busy = deploy_image(&slow);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Its instance started and is being probed.
        let events = common::stdout(&ok(server.cli(&[
            "deployment",
            "events",
            &busy,
            "-o",
            "json",
        ])));
        if events.contains("starting ") {
            break;
        }
        assert!(Instant::now() < deadline, "{events}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let queued = deploy_image(&v2);
    assert_eq!(deployment(&server, &queued)["status"], "pending");

    // The registry dies between the digest lookup and the pull.
    registry.kill();
    let deadline = Instant::now() + Duration::from_secs(90);
    let failed = loop {
        assert_v1(&url, "while the registry is down");
        let d = deployment(&server, &queued);
        if d["status"] != "pending" && d["status"] != "pulling" {
            break d;
        }
        assert!(Instant::now() < deadline, "still {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap_or_default();
    eprintln!("deployment while the registry is down: failed: {reason}");
    assert!(
        reason.contains("pull") && reason.contains(&registry.host),
        "the reason names the pull and the registry: {failed}"
    );
    assert_eq!(
        deployment(&server, &busy)["status"],
        "rolled-back",
        "the never-ready release did not take over"
    );
    assert_v1(&url, "after the failed deployment");
    assert_eq!(containers(&component).len(), 1, "only v1 runs");

    // A deploy request while the registry is down: 502 naming the registry step, and no
    // deployment is created.
    let before = deployments(&server, &component).len();
    let resp = http()
        .post(format!(
            "{}/api/v1/orgs/default/projects/shop/components/{component}/deploy",
            server.url
        ))
        .bearer_auth(server.admin_token())
        .json(&json!({ "image": v2 }))
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "registry_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    eprintln!("deploy request while the registry is down: 502 {message}");
    assert!(
        message.starts_with("registry connect step failed")
            && message.contains(&format!("cannot connect to {}:", registry.host)),
        "{body}"
    );
    assert_eq!(
        deployments(&server, &component).len(),
        before,
        "nothing created"
    );
    // The CLI says the same, and fails.
    let out = server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--image",
        &v2,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("step failed"), "{}", stderr(&out));
    assert_v1(&url, "at the end");
}

/// Writes an HTTP/1.1 request whose body arrives in two parts, `pause` apart, calling
/// `between` after the first part. Returns the raw response.
fn slow_request(
    addr: &str,
    head: &str,
    body: &[u8],
    pause: Duration,
    between: impl FnOnce(),
) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{head}Content-Length: {}\r\n\r\n", body.len()).unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    between();
    std::thread::sleep(pause);
    s.write_all(&body[half..]).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProc::start(dir.path());
    let addr = server.url.trim_start_matches("http://").to_owned();
    let token = server.admin_token();
    let pid = server.child.id().to_string();
    let body = serde_json::to_vec(&json!({
        "name": "in-flight",
        "description": "x".repeat(900),
    }))
    .unwrap();
    let head = format!(
        "POST /api/v1/orgs/default/projects HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    );
    let sent = Instant::now();
    let mut refused = None;
    let response = slow_request(&addr, &head, &body, Duration::from_secs(2), || {
        // SIGTERM while the request's body is still arriving.
        ok(Command::new("kill").args(["-TERM", &pid]).output().unwrap());
        std::thread::sleep(Duration::from_millis(500));
        // New connections are no longer accepted.
        refused = Some(TcpStream::connect(&addr).is_err());
    });
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the request in flight completes: {response}"
    );
    assert!(response.contains("\"in-flight\""), "{response}");
    assert_eq!(
        refused,
        Some(true),
        "a new connection was accepted after SIGTERM"
    );
    // Already signalled: it exits by itself, with status 0, well within the 30 s grace.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within 10 s of the response"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(15));
    let logs = server.drain_logs().join("\n");
    assert!(logs.contains("shutting down"), "{logs}");

    // The write was committed: a restart on the same data dir has it.
    drop(server);
    let server = ServerProc::start(dir.path());
    let out = json_out(&ok(server.cli(&[
        "project",
        "get",
        "in-flight",
        "-o",
        "json",
    ])));
    assert_eq!(out["name"], "in-flight", "{out}");
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when mounting is not permitted here (and not required).
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("running mount");
        if !out.status.success() {
            assert!(
                std::env::var_os("BERTH_REQUIRE_ENGINE").is_none(),
                "mounting a tmpfs failed (needs root): {}",
                stderr(&out)
            );
            eprintln!("skipping: cannot mount a tmpfs: {}", stderr(&out));
            return None;
        }
        Some(Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
            break;
        }
    }
    // Fill the last partial block too.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn full_data_dir_clear_errors_and_an_intact_database() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let Some(_mount) = Tmpfs::mount(&data, "8m") else {
        return;
    };
    let pid = std::process::id();
    let component = format!("berth-it-full-{pid}");
    let mut server = ServerProc::start(&data);
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
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
    let configs = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{component}/environments/development/configs",
        server.url
    );
    let token = server.admin_token();
    let set = |name: &str, value: &str| {
        http()
            .patch(&configs)
            .bearer_auth(&token)
            .json(&json!({
                "set": [{ "kind": "file", "name": name, "value": value }],
                "apply": false,
            }))
            .timeout(Duration::from_secs(30))
            .send()
            .expect("an answer, not a hang")
    };
    let r = set("/etc/before.txt", "written before the disk filled");
    assert!(r.status().is_success(), "{:?}", r.text());

    let filler = data.join("filler");
    fill(&filler);
    // Large writes (each bigger than anything SQLite could have preallocated).
    let big = "y".repeat(700 * 1024);
    let mut full_errors = 0;
    for i in 0..6 {
        let r = set(&format!("/etc/big-{i}.txt"), &big);
        let code = r.status().as_u16();
        let text = r.text().unwrap();
        eprintln!(
            "write {i} on a full disk: {code} {}",
            &text[..text.len().min(300)]
        );
        if code < 300 {
            continue;
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a JSON error body ({e}): {code} {text}"));
        assert_eq!(code, 507, "{body}");
        assert_eq!(body["error"]["code"], "storage_full", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("filesystem is full"),
            "the error names the storage problem: {body}"
        );
        full_errors += 1;
    }
    assert!(full_errors > 0, "no write failed on a full filesystem");
    // Also a project (another table, another code path).
    let r = http()
        .post(format!("{}/api/v1/orgs/default/projects", server.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "after-full", "description": "z".repeat(1000) }))
        .timeout(Duration::from_secs(30))
        .send()
        .expect("an answer, not a hang");
    let code = r.status().as_u16();
    let text = r.text().unwrap();
    assert!(
        code == 201 || (code == 507 && text.contains("storage_full")),
        "{code} {text}"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    assert_eq!(get_body(&format!("{}/healthz", server.url)).0, 200);

    // Space comes back: earlier data is there and new writes work.
    std::fs::remove_file(&filler).unwrap();
    let r = set("/etc/after.txt", "written after the space came back");
    assert!(r.status().is_success(), "{:?}", r.text());
    let list: Value = http()
        .get(&configs)
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"/etc/before.txt") && names.contains(&"/etc/after.txt"),
        "{list}"
    );
    ok(server.cli(&["project", "get", "shop"]));
    let status = server.sigterm();
    assert!(status.success(), "{status:?}");

    // The database file passes SQLite's own check, and the server starts on it again.
    if Command::new("sqlite3").arg("--version").output().is_ok() {
        let db = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "db"))
            .expect("a .db file in the data dir");
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("PRAGMA integrity_check;")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
    drop(server);
    let server = ServerProc::start(&data);
    ok(server.cli(&["project", "get", "shop"]));
}
