//! The batch folder: the pure core of the consumer. Messages are offered one at a time and each gets
//! an [`Outcome`]; [`BatchFolder::finish`] gives what the batch changes (the touched customers' new
//! states, the next offset of each partition, the latest purchase time applied) and its counts, for
//! the Kafka loop ([`crate::consume`]) to write in one atomic batch. No Kafka, no RocksDB: the stored
//! state of a customer seen for the first time in the batch comes from the lookup it is given.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use contract::bounds::Bounds;
use contract::event::{Rejection, TransactionEvent};
use contract::{Applied, CustomerState, LineClass};
use featurestore::Batch;

/// One consumed message, as the folder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The partition it came from (its customers' state lives there).
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The key: the customer ID as decimal text.
    pub key: Option<&'a [u8]>,
    /// The value: the event's JSON.
    pub payload: Option<&'a [u8]>,
}

/// What offering one message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new event, counted in its class (purchases and returns change the state; the other classes
    /// are counted as ignored).
    Applied(LineClass),
    /// The customer's state already holds this event ID: nothing changed.
    Duplicate,
    /// Not a valid event of its key's customer: it goes to the dead-letter topic.
    Rejected(Rejection),
}

/// Counts of what was offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events applied, by class name (`purchase`, `return`, `non_positive_price`, ...).
    pub applied: BTreeMap<&'static str, u64>,
    /// Events whose ID was applied before (read again after a restart, or sent twice).
    pub duplicates: u64,
    /// Messages rejected, by kind ([`Rejection::kind`]).
    pub rejected: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Messages rejected in all.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Counts) {
        for (class, n) in &other.applied {
            *self.applied.entry(class).or_default() += n;
        }
        self.duplicates += other.duplicates;
        for (kind, n) in &other.rejected {
            *self.rejected.entry(kind).or_default() += n;
        }
    }
}

/// What a finished batch changes, and its counts.
#[derive(Debug, Default)]
pub struct Folded {
    /// States, offsets and watermark, to be written atomically.
    pub batch: Batch,
    /// Messages offered.
    pub messages: usize,
    /// What happened to them.
    pub counts: Counts,
}

/// Folds the messages of one batch.
#[derive(Debug)]
pub struct BatchFolder {
    bounds: Bounds,
    touched: HashMap<(i32, u64), (CustomerState, bool)>,
    next_offsets: BTreeMap<i32, i64>,
    latest_purchases: HashMap<(i32, u64), i64>,
    messages: usize,
    counts: Counts,
}

impl BatchFolder {
    /// An empty batch whose events are checked against `bounds` (those of the wall-clock time the
    /// batch is read at).
    pub fn new(bounds: Bounds) -> Self {
        BatchFolder {
            bounds,
            touched: HashMap::new(),
            next_offsets: BTreeMap::new(),
            latest_purchases: HashMap::new(),
            messages: 0,
            counts: Counts::default(),
        }
    }

    /// Messages offered so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Offers one message. `stored` gives the stored state of a customer of a partition the first
    /// time the batch touches it (its error stops the batch: nothing of it is written).
    pub fn offer<E>(
        &mut self,
        message: Message<'_>,
        stored: impl FnOnce(i32, u64) -> Result<Option<CustomerState>, E>,
    ) -> Result<Outcome, E> {
        self.messages += 1;
        let next = message.offset.saturating_add(1);
        let offset = self.next_offsets.entry(message.partition).or_insert(next);
        *offset = (*offset).max(next);
        let event = match decode(message.key, message.payload, &self.bounds) {
            Ok(event) => event,
            Err(rejection) => return Ok(self.reject(rejection)),
        };
        let state = match self.touched.entry((message.partition, event.customer_id)) {
            Entry::Occupied(entry) => &mut entry.into_mut().0,
            Entry::Vacant(entry) => {
                let before = stored(message.partition, event.customer_id)?;
                let is_new = before.is_none();
                &mut entry.insert((before.unwrap_or_default(), is_new)).0
            }
        };
        Ok(match state.apply(&event) {
            Ok(Applied::New(class)) => {
                *self.counts.applied.entry(class.name()).or_default() += 1;
                if class == LineClass::Purchase {
                    let t = event.invoice_date.timestamp_millis();
                    let latest = self
                        .latest_purchases
                        .entry((message.partition, event.customer_id))
                        .or_insert(t);
                    *latest = (*latest).max(t);
                }
                Outcome::Applied(class)
            }
            Ok(Applied::Duplicate) => {
                self.counts.duplicates += 1;
                Outcome::Duplicate
            }
            Err(overflow) => {
                // Nothing of it is stored: a customer first seen with this event is not created.
                let key = (message.partition, event.customer_id);
                if self
                    .touched
                    .get(&key)
                    .is_some_and(|(state, is_new)| *is_new && *state == CustomerState::default())
                {
                    self.touched.remove(&key);
                }
                self.reject(overflow.into())
            }
        })
    }

    fn reject(&mut self, rejection: Rejection) -> Outcome {
        *self.counts.rejected.entry(rejection.kind()).or_default() += 1;
        Outcome::Rejected(rejection)
    }

    /// What the batch changes: every touched customer's state (even when only duplicates touched
    /// it), the next offset of every partition offered, each customer's latest purchase time applied
    /// (what the store's watermark is folded from).
    pub fn finish(self) -> Folded {
        let new_customers = self.touched.values().filter(|(_, is_new)| *is_new).count() as u64;
        let mut states: Vec<(i32, u64, CustomerState)> = self
            .touched
            .into_iter()
            .map(|((partition, customer), (state, _))| (partition, customer, state))
            .collect();
        states.sort_by_key(|(partition, customer, _)| (*partition, *customer));
        let mut latest_purchases: Vec<(i32, u64, i64)> = self
            .latest_purchases
            .into_iter()
            .map(|((partition, customer), t)| (partition, customer, t))
            .collect();
        latest_purchases.sort_unstable();
        Folded {
            batch: Batch {
                states,
                new_customers,
                offsets: self.next_offsets.into_iter().collect(),
                latest_purchases,
            },
            messages: self.messages,
            counts: self.counts,
        }
    }
}

/// Validates a message: the value must be a valid event within `bounds` whose customer is the
/// message key.
pub fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    bounds: &Bounds,
) -> Result<TransactionEvent, Rejection> {
    let payload = payload.ok_or_else(|| Rejection::Malformed("empty message".into()))?;
    let event = TransactionEvent::decode(payload, bounds)?;
    let key_customer = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.trim().parse::<u64>().ok());
    if key_customer != Some(event.customer_id) {
        return Err(Rejection::Invalid(format!(
            "message key {:?} is not the event's customer_id {}",
            key.map(String::from_utf8_lossy),
            event.customer_id
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn event(
        id: &str,
        customer: u64,
        invoice: &str,
        quantity: i64,
        price: f64,
        time: &str,
    ) -> Vec<u8> {
        serde_json::json!({
            "schema_version": 1, "event_id": id, "customer_id": customer, "invoice": invoice,
            "stock_code": "X", "quantity": quantity, "invoice_date": time, "price": price
        })
        .to_string()
        .into_bytes()
    }

    fn bounds() -> Bounds {
        Bounds::on(chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap())
    }

    fn ms(time: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(time)
            .unwrap()
            .timestamp_millis()
    }

    /// A store in memory: what the lookups return.
    #[derive(Default)]
    struct Stored(BTreeMap<(i32, u64), CustomerState>);

    impl Stored {
        fn lookup(
            &self,
        ) -> impl FnOnce(i32, u64) -> Result<Option<CustomerState>, Infallible> + '_ {
            |p, c| Ok(self.0.get(&(p, c)).cloned())
        }

        fn write(&mut self, batch: &Batch) {
            for (p, c, s) in &batch.states {
                self.0.insert((*p, *c), s.clone());
            }
        }
    }

    fn offer(
        folder: &mut BatchFolder,
        stored: &Stored,
        partition: i32,
        offset: i64,
        key: &str,
        payload: &[u8],
    ) -> Outcome {
        folder
            .offer(
                Message {
                    partition,
                    offset,
                    key: Some(key.as_bytes()),
                    payload: Some(payload),
                },
                stored.lookup(),
            )
            .unwrap()
    }

    #[test]
    fn events_fold_with_counts_offsets_and_the_watermark() {
        let stored = Stored::default();
        let mut folder = BatchFolder::new(bounds());
        let a = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let b = event("b", 7, "C2", -1, 1.5, "2011-01-05T10:00:00Z");
        let c = event("c", 8, "3", 0, 1.5, "2011-01-09T10:00:00Z");
        let d = event("d", 9, "4", 1, 2.0, "2011-01-03T10:00:00Z");
        assert_eq!(
            offer(&mut folder, &stored, 0, 10, "7", &a),
            Outcome::Applied(LineClass::Purchase)
        );
        assert_eq!(
            offer(&mut folder, &stored, 0, 11, "7", &b),
            Outcome::Applied(LineClass::Return)
        );
        assert_eq!(
            offer(&mut folder, &stored, 1, 4, "8", &c),
            Outcome::Applied(LineClass::NonPositiveQuantity)
        );
        assert_eq!(
            offer(&mut folder, &stored, 1, 5, "9", &d),
            Outcome::Applied(LineClass::Purchase)
        );
        assert_eq!(folder.messages(), 4);
        let folded = folder.finish();
        assert_eq!(folded.messages, 4);
        assert_eq!(folded.batch.offsets, vec![(0, 12), (1, 6)]);
        assert_eq!(folded.batch.new_customers, 3);
        // Each customer's latest purchase applied, not the latest event (the ignored line on the
        // 9th moves nothing).
        assert_eq!(
            folded.batch.latest_purchases,
            vec![
                (0, 7, ms("2011-01-02T10:00:00Z")),
                (1, 9, ms("2011-01-03T10:00:00Z"))
            ]
        );
        let counts = &folded.counts;
        assert_eq!(counts.applied["purchase"], 2);
        assert_eq!(counts.applied["return"], 1);
        assert_eq!(counts.applied["non_positive_quantity"], 1);
        assert_eq!((counts.duplicates, counts.rejected_total()), (0, 0));
        let customers: Vec<(i32, u64)> = folded
            .batch
            .states
            .iter()
            .map(|(p, c, _)| (*p, *c))
            .collect();
        assert_eq!(customers, vec![(0, 7), (1, 8), (1, 9)]);
        let seven = &folded.batch.states[0].2;
        assert_eq!(seven.purchases["1"].revenue_milli, 3_000);
        assert_eq!(seven.return_lines, 1);
    }

    #[test]
    fn redeliveries_change_nothing_within_and_across_batches() {
        let mut stored = Stored::default();
        let a = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let mut first = BatchFolder::new(bounds());
        offer(&mut first, &stored, 0, 0, "7", &a);
        assert_eq!(
            offer(&mut first, &stored, 0, 1, "7", &a),
            Outcome::Duplicate
        );
        let first = first.finish();
        assert_eq!(first.counts.duplicates, 1);
        stored.write(&first.batch);
        // After a restart the same message is read again: the stored state knows its ID.
        let mut again = BatchFolder::new(bounds());
        assert_eq!(
            offer(&mut again, &stored, 0, 0, "7", &a),
            Outcome::Duplicate
        );
        let again = again.finish();
        assert_eq!(again.batch.new_customers, 0);
        assert!(again.batch.latest_purchases.is_empty());
        assert_eq!(again.batch.states[0].2, stored.0[&(0, 7)]);
        assert_eq!(again.batch.offsets, vec![(0, 1)]);
    }

    #[test]
    fn out_of_order_events_give_the_same_state() {
        let events = [
            event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z"),
            event("b", 7, "1", 1, 3.0, "2011-01-02T09:00:00Z"),
            event("c", 7, "2", 1, 1.0, "2010-12-30T09:00:00Z"),
        ];
        let fold = |order: &[usize]| {
            let stored = Stored::default();
            let mut folder = BatchFolder::new(bounds());
            for (offset, &i) in order.iter().enumerate() {
                offer(&mut folder, &stored, 0, offset as i64, "7", &events[i]);
            }
            folder.finish()
        };
        let forward = fold(&[0, 1, 2]);
        let backward = fold(&[2, 1, 0]);
        assert_eq!(forward.batch.states, backward.batch.states);
        assert_eq!(
            forward.batch.latest_purchases,
            backward.batch.latest_purchases
        );
        let purchase = forward.batch.states[0].2.purchases["1"];
        assert_eq!(purchase.revenue_milli, 6_000);
        assert_eq!(
            purchase.time_ms,
            chrono::DateTime::parse_from_rfc3339("2011-01-02T09:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn every_rejection_kind_is_counted_and_still_advances_the_offset() {
        let stored = Stored::default();
        let mut folder = BatchFolder::new(bounds());
        let good = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let mut version = serde_json::from_slice::<serde_json::Value>(&good).unwrap();
        version["schema_version"] = 2.into();
        let version = version.to_string().into_bytes();
        let zero = event("z", 0, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let future = event("f", 7, "1", 2, 1.5, "2099-01-01T00:00:00Z");
        let blank = event(" ", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let cases: [(&str, &[u8], &str); 6] = [
            ("7", b"{not json", "malformed"),
            ("7", &version, "unsupported_version"),
            ("0", &zero, "out_of_bounds"),
            ("7", &future, "out_of_bounds"),
            ("7", &blank, "invalid"),
            ("8", &good, "invalid"), // the key is another customer
        ];
        for (offset, (key, payload, kind)) in cases.iter().enumerate() {
            match offer(&mut folder, &stored, 2, offset as i64, key, payload) {
                Outcome::Rejected(r) => assert_eq!(r.kind(), *kind, "{r}"),
                other => panic!("{other:?}"),
            }
        }
        let empty = folder
            .offer(
                Message {
                    partition: 2,
                    offset: 19,
                    key: None,
                    payload: None,
                },
                stored.lookup(),
            )
            .unwrap();
        assert!(matches!(empty, Outcome::Rejected(Rejection::Malformed(_))));
        let folded = folder.finish();
        assert_eq!(folded.counts.rejected["malformed"], 2);
        assert_eq!(folded.counts.rejected["unsupported_version"], 1);
        assert_eq!(folded.counts.rejected["invalid"], 2);
        assert_eq!(folded.counts.rejected["out_of_bounds"], 2);
        assert_eq!(folded.counts.rejected_total(), 7);
        assert!(
            folded.batch.states.is_empty(),
            "nothing of a rejected message is stored"
        );
        assert_eq!(folded.batch.offsets, vec![(2, 20)]);
    }

    #[test]
    fn a_failing_lookup_stops_the_batch() {
        let mut folder = BatchFolder::new(bounds());
        let good = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let failed = folder.offer(
            Message {
                partition: 0,
                offset: 0,
                key: Some(b"7"),
                payload: Some(&good),
            },
            |_, _| Err("disk on fire"),
        );
        assert_eq!(failed, Err("disk on fire"));
    }
}
