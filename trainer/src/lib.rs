//! The trainer: snapshots at a cutoff (features before it, 6-month label after it) -> candidate models ->
//! out-of-time backtest -> versioned registry with a `production` pointer.
//!
//! Not built yet: the issue "Trainer" fills this crate.
