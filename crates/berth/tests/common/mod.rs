//! Test harness: runs the real `berth` binary (server and CLI) on free ports with a temp
//! data dir, and kills it on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

pub struct ServerProc {
    pub child: Child,
    pub url: String,
    /// The external gateway's base URL.
    pub gateway: String,
    /// The internal gateway's address as the host sees it (`http://0.0.0.0:PORT`).
    pub internal_gateway: String,
    pub data_dir: PathBuf,
    pub stdout: String,
    /// Server log lines (stderr), collected in the background.
    pub logs: mpsc::Receiver<String>,
}

/// A free port for a test server, from below the kernel's ephemeral range (32768 up), on
/// loopback and on all addresses.
///
/// Not port 0: the engine publishes containers' ports from the ephemeral range with NAT rules,
/// and Podman holds such a port only through the container's conmon process. A container left
/// by an earlier run whose processes were killed (conmon included) keeps its rule while nothing
/// holds the port, so a port-0 listener could get that port and its clients would be sent to
/// the dead container instead (seen in CI: "connection refused" from a server that was
/// listening). A harness must not depend on every earlier run having ended cleanly.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    const FIRST: u16 = 20_000;
    const COUNT: u64 = 12_000;
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = FIRST + (h.finish() % COUNT) as u16;
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.contains(&port) {
            continue;
        }
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok();
        if free {
            given.push(port);
            return port;
        }
    }
}

/// `berth serve` on free loopback ports (the internal gateway on all addresses, as containers
/// reach it; see [`free_port`]) with `data_dir`, logging at info in `log_format` (`json` or
/// `pretty`).
pub fn serve_command(data_dir: &Path, log_format: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--gateway-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--internal-gateway-listen",
        &format!("0.0.0.0:{}", free_port()),
        "--log-format",
        log_format,
        "--data-dir",
    ])
    .arg(data_dir)
    .env("BERTH_LOG", "info");
    cmd
}

impl ServerProc {
    /// Starts `berth serve` on free ports and waits until it logs its addresses.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Like [`ServerProc::start`], with extra environment variables. A port taken between
    /// [`free_port`]'s check and the server's bind gets a second try on other ports.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(data_dir, env) {
                Ok(server) => return server,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn try_start(data_dir: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let mut cmd = serve_command(data_dir, "json");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning berth serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let mut gateway = None;
        let mut internal = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while url.is_none() || gateway.is_none() || internal.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!(
                        "berth serve did not start ({e}; exit status {status:?}); its log:\n{}",
                        seen.join("\n")
                    ));
                }
            };
            seen.push(line.clone());
            if let Some(i) = line.find("berth listening on http://") {
                let rest = &line[i + "berth listening on ".len()..];
                url = Some(rest.split('"').next().unwrap().to_owned());
            }
            if let Some(i) = line.find("internal gateway listening on http://") {
                let rest = &line[i + "internal gateway listening on ".len()..];
                internal = Some(rest.split('"').next().unwrap().to_owned());
            } else if let Some(i) = line.find("gateway listening on http://") {
                let rest = &line[i + "gateway listening on ".len()..];
                gateway = Some(rest.split('"').next().unwrap().to_owned());
            }
        }
        // stdout: the one-time banner, written before the listening line.
        let stdout = child.stdout.take().unwrap();
        let banner = std::thread::spawn(move || {
            let mut s = String::new();
            let mut r = BufReader::new(stdout);
            // The banner is 5 lines when present; read what is there without blocking forever.
            for _ in 0..5 {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                s.push_str(&line);
            }
            s
        });
        std::thread::sleep(Duration::from_millis(200));
        let stdout = if banner.is_finished() {
            banner.join().unwrap()
        } else {
            String::new()
        };
        Ok(Self {
            child,
            url: url.unwrap(),
            gateway: gateway.unwrap(),
            internal_gateway: internal.unwrap(),
            data_dir: data_dir.to_owned(),
            stdout,
            logs: rx,
        })
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs the CLI against this server; the token comes from the data dir unless given.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("BERTH_SERVER", &self.url)
            .env("BERTH_DATA_DIR", &self.data_dir)
            .env_remove("BERTH_TOKEN")
            .env("XDG_CONFIG_HOME", self.data_dir.join("cli-config"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("running the berth CLI")
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("berth serve did not exit within 10 s of SIGTERM");
    }

    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

impl Drop for ServerProc {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        // A failing test shows whether the server was still running and what it said (the
        // lines not yet read by the test): a flaky failure in CI is otherwise hard to explain
        // afterwards. A running server is stopped with SIGTERM first so that it writes its
        // last batch of log lines.
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("had already exited: {status}"),
            Ok(None) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .status();
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                while std::time::Instant::now() < deadline
                    && matches!(self.child.try_wait(), Ok(None))
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                "was still running (stopped now)".to_owned()
            }
            Err(e) => format!("state unknown: {e}"),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at the end of stderr; take what it still has (at most 1 s).
        let mut lines = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self
            .logs
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            lines.push(line);
        }
        let tail = &lines[lines.len().saturating_sub(80)..];
        eprintln!(
            "--- berth serve (pid {}) {state}; log, last {} of {} unread lines ---\n{}",
            self.child.id(),
            tail.len(),
            lines.len(),
            tail.join("\n")
        );
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

/// Asserts the command succeeded (showing its output otherwise) and returns it.
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The command's stdout as JSON (showing both streams when it is not).
pub fn json_out(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Runs the CLI against `server` with `input` on stdin.
pub fn cli_stdin(server: &ServerProc, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env("BERTH_SERVER", &server.url)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("BERTH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the berth CLI");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// GET `url`: (status, body), or (0, the error) when it cannot connect.
pub fn get_body(url: &str) -> (u16, String) {
    match http().get(url).timeout(Duration::from_secs(5)).send() {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Registers the basic-auth test registry as `local` (password through stdin, as users do),
/// in `org` (`None` = the default organization).
pub fn add_local_registry(server: &ServerProc, env: &berth_testkit::TestEnv, org: Option<&str>) {
    let mut args = vec![
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
    ];
    if let Some(org) = org {
        args.extend(["--org", org]);
    }
    ok(cli_stdin(server, &args, &env.password));
}

/// An image of its own: built from `base` (on the shared test registry) with a unique label,
/// pushed as `image` with `push_args` (its credentials or cert dir) and removed from the
/// engine. Its manifest digest is new, so the engine cannot find it locally (Podman matches a
/// `repo@digest` reference by digest across repositories) and a deploy of it has to pull.
pub fn push_unique(env: &berth_testkit::TestEnv, base: &str, image: &str, push_args: &[&str]) {
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!(
            "FROM {}/{base}\nLABEL berth.test.unique={nonce}\n",
            env.registry
        ),
    )
    .unwrap();
    let creds = format!("{}:{}", env.user, env.password);
    let run = |args: &[&str]| {
        let out = Command::new("podman").args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {}", stderr(&out));
    };
    run(&[
        "build",
        "--quiet",
        "--pull=missing",
        "--creds",
        &creds,
        "-t",
        image,
        ctx.path().to_str().unwrap(),
    ]);
    run(&[&["push", "--quiet"], push_args, &[image]].concat());
    run(&["rmi", image]);
}
