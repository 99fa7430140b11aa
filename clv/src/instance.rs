//! `clv instance`: one instance of a scaled-out group, in one process: a consumer-group member
//! folding its partitions into its own RocksDB store (restoring a partition it is given from the
//! topic), the scorer over that store, the membership loop that advertises it and brings back the
//! group's view, and the HTTP API that answers for any customer (README, "Scale-out").

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use featurestore::store::RocksStore;
use ingest::consume::{Ingest, IngestOptions};
use ingest::membership::{self, MembershipOptions};
use scorer::http::{Limits, router_with};
use scorer::route::Routing;
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;

use crate::stream::{KafkaArgs, stop_flag};
use crate::telemetry;

#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// This instance's own feature store (the state of the partitions it holds).
    #[arg(long, env = "CLV_DB", default_value = "data/featurestore")]
    db: PathBuf,
    /// The model registry (shared by every instance); the scorer follows its `production` pointer.
    #[arg(long, env = "CLV_MODELS_DIR", default_value = "data/models")]
    models_dir: PathBuf,
    /// Address to listen on (HTTP API, page and `/metrics`).
    #[arg(long, env = "CLV_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The base URL other instances reach this one at (default: http:// and the listening address,
    /// with the host name for 0.0.0.0).
    #[arg(long, env = "CLV_ADVERTISE")]
    advertise: Option<String>,
    /// This instance's ID: its static group membership (`group.instance.id`, so that a restart
    /// takes its partitions back at once) and its name to the others (default: host name and port).
    #[arg(long, env = "CLV_INSTANCE_ID")]
    instance_id: Option<String>,
    /// The compacted topic the instances advertise themselves on.
    #[arg(long, default_value = "clv.instances")]
    members_topic: String,
    /// Where malformed messages go.
    #[arg(long, default_value = "transactions.dlq")]
    dead_letter_topic: String,
    /// The group session timeout: how long the group waits for a member that vanished before its
    /// partitions move (default 45 s on a real broker, 10 s on the embedded one).
    #[arg(long)]
    session_timeout_ms: Option<u64>,
    /// Milliseconds without a member's record before the others stop routing to it.
    #[arg(long, default_value_t = 3_000)]
    member_expiry_ms: u64,
    /// Most messages folded into one RocksDB write.
    #[arg(long, default_value_t = 5_000)]
    batch_size: usize,
    /// The time features are taken at: `watermark` (the group's: every partition's latest purchase,
    /// wherever it is owned, rounded up to the next midnight), `now`, or a date YYYY-MM-DD.
    #[arg(long, default_value = "watermark")]
    as_of: AsOf,
    /// Seconds between rescoring rounds.
    #[arg(long, default_value_t = 1.0)]
    refresh_seconds: f64,
    /// For a test only: no fence, so that an instance out of contact with the broker keeps
    /// answering from partitions the group may have moved (the stale answers the fence prevents).
    #[arg(long, hide = true)]
    no_fence: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub fn run(args: InstanceArgs) -> anyhow::Result<()> {
    let stop = stop_flag()?;
    let metrics = telemetry::install_recorder()?;
    scorer::http::register_metrics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // Bound first: a port in use is said at once, and the advertised address is the real one.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.listen))
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let advertise = args.advertise.clone().unwrap_or_else(|| {
        let host = match local.ip().is_unspecified() {
            true => host_name(),
            false => local.ip().to_string(),
        };
        format!("http://{host}:{}", local.port())
    });
    let id = args
        .instance_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", host_name(), local.port()));
    let broker = args.kafka.ingest_broker(&args.dead_letter_topic)?;
    broker.ensure_compacted_topic(&args.members_topic, args.kafka.replication_factor)?;
    let store = Arc::new(
        RocksStore::open(&args.db)
            .with_context(|| format!("opening the feature store {}", args.db.display()))?,
    );
    let instance = cluster::Instance::new(id.clone(), advertise.clone());

    let options = IngestOptions {
        topic: args.kafka.topic.clone(),
        dead_letter_topic: args.dead_letter_topic.clone(),
        group: args.kafka.group.clone(),
        batch_size: args.batch_size,
        session_timeout: Duration::from_millis(
            args.session_timeout_ms
                .unwrap_or(if broker.embedded { 10_000 } else { 45_000 }),
        ),
        instance_id: Some(id.clone()),
        fence: !args.no_fence,
        ..IngestOptions::default()
    };
    let mut ingest = Ingest::connect_as(&broker, store.clone(), options, instance.clone())?;
    let ingest_stop = Arc::new(AtomicBool::new(false));
    let ingesting = {
        let (ingest_stop, stop) = (ingest_stop.clone(), stop.clone());
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                let ran = ingest.run(&ingest_stop);
                // An instance whose ingest stopped must not go on answering from a frozen store.
                stop.store(true, Ordering::SeqCst);
                ran
            })?
    };
    let members_stop = Arc::new(AtomicBool::new(false));
    let members = membership::spawn(
        &broker,
        instance.clone(),
        store.clone(),
        MembershipOptions {
            topic: args.members_topic.clone(),
            expiry: Duration::from_millis(args.member_expiry_ms),
            ..MembershipOptions::default()
        },
        members_stop.clone(),
    )?;

    let scorer = Arc::new(Scorer::default());
    let refresher = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store.clone()),
        args.models_dir.clone(),
        args.as_of,
    )
    .for_instance(instance.clone());
    let refresh_stop = Arc::new(AtomicBool::new(false));
    let refresh = refresher.spawn(
        Duration::from_secs_f64(args.refresh_seconds.max(0.01)),
        refresh_stop.clone(),
    )?;
    let limits = Limits::default();
    let routing = Arc::new(Routing::new(instance.clone(), Duration::from_secs(5)));
    let app = router_with(scorer, Some(metrics), limits, Some(routing));
    println!(
        "instance {id}: serving on http://{local} (advertised as {advertise}; group {}, topic {}, store {}); /cluster shows the group",
        args.kafka.group,
        args.kafka.topic,
        args.db.display()
    );
    let listener = scorer::shed::CappedListener::new(listener, limits.max_connections);
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let served = runtime.block_on(async {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    // Ingest leaves the group first (its partitions move), then the record is withdrawn.
    ingest_stop.store(true, Ordering::SeqCst);
    let ingested = ingesting
        .join()
        .map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?;
    refresh_stop.store(true, Ordering::SeqCst);
    let _ = refresh.join();
    members_stop.store(true, Ordering::SeqCst);
    let _ = members.join();
    served.context("serving")?;
    let summary = ingested?;
    println!(
        "instance {id} stopped: applied {:?}, {} read again, {} dead-lettered",
        summary.counts.applied,
        summary.counts.duplicates,
        summary.counts.rejected_total()
    );
    Ok(())
}
