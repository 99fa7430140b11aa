//! Out-of-time evaluation: every candidate is trained on snapshots whose label windows end by the
//! evaluation cutoff and scored on the snapshot at that cutoff. Models are selected on the validation
//! fold; the test fold is reported, never selected on.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use contract::{Extra, FeatureRow, ModelInputs, Nine, SnapshotSpec, add_months};
use models::metrics::Metrics;
use models::registry::Score;
use models::{FeatureSet, Spec, TrainingSet};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::training::{Histories, Labelled, Sample, fit_inputs, snapshot};
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

/// Snapshots by cutoff, built once and shared by the folds: each with the model-wide inputs fitted
/// at its cutoff.
pub struct Snapshots<'a> {
    histories: &'a Histories,
    horizon_months: u32,
    built: BTreeMap<NaiveDate, (Labelled, ModelInputs)>,
    sample: Sample,
    sampled: Vec<Sampled>,
}

/// A stacked training set that was sampled ([`Sample`]): what a report states.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// The stacked cutoffs.
    pub cutoffs: Vec<NaiveDate>,
    /// Rows before sampling.
    pub rows: usize,
    /// Rows kept.
    pub kept: usize,
    /// The fraction of customers kept.
    pub fraction: f64,
}

impl<'a> Snapshots<'a> {
    /// Over these histories.
    pub fn new(histories: &'a Histories, horizon_months: u32) -> Self {
        Snapshots {
            histories,
            horizon_months,
            built: BTreeMap::new(),
            sample: Sample::default(),
            sampled: Vec::new(),
        }
    }

    /// With `sample` bounding the stacked training sets and the BG/NBD fits.
    pub fn with_sample(mut self, sample: Sample) -> Self {
        self.sample = sample;
        self
    }

    /// The stacked training sets that were sampled, in the order they were built.
    pub fn sampled(&self) -> &[Sampled] {
        &self.sampled
    }

    /// Months of the label windows.
    pub fn horizon_months(&self) -> u32 {
        self.horizon_months
    }

    /// The labelled snapshot at `cutoff`.
    pub fn at(&mut self, cutoff: NaiveDate) -> Result<&Labelled> {
        Ok(&self.built_at(cutoff)?.0)
    }

    /// The model-wide inputs fitted on the purchases before `cutoff`.
    pub fn inputs(&mut self, cutoff: NaiveDate) -> Result<ModelInputs> {
        Ok(self.built_at(cutoff)?.1.clone())
    }

    fn built_at(&mut self, cutoff: NaiveDate) -> Result<&(Labelled, ModelInputs)> {
        if !self.built.contains_key(&cutoff) {
            let spec = SnapshotSpec {
                cutoff,
                horizon_months: self.horizon_months,
            };
            let inputs = fit_inputs(self.histories, &spec, &self.sample)?;
            let labelled = snapshot(self.histories, &spec, &inputs);
            tracing::info!(%cutoff, customers = labelled.len(), ?inputs, "snapshot");
            self.built.insert(cutoff, (labelled, inputs));
        }
        self.built
            .get(&cutoff)
            .ok_or_else(|| TrainError::Input(format!("no snapshot at {cutoff}")))
    }

    /// Every snapshot built so far, by cutoff.
    pub fn built(&self) -> impl Iterator<Item = (&NaiveDate, &Labelled)> {
        self.built
            .iter()
            .map(|(cutoff, (labelled, _))| (cutoff, labelled))
    }

    /// The snapshot `fold` is scored on: at its evaluation cutoff, its customers.
    pub fn evaluated(&mut self, fold: &Fold) -> Result<Labelled> {
        let at = self.at(fold.evaluate_at)?;
        if fold.customers == Customers::Every {
            return Ok(at.clone());
        }
        let mut out = Labelled::default();
        for ((id, row), label) in at.customer_ids.iter().zip(&at.rows).zip(&at.labels) {
            if fold.customers.includes(*id) {
                out.customer_ids.push(*id);
                out.rows.push(*row);
                out.labels.push(*label);
            }
        }
        Ok(out)
    }

    /// The snapshots at `cutoffs`, one below the other, sampled by customer when they hold more
    /// rows than the sample's `max_rows` (see [`Sample`]).
    pub fn stacked(&mut self, cutoffs: &[NaiveDate]) -> Result<Labelled> {
        if cutoffs.is_empty() {
            return Err(TrainError::Input("no training cutoffs".into()));
        }
        let mut out = Labelled::default();
        for cutoff in cutoffs {
            out.extend(self.at(*cutoff)?);
        }
        let rows = out.len();
        let (out, fraction) = self.sample.rows(out);
        if fraction < 1.0 {
            tracing::info!(rows, kept = out.len(), fraction, "sampled a training set");
            self.sampled.push(Sampled {
                cutoffs: cutoffs.to_vec(),
                rows,
                kept: out.len(),
                fraction,
            });
        }
        Ok(out)
    }
}

/// The predictions of every candidate on one fold's evaluation snapshot.
#[derive(Debug, Clone, Default)]
pub struct FoldPredictions {
    /// The label of each customer.
    pub actual: Vec<f64>,
    /// Each candidate's predictions, in the candidates' order.
    pub by_model: Vec<(String, Vec<f64>)>,
}

impl FoldPredictions {
    /// The predictions of `model`.
    pub fn of(&self, model: &str) -> Option<&[f64]> {
        self.by_model
            .iter()
            .find(|(name, _)| name == model)
            .map(|(_, p)| p.as_slice())
    }
}

/// One fold's outcome for every candidate.
#[derive(Debug, Clone, Default)]
pub struct FoldResult {
    /// The customers scored, in the order of the predictions.
    pub customer_ids: Vec<u64>,
    /// One per candidate (named by the fold that asked first; [`Evaluator::scores`] renames).
    pub scores: Vec<Score>,
    /// Every candidate's predictions and the actual values.
    pub predictions: FoldPredictions,
}

/// What makes two folds the same computation: the snapshots trained on, the evaluation cutoff and
/// its customers (not the name).
type FoldKey = (Vec<NaiveDate>, NaiveDate, Customers);

/// Every candidate trained on a fold's snapshots and scored on its evaluation snapshot, each fold
/// computed once: the production run's validation folds, its test and the backtests at earlier
/// cutoffs share most of their folds (the test at t trains up to t − h and evaluates at t, exactly
/// the production run's latest validation fold).
pub struct Evaluator<'a> {
    snapshots: Snapshots<'a>,
    candidates: Vec<Spec>,
    done: BTreeMap<FoldKey, FoldResult>,
}

impl<'a> Evaluator<'a> {
    /// Over `snapshots`, for `candidates`.
    pub fn new(snapshots: Snapshots<'a>, candidates: Vec<Spec>) -> Self {
        Evaluator {
            snapshots,
            candidates,
            done: BTreeMap::new(),
        }
    }

    /// The candidates.
    pub fn candidates(&self) -> &[Spec] {
        &self.candidates
    }

    /// The snapshots.
    pub fn snapshots(&mut self) -> &mut Snapshots<'a> {
        &mut self.snapshots
    }

    /// `fold` evaluated (once).
    pub fn fold(&mut self, fold: &Fold) -> Result<&FoldResult> {
        let key: FoldKey = (fold.train_cutoffs.clone(), fold.evaluate_at, fold.customers);
        if !self.done.contains_key(&key) {
            let result = match fold.customers {
                Customers::Every => {
                    let train = self.snapshots.stacked(&fold.train_cutoffs)?;
                    let test = self.snapshots.evaluated(fold)?;
                    let (scores, predictions) =
                        score_fold(&fold.name, &train, &test, &self.candidates)?;
                    FoldResult {
                        customer_ids: test.customer_ids,
                        scores,
                        predictions,
                    }
                }
                // A half is the whole fold's predictions for its customers: the models are
                // trained once.
                half => {
                    let every = self.fold(&Fold {
                        customers: Customers::Every,
                        ..fold.clone()
                    })?;
                    let kept: Vec<usize> = (0..every.customer_ids.len())
                        .filter(|&i| half.includes(every.customer_ids[i]))
                        .collect();
                    let pick = |values: &[f64]| kept.iter().map(|&i| values[i]).collect::<Vec<_>>();
                    let actual = pick(&every.predictions.actual);
                    let by_model: Vec<(String, Vec<f64>)> = every
                        .predictions
                        .by_model
                        .iter()
                        .map(|(name, p)| (name.clone(), pick(p)))
                        .collect();
                    FoldResult {
                        customer_ids: kept.iter().map(|&i| every.customer_ids[i]).collect(),
                        scores: by_model
                            .iter()
                            .map(|(model, p)| Score {
                                model: model.clone(),
                                fold: fold.name.clone(),
                                metrics: Metrics::of(&actual, p),
                            })
                            .collect(),
                        predictions: FoldPredictions { actual, by_model },
                    }
                }
            };
            self.done.insert(key.clone(), result);
        }
        self.done
            .get(&key)
            .ok_or_else(|| TrainError::Input(format!("fold at {} not evaluated", fold.evaluate_at)))
    }

    /// `fold`'s scores, named by it.
    pub fn scores(&mut self, fold: &Fold) -> Result<Vec<Score>> {
        let name = fold.name.clone();
        Ok(self
            .fold(fold)?
            .scores
            .iter()
            .map(|s| Score {
                fold: name.clone(),
                ..s.clone()
            })
            .collect())
    }
}

/// The champion chosen on a plan's validation folds.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The validation folds.
    pub folds: Vec<Fold>,
    /// Every candidate's mean metrics over them (fold `validation`).
    pub scores: Vec<Score>,
    /// Each fold's scores (fold `validation-<evaluation cutoff>`).
    pub by_fold: Vec<Score>,
    /// The candidate each fold alone would have chosen: how stable the choice is.
    pub per_fold: Vec<(NaiveDate, String)>,
    /// The candidate with the lowest mean MAE (ties by the mean normalised Gini).
    pub champion: String,
}

impl Selection {
    /// The latest validation fold: the one whose labels end last, where intervals are calibrated.
    pub fn latest_fold(&self) -> Option<&Fold> {
        self.folds.iter().max_by_key(|f| f.evaluate_at)
    }

    /// The candidates with a lower mean validation MAE than the champion: those the
    /// one-standard-error rule passed over for it (none when the champion has the lowest MAE).
    pub fn passed_over(&self) -> Vec<String> {
        let mae = |name: &str| {
            self.scores
                .iter()
                .find(|s| s.model == name)
                .map(|s| s.metrics.mae)
        };
        let Some(champion) = mae(&self.champion) else {
            return Vec::new();
        };
        self.scores
            .iter()
            .filter(|s| s.metrics.mae < champion)
            .map(|s| s.model.clone())
            .collect()
    }
}

/// The fold name of one validation fold's own scores.
pub fn validation_at(at: NaiveDate) -> String {
    format!("validation-{at}")
}

/// Chooses the champion on `folds`: every candidate's mean metrics over them, the lowest mean MAE.
pub fn select(evaluator: &mut Evaluator<'_>, folds: &[Fold]) -> Result<Selection> {
    if folds.is_empty() {
        return Err(TrainError::Input("no validation fold".into()));
    }
    let mut by_fold = Vec::new();
    let mut per_fold = Vec::new();
    let mut sums: Vec<(String, Vec<Metrics>)> = evaluator
        .candidates()
        .iter()
        .map(|c| (c.name(), Vec::new()))
        .collect();
    for fold in folds {
        let named = Fold {
            name: validation_at(fold.evaluate_at),
            ..fold.clone()
        };
        let scores = evaluator.scores(&named)?;
        if let Some(best) = champion_of(&scores) {
            per_fold.push((fold.evaluate_at, best.model.clone()));
        }
        for s in &scores {
            if let Some((_, all)) = sums.iter_mut().find(|(name, _)| *name == s.model) {
                all.push(s.metrics);
            }
        }
        by_fold.extend(scores);
    }
    let scores: Vec<Score> = sums
        .into_iter()
        .filter(|(_, all)| !all.is_empty())
        .map(|(model, all)| Score {
            model,
            fold: "validation".into(),
            metrics: Metrics::mean(&all),
        })
        .collect();
    let best = champion(&scores)
        .map(|s| s.model.clone())
        .ok_or_else(|| TrainError::Input("no candidate was scored".into()))?;
    let champion = within_one_standard_error(evaluator, folds, &scores, &best)?;
    Ok(Selection {
        folds: folds.to_vec(),
        scores,
        by_fold,
        per_fold,
        champion,
    })
}

/// Whether `spec` is of the BG/NBD + Gamma-Gamma family, the structural model of repeat buying
/// that the selection prefers ([`within_one_standard_error`]).
pub fn is_structural(spec: &Spec) -> bool {
    matches!(spec, Spec::BgNbd { .. })
}

/// The one-standard-error rule: when the candidate with the lowest mean validation MAE (`best`) is
/// not of the BG/NBD family, the best of that family is chosen instead unless `best` is better by
/// more than one standard error of the difference (paired by customer within the folds, and
/// between the folds: at least two) and ranks the customers at least as well (its mean Spearman
/// correlation over the folds; [`serves_best`]). A baseline or a
/// learned model wins a fold by chance more often than it wins a season: the few folds a short
/// history holds are not enough evidence to serve it. And what the product serves besides a
/// forecast is a ranking (the top list, the tiers, the at-risk list): a model that lowers the
/// absolute error but ranks worse is not served for it (with their totals calibrated, the learned
/// models come within a few percent of BG/NBD's MAE on the real data and rank worse at every
/// cutoff).
fn within_one_standard_error(
    evaluator: &mut Evaluator<'_>,
    folds: &[Fold],
    scores: &[Score],
    best: &str,
) -> Result<String> {
    let structural = |name: &str| {
        evaluator
            .candidates()
            .iter()
            .any(|c| c.name() == name && is_structural(c))
    };
    if structural(best) {
        return Ok(best.to_string());
    }
    let Some(alternative) = scores
        .iter()
        .filter(|s| s.fold == "validation" && structural(&s.model))
        .min_by(|a, b| by_mae_then_gini(a, b))
    else {
        return Ok(best.to_string());
    };
    let mean_spearman = |name: &str| {
        scores
            .iter()
            .find(|s| s.fold == "validation" && s.model == name)
            .map(|s| s.metrics.spearman)
    };
    let spearman = (
        mean_spearman(best).unwrap_or(f64::NEG_INFINITY),
        alternative.metrics.spearman,
    );
    let alternative = alternative.model.clone();
    let mut on_folds = Vec::new();
    for fold in folds {
        let p = &evaluator.fold(fold)?.predictions;
        let (Some(a), Some(b)) = (p.of(&alternative), p.of(best)) else {
            return Ok(best.to_string());
        };
        on_folds.push(Paired {
            actual: p.actual.clone(),
            alternative: a.to_vec(),
            best: b.to_vec(),
        });
    }
    Ok(if serves_best(&on_folds, spearman) {
        best.to_string()
    } else {
        alternative
    })
}

/// One validation fold's actual values and the two contenders' predictions, customer by customer.
struct Paired {
    actual: Vec<f64>,
    alternative: Vec<f64>,
    best: Vec<f64>,
}

/// The decision of [`within_one_standard_error`]: whether `best` is served over the structural
/// alternative, from their predictions on the folds and their mean Spearman correlations
/// `(best, alternative)`. It is when it ranks at least as well and the mean over the folds of the
/// per-fold mean difference of absolute errors exceeds its standard error, taken as the larger of
/// the customers' (within the folds) and the seasons' (between them): what the choice is for is
/// the next window, another season, so one fold, which says nothing of how much a season moves
/// the difference, is never enough.
fn serves_best(folds: &[Paired], (best, alternative): (f64, f64)) -> bool {
    if folds.len() < 2 || best < alternative {
        return false;
    }
    let mut means = Vec::new();
    let mut variance = 0.0;
    for fold in folds {
        let d: Vec<f64> = fold
            .actual
            .iter()
            .zip(fold.alternative.iter().zip(&fold.best))
            .map(|(y, (a, b))| (a - y).abs() - (b - y).abs())
            .collect();
        let n = d.len().max(2) as f64;
        let mean = d.iter().sum::<f64>() / n;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        means.push(mean);
        variance += var / n;
    }
    let k = folds.len() as f64;
    let difference = means.iter().sum::<f64>() / k;
    let within = variance.sqrt() / k;
    let between =
        (means.iter().map(|m| (m - difference).powi(2)).sum::<f64>() / (k - 1.0)).sqrt() / k.sqrt();
    difference > within.max(between)
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

/// How a forecast's intervals did at its cutoff: its champion's 10th-90th percentile intervals
/// calibrated on its latest validation fold, carried by rank to the predictions at the cutoff
/// ([`models::interval::Calibration::carried_to`], as the production version's are to the customers
/// it serves) and judged on what the customers then spent, beside one interval for everyone (the
/// calibration fold's).
#[derive(Debug, Clone)]
pub struct IntervalCheck {
    /// The forecast's cutoff.
    pub cutoff: NaiveDate,
    /// The champion whose intervals these are.
    pub champion: String,
    /// Its intervals' scores.
    pub ours: models::interval::IntervalScore,
    /// One interval for everyone.
    pub baseline: models::interval::IntervalScore,
}

/// The interval check of `forecast` ([`IntervalCheck`]), or `None` without a positive prediction to
/// calibrate on.
pub fn interval_check(
    evaluator: &mut Evaluator<'_>,
    forecast: &Forecast,
) -> Result<Option<IntervalCheck>> {
    use models::interval::{Calibration, IntervalScore, baseline};
    let Some(fold) = forecast.selection.latest_fold() else {
        return Ok(None);
    };
    let champion = forecast.champion();
    let rows = evaluator.snapshots().evaluated(&forecast.test)?.rows;
    let calibrating = &evaluator.fold(fold)?.predictions;
    let (Some(calibration_predicted), Some(test)) =
        (calibrating.of(champion), forecast.predictions.of(champion))
    else {
        return Ok(None);
    };
    let Some(calibration) = Calibration::fit(calibration_predicted, &calibrating.actual) else {
        return Ok(None);
    };
    let calibration = carry(&calibration, calibration_predicted, test, &rows);
    let actual = &forecast.predictions.actual;
    let ours: Vec<(f64, f64)> = test.iter().map(|p| calibration.interval(*p)).collect();
    let everyone = vec![baseline(&calibrating.actual); actual.len()];
    Ok(Some(IntervalCheck {
        cutoff: forecast.cutoff,
        champion: champion.to_string(),
        ours: IntervalScore::of(&ours, actual),
        baseline: IntervalScore::of(&everyone, actual),
    }))
}

/// `calibration`, fitted on a fold whose predictions were `fitted_on`, carried to a population
/// predicted `predicted` whose rows are `rows`: where intervals stop reaching 0 by the rows' BG/NBD
/// probability of no purchase ([`models::interval::Calibration::carried_with`]), by rank where the
/// rows carry no BG/NBD forecast (the seed's table).
pub fn carry(
    calibration: &models::interval::Calibration,
    fitted_on: &[f64],
    predicted: &[f64],
    rows: &[contract::FeatureRow],
) -> models::interval::Calibration {
    if rows.iter().any(|r| r.extra.bgnbd_expected_purchases > 0.0) {
        let p_no_purchase: Vec<f64> = rows.iter().map(|r| r.extra.bgnbd_p_no_purchase).collect();
        calibration.carried_with(fitted_on, predicted, &p_no_purchase)
    } else {
        calibration.carried_to(fitted_on, predicted)
    }
}

/// The interval checks as a Markdown table, a row per cutoff.
pub fn interval_table(checks: &[IntervalCheck]) -> String {
    let mut out = String::from(
        "| cutoff | champion | coverage | buyers | non-buyers | mean width £ | interval score £ | one interval for everyone: buyers | non-buyers | score £ |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in checks {
        out.push_str(&format!(
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} | {:.1}% | {:.1}% | {:.0} |\n",
            c.cutoff,
            c.champion,
            c.ours.coverage * 100.0,
            c.ours.coverage_buyers * 100.0,
            c.ours.coverage_non_buyers * 100.0,
            c.ours.mean_width,
            c.ours.interval_score,
            c.baseline.coverage_buyers * 100.0,
            c.baseline.coverage_non_buyers * 100.0,
            c.baseline.interval_score,
        ));
    }
    out
}

/// Rows a tree ensemble (random forest, two-stage) is fitted on at most. Their fitting time grows
/// with their rows (faster than linearly: deeper trees), the other families' barely: above it they
/// are fitted on a seeded sample of whole customers ([`Sample`], seed 0), so that no candidate's fit
/// takes more than a fixed budget whatever the size of the data (on this project's 2-core machine a
/// two-stage model on 30,000 rows of the real data fits in 8-14 s, on 100,000 generated rows in
/// 80-130 s). The real data's largest training set (the test fold's, nine monthly cutoffs) has
/// 30,243 rows: it is never cut.
pub const TREE_ROW_BUDGET: usize = 40_000;

fn is_tree_ensemble(spec: &Spec) -> bool {
    matches!(spec, Spec::RandomForest { .. } | Spec::TwoStage { .. })
}

/// `train` as `spec` is fitted on: whole, or within [`TREE_ROW_BUDGET`] for a tree ensemble.
pub fn budgeted<'a>(spec: &Spec, train: &'a Labelled) -> std::borrow::Cow<'a, Labelled> {
    if !is_tree_ensemble(spec) || train.len() <= TREE_ROW_BUDGET {
        return std::borrow::Cow::Borrowed(train);
    }
    let sample = Sample {
        max_rows: TREE_ROW_BUDGET,
        ..Sample::default()
    };
    std::borrow::Cow::Owned(sample.rows(train.clone()).0)
}

/// Trains every candidate on `train` and scores it on `test` (whose rows, features only, are the
/// population the models are fitted for).
pub fn score_fold(
    fold: &str,
    train: &Labelled,
    test: &Labelled,
    candidates: &[Spec],
) -> Result<(Vec<Score>, FoldPredictions)> {
    let actual = test.labels.clone();
    let set = TrainingSet {
        rows: &train.rows,
        labels: &train.labels,
        population: &test.rows,
    };
    let mut scores = Vec::new();
    let mut by_model = Vec::new();
    // The tree ensembles' sample is drawn once per fold, not once per candidate.
    let mut for_trees: Option<std::borrow::Cow<'_, Labelled>> = None;
    for spec in candidates {
        let rows: &Labelled = match is_tree_ensemble(spec) {
            true => for_trees.get_or_insert_with(|| budgeted(spec, train)),
            false => train,
        };
        let set = TrainingSet {
            rows: &rows.rows,
            labels: &rows.labels,
            ..set
        };
        let started = std::time::Instant::now();
        let (_, predicted) = spec.fit_predicting(&set)?;
        let metrics = Metrics::of(&actual, &predicted);
        tracing::info!(
            fold,
            model = %spec.name(),
            rows = set.rows.len(),
            seconds = started.elapsed().as_secs_f64(),
            mae = metrics.mae,
            "scored"
        );
        scores.push(Score {
            model: spec.name(),
            fold: fold.to_string(),
            metrics,
        });
        by_model.push((spec.name(), predicted));
    }
    Ok((scores, FoldPredictions { actual, by_model }))
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

/// The champion: lowest validation MAE, ties broken by higher validation normalised Gini.
pub fn champion(scores: &[Score]) -> Option<&Score> {
    scores
        .iter()
        .filter(|s| s.fold == "validation")
        .min_by(|a, b| by_mae_then_gini(a, b))
}

/// The lowest MAE of `scores` (of one fold), ties broken by the higher normalised Gini.
fn champion_of(scores: &[Score]) -> Option<&Score> {
    scores.iter().min_by(|a, b| by_mae_then_gini(a, b))
}

fn by_mae_then_gini(a: &Score, b: &Score) -> std::cmp::Ordering {
    a.metrics.mae.total_cmp(&b.metrics.mae).then(
        b.metrics
            .normalised_gini
            .total_cmp(&a.metrics.normalised_gini),
    )
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

    #[test]
    fn a_model_outside_the_bgnbd_family_is_served_only_when_clearly_better_and_ranking_as_well() {
        // 1,000 customers; the alternative misses each by 10, the other each by 4 (clearly better)
        // or by 0.5 and 19.2 in turn (better on the mean by 0.15, with a standard error of 0.29).
        let actual: Vec<f64> = (0..1_000).map(|i| f64::from(i % 50)).collect();
        let alternative: Vec<f64> = actual.iter().map(|y| y + 10.0).collect();
        let fold = |best: Vec<f64>| Paired {
            actual: actual.clone(),
            alternative: alternative.clone(),
            best,
        };
        let clearly: Vec<f64> = actual.iter().map(|y| y + 4.0).collect();
        let by_chance: Vec<f64> = actual
            .iter()
            .enumerate()
            .map(|(i, y)| y + if i % 2 == 0 { 0.5 } else { 19.2 })
            .collect();
        let folds = [fold(clearly.clone()), fold(clearly.clone())];
        assert!(serves_best(&folds, (0.60, 0.60)));
        // As much better on the error, but ranking worse: not served.
        assert!(!serves_best(&folds, (0.59, 0.60)));
        // One fold, however clear: a season's variation is unknown.
        assert!(!serves_best(&folds[..1], (0.9, 0.6)));
        // Better on the mean error by less than its standard error within the folds.
        let noisy = [fold(by_chance.clone()), fold(by_chance)];
        assert!(!serves_best(&noisy, (0.9, 0.6)));
        // Much better in one season, worse in another: the seasons' spread decides.
        let worse: Vec<f64> = actual.iter().map(|y| y + 14.0).collect();
        assert!(!serves_best(&[fold(clearly), fold(worse)], (0.9, 0.6)));
        assert!(!serves_best(&[], (0.9, 0.6)));
    }

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
