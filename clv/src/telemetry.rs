//! Prometheus metrics: the `metrics` recorder, its upkeep, and a `/metrics` endpoint on its own
//! thread.

use std::net::SocketAddr;
use std::time::Duration;

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

/// How often the recorder folds the histograms' recent samples into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the Prometheus recorder: histograms (not summaries) for every `*_seconds`, `*_bytes`
/// and `*_pounds` metric, so that Prometheus can aggregate their buckets; and its upkeep
/// ([`spawn_upkeep`]).
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_pounds".into()), POUNDS_BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    spawn_upkeep(handle.clone(), UPKEEP_EVERY)?;
    Ok(handle)
}

/// Runs the recorder's upkeep every `every` on a thread of its own, for the life of the process.
///
/// The recorder keeps each histogram's samples, 8 bytes each, until upkeep folds them into the
/// buckets; only a scrape did that before, so a scorer nobody scraped grew by ~56 bytes per request
/// (120 MB in 30 s of `wrk`), and every block of samples was fresh memory to fault in
/// (BENCHMARKS.md). `PrometheusBuilder::install` has such a task, `install_recorder` does not.
pub fn spawn_upkeep(handle: PrometheusHandle, every: Duration) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                handle.run_upkeep();
            }
        })
        .context("starting the metrics upkeep")?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The process's resident memory, bytes (Linux).
    fn resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    #[test]
    fn the_upkeep_bounds_what_histograms_hold_without_a_scrape() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap()
            .build_recorder();
        spawn_upkeep(recorder.handle(), Duration::from_millis(5)).unwrap();
        let histogram = metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("clv_test_duration_seconds")
        });
        // 8 M samples (64 MB if they were all held), 100,000 between pauses longer than the upkeep's
        // period; never scraped.
        let before = resident();
        for round in 0..80 {
            for i in 0..100_000 {
                histogram.record(f64::from(i + round) * 1e-6);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        let grown = resident().saturating_sub(before);
        assert!(grown < 24 << 20, "grew {} MB", grown >> 20);
        // The samples are in the buckets: nearly all, since a drain racing a write can miss a
        // sample (one of 8 M was missed in one CI run).
        let rendered = recorder.handle().render();
        let count: u64 = rendered
            .lines()
            .find_map(|l| l.strip_prefix("clv_test_duration_seconds_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count: {rendered}"));
        assert!((7_999_000..=8_000_000).contains(&count), "{count}");
    }
}
