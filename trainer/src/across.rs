//! The backtest at several test cutoffs: at each cutoff C, the whole procedure a user with the data
//! before C runs ([`forecast`]: planned at that data's edge, the champion chosen on its validation
//! folds, trained on its snapshots, rows and model-wide inputs at C), every candidate scored on the
//! label window after C; then, per model, the mean of each column and how it
//! compares with BG/NBD + Gamma-Gamma fitted at the same cutoff, column by column.
//!
//! A model "beats" the reference on a column when it is better there: lower RMSE and MAE; higher
//! R², Spearman, normalised Gini and top-decile share; a predicted/actual total closer to 1.

use chrono::NaiveDate;
use models::metrics::Metrics;
use models::registry::Score;

use crate::backtest::{Forecast, forecast, plan};
use crate::evaluate::Evaluator;
use crate::selection::champion;
use crate::{Result, TrainError};

/// The reference every candidate is compared with.
pub const REFERENCE: &str = "bgnbd_gg";

/// The columns, as the tables name them.
pub const COLUMNS: [&str; 7] = [
    "RMSE",
    "MAE",
    "R²",
    "Spearman",
    "norm. Gini",
    "top-decile share",
    "predicted/actual total",
];

/// One test cutoff's backtest.
#[derive(Debug, Clone)]
pub struct Backtest {
    /// The test fold evaluates here.
    pub cutoff: NaiveDate,
    /// The candidate its validation fold chose.
    pub champion: String,
    /// Every candidate's test-fold scores.
    pub scores: Vec<Score>,
    /// How its folds were placed, when the history was short.
    pub notes: Vec<String>,
}

impl Backtest {
    /// `model`'s test metrics.
    pub fn of(&self, model: &str) -> Option<&Metrics> {
        self.scores
            .iter()
            .find(|s| s.model == model)
            .map(|s| &s.metrics)
    }
}

/// The columns of `m`, each as a number where larger is better (so that `a` beats `b` on column
/// `i` when `goodness(a)[i] > goodness(b)[i]`).
fn goodness(m: &Metrics) -> [f64; 7] {
    [
        -m.rmse,
        -m.mae,
        m.r2,
        m.spearman,
        m.normalised_gini,
        m.top_decile_share,
        -(m.total_ratio - 1.0).abs(),
    ]
}

/// On which columns `model` beats `reference` (strictly).
pub fn wins(model: &Metrics, reference: &Metrics) -> [bool; 7] {
    let (a, b) = (goodness(model), goodness(reference));
    std::array::from_fn(|i| a[i] > b[i])
}

/// The backtest at each of `cutoffs` on the data from `first` to `end` (exclusive), for
/// `horizon_months`: at each cutoff C the whole procedure on the data before C ([`forecast`]),
/// scored on the label window after C. A cutoff whose label window runs past the data, or whose
/// data before it is too short to train on, is skipped and said in the returned notes.
pub fn run(
    evaluator: &mut Evaluator<'_>,
    (first, end): (NaiveDate, NaiveDate),
    horizon_months: u32,
    cutoffs: &[NaiveDate],
    earliest: Option<NaiveDate>,
) -> Result<(Vec<Forecast>, Vec<String>)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for &cutoff in cutoffs {
        // Its label window must lie in the data.
        if let Err(e) = plan(first, end, horizon_months, Some(cutoff), earliest) {
            skipped.push(format!("no backtest at {cutoff}: {e}"));
            continue;
        }
        match forecast(evaluator, first, cutoff, horizon_months, earliest) {
            Ok(f) => out.push(f),
            Err(TrainError::Input(e)) => skipped.push(format!("no backtest at {cutoff}: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok((out, skipped))
}

impl From<&Forecast> for Backtest {
    fn from(f: &Forecast) -> Self {
        Backtest {
            cutoff: f.cutoff,
            champion: f.champion().to_string(),
            scores: f.scores.clone(),
            notes: f.plan.notes.clone(),
        }
    }
}

/// The backtest at `cutoff` from one run's scores of both folds.
pub fn of_scores(cutoff: NaiveDate, scores: &[Score], notes: Vec<String>) -> Backtest {
    Backtest {
        cutoff,
        champion: champion(scores)
            .map(|s| s.model.clone())
            .unwrap_or_default(),
        scores: scores
            .iter()
            .filter(|s| s.fold == "test")
            .cloned()
            .collect(),
        notes,
    }
}

/// Markdown: at each cutoff the champion chosen there beside the reference, then every candidate's
/// mean columns, the columns it beats the reference on, and its worst one.
pub fn table(backtests: &[Backtest]) -> String {
    let mut out = format!(
        "The champion chosen on each cutoff's validation fold, on its test fold, beside {REFERENCE} \
         (✓: better than {REFERENCE} on that column):\n\n| test cutoff | model | {} | columns won |\n|---|---|{}---|\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    let mut champion_wins = 0;
    for b in backtests {
        let (Some(ours), Some(reference)) = (b.of(&b.champion), b.of(REFERENCE)) else {
            continue;
        };
        let won = wins(ours, reference);
        champion_wins += won.iter().filter(|w| **w).count();
        let cells: Vec<String> = ours
            .cells()
            .iter()
            .zip(won)
            .map(|(c, w)| if w { format!("{c} ✓") } else { c.clone() })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {}/7 |\n| | {REFERENCE} | {} | |\n",
            b.cutoff,
            b.champion,
            cells.join(" | "),
            won.iter().filter(|w| **w).count(),
            reference.cells().join(" | ")
        ));
    }
    out.push_str(&format!(
        "\nThe champions beat {REFERENCE} on {champion_wins} of {} columns.\n",
        7 * backtests.len()
    ));

    out.push_str(&format!(
        "\nEvery candidate over the {} test cutoffs: the mean of each column, the columns × cutoffs \
         it beats {REFERENCE} on, and its worst column (the largest shortfall against {REFERENCE}, \
         relative for the errors and in points otherwise):\n\n| model | {} | beats {REFERENCE} | worst |\n|---|{}---|---|\n",
        backtests.len(),
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    ));
    let models: Vec<&str> = backtests
        .first()
        .map(|b| b.scores.iter().map(|s| s.model.as_str()).collect())
        .unwrap_or_default();
    for model in models {
        let rows: Vec<(&Backtest, &Metrics, &Metrics)> = backtests
            .iter()
            .filter_map(|b| Some((b, b.of(model)?, b.of(REFERENCE)?)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let means = Metrics::mean(&rows.iter().map(|(_, m, _)| **m).collect::<Vec<_>>());
        let won: usize = rows
            .iter()
            .map(|(_, m, r)| wins(m, r).iter().filter(|w| **w).count())
            .sum();
        let worst = if model == REFERENCE {
            "–".to_string()
        } else {
            worst(&rows)
        };
        out.push_str(&format!(
            "| {model} | {} | {won}/{} | {worst} |\n",
            means.cells().join(" | "),
            7 * rows.len()
        ));
    }
    out
}

/// The column and cutoff where `rows`' model falls furthest short of the reference.
fn worst(rows: &[(&Backtest, &Metrics, &Metrics)]) -> String {
    let mut worst: Option<(f64, String)> = None;
    for (b, m, r) in rows {
        let (a, z) = (goodness(m), goodness(r));
        for i in 0..COLUMNS.len() {
            // Errors relative to the reference's; the rest in points of their own scale.
            let (shortfall, said) = if i < 2 {
                let s = (z[i] - a[i]) / z[i].abs().max(f64::MIN_POSITIVE);
                (s, format!("{:+.1}%", s * 100.0))
            } else {
                let s = z[i] - a[i];
                (s, format!("{:+.3}", -s))
            };
            if worst.as_ref().is_none_or(|(w, _)| shortfall > *w) {
                worst = Some((
                    shortfall,
                    format!("{} at {} ({said})", COLUMNS[i], b.cutoff),
                ));
            }
        }
    }
    match worst {
        Some((s, said)) if s > 0.0 => said,
        _ => "none: never worse".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(mae: f64, gini: f64, total_ratio: f64) -> Metrics {
        Metrics {
            rmse: mae * 3.0,
            mae,
            r2: 0.5,
            spearman: 0.6,
            normalised_gini: gini,
            top_decile_share: 0.6,
            total_ratio,
        }
    }

    fn score(model: &str, fold: &str, m: Metrics) -> Score {
        Score {
            model: model.into(),
            fold: fold.into(),
            metrics: m,
        }
    }

    #[test]
    fn a_column_is_won_only_when_strictly_better_and_the_total_by_its_distance_from_one() {
        let reference = metrics(100.0, 0.80, 0.90);
        let won = wins(&metrics(90.0, 0.80, 1.05), &reference);
        // RMSE and MAE lower, R² Spearman equal (not won), Gini equal, top-decile equal, total
        // 0.05 from 1 against 0.10.
        assert_eq!(won, [true, true, false, false, false, false, true]);
        assert!(!wins(&metrics(100.0, 0.8, 1.10), &reference)[6]);
    }

    #[test]
    fn the_table_counts_wins_and_names_the_worst_column() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let backtests: Vec<Backtest> = [
            (
                "2011-03-01",
                metrics(90.0, 0.85, 1.0),
                metrics(100.0, 0.80, 0.9),
            ),
            (
                "2011-06-01",
                metrics(110.0, 0.85, 1.0),
                metrics(100.0, 0.80, 0.9),
            ),
        ]
        .into_iter()
        .map(|(cutoff, ours, reference)| {
            let scores = vec![
                score("learned", "validation", metrics(50.0, 0.9, 1.0)),
                score(REFERENCE, "validation", metrics(60.0, 0.8, 1.0)),
                score("learned", "test", ours),
                score(REFERENCE, "test", reference),
            ];
            of_scores(d(cutoff), &scores, vec![])
        })
        .collect();
        assert_eq!(backtests[0].champion, "learned");
        assert_eq!(backtests[0].scores.len(), 2);
        let text = table(&backtests);
        // 2011-03-01: RMSE, MAE, Gini, total; 2011-06-01: Gini and total only.
        assert!(
            text.contains("| 4/7 |") && text.contains("| 2/7 |"),
            "{text}"
        );
        assert!(text.contains("on 6 of 14 columns"), "{text}");
        assert!(
            text.contains("| 6/14 | RMSE at 2011-06-01 (+10.0%) |"),
            "{text}"
        );
        assert!(text.contains(&format!("| {REFERENCE} |")), "{text}");
    }
}
