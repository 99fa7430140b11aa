//! Replay: the dataset into the `transactions` topic, one event per line with a customer ID, keyed by
//! customer ID.
//!
//! Each line of the canonical order (see `dataset::normalised`) becomes one event whose ID derives from
//! its canonical line number, so that replaying the same data again — from the xlsx, a CSV or the
//! normalised Parquet, whole or by date ranges — sends the same IDs, and the store applies each line
//! once. The producer is idempotent. `speed` paces events by event time; `from`/`to` replay a range
//! (backfill). With a lag bound, replay pauses while the ingest group's lag would exceed it, so that a
//! broker that keeps little (the embedded one) never drops what was not consumed yet.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use contract::event::{SCHEMA_VERSION, TransactionEvent};
use dataset::Line;
use dataset::stream::NumberedLines;
use indicatif::ProgressBar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::delivery::{Deliveries, DeliveryCounter};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::BrokerConfig;
use crate::{IngestError, Result};

/// The event ID of canonical line `line_number` (1-based).
pub fn event_id(line_number: u64) -> String {
    let mut id = String::new();
    write_event_id(&mut id, line_number);
    id
}

/// [`event_id`] into `id` (cleared first), reusing its room.
pub fn write_event_id(id: &mut String, line_number: u64) {
    use std::fmt::Write as _;
    id.clear();
    let _ = write!(id, "line:{line_number}");
}

/// The event of one line, or `None` for a line without a customer ID (those are counted, not sent).
/// Its text borrows the line's.
pub fn event_for_line(line_number: u64, line: &Line) -> Option<TransactionEvent<'_>> {
    event_with_id(event_id(line_number), line)
}

/// The event of `line` under the ID `id` (what [`write_event_id`] wrote), borrowing both.
fn event_with_id<'a>(
    id: impl Into<std::borrow::Cow<'a, str>>,
    line: &'a Line,
) -> Option<TransactionEvent<'a>> {
    Some(TransactionEvent {
        schema_version: SCHEMA_VERSION,
        event_id: id.into(),
        customer_id: line.customer_id?,
        invoice: line.invoice.as_str().into(),
        stock_code: line.stock_code.as_str().into(),
        description: line.description.as_deref().map(Into::into),
        quantity: line.quantity,
        invoice_date: line.invoice_date.and_utc(),
        price: line.price,
        country: Some(line.country.as_str().into()),
    })
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The topic to produce to.
    pub topic: String,
    /// `Some(n)`: n× real time by event time; `None`: as fast as possible.
    pub speed: Option<f64>,
    /// Only lines at or after this time.
    pub from: Option<NaiveDateTime>,
    /// Only lines before this time.
    pub to: Option<NaiveDateTime>,
    /// Pause while the ingest group's lag exceeds this many messages (`None`: never pause).
    pub max_lag: Option<i64>,
    /// The ingest consumer group whose lag bounds the replay.
    pub group: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines in the input (or in the range).
    pub lines: u64,
    /// Events produced and acknowledged by the broker.
    pub sent: u64,
    /// Lines without a customer ID, not sent.
    pub without_customer: u64,
    /// Lines outside `from`/`to`.
    pub out_of_range: u64,
    /// Times replay waited for the consumer to catch up.
    pub backpressure_waits: u64,
}

/// Produces `lines` (canonical line number, line) into Kafka as they are read: memory does not grow
/// with the input (`dataset::stream` reads files that way), and a line costs clv no allocation of
/// its own (each is read over the last one, its event's ID and JSON written into reused buffers;
/// rust-rdkafka's `send` still allocates the topic's C string per message). A line that cannot be
/// read stops the replay with its error, after what was produced before it is delivered.
pub fn replay(
    broker: &BrokerConfig,
    mut lines: NumberedLines,
    options: &ReplayOptions,
    progress: &ProgressBar,
) -> Result<ReplaySummary> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<DeliveryCounter> = broker
        .client_config(&[
            ("enable.idempotence", "true"),
            crate::broker::PARTITIONER,
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            // A message waits this long for the broker: replay rides out an outage this long.
            (
                "message.timeout.ms",
                &OUTAGE_TOLERANCE.as_millis().to_string(),
            ),
        ])
        .create_with_context(DeliveryCounter(deliveries.clone()))
        .map_err(IngestError::kafka("creating the producer"))?;
    let lag_probe = match options.max_lag {
        Some(_) => Some(LagProbe::new(broker, &options.topic, &options.group)?),
        None => None,
    };
    let mut summary = ReplaySummary::default();
    let in_range = |t: NaiveDateTime| {
        options.from.is_none_or(|from| t >= from) && options.to.is_none_or(|to| t < to)
    };
    let started = Instant::now();
    let mut first_event_time: Option<NaiveDateTime> = None;
    // Nothing measured yet: measure before the first message.
    let mut lag_bound = i64::MAX;
    let mut read = 0u64;
    // The event's ID and JSON are written into these, each line over the last one's.
    let (mut id, mut payload) = (String::new(), Vec::with_capacity(512));
    // Each line is read over the one before it.
    let mut line = Line::default();
    while let Some(item) = lines.next_into(&mut line) {
        let line_number = match item {
            Ok(number) => number,
            Err(e) => {
                let _ = producer.flush(OUTAGE_TOLERANCE + Duration::from_secs(30));
                return Err(e.into());
            }
        };
        let line = &line;
        read += 1;
        if read.is_multiple_of(PROGRESS_EVERY) {
            progress.inc(PROGRESS_EVERY);
        }
        if !in_range(line.invoice_date) {
            summary.out_of_range += 1;
            continue;
        }
        summary.lines += 1;
        write_event_id(&mut id, line_number);
        let Some(event) = event_with_id(id.as_str(), line) else {
            summary.without_customer += 1;
            continue;
        };
        if let Some(speed) = options.speed.filter(|s| *s > 0.0) {
            let t0 = *first_event_time.get_or_insert(line.invoice_date);
            let due = (line.invoice_date - t0).num_milliseconds() as f64 / speed;
            let wait = due / 1000.0 - started.elapsed().as_secs_f64();
            if wait > 0.0 {
                // Deliveries that fail are reported at the end.
                let _ = producer.flush(Duration::from_secs(30));
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
        }
        // The lag is at most the lag last measured plus what was sent since (the consumer only
        // takes it down): measured again only when that bound reaches the limit, so a consumer that
        // keeps up costs one measurement (a few broker round trips) per `max_lag` messages.
        if let (Some(probe), Some(max_lag)) = (&lag_probe, options.max_lag)
            && lag_bound >= max_lag
        {
            let mut stall = Stall::new(Instant::now());
            loop {
                // What the topic holds beyond the group's offsets, and what the producer has yet to
                // deliver there (without it, a fast replay measures a lag of nearly nothing while
                // its messages wait in the producer's queue, and never waits).
                let lag = probe.lag_waiting_for_the_broker(&producer)?
                    + i64::from(producer.in_flight_count().max(0));
                lag_bound = lag;
                if lag < max_lag {
                    break;
                }
                if let Some(waited) = stall.observe(lag, Instant::now()) {
                    tracing::warn!(
                        "the lag of ingest group {} on {} has not fallen for {:.0} s ({lag} messages; replay waits until it is under {max_lag}): is `clv ingest` running?",
                        options.group,
                        options.topic,
                        waited.as_secs_f64(),
                    );
                }
                summary.backpressure_waits += 1;
                progress.set_message("waiting for ingest to catch up");
                producer.poll(Duration::from_millis(5));
            }
            progress.set_message("");
        }
        lag_bound = lag_bound.saturating_add(1);
        let key = contract::partition::key(event.customer_id);
        event.encode_into(&mut payload);
        let mut record = BaseRecord::to(&options.topic)
            .key(key.as_bytes())
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(IngestError::kafka("producing")(error)),
            }
        }
        summary.sent += 1;
        // Serves delivery reports; each poll reads the clock, so not after every message.
        if summary.sent.is_multiple_of(POLL_EVERY) {
            producer.poll(Duration::ZERO);
        }
    }
    progress.inc(read % PROGRESS_EVERY);
    // Every message is delivered or has failed within its timeout (a failure is reported below).
    let _ = producer.flush(OUTAGE_TOLERANCE + Duration::from_secs(30));
    deliveries.check()?;
    summary.sent = deliveries.acked.load(Ordering::Relaxed);
    Ok(summary)
}

/// Lines between two updates of the progress bar.
const PROGRESS_EVERY: u64 = 4096;

/// How long replay waits on a lag that does not fall before it says so (and again each time as long).
pub(crate) const STALL_WARNING: Duration = Duration::from_secs(10);

/// A wait on the ingest group's lag: whether it has stopped falling for [`STALL_WARNING`].
#[derive(Debug, Clone)]
pub(crate) struct Stall {
    /// The lowest lag seen, and when it was first seen.
    lowest: Option<(i64, Instant)>,
    /// When the wait began, or the last warning was due.
    since: Instant,
}

impl Stall {
    /// A wait beginning at `now`.
    pub fn new(now: Instant) -> Self {
        Stall {
            lowest: None,
            since: now,
        }
    }

    /// The lag measured at `now`: how long it has not fallen, when that makes another
    /// [`STALL_WARNING`] since it last fell or since the last warning (else `None`).
    pub fn observe(&mut self, lag: i64, now: Instant) -> Option<Duration> {
        match self.lowest {
            Some((lowest, _)) if lag >= lowest => {}
            _ => {
                self.lowest = Some((lag, now));
                self.since = now;
                return None;
            }
        }
        if now.saturating_duration_since(self.since) < STALL_WARNING {
            return None;
        }
        self.since = now;
        self.lowest
            .map(|(_, fell)| now.saturating_duration_since(fell))
    }
}

/// Messages between two polls of the producer for delivery reports (its queue holds 100,000).
const POLL_EVERY: u64 = 1024;

/// How long replay waits for an unreachable broker (producing, measuring the lag) before it fails.
pub const OUTAGE_TOLERANCE: Duration = Duration::from_secs(300);

/// Measures the ingest group's lag: high watermark − committed offset, summed over partitions.
pub struct LagProbe {
    consumer: BaseConsumer,
    topic: String,
}

impl LagProbe {
    /// A probe for `group` on `topic`.
    pub fn new(broker: &BrokerConfig, topic: &str, group: &str) -> Result<Self> {
        let consumer: BaseConsumer = broker
            .client_config(&[])
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(IngestError::kafka("creating the lag probe"))?;
        Ok(LagProbe {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The lag, retrying while the broker cannot be reached (logged), for up to [`OUTAGE_TOLERANCE`];
    /// `producer` is served meanwhile.
    fn lag_waiting_for_the_broker<C: rdkafka::producer::ProducerContext>(
        &self,
        producer: &BaseProducer<C>,
    ) -> Result<i64> {
        let started = Instant::now();
        loop {
            match self.lag() {
                Ok(lag) => {
                    if started.elapsed() > Duration::from_secs(1) {
                        tracing::warn!(
                            "the broker is back after {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(lag);
                }
                Err(e) if started.elapsed() < OUTAGE_TOLERANCE => {
                    tracing::warn!("broker unreachable, retrying: {e}");
                    producer.poll(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The current lag in messages.
    pub fn lag(&self) -> Result<i64> {
        let timeout = Duration::from_secs(10);
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(IngestError::kafka("reading topic metadata"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, timeout)
            .map_err(IngestError::kafka("reading committed offsets"))?;
        let mut lag = 0;
        for p in partitions {
            let (_low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, timeout)
                .map_err(IngestError::kafka("reading watermarks"))?;
            // Nothing committed yet counts from the start: replay must not run ahead of an ingest that
            // has not started (the embedded broker would drop what nobody read).
            let done = match committed.find_partition(&self.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };

            lag += (high - done).max(0);
        }
        Ok(lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lag_that_stops_falling_is_reported_every_stall_warning() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut stall = Stall::new(t0);
        assert_eq!(stall.observe(100, at(0)), None);
        assert_eq!(stall.observe(100, at(9)), None);
        assert_eq!(stall.observe(100, at(10)), Some(Duration::from_secs(10)));
        assert_eq!(stall.observe(101, at(15)), None);
        assert_eq!(stall.observe(100, at(20)), Some(Duration::from_secs(20)));
        // It falls: the count starts again.
        assert_eq!(stall.observe(40, at(21)), None);
        assert_eq!(stall.observe(40, at(30)), None);
        assert_eq!(stall.observe(40, at(31)), Some(Duration::from_secs(10)));
        // Falling slowly is progress: never reported.
        for s in 32..70 {
            assert_eq!(stall.observe(40 - (s as i64 - 31), at(s)), None);
        }
    }
}
