//! A training job, as `clv train`, `clv train --every` and `clv demo` run it: the pipeline on one
//! history ([`crate::pipeline::run`]), its checks (the at-risk list and the intervals at every
//! cutoff tested), a new version in the registry (the models, `metadata.json`, `report.md`,
//! `report.html`), MLflow when asked, and promotion by the registry's rule. A [`Job`] in, a
//! [`Registered`] version with its typed [`Summary`] out: the binary parses, prints and exits.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use contract::CONTRACT_VERSION;
use models::registry::{Metadata, Registry, Score, beats};
use polars::prelude::ParquetWriter;

use crate::across::Backtest;
use crate::backtest::{Customers, Fold, Forecast, candidates, monthly};
use crate::intervals::interval_check;
use crate::mlflow::Tracking;
use crate::pipeline::{Request, Run};
use crate::selection::validation_at;
use crate::summary::{Section, Summary};
use crate::training::Histories;
use crate::{Result, TrainError};

/// What to train and where to register it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline's request.
    pub request: Request,
    /// The model registry.
    pub models_dir: PathBuf,
    /// Log the version to this MLflow tracking server, in this experiment.
    pub mlflow: Option<Mlflow>,
    /// Also write every training snapshot as `<dir>/snapshot-<cutoff>.parquet`.
    pub write_frames: Option<PathBuf>,
    /// The commit of the code, recorded in the metadata.
    pub git_commit: Option<String>,
}

/// An MLflow tracking server and experiment.
#[derive(Debug, Clone)]
pub struct Mlflow {
    /// Its URI.
    pub uri: String,
    /// The experiment.
    pub experiment: String,
}

impl Job {
    /// Training at the edge of the data with the defaults into `models_dir`, without backtests.
    pub fn at_the_edge(models_dir: PathBuf) -> Self {
        Job {
            request: Request::at_the_edge(),
            models_dir,
            mlflow: None,
            write_frames: None,
            git_commit: None,
        }
    }
}

/// A registered version and what the run found.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The version.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it became production.
    pub promoted: bool,
    /// Why (the registry's rule).
    pub reason: String,
    /// The production version after the run.
    pub production: String,
    /// The production version's cutoff.
    pub production_cutoff: NaiveDate,
    /// The champion's mean validation MAE.
    pub validation_mae: f64,
    /// The MLflow experiment and run it was logged to.
    pub mlflow: Option<(String, String)>,
    /// What the run found.
    pub summary: Summary,
}

pub(crate) fn dates(days: &[NaiveDate]) -> String {
    days.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `job` on `histories`: trains, checks, registers, logs and promotes.
pub fn run(job: &Job, histories: &Histories) -> Result<Registered> {
    let mut run = crate::pipeline::run(histories, &job.request)?;
    let summary = summarise(job, histories, &mut run)?;
    register(job, run, summary)
}

/// The validation, test and backtest tables, the at-risk and interval checks of `run`.
fn summarise(job: &Job, histories: &Histories, run: &mut Run<'_>) -> Result<Summary> {
    let selection = &run.selection;
    let mut sections = Vec::new();
    for fold in &selection.folds {
        let name = validation_at(fold.evaluate_at);
        let heading = format!(
            "validation fold: train at {} -> evaluate at {}{}",
            dates(&fold.train_cutoffs),
            fold.evaluate_at,
            match fold.customers {
                Customers::Every => String::new(),
                Customers::Half(h) => format!(" (half {h} of the customers)"),
            }
        );
        let scores = selection
            .by_fold
            .iter()
            .filter(|s| s.fold == name)
            .cloned()
            .collect();
        sections.push(Section {
            notes: Vec::new(),
            heading,
            scores,
            fold: name,
        });
    }
    let stability = selection
        .per_fold
        .iter()
        .map(|(at, model)| format!("{model} at {at}"))
        .collect::<Vec<_>>()
        .join(", ");
    sections.push(Section {
        notes: Vec::new(),
        heading: format!(
            "validation folds, mean of {}: the champion is chosen here (each fold alone would choose {stability})",
            selection.folds.len()
        ),
        scores: selection.scores.clone(),
        fold: "validation".into(),
    });
    let cutoff = run.plan.cutoff;
    sections.push(test_section(run, cutoff));

    let test = &run.test;
    let backtests = (!run.backtests.is_empty() || !run.skipped.is_empty()).then(|| {
        let mut notes = run.skipped.clone();
        let mut backtests: Vec<Backtest> = run.backtests.iter().map(Into::into).collect();
        if test.test.customers == Customers::Every {
            backtests.push(test.into());
        }
        backtests.sort_by_key(|b| b.cutoff);
        for b in &backtests {
            for note in &b.notes {
                notes.push(format!("at {}: {note}", b.cutoff));
            }
        }
        (backtests, notes)
    });

    // The at-risk list at every cutoff evaluated: the tests (each backtest's included) and the
    // validation folds, once per cutoff.
    let mut risk_folds: Vec<Fold> = run
        .backtests
        .iter()
        .map(|b| b.test.clone())
        .chain(std::iter::once(test.test.clone()))
        .chain(selection.folds.iter().cloned())
        .collect();
    risk_folds.sort_by_key(|f| (f.evaluate_at, f.customers));
    risk_folds.dedup_by_key(|f| (f.evaluate_at, f.customers));
    let risk = crate::risk::checks(run.evaluator.snapshots(), &risk_folds)?;

    // The intervals at every cutoff tested: each forecast's champion calibrated on its latest
    // validation fold, judged after its cutoff.
    let mut intervals = Vec::new();
    for forecast in run.backtests.iter().chain(std::iter::once(&run.test)) {
        if let Some(check) = interval_check(&mut run.evaluator, forecast)? {
            intervals.push(check);
        }
    }
    intervals.sort_by_key(|c| c.cutoff);

    let frames = match &job.write_frames {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            for (cutoff, labelled) in run.evaluator.snapshots().built() {
                let path = dir.join(format!("snapshot-{cutoff}.parquet"));
                let file = std::fs::File::create(&path).map_err(io(&path))?;
                ParquetWriter::new(file).finish(&mut labelled.frame()?)?;
            }
            Some(dir.clone())
        }
        None => None,
    };
    Ok(Summary {
        first: run.first,
        last_day: run.last_day,
        end: run.end,
        cutoff,
        at_edge: job.request.cutoff.is_none(),
        earliest: run.plan.earliest,
        notes: run.plan.notes.clone(),
        sections,
        backtests,
        risk,
        champion: run.selection.champion.clone(),
        intervals,
        sampled: (
            run.evaluator.snapshots().sampled().to_vec(),
            job.request.sample,
        ),
        frames,
        train_cutoffs: monthly(run.plan.earliest, cutoff),
        fingerprint: histories.fingerprint(),
    })
}

/// The test fold's table: the procedure on the data before the cutoff, or a half of the customers.
fn test_section(run: &Run<'_>, cutoff: NaiveDate) -> Section {
    let test: &Forecast = &run.test;
    let (notes, heading) = match test.test.customers {
        Customers::Every => (
            Vec::new(),
            format!(
                "test fold: the procedure on the data before {cutoff} (planned at its edge {}, champion {} chosen on its validation folds at {}), train at {} -> evaluate at {cutoff}",
                test.plan.cutoff,
                test.champion(),
                dates(
                    &test
                        .selection
                        .folds
                        .iter()
                        .map(|f| f.evaluate_at)
                        .collect::<Vec<_>>()
                ),
                dates(&test.test.train_cutoffs),
            ),
        ),
        Customers::Half(h) => (
            test.plan
                .notes
                .iter()
                .filter(|n| !run.plan.notes.contains(n))
                .cloned()
                .collect(),
            format!(
                "test fold: half {h} of the customers at {cutoff} (champion {} chosen on the other half), train at {} -> evaluate at {cutoff}",
                test.champion(),
                dates(&test.test.train_cutoffs),
            ),
        ),
    };
    Section {
        notes,
        heading,
        scores: test.scores.clone(),
        fold: "test".into(),
    }
}

/// The intervals of the customers a version serves: its champion's calibrated on the latest fold
/// with known labels, carried to the customers at the end of the data.
fn served_interval(run: &mut Run<'_>, best: &str) -> Result<Option<models::interval::Calibration>> {
    let production_fold = run
        .selection
        .latest_fold()
        .cloned()
        .ok_or_else(|| TrainError::Input("no validation fold".into()))?;
    let latest = &run.evaluator.fold(&production_fold)?.predictions;
    Ok(latest.of(best).and_then(|p| {
        models::interval::Calibration::fit(p, &latest.actual).map(|c| {
            crate::intervals::carry(
                &c,
                p,
                &run.production.predictions,
                &run.production.population,
            )
        })
    }))
}

/// The metadata of `version`, registered from `run`.
fn metadata(
    job: &Job,
    run: &Run<'_>,
    summary: &Summary,
    version: &str,
    interval: Option<models::interval::Calibration>,
) -> Metadata {
    let (production, selection, test) = (&run.production, &run.selection, &run.test);
    let best = &summary.champion;
    let mut scores = selection.scores.clone();
    scores.extend(selection.by_fold.iter().cloned());
    scores.extend(test.scores.iter().cloned());
    Metadata {
        version: version.to_string(),
        created: chrono::Utc::now().to_rfc3339(),
        git_commit: job.git_commit.clone(),
        contract_version: CONTRACT_VERSION,
        model: best.clone(),
        features: production
            .champion
            .spec
            .features()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        cutoff: summary.cutoff.to_string(),
        horizon_months: job.request.horizon_months,
        train_cutoffs: summary
            .train_cutoffs
            .iter()
            .map(|d| d.to_string())
            .collect(),
        data_fingerprint: summary.fingerprint.clone(),
        scores,
        // The segments' value tiers: percentiles of the champion's predictions for the customers
        // at the end of the data, as the scorer serves them; drift is measured against the same.
        value_tiers: contract::segment::ValueTiers::of(&production.predictions),
        interval,
        drift: models::drift::Reference::of(&production.population, &production.predictions),
        data_end: Some(summary.end.to_string()),
        tested: Some(test.champion().to_string()),
        passed_over: selection.passed_over(),
        gains: test.predictions.of(test.champion()).map(|predicted| {
            // Twenty steps of the curve: enough for a chart, small in the metadata.
            let curve = crate::report::gains(&test.predictions.actual, predicted);
            let last = curve.len().saturating_sub(1).max(1);
            (0..=20)
                .map(|k| curve[(k * last / 20).min(curve.len() - 1)])
                .collect()
        }),
    }
}

/// Writes the version of `run`, logs it and promotes it by the registry's rule.
fn register(job: &Job, mut run: Run<'_>, summary: Summary) -> Result<Registered> {
    let best = summary.champion.clone();
    let interval = served_interval(&mut run, &best)?;
    let production = &run.production;
    let registry = Registry::open(&job.models_dir)?;
    let (version, dir) = registry.new_version()?;
    production.champion.save(&dir.join("model.json"))?;
    production.nine.save(&dir.join("model_nine.json"))?;
    let report = summary.markdown(&version);
    let path = dir.join("report.md");
    std::fs::write(&path, report).map_err(io(&path))?;
    let test = &run.test;
    let selection = &run.selection;
    let tables: Vec<(String, Vec<Score>)> = summary
        .sections
        .iter()
        .map(|s| (s.heading.clone(), s.scores.clone()))
        .collect();
    let page = crate::report::ReportInput {
        title: format!("clv {version}: champion {best}"),
        summary: summary.html_summary(test.champion()),
        tables: &tables,
        champion: &best,
        charts: Vec::new(),
    };
    let html = crate::report::build(
        page,
        run.evaluator.snapshots(),
        test,
        &selection.scores,
        &candidates(),
    )?;
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(io(&path))?;
    let metadata = metadata(job, &run, &summary, &version, interval);
    registry.write_metadata(&metadata)?;
    let mlflow = match &job.mlflow {
        Some(Mlflow { uri, experiment }) => {
            let logged = Tracking::new(uri).log_version(experiment, &metadata, &dir)?;
            Some((logged.experiment_id, logged.run_id))
        }
        None => None,
    };
    let (promoted, reason) = match registry.production()? {
        None => (true, "first version".to_string()),
        Some(current) => beats(&metadata, &registry.metadata(&current)?),
    };
    if promoted {
        registry.promote(&version, &reason)?;
    }
    let production = registry
        .production()?
        .ok_or_else(|| TrainError::Input("no production version after promotion".into()))?;
    let production_cutoff = registry
        .metadata(&production)?
        .cutoff
        .parse()
        .map_err(|e| TrainError::Input(format!("the production version's cutoff: {e}")))?;
    Ok(Registered {
        validation_mae: metadata
            .score(&metadata.model, "validation")
            .map_or(f64::NAN, |s| s.metrics.mae),
        version,
        dir,
        promoted,
        reason,
        production,
        production_cutoff,
        mlflow,
        summary,
    })
}
