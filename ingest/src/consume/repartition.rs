//! The repartition step: a valid event that arrived on another partition than its customer's (a
//! producer with another partitioner, e.g. librdkafka's default `consistent_random`) is produced
//! again, unchanged (key, value with its event ID, headers), to its customer's partition of the same
//! topic, with where it came from in headers. Its source offset is written with the batch only after
//! the broker acknowledged the copy (as for a dead letter), so a crash in between forwards it again,
//! and its customer's owner applies it once by its event ID however many copies arrive.

use rdkafka::TopicPartitionList;
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

    /// Reads from the group the marks ([`crate::forward_mark`]) that the misrouted events
    /// `(partition, offset)` of a batch need, in one round trip (none when the marks held cover
    /// them). Without an answer, no mark: those events are forwarded.
    pub(super) fn read_forward_marks(&self, misrouted: impl IntoIterator<Item = (i32, i64)>) {
        let mut misrouted = misrouted.into_iter().peekable();
        if misrouted.peek().is_none() {
            // The usual batch (a producer with the contract's partitioner): nothing to look up.
            return;
        }
        let now = Instant::now();
        let owned = self.instance.assigned_partitions();
        let standby = self.standby.as_ref();
        let mut marks = self.forward_marks.borrow_mut();
        marks.retain(|p| owned.contains(&p) || standby.is_some_and(|s| s.follows(p)));
        let partitions = marks.to_read(misrouted, now);
        if partitions.is_empty() {
            return;
        }
        let mut asked = TopicPartitionList::new();
        for p in &partitions {
            asked.add_partition(&self.options.topic, *p);
        }
        let committed = match self.consumer.committed_offsets(asked, self.call_timeout()) {
            Ok(committed) => committed_marks(&committed),
            Err(e) => {
                self.broker_error(READING_MARKS, &e.to_string());
                BTreeMap::new()
            }
        };
        for p in partitions {
            marks.read(p, committed.get(&p).copied(), now);
        }
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

/// The marks in a list of committed offsets, by partition: each offset committed with clv's
/// metadata ([`crate::forward_mark::mark_of`]). The metadata is read as bytes: the safe binding's
/// `metadata()` panics on bytes that are not UTF-8, which any client may commit.
#[allow(unsafe_code)]
fn committed_marks(committed: &TopicPartitionList) -> BTreeMap<i32, i64> {
    let mut marks = BTreeMap::new();
    // SAFETY: `committed` owns the list for the whole function; `cnt` of its `elems` are
    // initialised entries, and each entry's `metadata` is null or points at `metadata_size` bytes
    // the list owns. Nothing here writes to the list or keeps a pointer past the loop.
    unsafe {
        let list = &*committed.ptr();
        if list.elems.is_null() {
            return marks;
        }
        let count = usize::try_from(list.cnt).unwrap_or(0);
        for element in std::slice::from_raw_parts(list.elems, count) {
            let metadata = match element.metadata.is_null() {
                true => &[][..],
                false => {
                    std::slice::from_raw_parts(element.metadata.cast::<u8>(), element.metadata_size)
                }
            };
            let mark = std::str::from_utf8(metadata)
                .ok()
                .and_then(|metadata| crate::forward_mark::mark_of(Some(element.offset), metadata));
            if let Some(mark) = mark {
                marks.insert(element.partition, mark);
            }
        }
    }
    marks
}
