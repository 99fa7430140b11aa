//! Every input format, both header spellings, both date forms, the sheet overlap, and malformed files.

mod common;

use std::path::Path;

use common::*;
use dataset::read::{RawData, read_csv, read_raw};
use dataset::{DatasetError, Line};
use indicatif::ProgressBar;

fn read(path: &Path) -> Result<RawData, DatasetError> {
    read_raw(path, &ProgressBar::hidden())
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn invoices(lines: &[Line]) -> Vec<&str> {
    lines.iter().map(|l| l.invoice.as_str()).collect()
}

#[test]
fn xlsx_with_both_sheets_takes_the_overlap_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = read(&write(dir.path(), "online_retail_II.xlsx", uci_workbook())).unwrap();
    assert_eq!(data.lines_read, (SHEET_1.len() + SHEET_2.len()) as u64);
    assert_eq!(data.sheets, 2);
    assert_eq!(data.lines.len(), KEPT);
    assert_eq!(
        invoices(&data.lines),
        [
            "489434", "489435", "C489449", "489436", "536365", "536366", "538171", "A563185",
            "581587"
        ]
    );
    let first = &data.lines[0];
    assert_eq!(first.customer_id, Some(13085));
    assert_eq!(first.quantity, 12);
    assert_eq!(first.price, 6.95);
    assert_eq!(first.invoice_date.to_string(), "2009-12-01 07:45:00");
    assert_eq!(first.stock_code, "85048");
    assert_eq!(data.lines[3].customer_id, None);
}

#[test]
fn csv_of_both_sheets_gives_the_same_canonical_lines_as_the_xlsx() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = read(&write(dir.path(), "a.xlsx", uci_workbook())).unwrap();
    for (old_header, us_dates) in [(false, false), (true, false), (false, true), (true, true)] {
        let text = csv_text(&both_sheets(), old_header, us_dates);
        let csv = read(&write(dir.path(), "a.csv", text)).unwrap();
        assert_eq!(csv.lines_read, (SHEET_1.len() + SHEET_2.len()) as u64);
        assert_eq!(
            csv.sheets, 2,
            "old header {old_header}, US dates {us_dates}"
        );
        assert_eq!(
            csv.lines, xlsx.lines,
            "old header {old_header}, US dates {us_dates}"
        );
    }
}

#[test]
fn a_single_sorted_csv_is_taken_as_it_is() {
    let text = csv_text(SHEET_2, false, false);
    let data = read_csv(text.as_bytes(), "sheet2.csv").unwrap();
    assert_eq!(data.sheets, 1);
    assert_eq!(data.lines.len(), SHEET_2.len());
}

#[test]
fn uci_zip_is_read_through() {
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_of("online_retail_II.xlsx", &uci_workbook());
    let data = read(&write(dir.path(), "online+retail+ii.zip", zip)).unwrap();
    assert_eq!(data.lines.len(), KEPT);
    let csv_zip = zip_of(
        "export.csv",
        csv_text(&both_sheets(), true, true).as_bytes(),
    );
    let data = read(&write(dir.path(), "export.zip", csv_zip)).unwrap();
    assert_eq!(data.lines.len(), KEPT);
}

#[test]
fn float_customer_ids_become_integers() {
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n";
    let data = read_csv(text.as_bytes(), "t.csv").unwrap();
    assert_eq!(data.lines[0].customer_id, Some(17850));
}

#[test]
fn malformed_csv_names_the_line_and_column() {
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
                536366,85123A,X,6,not a date,2.55,17850,United Kingdom\n";
    let error = read_csv(text.as_bytes(), "bad.csv")
        .unwrap_err()
        .to_string();
    assert!(error.contains("bad.csv, line 3"), "{error}");
    assert!(error.contains("InvoiceDate"), "{error}");
    assert!(error.contains("not a date"), "{error}");

    let cases = [
        (
            "536366,X,X,six,2010-12-01 08:26:00,2.55,17850,UK",
            "Quantity",
        ),
        ("536366,X,X,6,2010-12-01 08:26:00,NaN,17850,UK", "Price"),
        (
            "536366,X,X,6,2010-12-01 08:26:00,1.0,17850.5,UK",
            "Customer ID",
        ),
        ("536366,X,X,6,2010-12-01 08:26:00", "Price"),
    ];
    for (row, column) in cases {
        let text = format!(
            "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n{row}\n"
        );
        let error = read_csv(text.as_bytes(), "bad.csv")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && error.contains(column),
            "{row}: {error}"
        );
    }
}

#[test]
fn missing_column_is_named() {
    let text = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Country\n";
    let error = read_csv(text.as_bytes(), "t.csv").unwrap_err().to_string();
    assert!(error.contains("Customer ID"), "{error}");
}

#[test]
fn malformed_xlsx_names_the_sheet_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Year 2010-2011").unwrap();
    for (c, h) in dataset::line::UCI_HEADER.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "536365").unwrap();
    sheet.write_string(1, 3, "lots").unwrap();
    sheet.write_string(1, 4, "2010-12-01 08:26:00").unwrap();
    sheet.write_number(1, 5, 2.55).unwrap();
    let path = write(dir.path(), "bad.xlsx", workbook.save_to_buffer().unwrap());
    let error = read(&path).unwrap_err().to_string();
    assert!(error.contains("sheet \"Year 2010-2011\", row 2"), "{error}");
    assert!(error.contains("Quantity"), "{error}");
}

#[test]
fn unsupported_and_corrupt_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read(&write(dir.path(), "notes.txt", "hello")).is_err());
    assert!(read(&write(dir.path(), "broken.xlsx", "not a workbook")).is_err());
    assert!(read(&write(dir.path(), "broken.zip", "not a zip")).is_err());
    assert!(read(&write(dir.path(), "empty.zip", zip_of("readme.txt", b"hi"))).is_err());
    assert!(read(&dir.path().join("missing.csv")).is_err());
    let error = read(&write(
        dir.path(),
        "quote.csv",
        "Invoice,StockCode\n\"unterminated",
    ))
    .unwrap_err();
    assert!(!error.to_string().is_empty());
}

/// A normalised Parquet file whose `customer_id` is floating point (pandas writes a nullable
/// integer column so) reads as integers; a customer ID that is not a whole number is refused with
/// the value and its row.
#[test]
fn a_normalised_file_with_float_customer_ids_reads_as_integers_or_says_which_is_not() {
    use dataset::normalised::{read_parquet, to_frame, write_parquet};
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let data = read(&write(dir.path(), "online_retail_II.xlsx", uci_workbook())).unwrap();
    let frame = to_frame(&data.lines).unwrap();
    let as_float = |ids: Column| {
        let mut f = frame.clone();
        f.with_column(ids).unwrap();
        f
    };
    let floats = frame
        .column("customer_id")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap();
    let path = dir.path().join("pandas.parquet");
    write_parquet(&mut as_float(floats.clone()), &path).unwrap();
    let read_back = read_parquet(&path).unwrap();
    assert_eq!(
        read_back.column("customer_id").unwrap().dtype(),
        &DataType::Int64
    );
    assert!(read_back.equals_missing(&frame), "{read_back}");

    let floats_ca = floats.f64().unwrap();
    let mut values: Vec<Option<f64>> = (0..floats_ca.len()).map(|i| floats_ca.get(i)).collect();
    values[1] = Some(12346.5);
    let path = dir.path().join("fraction.parquet");
    write_parquet(
        &mut as_float(Column::new("customer_id".into(), values)),
        &path,
    )
    .unwrap();
    let error = read_parquet(&path).unwrap_err().to_string();
    assert!(error.contains("12346.5 (row 1)"), "{error}");
}

/// `normalised::load` of a CSV and the row reader's frame of it.
fn load_both(path: &Path) -> (dataset::normalised::Loaded, dataset::normalised::Loaded) {
    use dataset::normalised::{load, load_rows};
    let bar = ProgressBar::hidden();
    (load(path, &bar).unwrap(), load_rows(path, &bar).unwrap())
}

#[test]
fn a_well_formed_csv_is_read_by_polars_into_the_row_readers_frame() {
    use dataset::normalised::Reader;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (old_header, us_dates) in [(false, false), (true, false), (false, true), (true, true)] {
        let name = format!("both-{old_header}-{us_dates}.csv");
        let text = csv_text(&both_sheets(), old_header, us_dates);
        files.push(write(dir.path(), &name, text));
    }
    // A byte-order mark, reordered columns, an extra column, quoted commas, no description.
    files.push(write(
        dir.path(),
        "reordered.csv",
        "\u{feff}Country,Customer ID,Price,InvoiceDate,Quantity,Notes,Description,StockCode,Invoice\n\
         United Kingdom,17850,2.55,2010-12-01 08:26:00,6,x,\"WHITE HANGING HEART, T-LIGHT\",85123A,536365\n\
         France,,0.85,2010-12-01 08:28:00,-1,,,22633,C536379\n\
         EIRE,17851,1e1,2010-12-02 09:00:00,3,y,,POST,536380\n",
    ));
    // One sheet, dates that decrease twice (taken as it is).
    files.push(write(
        dir.path(),
        "unsorted.csv",
        csv_text(
            &[SHEET_2[1], SHEET_2[0], SHEET_2[2], SHEET_1[0]],
            false,
            false,
        ),
    ));
    for path in &files {
        let (columnar, rows) = load_both(path);
        assert_eq!(columnar.reader, Reader::Columnar, "{}", path.display());
        assert_eq!(rows.reader, Reader::Rows);
        assert!(
            columnar.frame.equals_missing(&rows.frame),
            "{}:\n{}\n{}",
            path.display(),
            columnar.frame,
            rows.frame
        );
        assert_eq!(columnar.lines_read, rows.lines_read);
    }
    let (both, _) = load_both(&files[0]);
    assert_eq!(both.frame.height(), KEPT);
    assert_eq!(
        both.lines_read,
        Some((SHEET_1.len() + SHEET_2.len()) as u64)
    );
}

#[test]
fn a_csv_polars_would_read_otherwise_is_read_row_by_row_and_its_errors_named() {
    use dataset::normalised::{Reader, load};
    let dir = tempfile::tempdir().unwrap();
    let header = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n";
    let good = "536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n";
    // Read the same either way, but not by polars: spaces around numbers, mixed date layouts or
    // dates in the ISO layout that only the row reader's fallback reads, a
    // float quantity, an ID beyond 2^53, an empty invoice, a quoted empty description.
    let odd = [
        "536366,X,X, 6 ,2010-12-01 08:27:00,2.55,17850,UK",
        "536366,X,X,6,12/1/2010 8:27,2.55,17850,UK",
        // ISO dates its own parser declines and the layouts read: padded, a leap second.
        "536366,X,X,6, 2010-12-01 08:27:00,2.55,17850,UK",
        "536366,X,X,6,2010-12-01 23:59:60,2.55,17850,UK",
        "536366,X,X,6.0,2010-12-01 08:27:00,2.55,17850,UK",
        "536366,X,X,6,2010-12-01 08:27:00,2.55,9007199254740993,UK",
        ",X,X,6,2010-12-01 08:27:00,2.55,17850,UK",
        "536366,X,\"\",6,2010-12-01 08:27:00,2.55,17850,UK",
    ];
    for (i, row) in odd.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("odd{i}.csv"),
            format!("{header}{good}{row}\n"),
        );
        let (loaded, rows) = load_both(&path);
        assert_eq!(loaded.reader, Reader::Rows, "{row}");
        assert!(loaded.frame.equals_missing(&rows.frame), "{row}");
    }
    // Errors: the row reader's, naming the line and the column.
    let bad = [
        (
            "536366,X,X,six,2010-12-01 08:26:00,2.55,17850,UK",
            "Quantity",
        ),
        ("536366,X,X,6,2010-12-01 08:26:00,NaN,17850,UK", "Price"),
        ("536366,X,X,6,2010-12-01 08:26:00,inf,17850,UK", "Price"),
        (
            "536366,X,X,6,2010-12-01 08:26:00,1.0,17850.5,UK",
            "Customer ID",
        ),
        ("536366,X,X,6,2010-12-01 08:26:00,1.0,0,UK", "Customer ID"),
        ("536366,X,X,6,yesterday,1.0,17850,UK", "InvoiceDate"),
        ("536366,X,X,6,2010-12-01 08:26:00,1.0,17850", "Country"),
        ("536366,X,X,6,2010-12-01 08:26:00", "Price"),
    ];
    for (i, (row, column)) in bad.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("bad{i}.csv"),
            format!("{header}{good}{row}\n"),
        );
        let error = load(&path, &ProgressBar::hidden()).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains(column),
            "{row}: {error}"
        );
    }
}
