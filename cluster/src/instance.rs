//! One instance's partitions, shared by its ingest (which assigns, revokes and restores them), its
//! membership loop (which advertises them and brings back the group's view) and its scorer (which
//! serves them).
//!
//! A partition assigned to the instance is **restoring** until ingest has applied everything the
//! topic held when the partition was first checked (its high watermark then: the *target*), then
//! **caught up** at the store's batch number of that moment, and **serving** once the scorer has
//! scored the store at or after that batch (before that, a customer restored a moment ago would be
//! missing from the scored population: a wrong 404, not a late answer).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::member::View;

/// Where a partition stands on this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PartitionStatus {
    /// Being read from the topic until it reaches the target offset.
    Restoring {
        /// Messages applied since the restore began.
        done: i64,
        /// Messages it has to apply (target − start), once the broker told the target.
        total: Option<i64>,
    },
    /// Every message up to the target is in the store; not yet in the scored population.
    CaughtUp,
    /// Caught up and scored: answered here.
    Serving,
}

impl PartitionStatus {
    /// The share of the restore done (1 once caught up).
    pub fn progress(&self) -> f64 {
        match self {
            PartitionStatus::Restoring { done, total } => match total {
                Some(total) if *total > 0 => (*done as f64 / *total as f64).clamp(0.0, 1.0),
                _ => 0.0,
            },
            _ => 1.0,
        }
    }

    /// Whether its store state is complete up to the target (caught up or serving).
    pub fn caught_up(&self) -> bool {
        !matches!(self, PartitionStatus::Restoring { .. })
    }
}

/// A restore that just finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restored {
    /// The partition.
    pub partition: i32,
    /// Messages it applied.
    pub messages: i64,
    /// How long it took.
    pub took: Duration,
}

#[derive(Debug, Clone)]
enum Local {
    Restoring {
        since: Instant,
        start: Option<i64>,
        target: Option<i64>,
        position: Option<i64>,
    },
    CaughtUp {
        batch: u64,
    },
}

/// No batch scored yet.
const NONE: u64 = u64::MAX;
/// No group watermark yet.
const NO_WATERMARK: i64 = i64::MIN;
/// No contact with the broker yet (nothing to fence).
const NEVER: u64 = u64::MAX;

/// One instance's shared state (module docs).
pub struct Instance {
    id: String,
    http: String,
    partitions: Mutex<BTreeMap<i32, Local>>,
    /// Caught-up partitions and the batch each caught up at: what a request reads (no lock).
    caught_up: ArcSwap<BTreeMap<i32, u64>>,
    partition_count: AtomicU32,
    scored_batch: AtomicU64,
    view: ArcSwap<View>,
    /// The partitions ingest keeps warm standby copies of (never served from here).
    standbys: ArcSwap<std::collections::BTreeSet<i32>>,
    group_watermark: AtomicI64,
    /// When this instance was created: the clock of `contact_ms`.
    created: Instant,
    /// The last contact with the broker, ms after `created`.
    contact_ms: AtomicU64,
    /// Out of contact for this long (ms), it stops serving (0: never).
    fence_ms: AtomicU64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("http", &self.http)
            .field("partitions", &self.locked().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Instance {
    /// An instance called `id` whose HTTP API other instances reach at `http` (a base URL such as
    /// `http://10.0.0.5:8080`), with no partitions yet.
    /// `now` starts its clock: every method that needs the time is given it (this crate does no
    /// I/O and reads no clock). Its parts reach it through their own handles ([`crate::sides`]).
    pub fn new(id: impl Into<String>, http: impl Into<String>, now: Instant) -> Arc<Self> {
        Arc::new(Instance {
            id: id.into(),
            http: http.into().trim_end_matches('/').to_string(),
            partitions: Mutex::new(BTreeMap::new()),
            caught_up: ArcSwap::from_pointee(BTreeMap::new()),
            partition_count: AtomicU32::new(0),
            scored_batch: AtomicU64::new(NONE),
            view: ArcSwap::from_pointee(View::default()),
            standbys: ArcSwap::from_pointee(Default::default()),
            group_watermark: AtomicI64::new(NO_WATERMARK),
            created: now,
            contact_ms: AtomicU64::new(NEVER),
            fence_ms: AtomicU64::new(0),
        })
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_millis() as u64
    }

    /// Out of contact with the broker for `after`, the instance stops serving: by then the group
    /// may have given its partitions to another member (ingest sets it below the session timeout,
    /// so that it stops before the group can move them).
    pub(crate) fn set_fence(&self, after: Duration) {
        self.fence_ms
            .store(after.as_millis().max(1) as u64, Ordering::Release);
    }

    /// How long the instance has been out of contact at `now`, once that is past its fence.
    pub fn fenced(&self, now: Instant) -> Option<Duration> {
        let fence = self.fence_ms.load(Ordering::Acquire);
        let contact = self.contact_ms.load(Ordering::Acquire);
        let silent = self.ms(now).saturating_sub(contact);
        (fence > 0 && contact != NEVER && silent > fence).then(|| Duration::from_millis(silent))
    }

    /// Ingest heard from the broker. After a silence past the fence, the partitions held then are
    /// dropped (another member may own them now): they are served again only once ingest assigns
    /// them again (after a rebalance, or [`Instance::assigned`] by ingest's check that the group
    /// still gives them here) and they have caught up.
    pub(crate) fn contact(&self, now: Instant) -> bool {
        let fenced = self.fenced(now).is_some();
        if fenced {
            self.revoked_all();
        }
        self.contact_ms.store(self.ms(now), Ordering::Release);
        fenced
    }

    /// Its ID (the group's static member ID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its advertised HTTP base URL.
    pub fn http(&self) -> &str {
        &self.http
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Local>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, partitions: &BTreeMap<i32, Local>) {
        let caught_up = partitions
            .iter()
            .filter_map(|(p, local)| match local {
                Local::CaughtUp { batch } => Some((*p, *batch)),
                Local::Restoring { .. } => None,
            })
            .collect();
        self.caught_up.store(Arc::new(caught_up));
    }

    /// The group gave it `partitions` at `now`, each with the next offset the store holds (`None`
    /// when it has never read it: it starts at the topic's first offset): each restores from there
    /// until caught up. The restore's messages count from there, however many of them ingest has
    /// applied by its first report.
    pub(crate) fn assigned(&self, partitions: &[(i32, Option<i64>)], now: Instant) {
        let mut local = self.locked();
        for (p, stored) in partitions {
            local.insert(
                *p,
                Local::Restoring {
                    since: now,
                    start: *stored,
                    target: None,
                    position: None,
                },
            );
        }
        self.publish(&local);
    }

    /// The group took `partitions` back: they stop being served before this returns.
    pub(crate) fn revoked(&self, partitions: &[i32]) {
        let mut local = self.locked();
        for p in partitions {
            local.remove(p);
        }
        self.publish(&local);
    }

    /// Every partition taken back (a rebalance of the eager protocol, or the consumer closing).
    pub(crate) fn revoked_all(&self) {
        let mut local = self.locked();
        local.clear();
        self.publish(&local);
    }

    /// Ingest's report on `partition`: the next offset its store holds (`position`), the topic's
    /// first offset and high watermark (`low`, `high`) and the store's batch number at `now`.
    /// Returns the restore it finished.
    pub(crate) fn progress(
        &self,
        partition: i32,
        position: i64,
        (low, high): (i64, i64),
        batch: u64,
        now: Instant,
    ) -> Option<Restored> {
        let mut local = self.locked();
        let entry = local.get_mut(&partition)?;
        let Local::Restoring {
            since,
            start,
            target,
            position: at,
        } = entry
        else {
            return None;
        };
        let start = *start.get_or_insert(low.min(position));
        let target = *target.get_or_insert(high);
        *at = Some(position);
        if position < target {
            return None;
        }
        let restored = Restored {
            partition,
            messages: (position - start).max(0),
            took: now.saturating_duration_since(*since),
        };
        *entry = Local::CaughtUp { batch };
        self.publish(&local);
        Some(restored)
    }

    /// The partitions assigned here.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.locked().keys().copied().collect()
    }

    /// Each assigned partition's status at `now`.
    pub fn statuses(&self, now: Instant) -> BTreeMap<i32, PartitionStatus> {
        let scored = match self.fenced(now) {
            None => self.scored_batch.load(Ordering::Acquire),
            Some(_) => NONE,
        };
        self.locked()
            .iter()
            .map(|(p, local)| {
                let status = match local {
                    Local::Restoring {
                        start,
                        target,
                        position,
                        ..
                    } => PartitionStatus::Restoring {
                        done: match (start, position) {
                            (Some(s), Some(p)) => (p - s).max(0),
                            _ => 0,
                        },
                        total: match (start, target) {
                            (Some(s), Some(t)) => Some((t - s).max(0)),
                            _ => None,
                        },
                    },
                    Local::CaughtUp { batch } if scored != NONE && *batch <= scored => {
                        PartitionStatus::Serving
                    }
                    Local::CaughtUp { .. } => PartitionStatus::CaughtUp,
                };
                (*p, status)
            })
            .collect()
    }

    /// Whether `partition` is answered here: assigned, caught up and scored, and the instance is in
    /// contact with the broker at `now`.
    pub fn serves(&self, partition: i32, now: Instant) -> bool {
        let scored = self.scored_batch.load(Ordering::Acquire);
        scored != NONE
            && self.fenced(now).is_none()
            && self
                .caught_up
                .load()
                .get(&partition)
                .is_some_and(|batch| *batch <= scored)
    }

    /// Whether a caught-up partition waits for the scorer to score the store past the batch it
    /// caught up at (it is served once that is done).
    pub fn awaits_scoring(&self) -> bool {
        let scored = self.scored_batch.load(Ordering::Acquire);
        self.caught_up
            .load()
            .values()
            .any(|batch| scored == NONE || *batch > scored)
    }

    /// The scorer scored the store as of `batch`.
    pub(crate) fn scored(&self, batch: u64) {
        self.scored_batch.store(batch, Ordering::Release);
    }

    /// The topic's partition count (0 until ingest has read it).
    pub fn partition_count(&self) -> u32 {
        self.partition_count.load(Ordering::Acquire)
    }

    /// The partition count to route and merge by: the topic's, as this instance's ingest read it;
    /// before that, the largest a live member advertises.
    pub fn group_partition_count(&self, view: &View) -> u32 {
        match self.partition_count() {
            0 => view.partition_count(),
            n => n,
        }
    }

    /// Ingest read the topic's partition count.
    pub(crate) fn set_partition_count(&self, count: u32) {
        self.partition_count.store(count, Ordering::Release);
    }

    /// Ingest keeps warm standby copies of `partitions` (advertised; never served from here).
    pub(crate) fn set_standbys(&self, partitions: std::collections::BTreeSet<i32>) {
        self.standbys.store(Arc::new(partitions));
    }

    /// The partitions ingest keeps warm standby copies of.
    pub fn standbys(&self) -> Arc<std::collections::BTreeSet<i32>> {
        self.standbys.load_full()
    }

    /// The latest view of the group's members.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// The membership loop's new view; the group watermark follows it whenever every partition is
    /// caught up on some member (during a rebalance it keeps the last one, so `as_of` does not
    /// move back and forth while a partition restores).
    pub(crate) fn set_view(&self, view: View) {
        let count = self.group_partition_count(&view);
        if let Some(watermark) = view.watermark(count) {
            self.group_watermark.store(watermark, Ordering::Release);
        }
        self.view.store(Arc::new(view));
    }

    /// The group's event-time watermark (Unix ms): the contract's rule over every partition's mark,
    /// the same a single store holding every partition would compute.
    pub fn group_watermark(&self) -> Option<i64> {
        match self.group_watermark.load(Ordering::Acquire) {
            NO_WATERMARK => None,
            w => Some(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_restores_then_is_caught_up_then_served_once_scored() {
        let t0 = Instant::now();
        let instance = Instance::new("a", "http://a:8080/", t0);
        assert_eq!(instance.http(), "http://a:8080");
        instance.assigned(&[(0, Some(10)), (1, Some(40))], t0);
        assert!(!instance.serves(0, t0));
        assert_eq!(
            instance.statuses(t0)[&0],
            PartitionStatus::Restoring {
                done: 0,
                total: None
            }
        );
        assert!(instance.progress(0, 10, (0, 110), 1, t0).is_none());
        assert!(instance.progress(0, 60, (0, 500), 2, t0).is_none()); // the target stays the first one
        let status = &instance.statuses(t0)[&0];
        assert_eq!(
            *status,
            PartitionStatus::Restoring {
                done: 50,
                total: Some(100)
            }
        );
        assert!((status.progress() - 0.5).abs() < 1e-9);
        let later = t0 + Duration::from_millis(1_500);
        let restored = instance
            .progress(0, 110, (0, 600), 7, later)
            .expect("restored");
        assert_eq!(restored.messages, 100);
        assert_eq!(restored.took, Duration::from_millis(1_500));
        assert_eq!(instance.statuses(later)[&0], PartitionStatus::CaughtUp);
        assert!(
            !instance.serves(0, later),
            "not before the scorer has scored batch 7"
        );
        assert!(instance.awaits_scoring(), "caught up, not yet scored");
        instance.scored(6);
        assert!(!instance.serves(0, later));
        assert!(instance.awaits_scoring());
        instance.scored(7);
        assert!(instance.serves(0, later));
        assert!(!instance.awaits_scoring());
        assert_eq!(instance.statuses(later)[&0], PartitionStatus::Serving);
        assert!(!instance.serves(1, later));
        // A partition already caught up (nothing new) is caught up at its first report.
        assert!(instance.progress(1, 40, (0, 40), 7, later).is_some());
        assert!(instance.serves(1, later));
        instance.revoked(&[0]);
        assert!(!instance.serves(0, later));
        assert!(instance.serves(1, later));
        instance.revoked_all();
        assert!(!instance.serves(1, later));
        assert!(instance.statuses(later).is_empty());
    }

    #[test]
    fn out_of_contact_past_the_fence_it_stops_serving_and_drops_its_partitions() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let instance = Instance::new("a", "http://a", t0);
        instance.set_fence(Duration::from_millis(30));
        assert!(
            instance.fenced(at(40)).is_none(),
            "no contact yet: nothing to fence"
        );
        assert!(!instance.contact(at(40)));
        instance.assigned(&[(0, Some(1))], at(40));
        assert!(instance.progress(0, 1, (0, 1), 1, at(40)).is_some());
        instance.scored(1);
        assert!(instance.serves(0, at(40)));
        assert!(
            instance.serves(0, at(70)),
            "silent for 30 ms: at the fence, not past it"
        );
        assert_eq!(instance.fenced(at(100)), Some(Duration::from_millis(60)));
        assert!(!instance.serves(0, at(100)), "silent past the fence");
        assert_eq!(instance.statuses(at(100))[&0], PartitionStatus::CaughtUp);
        // Contact again: what it held then is dropped, until assigned and caught up again.
        assert!(instance.contact(at(100)));
        assert!(!instance.serves(0, at(100)));
        assert!(instance.statuses(at(100)).is_empty());
        instance.assigned(&[(0, Some(1))], at(100));
        assert!(instance.progress(0, 1, (0, 1), 1, at(100)).is_some());
        assert!(instance.serves(0, at(110)));
        assert!(!instance.contact(at(120)), "in contact all along");
    }

    #[test]
    fn a_restore_counts_from_the_store_at_assignment_even_when_one_batch_applied_it_all() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(200);
        let instance = Instance::new("a", "http://a", t0);
        // Partition 0 held up to offset 30; partition 1 never read, on a topic whose first offset
        // is 5 (older messages deleted); partition 2 read whole before it was assigned here again.
        instance.assigned(&[(0, Some(30)), (1, None), (2, Some(80))], t0);
        // Ingest's first report comes after its first batch, which read each to its end.
        let restored = instance
            .progress(0, 90, (0, 90), 1, later)
            .expect("restored");
        assert_eq!(restored.messages, 60);
        let restored = instance
            .progress(1, 45, (5, 45), 1, later)
            .expect("restored");
        assert_eq!(restored.messages, 40);
        let restored = instance
            .progress(2, 80, (0, 80), 1, later)
            .expect("restored");
        assert_eq!(restored.messages, 0, "nothing new to read");
    }

    #[test]
    fn reports_on_partitions_not_assigned_change_nothing() {
        let t0 = Instant::now();
        let instance = Instance::new("a", "http://a", t0);
        assert!(instance.progress(3, 5, (0, 5), 1, t0).is_none());
        assert!(instance.statuses(t0).is_empty());
        instance.scored(1);
        assert!(!instance.serves(3, t0));
    }
}
