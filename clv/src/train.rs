//! `clv train`: training sets from the feature store, the lines or a modeling table; every candidate
//! model scored out of time; the champion by the documented rule.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use contract::Feature;
use dataset::normalised;
use models::Spec;
use polars::prelude::IntoLazy;
use trainer::backtest::{candidates, seed_folds, table};
use trainer::evaluate::score_fold;
use trainer::job::{Job, Mlflow, Registered};
use trainer::selection::champion;
use trainer::training::{Histories, Sample};

use crate::progress;

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The lines: a normalised .parquet (from `clv data import`), or a raw .xlsx, .csv or .zip.
    #[arg(long, conflicts_with_all = ["db", "table"], required_unless_present_any = ["db", "table"])]
    input: Option<PathBuf>,
    /// Or the feature store that ingest writes (a consistent snapshot, also while it runs).
    #[arg(long, conflicts_with = "table")]
    pub(crate) db: Option<PathBuf>,
    /// Or a modeling table (.parquet or .csv: `customer_id`, the nine features, `clv_6m`) of one
    /// cutoff, split by `customer_id mod 5`: 0-2 train, 3 validation, 4 test.
    #[arg(long)]
    table: Option<PathBuf>,
    /// The production cutoff, for a backtest: the test fold evaluates here, the production model
    /// trains up to here. Default: the edge of the data, the latest first of a month whose label
    /// window the data holds (2011-06-01 for the whole UCI data).
    #[arg(long)]
    cutoff: Option<NaiveDate>,
    /// The data holds every purchase before this day (default: the day after the last purchase):
    /// the edge is the latest cutoff whose label window ends by it. For data cut at a date after a
    /// quiet spell (a shop closed over Christmas), say where it was cut.
    #[arg(long)]
    as_of: Option<NaiveDate>,
    /// Months of the label window.
    #[arg(long, default_value_t = 6)]
    horizon_months: u32,
    /// The first training snapshot (default: the first of the month three months after the first
    /// purchase).
    #[arg(long)]
    earliest: Option<NaiveDate>,
    /// The model registry.
    #[arg(long, env = "CLV_MODELS_DIR", default_value = "data/models")]
    pub(crate) models_dir: PathBuf,
    /// The MLflow experiment runs are logged to when MLFLOW_TRACKING_URI is set.
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME", default_value = "clv")]
    experiment: String,
    /// Also write every training snapshot (features, extra features, label) as
    /// `<dir>/snapshot-<cutoff>.parquet`, for analysis outside clv.
    #[arg(long)]
    write_frames: Option<PathBuf>,
    /// At most about this many rows in a stacked training set: above it, a seeded sample of
    /// customers (all of a customer's rows or none) trains; evaluation snapshots are never sampled.
    #[arg(long, default_value_t = Sample::default().max_rows)]
    max_training_rows: usize,
    /// At most about this many customers for fitting BG/NBD and Gamma-Gamma at a cutoff (a seeded
    /// sample above it).
    #[arg(long, default_value_t = Sample::default().max_fit_customers)]
    max_fit_customers: usize,
    /// The seed of those samples.
    #[arg(long, default_value_t = 0)]
    sample_seed: u64,
    /// Backtests at this many earlier test cutoffs besides the production one, a quarter apart
    /// (each trained only on what was known there), in the output and `report.md`: every
    /// candidate's mean columns and how it compares with BG/NBD + GG. 0: none.
    #[arg(long, default_value_t = 2, conflicts_with = "backtest_cutoffs")]
    backtests: u32,
    /// Or backtests at these test cutoffs (comma-separated), e.g. every month of a year.
    #[arg(long, value_delimiter = ',')]
    backtest_cutoffs: Vec<NaiveDate>,
    /// Retrain on a schedule (e.g. `1d`, `6h`, `30s`): read the store again every interval, train
    /// when its data changed, promote by the registry's rule, until SIGTERM (README, "Retraining").
    #[arg(long, value_parser = humantime::parse_duration, requires = "db")]
    pub(crate) every: Option<std::time::Duration>,
    /// With `--every`: serve the retraining's metrics (`GET /metrics`) on this address.
    #[arg(long, requires = "every")]
    pub(crate) metrics_addr: Option<String>,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.every.is_some() {
        return crate::retrain::run(args);
    }
    let started = Instant::now();
    if let Some(path) = &args.table {
        return train_on_table(path);
    }
    let histories = read(&args)?;
    train_histories(&job(&args), &histories, started).map(|_| ())
}

/// The histories `args` train on: the lines of `--input`, or the store at `--db`.
pub(crate) fn read(args: &TrainArgs) -> anyhow::Result<Histories> {
    Ok(match (&args.input, &args.db) {
        (Some(input), _) => {
            let bar = progress::reading(input);
            let loaded = normalised::load(input, &bar)
                .with_context(|| format!("reading {}", input.display()))?;
            bar.finish_and_clear();
            Histories::from_lines(loaded.frame.lazy())?
        }
        (None, Some(db)) => Histories::from_states(crate::snapshot::stored_states(db)?),
        (None, None) => anyhow::bail!("give --input, --db or --table"),
    })
}

/// The pipeline's request from `args`.
fn request(args: &TrainArgs) -> trainer::pipeline::Request {
    trainer::pipeline::Request {
        horizon_months: args.horizon_months,
        cutoff: args.cutoff,
        as_of: args.as_of,
        earliest: args.earliest,
        // `--backtests N` unless dates are given (clap refuses both).
        quarters_before: if args.backtest_cutoffs.is_empty() {
            args.backtests
        } else {
            0
        },
        backtest_cutoffs: args.backtest_cutoffs.clone(),
        sample: Sample {
            max_rows: args.max_training_rows,
            max_fit_customers: args.max_fit_customers,
            seed: args.sample_seed,
        },
    }
}

/// The job of `args`: the pipeline's request, the registry, MLflow when `MLFLOW_TRACKING_URI` is
/// set, the commit of the working directory.
pub(crate) fn job(args: &TrainArgs) -> Job {
    Job {
        request: request(args),
        models_dir: args.models_dir.clone(),
        mlflow: mlflow(&args.experiment),
        write_frames: args.write_frames.clone(),
        git_commit: git_commit(),
    }
}

/// The MLflow server of `MLFLOW_TRACKING_URI`, when set, with `experiment`.
pub(crate) fn mlflow(experiment: &str) -> Option<Mlflow> {
    std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|uri| !uri.trim().is_empty())
        .map(|uri| Mlflow {
            uri,
            experiment: experiment.to_string(),
        })
}

/// Runs `job` on `histories` (read from the arguments' input, or handed over by the demo from its
/// own store) and prints what it found and where the version went.
pub(crate) fn train_histories(
    job: &Job,
    histories: &Histories,
    started: Instant,
) -> anyhow::Result<Registered> {
    let registered = trainer::job::run(job, histories)?;
    print!("{}", registered.console(job));
    println!("({:.1} s)", started.elapsed().as_secs_f64());
    Ok(registered)
}

/// The commit of the working directory, when it is a git checkout.
pub(crate) fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn train_on_table(path: &std::path::Path) -> anyhow::Result<()> {
    let frame =
        normalised::read_table(path).with_context(|| format!("reading {}", path.display()))?;
    let nine: Vec<Spec> = candidates()
        .into_iter()
        .filter(|s| {
            !matches!(s, Spec::BgNbd { .. })
                && s.features()
                    .iter()
                    .all(|f| Feature::NINE.contains(f) || *f == Feature::Naive6m)
        })
        .collect();
    let mut scores = Vec::new();
    for (fold, train, test) in seed_folds(&frame)? {
        scores.extend(score_fold(&fold, &train, &test, &nine)?.0);
    }
    for fold in ["validation", "test"] {
        println!(
            "\n{fold} (customer_id mod 5 = {}):\n\n{}",
            if fold == "validation" { 3 } else { 4 },
            table(&scores, fold)
        );
    }
    if let Some(best) = champion(&scores) {
        println!(
            "champion (lowest validation MAE, ties by Gini): {}",
            best.model
        );
    }
    Ok(())
}
