//! Producing single events by hand (`clv send`): one transaction, keyed by its customer like every
//! producer must key it, delivered before this returns.

use std::time::Duration;

use contract::bounds::Bounds;
use contract::event::TransactionEvent;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::broker::BrokerConfig;
use crate::{IngestError, Result};

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition (chosen by the key, the customer ID).
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// Produces `event` to `topic`, keyed by its customer ID, and waits until the broker has it.
pub fn send(broker: &BrokerConfig, topic: &str, event: &TransactionEvent<'_>) -> Result<Delivered> {
    event
        .validate(&Bounds::now())
        .map_err(|e| IngestError::Invalid(e.to_string()))?;
    let producer: FutureProducer = broker
        .client_config(&[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "30000"),
            crate::broker::PARTITIONER,
        ])
        .create()
        .map_err(IngestError::kafka("creating the producer"))?;
    let key = contract::partition::key(event.customer_id);
    let payload = event.encode();
    let record = FutureRecord::to(topic)
        .key(key.as_bytes())
        .payload(&payload);
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| IngestError::kafka(format!("producing to {topic}"))(e))?;
    let outcome = futures_executor::block_on(delivery).map_err(|_| IngestError::Delivery {
        failed: 1,
        first: "the producer went away before the delivery report".into(),
    })?;
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10));
    match outcome {
        Ok(delivery) => Ok(Delivered {
            partition: delivery.partition,
            offset: delivery.offset,
        }),
        Err((e, _)) => Err(IngestError::kafka(format!("delivering to {topic}"))(e)),
    }
}
