//! What ingest allocates per event, counted, on its path past the broker: a batch's messages
//! offered to the folder (decoding, the store's lookups, the fold), finished, and written to a
//! real RocksDB store. Counted by a global allocator that counts the Rust heap's allocations
//! (RocksDB's own C++ allocations are not counted). The stream is shaped as a retailer's: invoices
//! of many lines, customers coming back across batches, event IDs growing as the replay's do.

#![allow(unsafe_code)] // the counting allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDate, TimeDelta};
use contract::bounds::Bounds;
use contract::event::TransactionEvent;
use featurestore::{RocksStore, SourceId};
use ingest::fold::{BatchFolder, Message, Outcome};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator as it came.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PARTITIONS: u32 = 4;
const BATCH: usize = 5_000;
const CUSTOMERS: u64 = 300;
const LINES_PER_INVOICE: u64 = 20;

/// The stream's messages: (partition, key, value), in time order. Invoice `n` is customer
/// `n % CUSTOMERS`'s, each of its lines an event with the next ID (`s:<line>`); some lines are
/// returns and some are ignored by the contract (a zero price), as in real data.
fn stream(lines: u64) -> Vec<(i32, contract::partition::Key, Vec<u8>)> {
    let start = NaiveDate::from_ymd_opt(2011, 1, 1)
        .and_then(|d| d.and_hms_opt(8, 0, 0))
        .expect("a date")
        .and_utc();
    (0..lines)
        .map(|line| {
            let invoice = line / LINES_PER_INVOICE;
            let customer = 12_000 + invoice % CUSTOMERS;
            let (number, quantity, price) = match line % 50 {
                7 => (format!("C{invoice}"), -1, 2.5),
                9 => (invoice.to_string(), 1, 0.0),
                _ => (invoice.to_string(), 6, 1.25),
            };
            let event = TransactionEvent {
                schema_version: 1,
                event_id: format!("s:{line}").into(),
                customer_id: customer,
                invoice: number.into(),
                stock_code: format!("{}", 20_000 + line % 997).into(),
                description: Some("WHITE HANGING HEART T-LIGHT HOLDER".into()),
                quantity,
                invoice_date: start + TimeDelta::minutes(invoice as i64),
                price,
                country: Some("United Kingdom".into()),
            };
            let partition = contract::partition::of_customer(customer, PARTITIONS);
            (
                partition,
                contract::partition::key(customer),
                event.encode(),
            )
        })
        .collect()
}

/// Allocations while `f` runs.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = f();
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

#[test]
fn an_event_costs_at_most_one_allocation_from_message_to_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RocksStore::open(&dir.path().join("store")).expect("a store");
    let source = SourceId {
        cluster: "c".into(),
        topic: "transactions".into(),
    };
    let bounds = Bounds::on(NaiveDate::from_ymd_opt(2011, 12, 10).expect("a date"));
    let stream = stream(12 * BATCH as u64);
    let (mut fold, mut finish, mut write, mut events) = (0, 0, 0, 0);
    for (b, batch) in stream.chunks(BATCH).enumerate() {
        let offset = (b * BATCH) as i64;
        let messages: Vec<Message<'_>> = batch
            .iter()
            .enumerate()
            .map(|(i, (partition, key, value))| Message {
                partition: *partition,
                offset: offset + i as i64,
                key: Some(key.as_bytes()),
                payload: Some(value),
            })
            .collect();
        let mut folder = BatchFolder::new(bounds).with_partitions(Some(PARTITIONS));
        let (outcomes, a) = counted(|| folder.offer_all(&messages, &store));
        let outcomes = outcomes.expect("the batch folds");
        assert!(
            outcomes.iter().all(|o| matches!(o, Outcome::Applied(_))),
            "every event is new and valid"
        );
        let (folded, f) = counted(|| folder.finish());
        let (written, w) = counted(|| store.write(&source, folded.batch));
        written.expect("the batch is written");
        // The first two batches meet every customer first: the store is then warm.
        if b >= 2 {
            (fold, finish, write, events) = (fold + a, finish + f, write + w, events + batch.len());
        }
    }
    let per_event = |n: u64| n as f64 / events as f64;
    let total = per_event(fold + finish + write);
    eprintln!(
        "allocations per event: {total:.3} (fold {:.3}, finish {:.3}, write {:.3}) over {events} events",
        per_event(fold),
        per_event(finish),
        per_event(write),
    );
    assert_eq!(store.events().expect("the count"), stream.len() as u64);
    assert!(total <= 1.0, "{total:.3} allocations per event");
}
