//! Scans: every customer's state from one snapshot, and the customers each batch changed.

use std::collections::BTreeMap;

use contract::{CustomerState, Purchase, Summary};
use rocksdb::IteratorMode;

use super::layout::*;
use super::{Result, RocksStore, StoreError};

/// The customers written after a batch, as [`RocksStore::changes_since`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The last batch written.
    pub batch: u64,
    /// (partition, customer) written after the given batch, each once, in key order.
    pub customers: Vec<(i32, u64)>,
}

impl RocksStore {
    /// The number of the last batch written (0 before the first).
    pub fn batch_number(&self) -> Result<u64> {
        Ok(self.meta_i64(META_BATCH)?.unwrap_or(0).max(0) as u64)
    }

    pub(super) fn changes_from(&self) -> Result<u64> {
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
                Some(snapshot) => {
                    snapshot.iterator_cf_opt(&cf, scan_options(), IteratorMode::Start)
                }
                None => self
                    .db
                    .iterator_cf_opt(&cf, scan_options(), IteratorMode::Start),
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
pub(super) struct StateReader {
    current: Option<(u64, CustomerState)>,
}

impl StateReader {
    /// Takes the next key; gives the previous customer's state when this key begins another one.
    pub(super) fn push(
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

    pub(super) fn finish(self) -> Option<(u64, CustomerState)> {
        self.current
    }
}
