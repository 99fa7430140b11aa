//! The repartition step: a valid event that arrived on another partition than its customer's (a
//! producer with another partitioner, e.g. librdkafka's default `consistent_random`) is produced
//! again, unchanged (key, value with its event ID, headers), to its customer's partition of the same
//! topic, with where it came from in headers. Its source offset is written with the batch only after
//! the broker acknowledged the copy (as for a dead letter), so a crash in between forwards it again,
//! and its customer's owner applies it once by its event ID however many copies arrive.

use rdkafka::message::Headers;

use super::*;

/// The header that says where a forwarded event was first read (`partition/offset`).
pub const REPARTITIONED_FROM: &str = "clv.repartitioned.from";

impl Ingest {
    /// Forwards `message` to its customer's `partition`.
    pub(super) fn repartition(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        partition: i32,
    ) -> Result<()> {
        let from = format!("{}/{}", message.partition(), message.offset());
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                if header.key != REPARTITIONED_FROM {
                    headers = headers.insert(header);
                }
            }
        }
        headers = headers.insert(Header {
            key: REPARTITIONED_FROM,
            value: Some(from.as_str()),
        });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.options.topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.produce(record)
            .map_err(|e| IngestError::kafka("forwarding an event to its partition")(e))
    }

    /// Produces `record` (a dead letter, a forwarded event), waiting while the producer's queue is
    /// full; any other error is given back.
    pub(super) fn produce(
        &self,
        mut record: BaseRecord<'_, [u8], [u8]>,
    ) -> std::result::Result<(), KafkaError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((other, _)) => return Err(other),
            }
        }
    }

    /// Says (at most every 10 s) how many events arrived on another partition than their
    /// customer's and were forwarded there: a producer does not use the contract's partitioner.
    pub(super) fn repartitioned(&mut self, n: u64) {
        let (count, last) = &mut self.repartition_log;
        *count += n;
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::info!(
                forwarded = *count,
                "events on another partition than their customer's (a producer with another \
                 partitioner than murmur2 of the key) forwarded to their customer's partition"
            );
            *count = 0;
            *last = Some(Instant::now());
        }
    }
}
