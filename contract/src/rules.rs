//! The rules every implementation agrees on: a line is a purchase line, a return line, or ignored for one
//! reason; money is exact in thousandths of a pound; features of a customer as of cutoff `T` use only
//! purchases before `T` (midnight UTC); the label is the revenue of purchases in `[T, T + horizon months)`.

use chrono::{Months, NaiveDate, NaiveDateTime};

/// Major version of the contract implemented here (what a model's metadata records: a model trained
/// under another major version is not served).
pub const CONTRACT_VERSION: u32 = 1;
/// The full version of the contract implemented here: 1.1 is 1 plus the bounds of [`crate::bounds`],
/// which leave every line of the real data, and so every model trained under 1, as it was.
pub const CONTRACT_REVISION: &str = "1.1";

/// The label column: revenue in the horizon after the cutoff.
pub const LABEL: &str = "clv_6m";
/// Months before the cutoff that the naive baseline (the feature `naive_6m`) sums.
pub const NAIVE_MONTHS: u32 = 6;

/// The cutoff and label horizon of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// Features use purchases strictly before midnight UTC of this day.
    pub cutoff: NaiveDate,
    /// The label sums purchases in `[cutoff, cutoff + horizon_months)`.
    pub horizon_months: u32,
}

impl SnapshotSpec {
    /// The cutoff, epoch milliseconds.
    pub fn cutoff_ms(&self) -> i64 {
        epoch_ms(midnight(self.cutoff))
    }

    /// The end of the label window (exclusive), epoch milliseconds.
    pub fn horizon_end_ms(&self) -> i64 {
        epoch_ms(midnight(add_months(
            self.cutoff,
            i32::try_from(self.horizon_months).unwrap_or(i32::MAX),
        )))
    }

    /// The start of the naive baseline's window (`NAIVE_MONTHS` before the cutoff), epoch milliseconds.
    pub fn naive_start_ms(&self) -> i64 {
        epoch_ms(midnight(add_months(self.cutoff, -(NAIVE_MONTHS as i32))))
    }
}

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// The class of one source line, by the first rule of the contract that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineClass {
    /// Outside the bounds of [`crate::bounds`] (checked first): ignored offline, a dead letter in
    /// the stream.
    OutOfBounds,
    /// No customer ID: ignored.
    NoCustomer,
    /// Invoice starts with `C`: a return line, whatever its quantity or price.
    Return,
    /// Invoice not all digits (`A…` adjustments): ignored.
    NonSaleInvoice,
    /// Quantity ≤ 0: ignored.
    NonPositiveQuantity,
    /// Price ≤ 0: ignored.
    NonPositivePrice,
    /// Everything else: a purchase line.
    Purchase,
}

impl LineClass {
    /// Every class, in rule order.
    pub const ALL: [LineClass; 7] = [
        LineClass::OutOfBounds,
        LineClass::NoCustomer,
        LineClass::Return,
        LineClass::NonSaleInvoice,
        LineClass::NonPositiveQuantity,
        LineClass::NonPositivePrice,
        LineClass::Purchase,
    ];

    /// The class's name in outputs and metrics (`no_customer`, `return`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LineClass::OutOfBounds => "out_of_bounds",
            LineClass::NoCustomer => "no_customer",
            LineClass::Return => "return",
            LineClass::NonSaleInvoice => "non_sale_invoice",
            LineClass::NonPositiveQuantity => "non_positive_quantity",
            LineClass::NonPositivePrice => "non_positive_price",
            LineClass::Purchase => "purchase",
        }
    }

    /// The class of this name ([`LineClass::name`]).
    pub fn from_name(name: &str) -> Option<LineClass> {
        LineClass::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// Whether lines of this class are ignored (neither purchases nor returns).
    pub fn is_ignored(self) -> bool {
        !matches!(self, LineClass::Return | LineClass::Purchase)
    }
}

/// The class of a line within the bounds by the contract's rules, in order. `price_milli` is the unit
/// price in thousandths of a pound (see [`price_milli`]). The bounds ([`crate::bounds::Bounds::check`])
/// come first; this never answers [`LineClass::OutOfBounds`].
pub fn classify(
    customer_id: Option<u64>,
    invoice: &str,
    quantity: i64,
    price_milli: i64,
) -> LineClass {
    if customer_id.is_none() {
        LineClass::NoCustomer
    } else if invoice.starts_with('C') {
        LineClass::Return
    } else if invoice.is_empty() || !invoice.bytes().all(|b| b.is_ascii_digit()) {
        LineClass::NonSaleInvoice
    } else if quantity <= 0 {
        LineClass::NonPositiveQuantity
    } else if price_milli <= 0 {
        LineClass::NonPositivePrice
    } else {
        LineClass::Purchase
    }
}

/// A unit price in exact thousandths of a pound (the data has at most 3 decimals).
pub fn price_milli(price: f64) -> i64 {
    (price * 1000.0).round() as i64
}

/// Thousandths of a pound as pounds.
pub fn pounds(milli: i64) -> f64 {
    milli as f64 / 1000.0
}

/// Midnight UTC at the start of `date`, as a time.
pub fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(chrono::NaiveTime::MIN)
}

/// Milliseconds since the Unix epoch of a UTC time.
pub fn epoch_ms(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// `date` moved by `months` calendar months (negative: back); a day the target month lacks clamps to its
/// last day (2011-08-31 + 6 months = 2012-02-29).
pub fn add_months(date: NaiveDate, months: i32) -> NaiveDate {
    let shifted = if months >= 0 {
        date.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    shifted.unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn months_clamp_to_the_last_day() {
        assert_eq!(add_months(day(2011, 6, 1), 6), day(2011, 12, 1));
        assert_eq!(add_months(day(2011, 8, 31), 6), day(2012, 2, 29));
        assert_eq!(add_months(day(2011, 3, 31), 6), day(2011, 9, 30));
        assert_eq!(add_months(day(2011, 6, 1), -6), day(2010, 12, 1));
        assert_eq!(add_months(day(2011, 8, 31), -6), day(2011, 2, 28));
    }

    #[test]
    fn classes_by_the_first_matching_rule() {
        use LineClass::*;
        assert_eq!(classify(None, "C1", -1, 100), NoCustomer);
        assert_eq!(classify(Some(1), "C1", 5, 0), Return);
        assert_eq!(classify(Some(1), "A563185", 1, 100), NonSaleInvoice);
        assert_eq!(classify(Some(1), "", 1, 100), NonSaleInvoice);
        assert_eq!(classify(Some(1), "536365", 0, 0), NonPositiveQuantity);
        assert_eq!(classify(Some(1), "536365", 1, 0), NonPositivePrice);
        assert_eq!(classify(Some(1), "536365", 1, 1), Purchase);
    }

    #[test]
    fn money_is_exact_in_thousandths() {
        assert_eq!(price_milli(0.001), 1);
        assert_eq!(price_milli(2.55), 2550);
        assert_eq!(price_milli(38970.0), 38_970_000);
        assert_eq!(price_milli(-11062.06), -11_062_060);
        assert_eq!(pounds(4_324_824_462), 4_324_824.462);
    }
}
