//! The scored population: every customer's features at `as_of` and the production model's CLV, built
//! in one pass from the store's states whenever the store, the model or `as_of` changes, and read by
//! the handlers without locks. Models such as the seasonal BG/NBD scale within the population, so a
//! customer's CLV is a property of the whole snapshot, not of one state.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use featurestore::SnapshotSpec;
use featurestore::aggregate::CustomerState;
use featurestore::contract::{FEATURES, MS_PER_DAY, epoch_ms, midnight};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use trainer::training::{EXTRA_FEATURES, Histories, training_frame};
use utoipa::ToSchema;

use crate::follow::Production;
use crate::{Result, ScorerError};

/// The model that scored a population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelRef {
    /// The candidate's name, e.g. `bgnbd_gg_seasonal_yb0.2_q1.05`.
    pub name: String,
    /// The registry version, e.g. `v0003`.
    pub version: String,
}

/// A customer's feature vector at `as_of` (FEATURES.md): the contract's nine and the extra
/// point-in-time features the models read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureVector {
    /// Days from the last purchase to `as_of`.
    pub recency_days: i64,
    /// Purchases (invoices) before `as_of`.
    pub frequency: i64,
    /// Revenue of those purchases, £.
    pub total_revenue: f64,
    /// Revenue per purchase, £.
    pub avg_order_value: f64,
    /// Days from the first purchase to `as_of`.
    pub tenure_days: i64,
    /// Distinct calendar months with a purchase.
    pub active_months: i64,
    /// Purchases per 30 days of tenure.
    pub purchase_velocity: f64,
    /// Mean days between consecutive purchases (null with one purchase).
    pub avg_gap_days: Option<f64>,
    /// Their standard deviation (null with fewer than three purchases).
    pub std_gap_days: Option<f64>,
    /// The extra features (`revenue_last_3m`, `bgnbd_p_alive`, ...).
    pub extra: BTreeMap<String, f64>,
}

/// `GET /customers/{id}/clv`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClvResponse {
    /// The customer.
    pub customer_id: u64,
    /// Predicted revenue in the 6 months from `as_of`, £.
    pub clv_6m: f64,
    /// The model that predicted it.
    pub model: ModelRef,
    /// The time the features are taken at (midnight, UTC).
    pub as_of: NaiveDate,
    /// The features the prediction used.
    pub features: FeatureVector,
}

/// How fresh the features are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Freshness {
    /// The latest purchase time ingested (event time).
    pub watermark: Option<DateTime<Utc>>,
    /// When the scorer last rebuilt the population from the store (wall time).
    pub refreshed_at: DateTime<Utc>,
    /// The store's sequence number read then.
    pub store_sequence: u64,
}

/// `GET /customers/{id}/features`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeaturesResponse {
    /// The customer.
    pub customer_id: u64,
    /// The time the features are taken at.
    pub as_of: NaiveDate,
    /// The features.
    pub features: FeatureVector,
    /// Their freshness.
    pub freshness: Freshness,
}

/// One row of the top list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ranked {
    /// 1 for the highest predicted CLV.
    pub rank: usize,
    /// The customer.
    pub customer_id: u64,
    /// Predicted revenue in the 6 months from `as_of`, £.
    pub clv_6m: f64,
}

/// One customer, with the bodies of its two responses serialized once per refresh.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The predicted CLV.
    pub clv_6m: f64,
    /// The JSON of [`ClvResponse`].
    pub clv_body: Bytes,
    /// The JSON of [`FeaturesResponse`].
    pub features_body: Bytes,
}

/// Every customer with a purchase before `as_of`, scored.
#[derive(Debug, Clone)]
pub struct Population {
    /// The time the features are taken at.
    pub as_of: NaiveDate,
    /// The model.
    pub model: ModelRef,
    /// Freshness of the store read.
    pub freshness: Freshness,
    /// By customer ID.
    pub customers: HashMap<u64, Scored>,
    /// Customer IDs and CLV, highest CLV first (ties by ID).
    pub ranking: Vec<(u64, f64)>,
}

/// `as_of` by FEATURES.md "Online": the watermark rounded up to the next midnight (a purchase exactly
/// at midnight counts too, so the next day's midnight).
pub fn as_of_watermark(watermark_ms: i64) -> Option<NaiveDate> {
    let day = watermark_ms.div_euclid(MS_PER_DAY) + 1;
    DateTime::from_timestamp_millis(day * MS_PER_DAY).map(|t| t.date_naive())
}

/// Pounds rounded to pence.
fn pence(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn floats(frame: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let column = frame.column(name)?.cast(&DataType::Float64)?;
    Ok(column.f64()?.iter().collect())
}

impl Population {
    /// Scores `states` at `as_of` with `production`.
    pub fn score(
        states: Vec<(u64, CustomerState)>,
        watermark_ms: Option<i64>,
        store_sequence: u64,
        as_of: NaiveDate,
        production: &Production,
    ) -> Result<Population> {
        let model = ModelRef {
            name: production.name.clone(),
            version: production.version.clone(),
        };
        let freshness = Freshness {
            watermark: watermark_ms.and_then(DateTime::from_timestamp_millis),
            refreshed_at: Utc::now(),
            store_sequence,
        };
        let histories = Histories::from_states(states);
        let mut population = Population {
            as_of,
            model,
            freshness,
            customers: HashMap::new(),
            ranking: Vec::new(),
        };
        let has_purchase_before = histories
            .first_purchase_ms()
            .is_some_and(|first| first < epoch_ms(midnight(as_of)));
        if !has_purchase_before {
            return Ok(population);
        }
        let spec = SnapshotSpec {
            cutoff: as_of,
            horizon_months: production.horizon_months,
        };
        let (frame, _) =
            training_frame(&histories, &spec, production.model.probabilistic.as_ref())?;
        let predicted = production.model.predict(&frame)?;
        let ids = frame.column("customer_id")?.cast(&DataType::Int64)?;
        let ids: Vec<Option<i64>> = ids.i64()?.iter().collect();
        let nine: Vec<Vec<Option<f64>>> = FEATURES
            .iter()
            .map(|name| floats(&frame, name))
            .collect::<Result<_>>()?;
        let extra: Vec<Vec<Option<f64>>> = EXTRA_FEATURES
            .iter()
            .map(|name| floats(&frame, name))
            .collect::<Result<_>>()?;
        for (row, id) in ids.iter().enumerate() {
            let id = id.ok_or_else(|| ScorerError::Model("a customer without ID".into()))? as u64;
            let value = |k: usize| nine[k][row];
            let whole = |k: usize| value(k).unwrap_or(0.0).round() as i64;
            let features = FeatureVector {
                recency_days: whole(0),
                frequency: whole(1),
                total_revenue: value(2).unwrap_or(0.0),
                avg_order_value: value(3).unwrap_or(0.0),
                tenure_days: whole(4),
                active_months: whole(5),
                purchase_velocity: value(6).unwrap_or(0.0),
                avg_gap_days: value(7),
                std_gap_days: value(8),
                extra: EXTRA_FEATURES
                    .iter()
                    .zip(&extra)
                    .map(|(name, column)| (name.to_string(), column[row].unwrap_or(0.0)))
                    .collect(),
            };
            let clv_6m = pence(predicted[row]);
            let clv_body = serde_json::to_vec(&ClvResponse {
                customer_id: id,
                clv_6m,
                model: population.model.clone(),
                as_of,
                features: features.clone(),
            })?;
            let features_body = serde_json::to_vec(&FeaturesResponse {
                customer_id: id,
                as_of,
                features,
                freshness: population.freshness.clone(),
            })?;
            population.customers.insert(
                id,
                Scored {
                    clv_6m,
                    clv_body: clv_body.into(),
                    features_body: features_body.into(),
                },
            );
            population.ranking.push((id, clv_6m));
        }
        population
            .ranking
            .sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(population)
    }

    /// The `k` customers with the highest predicted CLV.
    pub fn top(&self, k: usize) -> Vec<Ranked> {
        self.ranking
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, (id, clv))| Ranked {
                rank: i + 1,
                customer_id: *id,
                clv_6m: *clv,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_the_next_midnight_after_the_watermark() {
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            as_of_watermark(at("2011-12-09 12:50")),
            Some(date("2011-12-10"))
        );
        assert_eq!(
            as_of_watermark(at("2011-12-09 00:00")),
            Some(date("2011-12-10"))
        );
        assert_eq!(
            as_of_watermark(at("2011-12-09 23:59")),
            Some(date("2011-12-10"))
        );
    }
}
