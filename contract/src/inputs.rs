//! The model-wide inputs a feature row is computed with: fitted once, when a model is fitted, on what
//! was known at its cutoff, and stored with the model. A customer's row is a function of that
//! customer's state, `as_of` and these inputs alone.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::probabilistic::{BgNbd, GammaGamma};
use crate::{MS_PER_DAY, add_months, epoch_ms, midnight};

/// What every row of a model is computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInputs {
    /// Months of the label window the model predicts.
    pub horizon_months: u32,
    /// Purchase and dropout process (days), fitted on the purchases before the cutoff.
    pub bgnbd: BgNbd,
    /// Spend per purchase day (pounds), fitted on the same.
    pub gamma_gamma: GammaGamma,
    /// Revenue by calendar month over the year before the cutoff.
    pub seasonality: Seasonality,
    /// The day they were fitted at: they know every purchase before it and none after (absent in
    /// older models). A production model's is the end of its training data.
    #[serde(default)]
    pub fitted_at: Option<NaiveDate>,
}

impl ModelInputs {
    /// Published CDNOW estimates, a flat season and 6 months: for examples and tests.
    pub fn example() -> Self {
        ModelInputs {
            horizon_months: 6,
            bgnbd: BgNbd {
                r: 0.243,
                alpha: 4.414,
                a: 0.793,
                b: 2.426,
            },
            gamma_gamma: GammaGamma {
                p: 6.25,
                q: 3.74,
                v: 15.45,
            },
            seasonality: Seasonality::flat(),
            fitted_at: None,
        }
    }
}

/// The seasonal profile: each calendar month's revenue in the year before the cutoff it was fitted
/// at, over the mean month's.
///
/// The seasonal index of a label window is the mean of the profile over the window's days (each day
/// weighing 1/length of its month, so that a whole month counts once) divided by the window's months.
/// At a cutoff on the first of a month, fitted at that cutoff, this is everyone's revenue in the label
/// window's months a year before over the mean revenue of that many months of that year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seasonality {
    /// Factors for January..December; `None` when the data does not cover the whole year before the
    /// cutoff, or that year has no revenue: every index is then 1.
    pub monthly: Option<[f64; 12]>,
}

impl Seasonality {
    /// No seasonality: every index is 1.
    pub fn flat() -> Self {
        Seasonality { monthly: None }
    }

    /// The profile of the year before `cutoff`, from the revenue (thousandths) of everyone's purchases
    /// in `[from_ms, to_ms)` as `revenue_between` gives it, when the data begins (`first_purchase_ms`)
    /// on or before that year's first day.
    pub fn fit(
        cutoff: NaiveDate,
        first_purchase_ms: i64,
        revenue_between: impl Fn(i64, i64) -> i128,
    ) -> Self {
        let start = add_months(cutoff, -12);
        let first_day = first_purchase_ms.div_euclid(MS_PER_DAY) * MS_PER_DAY;
        if first_day > epoch_ms(midnight(start)) {
            return Seasonality::flat();
        }
        let year = revenue_between(epoch_ms(midnight(start)), epoch_ms(midnight(cutoff))) as f64;
        if year <= 0.0 {
            return Seasonality::flat();
        }
        let mut monthly = [0.0; 12];
        for k in 0..12 {
            let from = add_months(start, k);
            let to = add_months(start, k + 1);
            let revenue = revenue_between(epoch_ms(midnight(from)), epoch_ms(midnight(to))) as f64;
            monthly[from.month0() as usize] += revenue / (year / 12.0);
        }
        Seasonality {
            monthly: Some(monthly),
        }
    }

    /// The index of the label window `[as_of, as_of + horizon_months)`.
    pub fn index(&self, as_of: NaiveDate, horizon_months: u32) -> f64 {
        let Some(monthly) = &self.monthly else {
            return 1.0;
        };
        if horizon_months == 0 {
            return 1.0;
        }
        let end = add_months(as_of, i32::try_from(horizon_months).unwrap_or(i32::MAX));
        let mut sum = 0.0;
        let mut day = as_of;
        while day < end {
            let month_start = day.with_day(1).unwrap_or(day);
            let month_days = (add_months(month_start, 1) - month_start).num_days() as f64;
            let next = add_months(month_start, 1).min(end);
            let days = (next - day).num_days() as f64;
            sum += monthly[day.month0() as usize] * days / month_days;
            day = next;
        }
        sum / horizon_months as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_index_is_the_windows_share_a_year_before() {
        // Revenue of 1 per day through 2010, 3 per day in December.
        let revenue = |from: i64, to: i64| -> i128 {
            let mut total = 0;
            let mut t = from;
            while t < to {
                let d = chrono::DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .date_naive();
                total += if d.month() == 12 { 3 } else { 1 };
                t += MS_PER_DAY;
            }
            total
        };
        let first = epoch_ms(midnight(day(2009, 1, 1)));
        let s = Seasonality::fit(day(2011, 1, 1), first, revenue);
        let year = revenue(
            epoch_ms(midnight(day(2010, 1, 1))),
            epoch_ms(midnight(day(2011, 1, 1))),
        );
        let window = revenue(
            epoch_ms(midnight(day(2010, 7, 1))),
            epoch_ms(midnight(day(2011, 1, 1))),
        );
        let expected = window as f64 / (year as f64 * 6.0 / 12.0);
        let got = s.index(day(2011, 7, 1), 6);
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(s.index(day(2011, 7, 1), 6) > s.index(day(2011, 1, 1), 6));
        // A window starting mid-month weighs its partial months by their days.
        let mid = s.index(day(2011, 6, 16), 6);
        assert!(mid > s.index(day(2011, 6, 1), 6) && mid < got, "{mid}");
        // Without the whole year before, or without revenue, the index is 1.
        let late = epoch_ms(midnight(day(2010, 2, 1)));
        assert_eq!(
            Seasonality::fit(day(2011, 1, 1), late, revenue).index(day(2011, 7, 1), 6),
            1.0
        );
        assert_eq!(
            Seasonality::fit(day(2011, 1, 1), first, |_, _| 0).index(day(2011, 7, 1), 6),
            1.0
        );
    }
}
