//! The scored population: every customer's feature row at `as_of` and the production model's CLV,
//! read by the handlers without locks.
//!
//! A customer's row is computed from that customer's state, `as_of` and the model's inputs alone, and
//! the model predicts it from that row alone (the contract's [`contract::row`], the `models` crate),
//! so a refresh rescores only the customers whose state changed ([`Population::update`]); everyone
//! is rescored only when the model or `as_of` changes ([`Population::score`]). The population is a
//! persistent map: an update shares everything it did not change with the population before it.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate};
use contract::segment::Segment;
use contract::{CustomerState, FeatureRow, MS_PER_DAY};

use crate::Result;
use crate::follow::Production;
use crate::response::{AtRisk, ClvResponse, Freshness, ModelRef, Ranked};

/// One customer, scored, with the body of its CLV response serialized once.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The predicted CLV (pence).
    pub clv_6m: f64,
    /// The feature row it was predicted from.
    pub row: FeatureRow,
    /// The JSON of [`ClvResponse`].
    pub clv_body: Bytes,
    /// Its value at risk, when it is on the at-risk list ([`contract::segment::value_at_risk`]).
    pub at_risk: Option<f64>,
    /// Its value tier and activity band (when the model has tiers).
    pub segment: Option<Segment>,
}

/// A place in a list: highest value first (the predicted CLV in the ranking, the value at risk in
/// the at-risk list), ties by customer ID.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rank {
    value: f64,
    customer: u64,
}

impl Eq for Rank {}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .value
            .total_cmp(&self.value)
            .then(self.customer.cmp(&other.customer))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
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
    customers: imbl::GenericHashMap<
        u64,
        Arc<Scored>,
        foldhash::fast::RandomState,
        imbl::shared_ptr::DefaultSharedPtr,
    >,
    ranking: imbl::OrdSet<Rank>,
    /// The at-risk list's order.
    at_risk: imbl::OrdSet<Rank>,
    /// The customers per bin of the production version's drift reference.
    drift: Option<models::drift::Counts>,
}

/// Customers scored at a time when everyone is.
const SCORING_CHUNK: usize = 8_192;

/// A population being scored: see [`Population::scoring`].
pub struct Scoring<'a> {
    population: Population,
    production: &'a Production,
    chunk: Vec<(u64, Option<CustomerState>)>,
}

impl Scoring<'_> {
    /// Adds one customer's state (scored with the chunk it completes).
    pub fn push(&mut self, id: u64, state: CustomerState) -> Result<()> {
        self.chunk.push((id, Some(state)));
        if self.chunk.len() == SCORING_CHUNK {
            self.population.apply(&self.chunk, self.production)?;
            self.chunk.clear();
        }
        Ok(())
    }

    /// The population, everyone scored.
    pub fn finish(mut self) -> Result<Population> {
        self.population.apply(&self.chunk, self.production)?;
        Ok(self.population)
    }
}

/// `as_of` by FEATURES.md "Online": the watermark rounded up to the next midnight (a purchase exactly
/// at midnight counts too, so the next day's midnight).
pub fn as_of_watermark(watermark_ms: i64) -> Option<NaiveDate> {
    let day = watermark_ms.div_euclid(MS_PER_DAY).checked_add(1)?;
    DateTime::from_timestamp_millis(day.checked_mul(MS_PER_DAY)?).map(|t| t.date_naive())
}

/// Pounds rounded to pence.
fn pence(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

impl Population {
    /// Nobody scored yet, at `as_of` with `production`.
    pub fn empty(as_of: NaiveDate, production: &Production, freshness: Freshness) -> Self {
        Population {
            as_of,
            model: ModelRef {
                name: production.name.clone(),
                version: production.version.clone(),
            },
            freshness,
            customers: imbl::GenericHashMap::default(),
            ranking: imbl::OrdSet::new(),
            at_risk: imbl::OrdSet::new(),
            drift: production.drift.as_ref().map(|r| r.counts()),
        }
    }

    /// Scores every customer of `states` at `as_of` with `production`.
    pub fn score(
        states: impl IntoIterator<Item = (u64, CustomerState)>,
        as_of: NaiveDate,
        production: &Production,
        freshness: Freshness,
    ) -> Result<Population> {
        let mut scoring = Population::scoring(as_of, production, freshness);
        for (id, state) in states {
            scoring.push(id, state)?;
        }
        scoring.finish()
    }

    /// Scores everyone a chunk at a time, as states are read ([`Scoring::push`]): memory holds the
    /// scored population and one chunk of states, never every state at once.
    pub fn scoring<'a>(
        as_of: NaiveDate,
        production: &'a Production,
        freshness: Freshness,
    ) -> Scoring<'a> {
        Scoring {
            population: Population::empty(as_of, production, freshness),
            production,
            chunk: Vec::with_capacity(SCORING_CHUNK),
        }
    }

    /// This population with the customers of `changed` rescored from their new states (`None`: the
    /// customer is gone), everyone else as they were (shared with this population, not copied).
    pub fn update(
        &self,
        changed: &[(u64, Option<CustomerState>)],
        production: &Production,
        freshness: Freshness,
    ) -> Result<Population> {
        let mut next = self.clone();
        next.freshness = freshness;
        next.apply(changed, production)?;
        Ok(next)
    }

    fn apply(
        &mut self,
        changed: &[(u64, Option<CustomerState>)],
        production: &Production,
    ) -> Result<()> {
        let builder = production.model.rows(self.as_of);
        let mut ids = Vec::with_capacity(changed.len());
        let mut rows = Vec::with_capacity(changed.len());
        for (id, state) in changed {
            if let Some(old) = self.customers.remove(id) {
                self.ranking.remove(&Rank {
                    value: old.clv_6m,
                    customer: *id,
                });
                if let Some(risk) = old.at_risk {
                    self.at_risk.remove(&Rank {
                        value: risk,
                        customer: *id,
                    });
                }
                if let (Some(counts), Some(reference)) = (&mut self.drift, &production.drift) {
                    counts.remove(reference, &old.row, old.clv_6m);
                }
            }
            if let Some(row) = state.as_ref().and_then(|s| builder.row(s)) {
                ids.push(*id);
                rows.push(row);
            }
        }
        let predicted = production.model.predict(&rows)?;
        for ((id, row), clv) in ids.into_iter().zip(rows).zip(predicted) {
            let clv_6m = pence(clv);
            let p_alive = row.extra.bgnbd_p_alive;
            let interval = production
                .interval
                .as_ref()
                .map(|c| c.interval(clv_6m))
                .map(|(low, high)| (pence(low), pence(high)));
            let segment = production
                .tiers
                .map(|tiers| Segment::of(&tiers, clv_6m, &row));
            let clv_body = serde_json::to_vec(&ClvResponse {
                customer_id: id,
                clv_6m,
                clv_6m_low: interval.map(|i| i.0),
                clv_6m_high: interval.map(|i| i.1),
                p_alive,
                expected_purchases: row.extra.bgnbd_expected_purchases,
                segment,
                model: self.model.clone(),
                as_of: self.as_of,
                features: row,
            })?;
            let at_risk = contract::segment::value_at_risk(&row)
                .filter(|v| v.is_finite())
                .map(pence);
            if let Some(risk) = at_risk {
                self.at_risk.insert(Rank {
                    value: risk,
                    customer: id,
                });
            }
            if let (Some(counts), Some(reference)) = (&mut self.drift, &production.drift) {
                counts.add(reference, &row, clv_6m);
            }
            self.customers.insert(
                id,
                Arc::new(Scored {
                    clv_6m,
                    row,
                    clv_body: clv_body.into(),
                    at_risk,
                    segment,
                }),
            );
            self.ranking.insert(Rank {
                value: clv_6m,
                customer: id,
            });
        }
        Ok(())
    }

    /// The PSI of each feature (by name) and of the prediction against `production`'s training
    /// population ([`models::drift`]); `None` without a reference (or for another version's).
    pub fn drift<'a>(&self, production: &'a Production) -> Option<models::drift::Psi<'a>> {
        if production.version != self.model.version {
            return None;
        }
        Some(production.drift.as_ref()?.psi(self.drift.as_ref()?))
    }

    /// Every scored customer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Arc<Scored>)> {
        self.customers.iter().map(|(id, scored)| (*id, scored))
    }

    /// The scored customer `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Scored>> {
        self.customers.get(&id).cloned()
    }

    /// Customers scored.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether nobody is scored.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// The `k` customers with the highest value at risk (ties by ID): README, "At risk".
    pub fn at_risk(&self, k: usize) -> Vec<AtRisk> {
        self.at_risk_where(k, |_| true)
    }

    /// The `k` customers with the highest value at risk among those `keep` keeps (an instance's
    /// own partitions), ranked among themselves.
    pub fn at_risk_where(&self, k: usize, keep: impl Fn(u64) -> bool) -> Vec<AtRisk> {
        self.at_risk
            .iter()
            .filter(|r| keep(r.customer))
            .take(k)
            .enumerate()
            .filter_map(|(i, r)| {
                let scored = self.customers.get(&r.customer)?;
                Some(AtRisk {
                    rank: i + 1,
                    customer_id: r.customer,
                    value_at_risk: r.value,
                    total_revenue: scored.row.nine.total_revenue,
                    p_alive: scored.row.extra.bgnbd_p_alive,
                    recency_days: scored.row.nine.recency_days,
                    clv_6m: scored.clv_6m,
                })
            })
            .collect()
    }

    /// The `k` customers with the highest predicted CLV (ties by ID).
    pub fn top(&self, k: usize) -> Vec<Ranked> {
        self.top_where(k, |_| true)
    }

    /// The `k` customers with the highest predicted CLV among those `keep` keeps.
    pub fn top_where(&self, k: usize, keep: impl Fn(u64) -> bool) -> Vec<Ranked> {
        self.ranking
            .iter()
            .filter(|r| keep(r.customer))
            .take(k)
            .enumerate()
            .map(|(i, r)| {
                let scored = self.customers.get(&r.customer);
                Ranked {
                    rank: i + 1,
                    customer_id: r.customer,
                    clv_6m: r.value,
                    p_alive: scored.map_or(0.0, |s| s.row.extra.bgnbd_p_alive),
                    segment: scored.and_then(|s| s.segment),
                }
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
        assert_eq!(as_of_watermark(i64::MAX), None);
    }

    #[test]
    fn the_ranking_orders_by_clv_then_id() {
        let mut ranks = [
            Rank {
                value: 1.0,
                customer: 3,
            },
            Rank {
                value: 5.0,
                customer: 9,
            },
            Rank {
                value: 1.0,
                customer: 2,
            },
        ];
        ranks.sort();
        let order: Vec<u64> = ranks.iter().map(|r| r.customer).collect();
        assert_eq!(order, [9, 2, 3]);
    }
}
