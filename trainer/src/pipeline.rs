//! The training procedure on one history, as `clv train`, `clv train --every` and `clv demo` run
//! it: the plan at the data's edge, the champion chosen on the validation folds, the procedure's
//! honest test (the same procedure on the data before the production cutoff, scored after it),
//! the backtests at earlier cutoffs, and the production models.
//!
//! The production models serve what was tested: their supervised parts are trained on every
//! labelled snapshot up to the production cutoff, and their model-wide inputs (BG/NBD, Gamma-Gamma,
//! the seasonal profile) and population constants are fitted on all the data, at its end, where
//! the scorer computes their rows. A backtest at C ([`crate::backtest::forecast`]) is the same
//! computation on the data before C.

use chrono::{DateTime, NaiveDate};
use contract::{Feature, FeatureRow, ModelInputs};
use models::{Spec, Trained, TrainingSet};

use crate::backtest::{Forecast, Plan, candidates, forecast, monthly, plan, tested};
use crate::evaluate::{Evaluator, Snapshots, budgeted};
use crate::selection::{Selection, select};
use crate::training::{Histories, Sample};
use crate::{Result, TrainError};

/// What to train.
#[derive(Debug, Clone)]
pub struct Request {
    /// Months of the label window.
    pub horizon_months: u32,
    /// The production cutoff (default: the edge of the data).
    pub cutoff: Option<NaiveDate>,
    /// The data holds every purchase before this day (default: the day after the last purchase).
    pub as_of: Option<NaiveDate>,
    /// The first training snapshot (default: three months after the first purchase's month).
    pub earliest: Option<NaiveDate>,
    /// Backtests at these test cutoffs, besides the production cutoff's test.
    pub backtest_cutoffs: Vec<NaiveDate>,
    /// And at this many cutoffs a quarter apart before the production cutoff (T − 3, T − 6, ...).
    pub quarters_before: u32,
    /// The samples that bound training at scale.
    pub sample: Sample,
}

impl Request {
    /// At the edge, with the default horizon (6 months), no backtests and the default samples.
    pub fn at_the_edge() -> Self {
        Request {
            horizon_months: 6,
            cutoff: None,
            as_of: None,
            earliest: None,
            backtest_cutoffs: Vec::new(),
            quarters_before: 0,
            sample: Sample::default(),
        }
    }
}

/// The production models of a run and what they were fitted for.
pub struct Production {
    /// The champion, fitted.
    pub champion: Trained,
    /// The best nine-feature candidate, fitted (`POST /predict`).
    pub nine: Trained,
    /// The customers at the end of the data, as the scorer serves them.
    pub customer_ids: Vec<u64>,
    /// Their rows, computed with the production inputs at the end of the data.
    pub population: Vec<FeatureRow>,
    /// The champion's predictions for them.
    pub predictions: Vec<f64>,
}

/// Everything one training run computed.
pub struct Run<'a> {
    /// The first purchase's day.
    pub first: NaiveDate,
    /// The last purchase's day.
    pub last_day: NaiveDate,
    /// The data holds every purchase before this day: the production inputs are fitted here and
    /// the scorer serves from here.
    pub end: NaiveDate,
    /// The plan.
    pub plan: Plan,
    /// The champion's choice on the validation folds.
    pub selection: Selection,
    /// The procedure's test at the production cutoff: the data before it, planned and chosen on its
    /// own, scored after it (or a half of the customers when the history is too short for that).
    pub test: Forecast,
    /// The backtests at the requested earlier cutoffs, by cutoff.
    pub backtests: Vec<Forecast>,
    /// Why a requested backtest was not run.
    pub skipped: Vec<String>,
    /// The production models.
    pub production: Production,
    /// The folds and snapshots, for reports.
    pub evaluator: Evaluator<'a>,
}

fn day(ms: i64, what: &str) -> Result<NaiveDate> {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.date_naive())
        .ok_or_else(|| TrainError::Input(format!("the {what} purchase's time {ms}")))
}

/// The days of `histories`' first and last purchases, and where its data ends: `as_of`, or the day
/// after the last purchase.
fn span(
    histories: &Histories,
    as_of: Option<NaiveDate>,
) -> Result<(NaiveDate, NaiveDate, NaiveDate)> {
    let (Some(first), Some(last)) = (histories.first_purchase_ms(), histories.last_purchase_ms())
    else {
        return Err(TrainError::Input("no purchases to train on".into()));
    };
    let (first, last_day) = (day(first, "first")?, day(last, "last")?);
    let end = match as_of {
        Some(as_of) if as_of <= last_day => {
            return Err(TrainError::Input(format!(
                "--as-of {as_of}: the data has purchases on {last_day}, on or after it (--as-of \
                 is where the data ends; --cutoff backtests at an earlier date)"
            )));
        }
        Some(as_of) => as_of,
        None => last_day + chrono::Days::new(1),
    };
    Ok((first, last_day, end))
}

/// Runs the procedure on `histories`.
pub fn run<'a>(histories: &'a Histories, request: &Request) -> Result<Run<'a>> {
    let (first, last_day, end) = span(histories, request.as_of)?;
    let h = request.horizon_months;
    let plan = plan(first, end, h, request.cutoff, request.earliest)?;
    let snapshots = Snapshots::new(histories, h).with_sample(request.sample);
    let mut evaluator = Evaluator::new(snapshots, candidates());
    let selection = select(&mut evaluator, &plan.folds)?;
    // The procedure's honest test at the production cutoff: the data before it, on its own (or
    // the other half of the customers, when that data is too short to train on).
    let test = match forecast(&mut evaluator, first, plan.cutoff, h, request.earliest) {
        Ok(test) => test,
        Err(TrainError::Input(_)) => {
            let (halved, fold) = plan.halved();
            let chosen = select(&mut evaluator, &halved.folds)?;
            tested(&mut evaluator, halved, chosen, fold)?
        }
        Err(e) => return Err(e),
    };
    let mut earlier: Vec<NaiveDate> = (1..=request.quarters_before)
        .filter_map(|q| i32::try_from(3 * q).ok())
        .map(|months| contract::add_months(plan.cutoff, -months))
        .chain(request.backtest_cutoffs.iter().copied())
        .filter(|d| *d != plan.cutoff)
        .collect();
    earlier.sort();
    earlier.dedup();
    let (mut backtests, skipped) =
        crate::across::run(&mut evaluator, (first, end), h, &earlier, request.earliest)?;
    backtests.sort_by_key(|b| b.cutoff);

    let specs = candidates();
    let by_name = |name: &str| {
        specs
            .iter()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| TrainError::Input(format!("no candidate {name}")))
    };
    let champion = by_name(&selection.champion)?;
    let nine = selection
        .scores
        .iter()
        .filter(|s| {
            by_name(&s.model)
                .is_ok_and(|spec| spec.features().iter().all(|f| Feature::NINE.contains(f)))
        })
        .min_by(|a, b| a.metrics.mae.total_cmp(&b.metrics.mae))
        .map(|s| s.model.clone())
        .ok_or_else(|| TrainError::Input("no nine-feature candidate".into()))?;
    let nine = by_name(&nine)?;
    let production = fit_production(
        evaluator.snapshots(),
        &monthly(plan.earliest, plan.cutoff),
        end,
        [&champion, &nine],
    )?;
    Ok(Run {
        first,
        last_day,
        end,
        plan,
        selection,
        test,
        backtests,
        skipped,
        production,
        evaluator,
    })
}

/// The production models: `specs` (the champion and the nine-feature model) trained on the
/// snapshots at `train_cutoffs`, with the model-wide inputs fitted on the purchases before `end`
/// and the population constants of the customers at `end`, where the scorer serves them.
pub fn fit_production(
    snapshots: &mut Snapshots<'_>,
    train_cutoffs: &[NaiveDate],
    end: NaiveDate,
    [champion, nine]: [&Spec; 2],
) -> Result<Production> {
    let train = snapshots.stacked(train_cutoffs)?;
    let inputs: ModelInputs = snapshots.inputs(end)?;
    let served = snapshots.at(end)?;
    let (customer_ids, population) = (served.customer_ids.clone(), served.rows.clone());
    let fit = |spec: &Spec| {
        let train = budgeted(spec, &train);
        let set = TrainingSet {
            rows: &train.rows,
            labels: &train.labels,
            population: &population,
        };
        Trained::fit_predicting(spec, &set, inputs.clone())
    };
    let (champion, predictions) = fit(champion)?;
    let (nine, _) = fit(nine)?;
    Ok(Production {
        champion,
        nine,
        customer_ids,
        population,
        predictions,
    })
}
