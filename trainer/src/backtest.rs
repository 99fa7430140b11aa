//! Out-of-time evaluation: every candidate is trained on snapshots whose label windows end by the
//! evaluation cutoff and scored on the snapshot at that cutoff. Models are selected on the validation
//! fold; the test fold is reported, never selected on.

use chrono::{Datelike, NaiveDate};
use contract::{Extra, FeatureRow, Nine, add_months};
use models::metrics::Metrics;
use models::registry::Score;
use models::{FeatureSet, Spec};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::evaluate::{Evaluator, FoldPredictions};
use crate::selection::{Selection, select};
use crate::training::{Labelled, Sample};
use crate::{Result, TrainError};

/// One out-of-time fold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// `validation` or `test`.
    pub name: String,
    /// Snapshots stacked into the training set (each label window ends by `evaluate_at`).
    pub train_cutoffs: Vec<NaiveDate>,
    /// The snapshot the models are scored on.
    pub evaluate_at: NaiveDate,
    /// Which of its customers.
    #[serde(default)]
    pub customers: Customers,
}

/// Which customers of its evaluation snapshot a fold scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Customers {
    /// Every customer.
    #[default]
    Every,
    /// One half (0 or 1) of a split by a seeded hash of the customer ID: when the history is too
    /// short for a validation fold before the test fold, the test snapshot's customers are split,
    /// one half selects the champion and the other tests it (both trained on the same snapshots,
    /// whose label windows end by the evaluation cutoff).
    Half(u8),
}

impl Customers {
    /// Whether `customer` is scored.
    pub fn includes(self, customer: u64) -> bool {
        match self {
            Customers::Every => true,
            Customers::Half(half) => {
                let sample = Sample {
                    seed: HALF_SEED,
                    ..Sample::default()
                };
                sample.keeps(customer, 0.5) == (half == 0)
            }
        }
    }
}

/// The seed of the customer split ([`Customers::Half`]).
const HALF_SEED: u64 = 0x6861_6c66;

/// How many of the latest labelled cutoffs a champion is chosen on ([`plan`]).
pub const SELECTION_FOLDS: i32 = 3;

/// Where the folds lie in the history that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The production cutoff: the latest cutoff whose label window the data holds; the production
    /// model trains on every snapshot up to here (each label window ends by the end of the data).
    pub cutoff: NaiveDate,
    /// The first training snapshot.
    pub earliest: NaiveDate,
    /// The validation folds the champion is chosen on: the latest [`SELECTION_FOLDS`] monthly
    /// evaluation cutoffs up to `cutoff` (fewer when the history is short), each trained on the
    /// snapshots whose label windows end by it.
    pub folds: Vec<Fold>,
    /// How the folds were placed when the history was short (for the output and the report).
    pub notes: Vec<String>,
}

impl Plan {
    /// The test for a history too short to run the procedure on the data before the cutoff
    /// ([`forecast`] fails there): the validation folds choose on one half of the customers (split
    /// by a hash of their ID), and the other half at the cutoff is the test fold, trained on the
    /// snapshots whose labels end by it. (The production champion is still chosen on every
    /// customer: this tests the same choice made on half of them.)
    pub fn halved(&self) -> (Plan, Fold) {
        let mut plan = self.clone();
        for fold in &mut plan.folds {
            fold.customers = Customers::Half(0);
        }
        let test = Fold {
            name: "test".into(),
            train_cutoffs: self
                .folds
                .first()
                .map(|f| f.train_cutoffs.clone())
                .unwrap_or_default(),
            evaluate_at: self.cutoff,
            customers: Customers::Half(1),
        };
        plan.notes.push(format!(
            "The history is too short to run the whole procedure on the data before {} (a test \
             fold): the customers are split by a hash of their ID; one half selects the champion, \
             the other tests it at {}.",
            self.cutoff, self.cutoff
        ));
        (plan, test)
    }
}

/// The first of `day`'s month.
fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The folds for data whose purchases run from `first` (a day) to `end` (exclusive: the data holds
/// every purchase before it; by default the day after the last purchase), for label windows of
/// `horizon_months`:
/// - the production cutoff is `cutoff`, or by default the edge: the latest first of a month whose
///   label window ends by `end`; a given cutoff past the edge is an error, since its labels would be
///   counted as zero;
/// - training snapshots are monthly from `earliest`, by default three months after the first
///   purchase's month (down to one month of history when the data is shorter);
/// - the validation folds evaluate at t, t − 1 month and t − 2 months (those whose training
///   snapshots, up to h before, exist), each trained up to h before its evaluation cutoff; the
///   champion is the candidate with the lowest mean MAE over them. The honest test of the choice is
///   the same plan on the data before t ([`forecast`]);
/// - with less than h + 1 months from the first purchase's month to the edge, an error says how
///   much history is needed.
pub fn plan(
    first: NaiveDate,
    end: NaiveDate,
    horizon_months: u32,
    cutoff: Option<NaiveDate>,
    earliest: Option<NaiveDate>,
) -> Result<Plan> {
    if horizon_months == 0 {
        return Err(TrainError::Input(
            "the horizon must be at least one month".into(),
        ));
    }
    let h = i32::try_from(horizon_months)
        .map_err(|_| TrainError::Input(format!("a horizon of {horizon_months} months")))?;
    let edge = add_months(month_of(end), -h);
    let t = cutoff.unwrap_or(edge);
    if t > edge {
        return Err(TrainError::Input(format!(
            "the label window of the cutoff {t} ({t} to {}) runs past the end of the data (it \
             holds the purchases before {end}): the latest cutoff this data can be scored at is \
             {edge}; leave out --cutoff to train at it",
            add_months(t, h)
        )));
    }
    let first_month = month_of(first);
    let earliest = match earliest {
        Some(e) => e,
        None => {
            let preferred = add_months(first_month, 3);
            if add_months(t, -h) >= preferred {
                preferred
            } else {
                add_months(t, -h).max(add_months(first_month, 1))
            }
        }
    };
    if add_months(t, -h) < earliest {
        let needed = 2 * horizon_months + 1;
        return Err(TrainError::Input(format!(
            "not enough history for {horizon_months}-month labels at the cutoff {t}: the first \
             training snapshot ({earliest}) needs a month of history and its own {horizon_months} \
             months of labels before the {horizon_months} months the cutoff's fold scores, so the \
             data needs {needed} months from the first purchase's month to the end of the last \
             label window; it holds the purchases from {first} to before {end} (with purchases \
             from {} on, or data through {}, it would do)",
            add_months(t, -h - 1),
            add_months(add_months(first_month, 1), 2 * h)
        )));
    }
    let folds: Vec<Fold> = (0..SELECTION_FOLDS)
        .map(|k| add_months(t, -k))
        .filter(|at| add_months(*at, -h) >= earliest)
        .map(|at| Fold {
            name: "validation".into(),
            train_cutoffs: monthly(earliest, add_months(at, -h)),
            evaluate_at: at,
            customers: Customers::Every,
        })
        .collect();
    let mut notes = Vec::new();
    if folds.len() < SELECTION_FOLDS as usize {
        notes.push(format!(
            "The history holds {} validation fold{} (of {SELECTION_FOLDS}): the first training \
             snapshot is {earliest}.",
            folds.len(),
            if folds.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(Plan {
        cutoff: t,
        earliest,
        folds,
        notes,
    })
}

/// The months from `first` to `last` (both included), one cutoff on the first of each.
pub fn monthly(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut at = first;
    while at <= last {
        out.push(at);
        at = add_months(at, 1);
    }
    out
}

/// The weights of the revenue a year before tried in the seasonal BG/NBD.
pub const BLEND_WEIGHTS: [f64; 5] = [0.0, 0.1, 0.2, 0.3, 0.4];

/// The powers tried in the seasonal BG/NBD.
pub const SHARPEN_POWERS: [f64; 5] = [1.0, 1.05, 1.1, 1.15, 1.2];

/// The candidate models every run trains.
pub fn candidates() -> Vec<Spec> {
    let bgnbd = |scaled, seasonal, year_before_weight, sharpen| Spec::BgNbd {
        scaled,
        seasonal,
        year_before_weight,
        sharpen,
    };
    let mut out = vec![
        Spec::Naive,
        Spec::NaiveScaled,
        bgnbd(false, false, 0.0, 1.0),
        bgnbd(true, false, 0.0, 1.0),
    ];
    // The seasonal BG/NBD over a grid of its two shape settings (chosen on the validation fold
    // like any other candidate).
    for year_before_weight in BLEND_WEIGHTS {
        for sharpen in SHARPEN_POWERS {
            out.push(bgnbd(false, true, year_before_weight, sharpen));
        }
    }
    for features in [FeatureSet::Nine, FeatureSet::All] {
        // Least squares on the nine (as scikit-learn's, on the seed's table); ridge on all of them,
        // whose BG/NBD outputs are nearly collinear.
        let ridge = match features {
            FeatureSet::Nine => 0.0,
            FeatureSet::All => models::RIDGE,
        };
        out.push(Spec::Linear { features, ridge });
        out.push(Spec::RandomForest {
            features,
            trees: 200,
            min_leaf: 5,
        });
        out.push(Spec::Boosting {
            features,
            trees: 300,
            learning_rate: 0.05,
            depth: 3,
        });
        out.push(Spec::TwoStage {
            features,
            trees: 100,
        });
    }
    out
}

/// The whole procedure run on the data before a cutoff C, as a user with that data runs it: planned
/// at that data's edge (C − h), the champion chosen on its validation folds, trained on its
/// snapshots up to C − h, its rows and model-wide inputs computed at C; scored on what every
/// customer spent in [C, C + h). A version registered from the data cut at C and served at C
/// predicts exactly this (`clv/tests/train.rs`).
#[derive(Debug, Clone)]
pub struct Forecast {
    /// C.
    pub cutoff: NaiveDate,
    /// The plan of the data before C.
    pub plan: Plan,
    /// The champion chosen there.
    pub selection: Selection,
    /// The test fold: the production training set of that data, evaluated at C.
    pub test: Fold,
    /// Every candidate's scores at C (fold `test`).
    pub scores: Vec<Score>,
    /// The customers scored, in the order of the predictions.
    pub customer_ids: Vec<u64>,
    /// Every candidate's predictions at C and the actual values.
    pub predictions: FoldPredictions,
}

impl Forecast {
    /// The champion chosen on the data before C.
    pub fn champion(&self) -> &str {
        &self.selection.champion
    }

    /// `model`'s test metrics.
    pub fn of(&self, model: &str) -> Option<&Metrics> {
        self.scores
            .iter()
            .find(|s| s.model == model)
            .map(|s| &s.metrics)
    }
}

/// The procedure on the data before `cutoff` ([`Forecast`]), for data whose first purchase is on
/// `first`; an error when the data before `cutoff` is too short to train on.
pub fn forecast(
    evaluator: &mut Evaluator<'_>,
    first: NaiveDate,
    cutoff: NaiveDate,
    horizon_months: u32,
    earliest: Option<NaiveDate>,
) -> Result<Forecast> {
    let plan = plan(first, cutoff, horizon_months, None, earliest)?;
    let selection = select(evaluator, &plan.folds)?;
    let test = Fold {
        name: "test".into(),
        train_cutoffs: monthly(plan.earliest, plan.cutoff),
        evaluate_at: cutoff,
        customers: Customers::Every,
    };
    tested(evaluator, plan, selection, test)
}

/// A forecast whose test fold is `test` (a half of the customers at the production cutoff, when the
/// history is too short for [`forecast`]: [`Plan::halved`]).
pub fn tested(
    evaluator: &mut Evaluator<'_>,
    plan: Plan,
    selection: Selection,
    test: Fold,
) -> Result<Forecast> {
    let scores = evaluator.scores(&test)?;
    let result = evaluator.fold(&test)?;
    Ok(Forecast {
        cutoff: test.evaluate_at,
        customer_ids: result.customer_ids.clone(),
        predictions: result.predictions.clone(),
        plan,
        selection,
        test,
        scores,
    })
}

/// The seed's modeling table (one cutoff, no history: `customer_id`, the nine features, `clv_6m`)
/// split as anyone can reproduce: `customer_id mod 5` in {0, 1, 2} trains, 3 validates, 4 tests. Its
/// naive baseline is `total_revenue` (its history is exactly the six months before the cutoff); it
/// has no other extra feature (they are 0), so only nine-feature and naive models apply.
pub fn seed_folds(table: &DataFrame) -> Result<[(String, Labelled, Labelled); 2]> {
    let ids = table.column("customer_id")?.cast(&DataType::Int64)?;
    let ids: Vec<Option<i64>> = ids.i64()?.iter().collect();
    let labels = table.column(contract::LABEL)?.cast(&DataType::Float64)?;
    let labels: Vec<Option<f64>> = labels.f64()?.iter().collect();
    let values = offline::states::feature_values(table, contract::Feature::NINE)?;
    let mut parts: [Labelled; 3] = Default::default();
    for ((id, label), values) in ids.iter().zip(&labels).zip(&values) {
        let id = id
            .and_then(|id| u64::try_from(id).ok())
            .ok_or_else(|| TrainError::Input("a customer_id that is not positive".into()))?;
        let nine = Nine::from_values(values)?;
        let row = FeatureRow {
            nine,
            extra: Extra {
                naive_6m: nine.total_revenue,
                revenue_last_3m: 0.0,
                revenue_year_before_window: 0.0,
                bgnbd_expected_purchases: 0.0,
                bgnbd_p_alive: 0.0,
                bgnbd_p_no_purchase: 1.0,
                gg_expected_spend: 0.0,
                bgnbd_clv: 0.0,
                season_index: 1.0,
            },
        };
        let part = match id % 5 {
            0..=2 => 0,
            3 => 1,
            _ => 2,
        };
        parts[part].customer_ids.push(id);
        parts[part].rows.push(row);
        parts[part].labels.push(label.unwrap_or(0.0));
    }
    let [train, validation, test] = parts;
    Ok([
        ("validation".into(), train.clone(), validation),
        ("test".into(), train, test),
    ])
}

/// A Markdown table of the scores of one fold.
pub fn table(scores: &[Score], fold: &str) -> String {
    let mut out = String::from(
        "| model | RMSE | MAE | R² | Spearman | norm. Gini | top-decile share | predicted/actual total |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in scores.iter().filter(|s| s.fold == fold) {
        out.push_str(&format!(
            "| {} | {} |\n",
            s.model,
            s.metrics.cells().join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn months(first: &str, last: &str) -> Vec<NaiveDate> {
        monthly(d(first), d(last))
    }

    #[test]
    fn the_whole_uci_data_is_planned_at_the_missions_cutoff() {
        let plan = plan(d("2009-12-01"), d("2011-12-10"), 6, None, None).unwrap();
        assert_eq!(
            (plan.cutoff, plan.earliest),
            (d("2011-06-01"), d("2010-03-01"))
        );
        // Three validation folds: the latest three cutoffs whose labels the data holds.
        let at: Vec<NaiveDate> = plan.folds.iter().map(|f| f.evaluate_at).collect();
        assert_eq!(at, vec![d("2011-06-01"), d("2011-05-01"), d("2011-04-01")]);
        assert_eq!(
            plan.folds[0].train_cutoffs,
            months("2010-03-01", "2010-12-01")
        );
        assert_eq!(
            plan.folds[2].train_cutoffs,
            months("2010-03-01", "2010-10-01")
        );
        assert!(plan.folds.iter().all(|f| f.customers == Customers::Every));
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn short_history_has_fewer_validation_folds_and_halves_for_its_test() {
        // The real data cut at 2011-06-01: 18 months, three folds still.
        let plan = plan(d("2009-12-01"), d("2011-06-01"), 6, None, None).unwrap();
        assert_eq!(
            (plan.cutoff, plan.earliest),
            (d("2010-12-01"), d("2010-03-01"))
        );
        assert_eq!(plan.folds.len(), 3);
        assert_eq!(
            plan.folds[0].train_cutoffs,
            months("2010-03-01", "2010-06-01")
        );
        // Its test (the data before 2010-12-01: 12 months) cannot be planned: halves.
        assert!(super::plan(d("2009-12-01"), d("2010-12-01"), 6, None, None).is_err());
        let (halved, test) = plan.halved();
        assert!(
            halved
                .folds
                .iter()
                .all(|f| f.customers == Customers::Half(0))
        );
        assert_eq!(
            (test.evaluate_at, test.customers),
            (d("2010-12-01"), Customers::Half(1))
        );
        assert_eq!(test.train_cutoffs, plan.folds[0].train_cutoffs);
        assert_eq!(halved.notes.len(), 1);
        // Cut at 2011-01-01: 13 months, one training snapshot a month after the first purchase,
        // one validation fold.
        let plan = plan_of("2011-01-01");
        assert_eq!(
            (plan.cutoff, plan.earliest),
            (d("2010-07-01"), d("2010-01-01"))
        );
        assert_eq!(plan.folds.len(), 1);
        assert_eq!(plan.folds[0].train_cutoffs, vec![d("2010-01-01")]);
        assert_eq!(plan.notes.len(), 1);
    }

    fn plan_of(end: &str) -> Plan {
        plan(d("2009-12-01"), d(end), 6, None, None).unwrap()
    }

    #[test]
    fn too_little_history_or_a_cutoff_past_the_data_is_an_error_that_says_why() {
        let short = plan(d("2009-12-01"), d("2010-12-01"), 6, None, None).unwrap_err();
        assert!(short.to_string().contains("not enough history"), "{short}");
        assert!(short.to_string().contains("13 months"), "{short}");
        let past = plan(
            d("2009-12-01"),
            d("2011-06-01"),
            6,
            Some(d("2011-06-01")),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            past.contains("2010-12-01") && past.contains("past the end"),
            "{past}"
        );
        assert!(plan(d("2009-12-01"), d("2011-12-10"), 0, None, None).is_err());
    }

    #[test]
    fn other_dates_and_horizons() {
        let plan = plan(d("2015-01-10"), d("2016-03-16"), 3, None, None).unwrap();
        assert_eq!(
            (plan.cutoff, plan.earliest),
            (d("2015-12-01"), d("2015-04-01"))
        );
        let at: Vec<NaiveDate> = plan.folds.iter().map(|f| f.evaluate_at).collect();
        assert_eq!(at, vec![d("2015-12-01"), d("2015-11-01"), d("2015-10-01")]);
        assert_eq!(
            plan.folds[0].train_cutoffs,
            months("2015-04-01", "2015-09-01")
        );
        // Data that holds a month's last day holds that month's labels.
        assert_eq!(plan_of("2011-12-01").cutoff, d("2011-06-01"));
        assert_eq!(plan_of("2011-11-30").cutoff, d("2011-05-01"));
    }

    #[test]
    fn the_two_halves_hold_every_customer_once() {
        let (a, b) = (Customers::Half(0), Customers::Half(1));
        let in_a = (1..10_000u64).filter(|c| a.includes(*c)).count();
        assert!((1..10_000u64).all(|c| a.includes(c) != b.includes(c)));
        assert!((4_700..5_300).contains(&in_a), "{in_a}");
    }
}
