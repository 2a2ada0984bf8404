//! The gateway streams bodies both ways: 100 MB through it in each direction grows the
//! process's resident memory by far less than the body (nothing is buffered whole).

use std::sync::Arc;
use std::time::Duration;

use berth_dataplane::{RouteSwitch, WorkloadKey};
use berth_server::gateway::Gateway;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const SIZE: usize = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Reads an HTTP/1.1 head; returns the request line and the Content-Length.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> (String, usize) {
    let mut first = String::new();
    r.read_line(&mut first).await.unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    (first, length)
}

/// Upstream: POST → counts the body and answers the count; GET → sends SIZE bytes.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let (first, length) = read_head(&mut r).await;
                if first.starts_with("POST") {
                    let mut left = length;
                    let mut buf = vec![0u8; CHUNK];
                    while left > 0 {
                        let n = r.read(&mut buf[..left.min(CHUNK)]).await.unwrap();
                        assert!(n > 0, "upstream: body ended early");
                        left -= n;
                    }
                    let body = length.to_string();
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    w.write_all(head.as_bytes()).await.unwrap();
                    w.write_all(body.as_bytes()).await.unwrap();
                } else {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
                    w.write_all(head.as_bytes()).await.unwrap();
                    let chunk = vec![b'x'; CHUNK];
                    for _ in 0..SIZE / CHUNK {
                        w.write_all(&chunk).await.unwrap();
                    }
                }
                w.shutdown().await.ok();
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_each_way_without_buffering() {
    let backend = upstream().await;
    let gw = Arc::new(Gateway::new("http://127.0.0.1:0".into()));
    let key = WorkloadKey {
        org: "o".into(),
        project: "p".into(),
        component: "c".into(),
        env: "e".into(),
    };
    gw.switch(&key, &[backend]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gw.clone().serve(listener, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_kb();

    // Upload.
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = sock.into_split();
    let head =
        format!("POST /o/p/c/e/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n");
    w.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'y'; CHUNK];
    for _ in 0..SIZE / CHUNK {
        w.write_all(&chunk).await.unwrap();
    }
    let mut r = BufReader::new(r);
    let (status, length) = read_head(&mut r).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), SIZE.to_string());
    let after_upload = rss_kb();

    // Download.
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = sock.into_split();
    w.write_all(b"GET /o/p/c/e/download HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut r = BufReader::new(r);
    let (status, _) = read_head(&mut r).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut got = 0usize;
    let mut buf = vec![0u8; CHUNK];
    while got < SIZE {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "download ended early at {got}");
        got += n;
    }
    let after_download = rss_kb();

    let growth_mb = (after_upload.max(after_download).saturating_sub(before)) as f64 / 1024.0;
    assert!(
        growth_mb < 20.0,
        "resident memory grew by {growth_mb:.1} MB for 100 MB each way"
    );
}
