//! The per-event fold (the streaming path's state) against the offline polars snapshot, for every
//! customer of the real data and of a generated dataset, at the two cutoffs the trainer uses.

use std::collections::HashMap;

use crate::common::*;
use chrono::NaiveDate;
use contract::CustomerState;
use contract::bounds::Bounds;
use dataset::Line;
use dataset::read::read_raw;
use indicatif::ProgressBar;
use ingest::fold::{BatchFolder, Memory, Message, Outcome};
use ingest::replay::event_for_line;
use offline::SnapshotSpec;
use offline::lines::snapshot;
use offline::states::{differences, from_states};
use polars::prelude::IntoLazy;

/// Folds the lines' events as ingest does (batches of 5,000 messages through the batch folder, an
/// event outside the bounds a dead letter), into the store's semantics in memory.
fn fold<'a>(numbered: impl Iterator<Item = (u64, &'a Line)>) -> HashMap<u64, CustomerState> {
    let mut memory = Memory::default();
    // Each batch's messages outlive its folder, which borrows their text.
    let messages: Vec<(i64, contract::partition::Key, Vec<u8>)> = numbered
        .enumerate()
        .filter_map(|(offset, (n, line))| {
            let event = event_for_line(n, line)?;
            let key = contract::partition::key(event.customer_id);
            Some((offset as i64, key, event.encode()))
        })
        .collect();
    for batch in messages.chunks(5_000) {
        let mut folder = BatchFolder::new(Bounds::now());
        for (offset, key, payload) in batch {
            let message = Message {
                partition: 0,
                offset: *offset,
                key: Some(key.as_bytes()),
                payload: Some(payload),
            };
            let outcome = folder.offer(message, &memory).unwrap();
            if let Outcome::Rejected(rejection) = outcome {
                assert_eq!(rejection.kind(), "out_of_bounds", "{rejection}");
            }
        }
        memory.write(&folder.finish().batch);
    }
    memory
        .states
        .into_iter()
        .map(|((_, customer), state)| (customer, state))
        .collect()
}

fn check(lines: &[Line]) {
    let numbered = || lines.iter().enumerate().map(|(i, l)| (i as u64 + 1, l));
    let forward = fold(numbered());
    // Out of order, and everything delivered twice: the same state.
    let backward = fold(numbered().rev().chain(numbered().step_by(2)));
    assert_eq!(forward, backward);
    let frame = dataset::normalised::to_frame(lines).unwrap();
    for cutoff in ["2010-12-01", "2011-06-01"] {
        let spec = SnapshotSpec {
            cutoff: NaiveDate::parse_from_str(cutoff, "%Y-%m-%d").unwrap(),
            horizon_months: 6,
        };
        let offline = snapshot(frame.clone().lazy(), &spec).unwrap();
        let online = from_states(forward.iter().map(|(id, s)| (*id, s)), &spec).unwrap();
        assert!(
            offline.height() > 1000,
            "{cutoff}: {} customers",
            offline.height()
        );
        let diff = differences(&offline, &online, 20);
        assert!(diff.is_empty(), "{cutoff}: {diff:#?}");
    }
}

#[test]
fn fold_equals_offline_on_the_real_data() {
    let lines = read_raw(&real_csv(), &ProgressBar::hidden()).unwrap().lines;
    check(&lines);
}

#[test]
fn fold_equals_offline_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synthetic.csv");
    clv(&[
        "data",
        "generate",
        "--seed",
        "11",
        "--out",
        out.to_str().unwrap(),
    ]);
    let lines = read_raw(&out, &ProgressBar::hidden()).unwrap().lines;
    check(&lines);
}
