//! The model that is tested is the model that is served: a version trained on the data cut at C
//! (at that data's edge, as a user with it runs `clv train`) predicts at C exactly what the backtest
//! at C on the whole data scored, customer by customer; and its model-wide inputs are fitted at the
//! end of its data, not at its production cutoff.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use contract::{CustomerState, MS_PER_DAY, Purchase, epoch_ms, midnight};
use rand08::{Rng, SeedableRng};
use trainer::pipeline::{Request, run};
use trainer::training::Histories;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Customers who join over the first 18 months, buy at their own rate with a seasonal lift in the
/// autumn, may drop out after each purchase, and spend around their own mean.
fn shop(customers: u64, seed: u64) -> Vec<(u64, CustomerState)> {
    let mut rng = rand08::rngs::StdRng::seed_from_u64(seed);
    let start = epoch_ms(midnight(d("2009-12-01")));
    let end = epoch_ms(midnight(d("2011-12-10")));
    (1..=customers)
        .map(|id| {
            let mut state = CustomerState::default();
            let mut t = start + rng.gen_range(0..540) * MS_PER_DAY;
            let days_between: f64 = rng.gen_range(10.0..150.0);
            let dropout: f64 = rng.gen_range(0.02..0.4);
            let spend: f64 = rng.gen_range(20.0..600.0);
            let mut n = 0;
            while t < end {
                let month = chrono::DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .date_naive()
                    .format("%m")
                    .to_string();
                let lift = if ["09", "10", "11"].contains(&month.as_str()) {
                    1.6
                } else {
                    1.0
                };
                n += 1;
                let revenue = spend * rng.gen_range(0.5..1.5) * lift;
                state.purchases.insert(
                    format!("{id}-{n}"),
                    Purchase {
                        time_ms: t + rng.gen_range(0..MS_PER_DAY),
                        revenue_milli: (revenue * 1000.0) as i64,
                    },
                );
                if rng.r#gen::<f64>() < dropout {
                    break;
                }
                let gap = -days_between * (1.0 - rng.r#gen::<f64>()).ln() / lift;
                t += ((gap.max(1.0)) * MS_PER_DAY as f64) as i64;
            }
            (id, state)
        })
        .collect()
}

/// Every purchase before `cut`.
fn before(customers: &[(u64, CustomerState)], cut: NaiveDate) -> Vec<(u64, CustomerState)> {
    let cut_ms = epoch_ms(midnight(cut));
    customers
        .iter()
        .filter_map(|(id, s)| {
            let purchases: BTreeMap<String, Purchase> = s
                .purchases
                .iter()
                .filter(|(_, p)| p.time_ms < cut_ms)
                .map(|(k, p)| (k.clone(), *p))
                .collect();
            (!purchases.is_empty()).then(|| {
                (
                    *id,
                    CustomerState {
                        purchases,
                        ..CustomerState::default()
                    },
                )
            })
        })
        .collect()
}

#[test]
fn a_version_from_the_data_cut_at_c_predicts_what_the_backtest_at_c_scored() {
    let customers = shop(900, 7);
    let full = Histories::from_states(customers.clone());
    for (cut, horizon) in [("2011-04-01", 6), ("2011-06-01", 3)] {
        let cut = d(cut);
        let backtest = run(
            &full,
            &Request {
                horizon_months: horizon,
                backtest_cutoffs: vec![cut],
                ..Request::at_the_edge()
            },
        )
        .unwrap();
        let tested = backtest
            .backtests
            .iter()
            .find(|b| b.cutoff == cut)
            .unwrap_or_else(|| panic!("no backtest at {cut}: {:?}", backtest.skipped));

        let data = Histories::from_states(before(&customers, cut));
        let served = run(
            &data,
            &Request {
                horizon_months: horizon,
                as_of: Some(cut),
                ..Request::at_the_edge()
            },
        )
        .unwrap();
        // The same plan and the same champion.
        assert_eq!(served.plan, tested.plan, "at {cut}");
        assert_eq!(served.selection.champion, tested.champion(), "at {cut}");
        // Its inputs know the data up to its end, where it is served.
        assert_eq!(served.end, cut);
        assert_eq!(served.production.champion.inputs.fitted_at, Some(cut));
        assert_eq!(served.production.nine.inputs.fitted_at, Some(cut));

        // Customer by customer, as the scorer computes them (the row at C from the customer's
        // state and the model's inputs, then the model), equal to the backtest's test fold.
        let expected = tested.predictions.of(tested.champion()).unwrap();
        assert_eq!(served.production.customer_ids, tested.customer_ids);
        let model = &served.production.champion;
        let rows = model.rows(cut);
        let mut checked = 0;
        for (id, state) in data.customers() {
            let Some(row) = rows.row(state) else { continue };
            let at = tested
                .customer_ids
                .iter()
                .position(|c| c == id)
                .unwrap_or_else(|| panic!("customer {id} is not in the backtest at {cut}"));
            let predicted = model.predict_one(&row).unwrap();
            assert!(
                (predicted - expected[at]).abs() <= 1e-9 * expected[at].abs().max(1.0),
                "customer {id} at {cut}: served {predicted}, tested {}",
                expected[at]
            );
            checked += 1;
        }
        assert_eq!(checked, tested.customer_ids.len());
        assert!(checked > 300, "{checked}");
    }
}
