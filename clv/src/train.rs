//! `clv train`: training sets from the feature store, the lines or a modeling table; every candidate
//! model scored out of time; the champion by the documented rule.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use contract::{CONTRACT_VERSION, Feature};
use dataset::normalised;
use models::Spec;
use models::registry::{Metadata, Registry, beats};
use polars::prelude::IntoLazy;
use trainer::backtest::{
    candidates, champion, interval_table, monthly, score_fold, seed_folds, table,
};
use trainer::mlflow::Tracking;
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

impl TrainArgs {
    /// Training on the feature store at `db` with the defaults (the demo's).
    pub(crate) fn on_store(db: PathBuf, models_dir: PathBuf) -> Self {
        TrainArgs {
            input: None,
            db: Some(db),
            table: None,
            cutoff: None,
            as_of: None,
            horizon_months: 6,
            earliest: None,
            models_dir,
            experiment: "clv".into(),
            write_frames: None,
            max_training_rows: Sample::default().max_rows,
            max_fit_customers: Sample::default().max_fit_customers,
            sample_seed: 0,
            // The demo's first answer should not wait for backtests nobody reads there.
            backtests: 0,
            backtest_cutoffs: Vec::new(),
            every: None,
            metrics_addr: None,
        }
    }
}

/// What one training run did.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The version it registered.
    pub version: String,
    /// Whether that version became production.
    pub promoted: bool,
    /// Why (the registry's rule).
    pub reason: String,
    /// The production version after the run.
    pub production: String,
    /// The production version's cutoff after the run.
    pub production_cutoff: NaiveDate,
    /// The new champion's validation MAE.
    pub validation_mae: f64,
    /// The fingerprint of the data it trained on.
    pub fingerprint: String,
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
    train_histories(args, &histories, started).map(|_| ())
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

fn dates(days: &[NaiveDate]) -> String {
    days.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Trains on `histories` (read from `args`' input, or handed over by the demo from its own store).
pub(crate) fn train_histories(
    args: TrainArgs,
    histories: &Histories,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let request = request(&args);
    let sample = request.sample;
    let run = trainer::pipeline::run(histories, &request)?;
    let (first, last_day, end) = (run.first, run.last_day, run.end);
    let cutoff = run.plan.cutoff;
    let earliest = run.plan.earliest;
    println!(
        "purchases from {first} to {last_day} (data through {}): production cutoff {cutoff}{}, training snapshots from {earliest}",
        end.pred_opt().unwrap_or(end),
        if args.cutoff.is_none() {
            " (the edge of the data)"
        } else {
            ""
        }
    );
    for note in &run.plan.notes {
        println!("{note}");
    }
    let selection = &run.selection;
    let mut report_tables: Vec<(String, Vec<models::registry::Score>)> = Vec::new();
    let mut report = String::new();
    for fold in &selection.folds {
        let name = trainer::backtest::validation_at(fold.evaluate_at);
        let heading = format!(
            "validation fold: train at {} -> evaluate at {}{}",
            dates(&fold.train_cutoffs),
            fold.evaluate_at,
            match fold.customers {
                trainer::backtest::Customers::Every => String::new(),
                trainer::backtest::Customers::Half(h) => format!(" (half {h} of the customers)"),
            }
        );
        let scores: Vec<_> = selection
            .by_fold
            .iter()
            .filter(|s| s.fold == name)
            .cloned()
            .collect();
        println!("\n{heading}\n\n{}", table(&scores, &name));
        report.push_str(&format!("\n## {heading}\n\n{}", table(&scores, &name)));
        report_tables.push((heading, scores));
    }
    let stability = selection
        .per_fold
        .iter()
        .map(|(at, model)| format!("{model} at {at}"))
        .collect::<Vec<_>>()
        .join(", ");
    let heading = format!(
        "validation folds, mean of {}: the champion is chosen here (each fold alone would choose {stability})",
        selection.folds.len()
    );
    println!("\n{heading}\n\n{}", table(&selection.scores, "validation"));
    report.push_str(&format!(
        "\n## {heading}\n\n{}",
        table(&selection.scores, "validation")
    ));
    report_tables.push((heading, selection.scores.clone()));
    let best = selection.champion.clone();

    // The procedure's test: the same procedure on the data before the production cutoff.
    let test = &run.test;
    let test_heading = match test.test.customers {
        trainer::backtest::Customers::Every => format!(
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
        trainer::backtest::Customers::Half(h) => {
            for note in &test.plan.notes {
                if !run.plan.notes.contains(note) {
                    println!("{note}");
                    report.push_str(&format!("\n{note}\n"));
                }
            }
            format!(
                "test fold: half {h} of the customers at {cutoff} (champion {} chosen on the other half), train at {} -> evaluate at {cutoff}",
                test.champion(),
                dates(&test.test.train_cutoffs),
            )
        }
    };
    println!("\n{test_heading}\n\n{}", table(&test.scores, "test"));
    report.push_str(&format!(
        "\n## {test_heading}\n\n{}",
        table(&test.scores, "test")
    ));
    report_tables.push((test_heading, test.scores.clone()));

    // The backtests at earlier cutoffs, beside the production cutoff's test.
    let mut across_notes = run.skipped.clone();
    let across_table = if run.backtests.is_empty() && run.skipped.is_empty() {
        None
    } else {
        let mut backtests: Vec<trainer::across::Backtest> =
            run.backtests.iter().map(Into::into).collect();
        if test.test.customers == trainer::backtest::Customers::Every {
            backtests.push(test.into());
        }
        backtests.sort_by_key(|b| b.cutoff);
        for b in &backtests {
            for note in &b.notes {
                across_notes.push(format!("at {}: {note}", b.cutoff));
            }
        }
        Some(trainer::across::table(&backtests))
    };
    if let Some(text) = &across_table {
        println!(
            "
backtests at several test cutoffs:

{text}"
        );
        for note in &across_notes {
            println!("{note}");
        }
    }
    let mut evaluator = run.evaluator;
    // The at-risk list at every cutoff evaluated: the tests (each backtest's included) and the
    // validation folds, once per cutoff.
    let mut risk_folds: Vec<trainer::backtest::Fold> = run
        .backtests
        .iter()
        .map(|b| b.test.clone())
        .chain(std::iter::once(test.test.clone()))
        .chain(selection.folds.iter().cloned())
        .collect();
    risk_folds.sort_by_key(|f| (f.evaluate_at, f.customers));
    risk_folds.dedup_by_key(|f| (f.evaluate_at, f.customers));
    let risk_table = trainer::risk::table(evaluator.snapshots(), &risk_folds)?;
    println!(
        "\nat-risk list (fading band by value at risk) vs naive (top spenders silent longer than the median): share who then spent nothing\n\n{risk_table}"
    );
    println!(
        "champion (lowest mean validation MAE; BG/NBD + GG within one standard error of it preferred): {best}"
    );

    // The intervals at every cutoff tested: each forecast's champion calibrated on its latest
    // validation fold, judged after its cutoff; the production version's calibrated on the latest
    // fold with known labels.
    let mut interval_checks = Vec::new();
    for forecast in run.backtests.iter().chain(std::iter::once(test)) {
        if let Some(check) = trainer::backtest::interval_check(&mut evaluator, forecast)? {
            interval_checks.push(check);
        }
    }
    interval_checks.sort_by_key(|c| c.cutoff);
    let interval_table = if interval_checks.is_empty() {
        String::new()
    } else {
        interval_table(&interval_checks)
    };
    if !interval_table.is_empty() {
        println!("\n10th-90th percentile intervals (nominal 80%):\n\n{interval_table}");
    }
    let production_fold = selection
        .latest_fold()
        .cloned()
        .context("no validation fold")?;
    // Carried by rank to the customers it serves.
    let interval = {
        let latest = &evaluator.fold(&production_fold)?.predictions;
        latest.of(&best).and_then(|p| {
            models::interval::Calibration::fit(p, &latest.actual).map(|c| {
                trainer::backtest::carry(
                    &c,
                    p,
                    &run.production.predictions,
                    &run.production.population,
                )
            })
        })
    };

    let train_cutoffs: Vec<NaiveDate> = monthly(earliest, cutoff);
    for sampled in evaluator.snapshots().sampled() {
        println!(
            "sampled training set ({} cutoffs from {}): {} of {} rows, {:.1}% of the customers (seed {}, --max-training-rows {})",
            sampled.cutoffs.len(),
            sampled
                .cutoffs
                .first()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            sampled.kept,
            sampled.rows,
            sampled.fraction * 100.0,
            sample.seed,
            sample.max_rows
        );
    }
    if let Some(dir) = &args.write_frames {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (cutoff, labelled) in evaluator.snapshots().built() {
            let path = dir.join(format!("snapshot-{cutoff}.parquet"));
            normalised::write_parquet(&mut labelled.frame()?, &path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote the training snapshots to {}", dir.display());
    }
    let production = &run.production;

    let fingerprint = histories.fingerprint();
    let registry = Registry::open(&args.models_dir)?;
    let (version, dir) = registry.new_version()?;
    // The segments' value tiers: percentiles of the champion's predictions for the customers at
    // the end of the data, as the scorer serves them; drift is measured against the same.
    let value_tiers = contract::segment::ValueTiers::of(&production.predictions);
    let drift = models::drift::Reference::of(&production.population, &production.predictions);
    production.champion.save(&dir.join("model.json"))?;
    production.nine.save(&dir.join("model_nine.json"))?;
    let mut head = format!(
        "# {version}: {best}\n\nTrained on the snapshots {} (data {}); its BG/NBD, Gamma-Gamma and \
         seasonal inputs fitted on all the data, at its end ({end}), where it is served.\n",
        dates(&train_cutoffs),
        fingerprint
    );
    for note in &run.plan.notes {
        head.push_str(&format!("\n{note}\n"));
    }
    report.insert_str(0, &head);
    if !interval_table.is_empty() {
        report.push_str(&format!(
            "\n## Intervals\n\nAt each cutoff tested, the champion's 10th-90th percentile \
             intervals (bounds inclusive), calibrated on its latest validation fold (non-buyers: \
             an interval from 0 up to their 80th percentile of predictions; buyers: ten bins by \
             predicted value, in each the spread of actual / predicted), judged after the cutoff \
             beside one interval for everyone:\n\n{interval_table}"
        ));
    }
    if let Some(text) = &across_table {
        report.push_str(&format!(
            "\n## Backtests at several test cutoffs\n\nAt each test cutoff C the whole procedure \
             runs on the data before C, as a user with that data runs it: planned at that data's \
             edge, the champion chosen on its validation folds, trained on its snapshots, rows and \
             BG/NBD inputs computed at C; scored on what every customer spent after C.\n\n{text}"
        ));
        for note in &across_notes {
            report.push_str(&format!("\n{note}\n"));
        }
    }
    report.push_str(&format!(
        "\n## At-risk list\n\nThe list `GET /customers/at-risk` serves (customers with 0.3 ≤ P(alive) < 0.7, by revenue to \
         date × (1 − P(alive))), built at each evaluation cutoff, against what its customers spent \
         after it; beside a naive list of the same size (the biggest spenders to date among those \
         silent longer than the median):\n\n{risk_table}"
    ));
    if !evaluator.snapshots().sampled().is_empty() {
        report.push_str(&format!(
            "\n## Samples\n\nTraining sets above {} rows were sampled by customer (seed {}; BG/NBD \
             fitted on at most {} customers per cutoff; tree ensembles on at most {} rows):\n\n\
             | cutoffs | rows | kept | customers kept |\n|---|---|---|---|\n",
            sample.max_rows,
            sample.seed,
            sample.max_fit_customers,
            trainer::backtest::TREE_ROW_BUDGET
        ));
        for s in evaluator.snapshots().sampled() {
            report.push_str(&format!(
                "| {} .. {} | {} | {} | {:.1}% |\n",
                s.cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                s.cutoffs.last().map(|d| d.to_string()).unwrap_or_default(),
                s.rows,
                s.kept,
                s.fraction * 100.0
            ));
        }
    }
    report.push_str("\nPlots: report.html.\n");
    std::fs::write(dir.join("report.md"), report).context("writing the report")?;
    let specs = candidates();
    let page = trainer::report::ReportInput {
        title: format!("clv {version}: champion {best}"),
        summary: vec![
            format!(
                "Champion by the lowest mean validation MAE (a BG/NBD + Gamma-Gamma candidate within one \
                 standard error of it preferred): {best}. \
                 Production model trained on the snapshots {} to {}, its BG/NBD inputs fitted at \
                 the end of the data ({end}); data {fingerprint}.",
                train_cutoffs
                    .first()
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                train_cutoffs
                    .last()
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
            ),
            format!(
                "The test fold is the procedure run on the data before {cutoff}: trained only on \
                 snapshots whose label windows end by it, the champion ({}) chosen on that data's \
                 validation folds; it is the honest estimate.",
                test.champion()
            ),
        ],
        tables: &report_tables,
        champion: &best,
        charts: Vec::new(),
    };
    let html =
        trainer::report::build(page, evaluator.snapshots(), test, &selection.scores, &specs)?;
    std::fs::write(dir.join("report.html"), html).context("writing the HTML report")?;
    let mut scores = selection.scores.clone();
    scores.extend(selection.by_fold.iter().cloned());
    scores.extend(test.scores.iter().cloned());
    let metadata = Metadata {
        version: version.clone(),
        created: chrono::Utc::now().to_rfc3339(),
        git_commit: git_commit(),
        contract_version: CONTRACT_VERSION,
        model: best.clone(),
        features: production
            .champion
            .spec
            .features()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        cutoff: cutoff.to_string(),
        horizon_months: args.horizon_months,
        train_cutoffs: train_cutoffs.iter().map(|d| d.to_string()).collect(),
        data_fingerprint: fingerprint,
        scores,
        value_tiers,
        interval,
        drift,
        data_end: Some(end.to_string()),
        tested: Some(test.champion().to_string()),
        passed_over: selection.passed_over(),
        gains: test.predictions.of(test.champion()).map(|predicted| {
            // Twenty steps of the curve: enough for a chart, small in the metadata.
            let curve = trainer::report::gains(&test.predictions.actual, predicted);
            let last = curve.len().saturating_sub(1).max(1);
            (0..=20)
                .map(|k| curve[(k * last / 20).min(curve.len() - 1)])
                .collect()
        }),
    };
    registry.write_metadata(&metadata)?;
    if let Ok(uri) = std::env::var("MLFLOW_TRACKING_URI")
        && !uri.trim().is_empty()
    {
        let run = Tracking::new(&uri)
            .log_version(&args.experiment, &metadata, &dir)
            .with_context(|| format!("logging {version} to MLflow at {uri}"))?;
        println!(
            "logged {version} to MLflow at {uri}: experiment {}, run {}",
            run.experiment_id, run.run_id
        );
    }
    let (promoted, reason) = match registry.production()? {
        None => (true, "first version".to_string()),
        Some(current) => beats(&metadata, &registry.metadata(&current)?),
    };
    if promoted {
        registry.promote(&version, &reason)?;
        println!(
            "registered {version} in {} and made it production: {reason}",
            registry.dir().display()
        );
    } else {
        println!(
            "registered {version}; production stays {}: {reason}",
            registry.production()?.unwrap_or_default()
        );
    }
    let production = registry
        .production()?
        .context("no production version after promotion")?;
    let production_cutoff = registry
        .metadata(&production)?
        .cutoff
        .parse()
        .context("the production version's cutoff")?;
    println!("({:.1} s)", started.elapsed().as_secs_f64());
    Ok(Outcome {
        validation_mae: metadata
            .score(&metadata.model, "validation")
            .map_or(f64::NAN, |s| s.metrics.mae),
        fingerprint: metadata.data_fingerprint.clone(),
        version,
        promoted,
        reason,
        production,
        production_cutoff,
    })
}

/// The commit of the working directory, when it is a git checkout.
fn git_commit() -> Option<String> {
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
