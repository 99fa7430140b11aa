//! Point-in-time training sets: per-customer purchase histories (from the feature store or from the
//! lines), the model-wide inputs fitted at a cutoff T on the purchases before it, and at T every
//! customer's feature row ([`contract::FeatureRow`], computed by [`contract::row::RowBuilder`] exactly
//! as the scorer computes it) with the label after T.

use std::collections::{BTreeMap, HashMap};

use contract::probabilistic::{Rft, daily_summary};
use contract::row::RowBuilder;
use contract::{
    CustomerState, Feature, FeatureRow, LABEL, ModelInputs, Purchase, Seasonality, SnapshotSpec,
    pounds,
};
use offline::lines::purchases;
use offline::states::{feature_columns, feature_values};
use polars::prelude::*;

use crate::{Result, TrainError};

/// Every customer's purchase history, by customer ID.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    customers: Vec<(u64, CustomerState)>,
}

impl Histories {
    /// From the states of the feature store.
    pub fn from_states(mut customers: Vec<(u64, CustomerState)>) -> Self {
        customers.sort_by_key(|(id, _)| *id);
        Histories { customers }
    }

    /// From normalised lines (`dataset::normalised`), through the contract's purchase rule.
    pub fn from_lines(lines: LazyFrame) -> Result<Self> {
        let frame = purchases(lines).collect()?;
        let ids = frame.column("customer_id")?.i64()?.clone();
        let invoices = frame.column("invoice")?.str()?.clone();
        let times = frame.column("time_ms")?.i64()?.clone();
        let revenues = frame.column("revenue_milli")?.i64()?.clone();
        let mut states: BTreeMap<u64, CustomerState> = BTreeMap::new();
        for i in 0..frame.height() {
            let (Some(id), Some(invoice), Some(time_ms), Some(revenue_milli)) =
                (ids.get(i), invoices.get(i), times.get(i), revenues.get(i))
            else {
                return Err(TrainError::Input(format!("purchase row {i} has a null")));
            };
            let id = u64::try_from(id)
                .map_err(|_| TrainError::Input(format!("customer ID {id} is negative")))?;
            states.entry(id).or_default().purchases.insert(
                invoice.to_string(),
                Purchase {
                    time_ms,
                    revenue_milli,
                },
            );
        }
        Ok(Histories {
            customers: states.into_iter().collect(),
        })
    }

    /// The customers and their states, by ID.
    pub fn customers(&self) -> &[(u64, CustomerState)] {
        &self.customers
    }

    /// The time of the last purchase of anyone.
    pub fn last_purchase_ms(&self) -> Option<i64> {
        self.customers
            .iter()
            .flat_map(|(_, s)| s.purchases.values().map(|p| p.time_ms))
            .max()
    }

    /// The time of the first purchase of anyone.
    pub fn first_purchase_ms(&self) -> Option<i64> {
        self.customers
            .iter()
            .flat_map(|(_, s)| s.purchases.values().map(|p| p.time_ms))
            .min()
    }

    /// A fingerprint of every purchase (customer, time, revenue): their count and an FNV-1a hash, so
    /// that two runs can tell whether they trained on the same data.
    pub fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut count = 0u64;
        for (id, state) in &self.customers {
            let mut purchases: Vec<&Purchase> = state.purchases.values().collect();
            purchases.sort_by_key(|p| (p.time_ms, p.revenue_milli));
            for p in purchases {
                count += 1;
                for value in [*id as i64, p.time_ms, p.revenue_milli] {
                    for byte in value.to_le_bytes() {
                        hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
        }
        format!("purchases:{count}:fnv1a:{hash:016x}")
    }

    /// Total revenue (thousandths) of every purchase in [from, to).
    pub fn revenue_between(&self, from_ms: i64, to_ms: i64) -> i128 {
        self.customers
            .iter()
            .map(|(_, s)| i128::from(s.revenue_between(from_ms, to_ms)))
            .sum()
    }
}

/// A seeded sample of customers, so that training time grows slower than the data: a customer is in
/// it when a hash of its ID and the seed falls below the sampled fraction, so all of a customer's
/// rows (one per stacked snapshot) are kept or dropped together, the same seed gives the same
/// sample, and a larger fraction keeps every customer a smaller one keeps. Evaluation snapshots are
/// never sampled: every customer is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// At most this many rows in a stacked training set.
    pub max_rows: usize,
    /// At most about this many customers for fitting BG/NBD and Gamma-Gamma at a cutoff.
    pub max_fit_customers: usize,
    /// The seed of the hash.
    pub seed: u64,
}

impl Default for Sample {
    /// 250,000 training rows and 100,000 customers per fit (the real data has about 35,000 stacked
    /// rows and 5,900 customers: it is never sampled).
    fn default() -> Self {
        Sample {
            max_rows: 250_000,
            max_fit_customers: 100_000,
            seed: 0,
        }
    }
}

impl Sample {
    /// Whether `customer` is in the sample of `fraction` (0..=1) of the customers.
    pub fn keeps(&self, customer: u64, fraction: f64) -> bool {
        fraction >= 1.0 || self.rank(customer) < fraction
    }

    /// The customer's place in the seed's order, in [0, 1): a sample keeps the customers below a
    /// threshold.
    fn rank(&self, customer: u64) -> f64 {
        // splitmix64: well mixed for sequential IDs.
        let mut z = customer ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64) / ((1u64 << 53) as f64)
    }

    /// The fraction that brings `n` down to about `max`.
    pub fn fraction(n: usize, max: usize) -> f64 {
        match n {
            0 => 1.0,
            n => (max as f64 / n as f64).min(1.0),
        }
    }

    /// `labelled` with only the sampled customers' rows, when it has more than `max_rows`; and the
    /// fraction of its customers kept. The threshold is the rank below which whole customers'
    /// rows add up to at most `max_rows`, so a sample holds at most `max_rows` rows (fewer by less
    /// than one customer's), and a sample of a sample is the smaller sample (not a fraction of a
    /// fraction).
    pub fn rows(&self, labelled: Labelled) -> (Labelled, f64) {
        if labelled.len() <= self.max_rows {
            return (labelled, 1.0);
        }
        let mut per_customer: HashMap<u64, usize> = HashMap::new();
        for id in &labelled.customer_ids {
            *per_customer.entry(*id).or_default() += 1;
        }
        let mut ranked: Vec<(f64, usize)> = per_customer
            .iter()
            .map(|(id, rows)| (self.rank(*id), *rows))
            .collect();
        ranked.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut rows = 0;
        let mut threshold = 1.0;
        let mut customers = 0;
        for (rank, n) in &ranked {
            if rows + n > self.max_rows {
                threshold = *rank;
                break;
            }
            rows += n;
            customers += 1;
        }
        let mut out = Labelled::default();
        for ((id, row), label) in labelled
            .customer_ids
            .into_iter()
            .zip(labelled.rows)
            .zip(labelled.labels)
        {
            if self.rank(id) < threshold {
                out.customer_ids.push(id);
                out.rows.push(row);
                out.labels.push(label);
            }
        }
        (out, customers as f64 / ranked.len() as f64)
    }
}

/// Fits the model-wide inputs at `spec.cutoff` on the purchases before it: BG/NBD and Gamma-Gamma
/// on every customer's per-day summary (on `sample`'s customers when more than
/// `sample.max_fit_customers` bought before the cutoff), and the seasonal profile of the year before
/// (a sum over everyone: not sampled).
pub fn fit_inputs(
    histories: &Histories,
    spec: &SnapshotSpec,
    sample: &Sample,
) -> Result<ModelInputs> {
    let cutoff_ms = spec.cutoff_ms();
    let mut summaries: Vec<(u64, (Rft, f64))> = histories
        .customers
        .iter()
        .filter_map(|(id, s)| Some((*id, daily_summary(s, cutoff_ms)?)))
        .collect();
    let fraction = Sample::fraction(summaries.len(), sample.max_fit_customers);
    if fraction < 1.0 {
        summaries.retain(|(id, _)| sample.keeps(*id, fraction));
        tracing::info!(cutoff = %spec.cutoff, customers = summaries.len(), fraction, "fitting BG/NBD on a sample");
    }
    let summaries: Vec<(Rft, f64)> = summaries.into_iter().map(|(_, s)| s).collect();
    let rft: Vec<Rft> = summaries.iter().map(|(c, _)| *c).collect();
    let bgnbd = crate::fit::bgnbd(&rft)?;
    let repeaters: Vec<(f64, f64)> = summaries.iter().map(|(c, m)| (c.x, *m)).collect();
    let gamma_gamma = crate::fit::gamma_gamma(&repeaters)?;
    let seasonality = match histories.first_purchase_ms() {
        Some(first) => Seasonality::fit(spec.cutoff, first, |from, to| {
            histories.revenue_between(from, to)
        }),
        None => Seasonality::flat(),
    };
    Ok(ModelInputs {
        horizon_months: spec.horizon_months,
        bgnbd,
        gamma_gamma,
        seasonality,
        fitted_at: Some(spec.cutoff),
    })
}

/// Customers' feature rows with their labels: one snapshot, snapshots stacked, or part of a table.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    /// The customer of each row.
    pub customer_ids: Vec<u64>,
    /// The feature rows.
    pub rows: Vec<FeatureRow>,
    /// The label of each row: revenue in its label window, pounds.
    pub labels: Vec<f64>,
}

impl Labelled {
    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: &Labelled) {
        self.customer_ids.extend(&other.customer_ids);
        self.rows.extend(&other.rows);
        self.labels.extend(&other.labels);
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// As a frame: `customer_id`, every feature of the row ([`Feature::ALL`], in column order), then
    /// the label `clv_6m`.
    pub fn frame(&self) -> Result<DataFrame> {
        let values: Vec<Vec<Option<f64>>> = self.rows.iter().map(FeatureRow::values).collect();
        let mut columns = vec![Column::new(
            "customer_id".into(),
            self.customer_ids
                .iter()
                .map(|id| *id as i64)
                .collect::<Vec<i64>>(),
        )];
        columns.extend(feature_columns(Feature::ALL, &values));
        columns.push(Column::new(LABEL.into(), self.labels.clone()));
        Ok(DataFrame::new_infer_height(columns)?)
    }

    /// From a frame with `customer_id`, every feature column and the label (the inverse of
    /// [`Labelled::frame`]).
    pub fn from_frame(frame: &DataFrame) -> Result<Self> {
        let ids = frame.column("customer_id")?.cast(&DataType::Int64)?;
        let customer_ids = ids
            .i64()?
            .iter()
            .map(|id| {
                id.and_then(|id| u64::try_from(id).ok())
                    .ok_or_else(|| TrainError::Input("a customer_id that is not positive".into()))
            })
            .collect::<Result<Vec<u64>>>()?;
        let rows = feature_values(frame, Feature::ALL)?
            .iter()
            .map(|values| FeatureRow::from_values(values))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let labels = frame.column(LABEL)?.cast(&DataType::Float64)?;
        let labels = labels.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect();
        Ok(Labelled {
            customer_ids,
            rows,
            labels,
        })
    }
}

/// The training snapshot at `spec`: every customer with a purchase before the cutoff, with their row
/// (computed with `inputs`) and label.
pub fn snapshot(histories: &Histories, spec: &SnapshotSpec, inputs: &ModelInputs) -> Labelled {
    let builder = RowBuilder::new(inputs, spec.cutoff);
    let (t, end) = (spec.cutoff_ms(), spec.horizon_end_ms());
    let mut out = Labelled::default();
    for (id, state) in &histories.customers {
        if let Some(row) = builder.row(state) {
            out.customer_ids.push(*id);
            out.rows.push(row);
            out.labels.push(pounds(state.revenue_between(t, end)));
        }
    }
    out
}

/// For tests: the row at 2011-06-01 of a customer with one £10 purchase on 2011-01-01, with the
/// published CDNOW inputs.
#[cfg(test)]
pub(crate) fn example_row() -> FeatureRow {
    let mut state = CustomerState::default();
    state.purchases.insert(
        "1".into(),
        Purchase {
            time_ms: 1_293_840_000_000, // 2011-01-01
            revenue_milli: 10_000,
        },
    );
    let inputs = ModelInputs::example();
    let cutoff = chrono::NaiveDate::from_ymd_opt(2011, 6, 1).expect("a date");
    contract::RowBuilder::new(&inputs, cutoff)
        .row(&state)
        .expect("a purchase before the cutoff has a row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_seeded_nested_and_near_its_size() {
        let sample = Sample {
            max_rows: 1_000,
            max_fit_customers: 1_000,
            seed: 7,
        };
        let kept = |fraction: f64, sample: &Sample| -> Vec<u64> {
            (0..100_000u64)
                .filter(|id| sample.keeps(*id, fraction))
                .collect()
        };
        let tenth = kept(0.1, &sample);
        assert!((9_500..10_500).contains(&tenth.len()), "{}", tenth.len());
        assert_eq!(tenth, kept(0.1, &sample), "the same seed, the same sample");
        let fifth = kept(0.2, &sample);
        assert!(
            tenth.iter().all(|id| fifth.binary_search(id).is_ok()),
            "nested"
        );
        assert_ne!(tenth, kept(0.1, &Sample { seed: 8, ..sample }));
        assert_eq!(kept(1.0, &sample).len(), 100_000);
        // Below the cap a set is untouched; above it, whole customers are kept.
        let labelled = Labelled {
            customer_ids: (0..3_000u64).map(|i| i % 1_500).collect(),
            rows: vec![example_row(); 3_000],
            labels: (0..3_000).map(f64::from).collect(),
        };
        let (same, fraction) = Sample {
            max_rows: 3_000,
            ..sample
        }
        .rows(labelled.clone());
        assert_eq!((same.len(), fraction), (3_000, 1.0));
        let (sampled, fraction) = sample.rows(labelled);
        assert!((fraction - 1.0 / 3.0).abs() < 1e-9, "{fraction}");
        assert_eq!(sampled.len(), 1_000);
        for id in &sampled.customer_ids {
            let rows = sampled.customer_ids.iter().filter(|i| *i == id).count();
            assert_eq!(rows, 2, "both rows of customer {id}");
        }
        // A sample of the sample (the tree ensembles' budget within a sampled training set) is
        // the smaller sample, not a fraction of the fraction: at most its rows, all within the first.
        let (smaller, _) = Sample {
            max_rows: 400,
            ..sample
        }
        .rows(sampled.clone());
        assert_eq!(smaller.len(), 400);
        assert!(
            smaller
                .customer_ids
                .iter()
                .all(|id| sampled.customer_ids.contains(id))
        );
    }
}
