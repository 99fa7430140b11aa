//! A fitted model with its spec and the model-wide inputs its rows are computed with: what the
//! registry stores.

use contract::{FeatureRow, ModelInputs, RowBuilder};
use serde::{Deserialize, Serialize};

use crate::family::{Fitted, Spec, TrainingSet};
use crate::{ModelError, Result};

/// A fitted model with its spec and the model-wide inputs its rows are computed with: what the
/// registry stores, and all that a prediction needs besides the customer's state.
#[derive(Serialize, Deserialize)]
pub struct Trained {
    /// The family and settings.
    pub spec: Spec,
    /// The fitted parameters.
    pub fitted: Fitted,
    /// BG/NBD, Gamma-Gamma and the seasonal profile as fitted at the model's cutoff: the rows it
    /// scores are computed with them.
    pub inputs: ModelInputs,
}

impl Trained {
    /// Fits `spec` on `train`; the rows it will score are computed with `inputs`.
    pub fn fit(spec: &Spec, train: &TrainingSet<'_>, inputs: ModelInputs) -> Result<Self> {
        Ok(Self::fit_predicting(spec, train, inputs)?.0)
    }

    /// [`Trained::fit`], with its predictions for [`TrainingSet::population`].
    pub fn fit_predicting(
        spec: &Spec,
        train: &TrainingSet<'_>,
        inputs: ModelInputs,
    ) -> Result<(Self, Vec<f64>)> {
        let (fitted, predicted) = spec.fit_predicting(train)?;
        let trained = Trained {
            spec: spec.clone(),
            fitted,
            inputs,
        };
        Ok((trained, predicted))
    }

    /// The rows this model scores as of `as_of`, from customers' states.
    pub fn rows(&self, as_of: chrono::NaiveDate) -> RowBuilder<'_> {
        RowBuilder::new(&self.inputs, as_of)
    }

    /// A prediction for each row.
    pub fn predict(&self, rows: &[FeatureRow]) -> Result<Vec<f64>> {
        self.fitted.predict(&self.spec, rows)
    }

    /// The prediction for one row.
    pub fn predict_one(&self, row: &FeatureRow) -> Result<f64> {
        Ok(self
            .predict(std::slice::from_ref(row))?
            .first()
            .copied()
            .unwrap_or(0.0))
    }

    /// Writes it as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let json = |source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_vec(self).map_err(json)?;
        std::fs::write(path, text).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads one written by [`Trained::save`].
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| {
            let old = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .is_some_and(|v| v.get("inputs").is_none());
            if old {
                ModelError::Outdated {
                    path: path.to_path_buf(),
                    reason: "written by an older clv (no model-wide inputs)".into(),
                }
            } else {
                ModelError::Json {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
    }
}
