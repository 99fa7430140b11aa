//! `clv instance`: one instance of a scaled-out group, in one process: a consumer-group member
//! folding its partitions into its own RocksDB store (restoring a partition it is given from the
//! topic), the scorer over that store, the membership loop that advertises it and brings back the
//! group's view, and the HTTP API that answers for any customer (README, "Scale-out").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use featurestore::store::RocksStore;
use ingest::consume::{Ingest, IngestOptions};
use ingest::membership::{self, MembershipOptions};
use scorer::http::router_with;
use scorer::route::Routing;
use scorer::service::{AsOf, Refresher, Scorer};
use scorer::source::FeatureSource;

use crate::server::{Server, ServerArgs, Stop};
use crate::stream::KafkaArgs;

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
    #[command(flatten)]
    server: ServerArgs,
    /// Seconds an instance waits for another's answer to a forwarded question or a list's part
    /// before answering 503 with Retry-After.
    #[arg(long, default_value_t = 5.0)]
    peer_timeout_seconds: f64,
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
    /// Warm standby copies: keep folding (never serving) the partitions the group's range assignor
    /// would give this instance if up to N other members left (0-3), so that it serves them at
    /// once when they come (README, "Scale-out").
    #[arg(long, env = "CLV_STANDBY_REPLICAS", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=cluster::standby::MAX_REPLICAS as i64))]
    standby_replicas: u8,
    /// A folder every instance of the group reaches (like the model registry): each writes
    /// checkpoints of its caught-up partitions there, and a partition that moves starts from its
    /// newest checkpoint and reads the topic only after it (so the topic need not keep the whole
    /// history). Without it, a partition is restored from the topic's beginning.
    #[arg(long, env = "CLV_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Seconds between checkpoints of a partition (written only when its offset moved).
    #[arg(long, default_value_t = 30.0)]
    checkpoint_seconds: f64,
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
    /// Stop when standard input closes: how `clv demo --instances` ties its instances to its own
    /// life (they stop with it, even when it is killed).
    #[arg(long, hide = true)]
    stop_with_stdin: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// This instance's ID and the base URL the others reach it at, from the flags and the bound address.
fn identity(args: &InstanceArgs, local: SocketAddr) -> (String, String) {
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
    (id, advertise)
}

/// A thread of the instance and the flag that stops it.
struct Worker<T> {
    thread: std::thread::JoinHandle<T>,
    stop: Arc<AtomicBool>,
}

impl<T> Worker<T> {
    /// Stops the thread and waits for it.
    fn finish(self, what: &str) -> anyhow::Result<T> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the {what} thread panicked"))
    }
}

/// The ingest thread, which returns its counts.
type IngestWorker = Worker<anyhow::Result<ingest::consume::IngestSummary>>;

/// Ingest of this instance's partitions on a thread (and, with `--checkpoint-dir`, the thread that
/// writes their checkpoints); when it ends, for any reason, the process
/// stops (an instance whose ingest stopped must not go on answering from a frozen store).
fn ingesting(
    args: &InstanceArgs,
    broker: &ingest::broker::BrokerConfig,
    store: Arc<RocksStore>,
    instance: cluster::Partitions,
    stop: &Stop,
) -> anyhow::Result<(IngestWorker, Option<Worker<()>>)> {
    let options = IngestOptions {
        topic: args.kafka.at.topic.clone(),
        dead_letter_topic: args.dead_letter_topic.clone(),
        group: args.kafka.group.clone(),
        batch_size: args.batch_size,
        session_timeout: Duration::from_millis(
            args.session_timeout_ms
                .unwrap_or(if broker.embedded { 10_000 } else { 45_000 }),
        ),
        instance_id: Some(instance.id().to_string()),
        fence: !args.no_fence,
        standby_replicas: usize::from(args.standby_replicas),
        checkpoint_dir: args.checkpoint_dir.clone(),
        ..IngestOptions::default()
    };
    let mut ingest = Ingest::connect_as(broker, store.clone(), options, instance.clone())?;
    let checkpoints = match &args.checkpoint_dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the checkpoint folder {}", dir.display()))?;
            let stop = Arc::new(AtomicBool::new(false));
            let writer = ingest::checkpoint::Checkpointer {
                store,
                partitions: instance,
                source: ingest.source().clone(),
                dir: dir.clone(),
                every: Duration::from_secs_f64(args.checkpoint_seconds.clamp(0.1, 86_400.0)),
            };
            Some(Worker {
                thread: writer.spawn(stop.clone())?,
                stop,
            })
        }
    };
    let ingest_stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (ingest_stop, stop) = (ingest_stop.clone(), stop.clone());
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                let ran = ingest.run(&ingest_stop).map_err(anyhow::Error::from);
                stop.stop();
                ran
            })?
    };
    Ok((
        Worker {
            thread,
            stop: ingest_stop,
        },
        checkpoints,
    ))
}

pub fn run(args: InstanceArgs) -> anyhow::Result<()> {
    let stop = Stop::on_signal()?;
    if args.stop_with_stdin {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                stop.stop();
                // The demo (and its embedded broker) may be gone: leaving the group could wait
                // for a broker that never answers, so the stop is bounded.
                std::thread::sleep(Duration::from_secs(10));
                eprintln!(
                    "standard input closed 10 s ago and the instance has not stopped: exiting"
                );
                std::process::exit(1);
            })?;
    }
    let server = Server::start(&args.server)?;
    let local = server.local_addr()?;
    let (id, advertise) = identity(&args, local);
    let broker = args.kafka.ingest_broker(&args.dead_letter_topic)?;
    broker.ensure_compacted_topic(&args.members_topic, args.kafka.replication_factor)?;
    let store = Arc::new(
        RocksStore::open(&args.db)
            .with_context(|| format!("opening the feature store {}", args.db.display()))?,
    );
    // The instance's state, owned here; ingest, membership and the scorer each get their handle.
    let instance = cluster::Instance::new(id.clone(), advertise.clone(), Instant::now());
    let (ingest, checkpoints) =
        ingesting(&args, &broker, store.clone(), instance.ingest_side(), &stop)?;
    let members_stop = Arc::new(AtomicBool::new(false));
    let members = Worker {
        thread: membership::spawn(
            &broker,
            instance.membership_side(),
            store.clone(),
            MembershipOptions {
                topic: args.members_topic.clone(),
                expiry: Duration::from_millis(args.member_expiry_ms),
                ..MembershipOptions::default()
            },
            members_stop.clone(),
        )?,
        stop: members_stop,
    };
    let scorer = Arc::new(Scorer::default());
    let refresher = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store.clone()),
        args.models_dir.clone(),
        args.as_of,
    )
    .for_instance(instance.scorer_side());
    let refresh_stop = Arc::new(AtomicBool::new(false));
    let refresh = Worker {
        thread: refresher.spawn(
            Duration::from_secs_f64(args.refresh_seconds.max(0.01)),
            refresh_stop.clone(),
        )?,
        stop: refresh_stop,
    };
    let peer_timeout = Duration::from_secs_f64(args.peer_timeout_seconds.clamp(0.001, 3_600.0));
    let routing = Arc::new(Routing::new(instance.scorer_side(), peer_timeout));
    let app = router_with(scorer, Some(server.metrics()), server.limits(), routing);
    println!(
        "instance {id}: serving on http://{local} (advertised as {advertise}; group {}, topic {}, store {}); /cluster shows the group",
        args.kafka.group,
        args.kafka.at.topic,
        args.db.display()
    );
    let served = server.serve(app, &stop);
    // Ingest leaves the group first (its partitions move), then the record is withdrawn.
    if let Some(checkpoints) = checkpoints {
        let _ = checkpoints.finish("checkpoints");
    }
    let ingested = ingest.finish("ingest")?;
    let _ = refresh.finish("refresh");
    let _ = members.finish("membership");
    served?;
    let summary = ingested?;
    println!(
        "instance {id} stopped: applied {:?}, {} read again, {} dead-lettered, {} forwarded to their customer's partition ({} forwarded already by an earlier reader)",
        summary.counts.applied,
        summary.counts.duplicates,
        summary.counts.rejected_total(),
        summary.forwarded(),
        summary.forwarded_already
    );
    Ok(())
}
