//! The candidate models, each fitted on feature rows and their labels and predicting `clv_6m` for
//! any rows: naive baselines, ridge regression, random forest (smartcore),
//! gradient-boosted trees (forust-ml), a two-stage model (P(buys) from a linfa-ensemble bagged
//! linfa-trees classifier × spend from boosted trees), and BG/NBD + Gamma-Gamma (the row's
//! probabilistic features). A prediction reads one row: nothing about other customers.

use contract::{Feature, FeatureRow};
use forust_ml::{GradientBooster, Matrix};
use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Axis};
use rand08::SeedableRng;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};

use crate::forest::{FlatForest, SmartForest};
use crate::learned::{boost, column_major, dense, design, inputs, ratio, ridge};
use crate::{ModelError, Result};

/// Row features added after versions with learned models were registered, which
/// [`FeatureSet::All`] leaves out so that those versions keep predicting from the columns they
/// were fitted on (`bgnbd_p_no_purchase`: the at-risk band's input, 2026-12-03).
pub const ADDED_LATER: &[Feature] = &[Feature::BgnbdPNoPurchase];

/// Which features a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureSet {
    /// The contract's nine features only (the seed-compatible `POST /predict`).
    Nine,
    /// The nine and the extra point-in-time features, except the naive baseline `naive_6m` (while
    /// the history is shorter than its six months it equals `total_revenue`, which makes the early
    /// snapshots' design singular; it is the naive models' input) and the features added to the row
    /// after learned models were first registered ([`ADDED_LATER`]): a learned model reads its
    /// columns by position, so a version registered before an addition must see the same columns.
    All,
}

impl FeatureSet {
    /// The features, in column order.
    pub fn features(self) -> Vec<Feature> {
        match self {
            FeatureSet::Nine => Feature::NINE.to_vec(),
            FeatureSet::All => Feature::ALL
                .iter()
                .copied()
                .filter(|f| *f != Feature::Naive6m && !ADDED_LATER.contains(f))
                .collect(),
        }
    }
}

/// What a model is fitted on.
#[derive(Debug, Clone, Copy)]
pub struct TrainingSet<'a> {
    /// The training rows (snapshots stacked), each with a label window that ended by the cutoff.
    pub rows: &'a [FeatureRow],
    /// Their labels: revenue in the label window.
    pub labels: &'a [f64],
    /// The rows of the population at the cutoff the model is fitted for (features only, all known
    /// at that cutoff): population-level constants are taken there and stored in the model.
    pub population: &'a [FeatureRow],
}

/// A model family and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Spec {
    /// `naive_6m` as the prediction.
    Naive,
    /// `naive_6m` × (training label total / training naive total).
    NaiveScaled,
    /// BG/NBD expected purchases × Gamma-Gamma expected spend (`bgnbd_clv`), × a factor (1 or the
    /// training set's label / prediction ratio), and × the row's seasonal index when `seasonal`.
    ///
    /// Two settings shape it: `year_before_weight` w blends in each customer's own seasonality, their
    /// revenue in the label window's months a year before rescaled to `bgnbd_clv`'s total,
    /// `(1 − w)·bgnbd_clv + w·year_before·s`; `sharpen` q raises that to the power q and multiplies by
    /// ρ (q > 1 moves expected revenue from the many unlikely buyers to the likely ones, which lowers
    /// the absolute error of a zero-heavy target). The constants s = Σbgnbd_clv / Σyear_before and
    /// ρ = Σbgnbd_clv / Σblend^q are fixed when the model is fitted, over the population it is fitted
    /// for ([`TrainingSet::population`]), so neither changes that population's total, and a
    /// customer's prediction is a function of its row and the model alone.
    BgNbd {
        /// Rescale by the training fold's ratio of label to prediction totals.
        scaled: bool,
        /// Multiply by the seasonal index (the label window's months a year before).
        seasonal: bool,
        /// The weight of the customer's revenue in the same months a year before.
        #[serde(default)]
        year_before_weight: f64,
        /// The power the blend is raised to before it is rescaled to its total.
        #[serde(default = "one")]
        sharpen: f64,
    },
    /// Least squares on standardised features, with a ridge penalty of `ridge` × rows (0: ordinary
    /// least squares, as scikit-learn's `LinearRegression`).
    Linear {
        /// Input columns.
        features: FeatureSet,
        /// The penalty ([`RIDGE`] for the features whose BG/NBD outputs are nearly collinear).
        #[serde(default)]
        ridge: f64,
    },
    /// Random forest regression.
    RandomForest {
        /// Input columns.
        features: FeatureSet,
        /// Trees.
        trees: usize,
        /// Minimum samples per leaf.
        min_leaf: usize,
    },
    /// Gradient-boosted regression trees (squared loss).
    Boosting {
        /// Input columns.
        features: FeatureSet,
        /// Trees.
        trees: usize,
        /// Learning rate.
        learning_rate: f32,
        /// Depth of each tree.
        depth: usize,
    },
    /// P(buys in the window) × expected spend if buying.
    TwoStage {
        /// Input columns.
        features: FeatureSet,
        /// Classifier trees.
        trees: usize,
    },
}

impl Spec {
    /// A short, stable name for tables and the registry.
    pub fn name(&self) -> String {
        let set = |f: &FeatureSet| match f {
            FeatureSet::Nine => "nine",
            FeatureSet::All => "all",
        };
        match self {
            Spec::Naive => "naive".into(),
            Spec::NaiveScaled => "naive_scaled".into(),
            Spec::BgNbd {
                scaled,
                seasonal,
                year_before_weight,
                sharpen,
            } => {
                let mut name = String::from("bgnbd_gg");
                if *seasonal {
                    name.push_str("_seasonal");
                }
                if *scaled {
                    name.push_str("_scaled");
                }
                if *year_before_weight != 0.0 {
                    name.push_str(&format!("_yb{year_before_weight}"));
                }
                if *sharpen != 1.0 {
                    name.push_str(&format!("_q{sharpen}"));
                }
                name
            }
            Spec::Linear { features, ridge } if *ridge > 0.0 => {
                format!("linear_{}_ridge{ridge}", set(features))
            }
            Spec::Linear { features, .. } => format!("linear_{}", set(features)),
            Spec::RandomForest { features, .. } => format!("random_forest_{}", set(features)),
            Spec::Boosting { features, .. } => format!("boosting_{}", set(features)),
            Spec::TwoStage { features, .. } => format!("two_stage_{}", set(features)),
        }
    }

    /// The features the model reads.
    pub fn features(&self) -> Vec<Feature> {
        match self {
            Spec::Naive | Spec::NaiveScaled => vec![Feature::Naive6m],
            Spec::BgNbd {
                seasonal,
                year_before_weight,
                ..
            } => {
                let mut features = vec![Feature::BgnbdClv];
                if *seasonal {
                    features.push(Feature::SeasonIndex);
                }
                if *year_before_weight != 0.0 {
                    features.push(Feature::RevenueYearBeforeWindow);
                }
                features
            }
            Spec::Linear { features, .. }
            | Spec::RandomForest { features, .. }
            | Spec::Boosting { features, .. }
            | Spec::TwoStage { features, .. } => features.features(),
        }
    }

    /// Whether it is a learned model (fitted by least squares or trees on the stacked snapshots),
    /// whose total is calibrated where it is fitted for ([`Fitted::Calibrated`]).
    pub fn is_learned(&self) -> bool {
        matches!(
            self,
            Spec::Linear { .. }
                | Spec::RandomForest { .. }
                | Spec::Boosting { .. }
                | Spec::TwoStage { .. }
        )
    }

    /// Fits the model on `train`.
    pub fn fit(&self, train: &TrainingSet<'_>) -> Result<Fitted> {
        Ok(self.fit_predicting(train)?.0)
    }

    /// Fits the model on `train` and predicts [`TrainingSet::population`] with it (what a fold
    /// scores and production serves: computed once, not twice).
    ///
    /// A learned model's total is calibrated over that population to BG/NBD + Gamma-Gamma's
    /// seasonal forecast, Σ `bgnbd_clv` × `season_index`: its stacked training windows hold the
    /// Christmas months more often than the window it forecasts, and trees cannot extrapolate a
    /// season, so uncalibrated it predicted 1.6-2.6 times the actual total on the real data. The
    /// factor is fixed at fit time, so each prediction still reads one row; it changes no ranking.
    pub fn fit_predicting(&self, train: &TrainingSet<'_>) -> Result<(Fitted, Vec<f64>)> {
        let fitted = self.fit_raw(train)?;
        let mut predicted = fitted.predict(self, train.population)?;
        if !self.is_learned() {
            return Ok((fitted, predicted));
        }
        let target: f64 = train
            .population
            .iter()
            .map(|r| r.extra.bgnbd_clv * r.extra.season_index)
            .sum();
        let raw: f64 = predicted.iter().sum();
        if !(target.is_finite() && raw.is_finite() && target > 0.0 && raw > 0.0) {
            return Ok((fitted, predicted));
        }
        let factor = target / raw;
        predicted.iter_mut().for_each(|p| *p *= factor);
        Ok((
            Fitted::Calibrated {
                model: Box::new(fitted),
                factor,
            },
            predicted,
        ))
    }

    fn fit_raw(&self, train: &TrainingSet<'_>) -> Result<Fitted> {
        if train.rows.len() != train.labels.len() {
            return Err(ModelError::Input(format!(
                "{} training rows but {} labels",
                train.rows.len(),
                train.labels.len()
            )));
        }
        if train.rows.is_empty() {
            return Err(ModelError::Input("no training rows".into()));
        }
        let y = train.labels.to_vec();
        let fitted = match self {
            Spec::Naive => Fitted::Column {
                feature: Feature::Naive6m,
                factor: 1.0,
            },
            Spec::NaiveScaled => Fitted::Column {
                feature: Feature::Naive6m,
                factor: ratio(&y, &inputs(train.rows, Feature::Naive6m)),
            },
            Spec::BgNbd {
                scaled,
                seasonal,
                year_before_weight,
                sharpen,
            } => {
                let mut shape =
                    BgNbdShape::fit(*seasonal, *year_before_weight, *sharpen, train.population);
                if *scaled {
                    let base: Vec<f64> = train.rows.iter().map(|r| shape.predict(r)).collect();
                    shape.factor = ratio(&y, &base);
                }
                Fitted::BgNbd(shape)
            }
            Spec::Linear {
                features,
                ridge: penalty,
            } => {
                let features = features.features();
                // Without a penalty, one small enough to change no digit that is printed keeps an
                // exactly collinear design solvable.
                let penalty = if *penalty > 0.0 { *penalty } else { 1e-12 };
                let (coefficients, intercept) = ridge(train.rows, &features, &y, penalty)?;
                Fitted::Linear {
                    coefficients,
                    intercept,
                }
            }
            Spec::RandomForest {
                features,
                trees,
                min_leaf,
            } => {
                let x = dense(train.rows, &features.features())?;
                let parameters = RandomForestRegressorParameters::default()
                    .with_n_trees(*trees)
                    .with_min_samples_leaf(*min_leaf)
                    .with_seed(42);
                let model = RandomForestRegressor::fit(&x, &y, parameters)
                    .map_err(ModelError::fit("random forest"))?;
                Fitted::RandomForest(Box::new(model))
            }
            Spec::Boosting {
                features,
                trees,
                learning_rate,
                depth,
            } => {
                let x = column_major(train.rows, &features.features());
                Fitted::Boosting(boost(
                    &x,
                    train.rows.len(),
                    &y,
                    *trees,
                    *learning_rate,
                    *depth,
                )?)
            }
            Spec::TwoStage { features, trees } => {
                let features = features.features();
                let x = design(train.rows, &features)?;
                let bought: Array1<usize> = y.iter().map(|v| usize::from(*v > 0.0)).collect();
                let dataset = Dataset::new(x, bought);
                let classifier = EnsembleLearnerParams::new_fixed_rng(
                    DecisionTree::params()
                        .max_depth(Some(6))
                        .min_weight_leaf(10.0),
                    rand08::rngs::StdRng::seed_from_u64(42),
                )
                .ensemble_size(*trees)
                .bootstrap_proportion(0.7)
                .fit(&dataset)
                .map_err(ModelError::fit("buy classifier"))?;
                let buyers: Vec<FeatureRow> = train
                    .rows
                    .iter()
                    .zip(&y)
                    .filter(|(_, y)| **y > 0.0)
                    .map(|(r, _)| *r)
                    .collect();
                let spend_y: Vec<f64> = y.iter().copied().filter(|y| *y > 0.0).collect();
                let spend_x = column_major(&buyers, &features);
                let spend = boost(&spend_x, buyers.len(), &spend_y, 200, 0.05, 3)?;
                Fitted::TwoStage {
                    classifier: classifier
                        .models
                        .into_iter()
                        .zip(classifier.model_features)
                        .collect(),
                    spend,
                }
            }
        };
        Ok(fitted)
    }
}

/// The fitted shape of a BG/NBD + Gamma-Gamma model ([`Spec::BgNbd`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdShape {
    /// × the seasonal index.
    pub seasonal: bool,
    /// Weight w of the revenue in the same months a year before.
    pub year_before_weight: f64,
    /// Power q of the blend.
    pub sharpen: f64,
    /// s: Σbgnbd_clv / Σyear_before over the population fitted for (`None`: no revenue a year
    /// before there, and no blend).
    pub blend_scale: Option<f64>,
    /// ρ: Σbgnbd_clv / Σblend^q over the same population.
    pub rescale: f64,
    /// The overall factor.
    pub factor: f64,
}

impl BgNbdShape {
    /// The constants of the shape over `population`.
    pub fn fit(
        seasonal: bool,
        year_before_weight: f64,
        sharpen: f64,
        population: &[FeatureRow],
    ) -> Self {
        let clv_total: f64 = population.iter().map(|r| r.extra.bgnbd_clv).sum();
        let year_total: f64 = population
            .iter()
            .map(|r| r.extra.revenue_year_before_window)
            .sum();
        let mut shape = BgNbdShape {
            seasonal,
            year_before_weight,
            sharpen,
            blend_scale: (year_total > 0.0).then(|| clv_total / year_total),
            rescale: 1.0,
            factor: 1.0,
        };
        let shaped_total: f64 = population.iter().map(|r| shape.shaped(r)).sum();
        if shaped_total > 0.0 {
            shape.rescale = clv_total / shaped_total;
        }
        shape
    }

    /// The blend raised to the power, before the constants.
    fn shaped(&self, row: &FeatureRow) -> f64 {
        let clv = row.extra.bgnbd_clv;
        let blend = match self.blend_scale {
            Some(scale) if self.year_before_weight != 0.0 => {
                (1.0 - self.year_before_weight) * clv
                    + self.year_before_weight * row.extra.revenue_year_before_window * scale
            }
            _ => clv,
        };
        blend.max(0.0).powf(self.sharpen)
    }

    /// The prediction for one row.
    pub fn predict(&self, row: &FeatureRow) -> f64 {
        let season = if self.seasonal {
            row.extra.season_index
        } else {
            1.0
        };
        self.shaped(row) * self.rescale * season * self.factor
    }
}

/// A fitted model.
#[derive(Serialize, Deserialize)]
pub enum Fitted {
    /// A feature times a factor (naive).
    Column {
        /// The feature.
        #[serde(alias = "column")]
        feature: Feature,
        /// The factor.
        factor: f64,
    },
    /// BG/NBD + Gamma-Gamma, shaped as [`Spec::BgNbd`] says.
    BgNbd(BgNbdShape),
    /// A linear function of the features.
    Linear {
        /// One per feature.
        coefficients: Vec<f64>,
        /// The constant.
        intercept: f64,
    },
    /// A smartcore random forest.
    RandomForest(Box<SmartForest>),
    /// A forust-ml booster.
    Boosting(GradientBooster),
    /// Bagged classification trees (each with the features it saw) and a spend booster.
    TwoStage {
        /// The classifier's trees.
        classifier: Vec<(DecisionTree<f64, usize>, Vec<usize>)>,
        /// Spend of buyers.
        spend: GradientBooster,
    },
    /// A learned model × the factor that calibrated its total where it was fitted
    /// ([`Spec::fit_predicting`]).
    Calibrated {
        /// The learned model.
        model: Box<Fitted>,
        /// Its factor.
        factor: f64,
    },
}

/// `predict` over `rows`, in slices on every core when there are many.
fn in_parallel(
    rows: &[FeatureRow],
    predict: impl Fn(&[FeatureRow]) -> Result<Vec<f64>> + Sync,
) -> Result<Vec<f64>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || rows.len() < PARALLEL_ROWS {
        return predict(rows);
    }
    let slice = rows.len().div_ceil(threads);
    let predict = &predict;
    let parts: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(slice)
            .map(|part| scope.spawn(move || predict(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ModelError::Input("a prediction thread panicked".into()))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(rows.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Rows from which [`Fitted::predict`] splits its work across threads.
const PARALLEL_ROWS: usize = 20_000;

impl Fitted {
    /// A prediction for each row, clipped at 0 (nobody spends less than nothing); each depends on
    /// its own row only, so that many rows are predicted in slices on every core.
    pub fn predict(&self, spec: &Spec, rows: &[FeatureRow]) -> Result<Vec<f64>> {
        // A forest predicting many rows has its trees read out once, then predicted tree by tree
        // in every slice ([`FlatForest`]).
        let forest = match self.forest() {
            Some(model) if rows.len() >= PARALLEL_ROWS => {
                FlatForest::read(model, spec.features().len())
            }
            _ => None,
        };
        in_parallel(rows, |part| self.predict_slice(spec, part, forest.as_ref()))
    }

    /// The smartcore forest this model is, or calibrates.
    fn forest(&self) -> Option<&SmartForest> {
        match self {
            Fitted::RandomForest(model) => Some(model),
            Fitted::Calibrated { model, .. } => model.forest(),
            _ => None,
        }
    }

    fn predict_slice(
        &self,
        spec: &Spec,
        rows: &[FeatureRow],
        forest: Option<&FlatForest>,
    ) -> Result<Vec<f64>> {
        let features = spec.features();
        let n = rows.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let raw: Vec<f64> = match self {
            Fitted::Column { feature, factor } => {
                rows.iter().map(|r| r.input(*feature) * factor).collect()
            }
            Fitted::BgNbd(shape) => rows.iter().map(|r| shape.predict(r)).collect(),
            Fitted::Calibrated { model, factor } => model
                .predict_slice(spec, rows, forest)?
                .into_iter()
                .map(|p| p * factor)
                .collect(),
            Fitted::Linear {
                coefficients,
                intercept,
            } => {
                if coefficients.len() != features.len() {
                    return Err(ModelError::Input(format!(
                        "{} coefficients for {} features",
                        coefficients.len(),
                        features.len()
                    )));
                }
                rows.iter()
                    .map(|r| {
                        features
                            .iter()
                            .zip(coefficients)
                            .map(|(f, c)| r.input(*f) * c)
                            .sum::<f64>()
                            + intercept
                    })
                    .collect()
            }
            Fitted::RandomForest(model) => match forest {
                Some(forest) => forest.predict(&column_major(rows, &features), n),
                None => model
                    .predict(&dense(rows, &features)?)
                    .map_err(ModelError::fit("random forest"))?,
            },
            Fitted::Boosting(model) => {
                let x = column_major(rows, &features);
                model.predict(&Matrix::new(&x, n, features.len()), true)
            }
            Fitted::TwoStage { classifier, spend } => {
                let x = design(rows, &features)?;
                let mut votes = vec![0.0; n];
                for (tree, columns) in classifier {
                    let sub = x.select(Axis(1), columns);
                    for (v, class) in votes.iter_mut().zip(tree.predict(&sub)) {
                        *v += class as f64;
                    }
                }
                let xs = column_major(rows, &features);
                let amount = spend.predict(&Matrix::new(&xs, n, features.len()), true);
                votes
                    .iter()
                    .zip(amount)
                    .map(|(v, a)| v / classifier.len() as f64 * a)
                    .collect()
            }
        };
        Ok(raw.into_iter().map(|v: f64| v.max(0.0)).collect())
    }
}

fn one() -> f64 {
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trained;
    use crate::learned::RIDGE;
    use contract::{ModelInputs, RowBuilder};

    fn rows(n: usize) -> (Vec<FeatureRow>, Vec<f64>) {
        let inputs = ModelInputs::example();
        let cutoff = chrono::NaiveDate::from_ymd_opt(2011, 6, 1).expect("a date");
        let builder = RowBuilder::new(&inputs, cutoff);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let mut state = contract::CustomerState::default();
            for k in 0..=(i % 7) {
                state.purchases.insert(
                    format!("{i}-{k}"),
                    contract::Purchase {
                        time_ms: 1_262_304_000_000 + (k as i64) * 20 * contract::MS_PER_DAY,
                        revenue_milli: 1_000 * (1 + (i as i64 % 13)),
                    },
                );
            }
            let row = builder.row(&state).expect("a customer with purchases");
            labels.push(2.0 * row.nine.total_revenue + 3.0);
            rows.push(row);
        }
        (rows, labels)
    }

    #[test]
    fn the_linear_model_is_stable_where_features_are_collinear() {
        // Every BG/NBD output is a function of the same few numbers here, and the label is linear
        // in total revenue: least squares on all features is ill-posed, ridge is not.
        let (rows, labels) = rows(500);
        let spec = Spec::Linear {
            features: FeatureSet::All,
            ridge: RIDGE,
        };
        let set = TrainingSet {
            rows: &rows,
            labels: &labels,
            population: &rows,
        };
        // The raw fit: the calibration of the total is another test's.
        let predicted = spec.fit_raw(&set).unwrap().predict(&spec, &rows).unwrap();
        let mae = predicted
            .iter()
            .zip(&labels)
            .map(|(p, y)| (p - y).abs())
            .sum::<f64>()
            / labels.len() as f64;
        let mean = labels.iter().sum::<f64>() / labels.len() as f64;
        assert!(mae < 0.05 * mean, "MAE {mae} against a mean of {mean}");
    }

    #[test]
    fn a_forest_predicts_tree_by_tree_what_smartcore_predicts_row_by_row() {
        let (rows, labels) = rows(600);
        let spec = Spec::RandomForest {
            features: FeatureSet::Nine,
            trees: 20,
            min_leaf: 2,
        };
        let set = TrainingSet {
            rows: &rows,
            labels: &labels,
            population: &rows,
        };
        let (fitted, _) = spec.fit_predicting(&set).unwrap();
        let Fitted::Calibrated { model, factor } = &fitted else {
            panic!("a learned model is calibrated");
        };
        let Fitted::RandomForest(forest) = model.as_ref() else {
            panic!("a forest");
        };
        // Many rows (the tree-by-tree path) in an order unlike the fit's, and one alone
        // (smartcore's own path): the same numbers to the bit.
        let many: Vec<FeatureRow> = rows
            .iter()
            .rev()
            .cycle()
            .take(PARALLEL_ROWS + 7)
            .cloned()
            .collect();
        let features = spec.features();
        assert!(FlatForest::read(forest, features.len()).is_some());
        let direct: Vec<f64> = forest
            .predict(&dense(&many, &features).unwrap())
            .unwrap()
            .into_iter()
            .map(|p| (p.max(0.0) * factor).max(0.0))
            .collect();
        assert_eq!(fitted.predict(&spec, &many).unwrap(), direct);
        assert_eq!(fitted.predict(&spec, &many[..1]).unwrap(), direct[..1]);
        // A forest told it reads fewer features than its splits use is not read.
        assert!(FlatForest::read(forest, 0).is_none());
    }

    #[test]
    fn a_learned_model_forecasts_the_seasonal_bgnbd_total_of_its_population_ranked_as_it_learned() {
        let (rows, labels) = rows(400);
        // Labels three times what the rows' BG/NBD forecast says: a model fitted on windows
        // busier than the one it forecasts.
        let busy: Vec<f64> = labels.iter().map(|y| 3.0 * y).collect();
        let spec = Spec::Boosting {
            features: FeatureSet::Nine,
            trees: 20,
            learning_rate: 0.3,
            depth: 3,
        };
        let set = TrainingSet {
            rows: &rows,
            labels: &busy,
            population: &rows,
        };
        let raw = spec.fit_raw(&set).unwrap().predict(&spec, &rows).unwrap();
        let (fitted, predicted) = spec.fit_predicting(&set).unwrap();
        let Fitted::Calibrated { factor, .. } = &fitted else {
            panic!("a learned model is calibrated");
        };
        let target: f64 = rows
            .iter()
            .map(|r| r.extra.bgnbd_clv * r.extra.season_index)
            .sum();
        let total: f64 = predicted.iter().sum();
        assert!(
            target > 0.0 && (total - target).abs() < 1e-6 * target,
            "{total} vs {target}"
        );
        assert!(
            *factor < 1.0,
            "the busy windows' total is scaled down: {factor}"
        );
        for (p, r) in predicted.iter().zip(&raw) {
            assert!(
                (p - r * factor).abs() < 1e-9 * r.abs().max(1.0),
                "{p} vs {r} × {factor}"
            );
        }
        // Stored and read back, it predicts what it predicted when fitted, row by row.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        Trained {
            spec: spec.clone(),
            fitted,
            inputs: ModelInputs::example(),
        }
        .save(&path)
        .unwrap();
        let loaded = Trained::load(&path).unwrap();
        assert_eq!(loaded.predict(&rows).unwrap(), predicted);
        // A BG/NBD model is not recalibrated: its shape fixes its own total.
        let bgnbd = Spec::BgNbd {
            scaled: false,
            seasonal: true,
            year_before_weight: 0.0,
            sharpen: 1.0,
        };
        assert!(matches!(bgnbd.fit(&set).unwrap(), Fitted::BgNbd(_)));
    }
}
