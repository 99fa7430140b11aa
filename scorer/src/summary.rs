//! The scored customers in numbers (`GET /customers/summary`, the overview's histogram and
//! segments): computed over the customers a scorer keeps, and added up over a group's owners.

use std::collections::BTreeMap;

use crate::population::Population;
use crate::response::SummaryResponse;

/// The predicted CLV's histogram edges, pounds.
pub const EDGES: [f64; 9] = [
    10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// A tier's or band's name as the API spells it.
fn name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The customers of `population` that `keep` keeps, in numbers.
pub fn summarize(population: &Population, keep: impl Fn(u64) -> bool) -> SummaryResponse {
    let mut histogram = vec![0u64; EDGES.len() + 2];
    let mut segments: BTreeMap<String, usize> = BTreeMap::new();
    let (mut total, mut customers) = (0.0, 0usize);
    for (_, scored) in population.iter().filter(|(id, _)| keep(*id)) {
        customers += 1;
        let clv = scored.clv_6m;
        total += clv;
        let bucket = match clv <= 0.0 {
            true => 0,
            false => 1 + EDGES.partition_point(|e| *e < clv),
        };
        histogram[bucket] += 1;
        if let Some(s) = scored.segment {
            *segments
                .entry(format!("{}/{}", name(s.value), name(s.activity)))
                .or_default() += 1;
        }
    }
    SummaryResponse {
        as_of: population.as_of,
        model: population.model.clone(),
        customers,
        total_clv: (total * 100.0).round() / 100.0,
        edges: EDGES.to_vec(),
        histogram,
        segments,
    }
}

/// The owners' summaries added up (they agree on `as_of` and the model: the caller checks); none
/// for none.
pub fn add(parts: Vec<SummaryResponse>) -> Option<SummaryResponse> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next()?;
    for part in parts {
        sum.customers += part.customers;
        sum.total_clv += part.total_clv;
        if part.histogram.len() == sum.histogram.len() {
            for (a, b) in sum.histogram.iter_mut().zip(&part.histogram) {
                *a += b;
            }
        }
        for (segment, n) in part.segments {
            *sum.segments.entry(segment).or_default() += n;
        }
    }
    sum.total_clv = (sum.total_clv * 100.0).round() / 100.0;
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(
        customers: usize,
        total: f64,
        histogram: Vec<u64>,
        segment: (&str, usize),
    ) -> SummaryResponse {
        SummaryResponse {
            as_of: chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap(),
            model: crate::response::ModelRef {
                name: "m".into(),
                version: "v1".into(),
            },
            customers,
            total_clv: total,
            edges: EDGES.to_vec(),
            histogram,
            segments: [(segment.0.to_string(), segment.1)].into(),
        }
    }

    #[test]
    fn the_owners_summaries_add_up() {
        let mut a = vec![0u64; EDGES.len() + 2];
        a[1] = 2;
        let mut b = vec![0u64; EDGES.len() + 2];
        b[1] = 1;
        b[10] = 4;
        let sum = add(vec![
            part(2, 10.5, a, ("high/active", 2)),
            part(5, 0.25, b, ("high/active", 1)),
        ])
        .unwrap();
        assert_eq!(sum.customers, 7);
        assert_eq!(sum.total_clv, 10.75);
        assert_eq!(sum.histogram[1], 3);
        assert_eq!(sum.histogram[10], 4);
        assert_eq!(sum.segments["high/active"], 3);
        assert!(add(vec![]).is_none());
    }
}
