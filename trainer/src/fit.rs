//! Fitting BG/NBD and Gamma-Gamma by maximum likelihood, as the `lifetimes` Python package does
//! (the models and their predictions are in [`contract::probabilistic`]).
//!
//! The likelihoods are maximised over the logarithms of the parameters with argmin's Nelder-Mead.

use argmin::core::{CostFunction, Executor};
use argmin::solver::neldermead::NelderMead;
use contract::probabilistic::{BgNbd, GammaGamma, Rft};
use libm::lgamma;

use crate::{Result, TrainError};

/// BG/NBD by maximum likelihood.
pub fn bgnbd(customers: &[Rft]) -> Result<BgNbd> {
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
    let best = minimise("BG/NBD", problem, 4)?;
    Ok(BgNbd {
        r: best[0].exp(),
        alpha: best[1].exp(),
        a: best[2].exp(),
        b: best[3].exp(),
    })
}

/// Gamma-Gamma by maximum likelihood, on customers with repeat purchases: (repeats, mean repeat
/// value), both > 0.
pub fn gamma_gamma(customers: &[(f64, f64)]) -> Result<GammaGamma> {
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
    let best = minimise("Gamma-Gamma", problem, 3)?;
    Ok(GammaGamma {
        p: best[0].exp(),
        q: best[1].exp(),
        v: best[2].exp(),
    })
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
fn minimise<F: Fn(&[f64]) -> f64>(
    model: &'static str,
    problem: Likelihood<F>,
    dims: usize,
) -> Result<Vec<f64>> {
    let failed = |e: argmin::core::Error| TrainError::Fit {
        model,
        source: e.into(),
    };
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
            .map_err(failed)?;
        let result = Executor::new(problem, solver)
            .configure(|state| state.max_iters(4_000))
            .run()
            .map_err(failed)?;
        let state = result.state();
        let cost = state.best_cost;
        let param = state.best_param.clone().ok_or_else(|| TrainError::NoFit {
            model,
            reason: "the optimiser found no point",
        })?;
        problem = result.problem.problem.ok_or_else(|| TrainError::NoFit {
            model,
            reason: "the optimiser did not hand the problem back",
        })?;
        let improved = best_cost - cost > 1e-9 * cost.abs().max(1.0);
        start = param;
        best_cost = best_cost.min(cost);
        if !improved {
            break;
        }
    }
    if !best_cost.is_finite() || best_cost == f64::MAX {
        return Err(TrainError::NoFit {
            model,
            reason: "the likelihood is not finite anywhere tried",
        });
    }
    Ok(start)
}
