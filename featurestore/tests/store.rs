//! The RocksDB store: states and offsets written together survive a reopen; offsets belong to their
//! cluster and topic; a snapshot reads every partition.

use chrono::NaiveDateTime;
use contract::CustomerState;
use contract::event::TransactionEvent;
use featurestore::store::{Batch, RocksStore, SourceId};

fn state(events: &[(&str, &str, i64, f64, &str)]) -> CustomerState {
    let mut s = CustomerState::default();
    for (id, invoice, quantity, price, time) in events {
        s.apply(&TransactionEvent {
            schema_version: 1,
            event_id: id.to_string(),
            customer_id: 1,
            invoice: invoice.to_string(),
            stock_code: "X".into(),
            description: None,
            quantity: *quantity,
            invoice_date: NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc(),
            price: *price,
            country: None,
        })
        .unwrap();
    }
    s
}

fn source(cluster: &str) -> SourceId {
    SourceId {
        cluster: cluster.into(),
        topic: "transactions".into(),
    }
}

#[test]
fn states_offsets_and_watermark_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = state(&[("line:1", "1", 2, 1.5, "2011-01-01 10:00:00")]);
    let b = state(&[
        ("line:2", "2", 1, 4.0, "2011-02-01 10:00:00"),
        ("line:3", "C3", -1, 4.0, "2011-02-02 10:00:00"),
    ]);
    {
        let store = RocksStore::open(dir.path()).unwrap();
        store
            .write(
                &source("cluster-a"),
                Batch {
                    states: vec![(0, 17850, a.clone()), (3, 12680, b.clone())],
                    new_customers: 2,
                    offsets: vec![(0, 10), (3, 7)],
                    latest_purchases: vec![(0, 17850, 1_000), (3, 12680, 400)],
                },
            )
            .unwrap();
        store
            .write(
                &source("cluster-a"),
                Batch {
                    offsets: vec![(3, 9)],
                    latest_purchases: vec![(3, 12680, 500)],
                    ..Batch::default()
                },
            )
            .unwrap();
        // The partitions' minimum (a store this small has no quorum of customers).
        assert_eq!(store.watermark_ms().unwrap(), Some(500));
        // A new partition with older data does not take it back.
        store
            .write(
                &source("cluster-a"),
                Batch {
                    latest_purchases: vec![(5, 1, 100)],
                    ..Batch::default()
                },
            )
            .unwrap();
    }
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.partitions(), [0, 3]);
    assert_eq!(store.get(17850).unwrap(), Some(a.clone()));
    assert_eq!(store.get_in(3, 12680).unwrap(), Some(b.clone()));
    assert_eq!(store.get_in(0, 12680).unwrap(), None);
    assert_eq!(store.get(99).unwrap(), None);
    assert_eq!(
        store
            .offsets(&source("cluster-a"))
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [(0, 10), (3, 9)]
    );
    assert!(
        store.offsets(&source("cluster-b")).unwrap().is_empty(),
        "another cluster's offsets"
    );
    assert!(
        store
            .offsets(&SourceId {
                cluster: "cluster-a".into(),
                topic: "other".into()
            })
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.watermark_ms().unwrap(),
        Some(500),
        "the watermark only moves forward"
    );
    assert_eq!(store.customers().unwrap(), 2);
    let all = store.all_states().unwrap();
    assert_eq!(all, vec![(17850, a), (12680, b)]);
}

/// FEATURES.md "Online": the watermark is the partitions' minimum capped by the time a quorum of
/// customers reached, so one event far past the others (valid, within the bounds) leaves it where it
/// was.
#[test]
fn one_far_future_purchase_does_not_move_the_watermark() {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let day = |d: i64| 15_000 * DAY + d * DAY;
    let mut latest = Vec::new();
    for partition in [0, 1] {
        for c in 0..30u64 {
            latest.push((partition, 1000 * partition as u64 + c, day(c as i64 % 8)));
        }
    }
    store
        .write(
            &source("a"),
            Batch {
                latest_purchases: latest,
                ..Batch::default()
            },
        )
        .unwrap();
    let before = store.watermark_ms().unwrap();
    // Each partition's latest is day 7; of all customers, 6 reached day 7 and 6 more day 6: the
    // tenth latest customer is on day 6.
    assert_eq!(before, Some(day(6)));
    store
        .write(
            &source("a"),
            Batch {
                latest_purchases: vec![(0, 99, day(5_000))],
                ..Batch::default()
            },
        )
        .unwrap();
    assert_eq!(store.watermark_ms().unwrap(), before);
    assert_eq!(
        store.partition_marks().unwrap()[&0].latest(),
        Some(day(5_000))
    );
    // Once a quorum of customers on every partition has got there, it moves.
    let moved: Vec<_> = [0, 1]
        .into_iter()
        .flat_map(|p| (0..10u64).map(move |c| (p, 1000 * p as u64 + c, day(9))))
        .collect();
    store
        .write(
            &source("a"),
            Batch {
                latest_purchases: moved,
                ..Batch::default()
            },
        )
        .unwrap();
    assert_eq!(store.watermark_ms().unwrap(), Some(day(9)));
}
