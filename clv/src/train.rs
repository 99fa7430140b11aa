//! `clv train`: training sets from the feature store, the lines or a modeling table; every candidate
//! model scored out of time; the champion by the documented rule.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Datelike, NaiveDate};
use clap::Args;
use dataset::normalised;
use featurestore::contract::add_months;
use polars::prelude::IntoLazy;
use trainer::backtest::{
    Snapshots, candidates, champion, evaluate, folds, score_fold, seed_folds, table,
};
use trainer::models::{FeatureSet, Spec};
use trainer::training::Histories;

use crate::progress;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The lines: a normalised .parquet (from `clv data import`), or a raw .xlsx, .csv or .zip.
    #[arg(long, conflicts_with_all = ["db", "table"], required_unless_present_any = ["db", "table"])]
    input: Option<PathBuf>,
    /// Or the feature store that ingest writes (a consistent snapshot, also while it runs).
    #[arg(long, conflicts_with = "table")]
    db: Option<PathBuf>,
    /// Or a modeling table (.parquet or .csv: `customer_id`, the nine features, `clv_6m`) of one
    /// cutoff, split by `customer_id mod 5`: 0-2 train, 3 validation, 4 test.
    #[arg(long)]
    table: Option<PathBuf>,
    /// The production cutoff: the test fold evaluates here, the production model trains up to here.
    #[arg(long, default_value = "2011-06-01")]
    cutoff: NaiveDate,
    /// Months of the label window.
    #[arg(long, default_value_t = 6)]
    horizon_months: u32,
    /// The first training snapshot (default: the first of the month three months after the first
    /// purchase).
    #[arg(long)]
    earliest: Option<NaiveDate>,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(path) = &args.table {
        return train_on_table(path);
    }
    let histories = match (&args.input, &args.db) {
        (Some(input), _) => {
            let bar = progress::reading(input);
            let loaded = normalised::load(input, &bar)
                .with_context(|| format!("reading {}", input.display()))?;
            bar.finish_and_clear();
            Histories::from_lines(loaded.frame.lazy())?
        }
        (None, Some(db)) => Histories::from_states(crate::snapshot::stored_states(db)?),
        (None, None) => anyhow::bail!("give --input, --db or --table"),
    };
    let first = histories
        .first_purchase_ms()
        .context("no purchases to train on")?;
    let earliest = match args.earliest {
        Some(d) => d,
        None => {
            let day = DateTime::from_timestamp_millis(first)
                .context("first purchase time")?
                .date_naive();
            add_months(day.with_day(1).context("first of month")?, 3)
        }
    };
    let folds = folds(args.cutoff, args.horizon_months, earliest);
    let mut snapshots = Snapshots::new(&histories, args.horizon_months);
    let scores = evaluate(&mut snapshots, &folds, &candidates())?;
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
    if let Some(best) = champion(&scores) {
        println!(
            "champion (lowest validation MAE, ties by Gini): {}",
            best.model
        );
    }
    println!("({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn train_on_table(path: &std::path::Path) -> anyhow::Result<()> {
    let frame =
        normalised::read_table(path).with_context(|| format!("reading {}", path.display()))?;
    let nine: Vec<Spec> = candidates()
        .into_iter()
        .filter(|s| {
            !matches!(s, Spec::BgNbd { .. })
                && !s.features().iter().any(|c| {
                    !FeatureSet::Nine.columns().contains(c) && *c != featurestore::contract::NAIVE
                })
        })
        .collect();
    let mut scores = Vec::new();
    for (fold, train, test) in seed_folds(&frame)? {
        scores.extend(score_fold(&fold, &train, &test, &nine)?);
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
