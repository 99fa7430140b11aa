//! Which misrouted events were forwarded already: the group's committed offset of a partition, when
//! clv committed it, is a mark below which every misrouted event of that partition was forwarded to
//! its customer's partition (ingest writes an offset only after the broker acknowledged the copies
//! of the events before it, and commits to the group only offsets its store holds).
//!
//! A member that reads a partition again below that mark (a restore from the topic, a standby copy
//! behind its owner) need not forward those events a second time: without the mark, each restore of
//! a partition produced a copy of every misrouted event in it again (the destination applies an
//! event once by its ID, so nothing was wrong, but the topic grew by the misrouted share of the
//! partition at each failover). An offset committed by anything else (an operator's reset, another
//! tool) carries no mark and is not believed: every misrouted event above the store's position is
//! then forwarded, as before. Pure: no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The metadata clv commits with a partition's offset: the offset is a mark (module docs).
pub const FORWARDED_BELOW: &str = "clv:misrouted-forwarded-below";

/// How long a mark read from the group is used before it is read again (while misrouted events
/// at or above it keep arriving): a standby copy's partition's owner moves it on.
pub const MARK_READ_EVERY: Duration = Duration::from_secs(10);

/// The mark a committed `offset` with `metadata` gives: the offset when clv committed it.
pub fn mark_of(offset: Option<i64>, metadata: &str) -> Option<i64> {
    match (offset, metadata == FORWARDED_BELOW) {
        (Some(offset), true) if offset >= 0 => Some(offset),
        _ => None,
    }
}

/// The marks read from the group, by partition, with when each was read.
#[derive(Debug, Clone, Default)]
pub struct ForwardMarks {
    marks: BTreeMap<i32, (Option<i64>, Instant)>,
}

impl ForwardMarks {
    /// No mark read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Of the misrouted events `(partition, offset)` read, the partitions whose mark is to be read
    /// from the group at `now`: never read, or read [`MARK_READ_EVERY`] ago and an event at or
    /// above it (one the mark does not cover yet). Sorted, each once.
    pub fn to_read(
        &self,
        misrouted: impl IntoIterator<Item = (i32, i64)>,
        now: Instant,
    ) -> Vec<i32> {
        let mut partitions: Vec<i32> = misrouted
            .into_iter()
            .filter(|(partition, offset)| match self.marks.get(partition) {
                None => true,
                Some((mark, read)) => {
                    now.saturating_duration_since(*read) >= MARK_READ_EVERY
                        && mark.is_none_or(|mark| *offset >= mark)
                }
            })
            .map(|(partition, _)| partition)
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        partitions
    }

    /// The mark of `partition` as read at `now` (`None`: no mark, or the group could not be asked).
    pub fn read(&mut self, partition: i32, mark: Option<i64>, now: Instant) {
        self.marks.insert(partition, (mark, now));
    }

    /// Whether the misrouted event at `offset` of `partition` was forwarded already.
    pub fn forwarded_already(&self, partition: i32, offset: i64) -> bool {
        self.marks
            .get(&partition)
            .and_then(|(mark, _)| *mark)
            .is_some_and(|mark| offset < mark)
    }

    /// Forgets the marks of the partitions no longer `followed` (read again when they come back).
    pub fn retain(&mut self, followed: impl Fn(i32) -> bool) {
        self.marks.retain(|partition, _| followed(*partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_offset_clv_committed_is_a_mark() {
        assert_eq!(mark_of(Some(120), FORWARDED_BELOW), Some(120));
        assert_eq!(mark_of(Some(120), ""), None, "an operator's reset");
        assert_eq!(mark_of(Some(120), "something else"), None);
        assert_eq!(mark_of(None, FORWARDED_BELOW), None, "nothing committed");
        assert_eq!(mark_of(Some(-1001), FORWARDED_BELOW), None);
    }

    #[test]
    fn events_below_the_mark_were_forwarded_and_the_rest_are_not() {
        let t0 = Instant::now();
        let mut marks = ForwardMarks::new();
        assert!(!marks.forwarded_already(0, 5), "no mark read: forward");
        assert_eq!(marks.to_read([(0, 5), (2, 9), (0, 6)], t0), vec![0, 2]);
        marks.read(0, Some(100), t0);
        marks.read(2, None, t0);
        assert!(marks.forwarded_already(0, 99));
        assert!(!marks.forwarded_already(0, 100));
        assert!(
            !marks.forwarded_already(2, 0),
            "no mark in the group: forward"
        );
        assert!(!marks.forwarded_already(1, 0), "another partition");
        // Read a moment ago: not asked again, whatever arrives.
        assert!(
            marks
                .to_read([(0, 500), (2, 1)], t0 + Duration::from_secs(1))
                .is_empty()
        );
        // Past the interval: asked again only for events the mark does not cover.
        let later = t0 + MARK_READ_EVERY;
        assert!(marks.to_read([(0, 50)], later).is_empty(), "covered");
        assert_eq!(marks.to_read([(0, 100), (2, 1)], later), vec![0, 2]);
        marks.retain(|p| p == 2);
        assert!(!marks.forwarded_already(0, 99), "forgotten once revoked");
        assert_eq!(marks.to_read([(0, 1)], later), vec![0]);
    }
}
