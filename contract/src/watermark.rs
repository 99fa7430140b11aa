//! The event-time watermark: how far the data has got, by a rule a few outliers cannot move.
//!
//! The watermark is what `as_of` follows, so it must not be the maximum of every purchase ever applied
//! (one event dated years ahead would then set every customer's CLV to 0). It is the earlier of two
//! times:
//! - **the partitions' minimum**: the earliest over partitions of each partition's latest purchase, as
//!   stream processors do, so that a partition that is behind holds it back and an outlier on one
//!   partition moves nothing;
//! - **the quorum time**: the latest purchase time that [`QUORUM`] distinct customers have reached
//!   (the `QUORUM`-th latest of the customers' latest purchase times), so that even on a topic of one
//!   partition, moving it takes `QUORUM` customers.
//!
//! A store with fewer than `QUORUM` customers with purchases (a first test, a new shop) takes the
//! latest purchase of all as its quorum time, so that small data still has an `as_of`.
//!
//! Each partition keeps only its `QUORUM` latest customers (the global `QUORUM` latest are among
//! them): folding one purchase in costs O(`QUORUM`) whatever the history, and the result does not
//! depend on the order purchases arrive in (it is a function of each customer's latest purchase
//! time, which only grows).

use serde::{Deserialize, Serialize};

/// How many distinct customers must have reached a time before a partition's mark moves to it.
pub const QUORUM: usize = 10;

/// One partition's latest customers: at most [`QUORUM`] (customer, latest purchase time) pairs, the
/// customers with the latest purchases, latest first (equal times: lower customer ID first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMark {
    latest: Vec<(u64, i64)>,
}

impl PartitionMark {
    /// Folds in a purchase of `customer` at `time_ms`.
    pub fn observe(&mut self, customer: u64, time_ms: i64) {
        if let Some(i) = self.latest.iter().position(|(c, _)| *c == customer) {
            if self.latest[i].1 >= time_ms {
                return;
            }
            self.latest.remove(i);
        } else if self.latest.len() >= QUORUM
            && self
                .latest
                .last()
                .is_some_and(|last| before(*last, (customer, time_ms)))
        {
            return;
        }
        let at = self
            .latest
            .partition_point(|entry| before(*entry, (customer, time_ms)));
        self.latest.insert(at, (customer, time_ms));
        self.latest.truncate(QUORUM);
    }

    /// Its latest customers, latest first.
    pub fn customers(&self) -> &[(u64, i64)] {
        &self.latest
    }

    /// Its latest purchase time of all.
    pub fn latest(&self) -> Option<i64> {
        self.latest.first().map(|(_, t)| *t)
    }
}

/// The order the latest customers are kept in: later purchase first, then lower customer ID (a total
/// order, so which customers are kept does not depend on arrival order even with equal times).
fn before(a: (u64, i64), b: (u64, i64)) -> bool {
    a.1 > b.1 || (a.1 == b.1 && a.0 < b.0)
}

/// The watermark of a store whose partitions have these marks: the earlier of the partitions'
/// minimum and the quorum time (module docs); `None` without purchases.
pub fn watermark<'a>(marks: impl IntoIterator<Item = &'a PartitionMark>) -> Option<i64> {
    let mut partitions_min: Option<i64> = None;
    let mut times: Vec<i64> = Vec::new();
    for mark in marks {
        let Some(latest) = mark.latest() else {
            continue;
        };
        partitions_min = Some(partitions_min.map_or(latest, |m| m.min(latest)));
        times.extend(mark.latest.iter().map(|(_, t)| *t));
    }
    times.sort_unstable_by(|a, b| b.cmp(a));
    let quorum = if times.len() >= QUORUM {
        times[QUORUM - 1]
    } else {
        *times.first()?
    };
    partitions_min.map(|m| m.min(quorum))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn spread(first_customer: u64, customers: u64, days: i64) -> PartitionMark {
        let mut mark = PartitionMark::default();
        for c in 0..customers {
            mark.observe(first_customer + c, 1000 * DAY + (c as i64 % days) * DAY);
        }
        mark
    }

    #[test]
    fn one_outlier_moves_nothing_on_one_partition_or_many() {
        let mut a = spread(0, 100, 7);
        let b = spread(1000, 100, 5);
        let before = watermark([&a, &b]);
        // b's latest (day 4) is earlier than the quorum time (day 6).
        assert_eq!(before, Some(1004 * DAY));
        a.observe(5, 20_000 * DAY);
        assert_eq!(a.latest(), Some(20_000 * DAY));
        assert_eq!(watermark([&a, &b]), before);
        // One partition alone: the quorum holds it.
        let mut alone = spread(0, 100, 7);
        let before = watermark([&alone]);
        assert_eq!(before, Some(1006 * DAY));
        for c in 200..200 + QUORUM as u64 - 1 {
            alone.observe(c, 20_000 * DAY);
            assert_eq!(watermark([&alone]), before, "{} outliers", c - 199);
        }
        // A quorum of customers moves it.
        alone.observe(999, 20_000 * DAY);
        assert_eq!(watermark([&alone]), Some(20_000 * DAY));
        // The same customer again does not count twice.
        let mut one = spread(0, 100, 7);
        for _ in 0..QUORUM {
            one.observe(7, 30_000 * DAY);
        }
        assert_eq!(watermark([&one]), Some(1006 * DAY));
    }

    #[test]
    fn a_partition_that_is_behind_holds_it_back() {
        let ahead = spread(0, 50, 30);
        let behind = spread(1000, 50, 3);
        assert_eq!(watermark([&ahead, &behind]), Some(1002 * DAY));
    }

    #[test]
    fn the_order_of_purchases_does_not_matter() {
        let purchases: Vec<(u64, i64)> = (0..200u64)
            .map(|i| (i % 23, ((i * 7919) % 211) as i64 * DAY))
            .collect();
        let mut forward = PartitionMark::default();
        for (c, t) in &purchases {
            forward.observe(*c, *t);
        }
        let mut backward = PartitionMark::default();
        for (c, t) in purchases.iter().rev() {
            backward.observe(*c, *t);
        }
        assert_eq!(forward, backward);
        // Against the definition: the QUORUM-th latest of the customers' latest times.
        let mut latest = std::collections::BTreeMap::<u64, i64>::new();
        for (c, t) in &purchases {
            let e = latest.entry(*c).or_insert(*t);
            *e = (*e).max(*t);
        }
        let mut times: Vec<i64> = latest.values().copied().collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(watermark([&forward]), Some(times[QUORUM - 1]));
        assert_eq!(forward.latest(), Some(times[0]));
        assert_eq!(forward.customers().len(), QUORUM);
    }

    #[test]
    fn small_stores_fall_back_to_the_latest_purchase() {
        let mut a = PartitionMark::default();
        a.observe(1, 3 * DAY);
        a.observe(2, 9 * DAY);
        assert_eq!(watermark([&a]), Some(9 * DAY));
        assert_eq!(watermark(std::iter::empty()), None);
        assert_eq!(watermark([&PartitionMark::default()]), None);
    }
}
