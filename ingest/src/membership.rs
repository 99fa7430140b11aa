//! The instances' membership over Kafka: each instance advertises its [`Member`] record (HTTP
//! address, partitions and their status, each caught-up partition's watermark mark) on a small
//! compacted topic, keyed by its ID, every heartbeat and whenever its partitions change, and a
//! tombstone when it stops; it reads the whole topic back (no consumer group: every partition, from
//! the beginning) into the [`View`] its router and its group watermark follow. A member not heard
//! from for `expiry` is dropped from the view (it died without its tombstone).
//!
//! Why a topic and not the consumer group's member metadata: librdkafka does not let a member set
//! its own user data with the built-in assignors, and the brokers here (the mock cluster, nisshi)
//! need not implement DescribeGroups; a topic works on any of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cluster::member::Heard;
use cluster::{Advertised, Member, View};
use featurestore::store::RocksStore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::BrokerConfig;
use crate::{IngestError, Result};

/// How the membership loop runs.
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// The members' topic.
    pub topic: String,
    /// How often the record is sent when nothing changed.
    pub heartbeat: Duration,
    /// A member not heard from for this long is dropped from the view.
    pub expiry: Duration,
}

impl Default for MembershipOptions {
    fn default() -> Self {
        MembershipOptions {
            topic: "clv.instances".into(),
            heartbeat: Duration::from_millis(500),
            expiry: Duration::from_secs(3),
        }
    }
}

/// Starts the membership loop of `instance` on its own thread, until `stop` is set (then it sends
/// its tombstone).
pub fn spawn(
    broker: &BrokerConfig,
    instance: Advertised,
    store: Arc<RocksStore>,
    options: MembershipOptions,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let consumer: BaseConsumer = broker
        .client_config(&[
            ("group.id", "clv-membership-unused"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("fetch.wait.max.ms", "50"),
        ])
        .create()
        .map_err(IngestError::kafka("creating the membership consumer"))?;
    let producer: BaseProducer = broker
        .client_config(&[("linger.ms", "0"), ("message.timeout.ms", "5000")])
        .create()
        .map_err(IngestError::kafka("creating the membership producer"))?;
    std::thread::Builder::new()
        .name("membership".into())
        .spawn(move || run(consumer, producer, instance, store, options, stop))
        .map_err(|source| IngestError::Io {
            path: "membership thread".into(),
            source,
        })
}

/// The members heard from, and when.
#[derive(Default)]
struct Heards {
    members: BTreeMap<String, (Heard, Instant)>,
    seq: u64,
}

impl Heards {
    fn heard(&mut self, member: Member) {
        self.seq += 1;
        let id = member.id.clone();
        let heard = Heard {
            member,
            seq: self.seq,
        };
        self.members.insert(id, (heard, Instant::now()));
    }

    fn view(&mut self, expiry: Duration, own: &str) -> View {
        self.members
            .retain(|id, (_, at)| id == own || at.elapsed() < expiry);
        View {
            members: self
                .members
                .iter()
                .map(|(id, (heard, _))| (id.clone(), heard.clone()))
                .collect(),
        }
    }
}

fn assign_all(consumer: &BaseConsumer, topic: &str) -> bool {
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return false;
    };
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return false;
    };
    if t.partitions().is_empty() {
        return false;
    }
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        let _ = tpl.add_partition_offset(topic, p.id(), Offset::Beginning);
    }
    consumer.assign(&tpl).is_ok()
}

/// This instance's record; the watermark marks (a store read) only when `with_marks`, i.e. when it
/// is sent (whether it is due depends on the partitions alone).
fn record(instance: &Advertised, store: &RocksStore, with_marks: bool) -> Member {
    let partitions = instance.statuses(Instant::now());
    let marks = match with_marks {
        false => Default::default(),
        true => store
            .partition_marks()
            .unwrap_or_default()
            .into_iter()
            .filter(|(p, _)| partitions.get(p).is_some_and(|s| s.caught_up()))
            .collect(),
    };
    Member {
        id: instance.id().to_string(),
        http: instance.http().to_string(),
        partition_count: instance.partition_count(),
        partitions,
        marks,
        standbys: instance.standbys().as_ref().clone(),
    }
}

fn run(
    consumer: BaseConsumer,
    producer: BaseProducer,
    instance: Advertised,
    store: Arc<RocksStore>,
    options: MembershipOptions,
    stop: Arc<AtomicBool>,
) {
    let mut heards = Heards::default();
    let mut assigned = false;
    let mut sent: Option<(Member, Instant)> = None;
    let mut last_warning: Option<Instant> = None;
    let own = instance.id().to_string();
    while !stop.load(Ordering::Acquire) {
        if !assigned {
            assigned = assign_all(&consumer, &options.topic);
        }
        // Everything that arrived, then the record when due.
        while let Some(message) =
            consumer.poll(Duration::from_millis(if assigned { 50 } else { 0 }))
        {
            let Ok(message) = message else { continue };
            let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            match message.payload() {
                None => {
                    heards.members.remove(key);
                }
                Some(payload) => match Member::from_bytes(payload) {
                    Ok(member) if member.id == key && key != own => heards.heard(member),
                    Ok(_) => {}
                    Err(e) => {
                        if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            tracing::warn!(topic = %options.topic, "not a member record: {e}");
                            last_warning = Some(Instant::now());
                        }
                    }
                },
            }
        }
        let mut current = record(&instance, &store, false);
        let due = match &sent {
            // A change of partitions at once; a moving watermark mark with the heartbeat.
            Some((last, at)) => {
                last.partitions != current.partitions
                    || last.standbys != current.standbys
                    || last.partition_count != current.partition_count
                    || at.elapsed() >= options.heartbeat
            }
            None => true,
        };
        if due {
            current = record(&instance, &store, true);
            let payload = current.to_bytes();
            let _ = producer.send(
                BaseRecord::to(&options.topic)
                    .key(own.as_bytes())
                    .payload(&payload),
            );
            heards.heard(current.clone());
            sent = Some((current, Instant::now()));
        }
        producer.poll(Duration::ZERO);
        let view = heards.view(options.expiry, &own);
        let count = instance.group_partition_count(&view);
        let unserved = (0..count as i32)
            .filter(|p| view.owner(*p).is_none())
            .count();
        metrics::gauge!(crate::telemetry::CLUSTER_MEMBERS).set(view.members.len() as f64);
        metrics::gauge!(crate::telemetry::CLUSTER_UNSERVED).set(unserved as f64);
        instance.set_view(view);
        if !assigned {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Leaving: a tombstone, so that the others stop routing here at once; not waited for while
    // out of contact with the broker past the fence (it would not arrive, and the stop would wait
    // out the flush), where the others' expiry of this record does the same.
    let _ = producer.send(BaseRecord::<[u8], [u8]>::to(&options.topic).key(own.as_bytes()));
    let wait = match instance.fenced(Instant::now()) {
        Some(_) => Duration::ZERO,
        None => Duration::from_secs(3),
    };
    let _ = producer.flush(wait);
}
