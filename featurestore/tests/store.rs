//! The RocksDB store: states and offsets written together survive a reopen; offsets belong to their
//! cluster and topic; a snapshot reads every partition.

use chrono::NaiveDateTime;
use contract::CustomerState;
use contract::event::TransactionEvent;
use featurestore::store::{Batch, CustomerWrite, RocksStore, SourceId};

fn state(events: &[(&str, &str, i64, f64, &str)]) -> CustomerState {
    let mut s = CustomerState::default();
    for (id, invoice, quantity, price, time) in events {
        s.apply(&TransactionEvent {
            schema_version: 1,
            event_id: (*id).into(),
            customer_id: 1,
            invoice: (*invoice).into(),
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
                    customers: vec![
                        CustomerWrite::whole(0, 17850, &a, &["a1"]),
                        CustomerWrite::whole(3, 12680, &b, &["b1"]),
                    ],
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

/// Layout 2: an event changes one invoice or the summary, and its ID is found exactly.
#[test]
fn invoices_and_event_ids_have_their_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let a = state(&[
        ("x", "1", 2, 1.5, "2011-01-01 10:00:00"),
        ("y", "2", 1, 4.0, "2011-01-02 10:00:00"),
    ]);
    let first = CustomerWrite::whole(0, 7, &a, &["online_retail_II:1", "online_retail_II:2"]);
    store
        .write(
            &source("a"),
            Batch {
                customers: vec![first],
                new_customers: 1,
                ..Batch::default()
            },
        )
        .unwrap();
    // A neighbour whose ID is a prefix of customer 7's keys must not see them.
    let neighbour = CustomerWrite::whole(0, 8, &a, &["online_retail_II:1"]);
    store
        .write(
            &source("a"),
            Batch {
                customers: vec![neighbour],
                new_customers: 1,
                ..Batch::default()
            },
        )
        .unwrap();
    // A later batch rewrites invoice 2 alone.
    let later = contract::Purchase {
        time_ms: 5,
        revenue_milli: 9_000,
    };
    store
        .write(
            &source("a"),
            Batch {
                customers: vec![CustomerWrite {
                    partition: 0,
                    customer: 7,
                    summary: None,
                    purchases: vec![("2".into(), later)],
                    events: vec!["online_retail_II:3".into()],
                    newest: None,
                }],
                ..Batch::default()
            },
        )
        .unwrap();
    assert!(store.has_event(0, 7, "online_retail_II:1").unwrap());
    assert!(store.has_event(0, 7, "online_retail_II:3").unwrap());
    assert!(!store.has_event(0, 7, "online_retail_II:4").unwrap());
    assert!(
        !store.has_event(0, 7, "online_retail_II:").unwrap(),
        "a prefix of an ID is another ID"
    );
    assert!(!store.has_event(0, 8, "online_retail_II:2").unwrap());
    assert!(
        !store.has_event(1, 7, "online_retail_II:1").unwrap(),
        "another partition"
    );
    assert_eq!(
        store.event_ids(0, 7).unwrap(),
        [
            "online_retail_II:1",
            "online_retail_II:2",
            "online_retail_II:3"
        ]
    );
    assert_eq!(store.events().unwrap(), 4);
    assert_eq!(store.purchase(0, 7, "2").unwrap(), Some(later));
    assert_eq!(
        store.purchase(0, 8, "2").unwrap(),
        a.purchases.get("2").copied()
    );
    let seven = store.get_in(0, 7).unwrap().unwrap();
    assert_eq!(seven.purchases["1"], a.purchases["1"]);
    assert_eq!(seven.purchases["2"], later);
    assert_eq!(seven.summary, a.summary);
    assert_eq!(store.get_in(0, 8).unwrap(), Some(a.clone()));
    assert_eq!(store.all_states().unwrap().len(), 2);
    assert_eq!(store.customers().unwrap(), 2);
}

/// A customer's mark is stored after its summary and read back with it; a summary written without
/// one, or events written without the summary, erase it; the summary and the state read as before.
#[test]
fn a_mark_is_kept_with_the_summary_and_erased_by_writes_without_one() {
    use featurestore::store::EventMark;
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mark = |id: &str| EventMark {
        event_id: id.into(),
    };
    let returned = state(&[("r", "C1", -1, 2.0, "2011-01-02 10:00:00")]);
    let write = |c: CustomerWrite| {
        store
            .write(
                &source("a"),
                Batch {
                    customers: vec![c],
                    offsets: vec![(1, 1)],
                    ..Batch::default()
                },
            )
            .unwrap();
    };
    let whole = |events: &[&str], newest: Option<EventMark>| {
        let mut c = CustomerWrite::whole(1, 7, &returned, events);
        c.newest = newest;
        c
    };
    write(whole(&["e1", "e2"], Some(mark("e2"))));
    assert_eq!(
        store.marks(&[(1, 7), (1, 8), (2, 7)]).unwrap(),
        vec![Some(mark("e2")), None, None]
    );
    // The summary, the state and the listing read as before.
    assert_eq!(store.summary(1, 7).unwrap(), Some(returned.summary.clone()));
    assert_eq!(store.get(7).unwrap(), Some(returned.clone()));
    assert_eq!(store.event_ids(1, 7).unwrap(), ["e1", "e2"]);
    // A checkpoint carries the mark with the events it covers.
    let checkpoints = tempfile::tempdir().unwrap();
    let manifest = store
        .export_partition(&source("a"), 1, checkpoints.path())
        .unwrap()
        .unwrap();
    assert_eq!((manifest.customers, manifest.events), (1, 2));
    let other_dir = tempfile::tempdir().unwrap();
    let other = RocksStore::open(other_dir.path()).unwrap();
    other
        .import_partition(&source("a"), 1, checkpoints.path())
        .unwrap()
        .unwrap();
    assert_eq!(other.marks(&[(1, 7)]).unwrap(), vec![Some(mark("e2"))]);
    assert_eq!(other.get(7).unwrap(), Some(returned.clone()));
    // Checkpoints live in a folder of their layout: a version of layout 2 (which would write events
    // without moving their marks) finds none of them, and this one none of its.
    let topic = checkpoints.path().join("transactions");
    std::fs::rename(topic.join("p1.layout3"), topic.join("p1")).unwrap();
    let third_dir = tempfile::tempdir().unwrap();
    let third = RocksStore::open(third_dir.path()).unwrap();
    assert!(
        third
            .import_partition(&source("a"), 1, checkpoints.path())
            .unwrap()
            .is_none()
    );
    // Events without the summary erase the mark (the summary stays).
    write(whole(&["e3"], Some(mark("e3"))));
    assert_eq!(store.marks(&[(1, 7)]).unwrap(), vec![Some(mark("e3"))]);
    write(CustomerWrite {
        partition: 1,
        customer: 7,
        events: vec!["e4".into()],
        newest: Some(mark("e4")),
        ..CustomerWrite::default()
    });
    assert_eq!(store.marks(&[(1, 7)]).unwrap(), vec![None]);
    assert_eq!(store.summary(1, 7).unwrap(), Some(returned.summary.clone()));
    // So does a summary written without one; a write of neither events nor summary keeps it.
    write(whole(&["e5"], Some(mark("e5"))));
    write(CustomerWrite {
        partition: 1,
        customer: 7,
        ..CustomerWrite::default()
    });
    assert_eq!(store.marks(&[(1, 7)]).unwrap(), vec![Some(mark("e5"))]);
    write(whole(&[], None));
    assert_eq!(store.marks(&[(1, 7)]).unwrap(), vec![None]);
    assert_eq!(
        store.event_ids(1, 7).unwrap(),
        ["e1", "e2", "e3", "e4", "e5"]
    );
    assert_eq!(store.events().unwrap(), 5);
}

/// A store of layout 2 (before marks) opens and becomes layout 3; its customers have no marks.
#[test]
fn a_store_of_layout_two_is_upgraded_when_opened_to_be_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksStore::open(dir.path()).unwrap();
        store
            .write(
                &source("a"),
                Batch {
                    customers: vec![CustomerWrite::whole(
                        0,
                        7,
                        &CustomerState::default(),
                        &["e1"],
                    )],
                    offsets: vec![(0, 1)],
                    ..Batch::default()
                },
            )
            .unwrap();
    }
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(false);
        let names = rocksdb::DB::list_cf(&options, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&options, dir.path(), &names).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(&meta, b"layout", 2i64.to_be_bytes()).unwrap();
    }
    // A reader reads it as it is.
    let secondary = tempfile::tempdir().unwrap();
    let reader = RocksStore::open_secondary(dir.path(), secondary.path()).unwrap();
    assert!(reader.has_event(0, 7, "e1").unwrap());
    drop(reader);
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.marks(&[(0, 7)]).unwrap(), vec![None]);
    assert!(store.has_event(0, 7, "e1").unwrap());
    drop(store);
    // Now layout 3: a layout it does not know is refused.
    {
        let mut options = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&options, dir.path()).unwrap();
        options.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&options, dir.path(), &names).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        assert_eq!(
            db.get_cf(&meta, b"layout").unwrap().unwrap(),
            featurestore::LAYOUT.to_be_bytes()
        );
        db.put_cf(&meta, b"layout", 4i64.to_be_bytes()).unwrap();
    }
    let refused = RocksStore::open(dir.path()).unwrap_err().to_string();
    assert!(refused.contains("store layout 4"), "{refused}");
}

/// A store written by the first version (one value per customer, no layout key) is refused with
/// what to do, never misread.
#[test]
fn a_store_of_the_first_layout_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), ["offsets", "meta", "customers.p0"])
            .unwrap();
        let cf = db.cf_handle("customers.p0").unwrap();
        db.put_cf(&cf, 17850u64.to_be_bytes(), b"old state")
            .unwrap();
    }
    let refused = RocksStore::open(dir.path()).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("store layout 1"), "{message}");
    assert!(message.contains("removing the folder"), "{message}");
    let secondary = tempfile::tempdir().unwrap();
    assert!(RocksStore::open_secondary(dir.path(), secondary.path()).is_err());
    // A store of this layout opens again.
    let fresh = tempfile::tempdir().unwrap();
    drop(RocksStore::open(fresh.path()).unwrap());
    RocksStore::open(fresh.path()).unwrap();
}

/// The partitions' column families are compacted universally, and a store a version before wrote
/// with leveled compaction (its states and event IDs at several levels) opens as it is: everything
/// reads back, and new writes land beside it.
#[test]
fn a_store_compacted_by_levels_opens_and_is_compacted_universally() {
    let dir = tempfile::tempdir().unwrap();
    let ids = |customer: u64| [format!("a{customer}"), format!("b{customer}")];
    let batch = |customers: std::ops::Range<u64>, offset: i64| {
        let s = state(&[("line:1", "1", 2, 1.5, "2011-01-01 10:00:00")]);
        let new_customers = customers.end - customers.start;
        let writes = customers
            .map(|c| {
                let ids = ids(c);
                CustomerWrite::whole(0, c, &s, &[ids[0].as_str(), ids[1].as_str()])
            })
            .collect();
        Batch {
            customers: writes,
            new_customers,
            offsets: vec![(0, offset)],
            ..Batch::default()
        }
    };
    RocksStore::open(dir.path())
        .unwrap()
        .write(&source("a"), batch(0..2_000, 1))
        .unwrap();
    // Compacted by levels, as a version before this one did: the files leave level 0.
    {
        let options = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&options, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&options, dir.path(), &names).unwrap();
        for name in ["customers.p0", "events.p0"] {
            let cf = db.cf_handle(name).unwrap();
            db.flush_cf(&cf).unwrap();
            db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
            let above_zero: u64 = (1..7)
                .map(|level| {
                    let property = format!("rocksdb.num-files-at-level{level}");
                    db.property_int_value_cf(&cf, property.as_str())
                        .unwrap()
                        .unwrap()
                })
                .sum();
            assert!(above_zero > 0, "{name}: no file below level 0");
        }
    }
    {
        let store = RocksStore::open(dir.path()).unwrap();
        assert!(store.has_event(0, 1_999, "b1999").unwrap());
        store.write(&source("a"), batch(2_000..4_000, 2)).unwrap();
    }
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.customers().unwrap(), 4_000);
    assert_eq!(store.events().unwrap(), 8_000);
    for customer in [0, 1_999, 2_000, 3_999] {
        assert_eq!(store.event_ids(0, customer).unwrap(), ids(customer));
        assert!(store.get_in(0, customer).unwrap().is_some());
    }
    // The options RocksDB recorded when the store last opened.
    let latest = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("OPTIONS-"))
        })
        .max_by_key(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name["OPTIONS-".len()..].parse::<u64>().unwrap_or(0)
        })
        .unwrap();
    let options = std::fs::read_to_string(latest).unwrap();
    for name in ["customers.p0", "events.p0", "meta"] {
        let section = options
            .split("[CFOptions \"")
            .find(|s| s.starts_with(&format!("{name}\"")))
            .unwrap_or_else(|| panic!("no options of {name}"));
        let universal = section.contains("compaction_style=kCompactionStyleUniversal");
        assert_eq!(universal, name != "meta", "{name}'s compaction style");
    }
}
