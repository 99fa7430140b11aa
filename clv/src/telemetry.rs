//! Prometheus metrics: the `metrics` recorder and a `/metrics` endpoint on its own thread.

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Response-size buckets, bytes.
const BYTES_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
];

/// Predicted-CLV buckets, pounds.
const POUNDS_BUCKETS: &[f64] = &[
    0.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0,
];

/// Installs the Prometheus recorder: histograms (not summaries) for every `*_seconds`, `*_bytes`
/// and `*_pounds` metric, so that Prometheus can aggregate their buckets.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_pounds".into()), POUNDS_BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Installs the recorder and serves `GET /metrics` on `addr` until the process ends.
pub fn serve_metrics(addr: &str) -> anyhow::Result<PrometheusHandle> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("metrics address {addr:?}"))?;
    let handle = install_recorder()?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    let served = handle.clone();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("metrics runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let handle = served.clone();
                        async move {
                            handle.run_upkeep();
                            handle.render()
                        }
                    }),
                );
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(e) = axum::serve(listener, app).await {
                            tracing::error!("metrics server: {e}");
                        }
                    }
                    Err(e) => tracing::error!("metrics listener: {e}"),
                }
            });
        })?;
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(handle)
}
