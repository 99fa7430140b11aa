//! Bounds on what a producer may send and a file may hold (FEATURES.md "Bounds", contract v1.1).
//!
//! A line or event outside them is rejected before any line class applies: in the stream a dead letter
//! of kind `out_of_bounds`, offline an ignored line of class `out_of_bounds`. Nothing of it is stored and
//! it moves no watermark. Within the bounds one line's value (quantity × price in thousandths of a
//! pound, at most 10^7 × 10^11 = 10^18) fits in 64 bits; sums of values are checked.

use chrono::{DateTime, NaiveDate, Utc};

use crate::{MS_PER_DAY, epoch_ms, midnight};

/// The earliest accepted time: 1990-01-01T00:00:00Z, epoch milliseconds.
pub const EARLIEST_MS: i64 = 631_152_000_000;
/// How far past the wall-clock time of ingestion (or import) a time may lie: 24 hours.
pub const FUTURE_TOLERANCE_MS: i64 = MS_PER_DAY;
/// The largest accepted |quantity|.
pub const MAX_QUANTITY: i64 = 10_000_000;
/// The largest accepted |price|, pounds.
pub const MAX_PRICE: f64 = 100_000_000.0;
/// The largest accepted customer ID: 2^53 − 1, exact as a JSON number (and a double).
pub const MAX_CUSTOMER_ID: u64 = (1 << 53) - 1;
/// The longest accepted invoice number or stock code, bytes (at least 1).
pub const MAX_CODE_BYTES: usize = 64;
/// The longest accepted country, bytes.
pub const MAX_COUNTRY_BYTES: usize = 128;
/// The longest accepted description, bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The longest accepted event ID, bytes (at least 1).
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// Why a line or event is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfBounds {
    /// The time is before 1990-01-01.
    #[error("time {0} is before 1990-01-01")]
    TooEarly(String),
    /// The time is more than 24 hours after the wall-clock time it was checked at.
    #[error("time {time} is more than 24 hours after the time of ingestion ({now})")]
    TooLate {
        /// The line's time.
        time: String,
        /// The wall-clock time it was checked at.
        now: String,
    },
    /// |quantity| above [`MAX_QUANTITY`].
    #[error("|quantity| {0} is above {MAX_QUANTITY}")]
    Quantity(i64),
    /// |price| above [`MAX_PRICE`], or not a finite number.
    #[error("price {0} is not a finite amount within ±100,000,000")]
    Price(String),
    /// A customer ID outside 1 ..= [`MAX_CUSTOMER_ID`].
    #[error("customer ID {0} is outside 1..=9007199254740991")]
    CustomerId(String),
    /// A text field shorter or longer than it may be.
    #[error("{field} is {bytes} bytes (accepted: {min} to {max})")]
    Length {
        /// The field.
        field: &'static str,
        /// Its length.
        bytes: usize,
        /// The shortest accepted.
        min: usize,
        /// The longest accepted.
        max: usize,
    },
    /// A sum of money that would not fit in 64 bits (a purchase's or the returns' value).
    #[error("{0} would overflow 64 bits")]
    Overflow(&'static str),
}

/// The fields of one line that the bounds look at.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The customer, when the line has one.
    pub customer_id: Option<i128>,
    /// Invoice number.
    pub invoice: &'a str,
    /// Product code.
    pub stock_code: &'a str,
    /// Description, when given.
    pub description: Option<&'a str>,
    /// Country, when given.
    pub country: Option<&'a str>,
    /// Units.
    pub quantity: i64,
    /// Unit price, pounds.
    pub price: f64,
    /// Line time, epoch milliseconds.
    pub time_ms: i64,
}

/// The bounds as of one wall-clock time (which sets the latest accepted time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The latest accepted time, epoch milliseconds (the wall-clock time + 24 hours).
    pub latest_ms: i64,
}

impl Bounds {
    /// The bounds when checking at wall-clock time `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        Bounds {
            latest_ms: now.timestamp_millis().saturating_add(FUTURE_TOLERANCE_MS),
        }
    }

    /// The bounds when checking now (the wall clock).
    pub fn now() -> Self {
        Bounds::at(Utc::now())
    }

    /// The bounds of a check at the start of `day` (for tests and reproducible imports).
    pub fn on(day: NaiveDate) -> Self {
        Bounds {
            latest_ms: epoch_ms(midnight(day)).saturating_add(FUTURE_TOLERANCE_MS),
        }
    }

    /// Whether a time (epoch milliseconds) is accepted.
    pub fn check_time(&self, time_ms: i64) -> Result<(), OutOfBounds> {
        let show = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
        };
        if time_ms < EARLIEST_MS {
            return Err(OutOfBounds::TooEarly(show(time_ms)));
        }
        if time_ms > self.latest_ms {
            return Err(OutOfBounds::TooLate {
                time: show(time_ms),
                now: show(self.latest_ms.saturating_sub(FUTURE_TOLERANCE_MS)),
            });
        }
        Ok(())
    }

    /// Checks every bound of one line, fields in the table's order.
    pub fn check(&self, line: &Line<'_>) -> Result<(), OutOfBounds> {
        self.check_time(line.time_ms)?;
        if line.quantity.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
            return Err(OutOfBounds::Quantity(line.quantity));
        }
        if !line.price.is_finite() || line.price.abs() > MAX_PRICE {
            return Err(OutOfBounds::Price(line.price.to_string()));
        }
        if let Some(id) = line.customer_id
            && !(1..=i128::from(MAX_CUSTOMER_ID)).contains(&id)
        {
            return Err(OutOfBounds::CustomerId(id.to_string()));
        }
        length("invoice", line.invoice, 1, MAX_CODE_BYTES)?;
        length("stock_code", line.stock_code, 1, MAX_CODE_BYTES)?;
        if let Some(country) = line.country {
            length("country", country, 0, MAX_COUNTRY_BYTES)?;
        }
        if let Some(description) = line.description {
            length("description", description, 0, MAX_DESCRIPTION_BYTES)?;
        }
        Ok(())
    }
}

/// Whether `value` is `min..=max` bytes long.
pub fn length(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), OutOfBounds> {
    let bytes = value.len();
    if (min..=max).contains(&bytes) {
        Ok(())
    } else {
        Err(OutOfBounds::Length {
            field,
            bytes,
            min,
            max,
        })
    }
}

/// One line's value, quantity × price in thousandths of a pound: within the bounds it always fits;
/// outside them it is an error rather than a wrapped number.
pub fn line_value(quantity: i64, price_milli: i64) -> Result<i64, OutOfBounds> {
    quantity
        .checked_mul(price_milli)
        .ok_or(OutOfBounds::Overflow("the line's value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price_milli;

    fn line() -> Line<'static> {
        Line {
            customer_id: Some(13085),
            invoice: "489434",
            stock_code: "85048",
            description: Some("15CM CHRISTMAS GLASS BALL 20 LIGHTS"),
            country: Some("United Kingdom"),
            quantity: 12,
            price: 6.95,
            time_ms: 1_259_653_500_000,
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_earliest_time_is_1990() {
        assert_eq!(EARLIEST_MS, epoch_ms(midnight(day(1990, 1, 1))));
    }

    #[test]
    fn each_bound_at_its_edge() {
        let bounds = Bounds::on(day(2011, 12, 10));
        let ok = |l: Line<'_>| bounds.check(&l);
        assert_eq!(ok(line()), Ok(()));
        let at = |f: fn(&mut Line<'static>)| {
            let mut l = line();
            f(&mut l);
            bounds.check(&l)
        };
        assert!(at(|l| l.time_ms = EARLIEST_MS).is_ok());
        assert!(matches!(
            at(|l| l.time_ms = EARLIEST_MS - 1),
            Err(OutOfBounds::TooEarly(_))
        ));
        let latest = epoch_ms(midnight(day(2011, 12, 11)));
        assert_eq!(bounds.latest_ms, latest);
        assert!(bounds.check_time(latest).is_ok());
        assert!(matches!(
            bounds.check_time(latest + 1),
            Err(OutOfBounds::TooLate { .. })
        ));
        assert!(matches!(
            bounds.check_time(i64::MIN),
            Err(OutOfBounds::TooEarly(_))
        ));
        assert!(matches!(
            bounds.check_time(i64::MAX),
            Err(OutOfBounds::TooLate { .. })
        ));
        assert!(at(|l| l.quantity = -MAX_QUANTITY).is_ok());
        assert_eq!(
            at(|l| l.quantity = MAX_QUANTITY + 1),
            Err(OutOfBounds::Quantity(MAX_QUANTITY + 1))
        );
        assert!(at(|l| l.quantity = i64::MIN).is_err());
        assert!(at(|l| l.price = -MAX_PRICE).is_ok());
        assert!(at(|l| l.price = 100_000_000.01).is_err());
        assert!(at(|l| l.price = f64::NAN).is_err());
        assert!(at(|l| l.price = f64::INFINITY).is_err());
        assert!(at(|l| l.customer_id = Some(MAX_CUSTOMER_ID.into())).is_ok());
        assert!(at(|l| l.customer_id = None).is_ok());
        for bad in [0, -1, i128::from(MAX_CUSTOMER_ID) + 1] {
            let mut l = line();
            l.customer_id = Some(bad);
            assert!(
                matches!(bounds.check(&l), Err(OutOfBounds::CustomerId(_))),
                "{bad}"
            );
        }
        assert!(at(|l| l.invoice = "").is_err());
        assert!(at(|l| l.stock_code = "").is_err());
        let long: &'static str = Box::leak("x".repeat(65).into_boxed_str());
        let max_code: &'static str = &long[..64];
        assert!(
            at(|l| l.invoice = "1111111111111111111111111111111111111111111111111111111111111111")
                .is_ok()
        );
        let mut l = line();
        l.invoice = long;
        assert!(matches!(
            bounds.check(&l),
            Err(OutOfBounds::Length {
                field: "invoice",
                bytes: 65,
                ..
            })
        ));
        l.invoice = max_code;
        l.stock_code = long;
        assert!(matches!(
            bounds.check(&l),
            Err(OutOfBounds::Length {
                field: "stock_code",
                ..
            })
        ));
        let country: &'static str = Box::leak("y".repeat(129).into_boxed_str());
        let mut l = line();
        l.country = Some(country);
        assert!(bounds.check(&l).is_err());
        l.country = Some(&country[..128]);
        assert!(bounds.check(&l).is_ok());
        let description: &'static str = Box::leak("z".repeat(1025).into_boxed_str());
        l.description = Some(description);
        assert!(bounds.check(&l).is_err());
        l.description = Some(&description[..1024]);
        assert!(bounds.check(&l).is_ok());
    }

    #[test]
    fn a_line_within_the_bounds_never_overflows() {
        let most = price_milli(MAX_PRICE);
        assert_eq!(
            line_value(MAX_QUANTITY, most),
            Ok(1_000_000_000_000_000_000)
        );
        assert_eq!(
            line_value(-MAX_QUANTITY, most),
            Ok(-1_000_000_000_000_000_000)
        );
        assert!(line_value(1 << 62, 1000).is_err());
        assert!(line_value(10_000_000, price_milli(1e12)).is_err());
    }
}
