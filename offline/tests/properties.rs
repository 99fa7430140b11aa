//! Properties of the contract's two implementations on random small histories, some lines outside the
//! bounds: the offline snapshot does not depend on row order, and the per-event fold (what ingest
//! applies, the bounds first) agrees with it whatever order events arrive in.

use chrono::{Duration, NaiveDate};
use contract::CustomerState;
use contract::bounds::Bounds;
use contract::event::TransactionEvent;
use dataset::Line;
use dataset::normalised::to_frame;
use offline::SnapshotSpec;
use offline::lines::snapshot;
use offline::states::{differences, from_states};
use polars::prelude::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A small random history: few customers and invoices so that gaps, same-time invoices, returns and
/// ignored lines all occur.
fn lines() -> impl Strategy<Value = Vec<Line>> {
    let one = (
        0u32..12,                                 // invoice
        prop::option::weighted(0.9, 1u64..5),     // customer
        -2i64..6,                                 // quantity
        0u32..4000,                               // price in thousandths
        0i64..400 * 24,                           // hours since 2010-09-01
        prop::bool::weighted(0.1),                // cancellation
        prop::option::weighted(0.18, 0usize..12), // one field out of (or at the edge of) the bounds, or a non-sale invoice
    )
        .prop_map(
            |(invoice, customer, quantity, price, hours, cancel, hostile)| {
                let mut line = Line {
                    invoice: format!("{}{}", if cancel { "C" } else { "" }, 500_000 + invoice),
                    stock_code: "22423".into(),
                    description: None,
                    quantity,
                    invoice_date: NaiveDate::from_ymd_opt(2010, 9, 1)
                        .unwrap()
                        .and_hms_opt(0, 0, 0)
                        .unwrap()
                        + Duration::hours(hours),
                    price: f64::from(price) / 1000.0,
                    customer_id: customer,
                    country: "United Kingdom".into(),
                };
                match hostile {
                    Some(0) => {
                        line.invoice_date = NaiveDate::from_ymd_opt(1989, 12, 31)
                            .unwrap()
                            .and_hms_opt(23, 59, 59)
                            .unwrap()
                    }
                    Some(1) => {
                        line.invoice_date = NaiveDate::from_ymd_opt(2099, 1, 1)
                            .unwrap()
                            .and_hms_opt(0, 0, 0)
                            .unwrap()
                    }
                    Some(2) => line.quantity = 10_000_001,
                    Some(3) => line.quantity = 10_000_000,
                    Some(4) => line.price = 100_000_000.5,
                    Some(5) => line.price = 100_000_000.0,
                    Some(6) => line.customer_id = Some(1 << 53),
                    Some(7) => line.invoice = format!("{:0>65}", line.invoice),
                    Some(8) => line.description = Some("d".repeat(1025)),
                    Some(9) => line.country = "c".repeat(129),
                    Some(10) => line.invoice = format!("A{}", line.invoice),
                    Some(11) => line.invoice.push('x'),
                    _ => {}
                }
                line
            },
        );
    prop::collection::vec(one, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shuffling_rows_changes_nothing(
        (lines, order) in lines().prop_flat_map(|v| {
            let n = v.len() as IdxSize;
            (Just(v), Just((0..n).collect::<Vec<IdxSize>>()).prop_shuffle())
        })
    ) {
        let spec = SnapshotSpec { cutoff: NaiveDate::from_ymd_opt(2011, 3, 1).unwrap(), horizon_months: 6 };
        let normalised = to_frame(&lines).unwrap();
        // The same normalised file, rows stored in another order (each keeps its line number).
        let shuffled = normalised.take(&IdxCa::from_vec("order".into(), order)).unwrap();
        let a = snapshot(normalised.lazy(), &spec).unwrap();
        let b = snapshot(shuffled.lazy(), &spec).unwrap();
        prop_assert!(a.equals_missing(&b), "\n{a}\n!=\n{b}");
    }

    #[test]
    fn the_fold_agrees_with_the_offline_snapshot_in_any_order(
        (lines, order) in lines().prop_flat_map(|v| {
            let n = v.len();
            (Just(v), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        }),
        cutoff_day in 0i64..420,
    ) {
        let spec = SnapshotSpec {
            cutoff: NaiveDate::from_ymd_opt(2010, 9, 1).unwrap() + Duration::days(cutoff_day),
            horizon_months: 6,
        };
        let offline = snapshot(to_frame(&lines).unwrap().lazy(), &spec).unwrap();
        let mut states: BTreeMap<u64, CustomerState> = BTreeMap::new();
        // Every event arrives in a random order (redeliveries are recognised before the state, by the
        // batch folder and the store's event IDs: ingest's tests).
        for &i in &order {
            let line = &lines[i];
            let Some(customer_id) = line.customer_id else { continue };
            let event = TransactionEvent {
                schema_version: 1,
                event_id: format!("line:{}", i + 1).into(),
                customer_id,
                invoice: line.invoice.as_str().into(),
                stock_code: line.stock_code.as_str().into(),
                description: line.description.as_deref().map(Into::into),
                quantity: line.quantity,
                invoice_date: line.invoice_date.and_utc(),
                price: line.price,
                country: Some(line.country.as_str().into()),
            };
            if event.validate(&Bounds::now()).is_ok() {
                let applied = states.entry(customer_id).or_default().apply(&event);
                prop_assert!(applied.is_ok(), "{applied:?}");
            }
        }
        let online = from_states(states.iter().map(|(id, s)| (*id, s)), &spec).unwrap();
        let diff = differences(&offline, &online, 10);
        prop_assert!(diff.is_empty(), "{diff:#?}\n{offline}\n{online}");
    }
}
