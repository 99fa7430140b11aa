//! Drift: how far the live population has moved from the one the production model was trained on,
//! by the population stability index (PSI) of each feature and of the prediction.
//!
//! At training, [`Reference::of`] bins every feature of the customers as the new version would have
//! served them at the end of its data (its model's inputs, `as_of` the data's end: the population it
//! was trained beside, not the one at its cutoff, which is a horizon younger and would differ by its
//! age alone) at its deciles (equal values share a bin, so a feature that is 0 for 40% of customers
//! has one bin for them; a missing value has its own bin) and stores the share of customers in each
//! bin with the version. The scorer counts the live customers in the same bins ([`Counts`]), adding
//! and removing one customer at a time as their rows change, so a refresh costs the customers that
//! changed, not everyone. Then
//!
//! PSI = Σ over bins (live share − reference share) × ln(live share / reference share),
//!
//! with both shares floored at [`FLOOR`] (an empty bin would be infinite). The usual reading: below
//! 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a shift to act on (retrain, or look at what
//! changed upstream).

use contract::{Feature, FeatureRow};
use serde::{Deserialize, Serialize};

/// The share an empty bin counts as.
pub const FLOOR: f64 = 1e-4;

/// Bins of the reference distribution.
pub const DECILES: usize = 10;

/// One quantity's bins: `edges` ascending; bin `i` holds the values in (edges[i−1], edges[i]] (the
/// first from −∞, the last, `edges.len()`, to +∞); one more bin holds the missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// The upper bounds of every bin but the last finite one.
    pub edges: Vec<f64>,
    /// The reference share of each bin, the missing values' last (`edges.len() + 2` in all).
    pub shares: Vec<f64>,
}

impl Bins {
    /// Bins at the `bins`-quantiles of `values` (missing: `None` or not finite), with their shares;
    /// `None` when there are no values.
    pub fn of(values: &[Option<f64>], bins: usize) -> Option<Bins> {
        if values.is_empty() {
            return None;
        }
        let mut present: Vec<f64> = values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        present.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = Vec::new();
        if !present.is_empty() {
            for i in 1..bins {
                let at = (i * present.len() / bins).min(present.len() - 1);
                let edge = present[at];
                // Below the largest value only: every bin above the last edge holds some values.
                if edge < present[present.len() - 1] && edges.last().is_none_or(|&e| edge > e) {
                    edges.push(edge);
                }
            }
        }
        let mut bins = Bins {
            shares: vec![0.0; edges.len() + 2],
            edges,
        };
        let mut counts = vec![0u64; bins.shares.len()];
        for value in values {
            counts[bins.bin(*value)] += 1;
        }
        let total = values.len() as f64;
        for (share, count) in bins.shares.iter_mut().zip(counts) {
            *share = count as f64 / total;
        }
        Some(bins)
    }

    /// The bin of `value`.
    pub fn bin(&self, value: Option<f64>) -> usize {
        match value.filter(|v| v.is_finite()) {
            Some(v) => self.edges.partition_point(|&e| e < v),
            None => self.edges.len() + 1,
        }
    }

    /// The PSI of `counts` (customers per bin, as [`Bins::bin`] places them) against the reference;
    /// `None` when nobody is counted or the counts do not fit these bins.
    pub fn psi(&self, counts: &[u64]) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 || counts.len() != self.shares.len() {
            return None;
        }
        Some(
            self.shares
                .iter()
                .zip(counts)
                .map(|(&expected, &count)| {
                    let actual = (count as f64 / total as f64).max(FLOOR);
                    let expected = expected.max(FLOOR);
                    (actual - expected) * (actual / expected).ln()
                })
                .sum(),
        )
    }
}

/// One feature's reference bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    /// The feature's name.
    pub feature: String,
    /// Its bins.
    pub bins: Bins,
}

/// The training population's distributions, stored with a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Every feature of the row, in column order.
    pub features: Vec<FeatureBins>,
    /// The champion's prediction.
    pub prediction: Bins,
}

impl Reference {
    /// The reference of `rows` (the customers at the end of the training data) and the champion's
    /// `predictions` for them; `None` for an empty population.
    pub fn of(rows: &[FeatureRow], predictions: &[f64]) -> Option<Reference> {
        let features = Feature::ALL
            .iter()
            .map(|&feature| {
                let values: Vec<Option<f64>> = rows.iter().map(|r| r.get(feature)).collect();
                Bins::of(&values, DECILES).map(|bins| FeatureBins {
                    feature: feature.name().to_string(),
                    bins,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let predictions: Vec<Option<f64>> = predictions.iter().map(|&p| Some(p)).collect();
        Some(Reference {
            features,
            prediction: Bins::of(&predictions, DECILES)?,
        })
    }

    /// Whether every quantity's shares fit its edges (one per bin, the missing values' too), edges
    /// ascending: a reference read from a file is used only then.
    pub fn fits(&self) -> bool {
        std::iter::once(&self.prediction)
            .chain(self.features.iter().map(|f| &f.bins))
            .all(|b| {
                b.shares.len() == b.edges.len() + 2
                    && b.edges.windows(2).all(|w| w[0] < w[1])
                    && b.shares.iter().all(|s| s.is_finite() && *s >= 0.0)
            })
    }

    /// No one counted yet, in this reference's bins.
    pub fn counts(&self) -> Counts {
        Counts {
            features: self
                .features
                .iter()
                .map(|f| vec![0; f.bins.shares.len()])
                .collect(),
            prediction: vec![0; self.prediction.shares.len()],
        }
    }

    /// Each feature's PSI and the prediction's, of `counts`.
    pub fn psi(&self, counts: &Counts) -> Psi<'_> {
        Psi {
            features: self
                .features
                .iter()
                .zip(&counts.features)
                .map(|(f, c)| (f.feature.as_str(), f.bins.psi(c)))
                .collect(),
            prediction: self.prediction.psi(&counts.prediction),
        }
    }
}

/// The drift of a population: `None` where nobody is counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Psi<'a> {
    /// Each feature's, by name, in the reference's order.
    pub features: Vec<(&'a str, Option<f64>)>,
    /// The prediction's.
    pub prediction: Option<f64>,
}

/// Live customers per reference bin, one customer added or removed at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    features: Vec<Vec<u64>>,
    prediction: Vec<u64>,
}

impl Counts {
    /// Counts one customer (`sign` +1) or takes it away (−1) with its row and prediction.
    fn change(&mut self, reference: &Reference, row: &FeatureRow, prediction: f64, add: bool) {
        let step = |count: &mut u64| {
            *count = if add {
                count.saturating_add(1)
            } else {
                count.saturating_sub(1)
            }
        };
        for (f, counts) in reference.features.iter().zip(&mut self.features) {
            let value = Feature::from_name(&f.feature).and_then(|feature| row.get(feature));
            if let Some(count) = counts.get_mut(f.bins.bin(value)) {
                step(count);
            }
        }
        if let Some(count) = self
            .prediction
            .get_mut(reference.prediction.bin(Some(prediction)))
        {
            step(count);
        }
    }

    /// Counts a customer scored `prediction` from `row`.
    pub fn add(&mut self, reference: &Reference, row: &FeatureRow, prediction: f64) {
        self.change(reference, row, prediction, true);
    }

    /// Takes away a customer counted with `row` and `prediction`.
    pub fn remove(&mut self, reference: &Reference, row: &FeatureRow, prediction: f64) {
        self.change(reference, row, prediction, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_with_a_point_mass_and_missing_values_get_their_own_bins() {
        // 40% zeros, 50% 1..=50, 10% missing.
        let mut values: Vec<Option<f64>> = vec![Some(0.0); 40];
        values.extend((1..=50).map(|v| Some(v as f64)));
        values.extend(std::iter::repeat_n(None, 10));
        let bins = Bins::of(&values, 10).unwrap();
        assert_eq!(bins.edges[0], 0.0);
        assert!(bins.edges.windows(2).all(|w| w[0] < w[1]), "{bins:?}");
        assert!((bins.shares[0] - 0.4).abs() < 1e-12, "{bins:?}");
        assert!((bins.shares[bins.shares.len() - 1] - 0.1).abs() < 1e-12);
        assert!((bins.shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(bins.bin(Some(-3.0)), 0);
        assert_eq!(bins.bin(Some(1e9)), bins.edges.len());
        assert_eq!(bins.bin(Some(f64::NAN)), bins.edges.len() + 1);
    }

    #[test]
    fn the_same_population_has_no_drift_and_a_shifted_one_has_much() {
        let values: Vec<Option<f64>> = (0..1000).map(|v| Some(v as f64)).collect();
        let bins = Bins::of(&values, 10).unwrap();
        let count = |values: &[f64]| {
            let mut counts = vec![0u64; bins.shares.len()];
            for v in values {
                counts[bins.bin(Some(*v))] += 1;
            }
            counts
        };
        let same: Vec<f64> = (0..1000).map(|v| v as f64).collect();
        assert!(bins.psi(&count(&same)).unwrap() < 1e-9);
        // A sample of the same distribution: small.
        let sample: Vec<f64> = (0..1000).step_by(7).map(|v| v as f64).collect();
        assert!(bins.psi(&count(&sample)).unwrap() < 0.01);
        // Everyone moved up by half the range: large.
        let shifted: Vec<f64> = (500..1500).map(|v| v as f64).collect();
        assert!(bins.psi(&count(&shifted)).unwrap() > 1.0);
        assert_eq!(bins.psi(&vec![0; bins.shares.len()]), None);
        assert_eq!(bins.psi(&[1, 2]), None);
    }

    #[test]
    fn counts_follow_customers_added_and_removed() {
        let row = |recency: i64| {
            let mut row = FeatureRow::from_values(&vec![Some(1.0); Feature::ALL.len()]).unwrap();
            row.nine.recency_days = recency;
            row
        };
        let rows: Vec<FeatureRow> = (0..100).map(row).collect();
        let predictions: Vec<f64> = (0..100).map(|v| v as f64).collect();
        let reference = Reference::of(&rows, &predictions).unwrap();
        let mut counts = reference.counts();
        for (r, p) in rows.iter().zip(&predictions) {
            counts.add(&reference, r, *p);
        }
        let Psi {
            features,
            prediction,
        } = reference.psi(&counts);
        assert!(prediction.unwrap() < 1e-9);
        let recency = features
            .iter()
            .find(|(name, _)| *name == "recency_days")
            .unwrap()
            .1
            .unwrap();
        assert!(recency < 1e-9);
        // Half the customers replaced by recent ones: recency drifts, the prediction too.
        for (r, p) in rows.iter().zip(&predictions).skip(50) {
            counts.remove(&reference, r, *p);
            counts.add(&reference, &row(0), 0.0);
        }
        let Psi {
            features,
            prediction,
        } = reference.psi(&counts);
        let recency = features
            .iter()
            .find(|(name, _)| *name == "recency_days")
            .unwrap()
            .1
            .unwrap();
        assert!(recency > 0.25 && prediction.unwrap() > 0.25, "{recency}");
        // A feature everyone has the same value of stays put.
        let frequency = features
            .iter()
            .find(|(name, _)| *name == "frequency")
            .unwrap()
            .1
            .unwrap();
        assert!(frequency < 1e-9, "{frequency}");
    }
}
