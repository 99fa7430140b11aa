//! The model registry: a folder of numbered versions (`v0001`, `v0002`, ...), each with its model and
//! metadata, and a `production` file naming the version the scorer serves. A version becomes
//! production only when it beats the current production model on the same evaluation; `promote` and
//! `rollback` move the pointer by hand, and `production.log` keeps every move.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::{ModelError, Result};

/// The score of one candidate on one fold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    /// The candidate's name.
    pub model: String,
    /// The fold's name.
    pub fold: String,
    /// Its metrics.
    pub metrics: Metrics,
}

/// What a version holds besides its model files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// The version's name (`v0001`).
    pub version: String,
    /// When it was trained (RFC 3339).
    pub created: String,
    /// The git commit of the code that trained it, when known.
    pub git_commit: Option<String>,
    /// The feature contract's version.
    pub contract_version: u32,
    /// The champion's name.
    pub model: String,
    /// The columns the champion reads.
    pub features: Vec<String>,
    /// The production cutoff (the test fold evaluates there, the model trains up to it).
    pub cutoff: String,
    /// Months of the label window.
    pub horizon_months: u32,
    /// Snapshots the production model was trained on.
    pub train_cutoffs: Vec<String>,
    /// A fingerprint of the training data (purchases: count, sum and a hash).
    pub data_fingerprint: String,
    /// Every candidate's scores on every fold.
    pub scores: Vec<Score>,
    /// Where the champion's value tiers start (the segments' thresholds; absent in versions
    /// trained before they existed).
    #[serde(default)]
    pub value_tiers: Option<contract::segment::ValueTiers>,
    /// The calibration of the champion's 10th-90th percentile intervals (on the latest fold whose
    /// labels are known; absent in versions trained before intervals).
    #[serde(default)]
    pub interval: Option<crate::interval::Calibration>,
    /// The distributions of every feature and of the champion's prediction among the customers as
    /// of the end of the training data, against which the scorer measures drift (absent in versions
    /// trained before drift).
    #[serde(default)]
    pub drift: Option<crate::drift::Reference>,
    /// The day the training data ends (it holds every purchase before it); absent in older
    /// versions.
    #[serde(default)]
    pub data_end: Option<String>,
    /// The champion's cumulative gains on the test fold, 20 steps: (share of customers ranked by
    /// prediction, share of their actual revenue), from (0, 0) to (1, 1); absent in older versions.
    #[serde(default)]
    pub gains: Option<Vec<(f64, f64)>>,
    /// The champion the same procedure chose on the data before the production cutoff: the model
    /// whose `test` scores are the procedure's honest test (the version's own champion was chosen on
    /// folds up to that cutoff); absent in older versions, whose champion is the tested one.
    #[serde(default)]
    pub tested: Option<String>,
    /// The candidates with a lower mean validation MAE than the champion that the selection passed
    /// over for it (the one-standard-error rule's preference for the BG/NBD family); empty when the
    /// champion has the lowest MAE, and in older versions.
    #[serde(default)]
    pub passed_over: Vec<String>,
}

impl Metadata {
    /// The score of `model` on `fold`.
    pub fn score(&self, model: &str, fold: &str) -> Option<&Score> {
        self.scores
            .iter()
            .find(|s| s.model == model && s.fold == fold)
    }
}

/// Whether `candidate` should replace `production`: on the same data (fingerprints equal) the
/// candidate's champion must have a lower validation MAE than the production champion had; when the
/// data changed, the production champion's family is compared as re-evaluated in the candidate's run
/// (every run scores every family on the new data), and the candidate replaces it when it is at least
/// as good there, or when the candidate's selection passed production's family over for its champion
/// on those same folds ([`Metadata::passed_over`]: the selection rule, not the lowest MAE alone,
/// chooses what is served): the same family refit on newer data (equal by construction) is promoted,
/// a family that does worse on the new validation folds than production's, without the selection
/// preferring it, is not. Returns the reason either way.
pub fn beats(candidate: &Metadata, production: &Metadata) -> (bool, String) {
    let Some(new) = candidate.score(&candidate.model, "validation") else {
        return (false, "the new version has no validation score".into());
    };
    let same_data = candidate.data_fingerprint == production.data_fingerprint;
    let old = if same_data {
        production.score(&production.model, "validation")
    } else {
        candidate.score(&production.model, "validation")
    };
    let Some(old) = old else {
        return (
            true,
            format!(
                "production's model {} has no comparable validation score",
                production.model
            ),
        );
    };
    let preferred = !same_data && candidate.passed_over.contains(&production.model);
    let better = if same_data {
        new.metrics.mae < old.metrics.mae
    } else {
        new.metrics.mae <= old.metrics.mae || preferred
    };
    let what = if preferred {
        ", re-evaluated on the new data; the selection preferred the champion within one \
         standard error"
    } else if !same_data && candidate.model == production.model {
        ", the same model refit on the new data"
    } else if !same_data {
        ", re-evaluated on the new data"
    } else {
        ""
    };
    (
        better,
        format!(
            "validation MAE {:.1} ({}) vs production's {:.1} ({}{what})",
            new.metrics.mae, candidate.model, old.metrics.mae, production.model,
        ),
    )
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

const PRODUCTION: &str = "production";
const LOG: &str = "production.log";
const METADATA: &str = "metadata.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Registry {
    /// The registry in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Registry {
            dir: dir.to_path_buf(),
        })
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The versions, oldest first.
    pub fn versions(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(METADATA).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with('v') && n[1..].chars().all(|c| c.is_ascii_digit()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The folder of a new version (the next number), created empty.
    pub fn new_version(&self) -> Result<(String, PathBuf)> {
        let next = self
            .versions()?
            .last()
            .and_then(|v| v[1..].parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let name = format!("v{next:04}");
        let path = self.dir.join(&name);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        Ok((name, path))
    }

    /// The folder of `version`.
    pub fn path(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }

    /// Writes a version's metadata (last, so that a version without it is not listed). A version
    /// whose model has a metric that is not a number (labels all zero: a label window past the
    /// data) is refused: it is never listed, so never promoted or served.
    pub fn write_metadata(&self, metadata: &Metadata) -> Result<()> {
        if let Some(bad) = metadata
            .scores
            .iter()
            .find(|s| s.model == metadata.model && !s.metrics.is_finite())
        {
            return Err(ModelError::Registry(format!(
                "{}: {} has a metric that is not a number on the {} fold ({:?}); not registered                  (are its labels beyond the data?)",
                metadata.version, metadata.model, bad.fold, bad.metrics
            )));
        }
        let path = self.path(&metadata.version).join(METADATA);
        let text = serde_json::to_string_pretty(metadata).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// A version's metadata.
    pub fn metadata(&self, version: &str) -> Result<Metadata> {
        let path = self.path(version).join(METADATA);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|source| ModelError::Json { path, source })
    }

    /// The production version, if any.
    pub fn production(&self) -> Result<Option<String>> {
        let path = self.dir.join(PRODUCTION);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Makes `version` production (atomically: write then rename) and logs the move with `reason`.
    pub fn promote(&self, version: &str, reason: &str) -> Result<()> {
        if !self.versions()?.iter().any(|v| v == version) {
            return Err(ModelError::Registry(format!("no version {version}")));
        }
        let path = self.dir.join(PRODUCTION);
        let partial = self.dir.join(".production.tmp");
        std::fs::write(&partial, format!("{version}\n")).map_err(io(&partial))?;
        std::fs::rename(&partial, &path).map_err(io(&path))?;
        let log = self.dir.join(LOG);
        let mut history = std::fs::read_to_string(&log).unwrap_or_default();
        history.push_str(&format!(
            "{}\t{version}\t{reason}\n",
            chrono::Utc::now().to_rfc3339()
        ));
        std::fs::write(&log, history).map_err(io(&log))
    }

    /// The versions production has been, oldest first (from `production.log`).
    pub fn history(&self) -> Result<Vec<String>> {
        let log = self.dir.join(LOG);
        let text = match std::fs::read_to_string(&log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&log)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| l.split('\t').nth(1).map(str::to_string))
            .collect())
    }

    /// Moves production back to the version it was before the current one; returns it.
    pub fn rollback(&self) -> Result<String> {
        let current = self
            .production()?
            .ok_or_else(|| ModelError::Registry("no production version to roll back".into()))?;
        let history = self.history()?;
        let previous = history
            .iter()
            .rev()
            .find(|v| **v != current)
            .cloned()
            .ok_or_else(|| {
                ModelError::Registry(format!("{current} is the only version ever in production"))
            })?;
        self.promote(&previous, &format!("rollback from {current}"))?;
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(version: &str, mae: f64) -> Metadata {
        let metrics = Metrics {
            rmse: 1.0,
            mae,
            r2: f64::NAN,
            spearman: 0.5,
            normalised_gini: 0.5,
            top_decile_share: 0.5,
            total_ratio: 1.0,
        };
        Metadata {
            version: version.into(),
            created: "2026-12-01T00:00:00Z".into(),
            git_commit: None,
            contract_version: 1,
            model: "champion".into(),
            features: vec![],
            cutoff: "2011-06-01".into(),
            horizon_months: 6,
            train_cutoffs: vec![],
            data_fingerprint: "x".into(),
            scores: vec![
                Score {
                    model: "champion".into(),
                    fold: "validation".into(),
                    metrics: Metrics { r2: 0.5, ..metrics },
                },
                // Another candidate's metric that is not a number is kept (as null).
                Score {
                    model: "other".into(),
                    fold: "validation".into(),
                    metrics,
                },
            ],
            value_tiers: None,
            interval: None,
            drift: None,
            data_end: None,
            gains: None,
            tested: None,
            passed_over: Vec::new(),
        }
    }

    #[test]
    fn a_champion_with_a_metric_that_is_not_a_number_is_never_registered() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let (v1, _) = registry.new_version().unwrap();
        registry.write_metadata(&metadata(&v1, 10.0)).unwrap();
        let read = registry.metadata(&v1).unwrap();
        assert!(
            read.score("other", "validation")
                .unwrap()
                .metrics
                .r2
                .is_nan()
        );
        assert_eq!(
            read.score("champion", "validation").unwrap().metrics.r2,
            0.5
        );

        let (v2, _) = registry.new_version().unwrap();
        let error = registry
            .write_metadata(&metadata(&v2, f64::NAN))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a number"), "{error}");
        assert_eq!(registry.versions().unwrap(), vec![v1]);
        assert!(registry.promote(&v2, "test").is_err());
    }
}
