//! `clv data generate`: at the default scale it resembles the real data's shape (measured here on the
//! real file), and it works at 10x.

use std::collections::{HashMap, HashSet};

use crate::common::*;
use dataset::Line;
use dataset::read::read_raw;
use indicatif::ProgressBar;

/// The shape of a dataset, by the measures the issue names.
#[derive(Debug)]
struct Shape {
    lines: f64,
    customers: f64,
    share_without_id: f64,
    share_returns: f64,
    lines_per_invoice: f64,
    invoices_per_customer: f64,
    revenue_median: f64,
    revenue_p90: f64,
    revenue_top_decile_share: f64,
}

fn shape(lines: &[Line]) -> Shape {
    let n = lines.len() as f64;
    let invoices: HashSet<&str> = lines.iter().map(|l| l.invoice.as_str()).collect();
    let customers: HashSet<u64> = lines.iter().filter_map(|l| l.customer_id).collect();
    let mut purchases: HashMap<u64, HashSet<&str>> = HashMap::new();
    let mut revenue: HashMap<u64, f64> = HashMap::new();
    for l in lines {
        let Some(c) = l.customer_id else { continue };
        if l.invoice.chars().all(|ch| ch.is_ascii_digit()) && l.quantity > 0 && l.price > 0.0 {
            purchases.entry(c).or_default().insert(&l.invoice);
            *revenue.entry(c).or_default() += l.quantity as f64 * l.price;
        }
    }
    let mut spend: Vec<f64> = revenue.into_values().collect();
    spend.sort_by(f64::total_cmp);
    let total: f64 = spend.iter().sum();
    let top = spend[spend.len() * 9 / 10..].iter().sum::<f64>();
    Shape {
        lines: n,
        customers: customers.len() as f64,
        share_without_id: lines.iter().filter(|l| l.customer_id.is_none()).count() as f64 / n,
        share_returns: lines.iter().filter(|l| l.invoice.starts_with('C')).count() as f64 / n,
        lines_per_invoice: n / invoices.len() as f64,
        invoices_per_customer: purchases.values().map(|p| p.len()).sum::<usize>() as f64
            / purchases.len() as f64,
        revenue_median: spend[spend.len() / 2],
        revenue_p90: spend[spend.len() * 9 / 10],
        revenue_top_decile_share: top / total,
    }
}

fn within(name: &str, synthetic: f64, real: f64, low: f64, high: f64) {
    let ratio = synthetic / real;
    assert!(
        (low..=high).contains(&ratio),
        "{name}: synthetic {synthetic:.3} vs real {real:.3} (ratio {ratio:.2}, allowed {low}..{high})"
    );
}

#[test]
fn default_scale_resembles_the_real_data() {
    let real = shape(&read_raw(&real_csv(), &ProgressBar::hidden()).unwrap().lines);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synthetic.csv");
    clv(&[
        "data",
        "generate",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let data = read_raw(&out, &ProgressBar::hidden()).unwrap();
    assert_eq!(data.sheets, 1, "a generated file is in time order");
    let synthetic = shape(&data.lines);
    eprintln!("real      {real:?}\nsynthetic {synthetic:?}");
    within("lines", synthetic.lines, real.lines, 0.8, 1.25);
    within("customers", synthetic.customers, real.customers, 0.95, 1.05);
    within(
        "share without ID",
        synthetic.share_without_id,
        real.share_without_id,
        0.8,
        1.25,
    );
    within(
        "share of return lines",
        synthetic.share_returns,
        real.share_returns,
        0.6,
        1.6,
    );
    within(
        "lines per invoice",
        synthetic.lines_per_invoice,
        real.lines_per_invoice,
        0.75,
        1.33,
    );
    within(
        "invoices per customer",
        synthetic.invoices_per_customer,
        real.invoices_per_customer,
        0.75,
        1.33,
    );
    within(
        "median revenue per customer",
        synthetic.revenue_median,
        real.revenue_median,
        0.6,
        1.6,
    );
    within(
        "p90 revenue per customer",
        synthetic.revenue_p90,
        real.revenue_p90,
        0.6,
        1.6,
    );
    within(
        "top-decile revenue share",
        synthetic.revenue_top_decile_share,
        real.revenue_top_decile_share,
        0.85,
        1.15,
    );
}

#[test]
fn ten_times_the_real_size() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("1x.csv");
    let ten = dir.path().join("10x.csv");
    clv(&["data", "generate", "--out", one.to_str().unwrap()]);
    let report = clv(&[
        "data",
        "generate",
        "--scale",
        "10",
        "--out",
        ten.to_str().unwrap(),
    ]);
    assert!(report.contains("59,420 customers"), "{report}");
    let count = |p: &std::path::Path| {
        csv::Reader::from_path(p)
            .unwrap()
            .into_byte_records()
            .count() as f64
    };
    let ratio = count(&ten) / count(&one);
    assert!(
        (9.0..11.0).contains(&ratio),
        "10x has {ratio:.2} times the lines of 1x"
    );
}
