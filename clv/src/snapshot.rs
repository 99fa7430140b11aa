//! `clv snapshot`: the offline reference snapshot.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use dataset::normalised;
use featurestore::SnapshotSpec;
use featurestore::offline::snapshot;
use polars::prelude::IntoLazy;

use crate::progress;

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Features use purchases strictly before this day (midnight UTC); the label starts on it.
    #[arg(long)]
    cutoff: NaiveDate,
    /// Months after the cutoff that the label sums.
    #[arg(long, default_value_t = 6)]
    horizon_months: u32,
    /// The lines: a normalised .parquet (from `clv data import`), or a raw .xlsx, .csv or .zip.
    #[arg(long)]
    input: PathBuf,
    /// The snapshot to write: .parquet or .csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bar = progress::reading(&args.input);
    let loaded = normalised::load(&args.input, &bar)
        .with_context(|| format!("reading {}", args.input.display()))?;
    bar.finish_and_clear();
    let spec = SnapshotSpec {
        cutoff: args.cutoff,
        horizon_months: args.horizon_months,
    };
    let mut frame = snapshot(loaded.frame.lazy(), &spec)?;
    let ext = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("parquet") => normalised::write_parquet(&mut frame, &args.out)?,
        Some("csv") => normalised::write_csv(&mut frame, &args.out)?,
        _ => anyhow::bail!("--out must end in .parquet or .csv: {}", args.out.display()),
    }
    // Money columns are whole thousandths of a pound: sum them exactly.
    let sum = |name: &str| -> anyhow::Result<String> {
        let milli: i64 = frame
            .column(name)?
            .f64()?
            .into_no_null_iter()
            .map(|x| (x * 1000.0).round() as i64)
            .sum();
        Ok(format!("{}.{:03}", milli / 1000, (milli % 1000).abs()))
    };
    println!(
        "snapshot at {} (+{} months): {} customers, total_revenue {}, clv_6m {} -> {} ({:.2} s)",
        spec.cutoff,
        spec.horizon_months,
        frame.height(),
        sum("total_revenue")?,
        sum("clv_6m")?,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
