//! `clv score`: every customer scored by a registry version, written to a CSV or Parquet file for a
//! CRM or a spreadsheet. The answers are the scorer's own (the same population code scores them, and
//! each row is read back from the very answer `GET /customers/{id}/clv` would serve).

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use contract::Feature;
use dataset::normalised;
use polars::prelude::{Column, DataFrame, IntoLazy};
use scorer::population::{Population, as_of_watermark};
use scorer::response::{ClvResponse, Freshness};

use crate::progress;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The feature store that ingest writes (read as a RocksDB secondary instance: ingest may run).
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    db: Option<PathBuf>,
    /// Or the lines: a normalised .parquet, or a raw .xlsx, .csv or .zip.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The model registry.
    #[arg(long, env = "CLV_MODELS_DIR", default_value = "data/models")]
    models_dir: PathBuf,
    /// The version to score with (default: production).
    #[arg(long)]
    version: Option<String>,
    /// The features are taken at midnight of this day. Default: as the scorer does, the day after
    /// the store's event-time watermark (for `--input`, after the last purchase).
    #[arg(long)]
    as_of: Option<NaiveDate>,
    /// The file to write: `.csv` or `.parquet`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let extension = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    anyhow::ensure!(
        matches!(extension.as_deref(), Some("csv" | "parquet")),
        "--out {}: a .csv or .parquet file",
        args.out.display()
    );
    let registry = models::registry::Registry::open(&args.models_dir)?;
    let version = match &args.version {
        Some(version) => version.clone(),
        None => registry.production()?.with_context(|| {
            format!(
                "no production version in {} (train one with `clv train`)",
                args.models_dir.display()
            )
        })?,
    };
    let production = scorer::follow::load(&args.models_dir, &version)
        .with_context(|| format!("loading {version}"))?;
    let bar = progress::items("scoring customers");
    let population = match (&args.db, &args.input) {
        (Some(db), _) => {
            let (_secondary, store) = crate::snapshot::open_secondary(db)?;
            let watermark_ms = store.watermark_ms()?;
            let as_of = args
                .as_of
                .or_else(|| watermark_ms.and_then(as_of_watermark))
                .context("the store holds no purchase yet: nothing to score (or give --as-of)")?;
            bar.set_length(store.customers().unwrap_or(0));
            let freshness = Freshness {
                watermark: watermark_ms.and_then(chrono::DateTime::from_timestamp_millis),
                refreshed_at: chrono::Utc::now(),
                store_sequence: store.sequence_number(),
            };
            let mut scoring = Population::scoring(as_of, &production, freshness);
            store.for_each_state(|id, state| {
                bar.inc(1);
                scoring.push(id, state)
            })?;
            scoring.finish()?
        }
        (None, Some(input)) => {
            let reading = progress::reading(input);
            let loaded = normalised::load(input, &reading)
                .with_context(|| format!("reading {}", input.display()))?;
            reading.finish_and_clear();
            let histories = trainer::training::Histories::from_lines(loaded.frame.lazy())?;
            let as_of = args
                .as_of
                .or_else(|| histories.last_purchase_ms().and_then(as_of_watermark))
                .context("the input has no purchase: nothing to score")?;
            bar.set_length(histories.customers().len() as u64);
            let freshness = Freshness {
                watermark: histories
                    .last_purchase_ms()
                    .and_then(chrono::DateTime::from_timestamp_millis),
                refreshed_at: chrono::Utc::now(),
                store_sequence: 0,
            };
            let mut scoring = Population::scoring(as_of, &production, freshness);
            for (id, state) in histories.customers() {
                bar.inc(1);
                scoring.push(*id, state.clone())?;
            }
            scoring.finish()?
        }
        (None, None) => anyhow::bail!("give --db or --input"),
    };
    bar.finish_and_clear();
    let answers: Vec<ClvResponse> = population
        .top(population.len())
        .iter()
        .filter_map(|r| population.get(r.customer_id))
        .map(|scored| serde_json::from_slice(&scored.clv_body))
        .collect::<Result<_, _>>()
        .context("reading back an answer")?;
    let mut frame = frame(&answers)?;
    match extension.as_deref() {
        Some("parquet") => normalised::write_parquet(&mut frame, &args.out)?,
        _ => normalised::write_csv(&mut frame, &args.out)?,
    }
    println!(
        "wrote {}: {} customers scored by {version} ({}) as of {}",
        args.out.display(),
        answers.len(),
        production.name,
        population.as_of
    );
    Ok(())
}

/// The name a segment part is serialized with (`high`, `fading`, ...).
fn word(value: impl serde::Serialize) -> Option<String> {
    serde_json::to_value(value)
        .ok()?
        .as_str()
        .map(str::to_string)
}

/// One row per answer, highest CLV first: the answer's fields, then every feature by name.
fn frame(answers: &[ClvResponse]) -> anyhow::Result<DataFrame> {
    let mut columns = vec![
        Column::new(
            "rank".into(),
            (1..=answers.len() as u64).collect::<Vec<u64>>(),
        ),
        Column::new(
            "customer_id".into(),
            answers.iter().map(|a| a.customer_id).collect::<Vec<u64>>(),
        ),
        Column::new(
            "clv_6m".into(),
            answers.iter().map(|a| a.clv_6m).collect::<Vec<f64>>(),
        ),
        Column::new(
            "clv_6m_low".into(),
            answers.iter().map(|a| a.clv_6m_low).collect::<Vec<_>>(),
        ),
        Column::new(
            "clv_6m_high".into(),
            answers.iter().map(|a| a.clv_6m_high).collect::<Vec<_>>(),
        ),
        Column::new(
            "p_alive".into(),
            answers.iter().map(|a| a.p_alive).collect::<Vec<f64>>(),
        ),
        Column::new(
            "expected_purchases".into(),
            answers
                .iter()
                .map(|a| a.expected_purchases)
                .collect::<Vec<f64>>(),
        ),
        Column::new(
            "value_tier".into(),
            answers
                .iter()
                .map(|a| a.segment.and_then(|s| word(s.value)))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "activity".into(),
            answers
                .iter()
                .map(|a| a.segment.and_then(|s| word(s.activity)))
                .collect::<Vec<_>>(),
        ),
    ];
    for feature in Feature::ALL {
        let values = answers.iter().map(|a| a.features.get(*feature));
        columns.push(match feature.kind() {
            // Days and counts as whole numbers.
            contract::FeatureKind::Integer => Column::new(
                feature.name().into(),
                values
                    .map(|v| v.map(|v| v as i64))
                    .collect::<Vec<Option<i64>>>(),
            ),
            _ => Column::new(feature.name().into(), values.collect::<Vec<Option<f64>>>()),
        });
    }
    columns.push(Column::new(
        "model".into(),
        answers
            .iter()
            .map(|a| a.model.name.clone())
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "version".into(),
        answers
            .iter()
            .map(|a| a.model.version.clone())
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "as_of".into(),
        answers
            .iter()
            .map(|a| a.as_of.to_string())
            .collect::<Vec<_>>(),
    ));
    DataFrame::new(answers.len(), columns).context("the scores table")
}
