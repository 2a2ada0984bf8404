//! Keep-alive HTTP/1.1 connections to the instances, one pool per gateway worker thread.
//!
//! A worker is a single-threaded event loop, so its pool needs no lock: it is a thread-local
//! map from backend address to idle connections. A connection goes back to the pool when the
//! answer's body has been read to its end (HTTP/1 cannot start the next request before that);
//! one whose answer is dropped half-read, or that was upgraded (WebSocket), is never reused.
//! A request that found its pooled connection closed before it was written is sent again on
//! another connection (the upstream may close idle keep-alive connections at any time).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

/// How long connecting to an instance may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many idle connections are kept per instance and worker.
const MAX_IDLE: usize = 256;

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>>> = RefCell::new(HashMap::new());
}

fn checkout(backend: SocketAddr) -> Option<SendRequest<Body>> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&backend)?;
        let found = loop {
            let Some(c) = idle.pop() else { break None };
            if !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT {
                break Some(c.sender);
            }
        };
        if idle.is_empty() {
            pool.remove(&backend);
        }
        found
    })
}

fn checkin(backend: SocketAddr, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(backend).or_default();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    });
}

/// Why a request got no answer from the instance.
#[derive(Debug)]
pub enum Error {
    Connect(std::io::Error),
    ConnectTimeout,
    Http(hyper::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::ConnectTimeout => {
                write!(f, "cannot connect: no answer within {CONNECT_TIMEOUT:?}")
            }
            Self::Http(e) => write!(f, "{e}"),
        }
    }
}

async fn connect(backend: SocketAddr) -> Result<SendRequest<Body>, Error> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(backend))
        .await
        .map_err(|_| Error::ConnectTimeout)?
        .map_err(Error::Connect)?;
    // Small requests must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(Error::Http)?;
    // Driven by this worker's event loop, like the client connection it serves.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Sends `req` (origin-form URI, with a `Host` header) to `backend` on a pooled connection or
/// a new one, and returns the answer with a body that puts the connection back when read.
pub async fn send(backend: SocketAddr, mut req: Request<Body>) -> Result<Response<Body>, Error> {
    while let Some(mut sender) = checkout(backend) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(pooled(backend, sender, resp)),
            Err(mut e) => match e.take_message() {
                // Not written: the connection closed while idle. Try the next one.
                Some(back) => req = back,
                None => return Err(Error::Http(e.into_error())),
            },
        }
    }
    let mut sender = connect(backend).await?;
    let resp = sender.send_request(req).await.map_err(Error::Http)?;
    Ok(pooled(backend, sender, resp))
}

fn pooled(
    backend: SocketAddr,
    sender: SendRequest<Body>,
    resp: Response<Incoming>,
) -> Response<Body> {
    if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        // The connection becomes the tunnel: never reused.
        return resp.map(Body::new);
    }
    resp.map(|body| {
        Body::new(PooledBody {
            body,
            slot: Some((backend, sender)),
        })
    })
}

/// The answer's body; returns its connection to the pool once read to the end.
struct PooledBody {
    body: Incoming,
    slot: Option<(SocketAddr, SendRequest<Body>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((backend, sender)) = self.slot.take() {
            checkin(backend, sender);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.slot = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An answer without a body (or read to its end) leaves the connection reusable; one
        // dropped half-read does not (its connection is closed with the sender).
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A minimal HTTP/1.1 server: answers `body` to every request; with `close_after`, closes
    /// each connection after that many answers (as upstreams close idle keep-alive connections).
    async fn upstream(
        body: &'static str,
        close_after: Option<usize>,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut answered = 0;
                    loop {
                        let mut chunk = [0u8; 1024];
                        let Ok(n) = tcp.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if tcp.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            answered += 1;
                            if close_after == Some(answered) {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn get() -> Request<Body> {
        Request::builder()
            .uri("/")
            .header("host", "test")
            .body(Body::empty())
            .unwrap()
    }

    async fn text(resp: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_read_to_the_end_reuse_one_connection() {
        let (addr, accepted) = upstream("hello", None).await;
        for _ in 0..5 {
            assert_eq!(text(send(addr, get()).await.unwrap()).await, "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_half_read_answer_does_not_give_its_connection_back() {
        let (addr, accepted) = upstream("hello", None).await;
        drop(send(addr, get()).await.unwrap()); // body never read
        assert_eq!(text(send(addr, get()).await.unwrap()).await, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_the_upstream_closed_are_not_used() {
        let (addr, accepted) = upstream("hello", Some(1)).await;
        for _ in 0..5 {
            assert_eq!(text(send(addr, get()).await.unwrap()).await, "hello");
            // The upstream's close reaches the pooled connection while it is idle.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_instance_that_is_gone_is_a_connect_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = send(addr, get()).await.unwrap_err();
        assert!(matches!(e, Error::Connect(_)), "{e}");
        assert!(e.to_string().starts_with("cannot connect"), "{e}");
    }
}
