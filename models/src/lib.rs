//! CLV models as they are used: fitted on feature rows ([`contract::FeatureRow`]), predicting one
//! customer from that customer's row alone, saved and loaded as JSON; how good a prediction is; and
//! the registry of versions the scorer follows. No polars and no I/O beyond the registry's files:
//! building training sets, backtests and reports are the trainer's.
//!
//! - [`family`]: the candidate families ([`family::Spec`]) and their fitted parameters
//!   ([`family::Fitted`]), each predicting from one row;
//! - [`learned`]: the learned models' numerics (ridge, boosting, the matrices the libraries read);
//! - [`trained`]: a fitted model stored with the model-wide inputs its rows are computed with
//!   ([`trained::Trained`]);
//! - [`drift`]: the training population's distributions and the PSI of the live one against them;
//! - [`interval`]: the 10th-90th percentile interval around a prediction, calibrated on a fold, and
//!   its coverage, width and interval score;
//! - [`metrics`]: RMSE, MAE, R², Spearman, normalised Gini, top-decile share, total ratio;
//! - [`registry`]: numbered versions with metadata, the `production` pointer and its promotion rule.

pub mod drift;
pub mod family;
pub mod forest;
pub mod interval;
pub mod learned;
pub mod metrics;
pub mod registry;
pub mod trained;

pub use family::{FeatureSet, Fitted, Spec, TrainingSet};
pub use learned::RIDGE;
pub use trained::Trained;

/// Errors of fitting, predicting, saving and loading models, and of the registry.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The training set or the rows cannot be used.
    #[error("input: {0}")]
    Input(String),
    /// A model library failed to fit or predict.
    #[error("{model}: {source}")]
    Fit {
        /// Which model.
        model: &'static str,
        /// The library's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file of the registry could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not the JSON expected.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A model written by an older clv, without what this one needs.
    #[error("{path}: {reason}; train a new version with `clv train`")]
    Outdated {
        /// The file.
        path: std::path::PathBuf,
        /// What it lacks.
        reason: String,
    },
    /// The registry's state does not allow the operation.
    #[error("registry: {0}")]
    Registry(String),
}

impl ModelError {
    pub(crate) fn fit<E: std::error::Error + Send + Sync + 'static>(
        model: &'static str,
    ) -> impl FnOnce(E) -> ModelError {
        move |e| ModelError::Fit {
            model,
            source: Box::new(e),
        }
    }
}

/// Result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
