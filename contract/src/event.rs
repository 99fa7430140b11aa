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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One invoice line of a known customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionEvent {
    /// Always [`SCHEMA_VERSION`] for this layout.
    pub schema_version: u32,
    /// Unique per source line, assigned by the producer; a redelivery carries the same ID.
    pub event_id: String,
    /// The customer (also the Kafka key).
    pub customer_id: u64,
    /// Invoice number (`C…` cancellation).
    pub invoice: String,
    /// Product code.
    pub stock_code: String,
    /// Product description.
    #[serde(default)]
    pub description: Option<String>,
    /// Units (negative on cancellations).
    pub quantity: i64,
    /// Invoice time, RFC 3339 (the source's local time taken as UTC).
    pub invoice_date: DateTime<Utc>,
    /// Unit price in pounds.
    pub price: f64,
    /// The customer's country.
    #[serde(default)]
    pub country: Option<String>,
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
    /// Well-formed but impossible: empty ID, customer 0, non-finite price, ...
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Rejection {
    /// Every kind, as [`Rejection::kind`] names them.
    pub const KINDS: [&'static str; 3] = ["malformed", "unsupported_version", "invalid"];

    /// The kind as a metric label and DLQ header value: one of [`Rejection::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnsupportedVersion(_) => "unsupported_version",
            Rejection::Invalid(_) => "invalid",
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<serde_json::Value>,
}

impl TransactionEvent {
    /// Parses and validates one message value.
    pub fn decode(bytes: &[u8]) -> Result<Self, Rejection> {
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        match probe.schema_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {
            }
            Some(serde_json::Value::Number(n)) => {
                return Err(match n.as_u64() {
                    Some(v) => Rejection::UnsupportedVersion(v),
                    None => Rejection::Malformed(format!("schema_version {n} is not a version")),
                });
            }
            Some(other) => {
                return Err(Rejection::Malformed(format!(
                    "schema_version must be a number, not {other}"
                )));
            }
            None => {
                return Err(Rejection::Malformed(
                    "missing field `schema_version`".into(),
                ));
            }
        }
        let event: TransactionEvent =
            serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        event.validate()?;
        Ok(event)
    }

    /// Checks what types alone do not.
    pub fn validate(&self) -> Result<(), Rejection> {
        let invalid = |reason: &str| Err(Rejection::Invalid(reason.to_string()));
        if self.event_id.trim().is_empty() {
            return invalid("empty event_id");
        }
        if self.customer_id == 0 {
            return invalid("customer_id 0 (IDs are positive)");
        }
        if !self.price.is_finite() {
            return invalid("price is not a finite number");
        }
        if self.price.abs() > 1e12 {
            return invalid("price out of range");
        }
        Ok(())
    }

    /// The JSON bytes of the event.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serialises")
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

    fn decode(v: &serde_json::Value) -> Result<TransactionEvent, Rejection> {
        TransactionEvent::decode(v.to_string().as_bytes())
    }

    #[test]
    fn round_trip() {
        let event = decode(&good()).unwrap();
        assert_eq!(event.customer_id, 13085);
        assert_eq!(event.invoice_date.to_rfc3339(), "2009-12-01T07:45:00+00:00");
        assert_eq!(TransactionEvent::decode(&event.encode()).unwrap(), event);
    }

    #[test]
    fn rejections_by_kind() {
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good();
            v[field] = value;
            decode(&v).unwrap_err().kind()
        };
        let without = |field: &str| {
            let mut v = good();
            v.as_object_mut().unwrap().remove(field);
            decode(&v).unwrap_err().kind()
        };
        assert_eq!(
            TransactionEvent::decode(b"{not json").unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(
            TransactionEvent::decode(b"[1,2]").unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(with("schema_version", 2.into()), "unsupported_version");
        assert_eq!(with("schema_version", "1".into()), "malformed");
        assert_eq!(without("schema_version"), "malformed");
        assert_eq!(without("event_id"), "malformed");
        assert_eq!(without("invoice_date"), "malformed");
        assert_eq!(with("quantity", "twelve".into()), "malformed");
        assert_eq!(with("quantity", 1.5.into()), "malformed");
        assert_eq!(with("customer_id", (-5).into()), "malformed");
        assert_eq!(with("invoice_date", "yesterday".into()), "malformed");
        assert_eq!(with("customer_id", 0.into()), "invalid");
        assert_eq!(with("event_id", " ".into()), "invalid");
        // JSON has no NaN or infinity: a huge number does not parse as f64 into a finite value.
        assert_eq!(
            TransactionEvent::decode(good().to_string().replace("6.95", "1e999").as_bytes())
                .unwrap_err()
                .kind(),
            "malformed"
        );
        assert_eq!(with("price", 1e300.into()), "invalid");
        // Optional fields may be absent.
        let mut v = good();
        v.as_object_mut().unwrap().remove("description");
        v.as_object_mut().unwrap().remove("country");
        assert!(decode(&v).is_ok());
    }
}
