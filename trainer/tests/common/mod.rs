//! A generated shop the trainer's tests train on.

use chrono::NaiveDate;
use contract::{CustomerState, MS_PER_DAY, Purchase, epoch_ms, midnight};
use rand08::{Rng, SeedableRng};

/// A date from `YYYY-MM-DD`.
pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Customers who join over the first 18 months, buy at their own rate with a seasonal lift in the
/// autumn, may drop out after each purchase, and spend around their own mean.
pub fn shop(customers: u64, seed: u64) -> Vec<(u64, CustomerState)> {
    let mut rng = rand08::rngs::StdRng::seed_from_u64(seed);
    let start = epoch_ms(midnight(d("2009-12-01")));
    let end = epoch_ms(midnight(d("2011-12-10")));
    (1..=customers)
        .map(|id| {
            let mut state = CustomerState::default();
            let mut t = start + rng.gen_range(0..540) * MS_PER_DAY;
            let days_between: f64 = rng.gen_range(10.0..150.0);
            let dropout: f64 = rng.gen_range(0.02..0.4);
            let spend: f64 = rng.gen_range(20.0..600.0);
            let mut n = 0;
            while t < end {
                let month = chrono::DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .date_naive()
                    .format("%m")
                    .to_string();
                let lift = if ["09", "10", "11"].contains(&month.as_str()) {
                    1.6
                } else {
                    1.0
                };
                n += 1;
                let revenue = spend * rng.gen_range(0.5..1.5) * lift;
                state.purchases.insert(
                    format!("{id}-{n}"),
                    Purchase {
                        time_ms: t + rng.gen_range(0..MS_PER_DAY),
                        revenue_milli: (revenue * 1000.0) as i64,
                    },
                );
                if rng.r#gen::<f64>() < dropout {
                    break;
                }
                let gap = -days_between * (1.0 - rng.r#gen::<f64>()).ln() / lift;
                t += ((gap.max(1.0)) * MS_PER_DAY as f64) as i64;
            }
            (id, state)
        })
        .collect()
}
