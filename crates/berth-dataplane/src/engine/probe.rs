//! berth's own probes: HTTP GET and TCP connect from the host, exec inside the container.
//! Engine healthchecks are not used: Podman schedules them with systemd timers, which a
//! container or CI host usually lacks.

use std::net::SocketAddr;
use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Client;

/// Largest response head read by the HTTP probe.
const MAX_HEAD: usize = 8 * 1024;

/// `GET path` over HTTP/1.1 with `Connection: close`; the status code, or why there is none.
pub(crate) async fn http_status(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: berth-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("GET {path} on {addr}: sending: {e}"))?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        // The status line is all we need.
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_HEAD {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("GET {path} on {addr}: reading: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        parse_status_line(&head).ok_or_else(|| {
            if head.is_empty() {
                format!("GET {path} on {addr}: connection closed without a response")
            } else {
                format!("GET {path} on {addr}: not an HTTP response")
            }
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A TCP connect.
pub(crate) async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("TCP connect to {addr}: {e}")),
        Err(_) => Err(format!(
            "TCP connect to {addr}: no answer within {timeout:?}"
        )),
    }
}

/// Runs `command` inside the container; success is exit code 0.
pub(crate) async fn exec(
    c: &Client,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let shown = command.join(" ");
    let attempt = async {
        let config = ExecConfig {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = c
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| format!("exec {shown}: {e}"))?;
        let mut output = String::new();
        match c
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(|e| format!("exec {shown}: {e}"))?
        {
            StartExecResults::Attached {
                output: mut out, ..
            } => {
                while let Some(chunk) = out.next().await {
                    let Ok(chunk) = chunk else { break };
                    if output.len() < 512 {
                        output.push_str(&String::from_utf8_lossy(chunk.as_ref()));
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = c
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| format!("exec {shown}: {e}"))?;
        match inspect.exit_code {
            Some(0) => Ok(()),
            code => {
                let code = code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                let output = output.trim();
                Err(if output.is_empty() {
                    format!("exec {shown}: exit code {code}")
                } else {
                    format!("exec {shown}: exit code {code}: {output}")
                })
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("exec {shown}: did not finish within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[tokio::test]
    async fn http_probe_against_a_tiny_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let status = if req.starts_with("GET /healthz ") {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(http_status(addr, "/healthz", t).await, Ok(200));
        assert_eq!(http_status(addr, "nope", t).await, Ok(404));
        assert!(tcp(addr, t).await.is_ok());
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = http_status(closed, "/", t).await.unwrap_err();
        assert!(err.contains("GET / on"), "{err}");
        assert!(tcp(closed, t).await.is_err());
    }
}
