//! Registries end to end: the real binary, the real registries of scripts/test-env, the CLI.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{ServerProc, cli_stdin, http, json_out, stderr, stdout};
use serde_json::{Value, json};

#[test]
fn register_test_and_resolve_with_each_auth_type() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());

    // basic, password from stdin (with the newline a shell adds)
    let out = cli_stdin(
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
            "-o",
            "json",
        ],
        &format!("{}\n", env.password),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let reg = json_out(&out);
    assert_eq!(reg["passwordSet"], true);
    assert_eq!(reg["authType"], "basic");
    assert!(!stdout(&out).contains(&env.password));

    let out = server.cli(&[
        "registry",
        "test",
        "local",
        "--image",
        "test/web:v1",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = json_out(&out);
    assert_eq!(report["ok"], true, "{report}");
    let expected = env.skopeo_digest(&format!("{}/test/web:v1", env.registry));
    assert_eq!(report["digest"], expected.as_str());
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["dns", "connect", "tls", "auth", "manifest"]);

    let out = server.cli(&[
        "registry",
        "tags",
        "local",
        "--repository",
        "test/web",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["tags"], json!(["v1", "v2"]));

    // A tag that does not exist: the manifest step fails with the registry's words.
    let out = server.cli(&[
        "registry",
        "test",
        "local",
        "--image",
        "test/web:nope",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json_out(&out);
    let last = report["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["step"], "manifest");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("MANIFEST_UNKNOWN"),
        "{last}"
    );

    // Wrong password: the auth step names the 401; updating the password fixes it.
    let out = cli_stdin(
        &server,
        &["registry", "update", "local", "--password-stdin"],
        "wrong\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["registry", "test", "local"]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(table.contains("auth") && table.contains("401"), "{table}");
    let out = cli_stdin(
        &server,
        &["registry", "update", "local", "--password-stdin"],
        &env.password,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.cli(&["registry", "test", "local"]).status.success());

    // TLS with the CA; without it a certificate error at the tls step.
    let out = cli_stdin(
        &server,
        &[
            "registry",
            "add",
            "tls",
            "--host",
            &env.registry_tls,
            "--auth",
            "basic",
            "--username",
            &env.user,
            "--password-stdin",
            "--ca-file",
            env.ca_file.to_str().unwrap(),
        ],
        &env.password,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&[
        "registry",
        "test",
        "tls",
        "--image",
        "test/web:v2",
        "-o",
        "json",
    ]);
    assert_eq!(json_out(&out)["ok"], true, "{}", stdout(&out));
    let out = server.cli(&["registry", "update", "tls", "--clear-ca"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["registry", "test", "tls", "-o", "json"]);
    let report = json_out(&out);
    let failed = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ok"] == false)
        .unwrap()
        .clone();
    assert_eq!(failed["step"], "tls", "{report}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{failed}"
    );

    // docker-config exactly as `podman login --authfile` writes it, against the token registry.
    let authfile = dir.path().join("auth.json");
    let login = Command::new("podman")
        .args(["login", "--authfile"])
        .arg(&authfile)
        .args(["-u", &env.user, "--password-stdin", &env.registry_token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut login = login;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(env.password.as_bytes())
        .unwrap();
    let done = login.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "podman login: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let out = server.cli(&[
        "validate",
        "docker-config",
        authfile.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_out(&out),
        json!({"valid": true, "host": env.registry_token, "username": env.user})
    );
    let out = server.cli(&[
        "registry",
        "add",
        "token",
        "--auth",
        "docker-config",
        "--docker-config",
        authfile.to_str().unwrap(),
        "--ca-file",
        env.ca_file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["host"], env.registry_token.as_str());
    let out = server.cli(&[
        "registry",
        "test",
        "token",
        "--image",
        "test/web:v1",
        "-o",
        "json",
    ]);
    let report = json_out(&out);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["digest"], expected.as_str());

    // anonymous (a registry without auth) and implicit
    let public = berth_testkit::AnonymousRegistry::start(&env);
    let out = server.cli(&[
        "registry",
        "add",
        "public",
        "--host",
        &public.host,
        "--auth",
        "anonymous",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&[
        "registry",
        "test",
        "public",
        "--image",
        "public/web:v1",
        "-o",
        "json",
    ]);
    assert_eq!(
        json_out(&out)["digest"],
        expected.as_str(),
        "{}",
        stdout(&out)
    );
    let out = server.cli(&[
        "registry",
        "add",
        "hub",
        "--host",
        "index.docker.io",
        "--auth",
        "implicit",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["host"], "docker.io");

    let out = server.cli(&["registry", "list", "-o", "json"]);
    let names: Vec<String> = json_out(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["hub", "local", "public", "tls", "token"]);

    // The password is nowhere: not in answers, not in logs, not in clear text in the database.
    let listing = stdout(&server.cli(&["registry", "get", "local", "-o", "json"]));
    assert!(!listing.contains(&env.password), "{listing}");
    let logs = server.drain_logs().join("\n");
    assert!(!logs.contains(&env.password), "password in logs");
    for file in ["berth.db", "berth.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            assert!(
                !bytes
                    .windows(env.password.len())
                    .any(|w| w == env.password.as_bytes()),
                "{file}"
            );
        }
    }

    let out = server.cli(&["registry", "delete", "public", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["registry", "get", "public"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_registry_input_gets_422_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path());
    let c = http();
    let url = format!("{}/api/v1/orgs/default/registries", server.url);
    let token = server.admin_token();
    let post = |body: Value| {
        let resp = c.post(&url).bearer_auth(&token).json(&body).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };
    let cases = [
        (
            json!({"name": "r", "host": "https://ghcr.io", "authType": "anonymous"}),
            "host",
            "scheme",
        ),
        (
            json!({"name": "r", "host": "ghcr.io/org", "authType": "anonymous"}),
            "host",
            "",
        ),
        (
            json!({"name": "r", "host": "ghcr.io", "authType": "token"}),
            "authType",
            "unknown variant",
        ),
        (
            json!({"name": "r", "host": "ghcr.io", "authType": "basic", "username": "u"}),
            "password",
            "required",
        ),
        (
            json!({"name": "r", "host": "ghcr.io", "authType": "anonymous", "password": "p"}),
            "password",
            "not used",
        ),
        (
            json!({"name": "R!", "host": "ghcr.io", "authType": "anonymous"}),
            "name",
            "^[a-z]",
        ),
        (
            json!({"name": "r", "authType": "anonymous"}),
            "host",
            "required",
        ),
        (
            json!({"name": "r", "host": "ghcr.io", "authType": "anonymous", "platform": "x"}),
            "platform",
            "os/arch",
        ),
        (
            json!({"name": "r", "host": "ghcr.io", "authType": "anonymous", "caCertificate": "nope"}),
            "caCertificate",
            "",
        ),
        (
            json!({"name": "r", "authType": "docker-config", "dockerConfig": "{\"credsStore\":\"desktop\",\"auths\":{\"ghcr.io\":{}}}"}),
            "dockerConfig.credsStore",
            "credsStore",
        ),
        (
            json!({"name": "r", "authType": "docker-config", "dockerConfig": "{\"auths\":{}}"}),
            "dockerConfig.auths",
            "",
        ),
        (
            json!({"name": "r", "authType": "docker-config", "dockerConfig": "{\"auths\":{\"a.io\":{\"auth\":\"dTpw\"},\"b.io\":{\"auth\":\"dTpw\"}}}"}),
            "dockerConfig.auths",
            "a.io",
        ),
        (
            json!({"name": "r", "authType": "docker-config", "dockerConfig": "{\"auths\":{\"a.io\":{\"identitytoken\":\"xyz\"}}}"}),
            "dockerConfig",
            "identity",
        ),
    ];
    for (body, field, words) in cases {
        let (status, err) = post(body.clone());
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["code"], "validation_failed", "{err}");
        assert!(
            err["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{body}: field {} (wanted {field})",
            err["error"]["field"]
        );
        assert!(
            err["error"]["message"].as_str().unwrap().contains(words),
            "{body}: {err}"
        );
    }
    // Nothing was half-written.
    let list: Value = c
        .get(&url)
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["items"], json!([]));

    // Offline helpers: invalid input → exit 1 and a JSON error.
    let out = server.cli(&["image", "parse", "Docker.io/Library/Nginx", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_out(&out);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lowercase"),
        "{err}"
    );
    let out = server.cli(&["image", "parse", "nginx", "-o", "json"]);
    assert!(out.status.success());
    assert_eq!(
        json_out(&out),
        json!({"input": "nginx", "domain": "docker.io", "path": "library/nginx", "tag": null,
               "digest": null, "normalized": "docker.io/library/nginx:latest", "familiar": "nginx:latest"})
    );
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpzM2NyZXQ="}},"credHelpers":{"ghcr.io":"gh"}}"#,
    )
    .unwrap();
    let out = server.cli(&[
        "validate",
        "docker-config",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out);
    assert_eq!(v["valid"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credHelpers"),
        "{v}"
    );
    assert!(!stdout(&out).contains("s3cret"));
}
