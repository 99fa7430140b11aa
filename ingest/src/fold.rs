//! The batch folder: the pure core of the consumer. Messages are offered one at a time
//! ([`BatchFolder::offer`]) or a batch at once ([`BatchFolder::offer_all`], what the consumer does:
//! the lookups of all its events made together, sorted), and each gets an [`Outcome`];
//! [`BatchFolder::finish`] gives what the batch changes (the touched customers' new states, the next
//! offset of each partition, the latest purchase time applied) and its counts, for the Kafka loop
//! ([`crate::consume`]) to write in one atomic batch. No Kafka, no RocksDB: what an event needs of
//! the stored state (its customer's summary, the invoice it adds to, whether its ID was applied)
//! comes from the [`Stored`] lookups it is given, a constant number per event. Whether its ID was
//! applied is looked up only when the ID is not after its customer's [`EventMark`] (the greatest ID
//! applied, stored with the summary): a stream whose IDs grow per customer makes no ID lookups.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;

use contract::bounds::Bounds;
use contract::event::{Rejection, TransactionEvent};
use contract::{Change, CustomerState, LineClass, Purchase, Summary};
use featurestore::store::{EventMark, StoredSummary};
use featurestore::{Batch, CustomerWrite};

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
    /// A valid event on another partition than its customer's (a producer with another
    /// partitioner): nothing of it is applied here; it goes to `partition`, its customer's, where it
    /// is applied (once, by its event ID, however often it is forwarded).
    Misrouted {
        /// Its customer's partition.
        partition: i32,
    },
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
    /// Valid events on another partition than their customer's, to be forwarded there.
    pub misrouted: u64,
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
        self.misrouted += other.misrouted;
    }
}

/// What a finished batch changes, and its counts.
#[derive(Debug, Default)]
pub struct Folded<'m> {
    /// States, offsets and watermark, to be written atomically (its invoices and event IDs borrow
    /// from the batch's messages).
    pub batch: Batch<'m>,
    /// Messages offered.
    pub messages: usize,
    /// What happened to them.
    pub counts: Counts,
}

/// What the folder reads of the store: the parts of a customer's state that a batch's events touch,
/// each looked up the first time the batch needs it (its error stops the batch: nothing of it is
/// written). The store implements it with point lookups; the tests with maps.
pub trait Stored {
    /// Why a lookup failed.
    type Error;
    /// The customer's summary in the partition, with its [`EventMark`] (none: the customer is not
    /// stored there; no mark: every event's ID is looked up, what a store that keeps no marks
    /// answers).
    fn summary(&self, partition: i32, customer: u64) -> Result<Option<StoredSummary>, Self::Error>;
    /// The stored purchase of the customer's invoice.
    fn purchase(
        &self,
        partition: i32,
        customer: u64,
        invoice: &str,
    ) -> Result<Option<Purchase>, Self::Error>;
    /// Whether the customer's event `event_id` was applied (exactly: never a guess).
    fn has_event(&self, partition: i32, customer: u64, event_id: &str)
    -> Result<bool, Self::Error>;

    /// [`Stored::summary`] of each key (sorted, distinct), in order. The store looks them up
    /// together; by default, one at a time.
    fn summaries(&self, keys: &[(i32, u64)]) -> Result<Vec<Option<StoredSummary>>, Self::Error> {
        keys.iter().map(|&(p, c)| self.summary(p, c)).collect()
    }

    /// [`Stored::purchase`] of each key (sorted, distinct), in order.
    fn purchases(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<Option<Purchase>>, Self::Error> {
        keys.iter()
            .map(|&(p, c, invoice)| self.purchase(p, c, invoice))
            .collect()
    }

    /// [`Stored::has_event`] of each key (sorted, distinct), in order.
    fn have_events(&self, keys: &[(i32, u64, &str)]) -> Result<Vec<bool>, Self::Error> {
        keys.iter()
            .map(|&(p, c, id)| self.has_event(p, c, id))
            .collect()
    }
}

/// A message past decoding: an event for its customer's partition, or what became of it.
enum Admitted<'m> {
    Event(i32, TransactionEvent<'m>),
    Done(Outcome),
}

/// The lookups a batch's events need, made together before any is applied (the answers cannot
/// change within a batch: the store is written after it). Keys are sorted; a key not looked up
/// (none should be asked) goes to the store.
struct Prefetched<'a, S> {
    stored: &'a S,
    customers: Vec<(i32, u64)>,
    summaries: Vec<Option<StoredSummary>>,
    invoices: Vec<(i32, u64, &'a str)>,
    purchases: Vec<Option<Purchase>>,
    event_ids: Vec<(i32, u64, &'a str)>,
    have_events: Vec<bool>,
}

impl<'a, S: Stored> Prefetched<'a, S> {
    /// Looks up what `admitted`'s events need: the summaries (with their marks) of customers
    /// `touched` does not hold, then, of customers stored before the batch, the purchases'
    /// invoices and the IDs of the events not after their customer's mark.
    fn of(
        admitted: &'a [Admitted<'_>],
        touched: &HashMap<(i32, u64), Touched>,
        stored: &'a S,
    ) -> Result<Self, S::Error> {
        let events = || {
            admitted.iter().filter_map(|a| match a {
                Admitted::Event(partition, event) => Some((*partition, event)),
                Admitted::Done(_) => None,
            })
        };
        let mut customers: Vec<(i32, u64)> = events()
            .map(|(p, e)| (p, e.customer_id))
            .filter(|key| !touched.contains_key(key))
            .collect();
        customers.sort_unstable();
        customers.dedup();
        let summaries = stored.summaries(&customers)?;
        // Stored before the batch: with its mark (if any).
        let stored_before = |key: (i32, u64)| match touched.get(&key) {
            Some(t) => (!t.is_new).then_some(t.stored_mark.as_ref()),
            None => customers
                .binary_search(&key)
                .ok()
                .and_then(|i| summaries[i].as_ref())
                .map(|s| s.mark.as_ref()),
        };
        let (mut event_ids, mut invoices) = (Vec::new(), Vec::new());
        for (p, event) in events() {
            let Some(mark) = stored_before((p, event.customer_id)) else {
                continue;
            };
            if !mark.is_some_and(|m| m.is_before(&event.event_id)) {
                event_ids.push((p, event.customer_id, &*event.event_id));
            }
            if let Ok((_, Change::Purchase { invoice, .. })) = Change::of(event) {
                invoices.push((p, event.customer_id, invoice));
            }
        }
        for keys in [&mut event_ids, &mut invoices] {
            keys.sort_unstable();
            keys.dedup();
        }
        let have_events = stored.have_events(&event_ids)?;
        let purchases = stored.purchases(&invoices)?;
        Ok(Prefetched {
            stored,
            customers,
            summaries,
            invoices,
            purchases,
            event_ids,
            have_events,
        })
    }
}

/// Where `(p, c, text)` is in `keys` (sorted).
fn position(keys: &[(i32, u64, &str)], p: i32, c: u64, text: &str) -> Option<usize> {
    keys.binary_search_by(|k| k.0.cmp(&p).then(k.1.cmp(&c)).then(k.2.cmp(text)))
        .ok()
}

impl<S: Stored> Stored for Prefetched<'_, S> {
    type Error = S::Error;

    fn summary(&self, p: i32, c: u64) -> Result<Option<StoredSummary>, S::Error> {
        match self.customers.binary_search(&(p, c)) {
            Ok(i) => Ok(self.summaries[i].clone()),
            Err(_) => self.stored.summary(p, c),
        }
    }

    fn purchase(&self, p: i32, c: u64, invoice: &str) -> Result<Option<Purchase>, S::Error> {
        match position(&self.invoices, p, c, invoice) {
            Some(i) => Ok(self.purchases[i]),
            None => self.stored.purchase(p, c, invoice),
        }
    }

    fn has_event(&self, p: i32, c: u64, id: &str) -> Result<bool, S::Error> {
        match position(&self.event_ids, p, c, id) {
            Some(i) => Ok(self.have_events[i]),
            None => self.stored.has_event(p, c, id),
        }
    }
}

/// What a batch has read and changed of one customer.
#[derive(Debug)]
struct Touched {
    /// Not stored before the batch.
    is_new: bool,
    summary: Summary,
    /// Events the batch applied to the customer.
    applied: usize,
    /// The customer's mark before the batch: an event whose ID is after it is not among the
    /// stored ones.
    stored_mark: Option<EventMark>,
    /// Whether the customer keeps a mark (new customers do; one stored without a mark does not
    /// start one: its stored events may be after anything this batch applies).
    marked: bool,
    /// The greatest event ID applied, stored included.
    newest: Option<EventMark>,
}

/// What one event did, before it is counted.
enum Step {
    Applied(LineClass, Option<i64>),
    Duplicate,
    Rejected(Rejection),
}

/// A customer's text in a partition (an event ID, an invoice), borrowed from a message.
type Keyed<'m> = (i32, u64, Cow<'m, str>);

/// Folds the messages of one batch. What it keeps of their text (invoices, event IDs) borrows from
/// the messages (`'m`): folding an event allocates nothing of its own.
#[derive(Debug)]
pub struct BatchFolder<'m> {
    bounds: Bounds,
    partitions: Option<u32>,
    touched: HashMap<(i32, u64), Touched>,
    /// The IDs of the events the batch applied, by (partition, customer, ID).
    applied: HashSet<Keyed<'m>>,
    /// The invoices the batch's purchases touched, by (partition, customer, invoice): their value,
    /// and whether it changed.
    purchases: HashMap<Keyed<'m>, (Purchase, bool)>,
    next_offsets: BTreeMap<i32, i64>,
    latest_purchases: HashMap<(i32, u64), i64>,
    messages: usize,
    counts: Counts,
}

impl<'m> BatchFolder<'m> {
    /// An empty batch whose events are checked against `bounds` (those of the wall-clock time the
    /// batch is read at).
    pub fn new(bounds: Bounds) -> Self {
        BatchFolder {
            bounds,
            partitions: None,
            touched: HashMap::new(),
            applied: HashSet::new(),
            purchases: HashMap::new(),
            next_offsets: BTreeMap::new(),
            latest_purchases: HashMap::new(),
            messages: 0,
            counts: Counts::default(),
        }
    }

    /// Checking that each event came on its customer's partition of a topic of `partitions`
    /// ([`contract::partition`]): one that did not was produced with another partitioner, and
    /// applying it would give its customer a second state on another partition, so it is not
    /// applied but [`Outcome::Misrouted`] (to be forwarded to its customer's partition). `None`: not
    /// checked (the partition count is not known).
    pub fn with_partitions(mut self, partitions: Option<u32>) -> Self {
        self.partitions = partitions;
        self
    }

    /// Messages offered so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Offers one message. What the event needs of the stored state (the customer's summary, the
    /// invoice it adds to, whether its ID was applied) is read from `stored` the first time the batch
    /// needs it: a constant number of lookups per event, whatever the customer's history.
    pub fn offer<S: Stored>(
        &mut self,
        message: Message<'m>,
        stored: &S,
    ) -> Result<Outcome, S::Error> {
        match self.admit(message) {
            Admitted::Done(outcome) => Ok(outcome),
            Admitted::Event(partition, event) => self.apply(partition, &event, stored),
        }
    }

    /// Offers a batch's messages: the same outcomes, in order, and the same batch as offering
    /// them one by one, but what their events need of the store is looked up together, sorted,
    /// before any is applied (a store reads a batch of sorted keys in one pass down its levels).
    pub fn offer_all<S: Stored>(
        &mut self,
        messages: &[Message<'m>],
        stored: &S,
    ) -> Result<Vec<Outcome>, S::Error> {
        let admitted: Vec<Admitted> = messages.iter().map(|m| self.admit(*m)).collect();
        let prefetched = Prefetched::of(&admitted, &self.touched, stored)?;
        admitted
            .iter()
            .map(|a| match a {
                Admitted::Done(outcome) => Ok(outcome.clone()),
                Admitted::Event(partition, event) => self.apply(*partition, event, &prefetched),
            })
            .collect()
    }

    /// Counts a message and its offset, and decodes it: an event for its customer's partition, or
    /// its outcome when it is rejected or misrouted.
    fn admit(&mut self, message: Message<'m>) -> Admitted<'m> {
        self.messages += 1;
        let next = message.offset.saturating_add(1);
        let offset = self.next_offsets.entry(message.partition).or_insert(next);
        *offset = (*offset).max(next);
        let event = match decode(message.key, message.payload, &self.bounds) {
            Ok(event) => event,
            Err(rejection) => return Admitted::Done(self.count(Step::Rejected(rejection))),
        };
        if let Some(partitions) = self.partitions {
            let expected = contract::partition::of_customer(event.customer_id, partitions);
            if expected != message.partition {
                self.counts.misrouted += 1;
                return Admitted::Done(Outcome::Misrouted {
                    partition: expected,
                });
            }
        }
        Admitted::Event(message.partition, event)
    }

    /// Applies an admitted event, reading what it needs from `stored`.
    fn apply<S: Stored>(
        &mut self,
        partition: i32,
        event: &TransactionEvent<'m>,
        stored: &S,
    ) -> Result<Outcome, S::Error> {
        let customer = event.customer_id;
        let touched = match self.touched.entry((partition, customer)) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let (is_new, StoredSummary { summary, mark }) =
                    match stored.summary(partition, customer)? {
                        Some(stored) => (false, stored),
                        None => (true, StoredSummary::default()),
                    };
                let stored_mark = mark;
                entry.insert(Touched {
                    is_new,
                    summary,
                    applied: 0,
                    marked: is_new || stored_mark.is_some(),
                    newest: stored_mark.clone(),
                    stored_mark,
                })
            }
        };
        // A customer new to the store has no stored events to look up, nor has one whose mark the
        // event's ID is after.
        // The ID borrows from the message (copied only if its JSON escaped it).
        let id = (partition, customer, event.event_id.clone());
        let duplicate = self.applied.contains(&id)
            || (!touched.is_new
                && !touched
                    .stored_mark
                    .as_ref()
                    .is_some_and(|m| m.is_before(&event.event_id))
                && stored.has_event(partition, customer, &event.event_id)?);
        let step = if duplicate {
            Step::Duplicate
        } else {
            match Change::of(event) {
                Err(overflow) => Step::Rejected(overflow.into()),
                Ok((class, change)) => {
                    let applied = match change {
                        Change::Purchase {
                            invoice,
                            time_ms,
                            value_milli,
                        } => {
                            let key = (partition, customer, event.invoice.clone());
                            let entry = match self.purchases.entry(key) {
                                Entry::Occupied(entry) => Some(entry.into_mut()),
                                Entry::Vacant(entry) => {
                                    let before = match touched.is_new {
                                        true => None,
                                        false => stored.purchase(partition, customer, invoice)?,
                                    };
                                    match before {
                                        Some(before) => Some(entry.insert((before, false))),
                                        None => {
                                            let purchase = Purchase {
                                                time_ms,
                                                revenue_milli: value_milli,
                                            };
                                            entry.insert((purchase, true));
                                            None
                                        }
                                    }
                                }
                            };
                            match entry {
                                Some((purchase, changed)) => {
                                    purchase.add(time_ms, value_milli).map(|()| *changed = true)
                                }
                                None => Ok(()),
                            }
                            .map(|()| Some(time_ms))
                        }
                        other => touched.summary.apply(&other).map(|()| None),
                    };
                    match applied {
                        Ok(time) => {
                            self.applied.insert(id);
                            touched.applied += 1;
                            if touched.marked
                                && touched
                                    .newest
                                    .as_ref()
                                    .is_none_or(|m| m.is_before(&event.event_id))
                            {
                                // In place: IDs that grow reuse the mark's text (no allocation).
                                match &mut touched.newest {
                                    Some(mark) => {
                                        mark.event_id.clear();
                                        mark.event_id.push_str(&event.event_id);
                                    }
                                    None => {
                                        touched.newest = Some(EventMark {
                                            event_id: event.event_id.to_string(),
                                        })
                                    }
                                }
                            }
                            Step::Applied(class, time)
                        }
                        // Nothing of it is stored.
                        Err(overflow) => Step::Rejected(overflow.into()),
                    }
                }
            }
        };
        if let Step::Applied(_, Some(t)) = step {
            let latest = self
                .latest_purchases
                .entry((partition, customer))
                .or_insert(t);
            *latest = (*latest).max(t);
        }
        Ok(self.count(step))
    }

    fn count(&mut self, step: Step) -> Outcome {
        match step {
            Step::Applied(class, _) => {
                *self.counts.applied.entry(class.name()).or_default() += 1;
                Outcome::Applied(class)
            }
            Step::Duplicate => {
                self.counts.duplicates += 1;
                Outcome::Duplicate
            }
            Step::Rejected(rejection) => {
                *self.counts.rejected.entry(rejection.kind()).or_default() += 1;
                Outcome::Rejected(rejection)
            }
        }
    }

    /// What the batch changes: for every customer it applied an event to, the summary with the
    /// customer's mark (always: one small value the batch read anyway, and the store then never
    /// reads it again to keep its mark), the invoices that changed and the new event IDs; the
    /// next offset of every partition offered; each customer's latest purchase time applied (what the
    /// store's watermark is folded from). Customers only duplicates or rejections touched are not
    /// written.
    pub fn finish(self) -> Folded<'m> {
        let mut touched: Vec<((i32, u64), Touched)> = self
            .touched
            .into_iter()
            .filter(|(_, t)| t.applied > 0)
            .collect();
        touched.sort_unstable_by_key(|(key, _)| *key);
        let new_customers = touched.iter().filter(|(_, t)| t.is_new).count() as u64;
        // The batch's IDs and changed invoices, sorted by customer, then taken customer by
        // customer in the same order.
        let mut applied: Vec<Keyed<'m>> = self.applied.into_iter().collect();
        applied.sort_unstable();
        let mut purchases: Vec<(Keyed<'m>, Purchase)> = self
            .purchases
            .into_iter()
            .filter(|(_, (_, changed))| *changed)
            .map(|(key, (purchase, _))| (key, purchase))
            .collect();
        purchases.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (mut applied, mut purchases) = (
            applied.into_iter().peekable(),
            purchases.into_iter().peekable(),
        );
        let customers: Vec<CustomerWrite<'m>> = touched
            .into_iter()
            .map(|((partition, customer), t)| {
                let mut events = Vec::with_capacity(t.applied);
                while let Some((_, _, id)) =
                    applied.next_if(|(p, c, _)| (*p, *c) == (partition, customer))
                {
                    events.push(id);
                }
                let mut changed = Vec::new();
                while let Some(((_, _, invoice), purchase)) =
                    purchases.next_if(|((p, c, _), _)| (*p, *c) == (partition, customer))
                {
                    changed.push((invoice, purchase));
                }
                CustomerWrite {
                    partition,
                    customer,
                    summary: Some(t.summary),
                    purchases: changed,
                    events,
                    newest: t.newest.filter(|_| t.marked),
                }
            })
            .collect();
        let mut latest_purchases: Vec<(i32, u64, i64)> = self
            .latest_purchases
            .into_iter()
            .map(|((partition, customer), t)| (partition, customer, t))
            .collect();
        latest_purchases.sort_unstable();
        Folded {
            batch: Batch {
                customers,
                new_customers,
                offsets: self.next_offsets.into_iter().collect(),
                latest_purchases,
            },
            messages: self.messages,
            counts: self.counts,
        }
    }
}

/// The store's semantics in memory (states by partition and customer, and the event IDs applied):
/// what the folder's tests and the differential tests fold into, without RocksDB.
#[derive(Debug, Default)]
pub struct Memory {
    /// Each customer's state, by (partition, customer).
    pub states: BTreeMap<(i32, u64), CustomerState>,
    /// The event IDs applied, by (partition, customer, ID).
    pub events: BTreeSet<(i32, u64, String)>,
    /// The customers' marks, by (partition, customer).
    pub marks: BTreeMap<(i32, u64), EventMark>,
}

impl Stored for Memory {
    type Error = Infallible;

    fn summary(&self, p: i32, c: u64) -> Result<Option<StoredSummary>, Infallible> {
        Ok(self.states.get(&(p, c)).map(|s| StoredSummary {
            summary: s.summary.clone(),
            mark: self.marks.get(&(p, c)).cloned(),
        }))
    }

    fn purchase(&self, p: i32, c: u64, invoice: &str) -> Result<Option<Purchase>, Infallible> {
        Ok(self
            .states
            .get(&(p, c))
            .and_then(|s| s.purchases.get(invoice).copied()))
    }

    fn has_event(&self, p: i32, c: u64, id: &str) -> Result<bool, Infallible> {
        Ok(self.events.contains(&(p, c, id.to_string())))
    }
}

impl Memory {
    /// Writes what a batch changes, as the store does.
    pub fn write(&mut self, batch: &Batch) {
        for w in &batch.customers {
            let state = self.states.entry((w.partition, w.customer)).or_default();
            // As the store: the mark is written with the summary; events without it erase it.
            if let Some(summary) = &w.summary {
                state.summary = summary.clone();
                match &w.newest {
                    Some(mark) => self.marks.insert((w.partition, w.customer), mark.clone()),
                    None => self.marks.remove(&(w.partition, w.customer)),
                };
            } else if !w.events.is_empty() {
                self.marks.remove(&(w.partition, w.customer));
            }
            for (invoice, p) in &w.purchases {
                state.purchases.insert(invoice.to_string(), *p);
            }
            for id in &w.events {
                self.events
                    .insert((w.partition, w.customer, id.to_string()));
            }
        }
    }

    /// The states after one batch.
    pub fn after(batch: &Batch) -> Self {
        let mut memory = Memory::default();
        memory.write(batch);
        memory
    }
}

/// Validates a message: the value must be a valid event within `bounds` whose customer is the
/// message key.
pub fn decode<'a>(
    key: Option<&[u8]>,
    payload: Option<&'a [u8]>,
    bounds: &Bounds,
) -> Result<TransactionEvent<'a>, Rejection> {
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

    fn offer<'m>(
        folder: &mut BatchFolder<'m>,
        stored: &Memory,
        partition: i32,
        offset: i64,
        key: &'m str,
        payload: &'m [u8],
    ) -> Outcome {
        folder
            .offer(
                Message {
                    partition,
                    offset,
                    key: Some(key.as_bytes()),
                    payload: Some(payload),
                },
                stored,
            )
            .unwrap()
    }

    #[test]
    fn events_fold_with_counts_offsets_and_the_watermark() {
        let stored = Memory::default();
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
            .customers
            .iter()
            .map(|c| (c.partition, c.customer))
            .collect();
        assert_eq!(customers, vec![(0, 7), (1, 8), (1, 9)]);
        let written = &folded.batch.customers[0];
        assert_eq!(written.events, ["a", "b"]);
        let seven = &Memory::after(&folded.batch).states[&(0, 7)];
        assert_eq!(seven.purchases["1"].revenue_milli, 3_000);
        assert_eq!(seven.summary.return_lines, 1);
    }

    #[test]
    fn redeliveries_change_nothing_within_and_across_batches() {
        let mut stored = Memory::default();
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
        assert!(again.batch.customers.is_empty(), "nothing to write");
        assert_eq!(again.batch.offsets, vec![(0, 1)]);
    }

    #[test]
    fn a_later_batch_reads_and_rewrites_only_what_its_events_touch() {
        let mut stored = Memory::default();
        let line_a = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let line_b = event("b", 7, "2", 1, 4.0, "2011-01-03T10:00:00Z");
        let line_c = event("c", 7, "1", 1, 1.0, "2011-01-01T10:00:00Z");
        let line_d = event("d", 7, "C9", -1, 4.0, "2011-01-04T10:00:00Z");
        let line_e = event("e", 7, "3", 1, 1.0, "2011-01-05T10:00:00Z");
        let mut first = BatchFolder::new(bounds());
        offer(&mut first, &stored, 0, 0, "7", &line_a);
        offer(&mut first, &stored, 0, 1, "7", &line_b);
        stored.write(&first.finish().batch);
        // A later line of invoice 1 and a return: invoice 2 is neither read nor written again.
        let mut second = BatchFolder::new(bounds());
        offer(&mut second, &stored, 0, 2, "7", &line_c);
        offer(&mut second, &stored, 0, 3, "7", &line_d);
        let second = second.finish();
        assert_eq!(second.batch.new_customers, 0);
        let written = &second.batch.customers[0];
        assert_eq!(written.events, ["c", "d"]);
        assert_eq!(
            written.purchases,
            [(
                Cow::Borrowed("1"),
                Purchase {
                    time_ms: ms("2011-01-01T10:00:00Z"),
                    revenue_milli: 4_000
                }
            )]
        );
        assert_eq!(written.summary.as_ref().map(|s| s.return_lines), Some(1));
        stored.write(&second.batch);
        let state = &stored.states[&(0, 7)];
        assert_eq!(state.purchases.len(), 2);
        assert_eq!(state.purchases["2"].revenue_milli, 4_000);
        // A third batch of a new purchase only: the summary is unchanged, written again only to
        // carry the customer's new mark (one small value, read by the batch anyway).
        let mut third = BatchFolder::new(bounds());
        offer(&mut third, &stored, 0, 4, "7", &line_e);
        let third = third.finish();
        let written = &third.batch.customers[0];
        assert_eq!(written.summary.as_ref(), Some(&state.summary));
        assert_eq!(
            written.newest.as_ref().map(|m| m.event_id.as_str()),
            Some("e")
        );
        assert_eq!(written.purchases.len(), 1);
    }

    #[test]
    fn out_of_order_events_give_the_same_state() {
        let events = [
            event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z"),
            event("b", 7, "1", 1, 3.0, "2011-01-02T09:00:00Z"),
            event("c", 7, "2", 1, 1.0, "2010-12-30T09:00:00Z"),
        ];
        let fold = |order: &[usize]| {
            let stored = Memory::default();
            let mut folder = BatchFolder::new(bounds());
            for (offset, &i) in order.iter().enumerate() {
                offer(&mut folder, &stored, 0, offset as i64, "7", &events[i]);
            }
            folder.finish()
        };
        let forward = fold(&[0, 1, 2]);
        let backward = fold(&[2, 1, 0]);
        assert_eq!(forward.batch.customers, backward.batch.customers);
        assert_eq!(
            forward.batch.latest_purchases,
            backward.batch.latest_purchases
        );
        let purchase = Memory::after(&forward.batch).states[&(0, 7)].purchases["1"];
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
        let stored = Memory::default();
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
                &stored,
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
            folded.batch.customers.is_empty(),
            "nothing of a rejected message is stored"
        );
        assert_eq!(folded.batch.offsets, vec![(2, 20)]);
    }

    #[test]
    fn an_event_on_another_partition_than_its_customers_is_not_applied_but_misrouted() {
        let stored = Memory::default();
        let mut folder = BatchFolder::new(bounds()).with_partitions(Some(4));
        let right = contract::partition::of_customer(7, 4);
        let wrong = (right + 1) % 4;
        let a = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let b = event("b", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        assert_eq!(
            offer(&mut folder, &stored, right, 0, "7", &a),
            Outcome::Applied(LineClass::Purchase)
        );
        assert_eq!(
            offer(&mut folder, &stored, wrong, 0, "7", &b),
            Outcome::Misrouted { partition: right }
        );
        let folded = folder.finish();
        assert_eq!(folded.counts.misrouted, 1);
        assert_eq!(folded.counts.rejected_total(), 0);
        assert_eq!(folded.batch.customers.len(), 1);
        assert_eq!(folded.batch.customers[0].partition, right);
        assert_eq!(folded.batch.customers[0].events, vec!["a".to_string()]);
        // Its source offset is written with the batch (once it is safe on its own partition).
        assert!(folded.batch.offsets.contains(&(wrong, 1)));
    }

    /// One random message: a few customers, invoices and IDs (so that IDs repeat within and
    /// across batches and invoices are added to), some returns, some rejected or misrouted.
    fn message() -> impl proptest::strategy::Strategy<Value = (i32, String, Vec<u8>)> {
        use proptest::prelude::*;
        (0u64..6, 0u32..8, 0u32..4, -1i64..4, 0u32..3, 0u32..20).prop_map(
            |(customer, id, invoice, quantity, kind, day)| {
                let customer = customer + 1;
                let invoice = match kind {
                    0 => format!("C{invoice}"),
                    _ => invoice.to_string(),
                };
                let time = format!("2011-01-{:02}T10:00:00Z", day + 1);
                let mut payload = event(&id.to_string(), customer, &invoice, quantity, 1.25, &time);
                let mut key = customer.to_string();
                match id {
                    // A broken message and one keyed by another customer: both rejected.
                    7 => payload.truncate(9),
                    6 => key = (customer + 1).to_string(),
                    _ => {}
                }
                // Customer 6 sometimes arrives on another partition than its own: misrouted.
                let right = contract::partition::of_customer(customer, 3);
                let partition = match (customer, day % 2) {
                    (6, 0) => (right + 1) % 3,
                    _ => right,
                };
                (partition, key, payload)
            },
        )
    }

    proptest::proptest! {
        /// Over batches whose messages are drawn again and again from one pool (redeliveries within
        /// and across batches, IDs sent with other times and contents, out of order), folding with
        /// the store's marks gives the outcomes, counts, states and event IDs of folding with every
        /// ID looked up.
        #[test]
        fn the_marks_change_no_outcome(
            pool in proptest::collection::vec(message(), 1..30),
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..20),
                1..6,
            ),
        ) {
            let (mut marked, mut unmarked) = (Memory::default(), Memory::default());
            for (b, picks) in batches.iter().enumerate() {
                let messages: Vec<Message<'_>> = picks
                    .iter()
                    .enumerate()
                    .map(|(i, pick)| {
                        let (p, k, v) = &pool[pick.index(pool.len())];
                        Message { partition: *p, offset: (b * 100 + i) as i64, key: Some(k.as_bytes()), payload: Some(v.as_slice()) }
                    })
                    .collect();
                let mut with = BatchFolder::new(bounds()).with_partitions(Some(3));
                let a = with.offer_all(&messages, &Counted::new(&marked, true)).unwrap();
                let mut without = BatchFolder::new(bounds()).with_partitions(Some(3));
                let b = without.offer_all(&messages, &Counted::new(&unmarked, false)).unwrap();
                proptest::prop_assert_eq!(&a, &b);
                let (with, without) = (with.finish(), without.finish());
                proptest::prop_assert_eq!(&with.counts, &without.counts);
                marked.write(&with.batch);
                unmarked.write(&without.batch);
                proptest::prop_assert_eq!(&marked.states, &unmarked.states);
                proptest::prop_assert_eq!(&marked.events, &unmarked.events);
            }
        }

        /// Offering a batch at once gives the outcomes, the counts and the batch of offering its
        /// messages one by one, over a store that already holds some of their customers, IDs and
        /// invoices.
        #[test]
        fn offering_a_batch_at_once_is_offering_it_one_by_one(
            before in proptest::collection::vec(message(), 0..30),
            batch in proptest::collection::vec(message(), 0..60),
        ) {
            let messages = |list: &[(i32, String, Vec<u8>)]| -> Vec<(i32, i64, String, Vec<u8>)> {
                list.iter()
                    .enumerate()
                    .map(|(i, (p, k, v))| (*p, i as i64, k.clone(), v.clone()))
                    .collect()
            };
            fn as_offered(list: &[(i32, i64, String, Vec<u8>)]) -> Vec<Message<'_>> {
                list.iter()
                    .map(|(p, o, k, v)| Message {
                        partition: *p,
                        offset: *o,
                        key: Some(k.as_bytes()),
                        payload: Some(v.as_slice()),
                    })
                    .collect()
            }
            let mut stored = Memory::default();
            let earlier = messages(&before);
            let mut first = BatchFolder::new(bounds()).with_partitions(Some(3));
            for m in as_offered(&earlier) {
                first.offer(m, &stored).unwrap();
            }
            stored.write(&first.finish().batch);
            let batch = messages(&batch);
            let mut one_by_one = BatchFolder::new(bounds()).with_partitions(Some(3));
            let outcomes: Vec<Outcome> = as_offered(&batch)
                .into_iter()
                .map(|m| one_by_one.offer(m, &stored).unwrap())
                .collect();
            let mut at_once = BatchFolder::new(bounds()).with_partitions(Some(3));
            let together = at_once.offer_all(&as_offered(&batch), &stored).unwrap();
            proptest::prop_assert_eq!(&together, &outcomes);
            let (a, b) = (one_by_one.finish(), at_once.finish());
            proptest::prop_assert_eq!(a.messages, b.messages);
            proptest::prop_assert_eq!(&a.counts, &b.counts);
            proptest::prop_assert_eq!(&a.batch.customers, &b.batch.customers);
            proptest::prop_assert_eq!(a.batch.new_customers, b.batch.new_customers);
            proptest::prop_assert_eq!(&a.batch.offsets, &b.batch.offsets);
            proptest::prop_assert_eq!(&a.batch.latest_purchases, &b.batch.latest_purchases);
        }
    }

    /// The store, its ID lookups counted; without its marks (every event of a stored customer has
    /// its ID looked up) unless `marks`.
    struct Counted<'a> {
        stored: &'a Memory,
        marks: bool,
        lookups: std::cell::Cell<usize>,
    }

    impl<'a> Counted<'a> {
        fn new(stored: &'a Memory, marks: bool) -> Self {
            Counted {
                stored,
                marks,
                lookups: Default::default(),
            }
        }
    }

    impl Stored for Counted<'_> {
        type Error = Infallible;
        fn summary(&self, p: i32, c: u64) -> Result<Option<StoredSummary>, Infallible> {
            let summary = self.stored.summary(p, c)?;
            Ok(summary.map(|s| match self.marks {
                true => s,
                false => StoredSummary { mark: None, ..s },
            }))
        }
        fn purchase(&self, p: i32, c: u64, invoice: &str) -> Result<Option<Purchase>, Infallible> {
            self.stored.purchase(p, c, invoice)
        }
        fn has_event(&self, p: i32, c: u64, id: &str) -> Result<bool, Infallible> {
            self.lookups.set(self.lookups.get() + 1);
            self.stored.has_event(p, c, id)
        }
    }

    /// Offers `payloads` (customer 7's, on partition 0) to `folder` one by one, or at once.
    fn offer_seven<'m>(
        folder: &mut BatchFolder<'m>,
        payloads: &'m [Vec<u8>],
        at_once: bool,
        stored: &Counted<'_>,
    ) -> Vec<Outcome> {
        let messages: Vec<Message<'_>> = payloads
            .iter()
            .map(|p| Message {
                partition: 0,
                offset: 0,
                key: Some(b"7"),
                payload: Some(p),
            })
            .collect();
        match at_once {
            false => messages
                .into_iter()
                .map(|m| folder.offer(m, stored).unwrap())
                .collect(),
            true => folder.offer_all(&messages, stored).unwrap(),
        }
    }

    #[test]
    fn the_mark_spares_the_lookups_of_growing_ids_and_catches_every_id_sent_again() {
        let mut stored = Memory::default();
        let line = |n: u32, time: &str| event(&format!("s:{n}"), 7, &n.to_string(), 1, 1.0, time);
        // Batches of growing IDs (s:9 before s:10, as numbers), one by one and at once: after the
        // first, no ID is looked up.
        let mut n = 7;
        for batch in 0..4 {
            let payloads: Vec<Vec<u8>> = (0..4)
                .map(|_| {
                    n += 1;
                    line(n, "2011-01-02T10:00:00Z")
                })
                .collect();
            let lookups = Counted::new(&stored, true);
            let mut folder = BatchFolder::new(bounds());
            let outcomes = offer_seven(&mut folder, &payloads, batch % 2 == 1, &lookups);
            assert_eq!(outcomes, vec![Outcome::Applied(LineClass::Purchase); 4]);
            assert_eq!(
                lookups.lookups.get(),
                0,
                "batch {batch}: IDs after the mark looked up"
            );
            stored.write(&folder.finish().batch);
        }
        assert_eq!(stored.marks[&(0, 7)].event_id, "s:23");
        // Sent again, whatever its time (a lie), and an older ID never applied: looked up, one by
        // one and at once.
        let payloads = [
            line(23, "2011-02-01T10:00:00Z"),
            line(5, "2011-01-01T10:00:00Z"),
        ];
        let expected = vec![Outcome::Duplicate, Outcome::Applied(LineClass::Purchase)];
        for at_once in [false, true] {
            let lookups = Counted::new(&stored, true);
            let mut folder = BatchFolder::new(bounds());
            let outcomes = offer_seven(&mut folder, &payloads, at_once, &lookups);
            assert_eq!(outcomes, expected);
            assert_eq!(lookups.lookups.get(), 2);
            // The mark does not move back.
            let written = folder.finish().batch;
            assert_eq!(
                written.customers[0].newest.as_ref().unwrap().event_id,
                "s:23"
            );
        }
    }

    #[test]
    fn a_customer_stored_without_a_mark_does_not_start_one() {
        let mut stored = Memory::default();
        // Stored by a writer that keeps no marks (a tool, or a store of layout 2).
        let high = event("s:99", 7, "1", 1, 1.0, "2011-01-02T10:00:00Z");
        let mut first = BatchFolder::new(bounds());
        offer(&mut first, &stored, 0, 0, "7", &high);
        let mut batch = first.finish().batch;
        batch.customers[0].newest = None;
        stored.write(&batch);
        assert!(stored.marks.is_empty());
        let low = event("s:1", 7, "2", 1, 1.0, "2011-01-03T10:00:00Z");
        let mut second = BatchFolder::new(bounds());
        offer(&mut second, &stored, 0, 1, "7", &low);
        let second = second.finish();
        assert_eq!(second.batch.customers[0].newest, None);
        stored.write(&second.batch);
        // s:99 sent again is still caught: it is looked up.
        let mut third = BatchFolder::new(bounds());
        assert_eq!(
            offer(&mut third, &stored, 0, 2, "7", &high),
            Outcome::Duplicate
        );
    }

    #[test]
    fn a_failing_lookup_stops_the_batch() {
        struct Failing;
        impl Stored for Failing {
            type Error = &'static str;
            fn summary(&self, _: i32, _: u64) -> Result<Option<StoredSummary>, &'static str> {
                Err("disk on fire")
            }
            fn purchase(&self, _: i32, _: u64, _: &str) -> Result<Option<Purchase>, &'static str> {
                Err("disk on fire")
            }
            fn has_event(&self, _: i32, _: u64, _: &str) -> Result<bool, &'static str> {
                Err("disk on fire")
            }
        }
        let mut folder = BatchFolder::new(bounds());
        let good = event("a", 7, "1", 2, 1.5, "2011-01-02T10:00:00Z");
        let failed = folder.offer(
            Message {
                partition: 0,
                offset: 0,
                key: Some(b"7"),
                payload: Some(&good),
            },
            &Failing,
        );
        assert_eq!(failed, Err("disk on fire"));
        // Offered at once, the batch's lookups fail before any event is applied.
        let message = Message {
            partition: 0,
            offset: 0,
            key: Some(b"7"),
            payload: Some(&good),
        };
        let failed = BatchFolder::new(bounds()).offer_all(&[message], &Failing);
        assert_eq!(failed, Err("disk on fire"));
    }
}
