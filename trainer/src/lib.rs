//! The trainer: snapshots at a cutoff (features before it, 6-month label after it) -> candidate models ->
//! out-of-time backtest -> versioned registry with a `production` pointer.
//!
//! - [`training`]: per-customer purchase histories and point-in-time training frames;
//! - [`probabilistic`]: BG/NBD and Gamma-Gamma, fitted by maximum likelihood;
//! - [`models`]: the candidate model families, fitted and predicting;
//! - [`metrics`]: RMSE, MAE, R², Spearman, normalised Gini, top-decile share, total ratio;
//! - [`backtest`]: out-of-time folds, scoring, the champion rule, the seed table's split;
//! - [`registry`]: numbered versions with metadata, the `production` pointer and its promotion rule;
//! - [`mlflow`]: logging a version to an MLflow tracking server over its REST API;
//! - [`report`]: the HTML report of a run (cumulative gains, predicted vs actual, metric tables,
//!   permutation feature importance), plotted with plotters.

pub mod backtest;
pub mod metrics;
pub mod mlflow;
pub mod models;
pub mod probabilistic;
pub mod registry;
pub mod report;
pub mod training;

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The input cannot be trained on.
    #[error("input: {0}")]
    Input(String),
    /// A model could not be fitted.
    #[error("fitting: {0}")]
    Fit(String),
    /// The registry folder could not be used.
    #[error("registry: {0}")]
    Registry(String),
    /// A plot could not be drawn.
    #[error("report: {0}")]
    Report(String),
    /// The MLflow tracking server failed.
    #[error("mlflow: {0}")]
    Tracking(String),
    /// polars failed.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
