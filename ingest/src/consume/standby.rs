//! Warm standby copies (`--standby-replicas N`): a second consumer, outside the group, reads the
//! partitions [`cluster::standby::Standbys`] picks (those the group's range assignor would give
//! this instance if up to N other members left) from the offsets the store holds. Their messages are
//! folded into the same batches as the owned partitions' (one writer, the store's offsets atomic with
//! the states as for any partition), and they are never served: the instance serves a partition
//! only once the group assigns it and it has caught up, which for a warm copy is at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cluster::Partitions;
use cluster::standby::Standbys;
use featurestore::store::{RocksStore, SourceId};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::BrokerConfig;
use crate::{IngestError, Result};

/// With standby copies, how long a poll waits on the group's consumer when neither had a message
/// (the standby consumer is asked again after it).
const STANDBY_WAIT: Duration = Duration::from_millis(5);

/// The standby consumer and the partitions it follows.
pub(super) struct Standby {
    pub(super) consumer: BaseConsumer,
    standbys: Standbys,
    following: BTreeSet<i32>,
}

impl Standby {
    /// A consumer (never in `group`) for standby copies covering the departure of up to `replicas` other members,
    /// each kept `linger` after it drops out of the computed set.
    pub(super) fn connect(
        broker: &BrokerConfig,
        group: &str,
        replicas: usize,
        linger: Duration,
    ) -> Result<Self> {
        // librdkafka wants a group ID to assign partitions; this one is never joined (no
        // subscription) and never committed to.
        let group = format!("{group}.standby");
        let consumer: BaseConsumer = broker
            .client_config(&[
                ("group.id", &group),
                ("fetch.wait.max.ms", "50"),
                ("fetch.queue.backoff.ms", "10"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
            ])
            .create()
            .map_err(IngestError::kafka("creating the standby consumer"))?;
        Ok(Standby {
            consumer,
            standbys: Standbys::new(replicas, linger),
            following: BTreeSet::new(),
        })
    }

    /// Whether it follows `partition` (as a standby copy).
    pub(super) fn follows(&self, partition: i32) -> bool {
        self.following.contains(&partition)
    }

    /// Whether it follows any partition (else it is not polled).
    pub(super) fn following(&self) -> bool {
        !self.following.is_empty()
    }

    /// At a batch boundary (every offset the store holds is exact): the standby set for the
    /// group's view now, the consumer reassigned from the store's offsets when it changed, and the
    /// set advertised.
    pub(super) fn reconcile(
        &mut self,
        instance: &Partitions,
        store: &RocksStore,
        source: &SourceId,
        count: Option<u32>,
        checkpoints: Option<&std::path::Path>,
        now: Instant,
    ) -> Result<()> {
        let Some(count) = count else {
            return Ok(());
        };
        let view = instance.view();
        let members: BTreeSet<&str> = view.members.keys().map(String::as_str).collect();
        let assigned: BTreeSet<i32> = instance.assigned_partitions().into_iter().collect();
        let wanted = self
            .standbys
            .update(&members, instance.id(), count, &assigned, now);
        if wanted == self.following {
            return Ok(());
        }
        // A new standby copy starts from the newest checkpoint when it is ahead of the store's.
        if let Some(dir) = checkpoints {
            for p in wanted.difference(&self.following) {
                crate::checkpoint::import(store, source, *p, dir);
            }
        }
        let stored = store.offsets(source)?;
        let mut tpl = TopicPartitionList::new();
        for p in &wanted {
            let offset = match stored.get(p) {
                Some(next) => Offset::Offset(*next),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&source.topic, *p, offset)
                .map_err(IngestError::kafka("listing the standby partitions"))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(IngestError::kafka("assigning the standby partitions"))?;
        for gone in self.following.difference(&wanted) {
            metrics::gauge!(crate::telemetry::STANDBY_LAG, "partition" => gone.to_string())
                .set(0.0);
        }
        tracing::info!(
            standbys = ?wanted,
            ?assigned,
            "standby copies: following these partitions (never served until assigned)"
        );
        metrics::gauge!(crate::telemetry::STANDBY_PARTITIONS).set(wanted.len() as f64);
        instance.set_standbys(wanted.clone());
        self.following = wanted;
        Ok(())
    }

    /// Exports each standby copy's lag (high watermark − the store's next offset), each call to
    /// the broker waiting at most `timeout`.
    pub(super) fn export_lag(
        &self,
        topic: &str,
        stored: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<()> {
        for p in &self.following {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, *p, timeout)
                .map_err(IngestError::kafka("reading watermarks"))?;
            let position = stored.get(p).copied().unwrap_or(low.max(0));
            metrics::gauge!(crate::telemetry::STANDBY_LAG, "partition" => p.to_string())
                .set((high - position).max(0) as f64);
        }
        Ok(())
    }
}

impl super::Ingest {
    /// The next message of either consumer: without standbys, the group's consumer waiting up to
    /// `left`; with them, each asked without waiting (alternately first), then the group's
    /// consumer for a short wait.
    pub(super) fn poll(
        &self,
        left: Duration,
    ) -> Option<rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>> {
        let Some(standby) = self.standby.as_ref().filter(|s| s.following()) else {
            return self.consumer.poll(left);
        };
        if self.standby_first.get()
            && let Some(polled) = standby.consumer.poll(Duration::ZERO)
        {
            return Some(polled);
        }
        if let Some(polled) = self.consumer.poll(Duration::ZERO) {
            return Some(polled);
        }
        if let Some(polled) = standby.consumer.poll(Duration::ZERO) {
            return Some(polled);
        }
        self.consumer.poll(left.min(STANDBY_WAIT))
    }
}
