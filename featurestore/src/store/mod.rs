//! The feature store on RocksDB: per-customer state, grouped by Kafka partition, with the consumed
//! offsets written in the same atomic batch (exactly-once in effect).
//!
//! Column families:
//! - `customers.p<N>`: state of the customers whose events come from partition N. Under the customer
//!   ID (8 bytes, big-endian) its [`Summary`] (returns and ignored lines, fixed in size; postcard),
//!   followed by the customer's [`EventMark`] when it has one (layout 3: the greatest event ID
//!   applied, so that an event whose ID is after it is new without a lookup); under the
//!   customer ID followed by an invoice number, that invoice's [`Purchase`] (postcard). An event
//!   changes one invoice or the summary, and only that key is rewritten: the cost of an event does not
//!   grow with the customer's history. A customer's whole [`CustomerState`] is one range scan.
//! - `events.p<N>`: the IDs of the events applied, under the customer ID followed by the event ID
//!   (value empty), so that a redelivery changes nothing. Exact: a bloom filter only spares most
//!   lookups of new IDs a disk read; an ID is a duplicate only if its key is found.
//!
//!   A partition's state is these two column families, so it can move between instances as a unit.
//!   Bloom filters and a shared block cache serve point reads. Their memtables hash the customer
//!   (the keys' first 8 bytes) to a bucket of its own keys, so that a lookup or an insert does not
//!   walk every key in memory; a scan across customers asks for total order. A batch's lookups are
//!   made together, sorted ([`RocksStore::summaries`], [`RocksStore::purchases`],
//!   [`RocksStore::have_events`]).
//! - `offsets`: the next offset to read per (cluster, topic, partition). Offsets are tagged with the
//!   cluster and topic they belong to, so that those of another broker are never applied.
//! - `meta`: the store's layout version ([`LAYOUT`]; a store of another layout is refused, not
//!   misread), the event-time watermark and each partition's mark it is the minimum of (the rule of
//!   [`contract::watermark`]: the partitions' minimum capped by the latest time a quorum of
//!   customers reached, so that a few outliers cannot move it), the number of customers, and the number of the last batch written.
//! - `changes`: which customers each batch wrote, keyed by (batch number, partition, customer), the
//!   last [`CHANGES_KEPT`] batches: a reader that remembers the batch it last saw reads only the
//!   customers written since ([`RocksStore::changes_since`]).
//!
//! Here the store and its reads; the keys and column families in `layout`, the atomic batch write
//! in `write`, the scans of every state and of the changes in `scan`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options};

use contract::watermark::PartitionMark;
use contract::{CustomerState, Purchase, Summary};

pub mod checkpoint;
mod layout;
mod scan;
mod write;

use layout::*;
pub use layout::{CHANGES_KEPT, LAYOUT};
pub use scan::Changes;
use scan::StateReader;
pub use write::{Batch, CustomerWrite, EventMark, StoredSummary};

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
    /// The store was written with another layout (by another version of clv).
    #[error(
        "feature store {path} was written by another version of clv (store layout {found}; this \
         version reads layout {LAYOUT}): rebuild it by removing the folder and running `clv ingest` \
         again, which reads the topic from its beginning (or `clv replay` the source file into a new \
         topic first if the topic no longer holds every event)"
    )]
    Layout {
        /// The database folder.
        path: PathBuf,
        /// The layout found (1: the first version's, one value per customer holding every event ID).
        found: i64,
    },
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint's folder.
        path: PathBuf,
        /// Why.
        reason: String,
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

/// The RocksDB feature store.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    cf_options: ColumnOptions,
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
        // Every column family's memtables together (two per partition, besides the small ones):
        // without a shared budget each would grow to its own 64 MB write buffer, twice.
        options.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
        // One writer; the hashed memtables of the partitions take no concurrent writes.
        options.set_allow_concurrent_memtable_write(false);
        let cf_options = ColumnOptions::new();
        let mut names = DB::list_cf(&options, path).unwrap_or_default();
        for required in ["default", CF_OFFSETS, CF_META, CF_CHANGES] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_string());
            }
        }
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.of(name)));
        let db = DB::open_cf_descriptors(&options, path, descriptors).map_err(rocks)?;
        let store = Self::over(db, path, cf_options, &names, false);
        match store.layout()? {
            // No customer of it has a mark: each is read with every lookup, and new ones get marks.
            Some(LAYOUT_WITHOUT_MARKS) => {
                let meta = store.meta_cf()?;
                store
                    .db
                    .put_cf(&meta, META_LAYOUT, LAYOUT.to_be_bytes())
                    .map_err(store.rocks())?;
            }
            Some(_) => {}
            None if store.partitions().is_empty() && store.offsets_stored()? == 0 => {
                let meta = store.meta_cf()?;
                store
                    .db
                    .put_cf(&meta, META_LAYOUT, LAYOUT.to_be_bytes())
                    .map_err(store.rocks())?;
            }
            None => {
                return Err(StoreError::Layout {
                    path: path.to_path_buf(),
                    found: 1,
                });
            }
        }
        store.check_layout()?;
        Ok(store)
    }

    /// The layout version recorded in the store (none in a new store, or one of layout 1).
    fn layout(&self) -> Result<Option<i64>> {
        self.meta_i64(META_LAYOUT)
    }

    fn check_layout(&self) -> Result<()> {
        match self.layout()? {
            // A reader reads layout 2 as it is (a primary upgrades it when it opens).
            Some(LAYOUT | LAYOUT_WITHOUT_MARKS) => Ok(()),
            Some(found) => Err(StoreError::Layout {
                path: self.path.clone(),
                found,
            }),
            // A secondary opened while the primary is creating the store: nothing to misread yet.
            None if self.partitions().is_empty() => Ok(()),
            None => Err(StoreError::Layout {
                path: self.path.clone(),
                found: 1,
            }),
        }
    }

    fn offsets_stored(&self) -> Result<usize> {
        let Some(cf) = self.db.cf_handle(CF_OFFSETS) else {
            return Ok(0);
        };
        let mut items = self.db.iterator_cf(&cf, IteratorMode::Start);
        Ok(match items.next() {
            Some(item) => item.map(|_| 1).map_err(self.rocks())?,
            None => 0,
        })
    }

    fn meta_cf(&self) -> Result<std::sync::Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(CF_META)
            .ok_or_else(|| self.corrupt("meta".into(), "no meta column family"))
    }

    fn over(
        db: DB,
        path: &Path,
        cf_options: ColumnOptions,
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
        options.set_allow_concurrent_memtable_write(false);
        let cf_options = ColumnOptions::new();
        let names = DB::list_cf(&options, path).map_err(rocks)?;
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.of(name)));
        let db = DB::open_cf_descriptors_as_secondary(&options, path, secondary_dir, descriptors)
            .map_err(rocks)?;
        db.try_catch_up_with_primary().map_err(rocks)?;
        let store = Self::over(db, path, cf_options, &names, true);
        store.check_layout()?;
        Ok(store)
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
        for name in [partition_cf(partition), events_cf(partition)] {
            if self.db.cf_handle(&name).is_none() {
                self.db
                    .create_cf(&name, &self.cf_options.of(&name))
                    .map_err(self.rocks())?;
            }
        }
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partition);
        Ok(())
    }

    /// The state of `customer` in `partition`: its summary and every purchase, one range scan.
    pub fn get_in(&self, partition: i32, customer: u64) -> Result<Option<CustomerState>> {
        let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
            return Ok(None);
        };
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound((customer + 1).to_be_bytes());
        let items = self.db.iterator_cf_opt(
            &cf,
            options,
            IteratorMode::From(&customer.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let mut reader = StateReader::default();
        for item in items {
            let (key, value) = item.map_err(self.rocks())?;
            reader
                .push(&key, &value)
                .map_err(|e| self.corrupt(e.0, e.1))?;
        }
        Ok(reader.finish().map(|(_, state)| state))
    }

    /// The summary of `customer` in `partition` (none: the customer is not stored there).
    pub fn summary(&self, partition: i32, customer: u64) -> Result<Option<Summary>> {
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
                .map_err(|e| self.corrupt(format!("customer {customer}'s summary"), e)),
            None => Ok(None),
        }
    }

    /// The stored purchase of `customer`'s invoice `invoice` in `partition`.
    pub fn purchase(
        &self,
        partition: i32,
        customer: u64,
        invoice: &str,
    ) -> Result<Option<Purchase>> {
        let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
            return Ok(None);
        };
        match self
            .db
            .get_pinned_cf(&cf, purchase_key(customer, invoice))
            .map_err(self.rocks())?
        {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(format!("customer {customer}'s invoice {invoice}"), e)),
            None => Ok(None),
        }
    }

    /// Whether the event `event_id` of `customer` was applied in `partition` (exact: a key lookup,
    /// which the bloom filter spares a disk read when the ID is new).
    pub fn has_event(&self, partition: i32, customer: u64, event_id: &str) -> Result<bool> {
        let Some(cf) = self.db.cf_handle(&events_cf(partition)) else {
            return Ok(false);
        };
        Ok(self
            .db
            .get_pinned_cf(&cf, event_key(customer, event_id))
            .map_err(self.rocks())?
            .is_some())
    }

    /// The summary and [`EventMark`] of each `(partition, customer)`, in order, looked up together
    /// (see [`RocksStore::multi_get`]).
    pub fn summaries(&self, keys: &[(i32, u64)]) -> Result<Vec<Option<StoredSummary>>> {
        self.multi_get(
            keys,
            |k| k.0,
            partition_cf,
            |k, key| key.extend_from_slice(&k.1.to_be_bytes()),
            |k, bytes| {
                StoredSummary::decode(bytes)
                    .map_err(|e| self.corrupt(format!("customer {}'s summary", k.1), e))
            },
        )
    }

    /// The [`EventMark`] of each `(partition, customer)`, in order: none for a customer not stored,
    /// or stored without one.
    pub fn marks(&self, keys: &[(i32, u64)]) -> Result<Vec<Option<EventMark>>> {
        Ok(self
            .summaries(keys)?
            .into_iter()
            .map(|s| s.and_then(|s| s.mark))
            .collect())
    }

    /// [`RocksStore::purchase`] of each `(partition, customer, invoice)`, in order, looked up
    /// together.
    pub fn purchases(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<Option<Purchase>>> {
        self.multi_get(
            keys,
            |k| k.0,
            partition_cf,
            |k, key| push_text_key(key, k.1, k.2),
            |k, bytes| {
                postcard::from_bytes(bytes)
                    .map_err(|e| self.corrupt(format!("customer {}'s invoice {}", k.1, k.2), e))
            },
        )
    }

    /// [`RocksStore::has_event`] of each `(partition, customer, event ID)`, in order, looked up
    /// together.
    pub fn have_events(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<bool>> {
        let found = self.multi_get(
            keys,
            |k| k.0,
            events_cf,
            |k, key| push_text_key(key, k.1, k.2),
            |_, _| Ok(()),
        )?;
        Ok(found.iter().map(Option::is_some).collect())
    }

    /// Point lookups of many keys: for each run of keys of one partition, one batched MultiGet
    /// in its column family `cf(partition)` (RocksDB then walks the memtable and each level once
    /// for the run, and checks filters and index blocks together); the keys' encodings
    /// (`encode`), sorted as they almost always are (keys sorted by partition, customer, then
    /// text), are told so. `read` turns each value found.
    fn multi_get<K, T>(
        &self,
        keys: &[K],
        partition: impl Fn(&K) -> i32,
        cf: impl Fn(i32) -> String,
        encode: impl Fn(&K, &mut Vec<u8>),
        read: impl Fn(&K, &[u8]) -> Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let mut found = Vec::with_capacity(keys.len());
        let (mut encoded, mut ends) = (Vec::new(), Vec::new());
        for run in keys.chunk_by(|a, b| partition(a) == partition(b)) {
            let Some(handle) = self.db.cf_handle(&cf(partition(&run[0]))) else {
                found.extend(run.iter().map(|_| None));
                continue;
            };
            encoded.clear();
            ends.clear();
            for key in run {
                encode(key, &mut encoded);
                ends.push(encoded.len());
            }
            let slices = || {
                ends.iter().scan(0, |start, &end| {
                    let key = &encoded[*start..end];
                    *start = end;
                    Some(key)
                })
            };
            // RocksDB trusts `sorted`: a wrong claim would miss keys, so it is checked.
            let sorted = slices().zip(slices().skip(1)).all(|(a, b)| a <= b);
            let values = self.db.batched_multi_get_cf(&handle, slices(), sorted);
            for (key, value) in run.iter().zip(values) {
                found.push(match value.map_err(self.rocks())? {
                    Some(bytes) => Some(read(key, &bytes)?),
                    None => None,
                });
            }
        }
        Ok(found)
    }

    /// The IDs of the events applied to `customer` in `partition`, in order (for tools and tests:
    /// a range scan).
    pub fn event_ids(&self, partition: i32, customer: u64) -> Result<Vec<String>> {
        let Some(cf) = self.db.cf_handle(&events_cf(partition)) else {
            return Ok(Vec::new());
        };
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound((customer + 1).to_be_bytes());
        let mut ids = Vec::new();
        for item in self.db.iterator_cf_opt(
            &cf,
            options,
            IteratorMode::From(&customer.to_be_bytes(), rocksdb::Direction::Forward),
        ) {
            let (key, _) = item.map_err(self.rocks())?;
            let id = key.get(8..).unwrap_or_default();
            ids.push(String::from_utf8_lossy(id).into_owned());
        }
        Ok(ids)
    }

    /// Event IDs stored in all (every event applied, once).
    pub fn events(&self) -> Result<u64> {
        Ok(self.meta_i64(META_EVENTS)?.unwrap_or(0).max(0) as u64)
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

    /// Customers stored.
    pub fn customers(&self) -> Result<u64> {
        Ok(self.meta_i64(META_CUSTOMERS)?.unwrap_or(0).max(0) as u64)
    }
}
