//! Endpoints end to end: a Choreo endpoints file decides the port and what the external
//! gateway routes (Public contexts only); invalid files and schemas get every error at once.

mod common;

use std::process::Command;

use common::{ServerProc, add_local_registry, http, json_out, ok, stderr, stdout};
use serde_json::Value;

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

fn status(url: &str) -> (u16, String) {
    let r = http().get(url).send().unwrap();
    let code = r.status().as_u16();
    (code, r.text().unwrap_or_default())
}

#[test]
fn endpoints_file_sets_port_and_public_routes() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-ep-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let server = ServerProc::start_with(dir.path(), &[("BERTH_DRAIN_MS", "200")]);
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));
    // No --port: the endpoints file gives it.
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
    ]));
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join(".choreo")).unwrap();
    let set = |file: &std::path::Path, schemas: &[&std::path::Path]| {
        let mut args = vec![
            "endpoints".to_owned(),
            "set".into(),
            "--project".into(),
            "shop".into(),
            "--component".into(),
            component.clone(),
            "--file".into(),
            file.to_str().unwrap().to_owned(),
            "-o".into(),
            "json".into(),
        ];
        for s in schemas {
            args.push("--schema".into());
            args.push(s.to_str().unwrap().to_owned());
        }
        server.cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Every error of an invalid file at once, with Choreo's words and paths.
    let bad = src.join(".choreo/endpoints.yaml");
    std::fs::write(&bad, "version: 0.1\nendpoints:\n  - name: web\n    port: 80\n    type: rest\n  - port: 70000\n    type: REST\n").unwrap();
    let out = set(&bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_out(&out);
    let details = err["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{err}"));
    let paths: Vec<&str> = details
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for want in [
        "endpoints[0].port",
        "endpoints[0].type",
        "endpoints[1].name",
        "endpoints[1].port",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    assert!(
        err.to_string().contains("must be greater than 1000"),
        "{err}"
    );
    assert!(err.to_string().contains("must be less than 65535"), "{err}");

    // A small file whose aliases would expand to 400 million values (`b` names the 20,000
    // items of `a` 20,000 times): refused with the reason instead of exhausting the server's
    // memory, and the server answers on.
    let items = vec!["0"; 20_000].join(",");
    let aliases = vec!["*a"; 20_000].join(",");
    let bomb = format!("version: 0.1\nendpoints: []\na: &a [{items}]\nb: [{aliases}]\n");
    std::fs::write(&bad, &bomb).unwrap();
    let out = set(&bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("through its aliases"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The same through the API itself (the CLI reads the file first).
    let answer = http()
        .put(format!(
            "{}/api/v1/orgs/default/projects/shop/components/{component}/endpoints",
            server.url
        ))
        .bearer_auth(server.admin_token())
        .json(&serde_json::json!({"fileName": "endpoints.yaml", "content": bomb}))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 422);
    let body = answer.text().unwrap();
    assert!(body.contains("through its aliases"), "{body}");
    let bomb_schema = src.join("bomb.yaml");
    std::fs::write(
        &bomb_schema,
        format!("openapi: 3.0.3\na: &a [{items}]\nb: [{aliases}]\n"),
    )
    .unwrap();
    std::fs::write(&bad, "version: 0.1\nendpoints:\n  - name: web\n    port: 8080\n    type: REST\n    context: /\n    schemaFilePath: bomb.yaml\n").unwrap();
    let out = set(&bad, &[&bomb_schema]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("through its aliases"), "{text}");

    // A schema that is named but not uploaded, then a broken one, then a good one.
    let file = src.join(".choreo/component.yaml");
    std::fs::write(&file, "schemaVersion: 1.2\nendpoints:\n  - name: web\n    service:\n      basePath: /\n      port: 8080\n    type: REST\n    networkVisibilities: [Public]\n    schemaFilePath: openapi.yaml\n").unwrap();
    let out = set(&file, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Schema file does not exist"),
        "{}",
        stdout(&out)
    );
    let schema = src.join("openapi.yaml");
    std::fs::write(&schema, "openapi: 3.0.3\ninfo: [broken\n").unwrap();
    let out = set(&file, &[&schema]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("openapi.yaml") && text.contains("line"),
        "{text}"
    );
    std::fs::write(&schema, "openapi: 3.0.3\ninfo: {title: web, version: '1'}\npaths:\n  /: {get: {responses: {'200': {description: ok}}}}\n").unwrap();
    let state = json_out(&ok(set(&file, &[&schema])));
    assert_eq!(state["endpoints"][0]["port"], 8080);
    assert_eq!(state["schemas"], serde_json::json!(["openapi.yaml"]));

    // Deploy: the port comes from the endpoint, the URL is listed per environment.
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));
    let url = format!("{}/default/shop/{component}/development/", server.gateway);
    assert_eq!(status(&url), (200, "hello from v1\n".to_owned()));
    let listed = json_out(&ok(server.cli(&[
        "endpoints",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    assert_eq!(listed["endpoints"][0]["urls"]["development"], url.as_str());
    assert_eq!(listed["endpoints"][0]["urls"]["production"], Value::Null);
    // HTTP/2 from clients (h2c with prior knowledge).
    let h2 = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2 200");

    // A web app answers by host name.
    let site = format!("{component}-site");
    ok(server.cli(&[
        "component",
        "create",
        &site,
        "--project",
        "shop",
        "--type",
        "web-app",
        "--registry",
        "local",
        "--image",
        &format!("{}/test/web:v2", env.registry),
        "--port",
        "8080",
    ]));
    let _site_cleanup = Cleanup(site.clone());
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &site,
        "--wait",
    ]));
    let host = format!("{site}-shop-development.default.localhost");
    let port = server.gateway.rsplit(':').next().unwrap();
    let by_host = Command::new("curl")
        .args([
            "-s",
            "--resolve",
            &format!("{host}:{port}:127.0.0.1"),
            &format!("http://{host}:{port}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&by_host.stdout).trim(),
        "hello from v2"
    );
    let status_json = json_out(&ok(server.cli(&[
        "component",
        "status",
        &site,
        "--project",
        "shop",
        "-o",
        "json",
    ])));
    assert_eq!(
        status_json["items"][0]["url"],
        format!("http://{host}:{port}/").as_str()
    );

    // Per-route metrics count what went through.
    let metrics = http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "component=\"{component}\",env=\"development\",status=\"2xx\""
        )),
        "{metrics}"
    );
    // The release publishes its schema at <context>/openapi.
    let (code, body) = status(&format!("{url}openapi"));
    assert_eq!(code, 200);
    assert!(
        body.contains("openapi: 3.0.3") && body.contains("title: web"),
        "{body}"
    );

    // Only Public contexts are routed: /healthz public, the rest not.
    std::fs::write(&file, "schemaVersion: 1.2\nendpoints:\n  - name: health\n    service:\n      basePath: /healthz\n      port: 8080\n    type: REST\n    networkVisibilities: [Public]\n  - name: site\n    service:\n      basePath: /\n      port: 8080\n    type: REST\n    networkVisibilities: [Project]\n").unwrap();
    ok(set(&file, &[]));
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--force",
        "--wait",
    ]));
    let (code, body) = status(&format!("{url}healthz"));
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = status(&format!("{url}index.html"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no_route"), "{body}");
    let listed = json_out(&ok(server.cli(&[
        "endpoints",
        "list",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    let site = listed["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "site")
        .unwrap()
        .clone();
    assert_eq!(
        site["urls"]["development"],
        Value::Null,
        "Project endpoints have no gateway URL"
    );

    // A GRPC endpoint may only be Project-visible (Choreo's rule).
    std::fs::write(&file, "schemaVersion: 1.2\nendpoints:\n  - name: rpc\n    service:\n      port: 9090\n    type: GRPC\n    networkVisibilities: [Public]\n").unwrap();
    let out = set(&file, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("Project"), "{}", stdout(&out));
}

/// `wget` from a throwaway container on `network` (the web image has busybox).
fn wget_from(network: &str, image: &str, url: &str) -> String {
    let out = Command::new("podman")
        .args([
            "run",
            "--rm",
            "--network",
            network,
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
        ])
        .arg(format!("timeout 5 wget -q -O - {url} 2>&1 || echo FAILED"))
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn organization_endpoints_answer_only_the_organizations_containers() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let api = format!("berth-it-org-{pid}");
    let other = format!("berth-it-oth-{pid}");
    let stranger = format!("berth-it-str-{pid}");
    let _c1 = Cleanup(api.clone());
    let _c2 = Cleanup(other.clone());
    let _c3 = Cleanup(stranger.clone());
    let server = ServerProc::start_with(dir.path(), &[("BERTH_DRAIN_MS", "200")]);
    add_local_registry(&server, &env, None);
    let image = format!("{}/test/web:v1", env.registry);
    // Org "default": project shop has the API, project tools a neighbour.
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&["project", "create", "tools"]));
    // Another organization with its own registry, project and component.
    ok(server.cli(&["org", "create", "acme"]));
    add_local_registry(&server, &env, Some("acme"));
    ok(server.cli(&["project", "create", "lab", "--org", "acme"]));
    for (name, project, org) in [
        (&api, "shop", "default"),
        (&other, "tools", "default"),
        (&stranger, "lab", "acme"),
    ] {
        ok(server.cli(&[
            "component",
            "create",
            name,
            "--org",
            org,
            "--project",
            project,
            "--type",
            "service",
            "--registry",
            "local",
            "--image",
            &image,
            "--port",
            "8080",
        ]));
    }
    let file = dir.path().join("component.yaml");
    std::fs::write(&file, "schemaVersion: 1.2\nendpoints:\n  - name: api\n    service:\n      basePath: /\n      port: 8080\n    type: REST\n    networkVisibilities: [Organization]\n").unwrap();
    ok(server.cli(&[
        "endpoints",
        "set",
        "--project",
        "shop",
        "--component",
        &api,
        "--file",
        file.to_str().unwrap(),
    ]));
    for (name, project, org) in [
        (&api, "shop", "default"),
        (&other, "tools", "default"),
        (&stranger, "lab", "acme"),
    ] {
        ok(server.cli(&[
            "deploy",
            "--org",
            org,
            "--project",
            project,
            "--component",
            name,
            "--wait",
        ]));
    }
    let listed = json_out(&ok(server.cli(&[
        "endpoints",
        "list",
        "--project",
        "shop",
        "--component",
        &api,
        "-o",
        "json",
    ])));
    let url = listed["endpoints"][0]["urls"]["development"]
        .as_str()
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    assert!(url.starts_with("http://host.containers.internal:"), "{url}");

    // A container of another project in the same organization reaches it…
    let pulled = {
        let out = Command::new("podman")
            .args([
                "images",
                "--format",
                "{{.Repository}}@{{.Digest}}",
                "--filter",
            ])
            .arg(format!("reference={}/test/web", env.registry))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .to_owned()
    };
    let body = wget_from("berth-default-tools-development", &pulled, &url);
    assert!(body.contains("hello from v1"), "{body}");
    // …a container of another organization does not…
    let body = wget_from("berth-acme-lab-development", &pulled, &url);
    assert!(!body.contains("hello from v1"), "{body}");
    // …nor the external gateway, nor the host itself.
    let external = format!("{}/default/shop/{api}/development/", server.gateway);
    assert_eq!(status(&external).0, 404);
    let port = url
        .trim_start_matches("http://host.containers.internal:")
        .split('/')
        .next()
        .unwrap();
    let from_host = http()
        .get(format!(
            "http://127.0.0.1:{port}/default/shop/{api}/development/"
        ))
        .send()
        .unwrap();
    assert_eq!(from_host.status().as_u16(), 403);
}
