//! `berth render` end to end: a component deployed on the real engine, then its environment
//! rendered as the Kubernetes data plane would apply it: the deployed digest, its configs,
//! Secrets redacted unless an admin asks, precise errors.

mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{ServerProc, add_local_registry, cli_stdin, json_out, ok, stderr, stdout};
use serde::Deserialize;
use serde_json::Value;

const SECRET: &str = "r3nder-s3cret-value";

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

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

#[test]
fn render_prints_what_kubernetes_would_get() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-rnd-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let server = ServerProc::start_with(dir.path(), &[("BERTH_DRAIN_MS", "200")]);
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));
    // Nothing deployed yet: the namespace and its policies only.
    let out = ok(server.cli(&["render", "--project", "shop", "--env", "development"]));
    let docs = documents(&stdout(&out));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Namespace", "NetworkPolicy", "NetworkPolicy"]);
    assert_eq!(
        docs[0]["metadata"]["name"],
        "berth-default-shop-development"
    );

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
    let t = [
        "--project",
        "shop",
        "--component",
        &component,
        "--env",
        "development",
    ];
    let mut args = vec!["config", "set", "GREETING=hi"];
    args.extend(t);
    ok(server.cli(&args));
    let mut args = vec!["config", "set", "--secret", "API_TOKEN"];
    args.extend(t);
    ok(cli_stdin(&server, &args, &format!("{SECRET}\n")));
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));
    let deployments = json_out(&ok(server.cli(&[
        "deployment",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    let deployed = &deployments["items"][0];
    assert_eq!(deployed["status"], "ready", "{deployed}");
    let digest = deployed["digest"].as_str().unwrap().to_owned();

    let out = ok(server.cli(&[
        "render",
        "--project",
        "shop",
        "--env",
        "development",
        "-o",
        "yaml",
    ]));
    let text = stdout(&out);
    assert!(
        text.starts_with("# berth render: default/shop development"),
        "{text}"
    );
    assert!(text.contains("Secret values are redacted"), "{text}");
    for leaked in [SECRET, &BASE64.encode(SECRET), &env.password] {
        assert!(!text.contains(leaked), "a secret leaked into the output");
    }
    let docs = documents(&text);
    let d = find(&docs, "Deployment", &component);
    assert_eq!(d["metadata"]["namespace"], "berth-default-shop-development");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("{}/test/web@{digest}", env.registry),
        "pinned to the deployed digest"
    );
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["berth.release"],
        deployed["id"]
    );
    let var = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {container:#?}"))
            .clone()
    };
    let config = var("GREETING")["valueFrom"]["configMapKeyRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        var("API_TOKEN")["valueFrom"]["secretKeyRef"]["name"],
        config.as_str()
    );
    assert_eq!(find(&docs, "ConfigMap", &config)["data"]["GREETING"], "hi");
    let secret = find(&docs, "Secret", &config);
    assert_eq!(secret["data"]["API_TOKEN"], BASE64.encode("<redacted>"));
    assert_eq!(secret["metadata"]["annotations"]["berth.redacted"], "true");
    let pull_secret = d["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no pull Secret: {d:#?}"));
    assert_eq!(
        find(&docs, "Secret", pull_secret)["type"],
        "kubernetes.io/dockerconfigjson"
    );
    // No endpoints file: routed whole, publicly, like the gateway does.
    let route = find(&docs, "HTTPRoute", &format!("{component}-public"));
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["path"]["value"],
        format!("/default/shop/{component}/development")
    );
    find(&docs, "Service", &component);
    find(&docs, "NetworkPolicy", &format!("{component}-public"));

    // The admin may see the values; JSON is the API's answer.
    let json = json_out(&ok(server.cli(&[
        "render",
        "--project",
        "shop",
        "--env",
        "development",
        "--component",
        &component,
        "--reveal-secrets",
        "-o",
        "json",
    ])));
    assert_eq!(json["redacted"], false);
    assert_eq!(json["components"], serde_json::json!([component]));
    let objects = json["objects"].as_array().unwrap();
    let secret = objects
        .iter()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == config.as_str())
        .unwrap();
    assert_eq!(secret["data"]["API_TOKEN"], BASE64.encode(SECRET));

    // A viewer may render, not reveal.
    ok(server.cli(&["user", "create", "vic", "--role", "viewer"]));
    let token = json_out(&ok(server.cli(&[
        "token", "create", "--user", "vic", "--name", "t", "-o", "json",
    ])))["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_viewer = |extra: &[&str]| {
        let mut args = vec!["render", "--project", "shop", "--env", "development"];
        args.extend(extra);
        server.cli_env(&args, &[("BERTH_TOKEN", &token)])
    };
    ok(as_viewer(&[]));
    let out = as_viewer(&["--reveal-secrets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs role admin"),
        "{}",
        stderr(&out)
    );

    // Precise errors.
    let out = server.cli(&["render", "--project", "shop", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("environment \"staging\" not found"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["render", "--project", "nope", "--env", "development"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("project \"nope\" not found"));
    let r = common::http()
        .get(format!(
            "{}/api/v1/orgs/default/projects/shop/environments/development/render?colour=red",
            server.url
        ))
        .bearer_auth(server.admin_token())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body = r.text().unwrap();
    assert!(body.contains("colour"), "{body}");
}
