//! Per-customer state and the fold of events into it: pure and order-independent.
//!
//! The state keeps each purchase (invoice -> earliest time, exact revenue), so that features can be taken
//! as of any cutoff (point-in-time snapshots) as well as at the live watermark ([`crate::row`]); returns
//! and ignored lines are counted on their own, in the customer's [`Summary`].
//!
//! What one event changes is a [`Change`] ([`Change::of`]): a purchase line adds to one invoice's
//! [`Purchase`], a return or an ignored line to the [`Summary`]. So an event's cost does not depend on
//! the customer's history: the store keeps each invoice and the summary under their own keys and
//! updates only the one an event touches. Redeliveries (the same event ID again) are the store's and
//! the batch folder's to recognise: the state itself does not list event IDs.

use std::collections::BTreeMap;

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

impl Purchase {
    /// Adds a line worth `value_milli` at `time_ms` to this invoice (checked: an overflow is an error
    /// and changes nothing).
    pub fn add(&mut self, time_ms: i64, value_milli: i64) -> Result<(), OutOfBounds> {
        self.revenue_milli = self
            .revenue_milli
            .checked_add(value_milli)
            .ok_or(OutOfBounds::Overflow("the invoice's revenue"))?;
        self.time_ms = self.time_ms.min(time_ms);
        Ok(())
    }
}

/// What a customer's state holds besides its purchases: fixed in size whatever the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Return lines applied.
    pub return_lines: u64,
    /// Value of the return lines (quantity × price, usually negative), thousandths of a pound.
    pub return_value_milli: i64,
    /// Lines ignored by the contract, by class name (at most one entry per class).
    pub ignored_lines: BTreeMap<String, u64>,
}

impl Summary {
    /// Applies a change that is not a purchase (a purchase changes its invoice: see
    /// [`Purchase::add`]). Checked: an overflow is an error and changes nothing.
    pub fn apply(&mut self, change: &Change<'_>) -> Result<(), OutOfBounds> {
        match change {
            Change::Purchase { .. } => {}
            Change::Return { value_milli } => {
                self.return_value_milli = self
                    .return_value_milli
                    .checked_add(*value_milli)
                    .ok_or(OutOfBounds::Overflow("the returns' value"))?;
                self.return_lines += 1;
            }
            // The class's name is copied only the first time it is counted.
            Change::Ignored(class) => match self.ignored_lines.get_mut(class.name()) {
                Some(n) => *n += 1,
                None => {
                    self.ignored_lines.insert(class.name().to_string(), 1);
                }
            },
        }
        Ok(())
    }
}

/// What one event changes in its customer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// A purchase line: adds `value_milli` to invoice `invoice`, whose time is the earliest of its lines.
    Purchase {
        /// The invoice number.
        invoice: &'a str,
        /// The line's time, epoch milliseconds.
        time_ms: i64,
        /// quantity × price, thousandths of a pound.
        value_milli: i64,
    },
    /// A return line worth `value_milli` (usually negative).
    Return {
        /// quantity × price, thousandths of a pound.
        value_milli: i64,
    },
    /// A line the contract counts but ignores, by its class.
    Ignored(LineClass),
}

impl<'a> Change<'a> {
    /// The class of `event`'s line and what it changes. An error when the line's value does not fit
    /// in 64 bits (possible only outside the bounds).
    pub fn of(event: &'a TransactionEvent<'_>) -> Result<(LineClass, Change<'a>), OutOfBounds> {
        let price = price_milli(event.price);
        let class = classify(
            Some(event.customer_id),
            &event.invoice,
            event.quantity,
            price,
        );
        let change = match class {
            LineClass::Purchase => Change::Purchase {
                invoice: &event.invoice,
                time_ms: event.time_ms(),
                value_milli: line_value(event.quantity, price)?,
            },
            LineClass::Return => Change::Return {
                value_milli: line_value(event.quantity, price)?,
            },
            ignored => Change::Ignored(ignored),
        };
        Ok((class, change))
    }
}

/// Everything the store keeps about one customer, read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Purchases by invoice number.
    pub purchases: BTreeMap<String, Purchase>,
    /// Returns and ignored lines.
    pub summary: Summary,
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
    /// Applies one new event of this customer (the caller knows it was not applied before: see the
    /// module's documentation). The result does not depend on the order events arrive in. Money is
    /// checked: a value or sum that would not fit in 64 bits (possible only outside the bounds, or
    /// after about 9,000 lines at the largest value on one invoice) is an error and changes nothing.
    pub fn apply(&mut self, event: &TransactionEvent<'_>) -> Result<LineClass, OutOfBounds> {
        let (class, change) = Change::of(event)?;
        self.apply_change(&change)?;
        Ok(class)
    }

    /// Applies a [`Change`] (checked, as [`CustomerState::apply`]).
    pub fn apply_change(&mut self, change: &Change<'_>) -> Result<(), OutOfBounds> {
        match *change {
            Change::Purchase {
                invoice,
                time_ms,
                value_milli,
            } => match self.purchases.get_mut(invoice) {
                Some(p) => p.add(time_ms, value_milli),
                None => {
                    self.purchases.insert(
                        invoice.to_string(),
                        Purchase {
                            time_ms,
                            revenue_milli: value_milli,
                        },
                    );
                    Ok(())
                }
            },
            _ => self.summary.apply(change),
        }
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
    fn order_does_not_matter() {
        let events = [
            event("a", "1", 1, 2.0, "2011-01-01 10:00:00"),
            event("b", "1", 1, 3.0, "2011-01-01 09:00:00"),
            event("c", "2", 2, 10.0, "2011-01-03 22:00:00"),
            event("d", "C3", -1, 10.0, "2011-01-04 22:00:00"),
            event("e", "3", 0, 10.0, "2011-01-05 22:00:00"),
        ];
        let mut forward = CustomerState::default();
        for e in &events {
            assert!(forward.apply(e).is_ok());
        }
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
        assert_eq!(forward.summary.return_lines, 1);
        assert_eq!(forward.summary.return_value_milli, -10_000);
        assert_eq!(forward.summary.ignored_lines["non_positive_quantity"], 1);
    }

    #[test]
    fn money_never_wraps_and_an_overflow_changes_nothing() {
        let mut state = CustomerState::default();
        // 10^7 units at £10^8: 10^18 thousandths, the most one line within the bounds is worth.
        for i in 0..9 {
            let id = format!("big{i}");
            let e = event(&id, "1", 10_000_000, 100_000_000.0, "2011-01-01 10:00:00");
            assert_eq!(state.apply(&e), Ok(LineClass::Purchase));
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
