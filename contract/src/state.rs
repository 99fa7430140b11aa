//! Per-customer state and the fold of events into it: pure, order-independent, idempotent per event ID.
//!
//! The state keeps each purchase (invoice -> earliest time, exact revenue), so that features can be taken
//! as of any cutoff (point-in-time snapshots) as well as at the live watermark ([`crate::row`]); returns
//! and ignored lines are counted on their own.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bounds::{OutOfBounds, line_value};
use crate::event::TransactionEvent;
use crate::{LineClass, classify, price_milli};

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

impl CustomerState {
    /// Applies one event of this customer. Idempotent per `event_id`; the result does not depend on the
    /// order events arrive in. Money is checked: a value or sum that would not fit in 64 bits (possible
    /// only outside the bounds, or after about 9,000 lines at the largest value on one invoice) is an
    /// error and changes nothing.
    pub fn apply(&mut self, event: &TransactionEvent) -> Result<Applied, OutOfBounds> {
        if self.event_ids.contains(&event.event_id) {
            return Ok(Applied::Duplicate);
        }
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
                let value = line_value(event.quantity, price)?;
                match self.purchases.get_mut(&event.invoice) {
                    Some(p) => {
                        p.revenue_milli = p
                            .revenue_milli
                            .checked_add(value)
                            .ok_or(OutOfBounds::Overflow("the invoice's revenue"))?;
                        p.time_ms = p.time_ms.min(time_ms);
                    }
                    None => {
                        self.purchases.insert(
                            event.invoice.clone(),
                            Purchase {
                                time_ms,
                                revenue_milli: value,
                            },
                        );
                    }
                }
            }
            LineClass::Return => {
                let value = line_value(event.quantity, price)?;
                self.return_value_milli = self
                    .return_value_milli
                    .checked_add(value)
                    .ok_or(OutOfBounds::Overflow("the returns' value"))?;
                self.return_lines += 1;
            }
            ignored => {
                *self
                    .ignored_lines
                    .entry(ignored.name().to_string())
                    .or_default() += 1
            }
        }
        self.event_ids.insert(event.event_id.clone());
        Ok(Applied::New(class))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, ms};

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
            assert!(matches!(forward.apply(e), Ok(Applied::New(_))));
        }
        assert_eq!(forward.apply(&events[2]), Ok(Applied::Duplicate));
        let mut backward = CustomerState::default();
        for e in events.iter().rev() {
            backward.apply(e).unwrap();
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
    fn money_never_wraps_and_an_overflow_changes_nothing() {
        let mut state = CustomerState::default();
        // 10^7 units at £10^8: 10^18 thousandths, the most one line within the bounds is worth.
        for i in 0..9 {
            let e = event(
                &format!("big{i}"),
                "1",
                10_000_000,
                100_000_000.0,
                "2011-01-01 10:00:00",
            );
            assert_eq!(state.apply(&e), Ok(Applied::New(LineClass::Purchase)));
        }
        let before = state.clone();
        let tenth = event(
            "big9",
            "1",
            10_000_000,
            100_000_000.0,
            "2011-01-01 10:00:00",
        );
        assert_eq!(
            state.apply(&tenth),
            Err(OutOfBounds::Overflow("the invoice's revenue"))
        );
        assert_eq!(state, before, "a rejected event leaves no trace");
        // Outside the bounds the product itself would wrap: an error, not a value.
        let wrapping = event("w", "2", 1 << 62, 1.0, "2011-01-01 10:00:00");
        assert!(state.apply(&wrapping).is_err());
        assert_eq!(state, before);
    }
}
