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
use crate::backtest::{
    Customers, Fold, Forecast, IntervalCheck, Sampled, TREE_ROW_BUDGET, candidates, interval_check,
    interval_table, monthly, table, validation_at,
};
use crate::mlflow::Tracking;
use crate::pipeline::{Request, Run};
use crate::risk::RiskRow;
use crate::training::{Histories, Sample};
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

/// One table of scores and the lines said before it.
#[derive(Debug, Clone)]
pub struct Section {
    /// Notes said before the table.
    pub notes: Vec<String>,
    /// What the table is.
    pub heading: String,
    /// Its scores.
    pub scores: Vec<Score>,
    /// The fold name the scores carry.
    pub fold: String,
}

/// What a run found, typed: the output and `report.md` are written from it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The first purchase's day.
    pub first: NaiveDate,
    /// The last purchase's day.
    pub last_day: NaiveDate,
    /// The data holds every purchase before this day.
    pub end: NaiveDate,
    /// The production cutoff.
    pub cutoff: NaiveDate,
    /// Whether the cutoff is the edge of the data (not given).
    pub at_edge: bool,
    /// The first training snapshot.
    pub earliest: NaiveDate,
    /// The plan's notes.
    pub notes: Vec<String>,
    /// The validation folds, their mean (where the champion is chosen) and the test.
    pub sections: Vec<Section>,
    /// The backtests at several cutoffs (the test's among them) and their notes, when any ran or
    /// was skipped.
    pub backtests: Option<(Vec<Backtest>, Vec<String>)>,
    /// The at-risk list against the naive list at every cutoff evaluated.
    pub risk: Vec<RiskRow>,
    /// The champion.
    pub champion: String,
    /// Its intervals at every cutoff tested.
    pub intervals: Vec<IntervalCheck>,
    /// The training sets that were sampled, and the sample's settings.
    pub sampled: (Vec<Sampled>, Sample),
    /// Where the training snapshots were written.
    pub frames: Option<PathBuf>,
    /// The production model's training cutoffs.
    pub train_cutoffs: Vec<NaiveDate>,
    /// The data's fingerprint.
    pub fingerprint: String,
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

fn dates(days: &[NaiveDate]) -> String {
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

/// Writes the version of `run`, logs it and promotes it by the registry's rule.
fn register(job: &Job, mut run: Run<'_>, summary: Summary) -> Result<Registered> {
    let best = summary.champion.clone();
    let production_fold = run
        .selection
        .latest_fold()
        .cloned()
        .ok_or_else(|| TrainError::Input("no validation fold".into()))?;
    // The intervals of the customers it serves: calibrated on the latest fold with known labels,
    // carried to the customers at the end of the data.
    let interval = {
        let latest = &run.evaluator.fold(&production_fold)?.predictions;
        latest.of(&best).and_then(|p| {
            models::interval::Calibration::fit(p, &latest.actual).map(|c| {
                crate::backtest::carry(
                    &c,
                    p,
                    &run.production.predictions,
                    &run.production.population,
                )
            })
        })
    };
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
    let mut scores = selection.scores.clone();
    scores.extend(selection.by_fold.iter().cloned());
    scores.extend(test.scores.iter().cloned());
    let metadata = Metadata {
        version: version.clone(),
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
    };
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
    drop(run);
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

impl Summary {
    /// The first line: the data and the plan.
    fn headline(&self) -> String {
        format!(
            "purchases from {} to {} (data through {}): production cutoff {}{}, training snapshots from {}",
            self.first,
            self.last_day,
            self.end.pred_opt().unwrap_or(self.end),
            self.cutoff,
            if self.at_edge {
                " (the edge of the data)"
            } else {
                ""
            },
            self.earliest
        )
    }

    fn intervals_table(&self) -> Option<String> {
        (!self.intervals.is_empty()).then(|| interval_table(&self.intervals))
    }

    /// What `clv train` prints.
    pub fn console(&self) -> String {
        let mut out = self.headline();
        out.push('\n');
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        for s in &self.sections {
            for note in &s.notes {
                out.push_str(&format!("{note}\n"));
            }
            out.push_str(&format!("\n{}\n\n{}", s.heading, table(&s.scores, &s.fold)));
        }
        if let Some((backtests, notes)) = &self.backtests {
            out.push_str(&format!(
                "\nbacktests at several test cutoffs:\n\n{}",
                crate::across::table(backtests)
            ));
            for note in notes {
                out.push_str(&format!("{note}\n"));
            }
        }
        out.push_str(&format!(
            "\nat-risk list (fading band by value at risk) vs naive (top spenders silent longer than the median): share who then spent nothing\n\n{}",
            crate::risk::table(&self.risk)
        ));
        out.push_str(&format!(
            "champion (lowest mean validation MAE; BG/NBD + GG preferred unless a model ranks as well and beats it by more than one standard error): {}\n",
            self.champion
        ));
        if let Some(intervals) = self.intervals_table() {
            out.push_str(&format!(
                "\n10th-90th percentile intervals (nominal 80%):\n\n{intervals}"
            ));
        }
        let (sampled, sample) = &self.sampled;
        for s in sampled {
            out.push_str(&format!(
                "sampled training set ({} cutoffs from {}): {} of {} rows, {:.1}% of the customers (seed {}, --max-training-rows {})\n",
                s.cutoffs.len(),
                s.cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                s.kept,
                s.rows,
                s.fraction * 100.0,
                sample.seed,
                sample.max_rows
            ));
        }
        if let Some(dir) = &self.frames {
            out.push_str(&format!(
                "wrote the training snapshots to {}\n",
                dir.display()
            ));
        }
        out
    }

    /// `report.md` of `version`.
    pub fn markdown(&self, version: &str) -> String {
        let mut out = format!(
            "# {version}: {}\n\nTrained on the snapshots {} (data {}); its BG/NBD, Gamma-Gamma and \
             seasonal inputs fitted on all the data, at its end ({}), where it is served.\n",
            self.champion,
            dates(&self.train_cutoffs),
            self.fingerprint,
            self.end
        );
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        for s in &self.sections {
            for note in &s.notes {
                out.push_str(&format!("\n{note}\n"));
            }
            out.push_str(&format!(
                "\n## {}\n\n{}",
                s.heading,
                table(&s.scores, &s.fold)
            ));
        }
        if let Some(intervals) = self.intervals_table() {
            out.push_str(&format!(
                "\n## Intervals\n\nAt each cutoff tested, the champion's 10th-90th percentile \
                 intervals (bounds inclusive), calibrated on its latest validation fold (non-buyers: \
                 an interval from 0 up to where 80% of them lie, carried to the customers at the \
                 cutoff by their BG/NBD probability of no purchase; buyers: ten bins by predicted \
                 value, in each the spread of actual / predicted), judged after the cutoff beside \
                 one interval for everyone:\n\n{intervals}"
            ));
        }
        if let Some((backtests, notes)) = &self.backtests {
            out.push_str(&format!(
                "\n## Backtests at several test cutoffs\n\nAt each test cutoff C the whole procedure \
                 runs on the data before C, as a user with that data runs it: planned at that data's \
                 edge, the champion chosen on its validation folds, trained on its snapshots, rows and \
                 BG/NBD inputs computed at C; scored on what every customer spent after C.\n\n{}",
                crate::across::table(backtests)
            ));
            for note in notes {
                out.push_str(&format!("\n{note}\n"));
            }
        }
        out.push_str(&format!(
            "\n## At-risk list\n\nThe list `GET /customers/at-risk` serves (the `fading` band: \
             P(alive) ≥ 0.3 and P(no purchase in the horizon) ≥ 0.5, by revenue to date × P(no \
             purchase)), built at each evaluation cutoff, against what its customers spent after \
             it; beside a naive list of the same size (the biggest spenders to date among those \
             silent longer than the median):\n\n{}",
            crate::risk::table(&self.risk)
        ));
        let (sampled, sample) = &self.sampled;
        if !sampled.is_empty() {
            out.push_str(&format!(
                "\n## Samples\n\nTraining sets above {} rows were sampled by customer (seed {}; BG/NBD \
                 fitted on at most {} customers per cutoff; tree ensembles on at most {} rows):\n\n\
                 | cutoffs | rows | kept | customers kept |\n|---|---|---|---|\n",
                sample.max_rows, sample.seed, sample.max_fit_customers, TREE_ROW_BUDGET
            ));
            for s in sampled {
                out.push_str(&format!(
                    "| {} .. {} | {} | {} | {:.1}% |\n",
                    s.cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                    s.cutoffs.last().map(|d| d.to_string()).unwrap_or_default(),
                    s.rows,
                    s.kept,
                    s.fraction * 100.0
                ));
            }
        }
        out.push_str("\nPlots: report.html.\n");
        out
    }

    /// The HTML report's opening paragraphs.
    fn html_summary(&self, tested: &str) -> Vec<String> {
        let first = self.train_cutoffs.first().map(|d| d.to_string());
        let last = self.train_cutoffs.last().map(|d| d.to_string());
        vec![
            format!(
                "Champion by the lowest mean validation MAE (a BG/NBD + Gamma-Gamma candidate \
                 preferred unless another ranks as well and beats it by more than one standard \
                 error): {}. Production model trained on the snapshots {} to {}, its BG/NBD inputs \
                 fitted at the end of the data ({}); data {}.",
                self.champion,
                first.unwrap_or_default(),
                last.unwrap_or_default(),
                self.end,
                self.fingerprint
            ),
            format!(
                "The test fold is the procedure run on the data before {}: trained only on \
                 snapshots whose label windows end by it, the champion ({tested}) chosen on that \
                 data's validation folds; it is the honest estimate.",
                self.cutoff
            ),
        ]
    }
}

impl Registered {
    /// What `clv train` prints for `job`: the summary, then where the version went.
    pub fn console(&self, job: &Job) -> String {
        let mut out = self.summary.console();
        if let (Some((experiment, run)), Some(mlflow)) = (&self.mlflow, &job.mlflow) {
            out.push_str(&format!(
                "logged {} to MLflow at {}: experiment {experiment}, run {run}\n",
                self.version, mlflow.uri
            ));
        }
        if self.promoted {
            out.push_str(&format!(
                "registered {} in {} and made it production: {}\n",
                self.version,
                job.models_dir.display(),
                self.reason
            ));
        } else {
            out.push_str(&format!(
                "registered {}; production stays {}: {}\n",
                self.version, self.production, self.reason
            ));
        }
        out
    }
}
