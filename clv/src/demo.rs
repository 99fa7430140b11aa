//! `clv demo`: the whole system in one process on the embedded default: data -> embedded Kafka ->
//! ingest -> RocksDB -> trained, promoted model -> HTTP scorer, with progress bars. Run again, it
//! reuses the store and the registry and skips what is done; `--fresh` starts over.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use featurestore::store::RocksStore;
use ingest::broker::EmbeddedBroker;
use ingest::consume::{Ingest, IngestOptions};
use ingest::replay::{ReplayOptions, replay};
use models::registry::Registry;
use scorer::http::{Limits, router};
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;
use trainer::training::Histories;

use crate::{progress, telemetry, train};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The data (.xlsx, .zip, .csv or .parquet); default data/raw/online_retail_II.zip (or .xlsx).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Without data, generate a synthetic dataset of the same shape instead of failing.
    #[arg(long)]
    synthetic: bool,
    /// Customers of the synthetic dataset.
    #[arg(long, default_value_t = 5_900)]
    synthetic_customers: u32,
    /// Where the demo keeps its store, registry and state.
    #[arg(long, default_value = "data/demo")]
    dir: PathBuf,
    /// Start over: remove the demo's folder first.
    #[arg(long)]
    fresh: bool,
    /// Address of the scorer (and its /metrics).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Stop after the scorer is ready and the hints are printed (for scripts and tests).
    #[arg(long, hide = true)]
    exit_when_ready: bool,
}

/// The input: `--data`, else the downloaded file, else generated with `--synthetic`.
fn input(args: &DemoArgs) -> anyhow::Result<PathBuf> {
    if let Some(data) = &args.data {
        anyhow::ensure!(data.exists(), "{} does not exist", data.display());
        return Ok(data.clone());
    }
    for candidate in [
        "data/raw/online_retail_II.zip",
        "data/raw/online_retail_II.xlsx",
    ] {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    if !args.synthetic {
        anyhow::bail!(
            "no data: get UCI's file with `clv data download` (into data/raw/), give --data <file>, \
             or run `clv demo --synthetic` for a generated dataset"
        );
    }
    let out = args.dir.join("synthetic.csv");
    if !out.exists() {
        std::fs::create_dir_all(&args.dir)?;
        let spec = dataset::synthetic::SyntheticSpec {
            customers: args.synthetic_customers,
            ..Default::default()
        };
        let bar = progress::items("generating");
        dataset::synthetic::generate_csv(&spec, &out, &bar)?;
        bar.finish_and_clear();
    }
    Ok(out)
}

/// What identifies an input that was streamed in full: its path, size and modification time.
fn input_stamp(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(format!(
        "{}\n{}\n{}\n",
        std::fs::canonicalize(path)?.display(),
        meta.len(),
        modified
    ))
}

/// The sum of ingest's event counters (every outcome) from the process's metrics.
fn events_counted(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("clv_ingest_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Embedded broker, ingest on a thread, replay with progress, until every event is applied.
fn stream(
    input: &Path,
    store: Arc<RocksStore>,
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(&[("transactions", 4), ("transactions.dlq", 1)])?;
    let config = broker.config();
    let before = events_counted(metrics);
    let ingest_stop = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (config, store, ingest_stop) = (config.clone(), store.clone(), ingest_stop.clone());
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || -> anyhow::Result<()> {
                let options = IngestOptions {
                    session_timeout: Duration::from_secs(10),
                    ..IngestOptions::default()
                };
                let mut ingest = Ingest::connect(&config, store, options)?;
                ingest.run(&ingest_stop)?;
                Ok(())
            })?
    };
    let bar = progress::reading(input);
    let lines = dataset::normalised::numbered_lines(input, &bar)
        .with_context(|| format!("reading {}", input.display()))?;
    bar.finish_and_clear();
    let options = ReplayOptions {
        topic: "transactions".into(),
        speed: None,
        from: None,
        to: None,
        max_lag: Some(40_000),
        group: "clv-ingest".into(),
    };
    let bar = progress::items("replaying");
    let summary = replay(&config, &lines, &options, &bar)?;
    bar.finish_and_clear();
    println!(
        "replayed {} lines: {} events sent to the embedded Kafka at {}",
        summary.lines,
        summary.sent,
        broker.bootstrap_servers()
    );
    let bar = progress::items("ingesting");
    bar.set_length(summary.sent);
    loop {
        let done = events_counted(metrics).saturating_sub(before);
        bar.set_position(done.min(summary.sent));
        if done >= summary.sent || stop.load(Ordering::SeqCst) || ingest.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
    ingest_stop.store(true, Ordering::SeqCst);
    ingest
        .join()
        .map_err(|_| anyhow::anyhow!("the ingest thread panicked"))??;
    anyhow::ensure!(!stop.load(Ordering::SeqCst), "stopped");
    println!(
        "ingested {} events: {} customers in the store (consumer lag 0)",
        summary.sent,
        store.customers()?
    );
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the signal handler")?;
    }
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    let input = input(&args)?;
    std::fs::create_dir_all(&args.dir)?;
    let metrics = telemetry::install_recorder()?;
    scorer::service::register_metrics();
    scorer::http::register_metrics();
    let db = args.dir.join("featurestore");
    let models_dir = args.dir.join("models");
    let store = Arc::new(
        RocksStore::open(&db).with_context(|| format!("opening the store {}", db.display()))?,
    );

    // 1. Stream the data, unless this very input was streamed in full before.
    let stamp_file = args.dir.join("streamed.txt");
    let stamp = input_stamp(&input)?;
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
        println!(
            "{} was streamed before: {} customers in {} (--fresh starts over)",
            input.display(),
            store.customers()?,
            db.display()
        );
    } else {
        anyhow::ensure!(
            store.customers()? == 0,
            "{} holds another dataset's events: run with --fresh",
            db.display()
        );
        stream(&input, store.clone(), &metrics, &stop)?;
        std::fs::write(&stamp_file, &stamp)?;
    }

    // 2. Train and promote, unless production was trained on exactly these purchases.
    let fingerprint = Histories::from_states(store.all_states()?).fingerprint();
    let registry = Registry::open(&models_dir)?;
    let trained_here = registry
        .production()?
        .map(|v| registry.metadata(&v))
        .transpose()?
        .is_some_and(|m| m.data_fingerprint == fingerprint);
    if trained_here {
        println!("production model already trained on this data: skipping training");
    } else {
        train::run(train::TrainArgs::on_store(db.clone(), models_dir.clone()))?;
    }
    let version = registry
        .production()?
        .context("no production model after training")?;

    // 3. Serve, from the same store, in this process.
    let scorer = Arc::new(Scorer::default());
    let mut refresher = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store.clone()),
        models_dir.clone(),
        AsOf::Watermark,
    );
    refresher.tick()?;
    let population = scorer.population().context("nothing to score")?;
    let refresh = refresher.spawn(Duration::from_secs(1), stop.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.listen))
        .with_context(|| format!("binding {}", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!(
        "\nready after {:.0} s: {} customers scored at {} by {} ({version})\n",
        started.elapsed().as_secs_f64(),
        population.len(),
        population.as_of,
        population.model.name
    );
    println!("top 10 customers by predicted CLV (next 6 months):");
    println!("  rank  customer  clv_6m (£)");
    for r in population.top(10) {
        println!("  {:>4}  {:>8}  {:>12.2}", r.rank, r.customer_id, r.clv_6m);
    }
    println!("\ntry:");
    for r in population.top(3) {
        println!("  curl {base}/customers/{}/clv", r.customer_id);
    }
    println!("  curl '{base}/customers/top?k=100'");
    println!("  curl {base}/customers/top.csv > top.csv");
    println!("  open {base}/docs/   (the API)");
    println!("  curl {base}/metrics   (Prometheus)");
    println!(
        "report: {}",
        models_dir.join(&version).join("report.html").display()
    );
    println!("Ctrl-C stops everything.");
    let app = router(scorer, Some(metrics), Limits::default());
    let exit_when_ready = args.exit_when_ready;
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) && !exit_when_ready {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    runtime.block_on(async {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    })?;
    stop.store(true, Ordering::SeqCst);
    let _ = refresh.join();
    println!("stopped");
    Ok(())
}
