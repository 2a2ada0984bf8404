//! The gateway alone with one static route, for `scripts/bench gateway`: it measures the same
//! proxy code `berth serve` runs, without needing a deployed component.
//!
//! Usage: gateway_bench LISTEN UPSTREAM   (routes /bench/bench/bench/bench/… to UPSTREAM)
#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;

use berth_dataplane::{RouteSwitch, WorkloadKey};
use berth_server::gateway::Gateway;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: gateway_bench LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM is host:port");
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let gw = Arc::new(Gateway::new(format!("http://{listen}")));
    let key = WorkloadKey {
        org: "bench".into(),
        project: "bench".into(),
        component: "bench".into(),
        env: "bench".into(),
    };
    gw.switch(&key, &[upstream]);
    gw.serve(listener, std::future::pending()).await
}
