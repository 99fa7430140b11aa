//! Dead letters: a rejected message, cut to what the broker accepts, with the reason in a header.

use super::*;

impl Ingest {
    pub(super) fn dead_letter(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        rejection: &Rejection,
    ) -> Result<()> {
        let reason = rejection.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let key = message.key();
        let payload = message.payload();
        // A message the broker took may still be too large to produce again with the headers (a
        // poison pill that would stop ingest at every restart): its key and value are cut to what
        // a dead letter may carry, and the original sizes go into headers. If the broker refuses
        // even that, the dead letter carries the headers alone.
        let original = format!(
            "key {} bytes, value {} bytes",
            key.map_or(0, <[u8]>::len),
            payload.map_or(0, <[u8]>::len)
        );
        for (key_cap, payload_cap) in [(DEAD_LETTER_MAX_KEY, DEAD_LETTER_MAX_PAYLOAD), (0, 0)] {
            let (key, payload) = (cut(key, key_cap), cut(payload, payload_cap));
            let truncated = key.map(<[u8]>::len) != message.key().map(<[u8]>::len)
                || payload.map(<[u8]>::len) != message.payload().map(<[u8]>::len);
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "clv.dlq.reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "clv.dlq.kind",
                    value: Some(rejection.kind()),
                })
                .insert(Header {
                    key: "clv.source.partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "clv.source.offset",
                    value: Some(offset.as_str()),
                });
            if truncated {
                headers = headers.insert(Header {
                    key: "clv.dlq.truncated",
                    value: Some(original.as_str()),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.options.dead_letter_topic).headers(headers);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            match self.produce(record) {
                Ok(()) => return Ok(()),
                // Again, with the headers alone.
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))
                    if key_cap > 0 => {}
                Err(e) => return Err(IngestError::kafka("producing a dead letter")(e)),
            }
        }
        unreachable!("the last attempt returns")
    }
}
