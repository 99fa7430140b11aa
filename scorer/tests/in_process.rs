//! The scorer sharing the store with a writer in the same process (the embedded default): what the
//! writer commits is scored at the next refresh, `as_of` follows the watermark or a fixed date, and
//! nothing is rescored when nothing changed. A real RocksDB store and a real registry folder.

use std::sync::Arc;

use chrono::NaiveDate;
use contract::{CustomerState, Feature, ModelInputs, Purchase, epoch_ms, midnight};
use featurestore::store::{Batch, CustomerWrite, RocksStore, SourceId};
use models::registry::{Metadata, Registry};
use models::{FeatureSet, Fitted, Spec, Trained};
use scorer::service::{AsOf, Refresh, Refresher, Scorer};
use scorer::source::FeatureSource;

fn at(date: &str) -> i64 {
    epoch_ms(midnight(
        NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
    )) + 10 * 3_600_000
}

/// A customer with one purchase of `pounds` on each date.
fn customer(purchases: &[(&str, i64)]) -> CustomerState {
    let mut state = CustomerState::default();
    for (i, (date, pounds)) in purchases.iter().enumerate() {
        state.purchases.insert(
            format!("{i}{date}"),
            Purchase {
                time_ms: at(date),
                revenue_milli: pounds * 1000,
            },
        );
    }
    state
}

fn write(store: &RocksStore, customers: Vec<(u64, CustomerState)>, offset: i64) {
    let latest_purchases = customers
        .iter()
        .filter_map(|(id, s)| Some((0, *id, s.purchases.values().map(|p| p.time_ms).max()?)))
        .collect();
    let source = SourceId {
        cluster: "test".into(),
        topic: "transactions".into(),
    };
    store
        .write(
            &source,
            Batch {
                new_customers: customers.len() as u64,
                customers: customers
                    .iter()
                    .map(|(id, s)| CustomerWrite::whole(0, *id, s, &[]))
                    .collect(),
                offsets: vec![(0, offset)],
                latest_purchases,
            },
        )
        .unwrap();
}

/// A registry whose production model predicts `naive_6m` (revenue of the 6 months before `as_of`).
fn registry(dir: &std::path::Path) {
    let registry = Registry::open(dir).unwrap();
    let (version, path) = registry.new_version().unwrap();
    // Published CDNOW estimates: the extra features are computed with them, not refitted.
    let inputs = ModelInputs::example();
    Trained {
        spec: Spec::Naive,
        fitted: Fitted::Column {
            feature: Feature::Naive6m,
            factor: 1.0,
        },
        inputs: inputs.clone(),
    }
    .save(&path.join("model.json"))
    .unwrap();
    let mut coefficients = vec![0.0; 9];
    coefficients[2] = 0.5;
    Trained {
        spec: Spec::Linear {
            features: FeatureSet::Nine,
            ridge: 0.0,
        },
        fitted: Fitted::Linear {
            coefficients,
            intercept: 0.0,
        },
        inputs,
    }
    .save(&path.join("model_nine.json"))
    .unwrap();
    registry
        .write_metadata(&Metadata {
            version: version.clone(),
            created: "2026-11-25T00:00:00Z".into(),
            git_commit: None,
            contract_version: contract::CONTRACT_VERSION,
            model: "naive".into(),
            features: vec![Feature::Naive6m.name().into()],
            cutoff: "2011-06-01".into(),
            horizon_months: 6,
            train_cutoffs: vec![],
            data_fingerprint: "test".into(),
            scores: vec![],
            value_tiers: Some(contract::segment::ValueTiers {
                high_from: 60.0,
                medium_from: 35.0,
            }),
            interval: Some(models::interval::Calibration {
                zero: (0.0, 5.0),
                bins: vec![models::interval::Bin {
                    from: 1.0,
                    low_ratio: 0.5,
                    high_ratio: 2.0,
                    high_ratio_from_zero: None,
                }],
                zero_up_to: None,
            }),
            drift: Some(reference(&ModelInputs::example())),
            data_end: Some("2011-06-01".into()),
            gains: Some(vec![(0.0, 0.0), (0.5, 0.8), (1.0, 1.0)]),
            tested: None,
            passed_over: Vec::new(),
        })
        .unwrap();
    registry.promote(&version, "test").unwrap();
}

/// A drift reference: three customers as of 2011-06-01, predicted as the naive model does.
fn reference(inputs: &ModelInputs) -> models::drift::Reference {
    let builder = contract::RowBuilder::new(inputs, NaiveDate::from_ymd_opt(2011, 6, 1).unwrap());
    let rows: Vec<contract::FeatureRow> = [
        customer(&[("2010-03-05", 20)]),
        customer(&[("2010-12-05", 200), ("2011-05-01", 90)]),
        customer(&[("2011-02-05", 60), ("2011-04-01", 10), ("2011-05-20", 10)]),
    ]
    .iter()
    .map(|c| builder.row(c).unwrap())
    .collect();
    let predictions: Vec<f64> = rows.iter().map(|r| r.input(Feature::Naive6m)).collect();
    models::drift::Reference::of(&rows, &predictions).unwrap()
}

/// The drift of `population` is that of its customers counted from scratch: the counts a refresh
/// keeps by adding and removing the customers it rescored are the population's.
fn drift_is_counted_from_the_customers(
    population: &scorer::population::Population,
    production: &scorer::follow::Production,
    ids: &[u64],
) {
    let reference = production.drift.as_ref().unwrap();
    let mut counts = reference.counts();
    for id in ids {
        let scored = population.get(*id).unwrap();
        counts.add(reference, &scored.row, scored.clv_6m);
    }
    let drift = population.drift(production).unwrap();
    assert_eq!(drift, reference.psi(&counts));
    assert!(drift.prediction.unwrap() > 0.0);
}

/// The web page's views of a population: the ranking in order, the model card, one customer's
/// purchases by month from the store.
fn the_pages_show_the_population(
    population: &scorer::population::Population,
    production: &scorer::follow::Production,
    store: &RocksStore,
) {
    use scorer::page;
    let overview = page::overview(population, production);
    assert!(overview.contains("<html lang=\"en\">"), "{overview}");
    assert!(
        overview.contains("<link rel=\"icon\" href=\"data:image/svg+xml,%3Csvg xmlns="),
        "the icon is inline: {overview}"
    );
    assert!(
        overview.contains("v0001")
            && overview.contains("BG/NBD + Gamma-Gamma") == production.card.reference.is_some()
    );
    assert!(
        overview.contains("Trained on data through</dt><dd>2011-05-31"),
        "{overview}"
    );
    assert!(overview.contains("spent 80% of the revenue"), "{overview}");
    assert!(overview.contains("3 customers with a purchase before 2011-12-10"));
    let list = page::customers(population, production, 1);
    let order: Vec<usize> = population
        .top(3)
        .iter()
        .map(|r| {
            list.find(&format!(
                "<a href=\"/customers/{0}\">{0}</a>",
                r.customer_id
            ))
            .unwrap()
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{list}");
    assert!(list.contains("page 1 of 1"));
    // A page past the last shows the last.
    assert!(page::customers(population, production, 99).contains("page 1 of 1"));
    let risk = page::at_risk(population, 10);
    assert!(risk.contains("<a href=\"/customers/1\">1</a>"), "{risk}");
    let scored = population.get(2).unwrap();
    let answer: scorer::response::ClvResponse = serde_json::from_slice(&scored.clv_body).unwrap();
    let state = store.get(2).unwrap();
    let view = page::customer(&answer, state.as_ref(), &population.freshness);
    assert!(
        view.contains("Customer 2") && view.contains("Revenue by month of customer 2"),
        "{view}"
    );
    // Customer 2 bought in November (£70) and December (£30): the chart's last two months.
    assert!(
        view.contains("11/11: £70.00") && view.contains("12/11: £30.00"),
        "{view}"
    );
    assert!(view.contains("<code>recency_days</code>"));
}

/// The at-risk list holds exactly the customers of `ids` in the fading band, by value at risk.
fn at_risk_is_the_fading_by_value_at_risk(
    population: &scorer::population::Population,
    ids: &[u64],
) {
    use contract::segment::{Activity, value_at_risk};
    let mut expected: Vec<(u64, f64)> = ids
        .iter()
        .filter_map(|id| {
            let row = population.get(*id)?.row;
            let risk = value_at_risk(&row)?;
            assert_eq!(Activity::of_row(&row), Activity::Fading);
            Some((*id, (risk * 100.0).round() / 100.0))
        })
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let listed: Vec<(u64, f64)> = population
        .at_risk(10)
        .iter()
        .map(|r| (r.customer_id, r.value_at_risk))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn a_shared_store_is_scored_at_each_refresh_after_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksStore::open(&dir.path().join("db")).unwrap());
    registry(&dir.path().join("models"));
    let scorer = Arc::new(Scorer::default());
    let mut refresher = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store.clone()),
        dir.path().join("models"),
        AsOf::Watermark,
    );
    // An empty store: a model, nothing to score, not ready.
    assert!(!refresher.tick().unwrap());
    assert!(scorer.readiness().is_err());

    write(
        &store,
        vec![
            (1, customer(&[("2011-01-05", 100), ("2011-09-01", 40)])),
            (2, customer(&[("2011-11-30", 70)])),
        ],
        1,
    );
    assert!(refresher.tick().unwrap());
    scorer.readiness().unwrap();
    let population = scorer.population().unwrap();
    assert_eq!(population.as_of.to_string(), "2011-12-01");
    assert_eq!(population.model.version, "v0001");
    // naive_6m at 2011-12-01: the purchases since 2011-06-01.
    assert_eq!(population.get(1).unwrap().clv_6m, 40.0);
    assert_eq!(population.get(2).unwrap().clv_6m, 70.0);
    let ranking: Vec<(u64, f64)> = population
        .top(10)
        .iter()
        .map(|r| (r.customer_id, r.clv_6m))
        .collect();
    assert_eq!(ranking, vec![(2, 70.0), (1, 40.0)]);
    // The answer: P(alive), expected purchases and the segment from the version's value tiers.
    for (id, value) in [(2, "high"), (1, "medium")] {
        let scored = population.get(id).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&scored.clv_body).unwrap();
        assert_eq!(body["segment"]["value"], value, "{body}");
        let clv = scored.clv_6m;
        assert_eq!(
            body["clv_6m_low"].as_f64().unwrap(),
            (clv * 0.5 * 100.0).round() / 100.0
        );
        assert_eq!(
            body["clv_6m_high"].as_f64().unwrap(),
            (clv * 2.0 * 100.0).round() / 100.0
        );
        assert_eq!(
            body["p_alive"].as_f64().unwrap(),
            scored.row.extra.bgnbd_p_alive
        );
        let activity = contract::segment::Activity::of_row(&scored.row);
        assert_eq!(
            body["segment"]["activity"],
            serde_json::to_value(activity).unwrap(),
            "{body}"
        );
        assert_eq!(
            body["expected_purchases"].as_f64().unwrap(),
            scored.row.extra.bgnbd_expected_purchases
        );
    }
    at_risk_is_the_fading_by_value_at_risk(&population, &[1, 2]);
    // Customer 1 (two purchases, silent since September) is fading; 2 bought last week.
    assert_eq!(population.at_risk(10).len(), 1);
    assert_eq!(population.at_risk(10)[0].customer_id, 1);
    // Nothing written: nothing rescored.
    assert!(!refresher.tick().unwrap());

    // A later write moves the watermark and adds a customer.
    write(&store, vec![(3, customer(&[("2011-12-09", 500)]))], 2);
    assert!(refresher.tick().unwrap());
    let population = scorer.population().unwrap();
    assert_eq!(population.as_of.to_string(), "2011-12-10");
    assert_eq!(population.len(), 3);
    assert_eq!(population.top(1)[0].customer_id, 3);

    // A write on the same day of event time (as_of stays): only the customers it wrote are
    // rescored; everyone else's answer is the very same one.
    let before = scorer.population().unwrap();
    write(
        &store,
        vec![(2, customer(&[("2011-11-30", 70), ("2011-12-09", 30)]))],
        3,
    );
    assert_eq!(
        refresher.refresh().unwrap(),
        Refresh::Changed { customers: 1 }
    );
    let after = scorer.population().unwrap();
    assert_eq!(after.as_of.to_string(), "2011-12-10");
    assert_eq!(after.get(2).unwrap().clv_6m, 100.0);
    for unchanged in [1, 3] {
        assert!(Arc::ptr_eq(
            &before.get(unchanged).unwrap(),
            &after.get(unchanged).unwrap()
        ));
    }
    assert_eq!(after.top(2)[1].customer_id, 2);
    at_risk_is_the_fading_by_value_at_risk(&after, &[1, 2, 3]);
    drift_is_counted_from_the_customers(&after, &scorer.production().unwrap(), &[1, 2, 3]);
    the_pages_show_the_population(&after, &scorer.production().unwrap(), &store);
    assert_eq!(refresher.refresh().unwrap(), Refresh::Unchanged);

    // A fixed as_of: purchases on or after it do not count.
    let mut fixed = Refresher::new(
        scorer.clone(),
        FeatureSource::Shared(store),
        dir.path().join("models"),
        AsOf::Date(NaiveDate::from_ymd_opt(2011, 6, 1).unwrap()),
    );
    assert!(fixed.tick().unwrap());
    let population = scorer.population().unwrap();
    assert_eq!(population.len(), 1);
    assert_eq!(population.get(1).unwrap().clv_6m, 100.0);
}
