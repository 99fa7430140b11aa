//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") and the Gamma-Gamma spend
//! model (Fader, Hardie & Lee 2005, "RFM and CLV"), fitted by maximum likelihood, as the `lifetimes`
//! Python package does: per customer, `x` repeat purchase periods, `t_x` the age at the last one and `t`
//! the age at the end of observation (any time unit, the same for all), and for Gamma-Gamma the mean
//! value of the repeat purchases.
//!
//! The likelihoods are maximised over the logarithms of the parameters with argmin's Nelder-Mead.

use argmin::core::{CostFunction, Executor};
use argmin::solver::neldermead::NelderMead;
use libm::lgamma;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// One customer's purchase summary in model time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rft {
    /// Repeat purchases (purchase periods after the first).
    pub x: f64,
    /// Age at the last purchase (0 without repeats).
    pub t_x: f64,
    /// Age at the end of the observation period.
    pub t: f64,
}

/// Fitted BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    /// Shape of the Gamma purchase-rate heterogeneity.
    pub r: f64,
    /// Scale of the Gamma purchase-rate heterogeneity (in time units).
    pub alpha: f64,
    /// Beta dropout heterogeneity, first shape.
    pub a: f64,
    /// Beta dropout heterogeneity, second shape.
    pub b: f64,
}

/// Fitted Gamma-Gamma spend parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    /// Shape of the per-transaction spend.
    pub p: f64,
    /// Shape of the heterogeneity of the spend scale.
    pub q: f64,
    /// Scale of the heterogeneity of the spend scale.
    pub v: f64,
}

/// ln(e^a + e^b) without overflow.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

impl BgNbd {
    /// The log-likelihood of one customer.
    pub fn log_likelihood(&self, c: &Rft) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = c.x;
        let a1 = lgamma(r + x) - lgamma(r) + r * alpha.ln();
        let a2 = lgamma(a + b) + lgamma(b + x) - lgamma(b) - lgamma(a + b + x);
        a1 + a2 + self.timing_term(c)
    }

    /// The part of a customer's log-likelihood that depends on `t_x` and `t` (the Gamma-function
    /// terms depend on `x` only).
    fn timing_term(&self, c: &Rft) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let a3 = -(r + c.x) * (alpha + c.t).ln();
        let a4 = if c.x > 0.0 {
            a.ln() - (b + c.x - 1.0).ln() - (r + c.x) * (alpha + c.t_x).ln()
        } else {
            f64::NEG_INFINITY
        };
        log_add_exp(a3, a4)
    }

    /// Maximum-likelihood fit.
    pub fn fit(customers: &[Rft]) -> Result<Self> {
        if customers.is_empty() {
            return Err(TrainError::Input(
                "BG/NBD needs at least one customer".into(),
            ));
        }
        // The Gamma-function terms depend on x only: evaluate them once per distinct x.
        let mut by_x: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
        for c in customers {
            *by_x.entry(c.x.to_bits()).or_default() += 1.0;
        }
        let by_x: Vec<(f64, f64)> = by_x
            .into_iter()
            .map(|(x, n)| (f64::from_bits(x), n))
            .collect();
        let problem = Likelihood(|p: &[f64]| {
            let (r, alpha, a, b) = (p[0].exp(), p[1].exp(), p[2].exp(), p[3].exp());
            let constant = -lgamma(r) + r * alpha.ln() + lgamma(a + b) - lgamma(b);
            let gammas: f64 = by_x
                .iter()
                .map(|(x, n)| n * (constant + lgamma(r + x) + lgamma(b + x) - lgamma(a + b + x)))
                .sum();
            let model = BgNbd { r, alpha, a, b };
            let rest: f64 = customers.iter().map(|c| model.timing_term(c)).sum();
            -(gammas + rest)
        });
        let best = minimise(problem, 4)?;
        Ok(BgNbd {
            r: best[0].exp(),
            alpha: best[1].exp(),
            a: best[2].exp(),
            b: best[3].exp(),
        })
    }

    /// Probability that the customer is still active at the end of observation.
    pub fn p_alive(&self, c: &Rft) -> f64 {
        if c.x == 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let odds = (a / (b + c.x - 1.0)) * ((alpha + c.t) / (alpha + c.t_x)).powf(r + c.x);
        1.0 / (1.0 + odds)
    }

    /// Expected purchases in the next `horizon` time units, given the customer's history.
    pub fn expected_purchases(&self, c: &Rft, horizon: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = c.x;
        let z = horizon / (alpha + c.t + horizon);
        let hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - ((alpha + c.t) / (alpha + c.t + horizon)).powf(r + x) * hyp;
        let denominator = if x > 0.0 {
            1.0 + (a / (b + x - 1.0)) * ((alpha + c.t) / (alpha + c.t_x)).powf(r + x)
        } else {
            1.0
        };
        (first * second / denominator).max(0.0)
    }
}

impl GammaGamma {
    /// The log-likelihood of one customer with `x` > 0 repeat purchases of mean value `m`.
    pub fn log_likelihood(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        lgamma(p * x + q) - lgamma(p * x) - lgamma(q)
            + q * v.ln()
            + (p * x - 1.0) * m.ln()
            + (p * x) * x.ln()
            - (p * x + q) * (x * m + v).ln()
    }

    /// Maximum-likelihood fit on customers with repeat purchases: (repeats, mean repeat value), both > 0.
    pub fn fit(customers: &[(f64, f64)]) -> Result<Self> {
        let usable: Vec<(f64, f64)> = customers
            .iter()
            .copied()
            .filter(|(x, m)| *x > 0.0 && *m > 0.0)
            .collect();
        if usable.is_empty() {
            return Err(TrainError::Input(
                "Gamma-Gamma needs customers with repeat purchases of positive value".into(),
            ));
        }
        let problem = Likelihood(|p: &[f64]| {
            let model = GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            };
            -usable
                .iter()
                .map(|(x, m)| model.log_likelihood(*x, *m))
                .sum::<f64>()
        });
        let best = minimise(problem, 3)?;
        Ok(GammaGamma {
            p: best[0].exp(),
            q: best[1].exp(),
            v: best[2].exp(),
        })
    }

    /// Expected mean transaction value of a customer with `x` repeats of mean value `m` (the
    /// population mean when `x` is 0).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        if x > 0.0 && m > 0.0 {
            p * (v + x * m) / (p * x + q - 1.0)
        } else {
            p * v / (q - 1.0)
        }
    }
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) for |z| < 1, by its power series.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..100_000 {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() <= 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

/// The largest |log-parameter| searched.
const LOG_BOUND: f64 = 12.0;

/// A negative log-likelihood over log-parameters, for argmin.
struct Likelihood<F>(F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Likelihood<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, param: &Self::Param) -> std::result::Result<f64, argmin::core::Error> {
        // Parameters within e^±12 (6e-6 .. 1.6e5): short histories put the maximum on the boundary
        // (no dropout seen yet: a -> 0, b -> inf; near-constant spend: p -> inf, v -> 0), where
        // unbounded parameters overflow. The bound changes no prediction that matters there.
        if param.iter().any(|p| p.abs() > LOG_BOUND) {
            return Ok(f64::MAX);
        }
        let value = (self.0)(param);
        // Outside the parameters' domain the likelihood is not finite: a wall for the simplex.
        Ok(if value.is_finite() { value } else { f64::MAX })
    }
}

/// Nelder-Mead from all log-parameters 0 (parameters 1), restarted from its own best point until it
/// stops improving; returns the best log-parameters.
fn minimise<F: Fn(&[f64]) -> f64>(problem: Likelihood<F>, dims: usize) -> Result<Vec<f64>> {
    let mut start = vec![0.0; dims];
    let mut best_cost = f64::INFINITY;
    let mut problem = problem;
    for _ in 0..6 {
        let mut simplex = vec![start.clone()];
        for i in 0..dims {
            let mut vertex = start.clone();
            vertex[i] += 0.5;
            simplex.push(vertex);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-9)
            .map_err(|e| TrainError::Fit(e.to_string()))?;
        let result = Executor::new(problem, solver)
            .configure(|state| state.max_iters(4_000))
            .run()
            .map_err(|e| TrainError::Fit(e.to_string()))?;
        let state = result.state();
        let cost = state.best_cost;
        let param = state
            .best_param
            .clone()
            .ok_or_else(|| TrainError::Fit("the optimiser found no point".into()))?;
        problem = result
            .problem
            .problem
            .ok_or_else(|| TrainError::Fit("the optimiser did not hand the problem back".into()))?;
        let improved = best_cost - cost > 1e-9 * cost.abs().max(1.0);
        start = param;
        best_cost = best_cost.min(cost);
        if !improved {
            break;
        }
    }
    if !best_cost.is_finite() || best_cost == f64::MAX {
        return Err(TrainError::Fit(
            "the likelihood is not finite anywhere tried".into(),
        ));
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        for z in [0.1, 0.5, 0.9] {
            let expected = -(1.0f64 - z).ln() / z;
            assert!((hyp2f1(1.0, 1.0, 2.0, z) - expected).abs() < 1e-10, "z {z}");
        }
        // 2F1(a, b; b; z) = (1 - z)^-a
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.3) - 0.7f64.powf(-2.5)).abs() < 1e-10);
    }

    #[test]
    fn p_alive_is_one_without_repeats_and_falls_with_silence() {
        let m = BgNbd {
            r: 0.24,
            alpha: 4.41,
            a: 0.79,
            b: 2.43,
        };
        assert_eq!(
            m.p_alive(&Rft {
                x: 0.0,
                t_x: 0.0,
                t: 30.0
            }),
            1.0
        );
        let recent = m.p_alive(&Rft {
            x: 3.0,
            t_x: 29.0,
            t: 30.0,
        });
        let silent = m.p_alive(&Rft {
            x: 3.0,
            t_x: 5.0,
            t: 30.0,
        });
        assert!(recent > silent && silent > 0.0, "{recent} {silent}");
    }
}
