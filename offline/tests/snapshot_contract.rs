//! Hand-computed cases of the feature and label contract, one per feature and edge case.

use chrono::{NaiveDate, NaiveDateTime};
use contract::LineClass;
use dataset::Line;
use dataset::normalised::to_frame;
use offline::SnapshotSpec;
use offline::lines::{snapshot, summarise};
use polars::prelude::*;

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn line(invoice: &str, customer: Option<u64>, quantity: i64, price: f64, time: &str) -> Line {
    Line {
        invoice: invoice.into(),
        stock_code: "85123A".into(),
        description: Some("WHITE HANGING HEART T-LIGHT HOLDER".into()),
        quantity,
        invoice_date: at(time),
        price,
        customer_id: customer,
        country: "United Kingdom".into(),
    }
}

fn spec(cutoff: &str) -> SnapshotSpec {
    SnapshotSpec {
        cutoff: NaiveDate::parse_from_str(cutoff, "%Y-%m-%d").unwrap(),
        horizon_months: 6,
    }
}

/// One customer's row as (column -> value), or None when the customer has no row.
fn row(lines: &[Line], cutoff: &str, customer: i64) -> Option<Row> {
    let frame = snapshot(to_frame(lines).unwrap().lazy(), &spec(cutoff)).unwrap();
    let ids: Vec<Option<i64>> = frame
        .column("customer_id")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    let index = ids.iter().position(|id| *id == Some(customer))?;
    Some(Row { frame, index })
}

struct Row {
    frame: DataFrame,
    index: usize,
}

impl Row {
    fn int(&self, name: &str) -> i64 {
        self.frame
            .column(name)
            .unwrap()
            .i64()
            .unwrap()
            .get(self.index)
            .unwrap()
    }
    fn float(&self, name: &str) -> Option<f64> {
        self.frame
            .column(name)
            .unwrap()
            .f64()
            .unwrap()
            .get(self.index)
    }
    fn money(&self, name: &str) -> f64 {
        self.float(name).unwrap()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn one_purchase() {
    // Two lines of one invoice: £(12 × 2.55 + 6 × 4.25) = £56.10.
    let lines = [
        line("536365", Some(17850), 12, 2.55, "2011-05-10 08:26:00"),
        line("536365", Some(17850), 6, 4.25, "2011-05-10 08:26:00"),
    ];
    let r = row(&lines, "2011-06-01", 17850).expect("a row");
    assert_eq!(r.int("frequency"), 1);
    assert_eq!(r.int("recency_days"), 21); // 2011-05-10 08:26 -> 2011-06-01 00:00 is 21.65 days
    assert_eq!(r.int("tenure_days"), 21);
    assert!(close(r.money("total_revenue"), 56.10));
    assert!(close(r.money("avg_order_value"), 56.10));
    assert_eq!(r.int("active_months"), 1);
    assert!(close(r.money("purchase_velocity"), 1.0));
    assert_eq!(r.float("avg_gap_days"), None);
    assert_eq!(r.float("std_gap_days"), None);
    assert!(close(r.money("clv_6m"), 0.0));
    assert!(close(r.money("naive_6m"), 56.10));
}

#[test]
fn average_order_value_is_per_invoice_and_gaps_are_between_invoices() {
    // Invoice 1: 3 lines worth £10 in all; invoice 2: 1 line worth £20; invoice 3: 1 line worth £30.
    let lines = [
        line("1", Some(1), 1, 2.0, "2011-01-01 10:00:00"),
        line("1", Some(1), 1, 3.0, "2011-01-01 10:00:00"),
        line("1", Some(1), 1, 5.0, "2011-01-01 10:00:00"),
        line("2", Some(1), 2, 10.0, "2011-01-03 22:00:00"),
        line("3", Some(1), 3, 10.0, "2011-01-11 10:00:00"),
    ];
    let r = row(&lines, "2011-06-01", 1).unwrap();
    assert_eq!(r.int("frequency"), 3);
    assert!(close(r.money("total_revenue"), 60.0));
    assert!(close(r.money("avg_order_value"), 20.0)); // per invoice, not per line (12)
    // Gaps: 2.5 days, 7.5 days -> mean 5, sample std sqrt(((2.5-5)² + (7.5-5)²) / 1) = 3.5355...
    assert!(close(r.float("avg_gap_days").unwrap(), 5.0));
    assert!(close(r.float("std_gap_days").unwrap(), 12.5f64.sqrt()));
    assert_eq!(r.int("active_months"), 1);
    assert!(close(r.money("purchase_velocity"), 3.0));
    assert_eq!(r.int("recency_days"), 140); // 2011-01-11 10:00 -> 2011-06-01: 140.58 days
    assert_eq!(r.int("tenure_days"), 150); // 2011-01-01 10:00 -> 2011-06-01: 150.58 days
}

#[test]
fn same_day_and_same_time_invoices() {
    // Two invoices at the same minute give a gap of 0; a third six hours later 0.25 days.
    let lines = [
        line("10", Some(7), 1, 1.0, "2011-03-01 09:00:00"),
        line("11", Some(7), 1, 1.0, "2011-03-01 09:00:00"),
        line("12", Some(7), 1, 1.0, "2011-03-01 15:00:00"),
    ];
    let r = row(&lines, "2011-06-01", 7).unwrap();
    assert_eq!(r.int("frequency"), 3);
    assert!(close(r.float("avg_gap_days").unwrap(), 0.125));
    // gaps 0 and 0.25: sample std = sqrt(2 × 0.125²) = 0.1767...
    assert!(close(
        r.float("std_gap_days").unwrap(),
        (2.0f64 * 0.125 * 0.125).sqrt()
    ));
}

#[test]
fn two_purchases_have_a_std_of_zero() {
    let lines = [
        line("10", Some(7), 1, 1.0, "2011-03-01 09:00:00"),
        line("11", Some(7), 1, 1.0, "2011-03-04 09:00:00"),
    ];
    let r = row(&lines, "2011-06-01", 7).unwrap();
    assert!(close(r.float("avg_gap_days").unwrap(), 3.0));
    assert_eq!(r.float("std_gap_days"), Some(0.0));
}

#[test]
fn returns_only_gives_no_row_and_returns_change_nothing() {
    let only_returns = [line(
        "C536379",
        Some(14527),
        -1,
        27.50,
        "2011-01-01 09:41:00",
    )];
    assert!(row(&only_returns, "2011-06-01", 14527).is_none());

    let purchase = [
        line("536380", Some(9), 4, 2.5, "2011-02-01 10:00:00"),
        line("536390", Some(9), 1, 5.0, "2011-07-01 10:00:00"),
    ];
    let mut with_returns = purchase.to_vec();
    with_returns.push(line("C536381", Some(9), -4, 2.5, "2011-02-02 10:00:00"));
    with_returns.push(line("C536391", Some(9), -1, 5.0, "2011-07-02 10:00:00"));
    // A cancellation with a positive quantity is still a return line (rule 2 before rule 4).
    with_returns.push(line("C536392", Some(9), 3, 5.0, "2011-03-02 10:00:00"));
    let a = row(&purchase, "2011-06-01", 9).unwrap();
    let b = row(&with_returns, "2011-06-01", 9).unwrap();
    for name in ["recency_days", "frequency", "tenure_days", "active_months"] {
        assert_eq!(a.int(name), b.int(name), "{name}");
    }
    for name in ["total_revenue", "avg_order_value", "clv_6m", "naive_6m"] {
        assert_eq!(a.float(name), b.float(name), "{name}");
    }
    assert!(close(b.money("total_revenue"), 10.0));
    assert!(close(b.money("clv_6m"), 5.0));
}

#[test]
fn cutoff_boundary_exactly_at_a_purchase() {
    let lines = [
        line("1", Some(3), 1, 10.0, "2011-05-31 23:59:59"),
        line("2", Some(3), 1, 20.0, "2011-06-01 00:00:00"), // at T: label, not features
        line("3", Some(3), 1, 40.0, "2011-11-30 23:59:59"), // last second of the window
        line("4", Some(3), 1, 80.0, "2011-12-01 00:00:00"), // T + 6 months: outside
    ];
    let r = row(&lines, "2011-06-01", 3).unwrap();
    assert_eq!(r.int("frequency"), 1);
    assert_eq!(r.int("recency_days"), 0);
    assert!(close(r.money("total_revenue"), 10.0));
    assert!(close(r.money("clv_6m"), 60.0));
    // A customer whose first purchase is exactly at T has no row.
    assert!(
        row(
            &[line("2", Some(4), 1, 20.0, "2011-06-01 00:00:00")],
            "2011-06-01",
            4
        )
        .is_none()
    );
}

#[test]
fn month_boundaries_and_clamped_label_window() {
    let lines = [
        line("1", Some(5), 1, 1.0, "2011-01-31 23:59:00"),
        line("2", Some(5), 1, 1.0, "2011-02-01 00:01:00"),
        line("3", Some(5), 1, 1.0, "2011-02-28 12:00:00"),
        line("4", Some(5), 1, 1.0, "2010-12-31 12:00:00"),
        // Cutoff 2011-08-31: the window ends at 2012-02-29 (clamped), the naive window starts 2011-02-28.
        line("5", Some(5), 1, 7.0, "2012-02-28 12:00:00"),
        line("6", Some(5), 1, 9.0, "2012-02-29 00:00:00"),
    ];
    let r = row(&lines, "2011-08-31", 5).unwrap();
    assert_eq!(r.int("frequency"), 4);
    assert_eq!(r.int("active_months"), 3); // 2010-12, 2011-01, 2011-02
    assert!(close(r.money("purchase_velocity"), 4.0 / 3.0));
    assert!(close(r.money("clv_6m"), 7.0));
    assert!(close(r.money("naive_6m"), 1.0)); // only 2011-02-28 12:00 is on or after 2011-02-28
}

#[test]
fn an_invoice_whose_lines_differ_in_time_counts_at_its_first_line() {
    let lines = [
        line("100", Some(8), 1, 10.0, "2011-05-31 23:50:00"),
        line("100", Some(8), 1, 5.0, "2011-06-01 00:10:00"), // after T, same invoice
    ];
    let r = row(&lines, "2011-06-01", 8).unwrap();
    assert_eq!(r.int("frequency"), 1);
    assert!(close(r.money("total_revenue"), 15.0));
    assert!(close(r.money("clv_6m"), 0.0));
}

#[test]
fn every_ignore_reason_changes_nothing() {
    let base = [line("1", Some(2), 2, 1.5, "2011-04-01 10:00:00")];
    let mut noisy = base.to_vec();
    noisy.push(line("2", None, 100, 100.0, "2011-04-02 10:00:00")); // no customer
    noisy.push(line("A563185", Some(2), 1, 11062.06, "2011-04-03 10:00:00")); // non-sale invoice
    noisy.push(line("3", Some(2), 0, 5.0, "2011-04-04 10:00:00")); // quantity 0
    noisy.push(line("4", Some(2), -3, 5.0, "2011-04-05 10:00:00")); // negative quantity
    noisy.push(line("5", Some(2), 3, 0.0, "2011-04-06 10:00:00")); // zero price
    noisy.push(line("6", Some(2), 3, -1.0, "2011-04-07 10:00:00")); // negative price
    noisy.push(line("7", Some(2), 3, 0.0004, "2011-04-08 10:00:00")); // rounds to 0 thousandths
    let r = row(&noisy, "2011-06-01", 2).unwrap();
    assert_eq!(r.int("frequency"), 1);
    assert_eq!(r.int("recency_days"), 60);
    assert!(close(r.money("total_revenue"), 3.0));

    let summary = summarise(to_frame(&noisy).unwrap().lazy()).unwrap();
    assert_eq!(summary.count(LineClass::Purchase), 1);
    assert_eq!(summary.count(LineClass::NoCustomer), 1);
    assert_eq!(summary.count(LineClass::NonSaleInvoice), 1);
    assert_eq!(summary.count(LineClass::NonPositiveQuantity), 2);
    assert_eq!(summary.count(LineClass::NonPositivePrice), 3);
    assert_eq!(summary.count(LineClass::Return), 0);
    assert_eq!(summary.customers, 1);
    assert_eq!(summary.purchases, 1);
    assert_eq!(summary.invoices, 8);
}

#[test]
fn money_is_exact_to_the_thousandth() {
    // 3 × £0.001 + 7 × £2.675 = £18.728 exactly.
    let lines = [
        line("1", Some(6), 3, 0.001, "2011-04-01 10:00:00"),
        line("1", Some(6), 7, 2.675, "2011-04-01 10:00:00"),
    ];
    let r = row(&lines, "2011-06-01", 6).unwrap();
    assert_eq!((r.money("total_revenue") * 1000.0).round() as i64, 18_728);
}

#[test]
fn duplicate_rows_are_distinct_lines() {
    let one = line("1", Some(6), 1, 2.0, "2011-04-01 10:00:00");
    let r = row(&[one.clone(), one], "2011-06-01", 6).unwrap();
    assert_eq!(r.int("frequency"), 1);
    assert!(close(r.money("total_revenue"), 4.0));
}

#[test]
fn output_columns_follow_the_contract() {
    let frame = snapshot(
        to_frame(&[line("1", Some(6), 1, 2.0, "2011-04-01 10:00:00")])
            .unwrap()
            .lazy(),
        &spec("2011-06-01"),
    )
    .unwrap();
    let names: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, offline::lines::snapshot_columns());
}

#[test]
fn zero_month_horizon_is_rejected() {
    let lines = to_frame(&[line("1", Some(6), 1, 2.0, "2011-04-01 10:00:00")]).unwrap();
    let spec = SnapshotSpec {
        horizon_months: 0,
        ..spec("2011-06-01")
    };
    assert!(snapshot(lines.lazy(), &spec).is_err());
}
