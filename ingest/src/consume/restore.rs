//! Where each assigned partition stands: contact with the broker (and the fence), the lag and
//! each partition's restore reported to the instance, and the offsets committed to the group for
//! lag visibility.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Ingest;
use crate::{IngestError, Result};

impl Ingest {
    /// The broker answered: tell the instance (after a silence past its fence it has dropped its
    /// partitions), and once the contact has lasted a fence, take back any partition the consumer
    /// still holds that the instance dropped (had the group moved it meanwhile, librdkafka would
    /// have learned so by then, at its next heartbeats, and revoked it).
    fn in_contact(&mut self) {
        self.broker_away.set(false);
        if self.instance.contact(Instant::now()) {
            tracing::warn!(
                "back in contact with the broker after a silence past half the session timeout: \
                 the partitions held are not served until the group confirms them"
            );
            self.contact_since = Some(Instant::now());
        }
        let since = *self.contact_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.options.session_timeout / 2 {
            return;
        }
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let held = self.instance.assigned_partitions();
        let missing: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .filter(|p| !held.contains(p))
            .collect();
        if !missing.is_empty() {
            tracing::info!(
                ?missing,
                "the group still gives these partitions here: restoring them"
            );
            // Where the store stands is only what the restore's count starts from: unreadable, it
            // starts at the topic's first offset.
            let stored = self.store.offsets(&self.source).unwrap_or_default();
            let missing: Vec<(i32, Option<i64>)> = missing
                .into_iter()
                .map(|p| (p, stored.get(&p).copied()))
                .collect();
            self.instance.assigned(&missing, Instant::now());
        }
    }

    /// Exports the lag of every assigned partition (high watermark − stored next offset), reports
    /// each partition's progress to the instance (a restoring partition is caught up once it reaches
    /// the high watermark it had when first checked), and tells whether there is an assignment and
    /// all of it is caught up. A check that had an answer from the broker records it as contact
    /// ([`Self::in_contact`]): with no partition assigned, or when every partition's watermarks
    /// came from the last fetch and no answer came for [`Self::answer_every`], the topic's metadata
    /// is asked.
    pub(super) fn caught_up(&mut self) -> Result<bool> {
        let positions = self
            .consumer
            .assignment()
            .map_err(IngestError::kafka("reading the assignment"))?;
        let elements = positions.elements();
        let none_assigned = elements.is_empty();
        let mut answered = false;
        let stored = self.store.offsets(&self.source)?;
        let batch = self.store.batch_number()?;
        let mut all = !elements.is_empty();
        for e in elements {
            let known = stored.get(&e.partition()).copied();
            // While the last fetch response showed messages past the store's position, its
            // watermarks do (no round trip: each was ~50 ms on the embedded broker, and ingest
            // waits for it); the broker is asked when the partition may be caught up, or is new.
            let (low, high) = match (
                cached_watermarks(self.consumer.client(), e.topic(), e.partition()),
                known,
            ) {
                (Some((low, high)), Some(position)) if high > position => (low, high),
                _ => {
                    let asked = self
                        .consumer
                        .fetch_watermarks(e.topic(), e.partition(), self.call_timeout())
                        .map_err(IngestError::kafka("reading watermarks"))?;
                    answered = true;
                    asked
                }
            };
            // A partition the store has never read starts at the topic's first offset.
            let position = known.unwrap_or(low.max(0));
            let lag = (high - position).max(0);
            metrics::gauge!(crate::telemetry::CONSUMER_LAG, "partition" => e.partition().to_string())
                .set(lag as f64);
            if let Some(restored) =
                self.instance
                    .progress(e.partition(), position, (low, high), batch, Instant::now())
            {
                metrics::counter!(crate::telemetry::RESTORES).increment(1);
                metrics::counter!(crate::telemetry::RESTORED_MESSAGES)
                    .increment(restored.messages.max(0) as u64);
                metrics::histogram!(crate::telemetry::RESTORE_SECONDS)
                    .record(restored.took.as_secs_f64());
                tracing::info!(
                    partition = restored.partition,
                    messages = restored.messages,
                    seconds = restored.took.as_secs_f64(),
                    "partition caught up"
                );
            }
            all &= lag == 0;
        }
        // No watermark asked (no partition, or every one behind): without an answer now, a member
        // whose partitions the session's end took away, or one draining what it fetched before
        // the broker went, would count itself in contact with a broker that is gone. The same
        // answer refreshes the partition count.
        if !answered
            && self
                .last_answer
                .is_none_or(|at| none_assigned || at.elapsed() >= self.answer_every())
        {
            self.read_topic_metadata()
                .map_err(IngestError::kafka("reading the topic's metadata"))?;
            answered = true;
        }
        if answered {
            self.last_answer = Some(Instant::now());
        }
        // Each partition's restore, from one read of the statuses.
        for (partition, status) in self.instance.statuses(Instant::now()) {
            let remaining = match status {
                cluster::PartitionStatus::Restoring {
                    done,
                    total: Some(total),
                } => Some((total - done).max(0)),
                cluster::PartitionStatus::Restoring { total: None, .. } => Some(0),
                _ => None,
            };
            let partition = partition.to_string();
            metrics::gauge!(crate::telemetry::PARTITION_RESTORING, "partition" => partition.clone())
                .set(if remaining.is_some() { 1.0 } else { 0.0 });
            metrics::gauge!(crate::telemetry::RESTORE_REMAINING, "partition" => partition)
                .set(remaining.unwrap_or(0) as f64);
        }
        if let Some(standby) = &self.standby {
            standby.export_lag(&self.options.topic, &stored, self.call_timeout())?;
        }
        self.commit_to_the_group(&positions, &stored);
        // Contact is an answer from the broker in this check, not watermarks from the last fetch.
        if answered {
            self.in_contact();
        }
        Ok(all)
    }

    /// How long checks may go without an answer from the broker (while every partition is behind,
    /// its watermarks from the last fetch): an eighth of the session timeout, so that a live
    /// broker is heard well within the fence (half of it).
    fn answer_every(&self) -> Duration {
        self.options.session_timeout / 8
    }

    /// Commits the stored offsets of the assigned partitions to the group when they changed, and
    /// again every 5 s: a batch's own commit fails during a rebalance ("rebalance in progress"),
    /// and an idle member would otherwise leave the group's offsets (which replay's backpressure and
    /// lag dashboards read) behind for good.
    pub(super) fn commit_to_the_group(
        &mut self,
        assigned: &TopicPartitionList,
        stored: &BTreeMap<i32, i64>,
    ) {
        let offsets = assigned_offsets(assigned, stored);
        if offsets.is_empty()
            || self
                .group_commit
                .as_ref()
                .is_some_and(|(last, at)| *last == offsets && at.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.commit_offsets(offsets.iter().map(|(p, o)| (*p, *o)), CommitMode::Async);
        self.group_commit = Some((offsets, Instant::now()));
    }

    /// Commits `offsets` (partition -> next offset, each one the store holds) to the group, with
    /// the metadata that makes each a mark below which misrouted events were forwarded
    /// ([`crate::forward_mark`]); a failure is logged only, as the group's offsets are for lag
    /// visibility, replay's backpressure and those marks (a mark behind only forwards more).
    pub(super) fn commit_offsets(
        &self,
        offsets: impl IntoIterator<Item = (i32, i64)>,
        mode: CommitMode,
    ) {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let mut element = tpl.add_partition(&self.options.topic, p);
            if element.set_offset(Offset::Offset(o)).is_ok() {
                element.set_metadata(crate::forward_mark::FORWARDED_BELOW);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!("commit to the group: {e}");
        }
    }
}

/// The offsets `stored` holds for the partitions `assigned` (those it holds none for left out).
pub(super) fn assigned_offsets(
    assigned: &TopicPartitionList,
    stored: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    assigned
        .elements()
        .iter()
        .filter_map(|e| Some((e.partition(), *stored.get(&e.partition())?)))
        .collect()
}

/// The watermarks of `partition` as the consumer last saw them in a fetch response, without a
/// round trip (`rd_kafka_get_watermark_offsets`, which the safe binding does not offer); `None`
/// before the consumer has fetched from it.
#[allow(unsafe_code)]
fn cached_watermarks<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: `client` is a live handle for the whole call, `topic` a NUL-terminated string that
    // outlives it, and `low` and `high` valid places for the two offsets it writes; the call only
    // reads the handle's cached partition state under its lock.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            client.native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}
