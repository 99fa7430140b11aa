//! The numerics of the learned models: ridge regression by Cholesky, boosted trees (forust-ml),
//! and the feature matrices each library reads.

use contract::{Feature, FeatureRow};
use forust_ml::{GradientBooster, Matrix, objective::ObjectiveType};
use ndarray::Array2;
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::{ModelError, Result};

pub(crate) fn boost(
    x: &[f64],
    rows: usize,
    y: &[f64],
    trees: usize,
    learning_rate: f32,
    depth: usize,
) -> Result<GradientBooster> {
    let cols = x.len() / rows.max(1);
    let mut model = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(trees)
        .set_learning_rate(learning_rate)
        .set_max_depth(depth)
        .set_initialize_base_score(true)
        .set_seed(42);
    let weights = vec![1.0; rows];
    model
        .fit(&Matrix::new(x, rows, cols), y, &weights, None)
        .map_err(ModelError::fit("boosting"))?;
    Ok(model)
}

/// The ridge penalty of the linear model on every feature, relative to the rows (on standardised
/// features): the BG/NBD outputs among the features are nearly collinear, where least squares
/// diverges (an MAE of 3·10⁷ at one backtest cutoff of the real data); a penalty of a hundredth of
/// the rows shrinks the coefficients of well-determined features by about 1%.
pub const RIDGE: f64 = 0.01;

/// Ridge regression of `y` on `features` of `rows`, standardised (a feature constant in training
/// gets coefficient 0), with penalty `lambda` × rows; the coefficients and intercept on the raw
/// scale.
pub(crate) fn ridge(
    rows: &[FeatureRow],
    features: &[Feature],
    y: &[f64],
    lambda: f64,
) -> Result<(Vec<f64>, f64)> {
    let n = rows.len() as f64;
    let k = features.len();
    let columns: Vec<Vec<f64>> = features.iter().map(|f| inputs(rows, *f)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let means: Vec<f64> = columns.iter().map(|c| mean(c)).collect();
    let scales: Vec<f64> = columns
        .iter()
        .zip(&means)
        .map(|(c, m)| (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    let used: Vec<usize> = (0..k)
        .filter(|&j| scales[j].is_finite() && scales[j] > 0.0)
        .collect();
    let y_mean = mean(y);
    // The normal equations of the standardised problem, (ZᵀZ + λn·I) β = Zᵀ(y − ȳ), in a flat
    // row-major m × m matrix.
    let m = used.len();
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m];
    let z = |j: usize, i: usize| (columns[j][i] - means[j]) / scales[j];
    for (i, label) in y.iter().enumerate() {
        for (p, &jp) in used.iter().enumerate() {
            let zp = z(jp, i);
            b[p] += zp * (label - y_mean);
            for (q, &jq) in used.iter().enumerate().skip(p) {
                a[p * m + q] += zp * z(jq, i);
            }
        }
    }
    for p in 0..m {
        for q in 0..p {
            a[p * m + q] = a[q * m + p];
        }
        a[p * m + p] += lambda * n;
    }
    let beta = solve(a, b).ok_or_else(|| {
        ModelError::Input("linear regression: the penalised normal equations are singular".into())
    })?;
    let mut coefficients = vec![0.0; k];
    let mut intercept = y_mean;
    for (p, &j) in used.iter().enumerate() {
        coefficients[j] = beta[p] / scales[j];
        intercept -= coefficients[j] * means[j];
    }
    Ok((coefficients, intercept))
}

/// Solves the symmetric positive definite `a x = b` (`a` row-major, m × m) by Cholesky; `None`
/// when it is not.
pub(crate) fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let m = b.len();
    if a.len() != m * m {
        return None;
    }
    // a = L Lᵀ, L in the lower triangle.
    for j in 0..m {
        let d = a[j * m + j] - (0..j).map(|k| a[j * m + k].powi(2)).sum::<f64>();
        if d.is_nan() || d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let s = a[i * m + j] - (0..j).map(|k| a[i * m + k] * a[j * m + k]).sum::<f64>();
            a[i * m + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..m {
        let s = b[i] - (0..i).map(|k| a[i * m + k] * b[k]).sum::<f64>();
        b[i] = s / a[i * m + i];
    }
    for i in (0..m).rev() {
        let s = b[i] - (i + 1..m).map(|k| a[k * m + i] * b[k]).sum::<f64>();
        b[i] = s / a[i * m + i];
    }
    Some(b)
}

/// sum(a) / sum(b), 1 when b sums to 0.
pub(crate) fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    if sb > 0.0 { sa / sb } else { 1.0 }
}

/// One feature of every row, as models read it ([`FeatureRow::input`]).
pub fn inputs(rows: &[FeatureRow], feature: Feature) -> Vec<f64> {
    rows.iter().map(|r| r.input(feature)).collect()
}

/// The features of every row, feature after feature.
pub(crate) fn column_major(rows: &[FeatureRow], features: &[Feature]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * features.len());
    for feature in features {
        out.extend(rows.iter().map(|r| r.input(*feature)));
    }
    out
}

pub(crate) fn design(rows: &[FeatureRow], features: &[Feature]) -> Result<Array2<f64>> {
    let data = column_major(rows, features);
    Array2::from_shape_vec((features.len(), rows.len()), data)
        .map(|a| a.reversed_axes())
        .map_err(|e| ModelError::Input(e.to_string()))
}

pub(crate) fn dense(rows: &[FeatureRow], features: &[Feature]) -> Result<DenseMatrix<f64>> {
    DenseMatrix::new(
        rows.len(),
        features.len(),
        column_major(rows, features),
        true,
    )
    .map_err(ModelError::fit("random forest input"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_and_refuses_what_is_not_positive_definite() {
        let x = solve(vec![4.0, 2.0, 2.0, 3.0], vec![2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        let x = solve(vec![4.0, 2.0, 2.0, 3.0], vec![0.0, 4.0]).unwrap();
        assert!(
            (x[0] + 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12,
            "{x:?}"
        );
        assert!(solve(vec![1.0, 1.0, 1.0, 1.0], vec![1.0, 1.0]).is_none());
    }
}
