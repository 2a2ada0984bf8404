//! The user journey end to end on the real engine and registry: register a registry → create a
//! component → deploy a private image → reach it through the gateway → update the tag with zero
//! downtime → previous image → promote → a release that never gets ready rolls back → delete.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProc, add_local_registry, get_body, json_out, ok, stderr};

/// Containers of a component, counted by label through podman (an independent view).
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

#[test]
fn register_create_deploy_reach_update_promote_rollback_delete() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-web-{}", std::process::id());
    let server = ServerProc::start_with(
        dir.path(),
        &[("BERTH_READY_TIMEOUT", "8"), ("BERTH_DRAIN_MS", "500")],
    );
    let _cleanup = Cleanup(component.clone());

    // 1. Register the private registry (password from stdin).
    add_local_registry(&server, &env, None);
    ok(server.cli(&["project", "create", "shop"]));

    // 2. Create the component from its image URL: the tag is resolved now.
    let image = format!("{}/test/web:v1", env.registry);
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
        &image,
        "--port",
        "8080",
    ]));
    let missing = server.cli(&[
        "component",
        "create",
        "other",
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "local",
        "--image",
        &format!("{}/test/web:v404", env.registry),
        "-o",
        "json",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let err = json_out(&missing);
    assert_eq!(err["error"]["field"], "image");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{err}"
    );

    // 3. Deploy the private image on the real engine and wait.
    let out = ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
        "-o",
        "json",
    ]));
    let d1 = json_out(&out);
    assert_eq!(d1["status"], "ready", "{d1}");
    let v1_digest = d1["digest"].as_str().unwrap().to_owned();
    assert_eq!(v1_digest, env.skopeo_digest(&image));

    // 4. Reach it through the gateway.
    let url = format!("{}/default/shop/{component}/development/", server.gateway);
    let (code, body) = get_body(&url);
    assert_eq!((code, body.trim()), (200, "hello from v1"), "{url}");
    let status = json_out(&ok(server.cli(&[
        "component",
        "status",
        &component,
        "--project",
        "shop",
        "-o",
        "json",
    ])));
    assert_eq!(status["items"][0]["url"], url.as_str(), "{status}");

    // A plain deploy with an unchanged digest is a no-op.
    let again = json_out(&ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    assert_eq!(again["created"], false);

    // 5. Update Image Tag to v2 while traffic flows: no failed request, the body switches.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let v2_seen = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures, v2_seen, url) =
            (stop.clone(), failures.clone(), v2_seen.clone(), url.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (code, body) = get_body(&url);
                n += 1;
                if code != 200 {
                    failures.lock().unwrap().push(format!("{code} {body}"));
                } else if body.contains("v2") {
                    v2_seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            n
        })
    };
    let out = ok(server.cli(&[
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
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let requests = load.join().unwrap();
    let d2 = json_out(&out);
    assert_eq!(d2["status"], "ready", "{d2}");
    assert!(requests > 20, "only {requests} requests");
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "failed requests during the rollout"
    );
    assert!(v2_seen.load(Ordering::Relaxed) > 0);
    assert_eq!(get_body(&url).1.trim(), "hello from v2");
    assert_eq!(
        containers(&component).len(),
        1,
        "the old instance is gone: {:?}",
        containers(&component)
    );

    // 6. Previous Images: v1's digest again.
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
    assert_eq!(digests.len(), 2);
    assert!(digests.contains(&v1_digest.as_str()));
    let d3 = json_out(&ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--previous",
        &v1_digest,
        "--wait",
        "-o",
        "json",
    ])));
    assert_eq!(d3["digest"], v1_digest.as_str());
    assert_eq!(get_body(&url).1.trim(), "hello from v1");

    // 7. Promote: the same digest in production, reachable at its own URL.
    let p = json_out(&ok(server.cli(&[
        "promote",
        "--project",
        "shop",
        "--component",
        &component,
        "--from",
        "development",
        "--to",
        "production",
        "--wait",
        "-o",
        "json",
    ])));
    assert_eq!(p["digest"], v1_digest.as_str());
    assert_eq!(p["environment"], "production");
    let prod = format!("{}/default/shop/{component}/production/", server.gateway);
    assert_eq!(get_body(&prod).1.trim(), "hello from v1");

    // 8. An image that never gets ready rolls back; v1 keeps serving.
    let out = server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--image",
        &format!("{}/test/never-ready:latest", env.registry),
        "--wait",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = json_out(&out);
    assert_eq!(failed["status"], "rolled-back", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap_or_default().len() > 10,
        "{failed}"
    );
    assert_eq!(get_body(&url).1.trim(), "hello from v1");
    let out = server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--previous",
        "sha256:0000",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_out(&out)["error"]["field"], "previous");

    // A registry in use cannot be deleted; the answer names the component.
    let out = server.cli(&["registry", "delete", "local", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_out(&out);
    assert_eq!(err["error"]["code"], "conflict", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&component),
        "{err}"
    );

    // 9. Delete: nothing left running, no route.
    ok(server.cli(&[
        "component",
        "delete",
        &component,
        "--project",
        "shop",
        "--yes",
    ]));
    assert_eq!(containers(&component), Vec::<String>::new());
    let (code, _) = get_body(&url);
    assert_eq!(code, 404);
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers(&self.0) {
            let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        }
    }
}
