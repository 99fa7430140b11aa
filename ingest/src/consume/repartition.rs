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
}
