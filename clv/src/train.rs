//! `clv train`: training sets from the feature store, the lines or a modeling table; every candidate
//! model scored out of time; the champion by the documented rule.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, NaiveDate};
use clap::Args;
use contract::{CONTRACT_VERSION, Feature};
use dataset::normalised;
use models::registry::{Metadata, Registry, beats};
use models::{Spec, Trained, TrainingSet};
use polars::prelude::IntoLazy;
use trainer::backtest::{
    Snapshots, budgeted, candidates, champion, evaluate, interval_table, monthly, plan, score_fold,
    seed_folds, table,
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

/// Trains on `histories` (read from `args`' input, or handed over by the demo from its own store).
pub(crate) fn train_histories(
    args: TrainArgs,
    histories: &Histories,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let day = |ms: i64, what: &str| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| t.date_naive())
            .with_context(|| format!("the {what} purchase's time"))
    };
    let first = day(
        histories
            .first_purchase_ms()
            .context("no purchases to train on")?,
        "first",
    )?;
    let last_day = day(
        histories.last_purchase_ms().context("no purchases")?,
        "last",
    )?;
    let end = match args.as_of {
        Some(as_of) if as_of <= last_day => anyhow::bail!(
            "--as-of {as_of}: the data has purchases on {last_day}, on or after it (--as-of is \
             where the data ends; --cutoff backtests at an earlier date)"
        ),
        Some(as_of) => as_of,
        None => last_day + chrono::Days::new(1),
    };
    let plan = plan(first, end, args.horizon_months, args.cutoff, args.earliest)?;
    let (cutoff, earliest, folds) = (plan.cutoff, plan.earliest, plan.folds.clone());
    println!(
        "purchases from {first} to {last_day} (data through {}): production cutoff {cutoff}{}, training snapshots from {earliest}",
        end.pred_opt().unwrap_or(end),
        if args.cutoff.is_none() {
            " (the edge of the data)"
        } else {
            ""
        }
    );
    for note in &plan.notes {
        println!("{note}");
    }
    let sample = Sample {
        max_rows: args.max_training_rows,
        max_fit_customers: args.max_fit_customers,
        seed: args.sample_seed,
    };
    let mut snapshots = Snapshots::new(histories, args.horizon_months).with_sample(sample);
    let evaluation = evaluate(&mut snapshots, &folds, &candidates())?;
    let scores = evaluation.scores.clone();
    for fold in &folds {
        println!(
            "\n{} fold: train at {} -> evaluate at {}\n\n{}",
            fold.name,
            fold.train_cutoffs
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            fold.evaluate_at,
            table(&scores, &fold.name)
        );
    }
    // The backtest at earlier test cutoffs, beside the production cutoff's.
    let earlier: Vec<NaiveDate> = if args.backtest_cutoffs.is_empty() {
        (1..=args.backtests)
            .filter_map(|q| i32::try_from(3 * q).ok())
            .map(|months| contract::add_months(cutoff, -months))
            .collect()
    } else {
        args.backtest_cutoffs
            .iter()
            .copied()
            .filter(|d| *d != cutoff)
            .collect()
    };
    let mut across_notes = Vec::new();
    let across_table = if earlier.is_empty() {
        None
    } else {
        let (mut backtests, skipped) = trainer::across::run(
            &mut snapshots,
            &candidates(),
            (first, end),
            args.horizon_months,
            &earlier,
            args.earliest,
        )?;
        across_notes = skipped;
        backtests.push(trainer::across::of_scores(
            cutoff,
            &scores,
            plan.notes.clone(),
        ));
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
    let risk_table = trainer::risk::table(&mut snapshots, &folds)?;
    println!(
        "\nat-risk list (fading band by value at risk) vs naive (top spenders silent longer than the median): share who then spent nothing\n\n{risk_table}"
    );
    let best = champion(&scores)
        .context("no candidate was scored")?
        .model
        .clone();
    println!("champion (lowest validation MAE, ties by Gini): {best}");

    let interval_table = interval_table(&evaluation, &best).unwrap_or_default();
    if !interval_table.is_empty() {
        println!("\n10th-90th percentile intervals (nominal 80%):\n\n{interval_table}");
    }
    // The production version's intervals: calibrated on the latest fold with known labels.
    let interval = evaluation
        .of("test", &best)
        .and_then(|(predicted, actual)| models::interval::Calibration::fit(predicted, actual));

    // The production models: trained on every snapshot up to the production cutoff (the plan puts
    // it at or before the edge, so each of their label windows ends by the end of the data).
    let train_cutoffs: Vec<NaiveDate> = monthly(earliest, cutoff);
    let train = snapshots.stacked(&train_cutoffs)?;
    for sampled in snapshots.sampled() {
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
        for (cutoff, labelled) in snapshots.built() {
            let path = dir.join(format!("snapshot-{cutoff}.parquet"));
            normalised::write_parquet(&mut labelled.frame()?, &path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote the training snapshots to {}", dir.display());
    }
    let specs = candidates();
    let by_name = |name: &str| specs.iter().find(|s| s.name() == name).cloned();
    let champion_spec = by_name(&best).context("the champion's spec")?;
    let nine_name = scores
        .iter()
        .filter(|s| s.fold == "validation")
        .filter(|s| {
            by_name(&s.model)
                .is_some_and(|spec| spec.features().iter().all(|f| Feature::NINE.contains(f)))
        })
        .min_by(|a, b| a.metrics.mae.total_cmp(&b.metrics.mae))
        .map(|s| s.model.clone())
        .context("no nine-feature candidate")?;
    let nine_spec = by_name(&nine_name).context("the nine-feature spec")?;

    let fingerprint = histories.fingerprint();
    let registry = Registry::open(&args.models_dir)?;
    let (version, dir) = registry.new_version()?;
    // The model-wide inputs and the population constants are those of the production cutoff.
    let inputs = snapshots.inputs(cutoff)?;
    let population = snapshots.at(cutoff)?.rows.clone();
    let mut value_tiers = None;
    let mut drift = None;
    for (spec, file) in [
        (&champion_spec, "model.json"),
        (&nine_spec, "model_nine.json"),
    ] {
        let train = budgeted(spec, &train);
        let set = TrainingSet {
            rows: &train.rows,
            labels: &train.labels,
            population: &population,
        };
        let trained = Trained::fit(spec, &set, inputs.clone())?;
        if file == "model.json" {
            // The segments' value tiers: percentiles of the champion's predictions for the
            // customers at the production cutoff.
            value_tiers = contract::segment::ValueTiers::of(&trained.predict(&population)?);
            // Drift is measured against the customers as this version would have served them at
            // the end of its data (not at its cutoff: a population half a year older would
            // differ from the cutoff's by its age alone).
            let builder = contract::RowBuilder::new(&trained.inputs, end);
            let served: Vec<contract::FeatureRow> = histories
                .customers()
                .iter()
                .filter_map(|(_, state)| builder.row(state))
                .collect();
            drift = models::drift::Reference::of(&served, &trained.predict(&served)?);
        }
        trained.save(&dir.join(file))?;
    }
    let mut report = format!(
        "# {version}: {best}\n\nTrained on the snapshots {} (data {}).\n",
        train_cutoffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        fingerprint
    );
    for note in &plan.notes {
        report.push_str(&format!("\n{note}\n"));
    }
    for fold in &folds {
        report.push_str(&format!(
            "\n## {} fold: evaluate at {}{}\n\n{}",
            fold.name,
            fold.evaluate_at,
            match fold.customers {
                trainer::backtest::Customers::Every => String::new(),
                trainer::backtest::Customers::Half(h) => format!(" (half {h} of the customers)"),
            },
            table(&scores, &fold.name)
        ));
    }
    if !interval_table.is_empty() {
        report.push_str(&format!(
            "\n## Intervals\n\nThe champion's 10th-90th percentile intervals (bounds inclusive), \
             calibrated on the validation fold (by predicted value: ten bins, in each the spread of \
             actual / predicted), judged on the test fold beside one interval for everyone:\n\n\
             {interval_table}"
        ));
    }
    if let Some(text) = &across_table {
        report.push_str(&format!(
            "\n## Backtests at several test cutoffs\n\nAt each test cutoff the folds are placed as \
             for a production cutoff there: every candidate trained only on snapshots whose labels \
             end by it, the champion chosen on its validation fold.\n\n{text}"
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
    if !snapshots.sampled().is_empty() {
        report.push_str(&format!(
            "\n## Samples\n\nTraining sets above {} rows were sampled by customer (seed {}; BG/NBD \
             fitted on at most {} customers per cutoff; tree ensembles on at most {} rows):\n\n\
             | cutoffs | rows | kept | customers kept |\n|---|---|---|---|\n",
            sample.max_rows,
            sample.seed,
            sample.max_fit_customers,
            trainer::backtest::TREE_ROW_BUDGET
        ));
        for s in snapshots.sampled() {
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
    let html = trainer::report::build(
        format!("clv {version}: champion {best}"),
        vec![
            format!(
                "Champion by the lowest validation MAE (ties by normalised Gini): {best}. Production \
                 model trained on the snapshots {} to {}; data {fingerprint}.",
                train_cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                train_cutoffs.last().map(|d| d.to_string()).unwrap_or_default(),
            ),
            "Every candidate is trained only on snapshots whose label windows end by its fold's \
             evaluation cutoff; models and settings are chosen on the validation fold, the test fold \
             is the honest estimate."
                .to_string(),
        ],
        &mut snapshots,
        &folds,
        &evaluation,
        &specs,
        &best,
    )?;
    std::fs::write(dir.join("report.html"), html).context("writing the HTML report")?;
    let metadata = Metadata {
        version: version.clone(),
        created: chrono::Utc::now().to_rfc3339(),
        git_commit: git_commit(),
        contract_version: CONTRACT_VERSION,
        model: best.clone(),
        features: champion_spec
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
        gains: evaluation.of("test", &best).map(|(predicted, actual)| {
            // Twenty steps of the curve: enough for a chart, small in the metadata.
            let curve = trainer::report::gains(actual, predicted);
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
