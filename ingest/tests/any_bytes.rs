//! Any byte string on the topic, with any key or none, ends as an applied event, a redelivery or a
//! dead letter with a known kind, never a panic; the counts add up to the messages offered, every
//! offset is consumed, and nothing of a rejected message is stored.

use std::collections::BTreeMap;
use std::convert::Infallible;

use contract::Purchase;
use contract::bounds::Bounds;
use contract::event::Rejection;
use featurestore::store::StoredSummary;
use ingest::fold::{BatchFolder, Message, Outcome, Stored};
use proptest::prelude::*;

/// An empty store.
struct Nothing;

impl Stored for Nothing {
    type Error = Infallible;
    fn summary(&self, _: i32, _: u64) -> Result<Option<StoredSummary>, Infallible> {
        Ok(None)
    }
    fn purchase(&self, _: i32, _: u64, _: &str) -> Result<Option<Purchase>, Infallible> {
        Ok(None)
    }
    fn has_event(&self, _: i32, _: u64, _: &str) -> Result<bool, Infallible> {
        Ok(false)
    }
}

const GOOD: &str = r#"{"schema_version":1,"event_id":"e1","customer_id":12346,"invoice":"489434","stock_code":"85048","description":"BALL","quantity":12,"invoice_date":"2011-12-01T07:45:00Z","price":6.95,"country":"United Kingdom"}"#;

/// A message: random bytes, or a good event with some bytes overwritten and its end cut.
fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
    let mutated = (
        prop::collection::vec((0..GOOD.len(), any::<u8>()), 0..6),
        1..=GOOD.len(),
    )
        .prop_map(|(edits, cut)| {
            let mut bytes = GOOD.as_bytes().to_vec();
            for (at, b) in edits {
                bytes[at] = b;
            }
            bytes.truncate(cut);
            bytes
        });
    prop_oneof![
        1 => Just(None),
        3 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Some),
        6 => mutated.prop_map(Some),
        2 => Just(Some(GOOD.as_bytes().to_vec())),
    ]
}

fn key() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        4 => Just(Some(b"12346".to_vec())),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_message_is_applied_dead_lettered_or_forwarded(
        messages in prop::collection::vec((0i32..3, key(), payload()), 1..40)
    ) {
        let bounds = Bounds::on(chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap());
        let mut folder = BatchFolder::new(bounds).with_partitions(Some(3));
        let mut last = BTreeMap::new();
        let (mut applied, mut duplicates, mut rejected, mut misrouted) = (0u64, 0u64, 0u64, 0u64);
        for (offset, (partition, key, payload)) in messages.iter().enumerate() {
            let outcome = folder
                .offer(
                    Message {
                        partition: *partition,
                        offset: offset as i64,
                        key: key.as_deref(),
                        payload: payload.as_deref(),
                    },
                    &Nothing,
                )
                .unwrap();
            last.insert(*partition, offset as i64 + 1);
            match outcome {
                Outcome::Applied(_) => applied += 1,
                Outcome::Duplicate => duplicates += 1,
                Outcome::Rejected(r) => {
                    prop_assert!(Rejection::KINDS.contains(&r.kind()), "{r}");
                    rejected += 1;
                }
                Outcome::Misrouted { partition: home } => {
                    prop_assert!(home != *partition && (0..3).contains(&home));
                    misrouted += 1;
                }
            }
        }
        let folded = folder.finish();
        prop_assert_eq!(folded.messages, messages.len());
        let counts = &folded.counts;
        prop_assert_eq!(counts.applied.values().sum::<u64>(), applied);
        prop_assert_eq!(counts.duplicates, duplicates);
        prop_assert_eq!(counts.rejected_total(), rejected);
        prop_assert_eq!(counts.misrouted, misrouted);
        prop_assert_eq!(applied + duplicates + rejected + misrouted, messages.len() as u64);
        prop_assert_eq!(folded.batch.offsets, last.into_iter().collect::<Vec<_>>());
        // Only customers of applied events are stored, each with the events applied to it.
        if applied == 0 {
            prop_assert!(folded.batch.customers.is_empty());
        }
        for written in &folded.batch.customers {
            prop_assert!(!written.events.is_empty());
        }
        prop_assert_eq!(
            folded.batch.customers.iter().map(|c| c.events.len() as u64).sum::<u64>(),
            applied
        );
    }
}
