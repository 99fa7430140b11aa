//! An interval around a predicted CLV that holds 80% of what customers predicted alike then spent,
//! among those who bought and among those who did not, each.
//!
//! Calibrated on an evaluation fold whose labels are known: the customers least likely to buy are
//! those predicted least, so the interval reaches down to 0 for predictions up to the 80th
//! percentile of the predictions of the customers who then bought nothing (80% of non-buyers); the
//! rest is cut into ten bins by predicted value, and in each the spread of actual / predicted among
//! the buyers sets the bounds: from 0 to their 80th percentile where the interval reaches 0, from
//! their 10th to their 90th elsewhere (80% of buyers in either case). A customer's interval depends
//! on that customer's prediction alone. Judged on a later fold by its coverage (for buyers and
//! non-buyers), its width and the interval score, beside a baseline that gives everyone the same
//! interval.

use serde::{Deserialize, Serialize};

/// The nominal lower and upper quantiles.
pub const NOMINAL: (f64, f64) = (0.1, 0.9);

/// Prediction bins (by quantile of the calibration fold's predictions).
const BINS: usize = 10;

/// One bin of predicted values, from `from` (£) up to the next bin's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// The lowest prediction in the bin, £.
    pub from: f64,
    /// The lower bound over the prediction: the 10th percentile of actual / predicted among the
    /// bin's buyers (in versions before the two groups: among everyone, 0 when more than a tenth
    /// spent nothing).
    pub low_ratio: f64,
    /// The upper bound over the prediction: the 90th percentile of the same.
    pub high_ratio: f64,
    /// The upper bound where the interval reaches 0: the 80th percentile of the same (absent in
    /// versions before the two groups).
    #[serde(default)]
    pub high_ratio_from_zero: Option<f64>,
}

/// The calibration of a version's intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// For a prediction of 0: the interval of what such customers spent.
    pub zero: (f64, f64),
    /// Bins of positive predictions, lowest first.
    pub bins: Vec<Bin>,
    /// Predictions up to this (£) get an interval from 0: the 80th percentile of the predictions of
    /// the calibration fold's non-buyers (absent in versions before the two groups).
    #[serde(default)]
    pub zero_up_to: Option<f64>,
}

/// The interval of sorted `values`: from the 10th to the 90th percentile, or, when more than a
/// tenth of them are 0 (a point mass the lower bound then includes whole), from 0 to the 80th: so
/// that it holds 80% of them either way.
fn band(sorted: &[f64]) -> (f64, f64) {
    let low = quantile(sorted, NOMINAL.0);
    if low <= 0.0 {
        (0.0, quantile(sorted, NOMINAL.1 - NOMINAL.0))
    } else {
        (low, quantile(sorted, NOMINAL.1))
    }
}

/// The `q` quantile of sorted `values` (nearest rank), 0 for none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The smallest of `values` below or at which a share `q` of the total `weights` lies (weights not
/// finite or not positive count as 0); `None` when no weight is positive.
fn weighted_quantile(values: &[f64], weights: &[f64], q: f64) -> Option<f64> {
    let mut pairs: Vec<(f64, f64)> = values
        .iter()
        .zip(weights)
        .filter(|(v, _)| v.is_finite())
        .map(|(v, w)| (*v, if w.is_finite() { w.max(0.0) } else { 0.0 }))
        .collect();
    let total: f64 = pairs.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut below = 0.0;
    for (v, w) in &pairs {
        below += w;
        if below >= q * total {
            return Some(*v);
        }
    }
    pairs.last().map(|(v, _)| *v)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values
}

impl Calibration {
    /// Calibrates on `predicted` and `actual` of one fold; `None` without any positive prediction.
    pub fn fit(predicted: &[f64], actual: &[f64]) -> Option<Self> {
        let pairs: Vec<(f64, f64)> = predicted
            .iter()
            .zip(actual)
            .map(|(p, a)| (*p, *a))
            .filter(|(p, a)| p.is_finite() && a.is_finite())
            .collect();
        let zero_actual = sorted(
            pairs
                .iter()
                .filter(|(p, _)| *p <= 0.0)
                .map(|(_, a)| *a)
                .collect(),
        );
        let non_buyers = sorted(
            pairs
                .iter()
                .filter(|(_, a)| *a <= 0.0)
                .map(|(p, _)| *p)
                .collect(),
        );
        let zero_up_to = quantile(&non_buyers, NOMINAL.1 - NOMINAL.0);
        let mut positive: Vec<(f64, f64)> = pairs.into_iter().filter(|(p, _)| *p > 0.0).collect();
        if positive.is_empty() {
            return None;
        }
        positive.sort_by(|a, b| a.0.total_cmp(&b.0));
        let size = positive.len().div_ceil(BINS);
        let bins = positive
            .chunks(size)
            .map(|chunk| {
                let ratios = sorted(
                    chunk
                        .iter()
                        .filter(|(_, a)| *a > 0.0)
                        .map(|(p, a)| a / p)
                        .collect(),
                );
                Bin {
                    from: chunk[0].0,
                    low_ratio: quantile(&ratios, NOMINAL.0),
                    high_ratio: quantile(&ratios, NOMINAL.1),
                    high_ratio_from_zero: Some(quantile(&ratios, NOMINAL.1 - NOMINAL.0)),
                }
            })
            .collect();
        Some(Calibration {
            zero: band(&zero_actual),
            bins,
            zero_up_to: Some(zero_up_to),
        })
    }

    /// The calibration carried over by rank to a population whose predictions are `population`,
    /// from the fold it was fitted on, whose predictions were `fitted_on`: each threshold (where
    /// intervals stop reaching 0, where each bin starts) moves to the population's prediction at
    /// the same rank. A season with other spending moves every prediction; the share of customers
    /// least likely to buy stays: so the 80% of non-buyers hold where the calibration fold's did.
    pub fn carried_to(&self, fitted_on: &[f64], population: &[f64]) -> Calibration {
        let from = sorted(fitted_on.to_vec());
        let to = sorted(population.to_vec());
        if from.is_empty() || to.is_empty() {
            return self.clone();
        }
        let carry = |threshold: f64| {
            let below = from.partition_point(|p| *p <= threshold);
            let rank = below as f64 / from.len() as f64;
            quantile(&to, rank).max(f64::MIN_POSITIVE)
        };
        let mut out = self.clone();
        out.zero_up_to = self.zero_up_to.map(carry);
        for bin in &mut out.bins {
            bin.from = carry(bin.from);
        }
        out
    }

    /// [`Calibration::carried_to`], except where intervals stop reaching 0: there the population's
    /// own chance of buying nothing decides, not the calibration fold's share. With `p_no_purchase`
    /// each customer's probability of no purchase in the window (BG/NBD's), the threshold is the
    /// prediction below which 80% of the expected non-buyers lie (the predictions' quantile
    /// weighted by it), as on the calibration fold it is the 80th percentile of the actual
    /// non-buyers' predictions. A window in which more customers buy than in the calibration
    /// fold's (a June-November window calibrated on December-May) then gives fewer customers an
    /// interval from 0: carried by rank, too many buyers got one, and buyers were covered 71-75%.
    /// Carried by rank when the probabilities say nothing (none positive, or not one per customer).
    pub fn carried_with(
        &self,
        fitted_on: &[f64],
        population: &[f64],
        p_no_purchase: &[f64],
    ) -> Calibration {
        let mut out = self.carried_to(fitted_on, population);
        if out.zero_up_to.is_some()
            && population.len() == p_no_purchase.len()
            && let Some(threshold) =
                weighted_quantile(population, p_no_purchase, NOMINAL.1 - NOMINAL.0)
        {
            out.zero_up_to = Some(threshold.max(f64::MIN_POSITIVE));
        }
        out
    }

    /// The interval (low, high), £, around a prediction.
    pub fn interval(&self, predicted: f64) -> (f64, f64) {
        if predicted.is_nan() || predicted <= 0.0 {
            return self.zero;
        }
        let bin = self
            .bins
            .iter()
            .rev()
            .find(|b| predicted >= b.from)
            .or(self.bins.first());
        let Some(b) = bin else {
            return self.zero;
        };
        match (self.zero_up_to, b.high_ratio_from_zero) {
            (Some(up_to), Some(high)) if predicted <= up_to => (0.0, predicted * high),
            _ => (predicted * b.low_ratio, predicted * b.high_ratio),
        }
    }
}

/// How intervals did on one fold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntervalScore {
    /// Share of customers whose actual value is within their interval (bounds inclusive).
    pub coverage: f64,
    /// The same among customers who bought.
    pub coverage_buyers: f64,
    /// The same among customers who did not.
    pub coverage_non_buyers: f64,
    /// Mean width, £.
    pub mean_width: f64,
    /// Mean interval score (Gneiting and Raftery: width plus 2/α times the miss, α = 0.2), £: lower
    /// is better; a wide interval pays for its width.
    pub interval_score: f64,
}

impl IntervalScore {
    /// The score of `intervals` against `actual`.
    pub fn of(intervals: &[(f64, f64)], actual: &[f64]) -> Self {
        let alpha = 1.0 - (NOMINAL.1 - NOMINAL.0);
        let mut covered = [0usize; 2];
        let mut counts = [0usize; 2];
        let (mut width, mut score) = (0.0, 0.0);
        for ((low, high), a) in intervals.iter().zip(actual) {
            let group = usize::from(*a > 0.0);
            counts[group] += 1;
            if a >= low && a <= high {
                covered[group] += 1;
            }
            width += high - low;
            score +=
                (high - low) + 2.0 / alpha * (low - a).max(0.0) + 2.0 / alpha * (a - high).max(0.0);
        }
        let n = intervals.len().min(actual.len()).max(1) as f64;
        let share = |c: usize, n: usize| c as f64 / n.max(1) as f64;
        IntervalScore {
            coverage: share(covered[0] + covered[1], counts[0] + counts[1]),
            coverage_buyers: share(covered[1], counts[1]),
            coverage_non_buyers: share(covered[0], counts[0]),
            mean_width: width / n,
            interval_score: score / n,
        }
    }
}

/// The baseline: everyone gets the 10th-90th percentile of the actual values of the calibration
/// fold.
pub fn baseline(actual: &[f64]) -> (f64, f64) {
    band(&sorted(actual.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibrated_interval_covers_its_share_and_beats_one_interval_for_everyone() {
        // Customers predicted p spend p × (0.5 .. 1.5) when they buy, and a fifth of them do not.
        let mut predicted = Vec::new();
        let mut actual = Vec::new();
        for i in 0..10_000u32 {
            let p = 10.0 * f64::from(1 + i % 100);
            let u = f64::from((i * 7_919) % 1_000) / 1_000.0;
            predicted.push(p);
            actual.push(if i % 5 == 0 { 0.0 } else { p * (0.5 + u) });
        }
        let calibration = Calibration::fit(&predicted, &actual).unwrap();
        let intervals: Vec<(f64, f64)> =
            predicted.iter().map(|p| calibration.interval(*p)).collect();
        let ours = IntervalScore::of(&intervals, &actual);
        assert!((ours.coverage - 0.8).abs() < 0.03, "{ours:?}");
        let everyone = vec![baseline(&actual); actual.len()];
        let theirs = IntervalScore::of(&everyone, &actual);
        assert!(
            ours.interval_score < theirs.interval_score,
            "{ours:?} vs {theirs:?}"
        );
        // Zero predictions get the spread of those who were predicted zero.
        let zero = Calibration::fit(&[0.0, 0.0, 1.0], &[0.0, 10.0, 1.0]).unwrap();
        assert_eq!(zero.interval(0.0), (0.0, 10.0));
        // Both groups at 80%: the non-buyers here are everywhere, so 80% of them get an interval
        // from 0; the buyers get 80% of their spread either way.
        assert!(
            (ours.coverage_non_buyers - 0.8).abs() < 0.03
                && (ours.coverage_buyers - 0.8).abs() < 0.03,
            "{ours:?}"
        );
        assert_eq!(Calibration::fit(&[0.0], &[1.0]), None);

        // Carried to a population predicted twice as high, the same ranks reach 0.
        let doubled: Vec<f64> = predicted.iter().map(|p| 2.0 * p).collect();
        let carried = calibration.carried_to(&predicted, &doubled);
        let intervals: Vec<(f64, f64)> = doubled.iter().map(|p| carried.interval(*p)).collect();
        let zeros = |intervals: &[(f64, f64)]| intervals.iter().filter(|i| i.0 == 0.0).count();
        let original: Vec<(f64, f64)> =
            predicted.iter().map(|p| calibration.interval(*p)).collect();
        assert_eq!(zeros(&intervals), zeros(&original));
        assert!(calibration.carried_to(&[], &doubled) == calibration);
    }

    #[test]
    fn carried_with_the_chance_of_no_purchase_fewer_reach_zero_where_more_will_buy() {
        // Calibrated where a fifth of every prediction level bought nothing; carried to the same
        // predictions in a window where only the lowest tenth is expected to buy nothing.
        let predicted: Vec<f64> = (0..1_000).map(|i| f64::from(1 + i)).collect();
        let actual: Vec<f64> = predicted
            .iter()
            .enumerate()
            .map(|(i, p)| if i % 5 == 0 { 0.0 } else { *p })
            .collect();
        let calibration = Calibration::fit(&predicted, &actual).unwrap();
        let by_rank = calibration.carried_to(&predicted, &predicted);
        let p_no_purchase: Vec<f64> = (0..1_000)
            .map(|i| if i < 100 { 0.5 } else { 0.0 })
            .collect();
        let carried = calibration.carried_with(&predicted, &predicted, &p_no_purchase);
        // 80% of the expected non-buyers lie at or below the 80th prediction.
        assert_eq!(carried.zero_up_to, Some(80.0));
        assert!(by_rank.zero_up_to.unwrap() > 700.0, "{by_rank:?}");
        assert_eq!(carried.bins, by_rank.bins);
        // Probabilities that say nothing, or not one per customer: carried by rank.
        assert_eq!(
            calibration.carried_with(&predicted, &predicted, &vec![0.0; 1_000]),
            by_rank
        );
        assert_eq!(
            calibration.carried_with(&predicted, &predicted, &[0.5]),
            by_rank
        );
    }
}
