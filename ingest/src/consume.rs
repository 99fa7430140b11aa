//! The ingest consumer: poll a batch, validate, fold into per-customer state, write one RocksDB batch
//! with the new offsets, then commit to the group (for lag visibility only).
//!
//! Exactly-once in effect: state and offsets are written atomically, and on every assignment the
//! consumer resumes from the offsets in RocksDB (those of this cluster and topic), not from the group's.
//! A redelivered event (same ID) is counted as read again and changes nothing. Malformed messages go
//! to the dead-letter topic with the reason in a header, and never stop the consumer.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use featurestore::aggregate::{Applied, CustomerState};
use featurestore::contract::LineClass;
use featurestore::event::{Rejection, TransactionEvent};
use featurestore::store::{Batch, RocksStore, SourceId};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::broker::BrokerConfig;
use crate::delivery::{Deliveries, DeliveryCounter};
use crate::{IngestError, Result};

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
        }
    }
}

/// Counts of one ingest run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Events applied, by class name (`purchase`, `return`, `non_positive_price`, ...).
    pub applied: BTreeMap<&'static str, u64>,
    /// Events whose ID was applied before (read again after a restart, or sent twice).
    pub duplicates: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// RocksDB batches written.
    pub batches: u64,
}

/// Seeks every assigned partition to the offset stored in RocksDB for this cluster and topic.
struct ResumeFromStore {
    store: Arc<RocksStore>,
    source: Arc<Mutex<Option<SourceId>>>,
}

impl ClientContext for ResumeFromStore {}

impl ConsumerContext for ResumeFromStore {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let source = self
                    .source
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let stored = match &source {
                    Some(source) => self.store.offsets(source).unwrap_or_default(),
                    None => BTreeMap::new(),
                };
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                for (topic, partition) in partitions {
                    let offset = match stored.get(&partition) {
                        Some(next) => Offset::Offset(*next),
                        None => Offset::Beginning,
                    };
                    let _ = tpl.set_partition_offset(&topic, partition, offset);
                }
                tracing::info!(
                    ?stored,
                    "partitions assigned; resuming from the stored offsets"
                );
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("assigning partitions: {e}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!("unassigning partitions: {e}");
                }
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                let _ = consumer.unassign();
            }
        }
    }
}

/// A consumer group member folding events into the store.
pub struct Ingest {
    consumer: BaseConsumer<ResumeFromStore>,
    dead_letters: BaseProducer<DeliveryCounter>,
    dead_letter_reports: Arc<Deliveries>,
    store: Arc<RocksStore>,
    source: SourceId,
    options: IngestOptions,
}

/// Describes ingest's metrics and creates its counters at 0, so that dashboards and alerts see every
/// series from the first scrape (not only after the first dead letter).
fn register_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "clv_ingest_events_total",
        "Events consumed, by outcome (applied, ignored, dead_lettered) and line class or rejection kind"
    );
    describe_counter!(
        "clv_ingest_events_read_again_total",
        "Events whose ID the store already held (redelivered or replayed again); they change nothing"
    );
    describe_histogram!(
        "clv_ingest_batch_apply_seconds",
        Unit::Seconds,
        "Time to fold one batch and write it with its offsets to RocksDB"
    );
    describe_gauge!(
        "clv_ingest_consumer_lag",
        "Messages behind the high watermark, per assigned partition"
    );
    describe_gauge!("clv_ingest_customers", "Customers in the feature store");
    describe_gauge!(
        "clv_ingest_event_time_watermark_seconds",
        Unit::Seconds,
        "Latest purchase time applied (Unix seconds)"
    );
    for class in LineClass::ALL {
        let outcome = match class {
            LineClass::Purchase | LineClass::Return => "applied",
            _ => "ignored",
        };
        metrics::counter!("clv_ingest_events_total", "outcome" => outcome, "class" => class.name())
            .increment(0);
    }
    for kind in Rejection::KINDS {
        metrics::counter!("clv_ingest_events_total", "outcome" => "dead_lettered", "class" => kind)
            .increment(0);
    }
    metrics::counter!("clv_ingest_events_read_again_total").increment(0);
}

impl Ingest {
    /// Connects to the cluster and joins the group.
    pub fn connect(
        broker: &BrokerConfig,
        store: Arc<RocksStore>,
        options: IngestOptions,
    ) -> Result<Self> {
        register_metrics();
        let source = Arc::new(Mutex::new(None));
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
        let consumer: BaseConsumer<ResumeFromStore> = config
            .create_with_context(ResumeFromStore {
                store: store.clone(),
                source: source.clone(),
            })
            .map_err(IngestError::kafka("creating the consumer"))?;
        let cluster = consumer
            .client()
            .fetch_cluster_id(Duration::from_secs(30))
            .ok_or_else(|| IngestError::Kafka {
                context: format!("reading the cluster ID of {}", broker.bootstrap_servers),
                source: rdkafka::error::KafkaError::MetadataFetch(
                    rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure,
                ),
            })?;
        let id = SourceId {
            cluster,
            topic: options.topic.clone(),
        };
        *source.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        consumer
            .subscribe(&[&options.topic])
            .map_err(IngestError::kafka("subscribing"))?;
        let dead_letter_reports = Arc::new(Deliveries::default());
        let dead_letters: BaseProducer<DeliveryCounter> = broker
            .client_config(&[("enable.idempotence", "true")])
            .create_with_context(DeliveryCounter(dead_letter_reports.clone()))
            .map_err(IngestError::kafka("creating the dead-letter producer"))?;
        Ok(Ingest {
            consumer,
            dead_letters,
            dead_letter_reports,
            store,
            source: id,
            options,
        })
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
        while !stop.load(Ordering::Relaxed) {
            let processed = self.one_batch(&mut summary)?;
            let caught_up = self.caught_up()?;
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
        let _ = self.consumer.commit_consumer_state(CommitMode::Sync);
        Ok(summary)
    }

    /// Exports the lag of every assigned partition (high watermark − stored next offset) and tells
    /// whether there is an assignment and all of it is caught up.
    fn caught_up(&self) -> Result<bool> {
        let positions = self
            .consumer
            .assignment()
            .map_err(IngestError::kafka("reading the assignment"))?;
        let elements = positions.elements();
        let stored = self.store.offsets(&self.source)?;
        let mut all = !elements.is_empty();
        for e in elements {
            let (_, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))
                .map_err(IngestError::kafka("reading watermarks"))?;
            let position = stored.get(&e.partition()).copied().unwrap_or(0);
            let lag = (high - position).max(0);
            metrics::gauge!("clv_ingest_consumer_lag", "partition" => e.partition().to_string())
                .set(lag as f64);
            all &= lag == 0;
        }
        Ok(all)
    }

    /// Polls up to one batch, folds it and writes it. Returns how many messages it read.
    fn one_batch(&mut self, summary: &mut IngestSummary) -> Result<usize> {
        let deadline = Instant::now() + self.options.batch_timeout;
        let mut touched: HashMap<(i32, u64), (CustomerState, bool)> = HashMap::new();
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let mut watermark: Option<i64> = None;
        let mut read = 0usize;
        let mut dead = 0u64;
        let started = Instant::now();
        while read < self.options.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.consumer.poll(left) else {
                break;
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("consumer error: {e}");
                    continue;
                }
            };
            read += 1;
            let partition = message.partition();
            next_offsets.insert(partition, message.offset() + 1);
            match decode(message.key(), message.payload()) {
                Ok(event) => {
                    let key = (partition, event.customer_id);
                    let (state, _) = match touched.entry(key) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => {
                            let stored = self.store.get_in(partition, event.customer_id)?;
                            let is_new = stored.is_none();
                            entry.insert((stored.unwrap_or_default(), is_new))
                        }
                    };
                    match state.apply(&event) {
                        Applied::New(class) => {
                            *summary.applied.entry(class.name()).or_default() += 1;
                            let outcome = match class {
                                LineClass::Purchase | LineClass::Return => "applied",
                                _ => "ignored",
                            };
                            metrics::counter!("clv_ingest_events_total", "outcome" => outcome, "class" => class.name())
                                .increment(1);
                            if class == LineClass::Purchase {
                                let t = event.invoice_date.timestamp_millis();
                                watermark = Some(watermark.map_or(t, |w: i64| w.max(t)));
                            }
                        }
                        Applied::Duplicate => {
                            summary.duplicates += 1;
                            metrics::counter!("clv_ingest_events_read_again_total").increment(1);
                        }
                    }
                }
                Err(rejection) => {
                    dead += 1;
                    self.dead_letter(&message, &rejection)?;
                    metrics::counter!("clv_ingest_events_total", "outcome" => "dead_lettered", "class" => rejection.kind())
                        .increment(1);
                }
            }
        }
        if read == 0 {
            return Ok(0);
        }
        if dead > 0 {
            // Dead letters are safe in Kafka before the offsets that skip them are written.
            self.dead_letters
                .flush(Duration::from_secs(60))
                .map_err(IngestError::kafka("flushing dead letters"))?;
            // A dead letter Kafka did not take stops ingest before its offset is written: the
            // message is read again after a restart instead of being lost.
            self.dead_letter_reports.check()?;
            summary.dead_lettered += dead;
        }
        let new_customers = touched.values().filter(|(_, is_new)| *is_new).count() as u64;
        let batch = Batch {
            states: touched
                .into_iter()
                .map(|((partition, customer), (state, _))| (partition, customer, state))
                .collect(),
            new_customers,
            offsets: next_offsets.iter().map(|(p, o)| (*p, *o)).collect(),
            watermark_ms: watermark,
        };
        self.store.write(&self.source, batch)?;
        summary.batches += 1;
        metrics::histogram!("clv_ingest_batch_apply_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("clv_ingest_customers").set(self.store.customers()? as f64);
        if let Some(w) = self.store.watermark_ms()? {
            metrics::gauge!("clv_ingest_event_time_watermark_seconds").set(w as f64 / 1000.0);
        }
        // The group's committed offsets are for lag visibility (and replay's backpressure) only.
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &next_offsets {
            let _ = tpl.add_partition_offset(&self.options.topic, *p, Offset::Offset(*o));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!("commit to the group: {e}");
        }
        Ok(read)
    }

    fn dead_letter(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        rejection: &Rejection,
    ) -> Result<()> {
        let reason = rejection.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "clv.dlq.reason",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "clv.dlq.kind",
                value: Some(rejection.kind()),
            })
            .insert(Header {
                key: "clv.source.partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "clv.source.offset",
                value: Some(offset.as_str()),
            });
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.options.dead_letter_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        loop {
            match self.dead_letters.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    self.dead_letters.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(IngestError::kafka("producing a dead letter")(e)),
            }
        }
    }
}

/// Validates a message: the value must be a valid event whose customer is the message key.
fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> std::result::Result<TransactionEvent, Rejection> {
    let payload = payload.ok_or_else(|| Rejection::Malformed("empty message".into()))?;
    let event = TransactionEvent::decode(payload)?;
    let key_customer = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.trim().parse::<u64>().ok());
    if key_customer != Some(event.customer_id) {
        return Err(Rejection::Invalid(format!(
            "message key {:?} is not the event's customer_id {}",
            key.map(String::from_utf8_lossy),
            event.customer_id
        )));
    }
    Ok(event)
}
