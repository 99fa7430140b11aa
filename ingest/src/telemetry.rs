//! Every metric ingest exports (`clv_ingest_*`, and the group's view as `clv_cluster_*`), named
//! once here and described once ([`register`]). A call site names a metric by its constant.

use contract::LineClass;
use contract::event::Rejection;

use crate::consume::BROKER_OPERATIONS;

/// Events consumed, by outcome and line class or rejection kind.
pub const EVENTS: &str = "clv_ingest_events_total";
/// Events that arrived on another partition than their customer's and were forwarded to it.
pub const REPARTITIONED: &str = "clv_ingest_events_repartitioned_total";
/// Misrouted events read again below the group's mark (a restore, a standby copy): forwarded
/// already, not again.
pub const FORWARDED_ALREADY: &str = "clv_ingest_events_forwarded_already_total";
/// Events whose ID the store already held.
pub const READ_AGAIN: &str = "clv_ingest_events_read_again_total";
/// Time to fold one batch and write it with its offsets, seconds.
pub const BATCH_APPLY: &str = "clv_ingest_batch_apply_seconds";
/// Time of one batch in each stage, seconds.
pub const BATCH_STAGE: &str = "clv_ingest_batch_stage_seconds";
/// Messages behind the high watermark, per assigned partition.
pub const CONSUMER_LAG: &str = "clv_ingest_consumer_lag";
/// Customers in the feature store.
pub const CUSTOMERS: &str = "clv_ingest_customers";
/// 1 while an assigned partition is restoring.
pub const PARTITION_RESTORING: &str = "clv_ingest_partition_restoring";
/// Messages a restoring partition still has to apply.
pub const RESTORE_REMAINING: &str = "clv_ingest_restore_remaining_messages";
/// Partitions that finished restoring.
pub const RESTORES: &str = "clv_ingest_restores_total";
/// Time from a partition's assignment until it is caught up, seconds.
pub const RESTORE_SECONDS: &str = "clv_ingest_restore_seconds";
/// Messages the finished restores applied (few when a warm standby took over).
pub const RESTORED_MESSAGES: &str = "clv_ingest_restored_messages_total";
/// Partitions kept as warm standby copies (never served until assigned).
pub const STANDBY_PARTITIONS: &str = "clv_ingest_standby_partitions";
/// Messages read into standby copies (also counted in the events' outcomes).
pub const STANDBY_MESSAGES: &str = "clv_ingest_standby_messages_total";
/// Messages a standby copy is behind the high watermark, per standby partition.
pub const STANDBY_LAG: &str = "clv_ingest_standby_lag";
/// Checkpoints written.
pub const CHECKPOINTS_WRITTEN: &str = "clv_ingest_checkpoints_written_total";
/// Time to write one partition's checkpoint, seconds.
pub const CHECKPOINT_SECONDS: &str = "clv_ingest_checkpoint_seconds";
/// Checkpoints that failed to be written.
pub const CHECKPOINT_ERRORS: &str = "clv_ingest_checkpoint_errors_total";
/// Checkpoints loaded into the store (a partition started from one).
pub const CHECKPOINTS_LOADED: &str = "clv_ingest_checkpoints_loaded_total";
/// Bytes of the checkpoints loaded.
pub const CHECKPOINT_BYTES_LOADED: &str = "clv_ingest_checkpoint_loaded_bytes_total";
/// The event-time watermark as_of follows, Unix seconds.
pub const WATERMARK: &str = "clv_ingest_event_time_watermark_seconds";
/// Failed calls to the broker, by operation.
pub const BROKER_ERRORS: &str = "clv_ingest_broker_errors_total";
/// 1 while the broker answers.
pub const BROKER_REACHABLE: &str = "clv_ingest_broker_reachable";
/// Instances in the group's view.
pub const CLUSTER_MEMBERS: &str = "clv_cluster_members";
/// Partitions no instance serves.
pub const CLUSTER_UNSERVED: &str = "clv_cluster_partitions_unserved";

/// Describes ingest's metrics and creates its counters at 0, so that dashboards and alerts see every
/// series from the first scrape (not only after the first dead letter).
pub fn register() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CLUSTER_MEMBERS, "Instances in the group's view (scale-out)");
    describe_gauge!(
        CLUSTER_UNSERVED,
        "Partitions no instance of the group serves (scale-out)"
    );
    describe_counter!(
        EVENTS,
        "Events consumed, by outcome (applied, ignored, dead_lettered) and line class or rejection kind"
    );
    describe_counter!(
        READ_AGAIN,
        "Events whose ID the store already held (redelivered or replayed again); they change nothing"
    );
    describe_histogram!(
        BATCH_APPLY,
        Unit::Seconds,
        "Time to fold one batch and write it with its offsets to RocksDB"
    );
    describe_histogram!(
        BATCH_STAGE,
        Unit::Seconds,
        "Time of one batch in each stage: collecting its messages from the broker (poll), folding them \
         with the store's lookups (fold), writing it (write)"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages behind the high watermark, per assigned partition"
    );
    describe_gauge!(CUSTOMERS, "Customers in the feature store");
    describe_gauge!(
        PARTITION_RESTORING,
        "1 while an assigned partition is restoring (read from the topic until it reaches the high watermark it had when assigned), 0 once caught up"
    );
    describe_gauge!(
        RESTORE_REMAINING,
        "Messages a restoring partition still has to apply"
    );
    describe_counter!(
        RESTORES,
        "Partitions that finished restoring (caught up after an assignment)"
    );
    describe_histogram!(
        RESTORE_SECONDS,
        Unit::Seconds,
        "Time from a partition's assignment until it is caught up"
    );
    metrics::counter!(RESTORES).increment(0);
    register_scale_out();
    describe_gauge!(
        WATERMARK,
        Unit::Seconds,
        "Event-time watermark that as_of follows (Unix seconds): the partitions' minimum latest purchase, capped by the latest time 10 customers reached"
    );
    // An event out of bounds is never applied: it is a dead letter of that kind.
    for class in LineClass::ALL
        .into_iter()
        .filter(|c| *c != LineClass::OutOfBounds)
    {
        let outcome = match class {
            LineClass::Purchase | LineClass::Return => "applied",
            _ => "ignored",
        };
        metrics::counter!(EVENTS, "outcome" => outcome, "class" => class.name()).increment(0);
    }
    for kind in Rejection::KINDS {
        metrics::counter!(EVENTS, "outcome" => "dead_lettered", "class" => kind).increment(0);
    }
    metrics::counter!(READ_AGAIN).increment(0);
    describe_counter!(
        REPARTITIONED,
        "Events that arrived on another partition than their customer's (a producer with another partitioner) and were forwarded to their customer's partition, where they are applied once"
    );
    metrics::counter!(REPARTITIONED).increment(0);
    describe_counter!(
        FORWARDED_ALREADY,
        "Events on another partition than their customer's read again below the group's committed offset (a restore, a standby copy): forwarded by an earlier reader, not forwarded again"
    );
    metrics::counter!(FORWARDED_ALREADY).increment(0);
    describe_counter!(
        BROKER_ERRORS,
        "Failed calls to the broker, by operation (ingest retries them: an outage loses nothing)"
    );
    describe_gauge!(
        BROKER_REACHABLE,
        "1 while the broker answers, 0 since a call to it failed"
    );
    metrics::gauge!(BROKER_REACHABLE).set(1.0);
    for operation in BROKER_OPERATIONS {
        metrics::counter!(BROKER_ERRORS, "operation" => operation).increment(0);
    }
}

/// Describes the scale-out metrics (restores, checkpoints, standby copies) and creates them at 0.
fn register_scale_out() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        RESTORED_MESSAGES,
        "Messages the finished restores applied between assignment and caught up (near 0 when a warm standby took the partition over)"
    );
    metrics::counter!(RESTORED_MESSAGES).increment(0);
    describe_counter!(
        CHECKPOINTS_WRITTEN,
        "Checkpoints of owned partitions written to the shared folder (--checkpoint-dir)"
    );
    describe_histogram!(
        CHECKPOINT_SECONDS,
        Unit::Seconds,
        "Time to write one partition's checkpoint"
    );
    describe_counter!(CHECKPOINT_ERRORS, "Checkpoints that failed to be written");
    describe_counter!(
        CHECKPOINTS_LOADED,
        "Checkpoints loaded: partitions that started from one instead of the topic's beginning"
    );
    describe_counter!(CHECKPOINT_BYTES_LOADED, "Bytes of the checkpoints loaded");
    for counter in [
        CHECKPOINTS_WRITTEN,
        CHECKPOINT_ERRORS,
        CHECKPOINTS_LOADED,
        CHECKPOINT_BYTES_LOADED,
    ] {
        metrics::counter!(counter).increment(0);
    }
    describe_gauge!(
        STANDBY_PARTITIONS,
        "Partitions this instance keeps warm standby copies of (--standby-replicas; never served until the group assigns them)"
    );
    metrics::gauge!(STANDBY_PARTITIONS).set(0.0);
    describe_counter!(
        STANDBY_MESSAGES,
        "Messages read into standby copies (they are also counted in clv_ingest_events_total: a group's events applied are that sum minus this one)"
    );
    metrics::counter!(STANDBY_MESSAGES).increment(0);
    describe_gauge!(
        STANDBY_LAG,
        "Messages a standby copy is behind the high watermark, per standby partition"
    );
}
