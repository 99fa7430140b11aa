//! How well the at-risk list finds customers who are slipping away, judged the way it is used: at
//! an evaluation cutoff, the list as the scorer would serve it (the `fading` band by value at risk,
//! revenue to date × P(no purchase in the horizon),
//! [`contract::segment::value_at_risk`]) against what those customers spent in the label window
//! after it, beside a naive rule of the same size: the biggest spenders to date among the customers
//! silent for longer than the median.

use crate::Result;
use crate::backtest::Fold;
use crate::evaluate::Snapshots;
use crate::training::Labelled;

/// The at-risk list and the naive list at one cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtRiskCheck {
    /// Customers on each list (the first `k` of the at-risk list; the naive list is as long).
    pub listed: usize,
    /// Share of the at-risk list who spent nothing in the label window.
    pub silent: f64,
    /// Share of the naive list who spent nothing.
    pub naive_silent: f64,
    /// Their revenue to date, as a share of everyone's: how much value the list covers.
    pub revenue_share: f64,
    /// The same for the naive list.
    pub naive_revenue_share: f64,
}

/// One line of the at-risk table: the check of the first `listed` at a fold's cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRow {
    /// The fold's name.
    pub fold: String,
    /// Its evaluation cutoff.
    pub cutoff: chrono::NaiveDate,
    /// The check there.
    pub check: AtRiskCheck,
}

/// The check at each fold's evaluation cutoff, for the first 100 and 500 of the list (fewer when
/// the list is shorter; once when it holds no more than 100).
pub fn checks(snapshots: &mut Snapshots<'_>, folds: &[Fold]) -> Result<Vec<RiskRow>> {
    let mut out = Vec::new();
    for fold in folds {
        let evaluated = snapshots.evaluated(fold)?;
        let mut shown = 0;
        for k in [100, 500] {
            if let Some(check) = check(&evaluated, k)
                && check.listed > shown
            {
                shown = check.listed;
                out.push(RiskRow {
                    fold: fold.name.clone(),
                    cutoff: fold.evaluate_at,
                    check,
                });
            }
        }
    }
    Ok(out)
}

/// The checks as a Markdown table.
pub fn table(rows: &[RiskRow]) -> String {
    let mut out = String::from(
        "| fold | cutoff | listed | silent after (at-risk list) | silent after (naive) | revenue to date covered (at-risk) | (naive) |\n|---|---|---|---|---|---|---|\n",
    );
    for RiskRow {
        fold,
        cutoff,
        check: c,
    } in rows
    {
        out.push_str(&format!(
            "| {fold} | {cutoff} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |\n",
            c.listed,
            c.silent * 100.0,
            c.naive_silent * 100.0,
            c.revenue_share * 100.0,
            c.naive_revenue_share * 100.0
        ));
    }
    out
}

/// The check of the first `k` of each list on `evaluated` (rows as of the cutoff, labels after it);
/// `None` when nobody is in the fading band.
pub fn check(evaluated: &Labelled, k: usize) -> Option<AtRiskCheck> {
    let mut at_risk: Vec<(f64, u64, usize)> = evaluated
        .rows
        .iter()
        .zip(&evaluated.customer_ids)
        .enumerate()
        .filter_map(|(i, (row, id))| contract::segment::value_at_risk(row).map(|v| (v, *id, i)))
        .collect();
    at_risk.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    at_risk.truncate(k);
    if at_risk.is_empty() {
        return None;
    }
    let listed = at_risk.len();
    let mut recency: Vec<i64> = evaluated.rows.iter().map(|r| r.nine.recency_days).collect();
    recency.sort_unstable();
    let median = recency[recency.len() / 2];
    let mut naive: Vec<(f64, u64, usize)> = evaluated
        .rows
        .iter()
        .zip(&evaluated.customer_ids)
        .enumerate()
        .filter(|(_, (row, _))| row.nine.recency_days > median)
        .map(|(i, (row, id))| (row.nine.total_revenue, *id, i))
        .collect();
    naive.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    naive.truncate(listed);
    let total: f64 = evaluated.rows.iter().map(|r| r.nine.total_revenue).sum();
    let silent = |list: &[(f64, u64, usize)]| {
        list.iter()
            .filter(|(_, _, i)| evaluated.labels[*i] <= 0.0)
            .count() as f64
            / list.len().max(1) as f64
    };
    let revenue = |list: &[(f64, u64, usize)]| {
        list.iter()
            .map(|(_, _, i)| evaluated.rows[*i].nine.total_revenue)
            .sum::<f64>()
            / total.max(f64::MIN_POSITIVE)
    };
    Some(AtRiskCheck {
        listed,
        silent: silent(&at_risk),
        naive_silent: silent(&naive),
        revenue_share: revenue(&at_risk),
        naive_revenue_share: revenue(&naive),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::FeatureRow;

    fn row(
        total_revenue: f64,
        (p_alive, p_no_purchase): (f64, f64),
        recency_days: i64,
    ) -> FeatureRow {
        let mut row = crate::training::example_row();
        row.nine.total_revenue = total_revenue;
        row.nine.recency_days = recency_days;
        row.extra.bgnbd_p_alive = p_alive;
        row.extra.bgnbd_p_no_purchase = p_no_purchase;
        row
    }

    #[test]
    fn the_list_is_the_fading_by_value_at_risk_and_the_naive_rule_the_long_silent_big_spenders() {
        // (revenue, (P(alive), P(no purchase)), recency, label)
        let customers = [
            (1_000.0, (1.0, 0.5), 100, 0.0),  // at risk: 500
            (2_000.0, (0.9, 0.2), 200, 50.0), // active; silent for the median, so not naive either
            (400.0, (0.4, 0.6), 10, 30.0),    // at risk: 240
            (100.0, (0.1, 0.95), 300, 0.0),   // lapsed
        ];
        let mut evaluated = Labelled::default();
        for (i, (revenue, p, recency, label)) in customers.iter().enumerate() {
            evaluated.customer_ids.push(i as u64 + 1);
            evaluated.rows.push(row(*revenue, *p, *recency));
            evaluated.labels.push(*label);
        }
        let c = check(&evaluated, 10).unwrap();
        assert_eq!(c.listed, 2);
        assert_eq!(c.silent, 0.5); // customer 1 silent, 3 bought
        // Naive: silent longer than the median (200 days): customer 4 only, and it is silent.
        assert_eq!(c.naive_silent, 1.0);
        assert!((c.revenue_share - 1_400.0 / 3_500.0).abs() < 1e-12);
        let one = check(&evaluated, 1).unwrap();
        assert_eq!((one.listed, one.silent), (1, 1.0));
        evaluated
            .rows
            .iter_mut()
            .for_each(|r| r.extra.bgnbd_p_no_purchase = 0.1);
        assert!(check(&evaluated, 10).is_none());
    }
}
