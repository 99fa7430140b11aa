//! Point-in-time snapshots from per-customer states (the online path's side), and the equality rule by
//! which two snapshots agree (the contract's "Money" section).

use polars::prelude::*;

use crate::aggregate::CustomerState;
use crate::contract::{
    FEATURES, LABEL, NAIVE, NAIVE_MONTHS, add_months, epoch_ms, midnight, pounds,
};
use crate::offline::SnapshotSpec;

/// The snapshot of `states` at `spec`: the same columns, rows and order as
/// [`crate::offline::snapshot`] computes from the lines.
pub fn from_states<'a>(
    states: impl IntoIterator<Item = (u64, &'a CustomerState)>,
    spec: &SnapshotSpec,
) -> PolarsResult<DataFrame> {
    let t = epoch_ms(midnight(spec.cutoff));
    let horizon_end = epoch_ms(midnight(add_months(
        spec.cutoff,
        spec.horizon_months as i32,
    )));
    let naive_start = epoch_ms(midnight(add_months(spec.cutoff, -(NAIVE_MONTHS as i32))));
    let mut rows: Vec<_> = states
        .into_iter()
        .filter_map(|(id, state)| {
            let f = state.features(t)?;
            let label = pounds(state.revenue_between(t, horizon_end));
            let naive = pounds(state.revenue_between(naive_start, t));
            Some((id as i64, f, label, naive))
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let ints = |f: fn(&crate::aggregate::Features) -> i64| {
        rows.iter().map(|r| f(&r.1)).collect::<Vec<i64>>()
    };
    let floats = |f: fn(&crate::aggregate::Features) -> f64| {
        rows.iter().map(|r| f(&r.1)).collect::<Vec<f64>>()
    };
    let optional = |f: fn(&crate::aggregate::Features) -> Option<f64>| {
        rows.iter().map(|r| f(&r.1)).collect::<Vec<Option<f64>>>()
    };
    DataFrame::new_infer_height(vec![
        Column::new(
            "customer_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<i64>>(),
        ),
        Column::new(FEATURES[0].into(), ints(|f| f.recency_days)),
        Column::new(FEATURES[1].into(), ints(|f| f.frequency)),
        Column::new(FEATURES[2].into(), floats(|f| f.total_revenue)),
        Column::new(FEATURES[3].into(), floats(|f| f.avg_order_value)),
        Column::new(FEATURES[4].into(), ints(|f| f.tenure_days)),
        Column::new(FEATURES[5].into(), ints(|f| f.active_months)),
        Column::new(FEATURES[6].into(), floats(|f| f.purchase_velocity)),
        Column::new(FEATURES[7].into(), optional(|f| f.avg_gap_days)),
        Column::new(FEATURES[8].into(), optional(|f| f.std_gap_days)),
        Column::new(LABEL.into(), rows.iter().map(|r| r.2).collect::<Vec<f64>>()),
        Column::new(NAIVE.into(), rows.iter().map(|r| r.3).collect::<Vec<f64>>()),
    ])
}

/// Whether two floats agree: within 1e-6 relative, or 1e-6 absolute near zero.
pub fn floats_agree(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// The differences between two snapshots, as readable lines (empty when they agree): same columns, same
/// customers in the same order, every integer equal, every float agreeing, nulls in the same places.
pub fn differences(expected: &DataFrame, actual: &DataFrame, at_most: usize) -> Vec<String> {
    let mut out = Vec::new();
    if expected.get_column_names() != actual.get_column_names() {
        out.push(format!(
            "columns differ: {:?} vs {:?}",
            expected.get_column_names(),
            actual.get_column_names()
        ));
        return out;
    }
    if expected.height() != actual.height() {
        out.push(format!(
            "{} rows vs {} rows",
            expected.height(),
            actual.height()
        ));
    }
    let ids = |frame: &DataFrame| -> Vec<Option<i64>> {
        frame
            .column("customer_id")
            .and_then(|c| c.cast(&DataType::Int64))
            .map(|c| c.i64().map(|ca| ca.iter().collect()).unwrap_or_default())
            .unwrap_or_default()
    };
    let (expected_ids, actual_ids) = (ids(expected), ids(actual));
    for (column_e, column_a) in expected.columns().iter().zip(actual.columns()) {
        let name = column_e.name();
        let (e, a) = match (
            column_e.cast(&DataType::Float64),
            column_a.cast(&DataType::Float64),
        ) {
            (Ok(e), Ok(a)) => (e, a),
            _ => {
                out.push(format!("{name}: not numeric"));
                continue;
            }
        };
        let (Ok(e), Ok(a)) = (e.f64(), a.f64()) else {
            continue;
        };
        let exact = column_e.dtype().is_integer();
        for (row, (x, y)) in e.iter().zip(a.iter()).enumerate() {
            let same = match (x, y) {
                (None, None) => true,
                (Some(x), Some(y)) if exact => x == y,
                (Some(x), Some(y)) => floats_agree(x, y),
                _ => false,
            };
            if !same && out.len() < at_most {
                out.push(format!(
                    "customer {:?} / {:?}: {name} {x:?} vs {y:?}",
                    expected_ids.get(row).copied().flatten(),
                    actual_ids.get(row).copied().flatten()
                ));
            }
        }
    }
    out
}
