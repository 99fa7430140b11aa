//! A customer's segment, what marketing acts on: a value tier by the predicted CLV and an activity
//! band by BG/NBD's P(alive). Defined once here (and in the README); the trainer fixes a version's
//! tier thresholds, the scorer labels each customer from its own prediction alone.

use serde::{Deserialize, Serialize};

/// Share of customers in the `high` tier at the production cutoff.
pub const HIGH_SHARE: f64 = 0.10;
/// Share of customers in the `high` or `medium` tier at the production cutoff.
pub const HIGH_OR_MEDIUM_SHARE: f64 = 0.50;
/// P(alive) from which a customer is `active`.
pub const ACTIVE_FROM: f64 = 0.7;
/// P(alive) from which a customer is `fading` (below it: `lapsed`).
pub const FADING_FROM: f64 = 0.3;

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

/// Activity band by P(alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// P(alive) ≥ 0.7.
    Active,
    /// 0.3 ≤ P(alive) < 0.7.
    Fading,
    /// P(alive) < 0.3 (or not known).
    Lapsed,
}

impl Activity {
    /// The band of a P(alive).
    pub fn of(p_alive: f64) -> Self {
        if p_alive >= ACTIVE_FROM {
            Activity::Active
        } else if p_alive >= FADING_FROM {
            Activity::Fading
        } else {
            Activity::Lapsed
        }
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
    /// The segment of a customer predicted `clv` with `p_alive`.
    pub fn of(tiers: &ValueTiers, clv: f64, p_alive: f64) -> Self {
        Segment {
            value: tiers.tier(clv),
            activity: Activity::of(p_alive),
        }
    }
}

/// A customer's value at risk: revenue to date × (1 − P(alive)) for a customer in the `fading`
/// band (a valuable customer whose activity is fading: not yet `lapsed`, no longer `active`), `None`
/// for everyone else. The at-risk list ranks by it.
pub fn value_at_risk(total_revenue: f64, p_alive: f64) -> Option<f64> {
    (Activity::of(p_alive) == Activity::Fading && total_revenue > 0.0)
        .then_some(total_revenue * (1.0 - p_alive))
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

    #[test]
    fn only_fading_customers_are_at_risk() {
        assert_eq!(value_at_risk(1_000.0, 0.5), Some(500.0));
        assert_eq!(value_at_risk(1_000.0, 0.9), None);
        assert_eq!(value_at_risk(1_000.0, 0.1), None);
        assert_eq!(value_at_risk(0.0, 0.5), None);
    }

    #[test]
    fn activity_bands_include_their_lower_bound() {
        assert_eq!(Activity::of(0.7), Activity::Active);
        assert_eq!(Activity::of(0.69), Activity::Fading);
        assert_eq!(Activity::of(0.3), Activity::Fading);
        assert_eq!(Activity::of(0.29), Activity::Lapsed);
        assert_eq!(Activity::of(f64::NAN), Activity::Lapsed);
    }
}
