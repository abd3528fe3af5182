//! The floor under `cargo xtask bench-health`: a bare axum server that answers `GET /health` with a fixed
//! body of the given size and does nothing else (no middleware, no tracing, no checks), served the way
//! `sightline serve` serves (axum over hyper, HTTP/1.1, `TCP_NODELAY`). Measured in the same run and with
//! the same pinning as the real server, it shows what the machine's loopback and wrk leave for everything
//! Sightline adds.
//!
//! `cargo run --release -p sightline-server --example health_floor -- 127.0.0.1:19751 16000`

use axum::body::Bytes;
use axum::routing::get;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:19751".into()).parse()?;
    let size: usize = args.next().map_or(Ok(16_000), |s| s.parse())?;
    let body = Bytes::from(vec![b' '; size]);
    // The same runtime `sightline serve` builds: `TOKIO_WORKER_THREADS` sets its workers.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = axum::Router::new().route("/health", get(move || std::future::ready(body.clone())));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok(())
    })
}
