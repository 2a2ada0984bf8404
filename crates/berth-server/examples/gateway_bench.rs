//! The gateway alone with one static route, for `scripts/bench gateway`: it measures the same
//! proxy code `berth serve` runs (the same worker threads), without needing a deployed
//! component.
//!
//! Usage: gateway_bench LISTEN UPSTREAM [WORKERS]   (routes /bench/bench/bench/bench/… to
//! UPSTREAM; WORKERS defaults to 1, as the benchmark's nginx has one worker process)
#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;

use berth_dataplane::{RouteSwitch, WorkloadKey};
use berth_server::gateway::Gateway;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: gateway_bench LISTEN UPSTREAM [WORKERS]");
        std::process::exit(2);
    };
    let workers: usize = args
        .next()
        .map_or(1, |w| w.parse().expect("WORKERS is a number"));
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM is host:port");
    // BERTH_LOG set: log as `berth serve` does (the access log at info, batched to stderr).
    if let Ok(filter) = std::env::var("BERTH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(berth_server::logwriter::Batched)
            .compact()
            .init();
    }
    let listener = std::net::TcpListener::bind(&listen)?;
    let gw = Arc::new(Gateway::new(format!("http://{listen}")));
    let key = WorkloadKey {
        org: "bench".into(),
        project: "bench".into(),
        component: "bench".into(),
        env: "bench".into(),
    };
    gw.switch(&key, &[upstream]);
    if workers == 0 {
        // One multi-threaded runtime shared by all connections.
        return tokio::runtime::Runtime::new()?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std({
                listener.set_nonblocking(true)?;
                listener
            })?;
            gw.serve(listener, std::future::pending()).await
        });
    }
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    for worker in gw.serve_workers(listener, workers, stopped)? {
        let _ = worker.join();
    }
    Ok(())
}
