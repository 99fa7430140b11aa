//! The store's keys and column families, and the options every column family is opened with.

use rocksdb::{BlockBasedOptions, Cache, MemtableFactory, Options, ReadOptions, SliceTransform};

pub(super) const CF_OFFSETS: &str = "offsets";
pub(super) const CF_META: &str = "meta";
pub(super) const CF_CHANGES: &str = "changes";
pub(super) const META_BATCH: &[u8] = b"batch";
pub(super) const META_CHANGES_FROM: &[u8] = b"changes_from";

/// How many batches' lists of changed customers the store keeps.
pub const CHANGES_KEPT: u64 = 10_000;

pub(super) const PARTITION_CF_PREFIX: &str = "customers.p";
pub(super) const EVENTS_CF_PREFIX: &str = "events.p";
pub(super) const META_LAYOUT: &[u8] = b"layout";
pub(super) const META_EVENTS: &[u8] = b"events";

/// The store's layout version: 3 since a customer's [`super::EventMark`] is stored beside its event
/// IDs; 2 since event IDs and invoices have their own keys (1 kept one value per customer, holding
/// every event ID and purchase). A store of layout 2 is read as it is (its customers have no marks)
/// and becomes layout 3 when opened to be written: a version that does not keep marks must not write
/// events under them, so it refuses a store of layout 3.
pub const LAYOUT: i64 = 3;

/// The layout before [`LAYOUT`], read as it is and upgraded when opened to be written.
pub(super) const LAYOUT_WITHOUT_MARKS: i64 = 2;
pub(super) const META_WATERMARK: &[u8] = b"watermark_ms";
pub(super) const META_MARK_PREFIX: &[u8] = b"mark.p";

pub(super) fn mark_key(partition: i32) -> Vec<u8> {
    let mut key = META_MARK_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}
pub(super) const META_CUSTOMERS: &[u8] = b"customers";

pub(super) fn partition_cf(partition: i32) -> String {
    format!("{PARTITION_CF_PREFIX}{partition}")
}

pub(super) fn events_cf(partition: i32) -> String {
    format!("{EVENTS_CF_PREFIX}{partition}")
}

pub(super) fn purchase_key(customer: u64, invoice: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + invoice.len());
    push_text_key(&mut key, customer, invoice);
    key
}

pub(super) fn event_key(customer: u64, event_id: &str) -> Vec<u8> {
    purchase_key(customer, event_id)
}

/// Appends the key of a customer's invoice or event ID (the customer, big-endian, then the text)
/// to `key`: what [`purchase_key`] and [`event_key`] hold.
pub(super) fn push_text_key(key: &mut Vec<u8>, customer: u64, text: &str) {
    key.extend_from_slice(&customer.to_be_bytes());
    key.extend_from_slice(text.as_bytes());
}

pub(super) fn change_key(batch: u64, partition: i32, customer: u64) -> [u8; 20] {
    let mut key = [0; 20];
    key[0..8].copy_from_slice(&batch.to_be_bytes());
    key[8..12].copy_from_slice(&partition.to_be_bytes());
    key[12..20].copy_from_slice(&customer.to_be_bytes());
    key
}

pub(super) fn parse_change_key(key: &[u8]) -> Option<(u64, i32, u64)> {
    let batch = u64::from_be_bytes(key.get(0..8)?.try_into().ok()?);
    let partition = i32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
    let customer = u64::from_be_bytes(key.get(12..20)?.try_into().ok()?);
    Some((batch, partition, customer))
}

/// The memory all memtables share (RocksDB's write buffer manager).
pub(super) const DB_WRITE_BUFFER_BYTES: usize = 128 << 20;

/// The block cache every column family shares: data blocks, and the index and filter blocks too.
pub(super) const BLOCK_CACHE_BYTES: usize = 96 << 20;

/// The options of the store's column families, all over one block cache.
#[derive(Clone)]
pub(super) struct ColumnOptions {
    /// The small column families' (offsets, meta, changes).
    plain: Options,
    /// A partition's states and event IDs, compacted universally, whose keys all start with the
    /// customer (8 bytes): their memtables hash the customer to a bucket holding only its keys (a
    /// lookup or an insert walks the customer's few keys, not a skip list of every key in the
    /// memtable). A scan across customers must ask for total order ([`scan_options`]). Each
    /// memtable holds 65,536 buckets (512 KB); with more customers, a bucket holds a few
    /// customers' keys.
    pub(super) keyed: Options,
}

impl ColumnOptions {
    /// Made once per store: each set made anew would have a block cache of its own.
    pub(super) fn new() -> Self {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        // Filters and indexes in the block cache, partitioned (only the partitions in use stay), so
        // that their memory is bounded by the cache: outside it, the filters of 74 M event IDs at
        // 100x were ~90 MB of ingest's memory, growing with the store. The top levels and level
        // 0's stay pinned, as the lookups of every event need them.
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
        let mut plain = Options::default();
        plain.set_block_based_table_factory(&table);
        plain.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut keyed = plain.clone();
        keyed.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
        keyed.set_memtable_factory(MemtableFactory::HashSkipList {
            bucket_count: 65_536,
            height: 4,
            branching_factor: 4,
        });
        // Universal compaction: a key is rewritten a few times over its life, not once per level
        // as in leveled compaction. These column families are written far more than read (event
        // IDs are looked up only when not after the customer's mark), and at 100x leveled
        // compaction's rewrites of the ~74 M event IDs and their states were what grew ingest's
        // CPU per event with the store's size (BENCHMARKS.md, "fifth part": 3.69 -> 2.97 µs per
        // line). The price is space: a store up to ~15% larger between full compactions, and room
        // for a column family's copy while one runs. A store written with leveled compaction
        // opens as it is: each of its levels is one sorted run.
        keyed.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
        ColumnOptions { plain, keyed }
    }

    /// The options of the column family `name`.
    pub(super) fn of(&self, name: &str) -> Options {
        if name.starts_with(PARTITION_CF_PREFIX) || name.starts_with(EVENTS_CF_PREFIX) {
            self.keyed.clone()
        } else {
            self.plain.clone()
        }
    }
}

/// Read options of a scan across customers of a partition's column family (in key order).
pub(super) fn scan_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_total_order_seek(true);
    options
}
