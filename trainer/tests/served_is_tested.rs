//! The model that is tested is the model that is served: a version trained on the data cut at C
//! (at that data's edge, as a user with it runs `clv train`) predicts at C exactly what the backtest
//! at C on the whole data scored, customer by customer; and its model-wide inputs are fitted at the
//! end of its data, not at its production cutoff.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::{d, shop};
use contract::{CustomerState, Purchase, epoch_ms, midnight};
use trainer::pipeline::{Request, run};
use trainer::training::Histories;

mod common;

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
