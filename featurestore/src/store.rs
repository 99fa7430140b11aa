//! The feature store on RocksDB: per-customer state, grouped by Kafka partition, with the consumed
//! offsets written in the same atomic batch (exactly-once in effect).
//!
//! Column families:
//! - `customers.p<N>`: state of the customers whose events come from partition N, keyed by customer ID
//!   (8 bytes, big-endian), value = [`CustomerState`] (postcard). A partition's state is one column
//!   family, so it can move between instances as a unit. Bloom filters and a shared block cache serve
//!   point reads.
//! - `offsets`: the next offset to read per (cluster, topic, partition). Offsets are tagged with the
//!   cluster and topic they belong to, so that those of another broker are never applied.
//! - `meta`: the event-time watermark and each partition's mark it is the minimum of (the rule of
//!   [`contract::watermark`]: the partitions' minimum capped by the latest time a quorum of
//!   customers reached, so that a few outliers cannot move it), the number of customers, and the number of the last batch written.
//! - `changes`: which customers each batch wrote, keyed by (batch number, partition, customer), the
//!   last [`CHANGES_KEPT`] batches: a reader that remembers the batch it last saw reads only the
//!   customers written since ([`RocksStore::changes_since`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch,
};

use contract::CustomerState;
use contract::watermark::{self, PartitionMark};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("feature store {path}: {source}")]
    Rocks {
        /// The database folder.
        path: PathBuf,
        /// The underlying error.
        source: rocksdb::Error,
    },
    /// A stored value could not be decoded (written by another version?).
    #[error("feature store {path}: undecodable {what}: {reason}")]
    Corrupt {
        /// The database folder.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// The Kafka cluster and topic that offsets belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceId {
    /// The cluster ID the broker reports (a fresh embedded broker has a new one).
    pub cluster: String,
    /// The topic.
    pub topic: String,
}

impl SourceId {
    fn key(&self, partition: i32) -> Vec<u8> {
        let mut key = self.prefix();
        key.extend_from_slice(&partition.to_be_bytes());
        key
    }

    fn prefix(&self) -> Vec<u8> {
        format!("{}\0{}\0", self.cluster, self.topic).into_bytes()
    }
}

/// What one consumer batch changes, written atomically by [`RocksStore::write`].
#[derive(Debug, Default)]
pub struct Batch {
    /// New state of each customer touched: (partition, customer, state).
    pub states: Vec<(i32, u64, CustomerState)>,
    /// Customers among `states` that were not stored before.
    pub new_customers: u64,
    /// Next offset to read, per partition of `source`.
    pub offsets: Vec<(i32, i64)>,
    /// Latest purchase time applied in the batch per customer: (partition, customer, epoch ms), what
    /// the partitions' marks and the watermark are folded from.
    pub latest_purchases: Vec<(i32, u64, i64)>,
}

const CF_OFFSETS: &str = "offsets";
const CF_META: &str = "meta";
const CF_CHANGES: &str = "changes";
const META_BATCH: &[u8] = b"batch";
const META_CHANGES_FROM: &[u8] = b"changes_from";

/// How many batches' lists of changed customers the store keeps.
pub const CHANGES_KEPT: u64 = 10_000;

/// The customers written after a batch, as [`RocksStore::changes_since`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The last batch written.
    pub batch: u64,
    /// (partition, customer) written after the given batch, each once, in key order.
    pub customers: Vec<(i32, u64)>,
}
const PARTITION_CF_PREFIX: &str = "customers.p";
const META_WATERMARK: &[u8] = b"watermark_ms";
const META_MARK_PREFIX: &[u8] = b"mark.p";

fn mark_key(partition: i32) -> Vec<u8> {
    let mut key = META_MARK_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}
const META_CUSTOMERS: &[u8] = b"customers";

fn partition_cf(partition: i32) -> String {
    format!("{PARTITION_CF_PREFIX}{partition}")
}

/// The RocksDB feature store.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    cf_options: Options,
    partitions: RwLock<BTreeSet<i32>>,
    /// A secondary instance changes only in [`RocksStore::catch_up`], so it is its own snapshot (RocksDB
    /// has no snapshots in secondary mode).
    secondary: bool,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let rocks = |source| StoreError::Rocks {
            path: path.to_path_buf(),
            source,
        };
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let cf_options = column_options();
        let mut names = DB::list_cf(&options, path).unwrap_or_default();
        for required in ["default", CF_OFFSETS, CF_META, CF_CHANGES] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_string());
            }
        }
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
        let db = DB::open_cf_descriptors(&options, path, descriptors).map_err(rocks)?;
        Ok(Self::over(db, path, cf_options, &names, false))
    }

    fn over(
        db: DB,
        path: &Path,
        cf_options: Options,
        families: &[String],
        secondary: bool,
    ) -> Self {
        let partitions = families
            .iter()
            .filter_map(|n| n.strip_prefix(PARTITION_CF_PREFIX)?.parse().ok())
            .collect();
        RocksStore {
            db,
            path: path.to_path_buf(),
            cf_options,
            partitions: RwLock::new(partitions),
            secondary,
        }
    }

    /// Opens a read-only view of a store that another process (ingest) has open, as a RocksDB secondary
    /// instance keeping its own files in `secondary_dir`; it sees what the primary had written when it
    /// opened, and more after [`RocksStore::catch_up`].
    pub fn open_secondary(path: &Path, secondary_dir: &Path) -> Result<Self> {
        let rocks = |source| StoreError::Rocks {
            path: path.to_path_buf(),
            source,
        };
        let mut options = Options::default();
        options.set_max_open_files(-1);
        let cf_options = column_options();
        let names = DB::list_cf(&options, path).map_err(rocks)?;
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
        let db = DB::open_cf_descriptors_as_secondary(&options, path, secondary_dir, descriptors)
            .map_err(rocks)?;
        db.try_catch_up_with_primary().map_err(rocks)?;
        Ok(Self::over(db, path, cf_options, &names, true))
    }

    /// A secondary instance: reads what the primary has written since (new partitions need a reopen).
    pub fn catch_up(&self) -> Result<()> {
        self.db.try_catch_up_with_primary().map_err(self.rocks())
    }

    /// Whether the primary has created column families (partitions) since this instance opened: a
    /// secondary instance must be reopened to read them.
    pub fn has_new_column_families(&self) -> Result<bool> {
        let names = DB::list_cf(&Options::default(), &self.path).map_err(self.rocks())?;
        Ok(names.iter().any(|name| self.db.cf_handle(name).is_none()))
    }

    /// RocksDB's latest sequence number: it grows with every write, so a reader can tell whether
    /// anything changed since it last looked (a secondary instance sees it after catching up).
    pub fn sequence_number(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rocks(&self) -> impl Fn(rocksdb::Error) -> StoreError + '_ {
        |source| StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: String, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
            reason: reason.to_string(),
        }
    }

    /// The partitions that hold state.
    pub fn partitions(&self) -> Vec<i32> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions.iter().copied().collect()
    }

    /// Makes sure partition `partition` has its column family.
    pub fn ensure_partition(&self, partition: i32) -> Result<()> {
        let name = partition_cf(partition);
        if self.db.cf_handle(&name).is_none() {
            self.db
                .create_cf(&name, &self.cf_options)
                .map_err(self.rocks())?;
        }
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partition);
        Ok(())
    }

    /// The state of `customer` in `partition`.
    pub fn get_in(&self, partition: i32, customer: u64) -> Result<Option<CustomerState>> {
        let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
            return Ok(None);
        };
        match self
            .db
            .get_pinned_cf(&cf, customer.to_be_bytes())
            .map_err(self.rocks())?
        {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(format!("customer {customer}"), e)),
            None => Ok(None),
        }
    }

    /// The state of `customer`, whichever partition holds it.
    pub fn get(&self, customer: u64) -> Result<Option<CustomerState>> {
        for partition in self.partitions() {
            if let Some(state) = self.get_in(partition, customer)? {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// The stored next offsets of `source`, by partition.
    pub fn offsets(&self, source: &SourceId) -> Result<BTreeMap<i32, i64>> {
        let Some(cf) = self.db.cf_handle(CF_OFFSETS) else {
            return Ok(BTreeMap::new());
        };
        let prefix = source.prefix();
        let mut offsets = BTreeMap::new();
        for item in self.db.iterator_cf(
            &cf,
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (key, value) = item.map_err(self.rocks())?;
            let Some(partition) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let partition = i32::from_be_bytes(
                partition
                    .try_into()
                    .map_err(|_| self.corrupt("offset key".into(), "length"))?,
            );
            let offset = i64::from_be_bytes(
                value
                    .as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("offset".into(), "length"))?,
            );
            offsets.insert(partition, offset);
        }
        Ok(offsets)
    }

    /// Writes a batch's states, offsets and watermark atomically (one RocksDB write batch, WAL-synced).
    pub fn write(&self, source: &SourceId, batch: Batch) -> Result<()> {
        let mut write = WriteBatch::default();
        for (partition, _, _) in &batch.states {
            self.ensure_partition(*partition)?;
        }
        for (partition, customer, state) in &batch.states {
            let cf = self
                .db
                .cf_handle(&partition_cf(*partition))
                .expect("ensured above");
            let bytes = postcard::to_stdvec(state).map_err(|e| self.corrupt("state".into(), e))?;
            write.put_cf(&cf, customer.to_be_bytes(), bytes);
        }
        let offsets = self
            .db
            .cf_handle(CF_OFFSETS)
            .expect("opened with the offsets family");
        for (partition, offset) in &batch.offsets {
            write.put_cf(&offsets, source.key(*partition), offset.to_be_bytes());
        }
        let meta = self
            .db
            .cf_handle(CF_META)
            .expect("opened with the meta family");
        if !batch.latest_purchases.is_empty() {
            let mut marks = self.partition_marks()?;
            for (partition, customer, time_ms) in &batch.latest_purchases {
                marks
                    .entry(*partition)
                    .or_default()
                    .observe(*customer, *time_ms);
            }
            let touched: BTreeSet<i32> = batch.latest_purchases.iter().map(|(p, ..)| *p).collect();
            for partition in touched {
                let bytes = postcard::to_stdvec(&marks[&partition])
                    .map_err(|e| self.corrupt("partition mark".into(), e))?;
                write.put_cf(&meta, mark_key(partition), bytes);
            }
            // The watermark never moves back (a new partition with older data does not take
            // `as_of` back in time).
            if let Some(watermark) = watermark::watermark(marks.values()) {
                let current = self.watermark_ms()?.unwrap_or(i64::MIN);
                if watermark > current {
                    write.put_cf(&meta, META_WATERMARK, watermark.to_be_bytes());
                }
            }
        }
        if batch.new_customers > 0 {
            let customers = self.customers()? + batch.new_customers;
            write.put_cf(&meta, META_CUSTOMERS, customers.to_be_bytes());
        }
        let changes = self
            .db
            .cf_handle(CF_CHANGES)
            .expect("opened with the changes family");
        let number = self.batch_number()? + 1;
        for (partition, customer, _) in &batch.states {
            write.put_cf(&changes, change_key(number, *partition, *customer), []);
        }
        write.put_cf(&meta, META_BATCH, number.to_be_bytes());
        let from = self.changes_from()?;
        if number > CHANGES_KEPT && number - CHANGES_KEPT > from {
            let keep_from = number - CHANGES_KEPT;
            write.delete_range_cf(&changes, from.to_be_bytes(), keep_from.to_be_bytes());
            write.put_cf(&meta, META_CHANGES_FROM, keep_from.to_be_bytes());
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(write, &options).map_err(self.rocks())
    }

    fn meta_i64(&self, key: &[u8]) -> Result<Option<i64>> {
        // A secondary instance opened while the primary was still creating the store may not have
        // the family yet: nothing written there yet.
        let Some(cf) = self.db.cf_handle(CF_META) else {
            return Ok(None);
        };
        match self.db.get_pinned_cf(&cf, key).map_err(self.rocks())? {
            Some(v) => Ok(Some(i64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("meta".into(), "length"))?,
            ))),
            None => Ok(None),
        }
    }

    /// The event-time watermark, epoch milliseconds: the rule of [`contract::watermark`] over the
    /// partitions' marks, never moving back.
    pub fn watermark_ms(&self) -> Result<Option<i64>> {
        self.meta_i64(META_WATERMARK)
    }

    /// Each partition's mark (its latest customers), as the watermark is computed from.
    pub fn partition_marks(&self) -> Result<BTreeMap<i32, PartitionMark>> {
        let mut marks = BTreeMap::new();
        let Some(cf) = self.db.cf_handle(CF_META) else {
            return Ok(marks);
        };
        for item in self.db.iterator_cf(
            &cf,
            IteratorMode::From(META_MARK_PREFIX, rocksdb::Direction::Forward),
        ) {
            let (key, value) = item.map_err(self.rocks())?;
            let Some(partition) = key.strip_prefix(META_MARK_PREFIX) else {
                break;
            };
            let partition = i32::from_be_bytes(
                partition
                    .try_into()
                    .map_err(|_| self.corrupt("partition mark key".into(), "length"))?,
            );
            let mark = postcard::from_bytes(&value)
                .map_err(|e| self.corrupt(format!("partition {partition}'s mark"), e))?;
            marks.insert(partition, mark);
        }
        Ok(marks)
    }

    /// The number of the last batch written (0 before the first).
    pub fn batch_number(&self) -> Result<u64> {
        Ok(self.meta_i64(META_BATCH)?.unwrap_or(0).max(0) as u64)
    }

    fn changes_from(&self) -> Result<u64> {
        Ok(self.meta_i64(META_CHANGES_FROM)?.unwrap_or(0).max(0) as u64)
    }

    /// The customers written by the batches after `after`, or `None` when the store no longer keeps
    /// the lists that far back (the reader must then read everything).
    pub fn changes_since(&self, after: u64) -> Result<Option<Changes>> {
        let batch = self.batch_number()?;
        if after.saturating_add(1) < self.changes_from()? {
            return Ok(None);
        }
        let mut customers = std::collections::BTreeSet::new();
        if let Some(cf) = self.db.cf_handle(CF_CHANGES) {
            let start = (after.saturating_add(1)).to_be_bytes();
            for item in self
                .db
                .iterator_cf(&cf, IteratorMode::From(&start, rocksdb::Direction::Forward))
            {
                let (key, _) = item.map_err(self.rocks())?;
                let (number, partition, customer) = parse_change_key(&key)
                    .ok_or_else(|| self.corrupt("change key".into(), "length"))?;
                if number > batch {
                    break;
                }
                customers.insert((partition, customer));
            }
        }
        Ok(Some(Changes {
            batch,
            customers: customers.into_iter().collect(),
        }))
    }

    /// Customers stored.
    pub fn customers(&self) -> Result<u64> {
        Ok(self.meta_i64(META_CUSTOMERS)?.unwrap_or(0).max(0) as u64)
    }

    /// Every customer's state, read from one consistent snapshot (safe while ingest writes), in customer
    /// order within each partition.
    pub fn all_states(&self) -> Result<Vec<(u64, CustomerState)>> {
        let snapshot = (!self.secondary).then(|| self.db.snapshot());
        let mut states = Vec::new();
        for partition in self.partitions() {
            let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
                continue;
            };
            let items = match &snapshot {
                Some(snapshot) => snapshot.iterator_cf(&cf, IteratorMode::Start),
                None => self.db.iterator_cf(&cf, IteratorMode::Start),
            };
            for item in items {
                let (key, value) = item.map_err(self.rocks())?;
                let customer = u64::from_be_bytes(
                    key.as_ref()
                        .try_into()
                        .map_err(|_| self.corrupt("customer key".into(), "length"))?,
                );
                let state = postcard::from_bytes(&value)
                    .map_err(|e| self.corrupt(format!("customer {customer}"), e))?;
                states.push((customer, state));
            }
        }
        Ok(states)
    }
}

fn change_key(batch: u64, partition: i32, customer: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(&batch.to_be_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&customer.to_be_bytes());
    key
}

fn parse_change_key(key: &[u8]) -> Option<(u64, i32, u64)> {
    let batch = u64::from_be_bytes(key.get(0..8)?.try_into().ok()?);
    let partition = i32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
    let customer = u64::from_be_bytes(key.get(12..20)?.try_into().ok()?);
    Some((batch, partition, customer))
}

fn column_options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(&Cache::new_lru_cache(64 << 20));
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options
}
