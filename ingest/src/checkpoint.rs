//! Checkpoints of the partitions an instance owns, written to a folder the group shares, and loaded
//! by the member a partition moves to ([`featurestore::store::checkpoint`]): a partition is then
//! restored from its newest checkpoint and the topic after its offset, not from the topic's
//! beginning, so the topic need not keep the whole history.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::Partitions;
use featurestore::store::{RocksStore, SourceId};

/// Loads the newest checkpoint of `partition` into `store` when it is ahead of the store's copy.
/// A failure is logged, not fatal: the partition is then restored from the topic as without one.
pub fn import(store: &RocksStore, source: &SourceId, partition: i32, dir: &Path) {
    let started = Instant::now();
    match store.import_partition(source, partition, dir) {
        Ok(Some(manifest)) => {
            metrics::counter!(crate::telemetry::CHECKPOINTS_LOADED).increment(1);
            metrics::counter!(crate::telemetry::CHECKPOINT_BYTES_LOADED).increment(manifest.bytes);
            tracing::info!(
                partition,
                next_offset = manifest.next_offset,
                customers = manifest.customers,
                events = manifest.events,
                bytes = manifest.bytes,
                seconds = started.elapsed().as_secs_f64(),
                "loaded the partition's checkpoint; the topic is read from its offset on"
            );
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(
                partition,
                "loading a checkpoint: {e}; restoring from the topic"
            );
        }
    }
}

/// What the checkpoint writer needs.
pub struct Checkpointer {
    /// The instance's store.
    pub store: Arc<RocksStore>,
    /// Its partitions (those caught up are written).
    pub partitions: Partitions,
    /// The cluster and topic the offsets belong to.
    pub source: SourceId,
    /// The shared folder.
    pub dir: PathBuf,
    /// How often each caught-up partition is written (when its offset moved).
    pub every: Duration,
}

impl Checkpointer {
    /// Writes a checkpoint of every caught-up partition this instance owns whose offset moved
    /// since the newest one; returns how many it wrote.
    pub fn once(&self) -> usize {
        let mut written = 0;
        for (partition, status) in self.partitions.statuses(Instant::now()) {
            if !status.caught_up() {
                continue;
            }
            let started = Instant::now();
            match self
                .store
                .export_partition(&self.source, partition, &self.dir)
            {
                Ok(Some(manifest)) => {
                    written += 1;
                    metrics::counter!(crate::telemetry::CHECKPOINTS_WRITTEN).increment(1);
                    metrics::histogram!(crate::telemetry::CHECKPOINT_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    tracing::debug!(
                        partition,
                        next_offset = manifest.next_offset,
                        bytes = manifest.bytes,
                        "checkpoint written"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    metrics::counter!(crate::telemetry::CHECKPOINT_ERRORS).increment(1);
                    tracing::warn!(partition, "writing a checkpoint: {e}");
                }
            }
        }
        written
    }

    /// Writes checkpoints every `every` on a thread until `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                let mut next = Instant::now() + self.every;
                while !stop.load(Ordering::Acquire) {
                    if Instant::now() >= next {
                        self.once();
                        next = Instant::now() + self.every;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
    }
}
