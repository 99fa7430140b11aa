//! Point-in-time training sets: per-customer purchase histories (from the feature store or from the
//! lines), and at a cutoff T the contract's nine features, extra features, the label and the naive
//! baseline, every feature from purchases strictly before T.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use featurestore::aggregate::{CustomerState, Purchase};
use featurestore::contract::{FEATURES, LABEL, MS_PER_DAY, NAIVE, add_months, epoch_ms, midnight};
use featurestore::offline::{SnapshotSpec, purchases};
use polars::prelude::*;

use crate::probabilistic::{BgNbd, GammaGamma, Rft};
use crate::{Result, TrainError};

/// Extra features beyond the contract's nine, all from purchases before the cutoff.
pub const EXTRA_FEATURES: [&str; 7] = [
    "revenue_last_3m",
    "revenue_year_before_window",
    "bgnbd_expected_purchases",
    "bgnbd_p_alive",
    "gg_expected_spend",
    "bgnbd_clv",
    "season_index",
];

/// The column of the seasonal index: everyone's revenue in the label window's months a year before
/// the cutoff over half of everyone's revenue in the year before the cutoff (1 when that year is not
/// in the data from its first day). The same for every customer of a snapshot.
pub const SEASON_INDEX: &str = "season_index";

/// The column of each customer's revenue in the label window's months a year before the cutoff.
pub const YEAR_BEFORE: &str = "revenue_year_before_window";

/// The column of the BG/NBD + Gamma-Gamma prediction (expected purchases × expected spend).
pub const BGNBD_CLV: &str = "bgnbd_clv";

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
            states.entry(id as u64).or_default().purchases.insert(
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
    pub fn revenue_between(&self, from_ms: i64, to_ms: i64) -> i64 {
        self.customers
            .iter()
            .map(|(_, s)| s.revenue_between(from_ms, to_ms))
            .sum()
    }
}

/// Per-day purchase summary of one customer before `cutoff_ms`, as lifetimes builds it with
/// `freq="D"` and the observation ending on the day before the cutoff: purchases of one calendar day
/// are one; `x` = days − 1, `t_x` = last − first day, `t` = (cutoff day − 1) − first day; and the mean
/// revenue (pounds) of the repeat days.
pub fn daily_summary(state: &CustomerState, cutoff_ms: i64) -> Option<(Rft, f64)> {
    let mut days: BTreeMap<i64, i64> = BTreeMap::new();
    for p in state.purchases.values().filter(|p| p.time_ms < cutoff_ms) {
        *days.entry(p.time_ms.div_euclid(MS_PER_DAY)).or_default() += p.revenue_milli;
    }
    let (&first, _) = days.first_key_value()?;
    let (&last, _) = days.last_key_value()?;
    let end = cutoff_ms.div_euclid(MS_PER_DAY) - 1;
    let x = (days.len() - 1) as f64;
    let repeat_value: i64 = days.values().skip(1).sum();
    let monetary = if x > 0.0 {
        repeat_value as f64 / 1000.0 / x
    } else {
        0.0
    };
    Some((
        Rft {
            x,
            t_x: (last - first) as f64,
            t: (end - first) as f64,
        },
        monetary,
    ))
}

/// BG/NBD and Gamma-Gamma fitted on the histories before a cutoff.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Probabilistic {
    /// Purchase and dropout process (days).
    pub bgnbd: BgNbd,
    /// Spend per purchase day (pounds).
    pub gamma_gamma: GammaGamma,
}

impl Probabilistic {
    /// Fits both models on every customer with a purchase before `cutoff_ms`.
    pub fn fit(histories: &Histories, cutoff_ms: i64) -> Result<Self> {
        let summaries: Vec<(Rft, f64)> = histories
            .customers
            .iter()
            .filter_map(|(_, s)| daily_summary(s, cutoff_ms))
            .collect();
        let rft: Vec<Rft> = summaries.iter().map(|(c, _)| *c).collect();
        let bgnbd = BgNbd::fit(&rft)?;
        let repeaters: Vec<(f64, f64)> = summaries.iter().map(|(c, m)| (c.x, *m)).collect();
        let gamma_gamma = GammaGamma::fit(&repeaters)?;
        Ok(Probabilistic { bgnbd, gamma_gamma })
    }
}

/// The training set at `spec`: `customer_id`, the nine features (contract order), the extra features,
/// `clv_6m` and `naive_6m`. BG/NBD and Gamma-Gamma are fitted on the purchases before the cutoff
/// unless `fitted` is given (the production model carries its own).
pub fn training_frame(
    histories: &Histories,
    spec: &SnapshotSpec,
    fitted: Option<&Probabilistic>,
) -> Result<(DataFrame, Probabilistic)> {
    let t = epoch_ms(midnight(spec.cutoff));
    let base = featurestore::snapshot::from_states(
        histories.customers.iter().map(|(id, s)| (*id, s)),
        spec,
    )?;
    let probabilistic = match fitted {
        Some(p) => *p,
        None => Probabilistic::fit(histories, t)?,
    };
    let horizon_days = days_between(
        spec.cutoff,
        add_months(spec.cutoff, spec.horizon_months as i32),
    );
    let three_months_ago = epoch_ms(midnight(add_months(spec.cutoff, -3)));
    let year_before = (
        epoch_ms(midnight(add_months(spec.cutoff, -12))),
        epoch_ms(midnight(add_months(
            spec.cutoff,
            spec.horizon_months as i32 - 12,
        ))),
    );
    let by_id: BTreeMap<u64, &CustomerState> =
        histories.customers.iter().map(|(id, s)| (*id, s)).collect();
    let ids = base.column("customer_id")?.i64()?.clone();
    // The data covers the year before when it begins on or before that year's first day.
    let first_day = histories
        .first_purchase_ms()
        .unwrap_or(t)
        .div_euclid(MS_PER_DAY)
        * MS_PER_DAY;
    let season_index = if first_day <= year_before.0 {
        let window = histories.revenue_between(year_before.0, year_before.1) as f64;
        let year = histories.revenue_between(year_before.0, t) as f64;
        if year > 0.0 {
            window / (year * spec.horizon_months as f64 / 12.0)
        } else {
            1.0
        }
    } else {
        1.0
    };
    let mut extra: [Vec<f64>; 7] = Default::default();
    for id in ids.into_no_null_iter() {
        let state = by_id
            .get(&(id as u64))
            .ok_or_else(|| TrainError::Input(format!("customer {id} has no history")))?;
        let (rft, monetary) = daily_summary(state, t)
            .ok_or_else(|| TrainError::Input(format!("customer {id} has no purchase")))?;
        let purchases = probabilistic.bgnbd.expected_purchases(&rft, horizon_days);
        let spend = probabilistic.gamma_gamma.expected_spend(rft.x, monetary);
        let values = [
            state.revenue_between(three_months_ago, t) as f64 / 1000.0,
            state.revenue_between(year_before.0, year_before.1) as f64 / 1000.0,
            purchases,
            probabilistic.bgnbd.p_alive(&rft),
            spend,
            purchases * spend,
            season_index,
        ];
        for (column, value) in extra.iter_mut().zip(values) {
            column.push(value);
        }
    }
    let mut columns: Vec<Column> = base.columns()[..1 + FEATURES.len()].to_vec();
    for (name, values) in EXTRA_FEATURES.iter().zip(extra) {
        columns.push(Column::new((*name).into(), values));
    }
    columns.push(base.column(LABEL)?.clone());
    columns.push(base.column(NAIVE)?.clone());
    Ok((DataFrame::new_infer_height(columns)?, probabilistic))
}

/// Whole days from `from` to `to`.
pub fn days_between(from: NaiveDate, to: NaiveDate) -> f64 {
    (to - from).num_days() as f64
}
