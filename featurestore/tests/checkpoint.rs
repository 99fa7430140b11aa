//! Checkpoints: a partition exported from one store and imported into another holds the same
//! states, event IDs, offset, mark and counts; the importing store lists its customers as changed;
//! a checkpoint no newer than the store's copy, or of another cluster, is not loaded.

use contract::{CustomerState, Purchase, Summary};
use featurestore::store::checkpoint::checkpoints;
use featurestore::store::{Batch, CustomerWrite, RocksStore, SourceId};

fn source(cluster: &str) -> SourceId {
    SourceId {
        cluster: cluster.into(),
        topic: "transactions".into(),
    }
}

fn state(orders: u32, value: i64) -> CustomerState {
    let mut state = CustomerState {
        summary: Summary::default(),
        ..CustomerState::default()
    };
    for i in 0..orders {
        state.purchases.insert(
            format!("inv-{i}"),
            Purchase {
                time_ms: 1_000 + i64::from(i),
                revenue_milli: value,
            },
        );
    }
    state
}

/// Partition 1 holds customers 10..10+n (each with `orders` purchases and one event ID each),
/// partition 2 one customer; offsets 1 -> `offset`, 2 -> 5.
fn fill(store: &RocksStore, n: u64, offset: i64) {
    let customers = (10..10 + n)
        .map(|c| CustomerWrite::whole(1, c, &state(3, 2_000), &[&format!("e{c}")]))
        .chain([CustomerWrite::whole(2, 99, &state(1, 500), &["e99"])])
        .collect();
    store
        .write(
            &source("c"),
            Batch {
                customers,
                new_customers: n + 1,
                offsets: vec![(1, offset), (2, 5)],
                latest_purchases: (10..10 + n)
                    .map(|c| (1, c, 1_000 + c as i64))
                    .chain([(2, 99, 900)])
                    .collect(),
            },
        )
        .unwrap();
}

#[test]
fn a_partition_moves_through_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("checkpoints");
    let a = RocksStore::open(&dir.path().join("a")).unwrap();
    fill(&a, 40, 120);
    let manifest = a
        .export_partition(&source("c"), 1, &shared)
        .unwrap()
        .expect("written");
    assert_eq!(
        (manifest.next_offset, manifest.customers, manifest.events),
        (120, 40, 40)
    );
    assert!(manifest.bytes > 0);
    assert!(
        a.export_partition(&source("c"), 1, &shared)
            .unwrap()
            .is_none(),
        "nothing new since: no second checkpoint"
    );
    assert!(
        a.export_partition(&source("c"), 7, &shared)
            .unwrap()
            .is_none(),
        "a partition the store never read"
    );

    // Another store that holds an older copy of partition 1 (the first 10 customers, offset 30)
    // and partition 2.
    let b = RocksStore::open(&dir.path().join("b")).unwrap();
    fill(&b, 10, 30);
    assert_eq!(b.customers().unwrap(), 11);
    let before = b.batch_number().unwrap();
    let loaded = b
        .import_partition(&source("c"), 1, &shared)
        .unwrap()
        .expect("loaded");
    assert_eq!(loaded, manifest);
    assert_eq!(b.offsets(&source("c")).unwrap()[&1], 120);
    assert_eq!(
        b.offsets(&source("c")).unwrap()[&2],
        5,
        "other partitions untouched"
    );
    for c in 10..50 {
        assert_eq!(
            b.get_in(1, c).unwrap(),
            a.get_in(1, c).unwrap(),
            "customer {c}"
        );
        assert!(b.has_event(1, c, &format!("e{c}")).unwrap());
    }
    assert_eq!(b.get_in(2, 99).unwrap(), a.get_in(2, 99).unwrap());
    assert_eq!(b.customers().unwrap(), 41);
    assert_eq!(b.events().unwrap(), a.events().unwrap());
    assert_eq!(b.partition_marks().unwrap(), a.partition_marks().unwrap());
    assert_eq!(b.watermark_ms().unwrap(), a.watermark_ms().unwrap());
    let changes = b.changes_since(before).unwrap().unwrap();
    assert_eq!(
        changes.customers.len(),
        40,
        "the scorer rescores the partition"
    );
    assert!(
        b.import_partition(&source("c"), 1, &shared)
            .unwrap()
            .is_none(),
        "its copy is as new as the checkpoint now"
    );

    // A store reading another cluster (a new embedded broker) takes none of it.
    let c = RocksStore::open(&dir.path().join("c")).unwrap();
    assert!(
        c.import_partition(&source("other"), 1, &shared)
            .unwrap()
            .is_none()
    );
    assert!(checkpoints(&shared, &source("other"), 1).is_empty());
    assert_eq!(checkpoints(&shared, &source("c"), 1).len(), 1);
}

/// The batched lookups (what ingest asks of a batch's events) answer as the point lookups do, on
/// a store holding a partition in SST files (imported from a checkpoint) and one in its memtable,
/// for keys found, absent, of a partition without a column family, sorted or not.
#[test]
fn lookups_together_agree_with_lookups_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("checkpoints");
    let a = RocksStore::open(&dir.path().join("a")).unwrap();
    fill(&a, 40, 120);
    a.export_partition(&source("c"), 1, &shared).unwrap();
    let b = RocksStore::open(&dir.path().join("b")).unwrap();
    fill(&b, 10, 30);
    b.import_partition(&source("c"), 1, &shared).unwrap();
    let mut customers: Vec<(i32, u64)> = (5..55)
        .map(|c| (1, c))
        .chain([(2, 98), (2, 99), (3, 10)])
        .collect();
    let texts: Vec<(i32, u64, String)> = customers
        .iter()
        .flat_map(|&(p, c)| {
            [
                format!("e{c}"),
                format!("e{}", c + 1),
                "inv-0".into(),
                "inv-2".into(),
                "inv-3".into(),
            ]
            .map(|t| (p, c, t))
        })
        .collect();
    let mut keys: Vec<(i32, u64, &str)> =
        texts.iter().map(|(p, c, t)| (*p, *c, t.as_str())).collect();
    for sorted in [true, false] {
        if sorted {
            customers.sort_unstable();
            keys.sort_unstable();
        } else {
            customers.reverse();
            keys.reverse();
        }
        let one_by_one: Vec<_> = customers
            .iter()
            .map(|&(p, c)| b.summary(p, c).unwrap())
            .collect();
        let together: Vec<_> = b
            .summaries(&customers)
            .unwrap()
            .into_iter()
            .map(|s| s.map(|s| s.summary))
            .collect();
        assert_eq!(together, one_by_one);
        assert_eq!(one_by_one.iter().filter(|s| s.is_some()).count(), 41);
        let one_by_one: Vec<_> = keys
            .iter()
            .map(|&(p, c, t)| b.purchase(p, c, t).unwrap())
            .collect();
        assert_eq!(b.purchases(&keys).unwrap(), one_by_one);
        // inv-0 and inv-2 of the 40 customers of partition 1 (3 invoices each), inv-0 of 99 (1).
        assert_eq!(
            one_by_one.iter().filter(|s| s.is_some()).count(),
            40 * 2 + 1
        );
        let one_by_one: Vec<_> = keys
            .iter()
            .map(|&(p, c, t)| b.has_event(p, c, t).unwrap())
            .collect();
        assert_eq!(b.have_events(&keys).unwrap(), one_by_one);
        assert_eq!(one_by_one.iter().filter(|s| **s).count(), 41);
    }
}
