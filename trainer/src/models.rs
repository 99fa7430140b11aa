//! The candidate models, each fitted on a training frame and predicting `clv_6m` for another frame:
//! naive baselines, linear regression (linfa-linear), random forest (smartcore), gradient-boosted trees
//! (forust-ml), a two-stage model (P(buys) from a linfa-ensemble bagged linfa-trees classifier × spend
//! from boosted trees), and BG/NBD + Gamma-Gamma (the probabilistic columns of the frame).

use featurestore::contract::{FEATURES, LABEL, NAIVE};
use forust_ml::{GradientBooster, Matrix, objective::ObjectiveType};
use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2, Axis};
use polars::prelude::*;
use rand08::SeedableRng;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::training::{BGNBD_CLV, EXTRA_FEATURES, Probabilistic, SEASON_INDEX, YEAR_BEFORE};
use crate::{Result, TrainError};

/// Which columns a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureSet {
    /// The contract's nine features only (the seed-compatible `POST /predict`).
    Nine,
    /// The nine and the extra point-in-time features.
    All,
}

impl FeatureSet {
    /// The column names.
    pub fn columns(self) -> Vec<&'static str> {
        match self {
            FeatureSet::Nine => FEATURES.to_vec(),
            FeatureSet::All => FEATURES
                .iter()
                .chain(EXTRA_FEATURES.iter())
                .copied()
                .collect(),
        }
    }
}

/// A model family and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Spec {
    /// `naive_6m` as the prediction.
    Naive,
    /// `naive_6m` × (training label total / training naive total).
    NaiveScaled,
    /// BG/NBD expected purchases × Gamma-Gamma expected spend (`bgnbd_clv`), × a factor (1 or the
    /// training fold's label / prediction ratio), and × the snapshot's seasonal index when
    /// `seasonal`.
    ///
    /// Two settings shape it within a snapshot (the frame predicted is one snapshot's population):
    /// `year_before_weight` w blends in each customer's own seasonality, their revenue in the label
    /// window's months a year before rescaled to `bgnbd_clv`'s total,
    /// `(1 − w)·bgnbd_clv + w·year_before·Σbgnbd_clv/Σyear_before`; `sharpen` q raises that to the
    /// power q and rescales to the same total (q > 1 moves expected revenue from the many unlikely
    /// buyers to the likely ones, which lowers the absolute error of a zero-heavy target). Neither
    /// changes the total; w changes the ranking, q does not.
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
    /// Ordinary least squares.
    Linear {
        /// Input columns.
        features: FeatureSet,
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
            Spec::Linear { features } => format!("linear_{}", set(features)),
            Spec::RandomForest { features, .. } => format!("random_forest_{}", set(features)),
            Spec::Boosting { features, .. } => format!("boosting_{}", set(features)),
            Spec::TwoStage { features, .. } => format!("two_stage_{}", set(features)),
        }
    }

    /// The columns the model reads.
    pub fn features(&self) -> Vec<&'static str> {
        match self {
            Spec::Naive | Spec::NaiveScaled => vec![NAIVE],
            Spec::BgNbd {
                seasonal,
                year_before_weight,
                ..
            } => {
                let mut columns = vec![BGNBD_CLV];
                if *seasonal {
                    columns.push(SEASON_INDEX);
                }
                if *year_before_weight != 0.0 {
                    columns.push(YEAR_BEFORE);
                }
                columns
            }
            Spec::Linear { features }
            | Spec::RandomForest { features, .. }
            | Spec::Boosting { features, .. }
            | Spec::TwoStage { features, .. } => features.columns(),
        }
    }

    /// Fits the model on `train`.
    pub fn fit(&self, train: &DataFrame) -> Result<Fitted> {
        let y = column(train, LABEL)?;
        let fitted = match self {
            Spec::Naive => Fitted::Column {
                column: NAIVE.into(),
                factor: 1.0,
            },
            Spec::NaiveScaled => Fitted::Column {
                column: NAIVE.into(),
                factor: ratio(&y, &column(train, NAIVE)?),
            },
            Spec::BgNbd {
                scaled,
                seasonal,
                year_before_weight,
                sharpen,
            } => {
                let base = Fitted::BgNbd {
                    seasonal: *seasonal,
                    year_before_weight: *year_before_weight,
                    sharpen: *sharpen,
                    factor: 1.0,
                };
                let factor = if *scaled {
                    ratio(&y, &base.predict(self, train)?)
                } else {
                    1.0
                };
                Fitted::BgNbd {
                    seasonal: *seasonal,
                    year_before_weight: *year_before_weight,
                    sharpen: *sharpen,
                    factor,
                }
            }
            Spec::Linear { features } => {
                let columns = features.columns();
                // A column constant in training (e.g. last year's revenue before the data began)
                // carries nothing and makes the normal equations singular: it gets coefficient 0.
                let varying: Vec<usize> = (0..columns.len())
                    .filter(|&j| {
                        column(train, columns[j])
                            .map(|c| c.iter().any(|v| *v != c[0]))
                            .unwrap_or(false)
                    })
                    .collect();
                let used: Vec<&str> = varying.iter().map(|&j| columns[j]).collect();
                let x = design(train, &used)?;
                let dataset = Dataset::new(x, Array1::from(y));
                let model = linfa_linear::LinearRegression::default()
                    .fit(&dataset)
                    .map_err(|e| TrainError::Fit(format!("linear regression: {e}")))?;
                let mut coefficients = vec![0.0; columns.len()];
                for (&j, c) in varying.iter().zip(model.params()) {
                    coefficients[j] = *c;
                }
                Fitted::Linear {
                    coefficients,
                    intercept: model.intercept(),
                }
            }
            Spec::RandomForest {
                features,
                trees,
                min_leaf,
            } => {
                let x = dense(train, &features.columns())?;
                let parameters = RandomForestRegressorParameters::default()
                    .with_n_trees(*trees)
                    .with_min_samples_leaf(*min_leaf)
                    .with_seed(42);
                let model = RandomForestRegressor::fit(&x, &y, parameters)
                    .map_err(|e| TrainError::Fit(format!("random forest: {e}")))?;
                Fitted::RandomForest(Box::new(model))
            }
            Spec::Boosting {
                features,
                trees,
                learning_rate,
                depth,
            } => {
                let x = column_major(train, &features.columns())?;
                Fitted::Boosting(boost(
                    &x,
                    train.height(),
                    &y,
                    *trees,
                    *learning_rate,
                    *depth,
                )?)
            }
            Spec::TwoStage { features, trees } => {
                let columns = features.columns();
                let x = design(train, &columns)?;
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
                .map_err(|e| TrainError::Fit(format!("buy classifier: {e}")))?;
                let buyers: Vec<usize> = (0..y.len()).filter(|&i| y[i] > 0.0).collect();
                let all = column_major(train, &columns)?;
                let k = columns.len();
                let n = train.height();
                let mut spend_x = Vec::with_capacity(buyers.len() * k);
                for j in 0..k {
                    spend_x.extend(buyers.iter().map(|&i| all[j * n + i]));
                }
                let spend_y: Vec<f64> = buyers.iter().map(|&i| y[i]).collect();
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

/// A fitted model.
#[derive(Serialize, Deserialize)]
pub enum Fitted {
    /// A column of the frame times a factor (naive).
    Column {
        /// The column.
        column: String,
        /// The factor.
        factor: f64,
    },
    /// BG/NBD + Gamma-Gamma, shaped as [`Spec::BgNbd`] says.
    BgNbd {
        /// × the seasonal index.
        seasonal: bool,
        /// Weight of the revenue in the same months a year before.
        year_before_weight: f64,
        /// Power of the blend.
        sharpen: f64,
        /// The factor.
        factor: f64,
    },
    /// A linear function of the features.
    Linear {
        /// One per feature.
        coefficients: Vec<f64>,
        /// The constant.
        intercept: f64,
    },
    /// A smartcore random forest.
    RandomForest(Box<RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>>),
    /// A forust-ml booster.
    Boosting(GradientBooster),
    /// Bagged classification trees (each with the features it saw) and a spend booster.
    TwoStage {
        /// The classifier's trees.
        classifier: Vec<(DecisionTree<f64, usize>, Vec<usize>)>,
        /// Spend of buyers.
        spend: GradientBooster,
    },
}

impl Fitted {
    /// Predictions for every row of `frame`, clipped at 0 (nobody spends less than nothing).
    pub fn predict(&self, spec: &Spec, frame: &DataFrame) -> Result<Vec<f64>> {
        let columns = spec.features();
        let n = frame.height();
        let raw = match self {
            Fitted::Column {
                column: name,
                factor,
            } => column(frame, name)?
                .into_iter()
                .map(|v| v * factor)
                .collect(),
            Fitted::BgNbd {
                seasonal,
                year_before_weight,
                sharpen,
                factor,
            } => {
                let clv = column(frame, BGNBD_CLV)?;
                let season = if *seasonal {
                    column(frame, SEASON_INDEX)?
                } else {
                    vec![1.0; n]
                };
                let clv_total: f64 = clv.iter().sum();
                let blend: Vec<f64> = if *year_before_weight != 0.0 {
                    let year_before = column(frame, YEAR_BEFORE)?;
                    let year_total: f64 = year_before.iter().sum();
                    let scale = if year_total > 0.0 {
                        clv_total / year_total
                    } else {
                        0.0
                    };
                    clv.iter()
                        .zip(&year_before)
                        .map(|(c, y)| {
                            if year_total > 0.0 {
                                (1.0 - year_before_weight) * c + year_before_weight * y * scale
                            } else {
                                *c
                            }
                        })
                        .collect()
                } else {
                    clv.clone()
                };
                let shaped: Vec<f64> = blend.iter().map(|v| v.max(0.0).powf(*sharpen)).collect();
                let shaped_total: f64 = shaped.iter().sum();
                let rescale = if shaped_total > 0.0 {
                    clv_total / shaped_total
                } else {
                    1.0
                };
                shaped
                    .iter()
                    .zip(&season)
                    .map(|(v, s)| v * rescale * s * factor)
                    .collect()
            }
            Fitted::Linear {
                coefficients,
                intercept,
            } => {
                let x = design(frame, &columns)?;
                x.dot(&Array1::from(coefficients.clone()))
                    .into_iter()
                    .map(|v| v + intercept)
                    .collect()
            }
            Fitted::RandomForest(model) => model
                .predict(&dense(frame, &columns)?)
                .map_err(|e| TrainError::Fit(format!("random forest: {e}")))?,
            Fitted::Boosting(model) => {
                let x = column_major(frame, &columns)?;
                model.predict(&Matrix::new(&x, n, columns.len()), true)
            }
            Fitted::TwoStage { classifier, spend } => {
                let x = design(frame, &columns)?;
                let mut votes = vec![0.0; n];
                for (tree, features) in classifier {
                    let sub = x.select(Axis(1), features);
                    for (v, class) in votes.iter_mut().zip(tree.predict(&sub)) {
                        *v += class as f64;
                    }
                }
                let xs = column_major(frame, &columns)?;
                let amount = spend.predict(&Matrix::new(&xs, n, columns.len()), true);
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

fn boost(
    x: &[f64],
    rows: usize,
    y: &[f64],
    trees: usize,
    learning_rate: f32,
    depth: usize,
) -> Result<GradientBooster> {
    let cols = x.len() / rows.max(1);
    let mut model = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(trees)
        .set_learning_rate(learning_rate)
        .set_max_depth(depth)
        .set_initialize_base_score(true)
        .set_seed(42);
    let weights = vec![1.0; rows];
    model
        .fit(&Matrix::new(x, rows, cols), y, &weights, None)
        .map_err(|e| TrainError::Fit(format!("boosting: {e}")))?;
    Ok(model)
}

fn one() -> f64 {
    1.0
}

/// sum(a) / sum(b), 1 when b sums to 0.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    if sb > 0.0 { sa / sb } else { 1.0 }
}

/// A numeric column as f64; the gaps of one-purchase customers (null) become their tenure.
pub fn column(frame: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let values = frame.column(name)?.cast(&DataType::Float64)?;
    let values = values.f64()?;
    if values.null_count() == 0 {
        return Ok(values.into_no_null_iter().collect());
    }
    let tenure = frame.column(FEATURES[4])?.cast(&DataType::Float64)?;
    let tenure = tenure.f64()?;
    Ok(values
        .iter()
        .zip(tenure.iter())
        .map(|(v, t)| v.or(t).unwrap_or(0.0))
        .collect())
}

/// The columns, column after column.
fn column_major(frame: &DataFrame, columns: &[&str]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(frame.height() * columns.len());
    for name in columns {
        out.extend(column(frame, name)?);
    }
    Ok(out)
}

fn design(frame: &DataFrame, columns: &[&str]) -> Result<Array2<f64>> {
    let data = column_major(frame, columns)?;
    Array2::from_shape_vec((columns.len(), frame.height()), data)
        .map(|a| a.reversed_axes())
        .map_err(|e| TrainError::Input(e.to_string()))
}

fn dense(frame: &DataFrame, columns: &[&str]) -> Result<DenseMatrix<f64>> {
    DenseMatrix::new(
        frame.height(),
        columns.len(),
        column_major(frame, columns)?,
        true,
    )
    .map_err(|e| TrainError::Input(e.to_string()))
}

/// A fitted model with the spec that says which columns it reads: what the registry stores.
#[derive(Serialize, Deserialize)]
pub struct Trained {
    /// The family and settings.
    pub spec: Spec,
    /// The fitted parameters.
    pub fitted: Fitted,
    /// BG/NBD and Gamma-Gamma as fitted at the production cutoff: what the extra features are
    /// computed with when the model scores live features (absent: refitted at scoring time).
    #[serde(default)]
    pub probabilistic: Option<Probabilistic>,
}

impl Trained {
    /// Fits `spec` on `train`; the extra features of the frames it will score come from
    /// `probabilistic`.
    pub fn fit(
        spec: &Spec,
        train: &DataFrame,
        probabilistic: Option<Probabilistic>,
    ) -> Result<Self> {
        Ok(Trained {
            spec: spec.clone(),
            fitted: spec.fit(train)?,
            probabilistic,
        })
    }

    /// Predictions for every row of `frame` (one snapshot: some models scale within it).
    pub fn predict(&self, frame: &DataFrame) -> Result<Vec<f64>> {
        self.fitted.predict(&self.spec, frame)
    }

    /// Writes it as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_vec(self).map_err(|e| TrainError::Registry(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| TrainError::Registry(format!("{}: {e}", path.display())))
    }

    /// Reads one written by [`Trained::save`].
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read(path)
            .map_err(|e| TrainError::Registry(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text)
            .map_err(|e| TrainError::Registry(format!("{}: {e}", path.display())))
    }
}
