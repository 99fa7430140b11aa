//! Evaluation: the labelled snapshots a run needs, built once per cutoff ([`Snapshots`]); every
//! candidate trained on a fold's snapshots and scored at its evaluation cutoff ([`score_fold`]),
//! each fold once ([`Evaluator`]); the tree ensembles' row budget.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use contract::{ModelInputs, SnapshotSpec};
use models::Spec;
use models::TrainingSet;
use models::metrics::Metrics;
use models::registry::Score;

use crate::backtest::{Customers, Fold};
use crate::training::{Histories, Labelled, Sample, fit_inputs, snapshot};
use crate::{Result, TrainError};

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
