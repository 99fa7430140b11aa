//! `clv broker`, `clv replay`, `clv ingest`: the streaming path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use contract::midnight;
use featurestore::store::RocksStore;
use ingest::broker::{BrokerConfig, EmbeddedBroker};
use ingest::consume::{Ingest, IngestOptions};
use ingest::replay::{ReplayOptions, replay};

use crate::{progress, telemetry};

/// The topic of transaction events and where local state lives: what the embedded broker
/// (`clv broker`) and every Kafka client share.
#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Folder for local state (the embedded broker's address file).
    #[arg(long, env = "CLV_STATE_DIR", default_value = "data/state")]
    pub(crate) state_dir: PathBuf,
    /// The topic of transaction events.
    #[arg(long, env = "CLV_TOPIC", default_value = "transactions")]
    pub(crate) topic: String,
    /// Partitions of the topic when it has to be created (an existing topic on a real broker is
    /// left as it is).
    #[arg(long, env = "CLV_PARTITIONS", default_value_t = 4)]
    pub(crate) partitions: i32,
}

/// Where Kafka is and where state lives: shared by the streaming commands.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Without it, the embedded broker started by `clv broker`.
    #[arg(long, env = "CLV_BROKERS")]
    pub(crate) brokers: Option<String>,
    #[command(flatten)]
    pub(crate) at: TopicArgs,
    /// The ingest consumer group.
    #[arg(long, env = "CLV_GROUP", default_value = "clv-ingest")]
    pub(crate) group: String,
    /// Replicas of topics created on a real broker (default: the broker's own default).
    #[arg(long, env = "CLV_REPLICATION_FACTOR")]
    pub(crate) replication_factor: Option<i32>,
    /// A librdkafka property for every Kafka client, as KEY=VALUE (repeatable, like kcat's -X): e.g.
    /// `-X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN`. Applied after clv's own settings.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) kafka_options: Vec<(String, String)>,
}

/// Parses `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl KafkaArgs {
    /// The broker, with the topics a consumer needs (the events and the dead letters) created when
    /// they do not exist.
    pub(crate) fn ingest_broker(&self, dead_letter_topic: &str) -> anyhow::Result<BrokerConfig> {
        let broker = self.broker()?;
        broker.ensure_topics(
            &[
                (self.at.topic.as_str(), self.at.partitions),
                (dead_letter_topic, 1),
            ],
            self.replication_factor,
        )?;
        Ok(broker)
    }

    /// The broker these arguments name: `--brokers`, else the embedded one's address file.
    pub(crate) fn broker(&self) -> anyhow::Result<BrokerConfig> {
        Ok(
            BrokerConfig::resolve(self.brokers.as_deref(), &self.at.state_dir)?
                .with_options(self.kafka_options.clone()),
        )
    }
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    #[command(flatten)]
    at: TopicArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The data: a normalised .parquet, or a raw .xlsx, .csv or .zip.
    #[arg(long)]
    input: PathBuf,
    /// Pace by event time at this many times real time (default: as fast as possible).
    #[arg(long)]
    speed: Option<f64>,
    /// Replay only lines on or after this day (backfill).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Replay only lines before this day.
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Pause while the ingest group lags by more than this many messages (default: 40,000 on the
    /// embedded broker, which keeps only ~5 MiB per partition; unbounded on a real one).
    #[arg(long)]
    max_lag: Option<i64>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The feature store (RocksDB folder).
    #[arg(long, env = "CLV_DB", default_value = "data/featurestore")]
    db: PathBuf,
    /// Where malformed messages go.
    #[arg(long, default_value = "transactions.dlq")]
    dead_letter_topic: String,
    /// Exit once every assigned partition is caught up.
    #[arg(long)]
    until_caught_up: bool,
    /// Serve Prometheus metrics on this address.
    #[arg(long, env = "CLV_INGEST_METRICS", default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    /// Group session timeout in milliseconds: how long a vanished member holds its partitions, and on
    /// the embedded broker also how long a restarted member may wait to rejoin (default: Kafka's 45 s
    /// on a real broker, 10 s on the embedded one, where every member is on this machine).
    #[arg(long)]
    session_timeout_ms: Option<u64>,
    /// Static group membership id: a restarted member gets its partitions back at once.
    #[arg(long)]
    instance_id: Option<String>,
    /// For a test only: abort after a batch's forwarded events are acknowledged and before its
    /// offsets are written (a SIGKILL between forwarding and storing the offset).
    #[arg(long, hide = true)]
    crash_after_forwarding: bool,
    /// Most messages per RocksDB batch.
    #[arg(long, default_value_t = 5_000)]
    batch_size: usize,
}

/// Set by SIGINT / SIGTERM ([`crate::server::Stop`]).
pub(crate) fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    Ok(crate::server::Stop::on_signal()?.flag())
}

pub fn broker(args: BrokerArgs) -> anyhow::Result<()> {
    let stop = stop_flag()?;
    let mut broker = EmbeddedBroker::start(&[
        (args.at.topic.as_str(), args.at.partitions),
        (&format!("{}.dlq", args.at.topic), 1),
        // The instances' records (scale-out, `clv instance`).
        ("clv.instances", 1),
    ])?;
    let file = broker.advertise(&args.at.state_dir)?;
    println!("{}", broker.bootstrap_servers());
    eprintln!(
        "embedded Kafka (librdkafka mock cluster) at {} — address written to {}; Ctrl-C stops it",
        broker.bootstrap_servers(),
        file.display()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub fn replay_command(args: ReplayArgs) -> anyhow::Result<()> {
    let broker = args.kafka.broker()?;
    broker.ensure_topics(
        &[(args.kafka.at.topic.as_str(), args.kafka.at.partitions)],
        args.kafka.replication_factor,
    )?;
    let bar = progress::reading(&args.input);
    let lines = dataset::stream::numbered_lines(&args.input, &bar)
        .with_context(|| format!("reading {}", args.input.display()))?;
    bar.finish_and_clear();
    let options = ReplayOptions {
        topic: args.kafka.at.topic.clone(),
        speed: args.speed,
        from: args.from.map(midnight),
        to: args.to.map(midnight),
        max_lag: args.max_lag.or(broker.embedded.then_some(40_000)),
        group: args.kafka.group.clone(),
    };
    let bar = progress::items("replaying");
    let started = std::time::Instant::now();
    if let Some(len) = lines.len {
        bar.set_length(len);
    }
    let summary = replay(&broker, lines, &options, &bar)
        .with_context(|| format!("replaying {}", args.input.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "replayed {} lines to {} at {}: {} events sent, {} without customer ID (not sent), {} out of range, {} backpressure waits, {:.0} lines/s",
        summary.lines,
        options.topic,
        broker.bootstrap_servers,
        summary.sent,
        summary.without_customer,
        summary.out_of_range,
        summary.backpressure_waits,
        summary.lines as f64 / seconds.max(1e-9)
    );
    Ok(())
}

pub fn ingest_command(args: IngestArgs) -> anyhow::Result<()> {
    let stop = stop_flag()?;
    let _metrics = telemetry::serve_metrics(&args.metrics_addr)?;
    let broker = args.kafka.ingest_broker(&args.dead_letter_topic)?;
    let store = Arc::new(
        RocksStore::open(&args.db)
            .with_context(|| format!("opening the feature store {}", args.db.display()))?,
    );
    let options = IngestOptions {
        topic: args.kafka.at.topic.clone(),
        dead_letter_topic: args.dead_letter_topic,
        group: args.kafka.group.clone(),
        batch_size: args.batch_size,
        until_caught_up: args.until_caught_up,
        session_timeout: Duration::from_millis(
            args.session_timeout_ms
                .unwrap_or(if broker.embedded { 10_000 } else { 45_000 }),
        ),
        instance_id: args.instance_id,
        crash_after_forwarding: args.crash_after_forwarding,
        ..IngestOptions::default()
    };
    let mut ingest = Ingest::connect(&broker, store.clone(), options)?;
    tracing::info!(cluster = %ingest.source().cluster, "ingesting");
    let summary = ingest.run(&stop)?;
    println!(
        "ingested into {}: applied {:?}, {} read again, {} dead-lettered, {} forwarded to their customer's partition ({} forwarded already by an earlier reader), {} batches; {} customers stored",
        args.db.display(),
        summary.counts.applied,
        summary.counts.duplicates,
        summary.counts.rejected_total(),
        summary.forwarded(),
        summary.forwarded_already,
        summary.batches,
        store.customers()?
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The customer (the message key too).
    #[arg(long)]
    customer: u64,
    /// The time of the line, RFC 3339 (e.g. 2011-12-09T12:00:00Z) or a day (noon UTC); default now.
    #[arg(long)]
    date: Option<String>,
    /// Unit price in pounds.
    #[arg(long, default_value_t = 10.0)]
    price: f64,
    /// Units (negative with a `C…` invoice: a return).
    #[arg(long, default_value_t = 1)]
    quantity: i64,
    /// The invoice number (default: a new all-digit one, so that the line is a purchase).
    #[arg(long)]
    invoice: Option<String>,
    /// The product.
    #[arg(long, default_value = "MANUAL")]
    stock_code: String,
    /// The event ID (default: a new one; the same ID again is a redelivery and changes nothing).
    #[arg(long)]
    event_id: Option<String>,
}

/// `clv send`: one transaction into the topic, keyed by its customer.
pub fn send_command(args: SendArgs) -> anyhow::Result<()> {
    let broker = args.kafka.broker()?;
    let now = chrono::Utc::now();
    let invoice_date = match &args.date {
        None => now,
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(|d| (midnight(d) + chrono::Duration::hours(12)).and_utc())
            })
            .with_context(|| format!("--date {text:?}: expected RFC 3339 or YYYY-MM-DD"))?,
    };
    let stamp = now.timestamp_micros();
    let event = contract::event::TransactionEvent {
        schema_version: contract::event::SCHEMA_VERSION,
        event_id: args
            .event_id
            .unwrap_or_else(|| format!("send:{}:{stamp}", args.customer))
            .into(),
        customer_id: args.customer,
        invoice: args.invoice.unwrap_or_else(|| format!("9{stamp}")).into(),
        stock_code: args.stock_code.into(),
        description: None,
        quantity: args.quantity,
        invoice_date,
        price: args.price,
        country: None,
    };
    let delivered = ingest::send::send(&broker, &args.kafka.at.topic, &event)?;
    println!(
        "sent {} to {} partition {} offset {}: {}",
        event.event_id,
        args.kafka.at.topic,
        delivered.partition,
        delivered.offset,
        String::from_utf8_lossy(&event.encode())
    );
    Ok(())
}
