//! berth-testkit: helpers for tests that use the real test environment started by
//! `scripts/test-env` — the registries, the token issuer, the engine socket and the test images.
//! Dev-dependency only.
//!
//! Tests call [`env()`]: it returns the environment, or `None` after printing why it is missing
//! — and panics instead when `BERTH_REQUIRE_ENGINE=1` (set by `scripts/test`), so CI cannot pass
//! by skipping.
#![allow(clippy::print_stderr)]

pub mod kube_stub;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The test environment as written by `scripts/test-env` to `$BERTH_TEST_ENV_DIR/env`.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub dir: PathBuf,
    /// Basic auth, plain HTTP: `127.0.0.1:5000`.
    pub registry: String,
    /// Basic auth, TLS with the test CA: `127.0.0.1:5443`.
    pub registry_tls: String,
    /// Bearer token auth, TLS: `127.0.0.1:5444`.
    pub registry_token: String,
    /// The token issuer's base URL (`/stats`, `/stats/reset`).
    pub token_issuer: String,
    pub ca_file: PathBuf,
    pub user: String,
    pub password: String,
    /// `unix:///run/podman/podman.sock` or whatever engine the environment found.
    pub docker_host: Option<String>,
    /// The test PostgreSQL server (`postgres://berth@127.0.0.1:5433/postgres`).
    pub postgres_url: Option<String>,
}

fn env_dir() -> PathBuf {
    std::env::var_os("BERTH_TEST_ENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/berth-test-env"))
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.trim_matches('"').trim_matches('\'').to_owned(),
            )
        })
        .collect()
}

fn required() -> bool {
    std::env::var("BERTH_REQUIRE_ENGINE").as_deref() == Ok("1")
}

/// The test environment, or `None` (with the reason printed) when it is not running. Panics
/// instead of skipping under `BERTH_REQUIRE_ENGINE=1`.
pub fn env() -> Option<TestEnv> {
    let dir = env_dir();
    let file = dir.join("env");
    let vars = match std::fs::read_to_string(&file) {
        Ok(t) => parse_env_file(&t),
        Err(e) => {
            return skip(&format!(
                "{} is missing ({e}); run scripts/test-env",
                file.display()
            ));
        }
    };
    let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
    let env = TestEnv {
        dir,
        registry: get("BERTH_TEST_REGISTRY"),
        registry_tls: get("BERTH_TEST_REGISTRY_TLS"),
        registry_token: get("BERTH_TEST_REGISTRY_TOKEN"),
        token_issuer: get("BERTH_TEST_TOKEN_ISSUER"),
        ca_file: PathBuf::from(get("BERTH_TEST_CA")),
        user: get("BERTH_TEST_USER"),
        password: get("BERTH_TEST_PASSWORD"),
        docker_host: vars.get("DOCKER_HOST").cloned(),
        postgres_url: vars
            .get("BERTH_TEST_POSTGRES_URL")
            .filter(|u| !u.is_empty())
            .cloned(),
    };
    if TcpStream::connect_timeout(&env.registry.parse().ok()?, Duration::from_secs(2)).is_err() {
        return skip(&format!(
            "the test registry {} does not answer; run scripts/test-env",
            env.registry
        ));
    }
    Some(env)
}

fn skip<T>(why: &str) -> Option<T> {
    if required() {
        panic!("BERTH_REQUIRE_ENGINE=1 but the test environment is not usable: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

impl TestEnv {
    /// A new, empty database on the test PostgreSQL server (named `berth_test_…`;
    /// `scripts/test` drops those of earlier runs): its URL, or `None` after printing why there
    /// is none — a panic instead under `BERTH_REQUIRE_ENGINE=1`.
    pub fn fresh_postgres_database(&self) -> Option<String> {
        let Some(server) = &self.postgres_url else {
            return skip(
                "BERTH_TEST_POSTGRES_URL is not in the env file; run scripts/test-env (it starts \
                 PostgreSQL)",
            );
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("berth_test_{}_{nanos}", std::process::id());
        let out = Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-d", server, "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return skip(&format!(
                    "creating a database on {server} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => return skip(&format!("running psql failed: {e}")),
        }
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Some(format!("{base}/{name}"))
    }

    /// The CA certificate of the TLS registries (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ca_file).expect("reading the test CA")
    }

    /// The digest `skopeo inspect` reports for `registry/repo:tag`: an independent oracle.
    pub fn skopeo_digest(&self, reference: &str) -> String {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // sha256 of the raw manifest bytes = the manifest digest.
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sha256sum");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let sum = child.wait_with_output().unwrap();
        let hex = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        format!("sha256:{hex}")
    }

    /// Copies `from` (`repo:tag` on the basic-auth test registry) to `to` (a full reference on
    /// the same registry), as a CI would push a new tag; panics with skopeo's words on failure.
    pub fn copy_image(&self, from: &str, to: &str) {
        let creds = format!("{}:{}", self.user, self.password);
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--src-creds",
                &creds,
                "--dest-creds",
                &creds,
            ])
            .arg(format!("docker://{}/{from}", self.registry))
            .arg(format!("docker://{to}"))
            .output()
            .expect("running skopeo copy");
        assert!(
            out.status.success(),
            "skopeo copy {from} {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many requests the token issuer has answered so far.
    pub fn token_requests(&self) -> u64 {
        let body = http_get(&format!("{}/stats", self.token_issuer));
        let key = "\"token_requests\":";
        let i = body.find(key).expect("token_requests in /stats") + key.len();
        body[i..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// A minimal HTTP/1.0 GET over a plain TCP socket (test-only; avoids an HTTP client dependency).
pub fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).expect("connecting");
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` (CNCF distribution) process of a test, serving `config` on `host`.
/// Killed on drop.
pub struct RegistryProcess {
    child: Option<Child>,
}

impl RegistryProcess {
    /// Writes `config` (a complete registry configuration listening on `host`) into `dir`,
    /// starts the registry with it (output to `log`, or nowhere) and waits until `host`
    /// accepts connections (at most 15 s).
    pub fn start(
        dir: &std::path::Path,
        host: &str,
        config: &str,
        log: Option<&std::path::Path>,
    ) -> Self {
        let file = dir.join("config.yml");
        std::fs::write(&file, config).unwrap();
        let (stdout, stderr) = match log {
            Some(path) => {
                let f = std::fs::File::create(path).unwrap();
                (Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&file)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("starting docker-registry");
        let process = Self { child: Some(child) };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {host}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    /// SIGKILL: the registry is gone at once, not shutting down. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway CNCF distribution registry without authentication (a "public" registry),
/// holding a copy of `test/web:v1`. Stopped on drop.
pub struct AnonymousRegistry {
    _process: RegistryProcess,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl AnonymousRegistry {
    pub fn start(env: &TestEnv) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let process = RegistryProcess::start(
            dir.path(),
            &host,
            &format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
            None,
        );
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--src-creds",
            ])
            .arg(format!("{}:{}", env.user, env.password))
            .arg(format!("docker://{}/test/web:v1", env.registry))
            .arg(format!("docker://{host}/public/web:v1"))
            .output()
            .expect("running skopeo copy");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            _process: process,
            host,
            _dir: dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parsing() {
        let vars = parse_env_file("# c\nexport A=1\nexport B=\"x y\"\nC=3\n");
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("x y"));
        assert!(!vars.contains_key("C"));
    }
}
