//! What one consumer batch changes, written in one atomic RocksDB batch with its offsets.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use contract::watermark;
use contract::{CustomerState, Purchase, Summary};
use rocksdb::WriteBatch;

use super::layout::*;
use super::{Result, RocksStore, SourceId};

/// The greatest event ID applied to a customer, in the order of [`EventMark::is_before`]: every
/// event ID the store holds of a customer that carries a mark is at or before it, so an event whose
/// ID is after it is new without a lookup. The order is the IDs' alone (not their events' times,
/// which a producer could send differently under one ID): an ID sent again is never after the mark,
/// so it is looked up and found. Producers whose IDs grow (the replay's `<source>:<line>`, sequence
/// numbers, time-ordered IDs) then cost no ID lookups, however long a customer's history; others
/// cost what they did. Stored beside the customer's event IDs, under the customer's key alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventMark {
    /// The greatest ID applied.
    pub event_id: String,
}

impl EventMark {
    /// Whether `event_id` comes after the mark: shorter IDs first, then byte by byte (so that
    /// `s:9` comes before `s:10`, as numbers do).
    pub fn is_before(&self, event_id: &str) -> bool {
        let mark = self.event_id.as_bytes();
        (mark.len(), mark) < (event_id.len(), event_id.as_bytes())
    }
}

/// What the store holds under a customer's key: its summary, and its mark when it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSummary {
    /// The summary.
    pub summary: Summary,
    /// The mark (none: every event's ID is looked up).
    pub mark: Option<EventMark>,
}

impl StoredSummary {
    /// The summary (postcard), then the mark's ID (no mark: nothing; IDs are never empty). A
    /// version that reads the summary alone reads these bytes as before.
    fn encode(summary: &Summary, mark: Option<&EventMark>) -> postcard::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        Self::encode_into(&mut bytes, summary, mark)?;
        Ok(bytes)
    }

    /// [`StoredSummary::encode`] into `bytes` (cleared first), reusing its room.
    fn encode_into(
        bytes: &mut Vec<u8>,
        summary: &Summary,
        mark: Option<&EventMark>,
    ) -> postcard::Result<()> {
        bytes.clear();
        *bytes = postcard::to_extend(summary, std::mem::take(bytes))?;
        if let Some(mark) = mark {
            bytes.extend_from_slice(mark.event_id.as_bytes());
        }
        Ok(())
    }

    /// Reads the stored value.
    pub(super) fn decode(bytes: &[u8]) -> std::result::Result<StoredSummary, String> {
        let (summary, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
        let mark = match rest {
            [] => None,
            id => Some(EventMark {
                event_id: std::str::from_utf8(id)
                    .map_err(|e| format!("its event mark: {e}"))?
                    .to_string(),
            }),
        };
        Ok(StoredSummary { summary, mark })
    }
}

/// What one batch changes of one customer. Its invoices and event IDs may borrow (the folder's
/// borrow from the batch's messages: a write allocates nothing per event for its text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerWrite<'a> {
    /// The partition whose state holds the customer.
    pub partition: i32,
    /// The customer ID.
    pub customer: u64,
    /// The customer's summary to store, with [`CustomerWrite::newest`] (the folder always gives it;
    /// none: the stored one stays, without its mark if events are written).
    pub summary: Option<Summary>,
    /// The invoices whose purchase changed, with their new value.
    pub purchases: Vec<(Cow<'a, str>, Purchase)>,
    /// The IDs of the events applied (each new to the store).
    pub events: Vec<Cow<'a, str>>,
    /// The customer's [`EventMark`] after these events, stored with the summary. A summary written
    /// without one, or events written without a summary, erase the customer's mark (its lookups
    /// are then all made): a writer that does not keep marks never leaves one behind its events.
    pub newest: Option<EventMark>,
}

impl CustomerWrite<'static> {
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
                .map(|(invoice, p)| (Cow::Owned(invoice.clone()), *p))
                .collect(),
            events: events.iter().map(|e| Cow::Owned(e.to_string())).collect(),
            newest: None,
        }
    }
}

/// What one consumer batch changes, written atomically by [`RocksStore::write`].
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// What changed of each customer written.
    pub customers: Vec<CustomerWrite<'a>>,
    /// Customers among `customers` that were not stored before.
    pub new_customers: u64,
    /// Next offset to read, per partition of `source`.
    pub offsets: Vec<(i32, i64)>,
    /// Latest purchase time applied in the batch per customer: (partition, customer, epoch ms), what
    /// the partitions' marks and the watermark are folded from.
    pub latest_purchases: Vec<(i32, u64, i64)>,
}

impl RocksStore {
    /// Writes a batch's states, offsets and watermark atomically (one RocksDB write batch, WAL-synced).
    pub fn write(&self, source: &SourceId, batch: Batch<'_>) -> Result<()> {
        let mut write = WriteBatch::default();
        let partitions: BTreeSet<i32> = batch.customers.iter().map(|c| c.partition).collect();
        // Each partition's two column families, looked up once a batch, not once a customer.
        let mut families = BTreeMap::new();
        for partition in partitions {
            self.ensure_partition(partition)?;
            let (Some(cf), Some(events_cf)) = (
                self.db.cf_handle(&partition_cf(partition)),
                self.db.cf_handle(&events_cf(partition)),
            ) else {
                unreachable!("ensured above");
            };
            families.insert(partition, (cf, events_cf));
        }
        let mut events = 0u64;
        // One key and one value buffer for the whole batch (a put copies both into the write
        // batch): writing allocates nothing per event, nor per customer.
        let (mut key, mut value) = (Vec::new(), Vec::new());
        for c in &batch.customers {
            let (cf, events_cf) = &families[&c.partition];
            match &c.summary {
                Some(summary) => {
                    StoredSummary::encode_into(&mut value, summary, c.newest.as_ref())
                        .map_err(|e| self.corrupt("summary".into(), e))?;
                    write.put_cf(cf, c.customer.to_be_bytes(), &value);
                }
                // Events without their summary: the mark, if any, no longer covers them.
                None if !c.events.is_empty() => {
                    let stored = self
                        .db
                        .get_pinned_cf(cf, c.customer.to_be_bytes())
                        .map_err(self.rocks())?;
                    if let Some(stored) = stored {
                        let stored = StoredSummary::decode(&stored).map_err(|e| {
                            self.corrupt(format!("customer {}'s summary", c.customer), e)
                        })?;
                        if stored.mark.is_some() {
                            let bytes = StoredSummary::encode(&stored.summary, None)
                                .map_err(|e| self.corrupt("summary".into(), e))?;
                            write.put_cf(cf, c.customer.to_be_bytes(), bytes);
                        }
                    }
                }
                None => {}
            }
            for (invoice, purchase) in &c.purchases {
                value.clear();
                value = postcard::to_extend(purchase, value)
                    .map_err(|e| self.corrupt("purchase".into(), e))?;
                key.clear();
                push_text_key(&mut key, c.customer, invoice);
                write.put_cf(cf, &key, &value);
            }
            for id in &c.events {
                key.clear();
                push_text_key(&mut key, c.customer, id);
                write.put_cf(events_cf, &key, []);
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
}
