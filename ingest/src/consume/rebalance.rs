//! The consumer's rebalance callback: an assignment resumes from the offsets stored in RocksDB
//! (never the group's committed ones) and starts each partition's restore; a revocation stops
//! serving the partitions before the group can give them to another member.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cluster::Partitions;
use featurestore::store::{RocksStore, SourceId};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Seeks every assigned partition to the offset stored in RocksDB for this cluster and topic. When
/// the store cannot say, it assigns nothing and records why: ingest then stops with that error
/// instead of reading the partitions from offsets it does not know.
pub(super) struct ResumeFromStore {
    pub(super) store: Arc<RocksStore>,
    pub(super) instance: Partitions,
    pub(super) source: Arc<Mutex<Option<SourceId>>>,
    pub(super) failure: Arc<Mutex<Option<featurestore::StoreError>>>,
    /// The group's shared checkpoints, if any: a partition assigned starts from the newest one
    /// when it is ahead of the store's copy.
    pub(super) checkpoint_dir: Option<std::path::PathBuf>,
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
                if let (Some(source), Some(dir)) = (&source, &self.checkpoint_dir) {
                    for e in tpl.elements() {
                        crate::checkpoint::import(&self.store, source, e.partition(), dir);
                    }
                }
                let stored = match &source {
                    Some(source) => match self.store.offsets(source) {
                        Ok(stored) => stored,
                        Err(e) => {
                            tracing::error!("reading the stored offsets on assignment: {e}");
                            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            let _ = consumer.unassign();
                            return;
                        }
                    },
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
                let assigned: Vec<(i32, Option<i64>)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.partition(), stored.get(&e.partition()).copied()))
                    .collect();
                // Each restores from what the store holds until caught up (`caught_up` reports). An
                // assignment is word from the group: contact.
                let now = Instant::now();
                self.instance.contact(now);
                self.instance.assigned(&assigned, now);
                for (p, _) in &assigned {
                    metrics::gauge!(crate::telemetry::PARTITION_RESTORING, "partition" => p.to_string())
                        .set(1.0);
                }
                tracing::info!(
                    ?assigned,
                    ?stored,
                    "partitions assigned; resuming from the stored offsets"
                );
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("assigning partitions: {e}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Not served from here before the group can give them to another member.
                // The eager protocol revokes every partition (and `unassign` below drops them all).
                let mut revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                revoked.extend(self.instance.assigned_partitions());
                revoked.sort_unstable();
                revoked.dedup();
                self.instance.revoked_all();
                for p in &revoked {
                    let p = p.to_string();
                    metrics::gauge!(crate::telemetry::PARTITION_RESTORING, "partition" => p.clone())
                        .set(0.0);
                    metrics::gauge!(crate::telemetry::RESTORE_REMAINING, "partition" => p.clone())
                        .set(0.0);
                    metrics::gauge!(crate::telemetry::CONSUMER_LAG, "partition" => p).set(0.0);
                }
                tracing::info!(?revoked, "partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!("unassigning partitions: {e}");
                }
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                self.instance.revoked_all();
                let _ = consumer.unassign();
            }
        }
    }
}
