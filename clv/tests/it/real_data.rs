//! The real Online Retail II data (`../shared/data`): the import summary against facts computed here
//! independently, and the snapshot at 2011-06-01 against the published totals.

use std::collections::HashSet;

use crate::common::*;
use contract::LineClass;
use dataset::normalised;
use dataset::read::read_raw;
use indicatif::ProgressBar;
use offline::lines::summarise;
use polars::prelude::*;

/// Facts about the file computed with nothing but the csv crate and string rules.
#[derive(Debug, Default)]
struct Facts {
    lines_read: u64,
    kept: u64,
    purchase_lines: u64,
    return_lines: u64,
    no_customer: u64,
    non_sale_invoice: u64,
    non_positive_quantity: u64,
    non_positive_price: u64,
    customers: u64,
    customers_with_purchase: u64,
    invoices: u64,
    purchases: u64,
}

fn independent_facts(path: &std::path::Path) -> Facts {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    // ISO dates compare as text; the second sheet starts where they go back in time.
    let second = (1..rows.len())
        .find(|&i| rows[i][4] < rows[i - 1][4])
        .unwrap();
    let kept = rows[..second]
        .iter()
        .filter(|r| r[4] < rows[second][4])
        .chain(&rows[second..]);
    let mut facts = Facts {
        lines_read: rows.len() as u64,
        ..Facts::default()
    };
    let (mut customers, mut buyers, mut invoices, mut purchases) = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    for r in kept {
        facts.kept += 1;
        let (invoice, quantity, price, customer) = (&r[0], &r[3], &r[5], &r[6]);
        invoices.insert(invoice.to_string());
        if customer.is_empty() {
            facts.no_customer += 1;
            continue;
        }
        customers.insert(customer.to_string());
        if invoice.starts_with('C') {
            facts.return_lines += 1;
        } else if !invoice.chars().all(|c| c.is_ascii_digit()) {
            facts.non_sale_invoice += 1;
        } else if quantity.parse::<i64>().unwrap() <= 0 {
            facts.non_positive_quantity += 1;
        } else if price.parse::<f64>().unwrap() <= 0.0 {
            facts.non_positive_price += 1;
        } else {
            facts.purchase_lines += 1;
            buyers.insert(customer.to_string());
            purchases.insert((customer.to_string(), invoice.to_string()));
        }
    }
    facts.customers = customers.len() as u64;
    facts.customers_with_purchase = buyers.len() as u64;
    facts.invoices = invoices.len() as u64;
    facts.purchases = purchases.len() as u64;
    facts
}

#[test]
fn import_summary_matches_independent_facts() {
    let csv = real_csv();
    let facts = independent_facts(&csv);
    // The published facts (shared/README.md) hold for this file.
    assert_eq!(facts.lines_read, 1_067_371);
    assert_eq!(facts.kept, 1_044_848);
    assert_eq!(facts.customers, 5_942);
    assert_eq!(facts.customers_with_purchase, 5_878);
    assert_eq!(facts.purchases, 36_969);

    let raw = read_raw(&csv, &ProgressBar::hidden()).unwrap();
    assert_eq!(raw.lines_read, facts.lines_read);
    assert_eq!(raw.sheets, 2);
    let frame = normalised::to_frame(&raw.lines).unwrap();
    let summary = summarise(frame.lazy()).unwrap();
    assert_eq!(summary.lines, facts.kept);
    assert_eq!(summary.count(LineClass::Purchase), facts.purchase_lines);
    assert_eq!(summary.count(LineClass::Return), facts.return_lines);
    assert_eq!(summary.count(LineClass::NoCustomer), facts.no_customer);
    assert_eq!(
        summary.count(LineClass::NonSaleInvoice),
        facts.non_sale_invoice
    );
    assert_eq!(
        summary.count(LineClass::NonPositiveQuantity),
        facts.non_positive_quantity
    );
    assert_eq!(
        summary.count(LineClass::NonPositivePrice),
        facts.non_positive_price
    );
    assert_eq!(summary.customers, facts.customers);
    assert_eq!(
        summary.customers_with_purchase,
        facts.customers_with_purchase
    );
    assert_eq!(summary.invoices, facts.invoices);
    assert_eq!(summary.purchases, facts.purchases);
    let (first, last) = summary.date_range.unwrap();
    assert_eq!(first.to_string(), "2009-12-01 07:45:00");
    assert_eq!(last.to_string(), "2011-12-09 12:50:00");
}

#[test]
fn import_then_snapshot_gives_the_published_facts() {
    let csv = real_csv();
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("lines.parquet");
    let out = clv(&[
        "data",
        "import",
        csv.to_str().unwrap(),
        "--out",
        parquet.to_str().unwrap(),
    ]);
    assert!(
        out.contains("1,067,371") && out.contains("1,044,848") && out.contains("36,969"),
        "{out}"
    );

    let snapshot = dir.path().join("snapshot.parquet");
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--horizon-months",
        "6",
        "--input",
        parquet.to_str().unwrap(),
        "--out",
        snapshot.to_str().unwrap(),
    ]);
    // The facts published with the data (../shared/README.md, measured there independently of
    // clv): at 2011-06-01, 4,933 customers have features, 48.2% of them buy nothing in the next 6
    // months, and their mean clv_6m is 877.
    let frame = read_parquet(&snapshot);
    assert_eq!(frame.height(), 4_933);
    let mean = milli_sum(&frame, "clv_6m") as f64 / 1000.0 / 4_933.0;
    assert_eq!(mean.round(), 877.0, "mean clv_6m {mean}");
    let zero = frame
        .column("clv_6m")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .filter(|x| *x == Some(0.0))
        .count();
    assert_eq!((zero as f64 / 4_933.0 * 1000.0).round() / 10.0, 48.2);

    // Straight from the CSV, to CSV: the same rows as through the import, to the milli-pound.
    let from_csv = dir.path().join("snapshot.csv");
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--input",
        csv.to_str().unwrap(),
        "--out",
        from_csv.to_str().unwrap(),
    ]);
    let again = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(from_csv))
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(again.height(), frame.height());
    for column in ["clv_6m", "total_revenue", "avg_order_value"] {
        assert_eq!(
            milli_sum(&again, column),
            milli_sum(&frame, column),
            "{column}"
        );
    }
}

/// UCI distributes the data as a zipped workbook with two sheets. Rebuild that from the CSV (cells typed
/// as in UCI's file) and check that the zip imports to exactly the lines the CSV gives.
#[test]
fn the_real_data_as_uci_zip_imports_like_the_csv() {
    let csv = real_csv();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(&csv)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    let second = (1..rows.len())
        .find(|&i| rows[i][4] < rows[i - 1][4])
        .unwrap();
    let text = |r: &csv::StringRecord| -> [String; 8] { std::array::from_fn(|i| r[i].to_string()) };
    let sheets: [(&str, Vec<[String; 8]>); 2] = [
        ("Year 2009-2010", rows[..second].iter().map(text).collect()),
        ("Year 2010-2011", rows[second..].iter().map(text).collect()),
    ];
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for (name, rows) in &sheets {
        crate::fixtures::add_uci_sheet(
            &mut workbook,
            name,
            rows.iter().map(|r| r.each_ref().map(String::as_str)),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("online_retail_II.zip");
    std::fs::write(
        &zip_path,
        crate::fixtures::zip_of("online_retail_II.xlsx", &workbook.save_to_buffer().unwrap()),
    )
    .unwrap();

    let from_zip = read_raw(&zip_path, &ProgressBar::hidden()).unwrap();
    let from_csv = read_raw(&csv, &ProgressBar::hidden()).unwrap();
    assert_eq!(from_zip.lines_read, 1_067_371);
    assert_eq!(from_zip.sheets, 2);
    assert_eq!(from_zip.lines.len(), 1_044_848);
    let first_difference = from_zip
        .lines
        .iter()
        .zip(&from_csv.lines)
        .position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "line {first_difference:?} differs");
}
