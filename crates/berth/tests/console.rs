//! The web console in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/console.mjs`), against the real `berth serve`, registry and engine. The script
//! signs in, adds the basic-auth test registry and tests it, creates a component with the live
//! image preview, deploys it from the component page and watches it become `ready` (SSE),
//! promotes it, gets an invalid endpoints.yaml refused inline, uploads a schema, follows the
//! runtime logs, sets a config and a write-only secret, creates a manual task and runs it with
//! arguments (logs, exit code), creates a CI token and reads the snippets, creates an API token,
//! reads the audit log, and checks that cross-site and token-less POSTs are refused; this test
//! then checks what the page showed against the server: the URLs answer, the tokens work, the
//! execution is recorded, nothing forged was created.
//!
//! `BERTH_CONSOLE_SCREENSHOTS=DIR` keeps screenshots of the main pages (the README's are made
//! with `BERTH_CONSOLE_SCREENSHOTS=$PWD/docs/screenshots`).
//!
//! Skips (with the reason) when node, Chromium or the script's `npm ci` are missing, unless
//! `BERTH_REQUIRE_ENGINE=1` (scripts/test installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ServerProc, http, stderr, stdout};
use serde_json::Value;

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(out) = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label=berth.component={}", self.0))
            .output()
        else {
            return;
        };
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("podman").args(["rm", "-f", name]).output();
        }
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("BERTH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed (apt-get install nodejs)".into());
    }
    if !chromium().exists() {
        return Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium().display()
        ));
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "playwright-core is not installed (cd {} && npm ci)",
            browser_dir().display()
        ));
    }
    None
}

#[test]
fn console_signs_in_registers_creates_and_deploys_in_chromium() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    if let Some(why) = missing_tools() {
        if std::env::var("BERTH_REQUIRE_ENGINE").as_deref() == Ok("1") {
            panic!("BERTH_REQUIRE_ENGINE=1 but the browser test cannot run: {why}");
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping: {why}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-console-{}", std::process::id());
    let task = format!("berth-it-console-task-{}", std::process::id());
    let _cleanup = (Cleanup(component.clone()), Cleanup(task.clone()));
    let server = ServerProc::start_with(dir.path(), &[("BERTH_DRAIN_MS", "500")]);

    // The project comes from the CLI; one more carries markup that must show as text.
    let xss = r#"<script>alert("xss")</script>"#;
    for args in [
        vec!["project", "create", "shop", "--display-name", "Shop"],
        vec![
            "project",
            "create",
            "evil",
            "--display-name",
            r#""><img src=x onerror=alert(1)>"#,
            "--description",
            xss,
        ],
    ] {
        let out = server.cli(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    let screenshots = std::env::var("BERTH_CONSOLE_SCREENSHOTS").unwrap_or_default();
    let out = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .arg(&server.url)
        .arg(server.admin_token())
        .env("BERTH_CONSOLE_PROJECT", "shop")
        .env("BERTH_CONSOLE_COMPONENT", &component)
        .env("BERTH_CONSOLE_TASK", &task)
        .env("BERTH_CONSOLE_XSS", xss)
        .env("BERTH_CONSOLE_SCREENSHOTS", &screenshots)
        .env("BERTH_TEST_REGISTRY", &env.registry)
        .env("BERTH_TEST_USER", &env.user)
        .env("BERTH_TEST_PASSWORD", &env.password)
        .env("BERTH_CHROMIUM", chromium())
        .output()
        .expect("running node");
    let log = stderr(&out);
    assert!(
        out.status.success(),
        "the browser script failed:\n{log}\nstdout: {}\nserver log (tail):\n{}",
        stdout(&out),
        server
            .drain_logs()
            .iter()
            .rev()
            .take(40)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let result: Value = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no RESULT line:\n{}\n{log}", stdout(&out)));

    // The URLs the page showed are the gateway's, and both environments serve v1 (checked
    // outside the browser).
    for (key, env_name) in [("url", "development"), ("prodUrl", "production")] {
        let url = result[key].as_str().unwrap();
        assert_eq!(
            url,
            format!("{}/default/shop/{component}/{env_name}/", server.gateway)
        );
        let resp = http()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        assert_eq!(resp.text().unwrap().trim(), "hello from v1", "{url}");
    }

    // What the browser did went through the API's rules: the same state the CLI reads.
    let list = server.cli(&[
        "deployment",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&stdout(&list)).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "one deploy and one promotion (configs were saved without a rollout): {list}"
    );
    let promoted = &items[0];
    assert_eq!(promoted["environment"], "production", "{list}");
    assert_eq!(promoted["trigger"], "promote");
    let d = &items[1];
    assert_eq!(d["environment"], "development", "{list}");
    assert_eq!(d["status"], "ready", "{list}");
    assert_eq!(d["trigger"], "user");
    assert_eq!(promoted["digest"], d["digest"]);
    assert_eq!(d["actor"], "admin/bootstrap");
    assert_eq!(
        d["digest"].as_str().unwrap(),
        env.skopeo_digest(&format!("{}/test/web:v1", env.registry))
    );
    // …and the console's POSTs are in the audit log.
    let audit = server.cli(&["audit", "list", "-o", "json"]);
    let audit = stdout(&audit);
    let base = format!("/orgs/default/projects/shop/components/{component}");
    for path in [
        "/login".to_owned(),
        "/orgs/default/settings/registries".to_owned(),
        "/orgs/default/projects/shop/components".to_owned(),
        format!("{base}/deploy"),
        format!("{base}/promote"),
        format!("{base}/endpoints"),
        format!("{base}/schemas"),
        format!("{base}/configs"),
        format!("{base}/ci/tokens"),
        format!("/orgs/default/projects/shop/components/{task}/runs"),
        "/orgs/default/settings/tokens".to_owned(),
    ] {
        assert!(
            audit.contains(&format!("\"{path}\"")),
            "{path} not audited:\n{audit}"
        );
    }

    // The endpoints file and the schema the browser saved are the API's.
    let endpoints = server.cli(&[
        "endpoints",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ]);
    assert!(endpoints.status.success(), "{}", stderr(&endpoints));
    let endpoints: Value = serde_json::from_str(&stdout(&endpoints)).unwrap();
    assert_eq!(endpoints["fileName"], "endpoints.yaml", "{endpoints}");
    assert_eq!(endpoints["schemas"][0], "openapi.yaml", "{endpoints}");
    assert_eq!(endpoints["endpoints"][0]["schemaFile"], "openapi.yaml");

    // The secret was stored (write-only: the list shows no value).
    let configs = server.cli(&[
        "config",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "--env",
        "development",
        "-o",
        "json",
    ]);
    assert!(configs.status.success(), "{}", stderr(&configs));
    let configs: Value = serde_json::from_str(&stdout(&configs)).unwrap();
    let secret = configs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "DB_PASSWORD")
        .unwrap_or_else(|| panic!("{configs}"));
    assert_eq!(secret["kind"], "secret-env");
    assert!(secret["value"].is_null(), "{configs}");

    // The run with arguments, as recorded: args one argv entry each, the task's exit code.
    let execution = result["execution"].as_str().unwrap();
    let x = server.cli(&["task", "get", execution, "-o", "json"]);
    assert!(x.status.success(), "{}", stderr(&x));
    let x: Value = serde_json::from_str(&stdout(&x)).unwrap();
    assert_eq!(x["component"], task.as_str(), "{x}");
    assert_eq!(
        x["args"],
        serde_json::json!(["hello", "two words", "<b>x</b>"])
    );
    assert_eq!(x["envOverrides"], serde_json::json!(["EXIT_CODE"]));
    assert_eq!(x["exitCode"], 3, "{x}");
    assert_eq!(x["status"], "failed", "{x}");
    assert_eq!(x["trigger"], "manual", "{x}");

    // The tokens the pages showed once are real: the CI token reaches the deploy webhook (the
    // same digest again: nothing new to roll out), the API token signs in.
    let hook = http()
        .post(format!("{}/api/v1/hooks/deploy", server.url))
        .bearer_auth(result["ciSecret"].as_str().unwrap())
        .json(&serde_json::json!({"tag": "v1"}))
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    let status = hook.status().as_u16();
    let answer: Value = hook.json().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["created"], false, "{answer}");
    let who = server.cli_env(
        &["whoami", "-o", "json"],
        &[("BERTH_TOKEN", result["apiSecret"].as_str().unwrap())],
    );
    assert!(who.status.success(), "{}", stderr(&who));
    assert!(stdout(&who).contains("\"browser\""), "{}", stdout(&who));

    // The forged POSTs changed nothing.
    let projects = server.cli(&["project", "list", "-o", "json"]);
    assert!(
        !stdout(&projects).contains("pwned"),
        "{}",
        stdout(&projects)
    );
}
