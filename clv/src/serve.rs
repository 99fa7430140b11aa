//! `clv serve`: the HTTP scorer over a store that `clv ingest` writes (opened as a RocksDB secondary
//! instance, so both run at once) and the registry's production model.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use scorer::http::router;
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;

use crate::server::{Server, ServerArgs, Stop};

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
    #[command(flatten)]
    server: ServerArgs,
    /// The time features are taken at: `watermark` (the latest purchase ingested, rounded up to the
    /// next midnight), `now`, or a date YYYY-MM-DD.
    #[arg(long, default_value = "watermark")]
    as_of: AsOf,
    /// Seconds between catch-ups with the store and checks of the registry.
    #[arg(long, default_value_t = 1.0)]
    refresh_seconds: f64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let stop = Stop::on_signal()?;
    let server = Server::start(&args.server)?;
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
    let refresh = refresher.spawn(
        Duration::from_secs_f64(args.refresh_seconds.max(0.01)),
        stop.flag(),
    )?;
    let local = server.local_addr()?;
    println!("serving on http://{local} (docs: http://{local}/docs/)");
    let app = router(scorer, Some(server.metrics()), server.limits());
    let served = server.serve(app, &stop);
    stop.stop();
    let _ = refresh.join();
    served?;
    println!("stopped");
    Ok(())
}
