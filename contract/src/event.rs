//! The transaction event: one source line as it travels through Kafka, as versioned JSON.
//!
//! This is the one place that says what a good event is; the consumer dead-letters whatever
//! [`TransactionEvent::decode`] rejects, with the [`Rejection`] it gives.
//!
//! ```json
//! {"schema_version":1,"event_id":"online_retail_II:1","customer_id":13085,"invoice":"489434",
//!  "stock_code":"85048","description":"15CM CHRISTMAS GLASS BALL 20 LIGHTS","quantity":12,
//!  "invoice_date":"2009-12-01T07:45:00Z","price":6.95,"country":"United Kingdom"}
//! ```

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::bounds::{self, Bounds, Line, OutOfBounds};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One invoice line of a known customer.
///
/// Its text borrows from the bytes it was decoded from where the JSON has no escapes (every
/// event clv writes), and from the line it was made of: decoding or encoding one allocates
/// nothing for its text. [`TransactionEvent::into_owned`] gives one that borrows nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionEvent<'a> {
    /// Always [`SCHEMA_VERSION`] for this layout.
    pub schema_version: u32,
    /// Unique per source line, assigned by the producer; a redelivery carries the same ID.
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    /// The customer (also the Kafka key).
    pub customer_id: u64,
    /// Invoice number (`C…` cancellation).
    #[serde(borrow)]
    pub invoice: Cow<'a, str>,
    /// Product code.
    #[serde(borrow)]
    pub stock_code: Cow<'a, str>,
    /// Product description.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub description: Option<Cow<'a, str>>,
    /// Units (negative on cancellations).
    pub quantity: i64,
    /// Invoice time, RFC 3339 (the source's local time taken as UTC).
    pub invoice_date: DateTime<Utc>,
    /// Unit price in pounds.
    pub price: f64,
    /// The customer's country.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub country: Option<Cow<'a, str>>,
}

/// An optional text field, borrowed from the input when it has no escapes: serde's own `Option`
/// of a `Cow` always copies, an `Option` of this newtype borrows as a `Cow` field does.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'de>>::deserialize(deserializer)?.map(|text| text.0))
}

/// Why an event was rejected (the dead-letter reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not JSON, or not an object with the fields and types of the schema.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A `schema_version` this build does not read.
    #[error("unsupported schema_version {0} (this build reads {SCHEMA_VERSION})")]
    UnsupportedVersion(u64),
    /// Well-formed but impossible: a blank ID, a key that is not the event's customer, ...
    #[error("invalid: {0}")]
    Invalid(String),
    /// Outside the contract's bounds ([`crate::bounds`]): too early or late, too large, too long.
    #[error("out of bounds: {0}")]
    OutOfBounds(#[from] OutOfBounds),
}

impl Rejection {
    /// Every kind, as [`Rejection::kind`] names them.
    pub const KINDS: [&'static str; 4] = [
        "malformed",
        "unsupported_version",
        "invalid",
        "out_of_bounds",
    ];

    /// The kind as a metric label and DLQ header value: one of [`Rejection::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnsupportedVersion(_) => "unsupported_version",
            Rejection::Invalid(_) => "invalid",
            Rejection::OutOfBounds(_) => "out_of_bounds",
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<serde_json::Value>,
}

impl<'a> TransactionEvent<'a> {
    /// Parses and validates one message value, with the bounds of the time it is ingested at.
    ///
    /// A valid event is parsed once; only a message that does not parse as this version's event is
    /// parsed again, for its `schema_version` alone, to tell another version from a malformed event.
    pub fn decode(bytes: &'a [u8], bounds: &Bounds) -> Result<Self, Rejection> {
        let event: TransactionEvent<'a> = match serde_json::from_slice(bytes) {
            Ok(event) => event,
            Err(e) => return Err(Self::why_not(bytes, e)),
        };
        if event.schema_version != SCHEMA_VERSION {
            return Err(Rejection::UnsupportedVersion(u64::from(
                event.schema_version,
            )));
        }
        event.validate(bounds)?;
        Ok(event)
    }

    /// Why a message that did not parse as an event is not one: another schema version, or malformed.
    fn why_not(bytes: &[u8], error: serde_json::Error) -> Rejection {
        let probe: VersionProbe = match serde_json::from_slice(bytes) {
            Ok(probe) => probe,
            Err(e) => return Rejection::Malformed(e.to_string()),
        };
        match probe.schema_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {
                Rejection::Malformed(error.to_string())
            }
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(v) => Rejection::UnsupportedVersion(v),
                None => Rejection::Malformed(format!("schema_version {n} is not a version")),
            },
            Some(other) => {
                Rejection::Malformed(format!("schema_version must be a number, not {other}"))
            }
            None => Rejection::Malformed("missing field `schema_version`".into()),
        }
    }

    /// Checks what types alone do not: the bounds, then that the ID is not blank.
    pub fn validate(&self, bounds: &Bounds) -> Result<(), Rejection> {
        bounds::length("event_id", &self.event_id, 1, bounds::MAX_EVENT_ID_BYTES)?;
        bounds.check(&self.line())?;
        if self.event_id.trim().is_empty() {
            return Err(Rejection::Invalid("blank event_id".into()));
        }
        Ok(())
    }

    /// Its time, epoch milliseconds.
    pub fn time_ms(&self) -> i64 {
        self.invoice_date.timestamp_millis()
    }

    /// The fields the bounds look at.
    pub fn line(&self) -> Line<'_> {
        Line {
            customer_id: Some(i128::from(self.customer_id)),
            invoice: &self.invoice,
            stock_code: &self.stock_code,
            description: self.description.as_deref(),
            country: self.country.as_deref(),
            quantity: self.quantity,
            price: self.price,
            time_ms: self.time_ms(),
        }
    }

    /// The JSON bytes of the event.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256);
        self.encode_into(&mut bytes);
        bytes
    }

    /// [`TransactionEvent::encode`] into `bytes` (cleared first), reusing its room: a producer
    /// encoding one event after another allocates nothing once the buffer has grown.
    pub fn encode_into(&self, bytes: &mut Vec<u8>) {
        bytes.clear();
        serde_json::to_writer(&mut *bytes, self).expect("an event always serialises");
    }

    /// The same event, borrowing nothing.
    pub fn into_owned(self) -> TransactionEvent<'static> {
        let owned = |text: Cow<'a, str>| Cow::Owned(text.into_owned());
        TransactionEvent {
            schema_version: self.schema_version,
            event_id: owned(self.event_id),
            customer_id: self.customer_id,
            invoice: owned(self.invoice),
            stock_code: owned(self.stock_code),
            description: self.description.map(owned),
            quantity: self.quantity,
            invoice_date: self.invoice_date,
            price: self.price,
            country: self.country.map(owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1, "event_id": "online_retail_II:1", "customer_id": 13085,
            "invoice": "489434", "stock_code": "85048", "description": "15CM CHRISTMAS GLASS BALL",
            "quantity": 12, "invoice_date": "2009-12-01T07:45:00Z", "price": 6.95,
            "country": "United Kingdom"
        })
    }

    fn bounds() -> Bounds {
        Bounds::on(chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap())
    }

    fn decode(v: &serde_json::Value) -> Result<TransactionEvent<'static>, Rejection> {
        TransactionEvent::decode(v.to_string().as_bytes(), &bounds())
            .map(TransactionEvent::into_owned)
    }

    #[test]
    fn text_without_escapes_is_borrowed_from_the_message_and_escaped_text_is_read_whole() {
        let plain = good().to_string().into_bytes();
        let event = TransactionEvent::decode(&plain, &bounds()).unwrap();
        for text in [
            &event.event_id,
            &event.invoice,
            &event.stock_code,
            event.description.as_ref().unwrap(),
            event.country.as_ref().unwrap(),
        ] {
            assert!(matches!(text, Cow::Borrowed(_)), "{text}");
        }
        let mut escaped = good();
        escaped["description"] = "a \"quoted\" é line".into();
        escaped["country"] = serde_json::Value::Null;
        let bytes = escaped.to_string().into_bytes();
        let event = TransactionEvent::decode(&bytes, &bounds()).unwrap();
        assert_eq!(event.description.as_deref(), Some("a \"quoted\" é line"));
        assert!(matches!(event.description, Some(Cow::Owned(_))));
        assert_eq!(event.country, None);
        let mut missing = good();
        missing.as_object_mut().unwrap().remove("description");
        assert_eq!(decode(&missing).unwrap().description, None);
        // What is encoded decodes to the same event.
        assert_eq!(
            TransactionEvent::decode(&event.encode(), &bounds()).unwrap(),
            event
        );
    }

    #[test]
    fn round_trip() {
        let event = decode(&good()).unwrap();
        assert_eq!(event.customer_id, 13085);
        assert_eq!(event.invoice_date.to_rfc3339(), "2009-12-01T07:45:00+00:00");
        assert_eq!(
            TransactionEvent::decode(&event.encode(), &bounds()).unwrap(),
            event
        );
    }

    #[test]
    fn rejections_by_kind() {
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good();
            v[field] = value;
            decode(&v).map_or_else(|e| e.kind(), |_| "ok")
        };
        let without = |field: &str| {
            let mut v = good();
            v.as_object_mut().unwrap().remove(field);
            decode(&v).unwrap_err().kind()
        };
        assert_eq!(
            TransactionEvent::decode(b"{not json", &bounds())
                .unwrap_err()
                .kind(),
            "malformed"
        );
        assert_eq!(
            TransactionEvent::decode(b"[1,2]", &bounds())
                .unwrap_err()
                .kind(),
            "malformed"
        );
        assert_eq!(with("schema_version", 2.into()), "unsupported_version");
        assert_eq!(
            with("schema_version", (1u64 << 40).into()),
            "unsupported_version"
        );
        assert_eq!(with("schema_version", (-1).into()), "malformed");
        assert_eq!(with("schema_version", "1".into()), "malformed");
        assert_eq!(without("schema_version"), "malformed");
        assert_eq!(without("event_id"), "malformed");
        assert_eq!(without("invoice_date"), "malformed");
        assert_eq!(with("quantity", "twelve".into()), "malformed");
        assert_eq!(with("quantity", 1.5.into()), "malformed");
        assert_eq!(with("customer_id", (-5).into()), "malformed");
        assert_eq!(with("invoice_date", "yesterday".into()), "malformed");
        assert_eq!(with("customer_id", 0.into()), "out_of_bounds");
        assert_eq!(with("customer_id", (1u64 << 53).into()), "out_of_bounds");
        assert_eq!(with("customer_id", ((1u64 << 53) - 1).into()), "ok");
        assert_eq!(with("event_id", " ".into()), "invalid");
        assert_eq!(with("event_id", "".into()), "out_of_bounds");
        assert_eq!(with("event_id", "e".repeat(257).into()), "out_of_bounds");
        assert_eq!(with("event_id", "e".repeat(256).into()), "ok");
        assert_eq!(with("invoice", "1".repeat(100_000).into()), "out_of_bounds");
        assert_eq!(
            with("invoice_date", "2099-01-01T00:00:00Z".into()),
            "out_of_bounds"
        );
        assert_eq!(with("invoice_date", "2011-12-10T23:59:59Z".into()), "ok");
        assert_eq!(
            with("invoice_date", "2011-12-11T00:00:01Z".into()),
            "out_of_bounds"
        );
        assert_eq!(
            with("invoice_date", "1900-01-01T00:00:00Z".into()),
            "out_of_bounds"
        );
        assert_eq!(with("quantity", (1i64 << 62).into()), "out_of_bounds");
        assert_eq!(with("quantity", 10_000_000.into()), "ok");
        assert_eq!(with("price", 1e12.into()), "out_of_bounds");
        // JSON has no NaN or infinity: a huge number does not parse as f64 into a finite value.
        assert_eq!(
            TransactionEvent::decode(
                good().to_string().replace("6.95", "1e999").as_bytes(),
                &bounds()
            )
            .unwrap_err()
            .kind(),
            "malformed"
        );
        assert_eq!(with("price", 1e300.into()), "out_of_bounds");
        // Optional fields may be absent.
        let mut v = good();
        v.as_object_mut().unwrap().remove("description");
        v.as_object_mut().unwrap().remove("country");
        assert!(decode(&v).is_ok());
    }
}
