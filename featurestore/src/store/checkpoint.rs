//! Checkpoints of one partition's state, for another store to start from instead of reading the
//! topic from its beginning.
//!
//! [`RocksStore::export_partition`] writes a partition's two column families as of one RocksDB
//! snapshot, with the next offset that state was folded up to, into a folder of its own: SST files
//! (RocksDB's own table format, built in key order) and a `manifest.json`, under
//! `<dir>/<topic>/p<partition>.layout<store layout>/<next offset>/`, made visible by one rename. [`RocksStore::import_partition`]
//! loads the newest one into a store whose own copy of the partition is older: the partition's keys
//! replaced by the files (RocksDB ingests them as they are), then, in one write batch, its offset,
//! its watermark mark, the store's counts and the partition's customers listed as changed (the
//! scorer rescores them). Ingest then reads the topic from the checkpoint's offset on: the topic
//! need only keep what came after the newest checkpoint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use contract::watermark::{self, PartitionMark};
use rocksdb::{IteratorMode, SstFileWriter, WriteBatch};
use serde::{Deserialize, Serialize};

use super::layout::*;
use super::{Result, RocksStore, SourceId, StoreError};

/// What a checkpoint holds, as its `manifest.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The Kafka cluster ID the offsets belong to.
    pub cluster: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to read after the state it holds.
    pub next_offset: i64,
    /// Customers in it.
    pub customers: u64,
    /// Event IDs in it.
    pub events: u64,
    /// The partition's watermark mark.
    pub mark: Option<PartitionMark>,
    /// Its bytes on disk (the SST files).
    pub bytes: u64,
}

const CUSTOMERS_FILE: &str = "customers.sst";
const EVENTS_FILE: &str = "events.sst";
const MANIFEST_FILE: &str = "manifest.json";
/// Checkpoints kept per partition (the newest; an older one may still be being read).
const KEPT: usize = 2;

/// The folder of `partition`'s checkpoints of `topic` under `dir`, named with the store's layout: a
/// version of another layout neither loads them nor writes among them. (A checkpoint of layout 3
/// carries customers' event marks; a version before them would load it and then write events
/// without moving their marks.)
fn partition_dir(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(topic).join(format!("p{partition}.layout{LAYOUT}"))
}

fn io_error(path: &Path, e: impl ToString) -> StoreError {
    StoreError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The checkpoints of `partition` of `source` in `dir`, newest first (folders named by their next
/// offset whose manifest reads back and names the same cluster, topic and partition).
pub fn checkpoints(dir: &Path, source: &SourceId, partition: i32) -> Vec<(PathBuf, Manifest)> {
    let folder = partition_dir(dir, &source.topic, partition);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, Manifest)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<i64>().is_ok())
        })
        .filter_map(|e| {
            let path = e.path();
            let bytes = std::fs::read(path.join(MANIFEST_FILE)).ok()?;
            let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
            (manifest.cluster == source.cluster
                && manifest.topic == source.topic
                && manifest.partition == partition)
                .then_some((path, manifest))
        })
        .collect();
    found.sort_by_key(|(_, m)| std::cmp::Reverse(m.next_offset));
    found
}

impl RocksStore {
    /// Writes `partition`'s state as of now (one snapshot) to a new checkpoint under `dir`, unless
    /// the newest there is already at its offset or the store has not read the partition. Returns
    /// the manifest written.
    pub fn export_partition(
        &self,
        source: &SourceId,
        partition: i32,
        dir: &Path,
    ) -> Result<Option<Manifest>> {
        let snapshot = self.db.snapshot();
        let offsets_cf = self
            .db
            .cf_handle(CF_OFFSETS)
            .expect("opened with the offsets family");
        let Some(offset) = snapshot
            .get_cf(&offsets_cf, source.key(partition))
            .map_err(self.rocks())?
        else {
            return Ok(None);
        };
        let next_offset = i64::from_be_bytes(
            offset
                .as_slice()
                .try_into()
                .map_err(|_| self.corrupt("offset".into(), "length"))?,
        );
        if checkpoints(dir, source, partition)
            .first()
            .is_some_and(|(_, m)| m.next_offset >= next_offset)
        {
            return Ok(None);
        }
        let folder = partition_dir(dir, &source.topic, partition);
        let staging = folder.join(format!(".staging-{}-{next_offset}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| io_error(&staging, e))?;
        let mut manifest = Manifest {
            cluster: source.cluster.clone(),
            topic: source.topic.clone(),
            partition,
            next_offset,
            customers: 0,
            events: 0,
            mark: None,
            bytes: 0,
        };
        for (family, file) in [
            (partition_cf(partition), CUSTOMERS_FILE),
            (events_cf(partition), EVENTS_FILE),
        ] {
            let Some(cf) = self.db.cf_handle(&family) else {
                continue;
            };
            let path = staging.join(file);
            let mut writer: Option<SstFileWriter<'_>> = None;
            let mut keys = 0u64;
            for item in snapshot.iterator_cf_opt(&cf, scan_options(), IteratorMode::Start) {
                let (key, value) = item.map_err(self.rocks())?;
                let sst = match &mut writer {
                    Some(sst) => sst,
                    None => {
                        let sst = SstFileWriter::create(&self.cf_options.keyed);
                        sst.open(&path).map_err(self.rocks())?;
                        writer.insert(sst)
                    }
                };
                sst.put(&key, &value).map_err(self.rocks())?;
                keys += 1;
                // A customer's summary is the key of the customer ID alone.
                if file == CUSTOMERS_FILE && key.len() == 8 {
                    manifest.customers += 1;
                }
            }
            if let Some(mut sst) = writer {
                sst.finish().map_err(self.rocks())?;
                manifest.bytes += sst.file_size();
            }
            if file == EVENTS_FILE {
                manifest.events = keys;
            }
        }
        let meta = self.meta_cf()?;
        if let Some(mark) = snapshot
            .get_cf(&meta, mark_key(partition))
            .map_err(self.rocks())?
        {
            manifest.mark = Some(
                postcard::from_bytes(&mark)
                    .map_err(|e| self.corrupt(format!("partition {partition}'s mark"), e))?,
            );
        }
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io_error(&staging, e))?;
        std::fs::write(staging.join(MANIFEST_FILE), json).map_err(|e| io_error(&staging, e))?;
        let done = folder.join(next_offset.to_string());
        if std::fs::rename(&staging, &done).is_err() {
            // Another instance wrote the same offset meanwhile: theirs stands.
            let _ = std::fs::remove_dir_all(&staging);
        }
        for (old, _) in checkpoints(dir, source, partition).into_iter().skip(KEPT) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(Some(manifest))
    }

    /// Loads the newest checkpoint of `partition` under `dir` when it is ahead of the store's own
    /// copy (module docs). Returns its manifest when it loaded one.
    pub fn import_partition(
        &self,
        source: &SourceId,
        partition: i32,
        dir: &Path,
    ) -> Result<Option<Manifest>> {
        let stored = self.offsets(source)?.get(&partition).copied();
        let Some((folder, manifest)) = checkpoints(dir, source, partition).into_iter().next()
        else {
            return Ok(None);
        };
        if stored.is_some_and(|s| s >= manifest.next_offset) {
            return Ok(None);
        }
        self.ensure_partition(partition)?;
        // What the store held of the partition (an older copy: state only grows, so the
        // checkpoint holds every customer it did) leaves the counts.
        let (before_customers, before_events) = self.partition_counts(partition)?;
        let offsets_cf = self
            .db
            .cf_handle(CF_OFFSETS)
            .expect("opened with the offsets family");
        // First the partition's offset goes: if the process dies before the last write below, the
        // partition is read again from the topic's beginning, and every event already in the store
        // (whatever part of the old copy or of the checkpoint is in) is read again by its ID,
        // changing nothing.
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.db
            .delete_cf_opt(&offsets_cf, source.key(partition), &sync)
            .map_err(self.rocks())?;
        let everything: (&[u8], &[u8]) = (&[], &[0xff; 64]);
        for (family, file) in [
            (partition_cf(partition), CUSTOMERS_FILE),
            (events_cf(partition), EVENTS_FILE),
        ] {
            let cf = self
                .db
                .cf_handle(&family)
                .ok_or_else(|| self.corrupt(family.clone(), "no column family"))?;
            self.db
                .delete_range_cf(&cf, everything.0, everything.1)
                .map_err(self.rocks())?;
            let path = folder.join(file);
            if path.exists() {
                self.db
                    .ingest_external_file_cf(&cf, vec![path])
                    .map_err(self.rocks())?;
            }
        }
        let mut write = WriteBatch::default();
        write.put_cf(
            &offsets_cf,
            source.key(partition),
            manifest.next_offset.to_be_bytes(),
        );
        let meta = self.meta_cf()?;
        let mut marks = self.partition_marks()?;
        if let Some(mark) = &manifest.mark {
            let bytes =
                postcard::to_stdvec(mark).map_err(|e| self.corrupt("partition mark".into(), e))?;
            write.put_cf(&meta, mark_key(partition), bytes);
            marks.insert(partition, mark.clone());
        }
        if let Some(w) = watermark::watermark(marks.values())
            && w > self.watermark_ms()?.unwrap_or(i64::MIN)
        {
            write.put_cf(&meta, META_WATERMARK, w.to_be_bytes());
        }
        let customers = (self.customers()? + manifest.customers).saturating_sub(before_customers);
        write.put_cf(&meta, META_CUSTOMERS, customers.to_be_bytes());
        let events = (self.events()? + manifest.events).saturating_sub(before_events);
        write.put_cf(&meta, META_EVENTS, events.to_be_bytes());
        // Every customer of the partition listed as changed in one new batch: the scorer rescores
        // them as it does after any batch.
        let changes = self
            .db
            .cf_handle(CF_CHANGES)
            .expect("opened with the changes family");
        let number = self.batch_number()? + 1;
        for customer in self.partition_customers(partition)? {
            write.put_cf(&changes, change_key(number, partition, customer), []);
        }
        write.put_cf(&meta, META_BATCH, number.to_be_bytes());
        self.db.write_opt(write, &sync).map_err(self.rocks())?;
        Ok(Some(manifest))
    }

    /// The customers of `partition` (the keys of their summaries), in order.
    fn partition_customers(&self, partition: i32) -> Result<BTreeSet<u64>> {
        let mut customers = BTreeSet::new();
        let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
            return Ok(customers);
        };
        for item in self
            .db
            .iterator_cf_opt(&cf, scan_options(), IteratorMode::Start)
        {
            let (key, _) = item.map_err(self.rocks())?;
            if let Ok(id) = <[u8; 8]>::try_from(key.as_ref()) {
                customers.insert(u64::from_be_bytes(id));
            }
        }
        Ok(customers)
    }

    /// Customers and event IDs `partition` holds.
    fn partition_counts(&self, partition: i32) -> Result<(u64, u64)> {
        let customers = self.partition_customers(partition)?.len() as u64;
        let mut events = 0u64;
        if let Some(cf) = self.db.cf_handle(&events_cf(partition)) {
            for item in self
                .db
                .iterator_cf_opt(&cf, scan_options(), IteratorMode::Start)
            {
                item.map_err(self.rocks())?;
                events += 1;
            }
        }
        Ok((customers, events))
    }
}
