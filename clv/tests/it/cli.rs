//! The `clv` binary end to end on small files: help, import of every format, snapshot, errors.

use crate::common::*;

#[test]
fn every_command_has_help() {
    // Every command and subcommand clap knows of, walked from the definition itself, so a command
    // added later is covered without touching this list.
    fn paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            paths(sub, &path, out);
        }
    }
    let mut all = vec![Vec::new()];
    paths(
        &<clv::Cli as clap::CommandFactory>::command(),
        &[],
        &mut all,
    );
    assert!(all.len() >= 17, "{all:?}");
    for path in &all {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = clv(&args);
        assert!(out.contains("Usage: clv"), "{args:?}: {out}");
        if let Some(name) = path.last() {
            assert!(
                out.contains(&format!("Usage: clv {}", path.join(" "))),
                "{name}: {out}"
            );
        }
    }
}

#[test]
fn import_reads_xlsx_csv_and_zip_alike() {
    let dir = tempfile::tempdir().unwrap();
    let both = crate::fixtures::both_sheets();
    let inputs = [
        ("online_retail_II.xlsx", crate::fixtures::uci_workbook()),
        (
            "new.csv",
            crate::fixtures::csv_text(&both, false, false).into_bytes(),
        ),
        (
            "old.csv",
            crate::fixtures::csv_text(&both, true, true).into_bytes(),
        ),
        (
            "online+retail+ii.zip",
            crate::fixtures::zip_of("online_retail_II.xlsx", &crate::fixtures::uci_workbook()),
        ),
    ];
    let mut frames = Vec::new();
    for (name, bytes) in inputs {
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let out = dir.path().join(format!("{name}.parquet"));
        let summary = clv(&[
            "data",
            "import",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let value = |label: &str| {
            summary
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .and_then(|l| l.split_whitespace().last())
                .unwrap_or_else(|| panic!("no {label:?} in {summary}"))
                .to_string()
        };
        assert_eq!(value("lines read"), "12", "{name}");
        assert_eq!(value("lines kept"), "9", "{name}");
        assert_eq!(value("purchase lines"), "6", "{name}");
        assert_eq!(value("return lines"), "1", "{name}");
        assert_eq!(value("ignored: no_customer"), "2", "{name}"); // one of them the A invoice
        assert_eq!(value("ignored: non_sale_invoice"), "0", "{name}");
        assert_eq!(value("customers with any line"), "5", "{name}");
        assert_eq!(value("customers with a purchase"), "4", "{name}");
        assert_eq!(value("distinct invoices"), "9", "{name}");
        assert_eq!(value("purchases (customer, invoice)"), "6", "{name}");
        frames.push(read_parquet(&out));
    }
    for frame in &frames[1..] {
        assert!(
            frame.equals_missing(&frames[0]),
            "{frame}\n!=\n{}",
            frames[0]
        );
    }
    let numbers: Vec<u64> = frames[0]
        .column("line_number")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(numbers, (1..=9).collect::<Vec<u64>>());
}

#[test]
fn errors_are_clear_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
         536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
         536366,85123A,X,6,2010-12-01 08:26:00,2.55,seventeen,United Kingdom\n",
    )
    .unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["data", "import", bad.to_str().unwrap()], "line 3"),
        (
            vec!["data", "import", "/nonexistent/file.csv"],
            "/nonexistent/file.csv",
        ),
        (
            vec![
                "snapshot",
                "--cutoff",
                "2011-06-01",
                "--input",
                bad.to_str().unwrap(),
                "--out",
                "x.json",
            ],
            "line 3",
        ),
        (
            vec![
                "snapshot", "--cutoff", "June", "--input", "x.csv", "--out", "y.csv",
            ],
            "--cutoff",
        ),
    ];
    for (args, expected) in cases {
        let output = clv_output(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn snapshot_of_generated_data_to_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 300, 3);
    let parquet = dir.path().join("s.parquet");
    let csv = dir.path().join("s.csv");
    for out in [&parquet, &csv] {
        let printed = clv(&[
            "snapshot",
            "--cutoff",
            "2011-06-01",
            "--input",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(printed.contains("customers"), "{printed}");
    }
    let frame = read_parquet(&parquet);
    assert!(frame.height() > 100, "{frame}");
    assert_eq!(
        frame
            .get_column_names()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        offline::lines::snapshot_columns()
    );
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        frame.height() + 1
    );
}
