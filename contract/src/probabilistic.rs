//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") and the Gamma-Gamma spend
//! model (Fader, Hardie & Lee 2005, "RFM and CLV") as they predict: per customer, `x` repeat purchase
//! periods, `t_x` the age at the last one and `t` the age at the end of observation (any time unit, the
//! same for all), and for Gamma-Gamma the mean value of the repeat purchases. Fitting them (maximum
//! likelihood) is the trainer's; the fitted parameters are model-wide inputs ([`crate::ModelInputs`]).

use std::collections::BTreeMap;

use libm::lgamma;
use serde::{Deserialize, Serialize};

use crate::MS_PER_DAY;
use crate::state::CustomerState;

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
    pub fn timing_term(&self, c: &Rft) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let a3 = -(r + c.x) * (alpha + c.t).ln();
        let a4 = if c.x > 0.0 {
            a.ln() - (b + c.x - 1.0).ln() - (r + c.x) * (alpha + c.t_x).ln()
        } else {
            f64::NEG_INFINITY
        };
        log_add_exp(a3, a4)
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

    /// Probability that the customer makes no purchase in the next `horizon` time units, given its
    /// history: it has dropped out (1 − P(alive)), or it is alive and its purchase rate λ, Gamma(r +
    /// x, α + T) given the history, brings no purchase (e^(−λ·horizon); BG/NBD drops a customer out
    /// only after a purchase, so a silent alive customer stays alive).
    pub fn p_no_purchase(&self, c: &Rft, horizon: f64) -> f64 {
        let BgNbd { r, alpha, .. } = *self;
        let p_alive = self.p_alive(c);
        let silent_if_alive = ((alpha + c.t) / (alpha + c.t + horizon.max(0.0))).powf(r + c.x);
        (1.0 - p_alive + p_alive * silent_if_alive).clamp(0.0, 1.0)
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

/// Per-day purchase summary of one customer before `cutoff_ms`, as lifetimes builds it with
/// `freq="D"` and the observation ending on the day before the cutoff: purchases of one calendar day
/// are one; `x` = days − 1, `t_x` = last − first day, `t` = (cutoff day − 1) − first day; and the mean
/// revenue (pounds) of the repeat days.
pub fn daily_summary(state: &CustomerState, cutoff_ms: i64) -> Option<(Rft, f64)> {
    let mut days: BTreeMap<i64, i64> = BTreeMap::new();
    for p in state.purchases.values().filter(|p| p.time_ms < cutoff_ms) {
        let day = days.entry(p.time_ms.div_euclid(MS_PER_DAY)).or_default();
        *day = day.saturating_add(p.revenue_milli);
    }
    let (&first, _) = days.first_key_value()?;
    let (&last, _) = days.last_key_value()?;
    let end = cutoff_ms.div_euclid(MS_PER_DAY) - 1;
    let x = (days.len() - 1) as f64;
    let repeat_value: i128 = days.values().skip(1).map(|v| i128::from(*v)).sum();
    let monetary = if x > 0.0 {
        repeat_value as f64 / 1000.0 / x
    } else {
        0.0
    };
    Some((
        Rft {
            x,
            t_x: (last - first) as f64,
            t: (end - first) as f64,
        },
        monetary,
    ))
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
    fn no_purchase_is_certain_over_no_time_and_grows_with_silence_and_dropout() {
        let m = BgNbd {
            r: 0.24,
            alpha: 4.41,
            a: 0.79,
            b: 2.43,
        };
        let c = |x: f64, t_x: f64| Rft { x, t_x, t: 30.0 };
        assert_eq!(m.p_no_purchase(&c(3.0, 29.0), 0.0), 1.0);
        let (near, far) = (
            m.p_no_purchase(&c(3.0, 29.0), 10.0),
            m.p_no_purchase(&c(3.0, 29.0), 100.0),
        );
        assert!(far < near && near < 1.0, "{near} {far}");
        // The silent customer is more likely to buy nothing: partly because it may be gone.
        let silent = m.p_no_purchase(&c(3.0, 5.0), 100.0);
        assert!(silent > far, "{silent} {far}");
        assert!(silent >= 1.0 - m.p_alive(&c(3.0, 5.0)));
        // Without a repeat purchase P(alive) is 1: only the rate decides, (α+T)/(α+T+h))^r.
        let once = m.p_no_purchase(&c(0.0, 0.0), 100.0);
        assert!(
            (once - (34.41f64 / 134.41).powf(0.24)).abs() < 1e-12,
            "{once}"
        );
        // Consistent with the expected purchases: E[X] = 0 only when no purchase is certain, and
        // P(X = 0) ≥ 1 − E[X] (Markov).
        let h = 100.0;
        let history = c(3.0, 29.0);
        assert!(m.p_no_purchase(&history, h) >= 1.0 - m.expected_purchases(&history, h));
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
