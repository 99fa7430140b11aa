//! The feature store on RocksDB: per-customer state, grouped by Kafka partition, with the consumed
//! offsets written in the same atomic batch (exactly-once in effect).
//!
//! Column families:
//! - `customers.p<N>`: state of the customers whose events come from partition N. Under the customer
//!   ID (8 bytes, big-endian) its [`Summary`] (returns and ignored lines, fixed in size); under the
//!   customer ID followed by an invoice number, that invoice's [`Purchase`] (postcard). An event
//!   changes one invoice or the summary, and only that key is rewritten: the cost of an event does not
//!   grow with the customer's history. A customer's whole [`CustomerState`] is one range scan.
//! - `events.p<N>`: the IDs of the events applied, under the customer ID followed by the event ID
//!   (value empty), so that a redelivery changes nothing. Exact: a bloom filter only spares most
//!   lookups of new IDs a disk read; an ID is a duplicate only if its key is found.
//!
//!   A partition's state is these two column families, so it can move between instances as a unit.
//!   Bloom filters and a shared block cache serve point reads.
//! - `offsets`: the next offset to read per (cluster, topic, partition). Offsets are tagged with the
//!   cluster and topic they belong to, so that those of another broker are never applied.
//! - `meta`: the store's layout version ([`LAYOUT`]; a store of another layout is refused, not
//!   misread), the event-time watermark and each partition's mark it is the minimum of (the rule of
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

use contract::watermark::{self, PartitionMark};
use contract::{CustomerState, Purchase, Summary};

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

/// What one batch changes of one customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerWrite {
    /// The partition whose state holds the customer.
    pub partition: i32,
    /// The customer ID.
    pub customer: u64,
    /// The customer's new summary, when it changed (always for a new customer).
    pub summary: Option<Summary>,
    /// The invoices whose purchase changed, with their new value.
    pub purchases: Vec<(String, Purchase)>,
    /// The IDs of the events applied (each new to the store).
    pub events: Vec<String>,
}

impl CustomerWrite {
    /// A write of a whole state (its summary and every purchase) with the given event IDs: how a
    /// state built elsewhere is stored (tests, tools).
    pub fn whole(partition: i32, customer: u64, state: &CustomerState, events: &[&str]) -> Self {
        CustomerWrite {
            partition,
            customer,
            summary: Some(state.summary.clone()),
            purchases: state
                .purchases
                .iter()
                .map(|(invoice, p)| (invoice.clone(), *p))
                .collect(),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// What one consumer batch changes, written atomically by [`RocksStore::write`].
#[derive(Debug, Default)]
pub struct Batch {
    /// What changed of each customer written.
    pub customers: Vec<CustomerWrite>,
    /// Customers among `customers` that were not stored before.
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
const EVENTS_CF_PREFIX: &str = "events.p";
const META_LAYOUT: &[u8] = b"layout";
const META_EVENTS: &[u8] = b"events";

/// The store's layout version: 2 since event IDs and invoices have their own keys (1 kept one value
/// per customer, holding every event ID and purchase).
pub const LAYOUT: i64 = 2;
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

fn events_cf(partition: i32) -> String {
    format!("{EVENTS_CF_PREFIX}{partition}")
}

fn purchase_key(customer: u64, invoice: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + invoice.len());
    key.extend_from_slice(&customer.to_be_bytes());
    key.extend_from_slice(invoice.as_bytes());
    key
}

fn event_key(customer: u64, event_id: &str) -> Vec<u8> {
    purchase_key(customer, event_id)
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
        // Every column family's memtables together (two per partition, besides the small ones):
        // without a shared budget each would grow to its own 64 MB write buffer, twice.
        options.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
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
        let store = Self::over(db, path, cf_options, &names, false);
        match store.layout()? {
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
            Some(LAYOUT) => Ok(()),
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
                    .create_cf(&name, &self.cf_options)
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

    /// Writes a batch's states, offsets and watermark atomically (one RocksDB write batch, WAL-synced).
    pub fn write(&self, source: &SourceId, batch: Batch) -> Result<()> {
        let mut write = WriteBatch::default();
        let partitions: BTreeSet<i32> = batch.customers.iter().map(|c| c.partition).collect();
        for partition in &partitions {
            self.ensure_partition(*partition)?;
        }
        let mut events = 0u64;
        for c in &batch.customers {
            let (Some(cf), Some(events_cf)) = (
                self.db.cf_handle(&partition_cf(c.partition)),
                self.db.cf_handle(&events_cf(c.partition)),
            ) else {
                unreachable!("ensured above");
            };
            if let Some(summary) = &c.summary {
                let bytes =
                    postcard::to_stdvec(summary).map_err(|e| self.corrupt("summary".into(), e))?;
                write.put_cf(&cf, c.customer.to_be_bytes(), bytes);
            }
            for (invoice, purchase) in &c.purchases {
                let bytes = postcard::to_stdvec(purchase)
                    .map_err(|e| self.corrupt("purchase".into(), e))?;
                write.put_cf(&cf, purchase_key(c.customer, invoice), bytes);
            }
            for id in &c.events {
                write.put_cf(&events_cf, event_key(c.customer, id), []);
            }
            events += c.events.len() as u64;
        }
        let meta_cf = self.meta_cf()?;
        if events > 0 {
            let total = self.events()? + events;
            write.put_cf(&meta_cf, META_EVENTS, total.to_be_bytes());
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
        for c in &batch.customers {
            write.put_cf(&changes, change_key(number, c.partition, c.customer), []);
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
        let mut states = Vec::new();
        self.for_each_state(|customer, state| {
            states.push((customer, state));
            Ok::<(), StoreError>(())
        })?;
        Ok(states)
    }

    /// Calls `f` with every customer's state in turn, read from one consistent snapshot, in customer
    /// order within each partition: the whole population without holding it in memory.
    pub fn for_each_state<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(u64, CustomerState) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let snapshot = (!self.secondary).then(|| self.db.snapshot());
        for partition in self.partitions() {
            let Some(cf) = self.db.cf_handle(&partition_cf(partition)) else {
                continue;
            };
            let items = match &snapshot {
                Some(snapshot) => snapshot.iterator_cf(&cf, IteratorMode::Start),
                None => self.db.iterator_cf(&cf, IteratorMode::Start),
            };
            let mut reader = StateReader::default();
            for item in items {
                let (key, value) = item.map_err(self.rocks())?;
                if let Some((customer, state)) = reader
                    .push(&key, &value)
                    .map_err(|e| self.corrupt(e.0, e.1))?
                {
                    f(customer, state)?;
                }
            }
            if let Some((customer, state)) = reader.finish() {
                f(customer, state)?;
            }
        }
        Ok(())
    }
}

/// Assembles customers' states from a partition's keys in order: a summary (8-byte key) followed by
/// that customer's purchases (the key and an invoice number).
#[derive(Default)]
struct StateReader {
    current: Option<(u64, CustomerState)>,
}

impl StateReader {
    /// Takes the next key; gives the previous customer's state when this key begins another one.
    fn push(
        &mut self,
        key: &[u8],
        value: &[u8],
    ) -> std::result::Result<Option<(u64, CustomerState)>, (String, String)> {
        let customer = key
            .get(..8)
            .and_then(|k| k.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| ("customer key".to_string(), "length".to_string()))?;
        if key.len() == 8 {
            let summary: Summary = postcard::from_bytes(value)
                .map_err(|e| (format!("customer {customer}'s summary"), e.to_string()))?;
            let state = CustomerState {
                purchases: BTreeMap::new(),
                summary,
            };
            return Ok(self.current.replace((customer, state)));
        }
        let invoice = String::from_utf8_lossy(&key[8..]).into_owned();
        let purchase: Purchase = postcard::from_bytes(value).map_err(|e| {
            (
                format!("customer {customer}'s invoice {invoice}"),
                e.to_string(),
            )
        })?;
        match &mut self.current {
            Some((current, state)) if *current == customer => {
                state.purchases.insert(invoice, purchase);
                Ok(None)
            }
            _ => Err((
                format!("customer {customer}'s invoice {invoice}"),
                "a purchase without its customer's summary".to_string(),
            )),
        }
    }

    fn finish(self) -> Option<(u64, CustomerState)> {
        self.current
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

/// The memory all memtables share (RocksDB's write buffer manager).
const DB_WRITE_BUFFER_BYTES: usize = 128 << 20;

/// The block cache every column family shares: data blocks, and the index and filter blocks too.
const BLOCK_CACHE_BYTES: usize = 96 << 20;

fn column_options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    // Filters and indexes in the block cache, partitioned (only the partitions in use stay), so
    // that their memory is bounded by the cache: outside it, the filters of 74 M event IDs at 100x
    // were ~90 MB of ingest's memory, growing with the store. The top levels and level 0's stay
    // pinned, as the lookups of every event need them.
    table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options
}
