//! The ingest consumer, a thin Kafka loop around the pure [`BatchFolder`]: poll a batch and offer
//! each message to the folder, dead-letter what it rejects, write what it folded in one RocksDB batch
//! with the new offsets, then commit to the group (for lag visibility only).
//!
//! Exactly-once in effect: state and offsets are written atomically, and on every assignment the
//! consumer resumes from the offsets in RocksDB (those of this cluster and topic), not from the group's.
//! A redelivered event (same ID) is counted as read again and changes nothing. Malformed messages go
//! to the dead-letter topic with the reason in a header, and never stop the consumer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::LineClass;
use contract::bounds::Bounds;
use contract::event::Rejection;
use featurestore::store::{RocksStore, SourceId, StoredSummary};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::broker::BrokerConfig;
use crate::delivery::{Deliveries, DeliveryCounter};
use crate::fold::{BatchFolder, Counts, Folded, Message as Offered, Outcome, Stored};
use crate::{IngestError, Result};
use cluster::{Instance, Partitions};
use contract::Purchase;

mod dead_letter;
mod rebalance;
mod repartition;
mod restore;
pub use repartition::REPARTITIONED_FROM;
mod standby;
use rebalance::ResumeFromStore;
use standby::Standby;

/// How to consume.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The topic of transaction events.
    pub topic: String,
    /// Where malformed messages go.
    pub dead_letter_topic: String,
    /// The consumer group.
    pub group: String,
    /// Most messages folded into one RocksDB write.
    pub batch_size: usize,
    /// Longest a batch waits for more messages.
    pub batch_timeout: Duration,
    /// Exit once every assigned partition is caught up (lag 0).
    pub until_caught_up: bool,
    /// The group session timeout: how long the group waits for a member that vanished.
    pub session_timeout: Duration,
    /// Static group membership (`group.instance.id`): a restarted member takes its partitions back at
    /// once instead of waiting out the session timeout.
    pub instance_id: Option<String>,
    /// The fence: out of contact with the broker for half the session timeout, the instance stops
    /// serving (the group may move its partitions after the whole timeout). Off only to show, in a
    /// test, the stale answers it prevents.
    pub fence: bool,
    /// Warm standby copies of the partitions this member would be given if up to this many other
    /// members left the group (0: none; [`cluster::standby`]). Only for an instance, whose
    /// membership view names the other members.
    pub standby_replicas: usize,
    /// For a test only: the process aborts (as a SIGKILL would stop it) after a batch's forwarded
    /// events are acknowledged and before its offsets are written, to show that forwarding again
    /// after a crash applies each event once.
    pub crash_after_forwarding: bool,
    /// A folder shared by the group's instances holding checkpoints of partitions
    /// ([`featurestore::store::checkpoint`]): a partition this member is given (or keeps as a
    /// standby) whose checkpoint is ahead of the store's copy starts from it, and reads the topic
    /// only after its offset.
    pub checkpoint_dir: Option<std::path::PathBuf>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            topic: "transactions".into(),
            dead_letter_topic: "transactions.dlq".into(),
            group: "clv-ingest".into(),
            batch_size: 5_000,
            batch_timeout: Duration::from_millis(200),
            until_caught_up: false,
            session_timeout: Duration::from_secs(45),
            instance_id: None,
            fence: true,
            standby_replicas: 0,
            crash_after_forwarding: false,
            checkpoint_dir: None,
        }
    }
}

/// Counts of one ingest run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// What happened to the messages stored (applied by class, read again, dead-lettered by kind).
    pub counts: Counts,
    /// RocksDB batches written.
    pub batches: u64,
    /// Of the misrouted events (`counts.misrouted`), those read below the group's mark: forwarded
    /// by an earlier reader, not again ([`crate::forward_mark`]).
    pub forwarded_already: u64,
}

impl IngestSummary {
    /// The misrouted events this run forwarded to their customer's partition.
    pub fn forwarded(&self) -> u64 {
        self.counts.misrouted.saturating_sub(self.forwarded_already)
    }
}

/// How long a batch that holds messages waits for the next one before it is written.
const IDLE_ENDS_BATCH: Duration = Duration::from_millis(2);
/// At most this many places for a batch's messages are reserved up front (a larger batch grows).
const MESSAGES_RESERVED: usize = 16_384;

/// A consumer group member folding events into the store.
pub struct Ingest {
    consumer: BaseConsumer<ResumeFromStore>,
    /// Where dead letters and forwarded (repartitioned) events are produced, idempotently.
    producer: BaseProducer<DeliveryCounter>,
    deliveries: Arc<Deliveries>,
    store: Arc<RocksStore>,
    instance: Partitions,
    source: SourceId,
    options: IngestOptions,
    rebalance_failure: Arc<Mutex<Option<featurestore::StoreError>>>,
    last_warning: Mutex<Option<Instant>>,
    /// The topic's partition count (what a customer's partition is computed over) and when it was
    /// read; none while the broker has not answered.
    partitions: Option<(u32, Instant)>,
    /// Since when the broker has answered without a break (none while it does not).
    contact_since: Option<Instant>,
    /// When a check last had an answer from the broker (watermarks or metadata): the cached
    /// watermarks of partitions that are behind are not one.
    last_answer: Option<Instant>,
    /// The offsets last committed to the group from the checks, and when.
    group_commit: Option<(BTreeMap<i32, i64>, Instant)>,
    /// The standby copies' consumer (`standby_replicas` > 0).
    standby: Option<Standby>,
    /// Which consumer a poll asks first (alternating, so that neither starves the other).
    standby_first: std::cell::Cell<bool>,
    /// Whether the broker's last answer was a failure: its calls then wait [`AWAY_TIMEOUT`], not
    /// [`CALL_TIMEOUT`], so that a stop is not held up by a broker that is gone.
    broker_away: std::cell::Cell<bool>,
    /// Events forwarded to their customer's partition since the last log line, and when that was.
    repartition_log: (u64, Option<Instant>),
    /// The group's marks below which misrouted events were forwarded already.
    /// (Borrowed while the batch's messages borrow the consumer.)
    forward_marks: std::cell::RefCell<crate::forward_mark::ForwardMarks>,
}

/// How long a call to a broker that answers may take (metadata, watermarks, the group's offsets):
/// a few seconds, as a stop waits for the call under way (at 10 s, SIGTERM to an instance right
/// after the broker went took 8.5 s); a slower answer counts as the broker away, and is asked again.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long such a call waits while the broker is away (its last call failed): the loop between
/// them is where a stop is seen.
const AWAY_TIMEOUT: Duration = Duration::from_secs(1);

// The calls to the broker whose failures are counted (`clv_ingest_broker_errors_total{operation}`).
pub(crate) const READING_WATERMARKS: &str = "reading watermarks";
pub(crate) const CONSUMING: &str = "consuming";
pub(crate) const DELIVERING_DEAD_LETTERS: &str = "delivering dead letters";
const READING_METADATA: &str = "reading metadata";
const READING_MARKS: &str = "reading the group's offsets";
pub(crate) const BROKER_OPERATIONS: [&str; 5] = [
    READING_WATERMARKS,
    CONSUMING,
    DELIVERING_DEAD_LETTERS,
    READING_METADATA,
    READING_MARKS,
];

/// At most the first `cap` bytes.
fn cut(bytes: Option<&[u8]>, cap: usize) -> Option<&[u8]> {
    bytes.map(|b| &b[..b.len().min(cap)])
}

/// The most of a rejected message's value a dead letter carries (a valid event is under 2 KiB; the
/// rest of a larger one is cut, its size in the `clv.dlq.truncated` header), so that the dead letter
/// fits the producer's and the broker's default message size (1 MB).
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 900_000;
/// The most of a rejected message's key a dead letter carries.
pub const DEAD_LETTER_MAX_KEY: usize = 4_096;

/// How long a dead letter may wait for an unreachable broker before ingest stops (its offset is then
/// not written, so it is read again after a restart).
pub const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(300);

impl Ingest {
    /// Connects to the cluster and joins the group.
    pub fn connect(
        broker: &BrokerConfig,
        store: Arc<RocksStore>,
        options: IngestOptions,
    ) -> Result<Self> {
        let id = options.instance_id.clone().unwrap_or_default();
        // Its own record of the partitions' restores (for `until_caught_up`), shared with nobody.
        let partitions = Instance::new(id, "", Instant::now()).ingest_side();
        Self::connect_as(broker, store, options, partitions)
    }

    /// Connects as the ingest of `instance` (`clv instance`): the partitions the group assigns,
    /// revokes and restores are reported to it, for its scorer and its membership record.
    pub fn connect_as(
        broker: &BrokerConfig,
        store: Arc<RocksStore>,
        options: IngestOptions,
        instance: Partitions,
    ) -> Result<Self> {
        crate::telemetry::register();
        let source = Arc::new(Mutex::new(None));
        let rebalance_failure = Arc::new(Mutex::new(None));
        let session_timeout = options.session_timeout.as_millis().to_string();
        let heartbeat = (options.session_timeout.as_millis() / 4)
            .max(100)
            .to_string();
        let mut config = broker.client_config(&[
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "50"),
            ("fetch.queue.backoff.ms", "10"),
            ("session.timeout.ms", &session_timeout),
            ("heartbeat.interval.ms", &heartbeat),
        ]);
        // What exactly-once in effect rests on: offsets live in the store, never auto-committed.
        config
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if let Some(id) = &options.instance_id {
            config.set("group.instance.id", id);
        }
        // Ownership rests on the eager protocol: every partition is given up (and no longer
        // served) before any is given to another member.
        if let Some(strategy) = config.get("partition.assignment.strategy")
            && strategy.contains("cooperative")
        {
            return Err(IngestError::Config(format!(
                "partition.assignment.strategy={strategy}: ingest needs an eager assignor (range or roundrobin): it gives up every partition on a rebalance before another member may serve it"
            )));
        }
        // The standbys are where the range assignor moves partitions when members leave.
        if options.standby_replicas > 0 {
            match config.get("partition.assignment.strategy") {
                None => {
                    config.set("partition.assignment.strategy", "range");
                }
                Some("range") => {}
                Some(other) => {
                    return Err(IngestError::Config(format!(
                        "partition.assignment.strategy={other}: standby replicas are kept where the range assignor moves partitions; use range, or no standbys"
                    )));
                }
            }
        }
        // Out of contact for half the session timeout, the instance stops serving: the group moves
        // a silent member's partitions only after the whole timeout.
        if options.fence {
            instance.set_fence(options.session_timeout / 2);
        }
        let consumer: BaseConsumer<ResumeFromStore> = config
            .create_with_context(ResumeFromStore {
                store: store.clone(),
                instance: instance.clone(),
                source: source.clone(),
                failure: rebalance_failure.clone(),
                checkpoint_dir: options.checkpoint_dir.clone(),
            })
            .map_err(IngestError::kafka("creating the consumer"))?;
        let cluster = broker.read_cluster_id(consumer.client(), &options.topic)?;
        let id = SourceId {
            cluster,
            topic: options.topic.clone(),
        };
        *source.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        consumer
            .subscribe(&[&options.topic])
            .map_err(IngestError::kafka("subscribing"))?;
        let deliveries = Arc::new(Deliveries::default());
        let dead_letter_timeout = DEAD_LETTER_TIMEOUT.as_millis().to_string();
        let producer: BaseProducer<DeliveryCounter> = broker
            .client_config(&[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", &dead_letter_timeout),
            ])
            .create_with_context(DeliveryCounter(deliveries.clone()))
            .map_err(IngestError::kafka("creating the producer"))?;
        let standby = match options.standby_replicas {
            0 => None,
            n => Some(Standby::connect(
                broker,
                &options.group,
                n,
                (options.session_timeout * 2).max(Duration::from_secs(30)),
            )?),
        };
        Ok(Ingest {
            consumer,
            producer,
            deliveries,
            store,
            instance,
            source: id,
            options,
            rebalance_failure,
            last_warning: Mutex::new(None),
            partitions: None,
            contact_since: None,
            last_answer: None,
            group_commit: None,
            standby,
            standby_first: std::cell::Cell::new(false),
            broker_away: std::cell::Cell::new(false),
            repartition_log: (0, None),
            forward_marks: std::cell::RefCell::new(crate::forward_mark::ForwardMarks::new()),
        })
    }

    /// The topic's partition count, read again every minute (a failed read keeps the last one).
    fn partition_count(&mut self) -> Option<u32> {
        if self
            .partitions
            .is_none_or(|(_, read)| read.elapsed() > Duration::from_secs(60))
            && let Err(e) = self.read_topic_metadata()
        {
            self.broker_error(READING_METADATA, &e.to_string());
        }
        self.partitions.map(|(n, _)| n)
    }

    /// Asks the broker for the topic's metadata and keeps its partition count (none when the topic
    /// is missing or has no partition). The answer is also contact with the broker, which
    /// [`Self::caught_up`] asks for when it asked no watermark.
    pub(super) fn read_topic_metadata(&mut self) -> rdkafka::error::KafkaResult<()> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.options.topic), self.call_timeout())?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.options.topic)
            .map(|t| t.partitions().len() as u32)
            .filter(|n| *n > 0);
        self.partitions = count.map(|n| (n, Instant::now()));
        if let Some(n) = count {
            self.instance.set_partition_count(n);
        }
        Ok(())
    }

    /// The cluster and topic this member reads.
    pub fn source(&self) -> &SourceId {
        &self.source
    }

    /// Runs until `stop` is set (or, with `until_caught_up`, until every assigned partition is caught
    /// up), then commits and returns the counts.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<IngestSummary> {
        let mut summary = IngestSummary::default();
        let mut caught_up_since: Option<Instant> = None;
        let mut last_check: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let processed = self.one_batch(&mut summary)?;
            // The watermarks are a round trip per partition: asked when a batch did not fill up (the
            // partitions may be caught up) and at least once a second (the lag gauges), not after
            // every full batch.
            if processed >= self.options.batch_size
                && last_check.is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                caught_up_since = None;
                continue;
            }
            last_check = Some(Instant::now());
            let caught_up = match self.caught_up() {
                Ok(caught_up) => {
                    metrics::gauge!(crate::telemetry::BROKER_REACHABLE).set(1.0);
                    caught_up
                }
                Err(e) => {
                    self.contact_since = None;
                    // The broker is away: keep polling (librdkafka reconnects); nothing is lost,
                    // since offsets are only written with the states they lead to.
                    self.broker_error(READING_WATERMARKS, &e.to_string());
                    false
                }
            };
            if self.options.until_caught_up {
                if processed == 0 && caught_up {
                    // Caught up twice in a row, a batch timeout apart: nothing is in flight.
                    if caught_up_since.is_some_and(|t| t.elapsed() >= self.options.batch_timeout) {
                        break;
                    }
                    caught_up_since.get_or_insert_with(Instant::now);
                } else {
                    caught_up_since = None;
                }
            }
        }
        // The stored offsets (every batch polled is written by now), with the mark that says what
        // they cover, not the consumer's positions without it; waited for, unless the broker is
        // away (a sync commit to a broker that is gone held the stop for a minute).
        if !self.broker_away.get()
            && let (Ok(assigned), Ok(stored)) =
                (self.consumer.assignment(), self.store.offsets(&self.source))
        {
            self.commit_offsets(
                restore::assigned_offsets(&assigned, &stored),
                CommitMode::Sync,
            );
        }
        Ok(summary)
    }

    /// Polls up to one batch, folds it and writes it. Returns how many messages it read.
    fn one_batch(&mut self, summary: &mut IngestSummary) -> Result<usize> {
        let deadline = Instant::now() + self.options.batch_timeout;
        let partitions = self.partition_count();
        if let Some(standby) = &mut self.standby {
            standby.reconcile(
                &self.instance,
                &self.store,
                &self.source,
                partitions,
                self.options.checkpoint_dir.as_deref(),
                Instant::now(),
            )?;
        }
        let bounds = Bounds::now();
        let started = Instant::now();
        let mut standby_messages = 0u64;
        // The batch's messages are held (librdkafka's buffers, not copies) and offered together,
        // so that the store looks up what they need in one sorted pass.
        let mut messages = Vec::with_capacity(self.options.batch_size.min(MESSAGES_RESERVED));
        while messages.len() < self.options.batch_size {
            self.standby_first.set(!self.standby_first.get());
            // A message that is there already is taken without reading the clock (per message,
            // the clock was ~4% of ingest's CPU); only a wait needs the time left.
            let polled = self.poll(Duration::ZERO).or_else(|| {
                // Once the batch holds messages, a pause in the stream ends it: waiting out the
                // whole batch timeout would hold back what it applies (and a producer waiting on
                // the lag).
                let now = Instant::now();
                let left = match messages.len() {
                    0 => deadline.saturating_duration_since(now),
                    _ => IDLE_ENDS_BATCH.min(deadline.saturating_duration_since(now)),
                };
                self.poll(left)
            });
            self.check_rebalance()?;
            let Some(message) = polled else {
                break;
            };
            match message {
                Ok(m) => {
                    if self
                        .standby
                        .as_ref()
                        .is_some_and(|s| s.follows(m.partition()))
                    {
                        standby_messages += 1;
                    }
                    messages.push(m);
                }
                Err(e) => self.broker_error(CONSUMING, &e.to_string()),
            }
        }
        // Collecting the batch: waiting for the broker, and taking what it had.
        let polling = started.elapsed();
        let offered: Vec<Offered<'_>> = messages
            .iter()
            .map(|m| Offered {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key(),
                payload: m.payload(),
            })
            .collect();
        // The folder borrows the messages' text until the batch is written.
        let mut folder = BatchFolder::new(bounds).with_partitions(partitions);
        let outcomes = folder.offer_all(&offered, self.store.as_ref())?;
        let misrouted = messages
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, Outcome::Misrouted { .. }))
            .map(|(m, _)| (m.partition(), m.offset()));
        self.read_forward_marks(misrouted);
        let mut forwarded_already = 0u64;
        for (message, outcome) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Rejected(rejection) => self.dead_letter(message, &rejection)?,
                Outcome::Misrouted { .. }
                    if self
                        .forward_marks
                        .borrow()
                        .forwarded_already(message.partition(), message.offset()) =>
                {
                    forwarded_already += 1;
                }
                Outcome::Misrouted { partition } => self.repartition(message, partition)?,
                Outcome::Applied(_) | Outcome::Duplicate => {}
            }
        }
        let Folded {
            batch,
            messages: offered_count,
            counts,
        } = folder.finish();
        if offered_count == 0 {
            return Ok(0);
        }
        let dead = counts.rejected_total();
        if dead > 0 || counts.misrouted > 0 {
            // Dead letters and forwarded events are safe in Kafka before the offsets that skip them
            // are written; while the broker is away they wait (up to the producer's message
            // timeout, after which the failed delivery stops ingest below).
            let waiting = Instant::now();
            while self.producer.in_flight_count() > 0 {
                if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
                    self.broker_error(DELIVERING_DEAD_LETTERS, &e.to_string());
                }
                if waiting.elapsed() > DEAD_LETTER_TIMEOUT + Duration::from_secs(30) {
                    break;
                }
            }
            // A dead letter or forwarded event Kafka did not take stops ingest before its offset is
            // written: the message is read again after a restart instead of being lost.
            self.deliveries.check()?;
            if self.options.crash_after_forwarding && counts.misrouted > 0 {
                eprintln!(
                    "crash-after-forwarding: aborting after forwarding {} events, before writing their offsets",
                    counts.misrouted
                );
                std::process::abort();
            }
        }
        let offsets = batch.offsets.clone();
        let writing = Instant::now();
        // Folding is what the batch took besides collecting it.
        let folded_in = writing.duration_since(started).saturating_sub(polling);
        self.store.write(&self.source, batch)?;
        let written_in = writing.elapsed();
        // The batch no longer borrows them: librdkafka's buffers go back (not timed as the write).
        drop(offered);
        drop(messages);
        for (stage, took) in [
            ("poll", polling),
            ("fold", folded_in),
            ("write", written_in),
        ] {
            metrics::histogram!(crate::telemetry::BATCH_STAGE, "stage" => stage)
                .record(took.as_secs_f64());
        }
        // Counted once stored: a reader that sees N events counted finds them in the store.
        self.count(&counts, standby_messages, forwarded_already);
        summary.counts.add(&counts);
        summary.forwarded_already += forwarded_already;
        summary.batches += 1;
        metrics::histogram!(crate::telemetry::BATCH_APPLY).record(started.elapsed().as_secs_f64());
        metrics::gauge!(crate::telemetry::CUSTOMERS).set(self.store.customers()? as f64);
        if let Some(w) = self.store.watermark_ms()? {
            metrics::gauge!(crate::telemetry::WATERMARK).set(w as f64 / 1000.0);
        }
        // The group's offsets are the owned partitions' (a standby copy's are this store's own).
        let owned = self.instance.assigned_partitions();
        self.commit_offsets(
            offsets.iter().copied().filter(|(p, _)| owned.contains(p)),
            CommitMode::Async,
        );
        Ok(offered_count)
    }

    /// Counts a stored batch's outcomes in the metrics.
    fn count(&mut self, counts: &Counts, standby_messages: u64, forwarded_already: u64) {
        for (class, n) in &counts.applied {
            let outcome = match LineClass::from_name(class) {
                Some(LineClass::Purchase | LineClass::Return) => "applied",
                _ => "ignored",
            };
            metrics::counter!(crate::telemetry::EVENTS, "outcome" => outcome, "class" => *class)
                .increment(*n);
        }
        for (kind, n) in &counts.rejected {
            metrics::counter!(crate::telemetry::EVENTS, "outcome" => "dead_lettered", "class" => *kind)
                .increment(*n);
        }
        metrics::counter!(crate::telemetry::READ_AGAIN).increment(counts.duplicates);
        metrics::counter!(crate::telemetry::STANDBY_MESSAGES).increment(standby_messages);
        let forwarded = counts.misrouted.saturating_sub(forwarded_already);
        if forwarded > 0 {
            metrics::counter!(crate::telemetry::REPARTITIONED).increment(forwarded);
            self.repartitioned(forwarded);
        }
        metrics::counter!(crate::telemetry::FORWARDED_ALREADY).increment(forwarded_already);
    }

    /// How long a call to the broker (metadata, watermarks) may wait: [`CALL_TIMEOUT`], or
    /// [`AWAY_TIMEOUT`] while the broker is away.
    fn call_timeout(&self) -> Duration {
        if self.broker_away.get() {
            AWAY_TIMEOUT
        } else {
            CALL_TIMEOUT
        }
    }

    /// Reports a failed call to the broker: a warning (at most every 10 s), a metric, and the broker
    /// as unreachable until a call succeeds again.
    fn broker_error(&self, operation: &'static str, error: &str) {
        self.broker_away.set(true);
        metrics::counter!(crate::telemetry::BROKER_ERRORS, "operation" => operation).increment(1);
        metrics::gauge!(crate::telemetry::BROKER_REACHABLE).set(0.0);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!("broker: {operation}: {error} (retrying; nothing is lost)");
            *last = Some(Instant::now());
        }
    }

    /// Stops ingest when the rebalance callback could not read the stored offsets.
    fn check_rebalance(&self) -> Result<()> {
        match self
            .rebalance_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(IngestError::Resume(e)),
            None => Ok(()),
        }
    }
}

/// The folder's lookups are the store's point reads.
impl Stored for RocksStore {
    type Error = featurestore::StoreError;

    fn summary(&self, partition: i32, customer: u64) -> Result<Option<StoredSummary>, Self::Error> {
        Ok(
            featurestore::RocksStore::summaries(self, &[(partition, customer)])?
                .pop()
                .flatten(),
        )
    }

    fn purchase(
        &self,
        partition: i32,
        customer: u64,
        invoice: &str,
    ) -> Result<Option<Purchase>, Self::Error> {
        featurestore::RocksStore::purchase(self, partition, customer, invoice)
    }

    fn has_event(
        &self,
        partition: i32,
        customer: u64,
        event_id: &str,
    ) -> Result<bool, Self::Error> {
        featurestore::RocksStore::has_event(self, partition, customer, event_id)
    }

    fn summaries(&self, keys: &[(i32, u64)]) -> Result<Vec<Option<StoredSummary>>, Self::Error> {
        featurestore::RocksStore::summaries(self, keys)
    }

    fn purchases(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<Option<Purchase>>, Self::Error> {
        featurestore::RocksStore::purchases(self, keys)
    }

    fn have_events(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<bool>, Self::Error> {
        featurestore::RocksStore::have_events(self, keys)
    }
}
