//! Configs and secrets end to end on the real engine: values reach the container, a change is a
//! rolling restart without failed requests, and secret values appear in no answer, CLI output
//! or log line.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProc, cli_stdin, http, json_out, ok, stderr, stdout};
use serde_json::Value;

const SECRET_ENV: &str = "t0p-s3cret-env-value";
const SECRET_FILE: &str = "k3y-s3cret-file-content";

fn running_container(component: &str) -> String {
    let out = Command::new("podman")
        .args(["ps", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=berth.component={component}"))
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

fn exec(container: &str, script: &str) -> String {
    let out = Command::new("podman")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let out = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label=berth.component={}", self.0))
            .output()
            .unwrap();
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("podman").args(["rm", "-f", name]).output();
        }
    }
}

/// Waits until the newest deployment in development is final; returns it.
fn settle(server: &ServerProc, component: &str) -> Value {
    for _ in 0..300 {
        let list = json_out(&ok(server.cli(&[
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
        ])));
        let newest = list["items"][0].clone();
        if matches!(
            newest["status"].as_str(),
            Some("ready" | "failed" | "rolled-back")
        ) {
            return newest;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("deployment did not settle");
}

#[test]
fn configs_and_secrets_reach_the_container_and_nowhere_else() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-cfg-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let server = ServerProc::start_with(dir.path(), &[("BERTH_DRAIN_MS", "500")]);
    let mut outputs = String::new();
    let mut run = |o: std::process::Output| {
        outputs.push_str(&stdout(&o));
        outputs.push_str(&stderr(&o));
        ok(o)
    };
    run(cli_stdin(
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
    run(server.cli(&["project", "create", "shop"]));
    run(server.cli(&[
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
    run(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));
    let url = format!("{}/default/shop/{component}/development/", server.gateway);

    // Traffic flows through every config change below.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, failures, url) = (stop.clone(), failures.clone(), url.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match http().get(&url).timeout(Duration::from_secs(5)).send() {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.lock().unwrap().push(format!("{}", r.status())),
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
            n
        })
    };

    let t = [
        "--project",
        "shop",
        "--component",
        &component,
        "--env",
        "development",
    ];
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["config".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(t.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&["set", "GREETING=hello world"]);
    run(server.cli(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    settle(&server, &component);
    let a = args(&["set", "--secret", "API_TOKEN"]);
    run(cli_stdin(
        &server,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &format!("{SECRET_ENV}\n"),
    ));
    settle(&server, &component);
    let secret_file = dir.path().join("key");
    std::fs::write(&secret_file, SECRET_FILE).unwrap();
    let a = args(&[
        "set-file",
        "--secret",
        "--path",
        "/run/secrets/key",
        "--from-file",
        secret_file.to_str().unwrap(),
    ]);
    run(server.cli(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    settle(&server, &component);
    let page = dir.path().join("page.txt");
    std::fs::write(&page, "served from a config file\n").unwrap();
    let a = args(&[
        "set-file",
        "--path",
        "/www/config.txt",
        "--from-file",
        page.to_str().unwrap(),
    ]);
    run(server.cli(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let last = settle(&server, &component);
    assert_eq!(last["status"], "ready", "{last}");
    assert_eq!(last["trigger"], "config");

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let requests = load.join().unwrap();
    assert!(requests > 20, "{requests} requests");
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "failed requests during config rollouts"
    );

    // The values are in the container.
    let c = running_container(&component);
    assert_eq!(exec(&c, "echo $GREETING"), "hello world");
    assert_eq!(exec(&c, "echo $API_TOKEN"), SECRET_ENV);
    assert_eq!(exec(&c, "cat /run/secrets/key"), SECRET_FILE);
    assert_eq!(
        exec(
            &c,
            "touch /run/secrets/key 2>/dev/null && echo writable || echo read-only"
        ),
        "read-only"
    );
    let body = http()
        .get(format!("{url}config.txt"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body.trim(), "served from a config file");

    // Listing shows the plain value and hides the secret ones.
    let list = json_out(&run(server.cli(
        &args(&["list", "-o", "json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{list}");
    for item in items {
        match item["name"].as_str().unwrap() {
            "GREETING" => assert_eq!(item["value"], "hello world"),
            "API_TOKEN" | "/run/secrets/key" => assert_eq!(item["value"], Value::Null),
            _ => {}
        }
    }
    // Production has its own (empty) configs.
    let prod = json_out(&run(server.cli(&[
        "config",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "--env",
        "production",
        "-o",
        "json",
    ])));
    assert_eq!(prod["items"], serde_json::json!([]));

    // Bad input: precise 422s, nothing half-applied.
    let token = server.admin_token();
    let cfg_url = format!(
        "{}/api/v1/orgs/default/projects/shop/components/{component}/environments/development/configs",
        server.url
    );
    for (body, field) in [
        (
            serde_json::json!({"set": [{"kind": "env", "name": "OK", "value": "1"}, {"kind": "env", "name": "1BAD", "value": "x"}]}),
            "set[1].name",
        ),
        (
            serde_json::json!({"set": [{"kind": "file", "name": "/etc/../passwd", "value": "x"}]}),
            "set[0].name",
        ),
        (
            serde_json::json!({"set": [{"kind": "file", "name": "relative/path", "value": "x"}]}),
            "set[0].name",
        ),
        (
            serde_json::json!({"set": [{"kind": "vault", "name": "A", "value": "x"}]}),
            "set[0].kind",
        ),
        (
            serde_json::json!({"unset": [{"class": "other", "name": "A"}]}),
            "unset[0].class",
        ),
    ] {
        let resp = http()
            .patch(&cfg_url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{body}");
        let err: Value = resp.json().unwrap();
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let after = json_out(&run(server.cli(
        &args(&["list", "-o", "json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )));
    assert!(
        !after.to_string().contains("\"OK\""),
        "nothing half-applied: {after}"
    );
    let resp = http()
        .patch(cfg_url.replace("development", "staging"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"set": [{"kind": "env", "name": "A", "value": "1"}]}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // The secrets appear in no API answer, CLI output or server log line.
    let deployments = stdout(&run(server.cli(&[
        "deployment",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    let mut everything = outputs.clone();
    everything.push_str(&deployments);
    for d in serde_json::from_str::<Value>(&deployments).unwrap()["items"]
        .as_array()
        .unwrap()
    {
        let id = d["id"].as_str().unwrap();
        everything.push_str(&stdout(&server.cli(&[
            "deployment",
            "events",
            id,
            "-o",
            "json",
        ])));
    }
    everything.push_str(&server.drain_logs().join("\n"));
    for secret in [SECRET_ENV, SECRET_FILE] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    for file in ["berth.db", "berth.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            assert!(
                !bytes
                    .windows(SECRET_ENV.len())
                    .any(|w| w == SECRET_ENV.as_bytes()),
                "{file}"
            );
        }
    }
}
