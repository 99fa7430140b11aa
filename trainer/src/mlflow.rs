//! Logging a training run to an MLflow tracking server over its REST API (`MLFLOW_TRACKING_URI`):
//! the run's parameters, every candidate's metrics on every fold, and the version's files as
//! artifacts (through the server's artifact proxy, `mlflow server --artifacts-destination ...`).

use std::path::Path;

use serde_json::{Value, json};

use crate::registry::Metadata;
use crate::{Result, TrainError};

/// An MLflow tracking server.
#[derive(Debug, Clone)]
pub struct Tracking {
    base: String,
    agent: ureq::Agent,
}

/// Where a run was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRun {
    /// The experiment's ID.
    pub experiment_id: String,
    /// The run's ID.
    pub run_id: String,
}

fn failed(what: &str) -> impl FnOnce(ureq::Error) -> TrainError + '_ {
    move |e| TrainError::Tracking {
        context: what.to_string(),
        source: Box::new(e),
    }
}

impl Tracking {
    /// The server at `uri` (`http://host:port`).
    pub fn new(uri: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Tracking {
            base: uri.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.agent
            .post(&format!("{}/api/2.0/mlflow/{path}", self.base))
            .send_json(&body)
            .map_err(failed(path))?
            .body_mut()
            .read_json::<Value>()
            .map_err(failed(path))
    }

    /// The ID of the experiment `name`, created when missing.
    pub fn experiment(&self, name: &str) -> Result<String> {
        let found = self
            .agent
            .get(&format!(
                "{}/api/2.0/mlflow/experiments/get-by-name",
                self.base
            ))
            .query("experiment_name", name)
            .call();
        if let Ok(mut response) = found {
            let body: Value = response
                .body_mut()
                .read_json()
                .map_err(failed("experiments/get-by-name"))?;
            if let Some(id) = body["experiment"]["experiment_id"].as_str() {
                return Ok(id.to_string());
            }
        }
        let created = self.post("experiments/create", json!({ "name": name }))?;
        created["experiment_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| TrainError::TrackingAnswer(format!("no experiment ID in {created}")))
    }

    /// Logs one registry version as a run of `experiment`: parameters, every score as
    /// `<fold>.<model>.<metric>`, the champion's test metrics as `test.<metric>`, and every file of
    /// `version_dir` as an artifact.
    pub fn log_version(
        &self,
        experiment: &str,
        metadata: &Metadata,
        version_dir: &Path,
    ) -> Result<LoggedRun> {
        let experiment_id = self.experiment(experiment)?;
        let now = chrono::Utc::now().timestamp_millis();
        let run = self.post(
            "runs/create",
            json!({
                "experiment_id": experiment_id,
                "run_name": metadata.version,
                "start_time": now,
                "tags": [
                    {"key": "clv.version", "value": metadata.version},
                    {"key": "mlflow.source.git.commit", "value": metadata.git_commit.clone().unwrap_or_default()},
                ],
            }),
        )?;
        let run_id = run["run"]["info"]["run_id"]
            .as_str()
            .ok_or_else(|| TrainError::TrackingAnswer(format!("no run ID in {run}")))?
            .to_string();
        let params = [
            ("model", metadata.model.clone()),
            ("cutoff", metadata.cutoff.clone()),
            ("horizon_months", metadata.horizon_months.to_string()),
            ("contract_version", metadata.contract_version.to_string()),
            ("train_cutoffs", metadata.train_cutoffs.join(",")),
            ("data_fingerprint", metadata.data_fingerprint.clone()),
            ("features", metadata.features.join(",")),
        ];
        let mut metrics = Vec::new();
        for score in &metadata.scores {
            let m = &score.metrics;
            for (name, value) in [
                ("rmse", m.rmse),
                ("mae", m.mae),
                ("r2", m.r2),
                ("spearman", m.spearman),
                ("normalised_gini", m.normalised_gini),
                ("top_decile_share", m.top_decile_share),
                ("total_ratio", m.total_ratio),
            ] {
                if !value.is_finite() {
                    continue;
                }
                let mut keys = vec![format!("{}.{}.{name}", score.fold, score.model)];
                if score.model == metadata.model {
                    keys.push(format!("{}.{name}", score.fold));
                }
                for key in keys {
                    metrics.push(json!({"key": key, "value": value, "timestamp": now, "step": 0}));
                }
            }
        }
        // The server takes at most 1000 metrics per batch.
        for (i, chunk) in metrics.chunks(900).enumerate() {
            let params: Vec<Value> = if i == 0 {
                params
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect()
            } else {
                vec![]
            };
            self.post(
                "runs/log-batch",
                json!({"run_id": run_id, "metrics": chunk, "params": params}),
            )?;
        }
        let mut files: Vec<_> = std::fs::read_dir(version_dir)
            .map_err(|source| TrainError::Io {
                path: version_dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("artifact")
                .to_string();
            let body = std::fs::read(&file).map_err(|source| TrainError::Io {
                path: file.clone(),
                source,
            })?;
            self.agent
                .put(&format!(
                    "{}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{name}",
                    self.base
                ))
                .send(&body[..])
                .map_err(failed("uploading an artifact"))?;
        }
        self.post(
            "runs/update",
            json!({"run_id": run_id, "status": "FINISHED", "end_time": chrono::Utc::now().timestamp_millis()}),
        )?;
        Ok(LoggedRun {
            experiment_id,
            run_id,
        })
    }
}
