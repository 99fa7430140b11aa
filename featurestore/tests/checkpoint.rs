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
