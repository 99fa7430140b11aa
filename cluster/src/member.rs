//! What an instance advertises, and the view of every live member that routing and the group's
//! watermark are computed from.
//!
//! Each instance publishes its [`Member`] record (JSON, keyed by its ID) to a small compacted topic
//! (`clv.instances`) about twice a second and on every change, and a tombstone when it stops; each
//! instance reads the whole topic and keeps the members heard from recently (the I/O is
//! `ingest::membership`). The record is advice for routing: an instance answers for a partition only
//! when its own state says it serves it, so a stale record costs a retry, never a wrong answer.

use std::collections::{BTreeMap, BTreeSet};

use contract::watermark::PartitionMark;
use serde::{Deserialize, Serialize};

use crate::instance::PartitionStatus;

/// The record one instance advertises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its ID (the consumer group's static member ID).
    pub id: String,
    /// The base URL of its HTTP API.
    pub http: String,
    /// The topic's partition count as it knows it.
    pub partition_count: u32,
    /// Its assigned partitions and where each stands.
    pub partitions: BTreeMap<i32, PartitionStatus>,
    /// The watermark mark ([`contract::watermark`]) of each of its caught-up partitions.
    pub marks: BTreeMap<i32, PartitionMark>,
    /// The partitions it keeps warm standby copies of ([`crate::standby`]): never served from
    /// there until the group assigns them (absent in records of older versions).
    #[serde(default)]
    pub standbys: BTreeSet<i32>,
}

impl Member {
    /// Its record as sent (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record read back; an error for bytes that are not one (a stray producer on the topic).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A live member and when it was last heard from (the order records arrived in).
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// Its latest record.
    pub member: Member,
    /// The arrival number of that record: later records have higher numbers.
    pub seq: u64,
}

/// Why a partition has no owner to answer for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Gap {
    /// No live member has it (a rebalance in progress, or its owner died).
    Unowned,
    /// Its owner is restoring it: the share done.
    Restoring {
        /// The member.
        member: String,
        /// The share of its restore done.
        progress: f64,
    },
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gap::Unowned => write!(f, "no live instance owns it (a rebalance is in progress)"),
            Gap::Restoring { member, progress } => write!(
                f,
                "{member} is restoring it ({:.0}% done)",
                progress * 100.0
            ),
        }
    }
}

/// Every live member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// By ID.
    pub members: BTreeMap<String, Heard>,
}

/// The most partitions a record may claim the topic has: a record claiming more is not believed
/// (every partition is looked at when the group's coverage and watermark are computed).
pub const MAX_PARTITIONS: u32 = 10_000;

impl View {
    /// The largest partition count a member knows (claims above [`MAX_PARTITIONS`] ignored).
    pub fn partition_count(&self) -> u32 {
        self.members
            .values()
            .map(|h| h.member.partition_count)
            .filter(|n| *n <= MAX_PARTITIONS)
            .max()
            .unwrap_or(0)
    }

    /// The member that serves `partition`: of those whose record says so, the one heard from last
    /// (a record of a member that died stays until it expires; the new owner's is newer).
    pub fn owner(&self, partition: i32) -> Option<&Member> {
        self.members
            .values()
            .filter(|h| h.member.partitions.get(&partition) == Some(&PartitionStatus::Serving))
            .max_by_key(|h| h.seq)
            .map(|h| &h.member)
    }

    /// Why nobody serves `partition`.
    pub fn gap(&self, partition: i32) -> Gap {
        self.members
            .values()
            .filter_map(|h| {
                let status = h.member.partitions.get(&partition)?;
                Some(Gap::Restoring {
                    member: h.member.id.clone(),
                    progress: status.progress(),
                })
            })
            .next()
            .unwrap_or(Gap::Unowned)
    }

    /// Every partition of `count` with its owner, grouped by owner (ID → partitions); or the
    /// partitions without one and why.
    #[allow(clippy::type_complexity)]
    pub fn coverage(
        &self,
        count: u32,
    ) -> Result<BTreeMap<String, (String, Vec<i32>)>, Vec<(i32, Gap)>> {
        let mut owners: BTreeMap<String, (String, Vec<i32>)> = BTreeMap::new();
        let mut gaps = Vec::new();
        for partition in 0..count as i32 {
            match self.owner(partition) {
                Some(member) => owners
                    .entry(member.id.clone())
                    .or_insert_with(|| (member.http.clone(), Vec::new()))
                    .1
                    .push(partition),
                None => gaps.push((partition, self.gap(partition))),
            }
        }
        if count == 0 {
            return Err(vec![]);
        }
        match gaps.is_empty() {
            true => Ok(owners),
            false => Err(gaps),
        }
    }

    /// The group's watermark over `count` partitions: the contract's rule
    /// ([`contract::watermark::watermark`]) over each partition's mark as its caught-up owner
    /// advertises it (the last heard owner's when two do), so that it is the watermark one store
    /// holding every partition would have. `None` while a partition has no caught-up owner.
    pub fn watermark(&self, count: u32) -> Option<i64> {
        if count == 0 {
            return None;
        }
        let mut marks = Vec::with_capacity(count as usize);
        for partition in 0..count as i32 {
            let mark = self
                .members
                .values()
                .filter(|h| {
                    h.member
                        .partitions
                        .get(&partition)
                        .is_some_and(PartitionStatus::caught_up)
                })
                .max_by_key(|h| h.seq)?
                .member
                .marks
                .get(&partition);
            // A caught-up partition without a mark has no purchase yet: it holds nothing back.
            if let Some(mark) = mark {
                marks.push(mark);
            }
        }
        contract::watermark::watermark(marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, partitions: &[(i32, PartitionStatus)]) -> Member {
        Member {
            id: id.into(),
            http: format!("http://{id}"),
            partition_count: 4,
            partitions: partitions.iter().cloned().collect(),
            marks: BTreeMap::new(),
            standbys: BTreeSet::new(),
        }
    }

    fn view(members: Vec<Member>) -> View {
        View {
            members: members
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    (
                        m.id.clone(),
                        Heard {
                            member: m,
                            seq: i as u64,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn every_partition_needs_a_serving_owner() {
        use PartitionStatus::*;
        let v = view(vec![
            member("a", &[(0, Serving), (1, Serving)]),
            member(
                "b",
                &[
                    (2, Serving),
                    (
                        3,
                        Restoring {
                            done: 1,
                            total: Some(4),
                        },
                    ),
                ],
            ),
        ]);
        assert_eq!(v.owner(0).map(|m| m.id.as_str()), Some("a"));
        assert!(v.owner(3).is_none());
        let gaps = v.coverage(4).expect_err("partition 3 restores");
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].0, 3);
        assert_eq!(gaps[0].1.to_string(), "b is restoring it (25% done)");
        assert_eq!(v.gap(9), Gap::Unowned);
        let v = view(vec![
            member("a", &[(0, Serving), (1, Serving)]),
            member("b", &[(2, Serving), (3, Serving)]),
        ]);
        let owners = v.coverage(4).expect("covered");
        assert_eq!(owners["a"].1, vec![0, 1]);
        assert_eq!(owners["b"], ("http://b".to_string(), vec![2, 3]));
        assert!(v.coverage(0).is_err());
    }

    #[test]
    fn of_two_claims_the_latest_heard_wins() {
        use PartitionStatus::*;
        // "a" died serving 0; "b" restored it since and is heard from later.
        let v = view(vec![
            member("a", &[(0, Serving)]),
            member("b", &[(0, Serving)]),
        ]);
        assert_eq!(v.owner(0).map(|m| m.id.as_str()), Some("b"));
    }

    #[test]
    fn a_record_claiming_a_huge_topic_is_not_believed() {
        let mut liar = member("x", &[]);
        liar.partition_count = u32::MAX;
        let v = view(vec![member("a", &[]), liar]);
        assert_eq!(v.partition_count(), 4);
    }

    #[test]
    fn the_group_watermark_is_the_single_store_rule_over_every_partition() {
        use PartitionStatus::*;
        let mut marks: Vec<PartitionMark> = vec![PartitionMark::default(); 4];
        for (i, mark) in marks.iter_mut().enumerate() {
            for c in 0..12u64 {
                mark.observe(c * 10 + i as u64, 1_000 * (i as i64 + 1) + c as i64);
            }
        }
        let single = contract::watermark::watermark(marks.iter());
        let mut a = member("a", &[(0, Serving), (1, CaughtUp)]);
        a.marks = [(0, marks[0].clone()), (1, marks[1].clone())].into();
        let mut b = member(
            "b",
            &[
                (2, Serving),
                (
                    3,
                    Restoring {
                        done: 0,
                        total: None,
                    },
                ),
            ],
        );
        b.marks = [(2, marks[2].clone())].into();
        assert_eq!(view(vec![a.clone(), b.clone()]).watermark(4), None);
        b.partitions.insert(3, CaughtUp);
        b.marks.insert(3, marks[3].clone());
        let group = view(vec![a, b]).watermark(4);
        assert!(group.is_some());
        assert_eq!(group, single);
    }

    #[test]
    fn a_record_survives_the_round_trip_and_garbage_is_an_error() {
        use PartitionStatus::*;
        let m = member(
            "a",
            &[
                (0, Serving),
                (
                    1,
                    Restoring {
                        done: 3,
                        total: Some(9),
                    },
                ),
            ],
        );
        assert_eq!(Member::from_bytes(&m.to_bytes()).expect("parses"), m);
        assert!(Member::from_bytes(b"{\"id\":1}").is_err());
    }
}
