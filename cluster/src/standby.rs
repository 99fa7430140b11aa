//! Warm standby copies: which partitions an instance keeps folding into its store without serving
//! them, so that it can serve them at once when the group gives them to it.
//!
//! Kafka Streams' assignor places the standbys and then prefers them when it moves a partition.
//! librdkafka has no pluggable assignor, so here the standbys follow the assignment instead: the
//! group's range assignor is deterministic (members sorted by their static instance ID, each given
//! a contiguous run of partitions, the first `count % members` one more), so every instance can
//! compute from the membership view which partitions it would be given if up to `replicas` of the
//! other members left, and keep exactly those warm. A SIGKILLed member's partitions then go to
//! instances that already hold them up to a moment ago.
//!
//! A partition stays a standby for [`Standbys::linger`] after it drops out of that set (a member's
//! record expires a few seconds before the group notices it died, and a rebalance revokes every
//! partition for a moment): the copy is not thrown away while the group is still moving.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The most members whose departure a standby set covers at once (the number of member subsets
/// looked at grows with it).
pub const MAX_REPLICAS: usize = 3;

/// The partitions the range assignor gives each of `members` (by ID) over a topic of `count`
/// partitions: sorted by ID, each a contiguous run, the first `count % members.len()` one more.
pub fn range_assignment<'a>(
    members: &BTreeSet<&'a str>,
    count: u32,
) -> BTreeMap<&'a str, std::ops::Range<i32>> {
    let n = members.len() as u32;
    let mut ranges = BTreeMap::new();
    if n == 0 {
        return ranges;
    }
    let (each, extra) = (count / n, count % n);
    let mut start = 0u32;
    for (i, member) in members.iter().enumerate() {
        let len = each + u32::from((i as u32) < extra);
        ranges.insert(*member, start as i32..(start + len) as i32);
        start += len;
    }
    ranges
}

/// The partitions `me` would be given by the range assignor if any set of up to `replicas` of the
/// other `members` left (the set with none gone included), over `count` partitions.
pub fn failover_partitions(
    members: &BTreeSet<&str>,
    me: &str,
    count: u32,
    replicas: usize,
) -> BTreeSet<i32> {
    let mut group: BTreeSet<&str> = members.clone();
    group.insert(me);
    let others: Vec<&str> = group.iter().copied().filter(|m| *m != me).collect();
    let mut partitions = BTreeSet::new();
    let mut gone: Vec<usize> = Vec::new();
    // Every subset of the others of size 0..=replicas, in order (indices strictly increasing).
    loop {
        let left: BTreeSet<&str> = group
            .iter()
            .copied()
            .filter(|m| !gone.iter().any(|i| others[*i] == *m))
            .collect();
        if let Some(range) = range_assignment(&left, count).get(me) {
            partitions.extend(range.clone());
        }
        if !next_subset(&mut gone, others.len(), replicas.min(MAX_REPLICAS)) {
            return partitions;
        }
    }
}

/// Steps `subset` (strictly increasing indices below `n`) to the next subset of size at most `k`,
/// in order of size then indices; false after the last.
fn next_subset(subset: &mut Vec<usize>, n: usize, k: usize) -> bool {
    // The next combination of the same size: bump the rightmost index that can move.
    let size = subset.len();
    for i in (0..size).rev() {
        if subset[i] < n - (size - i) {
            subset[i] += 1;
            for j in i + 1..size {
                subset[j] = subset[j - 1] + 1;
            }
            return true;
        }
    }
    // The first combination of the next size.
    if size < k && size < n {
        *subset = (0..=size).collect();
        return true;
    }
    false
}

/// One instance's standby set over time (module docs).
#[derive(Debug, Clone)]
pub struct Standbys {
    replicas: usize,
    linger: Duration,
    /// Each standby partition, and since when it has been out of the computed set (none: in it).
    kept: BTreeMap<i32, Option<Instant>>,
}

impl Standbys {
    /// Standbys covering the departure of up to `replicas` other members (0: none), each kept for
    /// `linger` after it drops out of the computed set.
    pub fn new(replicas: usize, linger: Duration) -> Self {
        Standbys {
            replicas: replicas.min(MAX_REPLICAS),
            linger,
            kept: BTreeMap::new(),
        }
    }

    /// How long a partition stays a standby after it drops out of the computed set.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// The standby partitions at `now`, given the live `members` (IDs, from the membership view),
    /// this instance's ID `me`, the topic's partition `count` and the partitions the group has
    /// `assigned` here (never standbys: they are owned).
    pub fn update(
        &mut self,
        members: &BTreeSet<&str>,
        me: &str,
        count: u32,
        assigned: &BTreeSet<i32>,
        now: Instant,
    ) -> BTreeSet<i32> {
        if self.replicas == 0 || count == 0 {
            self.kept.clear();
            return BTreeSet::new();
        }
        let wanted: BTreeSet<i32> = failover_partitions(members, me, count, self.replicas)
            .difference(assigned)
            .copied()
            .collect();
        for p in &wanted {
            self.kept.insert(*p, None);
        }
        let linger = self.linger;
        self.kept.retain(|p, out_since| {
            if assigned.contains(p) || *p >= count as i32 {
                return false;
            }
            if wanted.contains(p) {
                return true;
            }
            let since = *out_since.get_or_insert(now);
            now.saturating_duration_since(since) < linger
        });
        self.kept.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    fn ps(range: impl IntoIterator<Item = i32>) -> BTreeSet<i32> {
        range.into_iter().collect()
    }

    #[test]
    fn the_range_assignor_gives_contiguous_runs_in_id_order_the_first_ones_one_more() {
        let ranges = range_assignment(&set(&["c", "a", "b"]), 7);
        assert_eq!(ranges["a"], 0..3);
        assert_eq!(ranges["b"], 3..5);
        assert_eq!(ranges["c"], 5..7);
        let more_members = range_assignment(&set(&["a", "b", "c"]), 2);
        assert_eq!(
            more_members["c"],
            2..2,
            "a member past the partitions idles"
        );
        assert!(range_assignment(&set(&[]), 6).is_empty());
    }

    #[test]
    fn one_replica_covers_the_departure_of_any_one_member() {
        let group = set(&["i-1", "i-2", "i-3"]);
        // Today: i-1 0..2, i-2 2..4, i-3 4..6.
        assert_eq!(failover_partitions(&group, "i-1", 6, 1), ps(0..3));
        assert_eq!(failover_partitions(&group, "i-3", 6, 1), ps(3..6));
        // The middle one moves both ways: without i-1 it gets 0..3, without i-3 3..6.
        assert_eq!(failover_partitions(&group, "i-2", 6, 1), ps(0..6));
        assert_eq!(failover_partitions(&group, "i-1", 6, 0), ps(0..2));
        // Whichever member leaves, each of its partitions goes where a standby was kept.
        for gone in ["i-1", "i-2", "i-3"] {
            let survivors: BTreeSet<&str> = group.iter().copied().filter(|m| *m != gone).collect();
            for (member, range) in range_assignment(&survivors, 6) {
                let warm = failover_partitions(&group, member, 6, 1);
                assert!(
                    range.clone().all(|p| warm.contains(&p)),
                    "{member} {range:?}"
                );
            }
        }
    }

    #[test]
    fn two_replicas_cover_any_two_departures() {
        let group = set(&["a", "b", "c", "d"]);
        for (x, y) in [("a", "b"), ("a", "d"), ("b", "c"), ("c", "d")] {
            let survivors: BTreeSet<&str> = group
                .iter()
                .copied()
                .filter(|m| *m != x && *m != y)
                .collect();
            for (member, range) in range_assignment(&survivors, 8) {
                let warm = failover_partitions(&group, member, 8, 2);
                assert!(
                    range.clone().all(|p| warm.contains(&p)),
                    "{member} {range:?}"
                );
            }
        }
    }

    #[test]
    fn subsets_are_enumerated_once_each_up_to_k() {
        let mut subset = Vec::new();
        let mut seen = vec![subset.clone()];
        while next_subset(&mut subset, 4, 2) {
            seen.push(subset.clone());
        }
        assert_eq!(seen.len(), 1 + 4 + 6);
        let unique: BTreeSet<Vec<usize>> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len());
        let mut none = Vec::new();
        assert!(!next_subset(&mut none, 0, 2));
    }

    #[test]
    fn owned_partitions_are_never_standbys_and_dropped_ones_linger() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut standbys = Standbys::new(1, Duration::from_secs(10));
        let group = set(&["i-1", "i-2", "i-3"]);
        let owned = ps(0..2);
        assert_eq!(standbys.update(&group, "i-1", 6, &owned, t0), ps([2]));
        // i-2's record expired: i-1 alone with i-3 now wants 2..6 (what it gets if i-3 leaves too).
        let survivors = set(&["i-1", "i-3"]);
        assert_eq!(
            standbys.update(&survivors, "i-1", 6, &owned, at(1)),
            ps(2..6)
        );
        // The group gave it 0..3: partition 2 is owned, no longer a standby.
        assert_eq!(
            standbys.update(&survivors, "i-1", 6, &ps(0..3), at(2)),
            ps(3..6)
        );
        // i-2 back: 3..6 drop out of the computed set but stay for the linger.
        assert_eq!(
            standbys.update(&group, "i-1", 6, &ps(0..2), at(3)),
            ps(2..6)
        );
        assert_eq!(
            standbys.update(&group, "i-1", 6, &ps(0..2), at(12)),
            ps(2..6)
        );
        assert_eq!(
            standbys.update(&group, "i-1", 6, &ps(0..2), at(13)),
            ps([2])
        );
        // No replicas: nothing.
        let mut none = Standbys::new(0, Duration::from_secs(10));
        assert!(none.update(&group, "i-1", 6, &owned, t0).is_empty());
    }
}
