//! Helpers of this crate's unit tests.

use chrono::NaiveDateTime;

use crate::event::TransactionEvent;

/// A line of customer 1 at `time` (`%Y-%m-%d %H:%M:%S`, UTC).
pub(crate) fn event<'a>(
    id: &'a str,
    invoice: &'a str,
    quantity: i64,
    price: f64,
    time: &str,
) -> TransactionEvent<'a> {
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

/// `time` (`%Y-%m-%d %H:%M:%S`, UTC) in epoch milliseconds.
pub(crate) fn ms(time: &str) -> i64 {
    NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_millis()
}
