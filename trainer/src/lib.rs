//! The trainer: point-in-time training sets (feature rows before a cutoff, 6-month label after it) ->
//! candidate models -> out-of-time backtest -> versioned registry with a `production` pointer.
//!
//! The models themselves (fitting and predicting on feature rows, saving, the registry) are the
//! `models` crate's; the feature rows are the contract's. This crate builds what they are fitted on
//! and judges them:
//!
//! - [`training`]: per-customer purchase histories, the model-wide inputs fitted at a cutoff, and
//!   point-in-time labelled snapshots of feature rows (and their frames);
//! - [`fit`]: BG/NBD and Gamma-Gamma fitted by maximum likelihood;
//! - [`backtest`]: out-of-time folds, scoring, the procedure's test on the data before a cutoff,
//!   the seed table's split;
//! - [`evaluate`]: the labelled snapshots built once per cutoff, every candidate scored on a fold,
//!   each fold once;
//! - [`selection`]: the champion rule (chosen on several validation folds, the one-standard-error
//!   preference for BG/NBD);
//! - [`intervals`]: the intervals' check at each cutoff tested;
//! - [`pipeline`]: the whole training run on one history, and the production models, fitted where
//!   they are served (the model-wide inputs at the end of the data);
//! - [`job`]: a training job as `clv train`, `clv train --every` and `clv demo` run it: the
//!   pipeline, its checks, a registered version with its report, MLflow, promotion; a typed
//!   summary out ([`summary`]: that summary, and the output and `report.md` written from it);
//! - [`across`]: the backtest at several test cutoffs, every candidate against BG/NBD + GG;
//! - [`mlflow`]: logging a version to an MLflow tracking server over its REST API;
//! - [`risk`]: the at-risk list's check on an evaluation snapshot, beside a naive rule;
//! - [`report`]: the HTML report of a run (cumulative gains, predicted vs actual, metric tables,
//!   permutation feature importance), plotted with plotters.

pub mod across;
pub mod backtest;
pub mod evaluate;
pub mod fit;
pub mod intervals;
pub mod job;
pub mod mlflow;
pub mod pipeline;
pub mod report;
pub mod risk;
pub mod selection;
pub mod summary;
pub mod training;

pub use models::{metrics, registry};

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The input cannot be trained on.
    #[error("input: {0}")]
    Input(String),
    /// The optimiser fitting BG/NBD or Gamma-Gamma failed.
    #[error("fitting {model}: {source}")]
    Fit {
        /// Which model.
        model: &'static str,
        /// The optimiser's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The optimiser found nothing usable.
    #[error("fitting {model}: {reason}")]
    NoFit {
        /// Which model.
        model: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A model or the registry failed.
    #[error(transparent)]
    Model(#[from] models::ModelError),
    /// A frame's row is not a feature row.
    #[error(transparent)]
    Row(#[from] contract::row::RowError),
    /// A plot could not be drawn.
    #[error("report: plotting: {0}")]
    Plot(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The run has not what the report shows.
    #[error("report: {0}")]
    Report(String),
    /// The MLflow tracking server failed.
    #[error("mlflow: {context}: {source}")]
    Tracking {
        /// What was being done.
        context: String,
        /// The HTTP client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The MLflow tracking server answered something unexpected.
    #[error("mlflow: {0}")]
    TrackingAnswer(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// polars failed.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
