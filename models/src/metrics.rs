//! How good a CLV prediction is: error (RMSE, MAE, R²), ranking (Spearman, normalised Gini, share of
//! revenue in the top decile of predictions) and calibration (predicted / actual total).

use serde::{Deserialize, Serialize};

/// The metrics of one model on one evaluation set. A value that is not a number (R² of labels
/// that are all equal) is written as JSON `null` and read back as NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Root mean squared error.
    #[serde(deserialize_with = "nan_if_null")]
    pub rmse: f64,
    /// Mean absolute error.
    #[serde(deserialize_with = "nan_if_null")]
    pub mae: f64,
    /// Coefficient of determination, 1 − SSE / SST.
    #[serde(deserialize_with = "nan_if_null")]
    pub r2: f64,
    /// Spearman rank correlation (average ranks for ties).
    #[serde(deserialize_with = "nan_if_null")]
    pub spearman: f64,
    /// Gini of the actual values ordered by prediction, divided by the Gini of the perfect order.
    #[serde(deserialize_with = "nan_if_null")]
    pub normalised_gini: f64,
    /// Share of the actual total held by the 10% of customers predicted highest.
    #[serde(deserialize_with = "nan_if_null")]
    pub top_decile_share: f64,
    /// Sum of predictions / sum of actual values.
    #[serde(deserialize_with = "nan_if_null")]
    pub total_ratio: f64,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Metrics {
    /// Whether every value is a number.
    pub fn is_finite(&self) -> bool {
        [
            self.rmse,
            self.mae,
            self.r2,
            self.spearman,
            self.normalised_gini,
            self.top_decile_share,
            self.total_ratio,
        ]
        .iter()
        .all(|v| v.is_finite())
    }

    /// The seven values as the tables print them (RMSE and MAE whole, the rest to 3 decimals), in the
    /// column order RMSE, MAE, R², Spearman, normalised Gini, top-decile share, total ratio.
    pub fn cells(&self) -> [String; 7] {
        [
            format!("{:.0}", self.rmse),
            format!("{:.0}", self.mae),
            format!("{:.3}", self.r2),
            format!("{:.3}", self.spearman),
            format!("{:.3}", self.normalised_gini),
            format!("{:.3}", self.top_decile_share),
            format!("{:.3}", self.total_ratio),
        ]
    }

    /// The mean of each metric over `all` (NaN when `all` is empty).
    pub fn mean(all: &[Metrics]) -> Metrics {
        let n = all.len() as f64;
        let mean = |f: fn(&Metrics) -> f64| all.iter().map(f).sum::<f64>() / n;
        Metrics {
            rmse: mean(|m| m.rmse),
            mae: mean(|m| m.mae),
            r2: mean(|m| m.r2),
            spearman: mean(|m| m.spearman),
            normalised_gini: mean(|m| m.normalised_gini),
            top_decile_share: mean(|m| m.top_decile_share),
            total_ratio: mean(|m| m.total_ratio),
        }
    }

    /// The metrics of `predicted` against `actual` (same length, at least two customers).
    pub fn of(actual: &[f64], predicted: &[f64]) -> Metrics {
        assert_eq!(actual.len(), predicted.len(), "one prediction per customer");
        let n = actual.len() as f64;
        let sse: f64 = actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| (a - p) * (a - p))
            .sum();
        let mean = actual.iter().sum::<f64>() / n;
        let sst: f64 = actual.iter().map(|a| (a - mean) * (a - mean)).sum();
        let total_actual: f64 = actual.iter().sum();
        Metrics {
            rmse: (sse / n).sqrt(),
            mae: actual
                .iter()
                .zip(predicted)
                .map(|(a, p)| (a - p).abs())
                .sum::<f64>()
                / n,
            r2: 1.0 - sse / sst,
            spearman: pearson(&ranks(actual), &ranks(predicted)),
            normalised_gini: gini(actual, predicted) / gini(actual, actual),
            top_decile_share: top_share(actual, predicted, 0.1) / total_actual,
            total_ratio: predicted.iter().sum::<f64>() / total_actual,
        }
    }
}

/// Ranks from 1, ties sharing their average rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0; // mean of start+1 ..= end
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

/// The Gini of `actual` ordered by `predicted` (highest first; ties keep the input order), as in the
/// usual "normalised Gini" of insurance and CLV scoring.
fn gini(actual: &[f64], predicted: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..actual.len()).collect();
    order.sort_by(|&i, &j| predicted[j].total_cmp(&predicted[i]));
    let total: f64 = actual.iter().sum();
    let n = actual.len() as f64;
    let mut cumulative = 0.0;
    let mut area = 0.0;
    for &i in &order {
        cumulative += actual[i];
        area += cumulative / total;
    }
    area / n - (n + 1.0) / (2.0 * n)
}

/// Actual total of the top `share` of customers by prediction.
fn top_share(actual: &[f64], predicted: &[f64], share: f64) -> f64 {
    let mut order: Vec<usize> = (0..actual.len()).collect();
    order.sort_by(|&i, &j| predicted[j].total_cmp(&predicted[i]));
    let k = ((actual.len() as f64) * share).round().max(1.0) as usize;
    order.iter().take(k).map(|&i| actual[i]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_prediction_scores_perfectly() {
        let actual = [0.0, 0.0, 5.0, 10.0, 100.0, 3.0, 0.0, 7.0, 1.0, 2.0];
        let m = Metrics::of(&actual, &actual);
        assert_eq!(m.rmse, 0.0);
        assert_eq!(m.mae, 0.0);
        assert_eq!(m.r2, 1.0);
        assert!((m.spearman - 1.0).abs() < 1e-12);
        assert!((m.normalised_gini - 1.0).abs() < 1e-12);
        assert!((m.top_decile_share - 100.0 / 128.0).abs() < 1e-12);
        assert_eq!(m.total_ratio, 1.0);
    }

    #[test]
    fn a_reversed_prediction_has_negative_rank_metrics() {
        let actual = [1.0, 2.0, 3.0, 4.0, 5.0];
        let reversed = [5.0, 4.0, 3.0, 2.0, 1.0];
        let m = Metrics::of(&actual, &reversed);
        assert!((m.spearman + 1.0).abs() < 1e-12);
        assert!((m.normalised_gini + 1.0).abs() < 1e-12);
        assert!((m.rmse - (8.0f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn ties_share_their_average_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
