//! The registry client against real CNCF distribution registries (scripts/test-env): basic
//! auth over HTTP, basic auth over TLS with a private CA, Bearer tokens from a token service,
//! an anonymous registry, a multi-arch index — and hostile servers.

use std::time::Duration;

use berth_registry::{
    Credentials, Error, MediaType, Platform, RegistryClient, RegistryOptions, SsrfPolicy, Step,
    test_connection,
};
use berth_testkit::{AnonymousRegistry, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn basic(env: &TestEnv) -> Credentials {
    Credentials::Basic {
        username: env.user.clone(),
        password: env.password.clone(),
    }
}

fn with_ca(env: &TestEnv) -> RegistryOptions {
    RegistryOptions {
        ca_pem: Some(env.ca_pem()),
        ..RegistryOptions::default()
    }
}

#[tokio::test]
async fn basic_auth_resolves_the_digest_skopeo_sees() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let client =
        RegistryClient::new(&env.registry, basic(&env), RegistryOptions::default()).unwrap();
    assert_eq!(client.ping().await.unwrap(), "basic");
    for tag in ["v1", "v2"] {
        let r = client.resolve("test/web", tag).await.unwrap();
        let expected = env.skopeo_digest(&format!("{}/test/web:{tag}", env.registry));
        assert_eq!(r.digest, expected, "{tag}");
        assert_eq!(r.media_type, MediaType::OciManifest);
        assert_eq!(r.platform_available, None);
        // Resolving by digest gives the same digest back.
        let again = client.resolve("test/web", &r.digest).await.unwrap();
        assert_eq!(again.digest, expected);
    }
    let mut tags = client.list_tags("test/web").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    // One tag per page: the registry's `Link: <…>; rel="next"` is followed.
    let paged = client.list_tags_paged("test/web", 1).await.unwrap();
    assert_eq!(paged, ["v1", "v2"]);

    let err = client.resolve("test/web", "nope").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    let err = client.resolve("test/ghost", "v1").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("test/ghost:v1"), "{err}");
}

#[tokio::test]
async fn wrong_or_missing_credentials_name_the_auth_step() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let wrong = Credentials::Basic {
        username: env.user.clone(),
        password: "not-the-password".into(),
    };
    let client = RegistryClient::new(&env.registry, wrong, RegistryOptions::default()).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(err.step(), Step::Auth);
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let steps = test_connection(&client, Some(("test/web", "v1"))).await;
    let last = steps.last().unwrap();
    assert_eq!((last.step, last.ok), ("auth", false), "{steps:?}");
    assert!(last.detail.contains("401"), "{steps:?}");
    assert!(steps[..steps.len() - 1].iter().all(|s| s.ok));

    let anon = RegistryClient::new(
        &env.registry,
        Credentials::Anonymous,
        RegistryOptions::default(),
    )
    .unwrap();
    let err = anon.resolve("test/web", "v1").await.unwrap_err();
    assert!(err.to_string().contains("needs credentials"), "{err}");
}

#[tokio::test]
async fn tls_registry_needs_its_ca() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let client = RegistryClient::new(&env.registry_tls, basic(&env), with_ca(&env)).unwrap();
    let r = client.resolve("test/web", "v2").await.unwrap();
    assert_eq!(
        r.digest,
        env.skopeo_digest(&format!("{}/test/web:v2", env.registry))
    );
    let steps = test_connection(&client, Some(("test/web", "v1"))).await;
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert_eq!(
        steps.iter().find(|s| s.step == "tls").unwrap().detail,
        "certificate verified"
    );

    // Without the CA: a clear certificate error at the TLS step, and no plain-HTTP downgrade
    // even though the host is loopback.
    let client =
        RegistryClient::new(&env.registry_tls, basic(&env), RegistryOptions::default()).unwrap();
    let err = client.ping().await.unwrap_err();
    assert_eq!(err.step(), Step::Tls, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let err = RegistryClient::new(
        &env.registry_tls,
        basic(&env),
        RegistryOptions {
            ca_pem: Some("not a certificate".into()),
            ..RegistryOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("CA bundle"), "{err}");
}

#[tokio::test]
async fn bearer_tokens_are_fetched_per_scope_and_cached() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let client = RegistryClient::new(&env.registry_token, basic(&env), with_ca(&env)).unwrap();
    let before = env.token_requests();
    assert_eq!(client.ping().await.unwrap(), "bearer");
    let v1 = client.resolve("test/web", "v1").await.unwrap();
    let v2 = client.resolve("test/web", "v2").await.unwrap();
    client.list_tags("test/web").await.unwrap();
    assert_eq!(
        v1.digest,
        env.skopeo_digest(&format!("{}/test/web:v1", env.registry))
    );
    assert_ne!(v1.digest, v2.digest);
    let after_web = env.token_requests();
    // One token for the ping (no scope) and one for repository:test/web:pull, reused for every
    // later request in that scope.
    assert_eq!(after_web - before, 2, "token requests");
    client.resolve("test/task", "latest").await.unwrap();
    assert_eq!(
        env.token_requests() - after_web,
        1,
        "a new scope needs one new token"
    );

    let wrong = Credentials::Basic {
        username: env.user.clone(),
        password: "bad".into(),
    };
    let client = RegistryClient::new(&env.registry_token, wrong, with_ca(&env)).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("token service"), "{err}");

    // Anonymous tokens carry no access: the registry denies the pull.
    let anon =
        RegistryClient::new(&env.registry_token, Credentials::Anonymous, with_ca(&env)).unwrap();
    let err = anon.resolve("test/web", "v1").await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { .. } | Error::Denied { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn multi_arch_index_and_platform_check() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let client =
        RegistryClient::new(&env.registry, basic(&env), RegistryOptions::default()).unwrap();
    let r = client.resolve("test/multi", "v1").await.unwrap();
    assert!(r.media_type.is_index(), "{:?}", r.media_type);
    assert_eq!(
        r.digest,
        env.skopeo_digest(&format!("{}/test/multi:v1", env.registry))
    );
    let names: Vec<String> = r.platforms.iter().map(ToString::to_string).collect();
    assert!(names.contains(&"linux/amd64".to_owned()), "{names:?}");
    assert!(names.contains(&"linux/arm64".to_owned()), "{names:?}");
    assert_eq!(r.platform_available, Some(true));

    let s390x = RegistryOptions {
        platform: "linux/s390x".parse::<Platform>().unwrap(),
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(&env.registry, basic(&env), s390x).unwrap();
    let r = client.resolve("test/multi", "v1").await.unwrap();
    assert_eq!(r.platform_available, Some(false));
    let steps = test_connection(&client, Some(("test/multi", "v1"))).await;
    let last = steps.last().unwrap();
    assert!(!last.ok && last.detail.contains("linux/s390x"), "{steps:?}");
}

#[tokio::test]
async fn anonymous_public_registry() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let public = AnonymousRegistry::start(&env);
    let client = RegistryClient::new(
        &public.host,
        Credentials::Anonymous,
        RegistryOptions::default(),
    )
    .unwrap();
    assert_eq!(client.ping().await.unwrap(), "anonymous");
    let r = client.resolve("public/web", "v1").await.unwrap();
    assert_eq!(
        r.digest,
        env.skopeo_digest(&format!("{}/test/web:v1", env.registry))
    );
}

#[tokio::test]
async fn ssrf_guard_refuses_metadata_and_link_local() {
    for host in [
        "169.254.169.254",
        "169.254.169.254:80",
        "[fe80::1]:5000",
        "metadata.google.internal",
    ] {
        let client =
            RegistryClient::new(host, Credentials::Anonymous, RegistryOptions::default()).unwrap();
        let err = client.ping().await.unwrap_err();
        assert!(matches!(err, Error::Blocked { .. }), "{host}: {err}");
        assert_eq!(err.step(), Step::Dns);
    }
    // After DNS: `localhost` resolves to loopback, refused when loopback is not allowed.
    let strict = RegistryOptions {
        ssrf: SsrfPolicy {
            allow_private: false,
            allow_loopback: false,
        },
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new("localhost:5000", Credentials::Anonymous, strict).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, Error::Blocked { .. }), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}

/// A fake "registry" that answers every request with `response`.
async fn hostile(response: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn garbage_and_huge_answers_are_errors_not_crashes() {
    let huge = {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 5242880\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'[', 5 * 1024 * 1024));
        r
    };
    let huge_chunked = {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..5 {
            r.extend(b"100000\r\n");
            r.extend(std::iter::repeat_n(b'x', 0x100000));
            r.extend(b"\r\n");
        }
        r.extend(b"0\r\n\r\n");
        r
    };
    let garbage = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 9\r\n\r\nnot json!".to_vec();
    let not_http = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
    let not_registry = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    for (name, response) in [
        ("huge", huge),
        ("huge chunked", huge_chunked),
        ("garbage", garbage),
        ("not http", not_http),
        ("not a registry", not_registry),
    ] {
        let host = hostile(response).await;
        let opts = RegistryOptions {
            timeout: Duration::from_secs(5),
            ..RegistryOptions::default()
        };
        let client = RegistryClient::new(&host, Credentials::Anonymous, opts).unwrap();
        let result =
            tokio::time::timeout(Duration::from_secs(20), client.resolve("a/b", "v1")).await;
        let err = result.expect("answers within the timeout").unwrap_err();
        match name {
            "huge" | "huge chunked" => {
                assert!(err.to_string().contains("larger than"), "{name}: {err}")
            }
            "garbage" => assert!(err.to_string().contains("not valid JSON"), "{name}: {err}"),
            _ => {}
        }
        if name == "not a registry" {
            let err = client.ping().await.unwrap_err();
            assert!(
                err.to_string().contains("not an OCI/Docker registry"),
                "{err}"
            );
        }
    }
}

/// A fake registry that answers `503` with `Retry-After: 1` twice, then a manifest.
#[tokio::test]
async fn retries_honour_retry_after() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            // The client first tries TLS; a ClientHello is no HTTP request: hang up.
            if !request.starts_with("GET ") && !request.starts_with("HEAD ") {
                continue;
            }
            let response = if request.starts_with("GET /v2/ ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()
            } else if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            } else {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
                    manifest.len()
                )
                .into_bytes();
                if !request.starts_with("HEAD") {
                    r.extend_from_slice(manifest);
                }
                r
            };
            let _ = sock.write_all(&response).await;
            let _ = sock.shutdown().await;
        }
    });
    let client =
        RegistryClient::new(&addr, Credentials::Anonymous, RegistryOptions::default()).unwrap();
    let started = std::time::Instant::now();
    let r = client.resolve("a/b", "v1").await.unwrap();
    assert!(r.digest.starts_with("sha256:"), "{r:?}");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited Retry-After twice: {:?}",
        started.elapsed()
    );
}

/// A burst of concurrent resolutions of one tag shares registry round trips (counted in the
/// real registry's access log) and every caller gets the digest skopeo sees; a digest that
/// resolved is answered again without a request.
#[tokio::test]
async fn concurrent_resolutions_share_round_trips() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    // Its own repository and tag: other tests list test/web's tags.
    let tag = format!("t{}", std::process::id());
    env.copy_image(
        "test/web:v2",
        &format!("{}/test/coalesce:{tag}", env.registry),
    );
    let expected = env.skopeo_digest(&format!("{}/test/coalesce:{tag}", env.registry));
    let log = env.dir.join("logs").join("registry-a.log");
    let heads = |reference: &str| {
        let needle = format!("HEAD /v2/test/coalesce/manifests/{reference} ");
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(&needle)
            .count()
    };
    let client = std::sync::Arc::new(
        RegistryClient::new(&env.registry, basic(&env), RegistryOptions::default()).unwrap(),
    );
    client.ping().await.unwrap();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let (client, tag) = (client.clone(), tag.clone());
            tokio::spawn(async move { client.resolve_shared("test/coalesce", &tag).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap().digest, expected);
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the registry writes its log
    let sent = heads(&tag);
    assert!(
        (1..=6).contains(&sent),
        "40 concurrent resolutions sent {sent} HEADs (expected a few shared rounds)"
    );
    let before = heads(&expected);
    for _ in 0..10 {
        let r = client
            .resolve_shared("test/coalesce", &expected)
            .await
            .unwrap();
        assert_eq!(r.digest, expected);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = heads(&expected) - before;
    assert_eq!(sent, 1, "10 resolutions of one digest sent {sent} HEADs");
}
