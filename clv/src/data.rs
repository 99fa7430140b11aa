//! `clv data import | download | generate`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use contract::LineClass;
use dataset::download::{DownloadRequest, UCI_URL, ZIP_FILE_NAME};
use dataset::normalised;
use dataset::read::read_raw;
use dataset::synthetic::{SyntheticSpec, generate_csv, generate_parquet};
use offline::lines::{LineSummary, summarise};
use polars::prelude::IntoLazy;

use crate::progress;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read Online Retail II (.xlsx with both sheets, a CSV export, or UCI's .zip), take the sheet overlap
    /// once, write one normalised Parquet file and print a summary.
    Import(ImportArgs),
    /// Download UCI's zip into data/raw/ (resumable) and check it holds the workbook with both sheets.
    Download(DownloadArgs),
    /// Write a synthetic dataset in the same CSV layout, deterministic from --seed, at any scale.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to read: .xlsx, .csv or .zip.
    path: PathBuf,
    /// Where to write the normalised Parquet file.
    #[arg(long, default_value = "data/online_retail_II.parquet")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Directory to save the zip in.
    #[arg(long, default_value = "data/raw")]
    dir: PathBuf,
    /// Where to download from.
    #[arg(long, default_value = UCI_URL)]
    url: String,
    /// Connections to try (each resumes where the previous one stopped).
    #[arg(long, default_value_t = 5)]
    attempts: u32,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed: the same arguments give the same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Customers with an ID (the real data has 5,942); overrides --scale.
    #[arg(long)]
    customers: Option<u32>,
    /// Multiple of the real data's size (customers = 5,942 × scale).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// First trading day.
    #[arg(long, default_value = "2009-12-01")]
    start: NaiveDate,
    /// Last trading day (inclusive).
    #[arg(long, default_value = "2011-12-09")]
    end: NaiveDate,
    /// The file to write: `.csv` (UCI's layout) or `.parquet` (the normalised layout `clv data import`
    /// writes, without the CSV in between: the way to generate large scales).
    #[arg(long, default_value = "data/synthetic/online_retail_synthetic.csv")]
    out: PathBuf,
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Import(args) => import(args),
        DataCommand::Download(args) => download(args),
        DataCommand::Generate(args) => generate(args),
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let bar = progress::reading(&args.path);
    let raw =
        read_raw(&args.path, &bar).with_context(|| format!("importing {}", args.path.display()))?;
    bar.finish_and_clear();
    let mut frame = normalised::to_frame(&raw.lines)?;
    normalised::write_parquet(&mut frame, &args.out)?;
    let summary = summarise(frame.lazy())?;
    println!("imported {} -> {}", args.path.display(), args.out.display());
    print_summary(raw.lines_read, raw.sheets, &summary);
    Ok(())
}

fn print_summary(lines_read: u64, sheets: usize, s: &LineSummary) {
    let row = |label: &str, value: String| println!("  {label:<34} {value:>12}");
    let n = |x: u64| group_thousands(x);
    row("lines read", n(lines_read));
    row(&format!("lines kept (sheets: {sheets})"), n(s.lines));
    row("purchase lines", n(s.count(LineClass::Purchase)));
    row("return lines", n(s.count(LineClass::Return)));
    for class in LineClass::ALL.iter().filter(|c| c.is_ignored()) {
        row(&format!("ignored: {}", class.name()), n(s.count(*class)));
    }
    row("customers with any line", n(s.customers));
    row("customers with a purchase", n(s.customers_with_purchase));
    row("distinct invoices", n(s.invoices));
    row("purchases (customer, invoice)", n(s.purchases));
    if let Some((first, last)) = s.date_range {
        row("first line", first.to_string());
        row("last line", last.to_string());
    }
}

/// `1044848` -> `1,044,848`.
fn group_thousands(x: u64) -> String {
    let digits = x.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let request = DownloadRequest {
        url: args.url,
        attempts: args.attempts,
        ..DownloadRequest::uci(&args.dir)
    };
    let bar = progress::bytes(ZIP_FILE_NAME);
    let report = dataset::download::download(&request, &bar)?;
    bar.finish_and_clear();
    if report.connections == 0 {
        println!("{} is already here and valid", report.path.display());
    } else {
        println!(
            "downloaded {} ({} bytes, {} resumed, {} connection(s))",
            report.path.display(),
            report.bytes,
            report.resumed_bytes,
            report.connections
        );
    }
    println!(
        "  holds {} with sheets {:?}",
        report.contents.workbook, report.contents.sheets
    );
    println!("next: clv data import {}", report.path.display());
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.scale.is_finite() && args.scale > 0.0,
        "--scale must be a positive number"
    );
    let customers = args.customers.unwrap_or_else(|| {
        (f64::from(SyntheticSpec::default().customers) * args.scale).round() as u32
    });
    let spec = SyntheticSpec {
        seed: args.seed,
        customers,
        start: args.start,
        end: args.end,
    };
    let bar = progress::items("generating");
    let parquet = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let report = match parquet {
        true => generate_parquet(&spec, &args.out, &bar)?,
        false => generate_csv(&spec, &args.out, &bar)?,
    };
    bar.finish_and_clear();
    println!(
        "wrote {}: {} lines, {} invoices, {} customers (seed {})",
        args.out.display(),
        group_thousands(report.lines),
        group_thousands(report.invoices),
        group_thousands(report.customers),
        spec.seed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::group_thousands(0), "0");
        assert_eq!(super::group_thousands(999), "999");
        assert_eq!(super::group_thousands(1_044_848), "1,044,848");
    }
}
