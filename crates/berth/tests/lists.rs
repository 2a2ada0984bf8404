//! Lists a page at a time, end to end: the real `berth` binary and its SQLite store, real
//! HTTP. A component's long history (more deployments and digests than a page of the CLI) is
//! recorded through the store the server uses, with the server running and no engine (nothing
//! is rolled out); then every page is walked through the API and the CLI.

mod common;

use std::collections::BTreeSet;

use berth_store::{ComponentRef, NewRelease, Origin, ReleaseChoice, Store};
use common::{ServerProc, http, json_out, ok};
use serde_json::{Value, json};

const PROJECT: &str = "lists";

fn start(dir: &std::path::Path) -> ServerProc {
    // No engine: the recorded deployments are history, nothing runs them.
    ServerProc::start_with(
        dir,
        &[("BERTH_ENGINE", "unix:///nonexistent/berth-lists-test.sock")],
    )
}

fn call(server: &ServerProc, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", server.url);
    let mut req = http()
        .request(method.parse().unwrap(), &url)
        .bearer_auth(server.admin_token());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    (status, value)
}

/// GET `path` (which may carry a query) page by page with `limit`: every item, and how many
/// pages it took. Each page holds at most `limit` items; only the last has no `nextCursor`.
fn walk(server: &ServerProc, path: &str, limit: u32) -> (Vec<Value>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = call(server, "GET", &url, None);
        assert_eq!(status, 200, "{url}: {page}");
        pages += 1;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize, "{url}: {} items", got.len());
        items.extend(got.iter().cloned());
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) => {
                assert!(!got.is_empty(), "{url}: an empty page with a nextCursor");
                cursor = Some(next.to_owned());
            }
            None => return (items, pages),
        }
        assert!(pages < 1000, "{path}: no end");
    }
}

/// The values of `key` in `items`, checked to be all different.
fn distinct(items: &[Value], key: &str) -> Vec<String> {
    let values: Vec<String> = items
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect();
    let set: BTreeSet<&String> = values.iter().collect();
    assert_eq!(set.len(), values.len(), "an item came twice: {values:?}");
    values
}

/// A 422 naming `field`, in berth's error shape.
fn assert_refused(server: &ServerProc, path: &str, field: &str) {
    let (status, body) = call(server, "GET", path, None);
    assert_eq!(status, 422, "{path}: {body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{path}: {body}");
    assert_eq!(body["error"]["field"], field, "{path}: {body}");
}

/// Records `deployments` deployments of `component` through the store the server uses:
/// `digests` distinct digests (each new one a new release), then redeploys of the oldest
/// digests by their release, every seventh one promoted to production.
fn record_history(server: &ServerProc, component: &str, deployments: usize, digests: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&server.data_dir).await.unwrap();
        let target = ComponentRef {
            org: "default",
            project: PROJECT,
            component,
        };
        let origin = Origin {
            trigger: "api",
            actor: "admin/lists-test",
        };
        for i in 0..deployments {
            let digest = format!("sha256:{:064x}", i % digests);
            let tag = format!("v{i}");
            let release = if i < digests {
                ReleaseChoice::New(NewRelease {
                    registry: "local",
                    repository: "127.0.0.1:5000/test/web",
                    tag: Some(&tag),
                    digest: &digest,
                    port: Some(8080),
                    endpoints: "[]",
                    config: "{}",
                })
            } else {
                let id = store
                    .find_release("default", PROJECT, component, &digest)
                    .await
                    .unwrap()
                    .unwrap();
                let env = if i % 7 == 0 {
                    "production"
                } else {
                    "development"
                };
                store
                    .create_deployment(target, env, ReleaseChoice::Existing(&id), None, origin)
                    .await
                    .unwrap();
                continue;
            };
            store
                .create_deployment(target, "development", release, None, origin)
                .await
                .unwrap();
        }
    });
}

#[test]
fn every_list_pages_without_losing_or_repeating_an_item() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/orgs/default/registries",
        Some(json!({"name": "local", "host": "127.0.0.1:5000", "authType": "anonymous"})),
    );
    assert_eq!(status, 201, "{body}");
    for p in [PROJECT, "other", "third"] {
        let (status, body) = call(
            &server,
            "POST",
            "/api/v1/orgs/default/projects",
            Some(json!({ "name": p })),
        );
        assert_eq!(status, 201, "{body}");
    }
    let components = format!("/api/v1/orgs/default/projects/{PROJECT}/components");
    for i in 0..7 {
        let (status, body) = call(
            &server,
            "POST",
            &components,
            Some(json!({
                "name": format!("c{i}"), "type": "service", "registry": "local",
                "image": "127.0.0.1:5000/test/web:v1", "port": 8080, "noVerify": true,
            })),
        );
        assert_eq!(status, 201, "{body}");
    }

    // Components and projects by name.
    let (items, pages) = walk(&server, &components, 3);
    assert_eq!(
        (distinct(&items, "name"), pages),
        ((0..7).map(|i| format!("c{i}")).collect(), 3)
    );
    let (status, first) = call(&server, "GET", &components, None);
    assert_eq!(status, 200);
    assert_eq!(first["items"].as_array().unwrap().len(), 7);
    assert!(
        first.get("nextCursor").is_none(),
        "a list that fits one page has no nextCursor: {first}"
    );
    let (items, pages) = walk(&server, "/api/v1/orgs/default/projects", 1);
    assert_eq!(
        (distinct(&items, "name"), pages),
        (vec![PROJECT.to_owned(), "other".into(), "third".into()], 3)
    );

    // A long history: 620 deployments of 530 digests (more than one page of the CLI's 500).
    record_history(&server, "c0", 620, 530);
    let c0 = format!("{components}/c0");
    let (all, _) = walk(&server, &format!("{c0}/deployments"), 500);
    assert_eq!(distinct(&all, "id").len(), 620);
    let created: Vec<(String, String)> = all
        .iter()
        .map(|d| {
            (
                d["createdAt"].as_str().unwrap().to_owned(),
                d["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut newest_first = created.clone();
    newest_first.sort();
    newest_first.reverse();
    assert_eq!(created, newest_first, "newest first");
    for limit in [1, 50, 499] {
        let (items, pages) = walk(&server, &format!("{c0}/deployments"), limit);
        assert_eq!(items, all, "pages of {limit}");
        assert_eq!(pages, 620_usize.div_ceil(limit as usize));
    }
    let (prod, _) = walk(&server, &format!("{c0}/deployments?env=production"), 4);
    assert!(!prod.is_empty());
    assert!(prod.iter().all(|d| d["environment"] == "production"));
    let expected: Vec<&Value> = all
        .iter()
        .filter(|d| d["environment"] == "production")
        .collect();
    assert_eq!(prod.iter().collect::<Vec<_>>(), expected);

    // Previous Images: one per digest, the most recently deployed first, whatever the page.
    let (images, pages) = walk(&server, &format!("{c0}/previous-images"), 500);
    assert_eq!((distinct(&images, "digest").len(), pages), (530, 2));
    let (by_50, pages) = walk(&server, &format!("{c0}/previous-images"), 50);
    assert_eq!((by_50 == images, pages), (true, 11));
    let (_, default_page) = call(&server, "GET", &format!("{c0}/previous-images"), None);
    assert_eq!(default_page["items"].as_array().unwrap().len(), 50);
    assert_eq!(default_page["items"][0], images[0]);
    // The 90 redeployed digests come first (newest last deployment), each named after its
    // only release.
    let redeployed: BTreeSet<String> = (0..90).map(|i| format!("sha256:{i:064x}")).collect();
    let head: BTreeSet<String> = images[..90]
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(head, redeployed);
    assert_eq!(images[0]["digest"], format!("sha256:{:064x}", 89));
    assert_eq!(images[0]["tag"], "v89");
    assert!(
        images[0]["lastDeployedAt"].as_str() > images[0]["firstDeployedAt"].as_str(),
        "{}",
        images[0]
    );

    // The audit log (every POST above), newest first.
    let (audit, _) = walk(&server, "/api/v1/audit", 1000);
    let (by_3, _) = walk(&server, "/api/v1/audit", 3);
    assert_eq!(by_3, audit);
    assert!(audit.len() >= 11, "{}", audit.len());

    // Bad input: limits out of range or not numbers, cursors that are not cursors or belong
    // to another list.
    for path in [&components, &format!("{c0}/previous-images")] {
        for limit in ["0", "501", "-1", "abc", "99999999999"] {
            assert_refused(&server, &format!("{path}?limit={limit}"), "limit");
        }
        for cursor in ["garbage", "", "eyJ4IjoxfQ", "%00%01"] {
            assert_refused(&server, &format!("{path}?cursor={cursor}"), "cursor");
        }
    }
    assert_refused(&server, "/api/v1/audit?limit=1001", "limit");
    assert_refused(&server, "/api/v1/audit?cursor=abc", "cursor");
    let (_, page) = call(&server, "GET", &format!("{c0}/deployments?limit=2"), None);
    let deployments_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (_, page) = call(
        &server,
        "GET",
        &format!("{c0}/previous-images?limit=2"),
        None,
    );
    let images_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (_, page) = call(
        &server,
        "GET",
        &format!("{c0}/deployments?env=production&limit=1"),
        None,
    );
    let production_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    for path in [
        format!("{c0}/previous-images?cursor={deployments_cursor}"),
        format!("{c0}/deployments?cursor={images_cursor}"),
        format!("{components}/c1/previous-images?cursor={images_cursor}"),
        format!("{c0}/deployments?cursor={production_cursor}"),
        format!("{c0}/deployments?env=development&cursor={production_cursor}"),
        format!("/api/v1/orgs/default/projects/other/components?cursor={images_cursor}"),
    ] {
        assert_refused(&server, &path, "cursor");
    }
    // The right cursor in the right list still works.
    let (status, _) = call(
        &server,
        "GET",
        &format!("{c0}/deployments?env=production&cursor={production_cursor}"),
        None,
    );
    assert_eq!(status, 200);
    // A component that does not exist is still a 404.
    let (status, body) = call(
        &server,
        "GET",
        &format!("{components}/nope/deployments"),
        None,
    );
    assert_eq!(status, 404, "{body}");

    // The CLI follows the cursors: all 530 images (two pages of 500), 600 of the
    // deployments, all components.
    let cli_images = json_out(&ok(server.cli(&[
        "component",
        "previous-images",
        "c0",
        "--project",
        PROJECT,
        "-o",
        "json",
    ])));
    assert_eq!(cli_images["items"].as_array().unwrap(), &images);
    assert!(cli_images.get("nextCursor").is_none());
    let newest = json_out(&ok(server.cli(&[
        "component",
        "previous-images",
        "c0",
        "--project",
        PROJECT,
        "--limit",
        "3",
        "-o",
        "json",
    ])));
    assert_eq!(newest["items"].as_array().unwrap(), &images[..3]);
    let cli_deployments = json_out(&ok(server.cli(&[
        "deployment",
        "list",
        "--project",
        PROJECT,
        "--component",
        "c0",
        "--limit",
        "600",
        "-o",
        "json",
    ])));
    assert_eq!(cli_deployments["items"].as_array().unwrap(), &all[..600]);
    let default_deployments = json_out(&ok(server.cli(&[
        "deployment",
        "list",
        "--project",
        PROJECT,
        "--component",
        "c0",
        "-o",
        "json",
    ])));
    assert_eq!(default_deployments["items"].as_array().unwrap(), &all[..50]);
    let cli_components = json_out(&ok(server.cli(&[
        "component",
        "list",
        "--project",
        PROJECT,
        "-o",
        "json",
    ])));
    assert_eq!(cli_components["items"].as_array().unwrap().len(), 7);
    let table = common::stdout(&ok(server.cli(&[
        "component",
        "previous-images",
        "c0",
        "--project",
        PROJECT,
    ])));
    assert_eq!(
        table.lines().filter(|l| l.contains("sha256:")).count(),
        530,
        "{table}"
    );
}
