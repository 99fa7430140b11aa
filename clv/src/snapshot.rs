//! `clv snapshot`: the offline reference snapshot.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use dataset::normalised;
use featurestore::store::RocksStore;
use offline::SnapshotSpec;
use offline::lines::snapshot;
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
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    input: Option<PathBuf>,
    /// Or the feature store that ingest writes (read from a consistent snapshot, also while it runs).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The snapshot to write: .parquet or .csv.
    #[arg(long)]
    out: PathBuf,
    /// Check the snapshot against another one (.parquet or .csv, e.g. the offline snapshot of the same
    /// lines): fail, listing the first differences, unless every customer's row agrees under the
    /// contract's equality rule (integers equal, money to the thousandth, floats to 1e-6).
    #[arg(long, value_name = "FILE")]
    compare_with: Option<PathBuf>,
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let spec = SnapshotSpec {
        cutoff: args.cutoff,
        horizon_months: args.horizon_months,
    };
    anyhow::ensure!(
        spec.horizon_months > 0,
        "--horizon-months must be at least 1"
    );
    let mut frame = match (&args.input, &args.db) {
        (Some(input), _) => {
            let bar = progress::reading(input);
            let loaded = normalised::load(input, &bar)
                .with_context(|| format!("reading {}", input.display()))?;
            bar.finish_and_clear();
            snapshot(loaded.frame.lazy(), &spec)?
        }
        (None, Some(db)) => from_store(db, &spec)?,
        (None, None) => anyhow::bail!("give --input or --db"),
    };
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
        sum(contract::Feature::TotalRevenue.name())?,
        sum(contract::LABEL)?,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(expected) = &args.compare_with {
        let expected = normalised::read_table(expected)
            .with_context(|| format!("reading {}", expected.display()))?;
        let diff = offline::states::differences(&expected, &frame, 20);
        anyhow::ensure!(
            diff.is_empty(),
            "the snapshot differs from {}:\n  {}",
            args.compare_with
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            diff.join("\n  ")
        );
        println!(
            "equal to {} for all {} customers",
            args.compare_with
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            frame.height()
        );
    }
    Ok(())
}

/// The snapshot from the feature store (see [`stored_states`]).
fn from_store(
    db: &std::path::Path,
    spec: &SnapshotSpec,
) -> anyhow::Result<polars::prelude::DataFrame> {
    let states = stored_states(db)?;
    Ok(offline::states::from_states(
        states.iter().map(|(id, state)| (*id, state)),
        spec,
    )?)
}

/// The feature store at `db` as a RocksDB secondary instance (so that a running ingest keeps its
/// lock), with the temporary folder it keeps its files in (removed when dropped).
pub(crate) fn open_secondary(
    db: &std::path::Path,
) -> anyhow::Result<(tempfile::TempDir, RocksStore)> {
    let secondary = tempfile::Builder::new()
        .prefix("clv-secondary")
        .tempdir()
        .context("a folder for the secondary instance")?;
    let store = RocksStore::open_secondary(db, secondary.path())
        .with_context(|| format!("opening the feature store {}", db.display()))?;
    Ok((secondary, store))
}

/// Every customer's state in the feature store, read through a secondary instance.
pub(crate) fn stored_states(
    db: &std::path::Path,
) -> anyhow::Result<Vec<(u64, contract::CustomerState)>> {
    let (_secondary, store) = open_secondary(db)?;
    Ok(store.all_states()?)
}
