//! Streaming a file gives exactly the numbered lines of reading it whole, in every format, with the
//! sheet overlap taken once; a bad row is an error where it is read.

mod common;

use std::path::Path;

use common::*;
use dataset::Line;
use dataset::normalised::{numbered_lines as whole, to_frame, write_parquet};
use dataset::stream::numbered_lines;
use indicatif::ProgressBar;

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn streamed(path: &Path) -> Vec<(u64, Line)> {
    numbered_lines(path, &ProgressBar::hidden())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The lines read as replay reads them: each over the one before, in one `Line`.
fn streamed_into(path: &Path) -> Vec<(u64, Line)> {
    let mut lines = numbered_lines(path, &ProgressBar::hidden()).unwrap();
    let mut line = Line::default();
    let mut out = Vec::new();
    while let Some(number) = lines.next_into(&mut line) {
        out.push((number.unwrap(), line.clone()));
    }
    out
}

fn same_as_whole(path: &Path) -> usize {
    let expected = whole(path, &ProgressBar::hidden()).unwrap();
    assert_eq!(streamed(path), expected, "{}", path.display());
    assert_eq!(streamed_into(path), expected, "{}", path.display());
    expected.len()
}

/// A line read over a longer one, with fields the one before had and it has not (a description,
/// a customer), keeps nothing of it: in CSV and in Parquet.
#[test]
fn a_line_read_over_the_last_keeps_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                536365000,85123AXYZ,A LONG DESCRIPTION OF A THING,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
                5,8,,1,2010-12-01 08:27:00,1,,EIRE\n\
                C7,9,B,-2,2010-12-01 08:28:00,3.5,12,France\n";
    let csv = write(dir.path(), "reuse.csv", text);
    let expected = whole(&csv, &ProgressBar::hidden()).unwrap();
    assert_eq!(expected[1].1.description, None);
    assert_eq!(expected[1].1.customer_id, None);
    assert_eq!(expected[1].1.invoice, "5");
    assert_eq!(streamed_into(&csv), expected);
    let lines: Vec<Line> = expected.iter().map(|(_, l)| l.clone()).collect();
    let mut frame = to_frame(&lines).unwrap();
    let parquet = dir.path().join("reuse.parquet");
    write_parquet(&mut frame, &parquet).unwrap();
    assert_eq!(streamed_into(&parquet), expected);
}

#[test]
fn every_format_streams_the_lines_it_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let both = csv_text(&both_sheets(), false, false);
    assert_eq!(same_as_whole(&write(dir.path(), "both.csv", &both)), KEPT);
    let us = csv_text(&both_sheets(), true, true);
    assert_eq!(same_as_whole(&write(dir.path(), "us.csv", &us)), KEPT);
    let one = csv_text(SHEET_2, false, false);
    assert_eq!(
        same_as_whole(&write(dir.path(), "one.csv", &one)),
        SHEET_2.len()
    );
    assert_eq!(
        same_as_whole(&write(dir.path(), "wb.xlsx", uci_workbook())),
        KEPT
    );
    let zip = zip_of("export.csv", both.as_bytes());
    assert_eq!(same_as_whole(&write(dir.path(), "csv.zip", zip)), KEPT);
    let zip = zip_of("online_retail_II.xlsx", &uci_workbook());
    assert_eq!(same_as_whole(&write(dir.path(), "xlsx.zip", zip)), KEPT);
}

/// More rows than one Parquet chunk, so that chunks are joined.
#[test]
fn a_parquet_file_streams_in_chunks_with_its_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let rows = both_sheets();
    let csv = csv_text(&rows, false, false);
    let lines = dataset::read::read_csv(csv.as_bytes(), "x.csv")
        .unwrap()
        .lines;
    let many: Vec<Line> = lines
        .iter()
        .cycle()
        .take(dataset::stream::PARQUET_CHUNK * 2 + 7)
        .cloned()
        .collect();
    let mut frame = to_frame(&many).unwrap();
    let path = dir.path().join("lines.parquet");
    write_parquet(&mut frame, &path).unwrap();
    let streamed = streamed(&path);
    assert_eq!(streamed_into(&path), streamed);
    assert_eq!(streamed.len(), many.len());
    assert!(streamed.iter().zip(1..).all(|((n, _), i)| *n == i));
    assert!(streamed.iter().map(|(_, l)| l).eq(many.iter()));
    assert_eq!(
        numbered_lines(&path, &ProgressBar::hidden()).unwrap().len,
        Some(many.len() as u64)
    );
}

#[test]
fn a_bad_row_is_an_error_when_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
                536366,85123A,X,six,2010-12-01 08:28:00,2.55,17850,United Kingdom\n";
    let path = write(dir.path(), "bad.csv", text);
    let mut lines = numbered_lines(&path, &ProgressBar::hidden()).unwrap();
    assert!(lines.next().unwrap().is_ok());
    let error = lines.next().unwrap().unwrap_err().to_string();
    assert!(error.contains("line 3") && error.contains("six"), "{error}");
    // A bad date is found by the first pass, before anything is produced.
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                536365,85123A,X,6,yesterday,2.55,17850,United Kingdom\n";
    let path = write(dir.path(), "bad_date.csv", text);
    assert!(numbered_lines(&path, &ProgressBar::hidden()).is_err());
}

/// `clv data generate --out x.parquet` writes what importing the generated CSV would.
#[test]
fn generated_parquet_equals_the_imported_generated_csv() {
    use dataset::synthetic::{SyntheticSpec, generate_csv, generate_parquet};
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        customers: 400,
        ..SyntheticSpec::default()
    };
    let (csv, parquet) = (dir.path().join("g.csv"), dir.path().join("g.parquet"));
    let a = generate_csv(&spec, &csv, &ProgressBar::hidden()).unwrap();
    let b = generate_parquet(&spec, &parquet, &ProgressBar::hidden()).unwrap();
    assert_eq!(a, b);
    let imported = whole(&csv, &ProgressBar::hidden()).unwrap();
    assert!(imported.len() > 10_000, "{}", imported.len());
    assert_eq!(streamed(&parquet), imported);
    assert_eq!(
        dataset::normalised::read_parquet(&parquet)
            .unwrap()
            .height(),
        imported.len()
    );
}
