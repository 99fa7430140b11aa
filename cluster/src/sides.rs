//! The narrow handles of an [`Instance`]. The process that runs an instance owns it and gives each
//! part its own handle, so what each may change is written in the types: ingest alone assigns,
//! revokes and restores partitions ([`Partitions`]); the membership loop alone sets the group's view
//! ([`Advertised`]); the scorer alone says what it scored, and reads what it may serve
//! ([`Serving`]). Whoever calls gives the time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::instance::{Instance, PartitionStatus, Restored};
use crate::member::View;

/// Ingest's handle: the partitions the group assigns, revokes and restores, and contact with the
/// broker.
#[derive(Debug, Clone)]
pub struct Partitions(Arc<Instance>);

/// The membership loop's handle: what the instance advertises, and the group's view it brings
/// back.
#[derive(Debug, Clone)]
pub struct Advertised(Arc<Instance>);

/// The scorer's handle: what is served here, the group it routes to, and what it scored.
#[derive(Debug, Clone)]
pub struct Serving(Arc<Instance>);

impl Instance {
    /// Ingest's handle.
    pub fn ingest_side(self: &Arc<Self>) -> Partitions {
        Partitions(self.clone())
    }

    /// The membership loop's handle.
    pub fn membership_side(self: &Arc<Self>) -> Advertised {
        Advertised(self.clone())
    }

    /// The scorer's handle.
    pub fn scorer_side(self: &Arc<Self>) -> Serving {
        Serving(self.clone())
    }
}

impl Partitions {
    /// The instance's ID.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// Out of contact with the broker for `after`, the instance stops serving
    /// ([`Instance`]'s fence).
    pub fn set_fence(&self, after: Duration) {
        self.0.set_fence(after)
    }

    /// The broker answered at `now`; whether the instance had been silent past its fence (and has
    /// dropped its partitions).
    pub fn contact(&self, now: Instant) -> bool {
        self.0.contact(now)
    }

    /// The group gave it `partitions` at `now`, each with the next offset the store holds (`None`
    /// when it has never read it).
    pub fn assigned(&self, partitions: &[(i32, Option<i64>)], now: Instant) {
        self.0.assigned(partitions, now)
    }

    /// The group took `partitions` back.
    pub fn revoked(&self, partitions: &[i32]) {
        self.0.revoked(partitions)
    }

    /// Every partition taken back.
    pub fn revoked_all(&self) {
        self.0.revoked_all()
    }

    /// Ingest's report on `partition` at `now` ([`Instance`]'s restore); the restore it finished.
    pub fn progress(
        &self,
        partition: i32,
        position: i64,
        watermarks: (i64, i64),
        batch: u64,
        now: Instant,
    ) -> Option<Restored> {
        self.0.progress(partition, position, watermarks, batch, now)
    }

    /// The partitions assigned here.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.0.assigned_partitions()
    }

    /// Each assigned partition's status at `now`.
    pub fn statuses(&self, now: Instant) -> BTreeMap<i32, PartitionStatus> {
        self.0.statuses(now)
    }

    /// Ingest read the topic's partition count.
    pub fn set_partition_count(&self, count: u32) {
        self.0.set_partition_count(count)
    }

    /// The latest view of the group's members (whom the standbys are computed from).
    pub fn view(&self) -> Arc<View> {
        self.0.view()
    }

    /// Ingest keeps warm standby copies of `partitions` (advertised; never served from here).
    pub fn set_standbys(&self, partitions: std::collections::BTreeSet<i32>) {
        self.0.set_standbys(partitions)
    }
}

impl Advertised {
    /// The instance's ID.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// Its advertised HTTP base URL.
    pub fn http(&self) -> &str {
        self.0.http()
    }

    /// The partitions ingest keeps warm standby copies of.
    pub fn standbys(&self) -> Arc<std::collections::BTreeSet<i32>> {
        self.0.standbys()
    }

    /// Each assigned partition's status at `now`.
    pub fn statuses(&self, now: Instant) -> BTreeMap<i32, PartitionStatus> {
        self.0.statuses(now)
    }

    /// The topic's partition count (0 until ingest has read it).
    pub fn partition_count(&self) -> u32 {
        self.0.partition_count()
    }

    /// The partition count to route and merge by ([`Instance::group_partition_count`]).
    pub fn group_partition_count(&self, view: &View) -> u32 {
        self.0.group_partition_count(view)
    }

    /// The group's new view (and with it the group's watermark).
    pub fn set_view(&self, view: View) {
        self.0.set_view(view)
    }

    /// How long past its fence the instance has been out of contact with the broker at `now`
    /// ([`Instance::fenced`]).
    pub fn fenced(&self, now: Instant) -> Option<std::time::Duration> {
        self.0.fenced(now)
    }
}

impl Serving {
    /// The instance's ID.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// Whether `partition` is answered here at `now` ([`Instance::serves`]).
    pub fn serves(&self, partition: i32, now: Instant) -> bool {
        self.0.serves(partition, now)
    }

    /// How long the instance has been out of contact with the broker at `now`, once past its
    /// fence ([`Instance::fenced`]).
    pub fn fenced(&self, now: Instant) -> Option<std::time::Duration> {
        self.0.fenced(now)
    }

    /// The partitions ingest keeps warm standby copies of (never served from here).
    pub fn standbys(&self) -> Arc<std::collections::BTreeSet<i32>> {
        self.0.standbys()
    }

    /// Each assigned partition's status at `now`.
    pub fn statuses(&self, now: Instant) -> BTreeMap<i32, PartitionStatus> {
        self.0.statuses(now)
    }

    /// The topic's partition count (0 until ingest has read it).
    pub fn partition_count(&self) -> u32 {
        self.0.partition_count()
    }

    /// The partition count to route and merge by ([`Instance::group_partition_count`]).
    pub fn group_partition_count(&self, view: &View) -> u32 {
        self.0.group_partition_count(view)
    }

    /// The latest view of the group's members.
    pub fn view(&self) -> Arc<View> {
        self.0.view()
    }

    /// The group's event-time watermark (Unix ms).
    pub fn group_watermark(&self) -> Option<i64> {
        self.0.group_watermark()
    }

    /// Whether a caught-up partition waits for a score to be served ([`Instance::awaits_scoring`]).
    pub fn awaits_scoring(&self) -> bool {
        self.0.awaits_scoring()
    }

    /// The scorer scored the store as of `batch`.
    pub fn scored(&self, batch: u64) {
        self.0.scored(batch)
    }
}
