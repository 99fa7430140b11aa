//! A customer's segment, what marketing acts on: a value tier by the predicted CLV and an activity
//! band by BG/NBD's P(alive) and its probability of no purchase in the horizon. Defined once here
//! (and in the README); the trainer fixes a version's tier thresholds, the scorer labels each
//! customer from its own prediction and row alone.

use serde::{Deserialize, Serialize};

use crate::FeatureRow;

/// Share of customers in the `high` tier at the production cutoff.
pub const HIGH_SHARE: f64 = 0.10;
/// Share of customers in the `high` or `medium` tier at the production cutoff.
pub const HIGH_OR_MEDIUM_SHARE: f64 = 0.50;
/// P(alive) below which a customer is `lapsed`.
pub const LAPSED_BELOW: f64 = 0.3;
/// P(no purchase in the horizon) from which a customer not lapsed is `fading`: more likely than not
/// to buy nothing.
pub const FADING_FROM: f64 = 0.5;

/// The predicted CLV from which each tier starts: fixed for a model version when it is trained (the
/// 90th and 50th percentiles of its predictions for the customers at its production cutoff), so a
/// customer's tier depends on that customer's prediction alone, and `high` means the same amount
/// for as long as the version serves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueTiers {
    /// £ from which a customer is `high`.
    pub high_from: f64,
    /// £ from which a customer is `medium`.
    pub medium_from: f64,
}

impl ValueTiers {
    /// The thresholds of `predictions` (any order; values that are not numbers are left out), or
    /// `None` without any.
    pub fn of(predictions: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = predictions
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let at = |share_above: f64| {
            let index = ((1.0 - share_above) * sorted.len() as f64).floor() as usize;
            sorted[index.min(sorted.len() - 1)]
        };
        Some(ValueTiers {
            high_from: at(HIGH_SHARE),
            medium_from: at(HIGH_OR_MEDIUM_SHARE),
        })
    }

    /// The tier of a predicted CLV.
    pub fn tier(&self, clv: f64) -> ValueTier {
        if clv >= self.high_from && clv > 0.0 {
            ValueTier::High
        } else if clv >= self.medium_from && clv > 0.0 {
            ValueTier::Medium
        } else {
            ValueTier::Low
        }
    }
}

/// Value tier by predicted CLV ([`ValueTiers`]); a customer predicted to spend nothing is `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValueTier {
    /// The top 10% at the version's cutoff.
    High,
    /// The next 40%.
    Medium,
    /// The rest.
    Low,
}

/// Activity band by BG/NBD's P(alive) and P(no purchase in the horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Alive (P(alive) ≥ 0.3) and more likely than not to buy in the horizon.
    Active,
    /// Alive (P(alive) ≥ 0.3) but more likely than not to buy nothing in the horizon
    /// (P(no purchase) ≥ 0.5): slipping away.
    Fading,
    /// P(alive) < 0.3 (or not known).
    Lapsed,
}

impl Activity {
    /// The band of a customer with `p_alive` and `p_no_purchase` (in the horizon).
    pub fn of(p_alive: f64, p_no_purchase: f64) -> Self {
        if p_alive.is_nan() || p_alive < LAPSED_BELOW {
            Activity::Lapsed
        } else if p_no_purchase >= FADING_FROM {
            Activity::Fading
        } else {
            Activity::Active
        }
    }

    /// The band of a customer's row.
    pub fn of_row(row: &FeatureRow) -> Self {
        Activity::of(row.extra.bgnbd_p_alive, row.extra.bgnbd_p_no_purchase)
    }
}

/// A customer's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    /// By predicted CLV.
    pub value: ValueTier,
    /// By P(alive).
    pub activity: Activity,
}

impl Segment {
    /// The segment of a customer predicted `clv` whose row is `row`.
    pub fn of(tiers: &ValueTiers, clv: f64, row: &FeatureRow) -> Self {
        Segment {
            value: tiers.tier(clv),
            activity: Activity::of_row(row),
        }
    }
}

/// A customer's value at risk: revenue to date × P(no purchase in the horizon) for a customer in the
/// `fading` band (alive by BG/NBD, but more likely than not to buy nothing), `None` for everyone
/// else. The at-risk list ranks by it.
///
/// A band by P(alive) alone (the list before) holds almost nobody on a short history: BG/NBD fitted
/// on a year sees little dropout and gives every one-time buyer P(alive) = 1. The probability of no
/// purchase also counts a slow purchase rate.
pub fn value_at_risk(row: &FeatureRow) -> Option<f64> {
    let revenue = row.nine.total_revenue;
    (Activity::of_row(row) == Activity::Fading && revenue > 0.0)
        .then_some(revenue * row.extra.bgnbd_p_no_purchase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_the_90th_and_50th_percentiles() {
        let predictions: Vec<f64> = (0..100).map(f64::from).chain([f64::NAN]).collect();
        let tiers = ValueTiers::of(&predictions).unwrap();
        assert_eq!((tiers.high_from, tiers.medium_from), (90.0, 50.0));
        let count = |tier| {
            predictions
                .iter()
                .filter(|p| tiers.tier(**p) == tier)
                .count()
        };
        assert_eq!(count(ValueTier::High), 10);
        assert_eq!(count(ValueTier::Medium), 40);
        assert_eq!(ValueTiers::of(&[]), None);
        // Nobody predicted to spend nothing is high, even when most are.
        let zeros = ValueTiers::of(&[0.0; 10]).unwrap();
        assert_eq!(zeros.tier(0.0), ValueTier::Low);
    }

    fn row(revenue: f64, p_alive: f64, p_no_purchase: f64) -> FeatureRow {
        let mut extra = crate::Extra::unknown();
        extra.bgnbd_p_alive = p_alive;
        extra.bgnbd_p_no_purchase = p_no_purchase;
        FeatureRow {
            nine: crate::Nine {
                recency_days: 30,
                frequency: 1,
                total_revenue: revenue,
                avg_order_value: revenue,
                tenure_days: 30,
                active_months: 1,
                purchase_velocity: 1.0,
                avg_gap_days: None,
                std_gap_days: None,
            },
            extra,
        }
    }

    #[test]
    fn only_fading_customers_are_at_risk() {
        assert_eq!(value_at_risk(&row(1_000.0, 1.0, 0.6)), Some(600.0));
        assert_eq!(value_at_risk(&row(1_000.0, 0.9, 0.4)), None);
        assert_eq!(value_at_risk(&row(1_000.0, 0.1, 0.95)), None);
        assert_eq!(value_at_risk(&row(0.0, 0.5, 0.7)), None);
        let tiers = ValueTiers {
            high_from: 500.0,
            medium_from: 100.0,
        };
        assert_eq!(
            Segment::of(&tiers, 600.0, &row(1_000.0, 1.0, 0.6)),
            Segment {
                value: ValueTier::High,
                activity: Activity::Fading
            }
        );
    }

    #[test]
    fn activity_bands_include_their_lower_bound() {
        assert_eq!(Activity::of(0.3, 0.49), Activity::Active);
        assert_eq!(Activity::of(0.3, 0.5), Activity::Fading);
        assert_eq!(Activity::of(1.0, 0.5), Activity::Fading);
        assert_eq!(Activity::of(0.29, 0.1), Activity::Lapsed);
        assert_eq!(Activity::of(f64::NAN, 0.1), Activity::Lapsed);
        assert_eq!(Activity::of(0.9, f64::NAN), Activity::Active);
    }
}
