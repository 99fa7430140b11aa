//! `clv demo`: the whole system in one process on the embedded default: data -> embedded Kafka ->
//! ingest -> RocksDB -> trained, promoted model -> HTTP scorer, with progress bars. The broker and
//! ingest keep running while it serves: what anyone produces (`clv send`, kcat) is scored within a
//! refresh. Run again, it reuses the store and the registry and skips what is done; `--fresh` starts
//! over.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use anyhow::Context;
use clap::Args;
use featurestore::store::RocksStore;
use ingest::broker::EmbeddedBroker;
use ingest::consume::{Ingest, IngestOptions};
use ingest::replay::{ReplayOptions, replay};
use models::registry::Registry;
use scorer::http::router;
use scorer::population::Population;
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;
use trainer::training::Histories;

mod group;

use crate::server::{Server, ServerArgs, Stop};
use crate::{progress, train};

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
    #[command(flatten)]
    server: ServerArgs,
    /// Stop after the scorer is ready and the hints are printed (for scripts and tests).
    #[arg(long, hide = true)]
    exit_when_ready: bool,
    /// Scale out: after streaming and training, serve through this many `clv instance` processes
    /// on the embedded broker (each its own store, started from checkpoints of the demo's, with
    /// warm standbys); each one's address and process ID is printed. 1: one process serves.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    instances: u8,
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
fn events_counted(metrics: &PrometheusHandle) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| {
            l.strip_prefix(ingest::telemetry::EVENTS)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The embedded broker and ingest on a thread, folding into the shared store until stopped.
struct Live {
    broker: EmbeddedBroker,
    ingest: std::thread::JoinHandle<anyhow::Result<()>>,
    ingest_stop: Arc<AtomicBool>,
}

/// The demo topic's partitions.
const PARTITIONS: i32 = 4;

impl Live {
    fn start(store: Arc<RocksStore>) -> anyhow::Result<Live> {
        let broker = EmbeddedBroker::start(&[
            ("transactions", PARTITIONS),
            ("transactions.dlq", 1),
            // The instances' records, for `--instances`.
            ("clv.instances", 1),
        ])?;
        let ingest_stop = Arc::new(AtomicBool::new(false));
        let ingest = {
            let (config, ingest_stop) = (broker.config(), ingest_stop.clone());
            std::thread::Builder::new().name("ingest".into()).spawn(
                move || -> anyhow::Result<()> {
                    let options = IngestOptions {
                        session_timeout: Duration::from_secs(10),
                        ..IngestOptions::default()
                    };
                    let mut ingest = Ingest::connect(&config, store, options)?;
                    ingest.run(&ingest_stop)?;
                    Ok(())
                },
            )?
        };
        Ok(Live {
            broker,
            ingest,
            ingest_stop,
        })
    }

    /// Replays `input` with progress, until ingest has applied every event.
    fn replay(
        &self,
        input: &Path,
        store: &RocksStore,
        metrics: &PrometheusHandle,
        stop: &Stop,
    ) -> anyhow::Result<()> {
        let config = self.broker.config();
        let before = events_counted(metrics);
        let bar = progress::reading(input);
        let lines = dataset::stream::numbered_lines(input, &bar)
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
        if let Some(len) = lines.len {
            bar.set_length(len);
        }
        let summary = replay(&config, lines, &options, &bar)
            .with_context(|| format!("replaying {}", input.display()))?;
        bar.finish_and_clear();
        println!(
            "replayed {} lines: {} events sent to the embedded Kafka at {}",
            summary.lines,
            summary.sent,
            self.broker.bootstrap_servers()
        );
        let bar = progress::items("ingesting");
        bar.set_length(summary.sent);
        loop {
            let done = events_counted(metrics).saturating_sub(before);
            bar.set_position(done.min(summary.sent));
            if done >= summary.sent || stop.is_stopped() || self.ingest.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        anyhow::ensure!(!stop.is_stopped(), "stopped");
        anyhow::ensure!(
            !self.ingest.is_finished(),
            "ingest stopped before every event was applied"
        );
        println!(
            "ingested {} events: {} customers in the store (consumer lag 0)",
            summary.sent,
            store.customers()?
        );
        Ok(())
    }

    /// Stops ingest (it commits what it applied) and the broker.
    fn stop(self) -> anyhow::Result<()> {
        self.ingest_stop.store(true, Ordering::SeqCst);
        let outcome = self
            .ingest
            .join()
            .map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?;
        drop(self.broker);
        outcome
    }
}

/// Streams `input` into `store` through the live broker and ingest, unless this very input was
/// streamed in full before.
fn stream(
    args: &DemoArgs,
    input: &Path,
    live: &Live,
    store: &RocksStore,
    metrics: &PrometheusHandle,
    stop: &Stop,
) -> anyhow::Result<()> {
    let db = args.dir.join("featurestore");
    let stamp_file = args.dir.join("streamed.txt");
    let stamp = input_stamp(input)?;
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
        println!(
            "{} was streamed before: {} customers in {} (--fresh starts over)",
            input.display(),
            store.customers()?,
            db.display()
        );
        return Ok(());
    }
    anyhow::ensure!(
        store.customers()? == 0,
        "{} holds another dataset's events: run with --fresh",
        db.display()
    );
    live.replay(input, store, metrics, stop)?;
    std::fs::write(&stamp_file, &stamp)?;
    Ok(())
}

/// Trains and promotes a version at the data's edge, unless production was trained on exactly
/// these purchases; the production version.
fn train_unless_done(store: &RocksStore, models_dir: &Path) -> anyhow::Result<String> {
    // From the store this process writes (ingest is live: a secondary instance could lag behind).
    let histories = Histories::from_states(store.all_states()?);
    let fingerprint = histories.fingerprint();
    let registry = Registry::open(models_dir)?;
    let trained_here = registry
        .production()?
        .map(|v| registry.metadata(&v))
        .transpose()?
        .is_some_and(|m| m.data_fingerprint == fingerprint);
    if trained_here {
        println!("production model already trained on this data: skipping training");
    } else {
        // At the edge, with the defaults; the first answer does not wait for backtests nobody
        // reads here.
        let job = trainer::job::Job {
            mlflow: train::mlflow("clv"),
            git_commit: train::git_commit(),
            ..trainer::job::Job::at_the_edge(models_dir.to_path_buf())
        };
        train::train_histories(&job, &histories, Instant::now())?;
    }
    registry
        .production()?
        .context("no production model after training")
}

/// What the demo prints once it serves: the top customers and what to try.
fn hints(population: &Population, base: &str, brokers: &str, report: &Path) {
    println!("top 10 customers by predicted CLV (next 6 months):");
    println!("  rank  customer  clv_6m (£)");
    for r in population.top(10) {
        println!("  {:>4}  {:>8}  {:>12.2}", r.rank, r.customer_id, r.clv_6m);
    }
    println!(
        "\nthe page for the people who use the scores: {base}/  (customers, one customer, at risk, the model)"
    );
    println!("\ntry:");
    for r in population.top(3) {
        println!("  curl {base}/customers/{}/clv", r.customer_id);
    }
    println!("  curl '{base}/customers/top?k=100'");
    println!("  curl {base}/customers/top.csv > top.csv");
    println!("  curl '{base}/customers/at-risk?k=20'   (fading customers by value at risk)");
    println!("  open {base}/docs/   (the API)");
    println!("  curl {base}/metrics   (Prometheus)");
    if let Some(first) = population.top(1).first() {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "clv".into());
        let day = population.as_of.pred_opt().unwrap_or(population.as_of);
        let id = first.customer_id;
        println!(
            "\nlive: the embedded Kafka at {brokers} keeps streaming into the store; a purchase \
             produced now is scored within about a second:"
        );
        println!("  {exe} send --brokers {brokers} --customer {id} --price 250 --date {day}");
        println!("  curl {base}/customers/{id}/clv");
        println!(
            "  or with kcat: echo '{id}|{{\"schema_version\":1,\"event_id\":\"kcat:1\",\"customer_id\":{id},\
             \"invoice\":\"900001\",\"stock_code\":\"MANUAL\",\"quantity\":1,\"invoice_date\":\"{day}T12:00:00Z\",\
             \"price\":250.0}}' | kcat -P -b {brokers} -t transactions -K '|' -X partitioner=murmur2_random"
        );
    }
    println!("report: {}", report.display());
    println!("Ctrl-C stops everything.");
}

/// `--instances N`: the instances serve; the demo's ingest and broker stay up for them.
fn serve_as_group(
    args: &DemoArgs,
    mut live: Live,
    store: &RocksStore,
    server: Server,
    models_dir: PathBuf,
    stop: &Stop,
) -> anyhow::Result<()> {
    let state_dir = args.dir.join("state");
    live.broker.advertise(&state_dir)?;
    // The first instance takes the demo's address.
    let first = server.local_addr()?;
    drop(server);
    let group = group::GroupDemo {
        dir: &args.dir,
        store,
        broker: live.broker.config(),
        state_dir,
        models_dir,
        first,
        instances: args.instances,
        partitions: PARTITIONS,
    };
    let ran = group.run(stop, args.exit_when_ready);
    live.stop()?;
    ran?;
    println!("stopped");
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let stop = Stop::on_signal()?;
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    let input = input(&args)?;
    // The address is taken now, not after the minutes of streaming and training.
    let server = Server::start(&args.server)?;
    std::fs::create_dir_all(&args.dir)?;
    let db = args.dir.join("featurestore");
    let models_dir = args.dir.join("models");
    let store = Arc::new(
        RocksStore::open(&db).with_context(|| format!("opening the store {}", db.display()))?,
    );

    // 1. Stream the data; the broker and ingest stay up either way.
    let live = Live::start(store.clone())?;
    stream(&args, &input, &live, &store, &server.metrics(), &stop)?;
    // 2. Train and promote.
    let version = train_unless_done(&store, &models_dir)?;
    // 3. Serve: through N instances, or from the same store in this process.
    if args.instances > 1 {
        return serve_as_group(&args, live, &store, server, models_dir, &stop);
    }
    let scorer = Arc::new(Scorer::default());
    let mut refresher = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store.clone()),
        models_dir.clone(),
        AsOf::Watermark,
    );
    refresher.tick()?;
    let population = scorer.population().context("nothing to score")?;
    let refresh = refresher.spawn(Duration::from_secs(1), stop.flag())?;
    let base = format!("http://{}", server.local_addr()?);
    println!(
        "\nready after {:.0} s: {} customers scored at {} by {} ({version})\n",
        started.elapsed().as_secs_f64(),
        population.len(),
        population.as_of,
        population.model.name
    );
    let report = models_dir.join(&version).join("report.html");
    hints(&population, &base, live.broker.bootstrap_servers(), &report);
    if args.exit_when_ready {
        stop.stop();
    }
    let app = router(scorer, Some(server.metrics()), server.limits());
    let served = server.serve(app, &stop);
    stop.stop();
    let _ = refresh.join();
    live.stop()?;
    served?;
    println!("stopped");
    Ok(())
}
