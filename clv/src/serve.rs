//! `clv serve`: the HTTP scorer over a store that `clv ingest` writes (opened as a RocksDB secondary
//! instance, so both run at once) and the registry's production model.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use scorer::http::{Limits, router, shutdown_signal};
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;

use crate::telemetry;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The feature store that ingest writes.
    #[arg(long, env = "CLV_DB", default_value = "data/featurestore")]
    db: PathBuf,
    /// The secondary instance's own folder (default: <db>.scorer).
    #[arg(long)]
    secondary_dir: Option<PathBuf>,
    /// The model registry; the scorer follows its `production` pointer.
    #[arg(long, env = "CLV_MODELS_DIR", default_value = "data/models")]
    models_dir: PathBuf,
    /// Address to listen on (HTTP API, `/metrics` included).
    #[arg(long, env = "CLV_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The time features are taken at: `watermark` (the latest purchase ingested, rounded up to the
    /// next midnight), `now`, or a date YYYY-MM-DD.
    #[arg(long, default_value = "watermark")]
    as_of: AsOf,
    /// Seconds between catch-ups with the store and checks of the registry.
    #[arg(long, default_value_t = 1.0)]
    refresh_seconds: f64,
    /// The largest request body, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_body_bytes: usize,
    /// Seconds before a request times out (408).
    #[arg(long, default_value_t = 10.0)]
    timeout_seconds: f64,
    /// Requests handled at once; beyond it the answer is 503 with Retry-After (load shedding).
    #[arg(long, default_value_t = scorer::http::Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Connections open at once; beyond it a new one is answered 503 with Retry-After and closed.
    #[arg(long, default_value_t = scorer::http::Limits::default().max_connections)]
    max_connections: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = telemetry::install_recorder()?;
    scorer::http::register_metrics();
    let secondary_dir = args.secondary_dir.clone().unwrap_or_else(|| {
        let mut name = args.db.as_os_str().to_owned();
        name.push(".scorer");
        PathBuf::from(name)
    });
    let source = FeatureSource::secondary(&args.db, &secondary_dir)
        .with_context(|| format!("opening the feature store {}", args.db.display()))?;
    let scorer = Arc::new(Scorer::default());
    let mut refresher = Refresher::new(scorer.clone(), source, args.models_dir.clone(), args.as_of);
    if let Err(e) = refresher.tick() {
        tracing::warn!("first refresh: {e}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let refresh = refresher.spawn(
        Duration::from_secs_f64(args.refresh_seconds.max(0.01)),
        stop.clone(),
    )?;
    let limits = Limits {
        body_bytes: args.max_body_bytes,
        timeout: Duration::from_secs_f64(args.timeout_seconds.max(0.001)),
        max_in_flight: args.max_in_flight,
        max_connections: args.max_connections,
        ..Limits::default()
    };
    let app = router(scorer, Some(metrics), limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let local = listener.local_addr()?;
        println!("serving on http://{local} (docs: http://{local}/docs/)");
        let listener = scorer::shed::CappedListener::new(listener, limits.max_connections);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")
    })?;
    stop.store(true, Ordering::Release);
    let _ = refresh.join();
    println!("stopped");
    Ok(())
}
