//! Per-customer state and the fold of events into it: pure, order-independent, idempotent per event ID.
//!
//! The state keeps each purchase (invoice -> earliest time, exact revenue), so that features can be taken
//! as of any cutoff (point-in-time snapshots) as well as at the live watermark; returns and ignored
//! lines are counted on their own. No Kafka, storage or HTTP here: the stream, the snapshot from the store
//! and the scorer all call these same functions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike};
use serde::{Deserialize, Serialize};

use crate::contract::{LineClass, MS_PER_DAY, classify, pounds, price_milli};
use crate::event::TransactionEvent;

/// One purchase: a distinct invoice of the customer among purchase lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// Earliest line time, epoch milliseconds.
    pub time_ms: i64,
    /// Sum of its lines, thousandths of a pound.
    pub revenue_milli: i64,
}

/// Everything the store keeps about one customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Purchases by invoice number.
    pub purchases: BTreeMap<String, Purchase>,
    /// Return lines applied.
    pub return_lines: u64,
    /// Value of the return lines (quantity × price, usually negative), thousandths of a pound.
    pub return_value_milli: i64,
    /// Lines ignored by the contract, by class name.
    pub ignored_lines: BTreeMap<String, u64>,
    /// IDs of every event applied, so that a redelivery changes nothing.
    pub event_ids: BTreeSet<String>,
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event was new and counted in its class.
    New(LineClass),
    /// The event ID was applied before; nothing changed.
    Duplicate,
}

/// The nine features of a customer as of a time (see the contract).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Whole days from the last purchase to `as_of`.
    pub recency_days: i64,
    /// Purchases before `as_of`.
    pub frequency: i64,
    /// Their revenue, pounds.
    pub total_revenue: f64,
    /// Revenue per purchase, pounds.
    pub avg_order_value: f64,
    /// Whole days from the first purchase to `as_of`.
    pub tenure_days: i64,
    /// Distinct calendar months with a purchase.
    pub active_months: i64,
    /// Purchases per active month.
    pub purchase_velocity: f64,
    /// Mean gap between consecutive purchases, days; `None` for one purchase.
    pub avg_gap_days: Option<f64>,
    /// Sample standard deviation of the gaps, days; 0 for one gap, `None` for one purchase.
    pub std_gap_days: Option<f64>,
}

impl CustomerState {
    /// Applies one event of this customer. Idempotent per `event_id`; the result does not depend on the
    /// order events arrive in.
    pub fn apply(&mut self, event: &TransactionEvent) -> Applied {
        if self.event_ids.contains(&event.event_id) {
            return Applied::Duplicate;
        }
        self.event_ids.insert(event.event_id.clone());
        let price = price_milli(event.price);
        let class = classify(
            Some(event.customer_id),
            &event.invoice,
            event.quantity,
            price,
        );
        match class {
            LineClass::Purchase => {
                let time_ms = event.invoice_date.timestamp_millis();
                let revenue = event.quantity * price;
                self.purchases
                    .entry(event.invoice.clone())
                    .and_modify(|p| {
                        p.time_ms = p.time_ms.min(time_ms);
                        p.revenue_milli += revenue;
                    })
                    .or_insert(Purchase {
                        time_ms,
                        revenue_milli: revenue,
                    });
            }
            LineClass::Return => {
                self.return_lines += 1;
                self.return_value_milli += event.quantity * price;
            }
            ignored => {
                *self
                    .ignored_lines
                    .entry(ignored.name().to_string())
                    .or_default() += 1
            }
        }
        Applied::New(class)
    }

    /// Revenue of the purchases with `from_ms <= time < to_ms`, thousandths of a pound (the label and
    /// the naive baseline).
    pub fn revenue_between(&self, from_ms: i64, to_ms: i64) -> i64 {
        self.purchases
            .values()
            .filter(|p| (from_ms..to_ms).contains(&p.time_ms))
            .map(|p| p.revenue_milli)
            .sum()
    }

    /// The features as of `as_of_ms` (exclusive), or `None` when no purchase came before it.
    pub fn features(&self, as_of_ms: i64) -> Option<Features> {
        let mut times: Vec<i64> = Vec::with_capacity(self.purchases.len());
        let mut revenue_milli = 0i64;
        for p in self.purchases.values().filter(|p| p.time_ms < as_of_ms) {
            times.push(p.time_ms);
            revenue_milli += p.revenue_milli;
        }
        times.sort_unstable();
        let (&first, &last) = (times.first()?, times.last()?);
        let frequency = times.len() as i64;
        let months: BTreeSet<(i32, u32)> = times
            .iter()
            .filter_map(|&t| DateTime::from_timestamp_millis(t))
            .map(|t| (t.year(), t.month()))
            .collect();
        let active_months = months.len() as i64;
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / MS_PER_DAY as f64)
            .collect();
        let (avg_gap_days, std_gap_days) = match gaps.len() {
            0 => (None, None),
            1 => (Some(gaps[0]), Some(0.0)),
            n => {
                let mean = gaps.iter().sum::<f64>() / n as f64;
                let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                (Some(mean), Some(var.sqrt()))
            }
        };
        let total_revenue = pounds(revenue_milli);
        Some(Features {
            recency_days: (as_of_ms - last).div_euclid(MS_PER_DAY),
            frequency,
            total_revenue,
            avg_order_value: total_revenue / frequency as f64,
            tenure_days: (as_of_ms - first).div_euclid(MS_PER_DAY),
            active_months,
            purchase_velocity: frequency as f64 / active_months as f64,
            avg_gap_days,
            std_gap_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn event(id: &str, invoice: &str, quantity: i64, price: f64, time: &str) -> TransactionEvent {
        TransactionEvent {
            schema_version: 1,
            event_id: id.into(),
            customer_id: 1,
            invoice: invoice.into(),
            stock_code: "X".into(),
            description: None,
            quantity,
            invoice_date: NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc(),
            price,
            country: None,
        }
    }

    fn ms(time: &str) -> i64 {
        NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn redelivery_changes_nothing_and_order_does_not_matter() {
        let events = [
            event("a", "1", 1, 2.0, "2011-01-01 10:00:00"),
            event("b", "1", 1, 3.0, "2011-01-01 09:00:00"),
            event("c", "2", 2, 10.0, "2011-01-03 22:00:00"),
            event("d", "C3", -1, 10.0, "2011-01-04 22:00:00"),
            event("e", "3", 0, 10.0, "2011-01-05 22:00:00"),
        ];
        let mut forward = CustomerState::default();
        for e in &events {
            assert!(matches!(forward.apply(e), Applied::New(_)));
        }
        assert_eq!(forward.apply(&events[2]), Applied::Duplicate);
        let mut backward = CustomerState::default();
        for e in events.iter().rev() {
            backward.apply(e);
        }
        assert_eq!(forward, backward);
        assert_eq!(
            forward.purchases["1"],
            Purchase {
                time_ms: ms("2011-01-01 09:00:00"),
                revenue_milli: 5_000
            }
        );
        assert_eq!(forward.return_lines, 1);
        assert_eq!(forward.return_value_milli, -10_000);
        assert_eq!(forward.ignored_lines["non_positive_quantity"], 1);
    }

    #[test]
    fn features_as_of_a_cutoff() {
        let mut s = CustomerState::default();
        for e in [
            event("a", "1", 1, 10.0, "2011-01-01 10:00:00"),
            event("b", "2", 2, 10.0, "2011-01-03 22:00:00"),
            event("c", "3", 3, 10.0, "2011-01-11 10:00:00"),
            event("d", "4", 4, 10.0, "2011-06-01 00:00:00"),
        ] {
            s.apply(&e);
        }
        let f = s.features(ms("2011-06-01 00:00:00")).unwrap();
        assert_eq!(
            (f.frequency, f.recency_days, f.tenure_days, f.active_months),
            (3, 140, 150, 1)
        );
        assert_eq!(f.total_revenue, 60.0);
        assert_eq!(f.avg_order_value, 20.0);
        assert_eq!(f.avg_gap_days, Some(5.0));
        assert!((f.std_gap_days.unwrap() - 12.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            s.revenue_between(ms("2011-06-01 00:00:00"), ms("2011-12-01 00:00:00")),
            40_000
        );
        assert!(s.features(ms("2011-01-01 10:00:00")).is_none());
        let one = s.features(ms("2011-01-02 00:00:00")).unwrap();
        assert_eq!((one.avg_gap_days, one.std_gap_days), (None, None));
    }
}
