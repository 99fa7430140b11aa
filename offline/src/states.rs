//! Point-in-time snapshots from per-customer states (the online path's side), and the equality rule by
//! which two snapshots agree (the contract's "Money" section).

use polars::prelude::*;

use contract::{CustomerState, Feature, FeatureKind, LABEL, Nine, SnapshotSpec, pounds};

/// The snapshot of `states` at `spec`: the same columns, rows and order as
/// [`crate::lines::snapshot`] computes from the lines: the nine come from the feature row
/// ([`Nine::of`], the fold's side of the differential check).
pub fn from_states<'a>(
    states: impl IntoIterator<Item = (u64, &'a CustomerState)>,
    spec: &SnapshotSpec,
) -> PolarsResult<DataFrame> {
    let (t, horizon_end, naive_start) = (
        spec.cutoff_ms(),
        spec.horizon_end_ms(),
        spec.naive_start_ms(),
    );
    let mut rows: Vec<_> = states
        .into_iter()
        .filter_map(|(id, state)| {
            let f = Nine::of(state, t)?;
            let label = pounds(state.revenue_between(t, horizon_end));
            let naive = pounds(state.revenue_between(naive_start, t));
            Some((id as i64, f, label, naive))
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut columns = vec![Column::new(
        "customer_id".into(),
        rows.iter().map(|r| r.0).collect::<Vec<i64>>(),
    )];
    let values: Vec<Vec<Option<f64>>> = rows.iter().map(|r| r.1.values()).collect();
    columns.extend(feature_columns(Feature::NINE, &values));
    columns.push(Column::new(
        LABEL.into(),
        rows.iter().map(|r| r.2).collect::<Vec<f64>>(),
    ));
    columns.push(Column::new(
        Feature::Naive6m.name().into(),
        rows.iter().map(|r| r.3).collect::<Vec<f64>>(),
    ));
    DataFrame::new_infer_height(columns)
}

/// Frame columns of `features` from rows of values in the same order (a feature row's
/// [`contract::FeatureRow::values`], or [`Nine::values`]): integers as `i64`, the rest as `f64`,
/// nulls where the row has none.
pub fn feature_columns(features: &[Feature], rows: &[Vec<Option<f64>>]) -> Vec<Column> {
    features
        .iter()
        .enumerate()
        .map(|(k, feature)| {
            let name = feature.name().into();
            let cells = rows.iter().map(|r| r.get(k).copied().flatten());
            match feature.kind() {
                FeatureKind::Integer => {
                    Column::new(name, cells.map(|v| v.map(|v| v as i64)).collect::<Vec<_>>())
                }
                FeatureKind::Number | FeatureKind::NullableNumber => {
                    Column::new(name, cells.collect::<Vec<Option<f64>>>())
                }
            }
        })
        .collect()
}

/// Rows of values of `features` from a frame's columns of those names (the inverse of
/// [`feature_columns`]).
pub fn feature_values(
    frame: &DataFrame,
    features: &[Feature],
) -> PolarsResult<Vec<Vec<Option<f64>>>> {
    let columns = features
        .iter()
        .map(|f| {
            let column = frame.column(f.name())?.cast(&DataType::Float64)?;
            Ok(column.f64()?.iter().collect::<Vec<Option<f64>>>())
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok((0..frame.height())
        .map(|i| columns.iter().map(|c| c[i]).collect())
        .collect())
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
