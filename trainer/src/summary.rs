//! What a training job found, typed ([`Summary`]), and the text written from it: what `clv train`
//! prints and the version's `report.md`.

use std::path::PathBuf;

use chrono::NaiveDate;
use models::registry::Score;

use crate::across::Backtest;
use crate::backtest::table;
use crate::evaluate::{Sampled, TREE_ROW_BUDGET};
use crate::intervals::{IntervalCheck, interval_table};
use crate::job::{Job, Registered, dates};
use crate::risk::RiskRow;
use crate::training::Sample;

/// One table of scores and the lines said before it.
#[derive(Debug, Clone)]
pub struct Section {
    /// Notes said before the table.
    pub notes: Vec<String>,
    /// What the table is.
    pub heading: String,
    /// Its scores.
    pub scores: Vec<Score>,
    /// The fold name the scores carry.
    pub fold: String,
}

/// What a run found, typed: the output and `report.md` are written from it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The first purchase's day.
    pub first: NaiveDate,
    /// The last purchase's day.
    pub last_day: NaiveDate,
    /// The data holds every purchase before this day.
    pub end: NaiveDate,
    /// The production cutoff.
    pub cutoff: NaiveDate,
    /// Whether the cutoff is the edge of the data (not given).
    pub at_edge: bool,
    /// The first training snapshot.
    pub earliest: NaiveDate,
    /// The plan's notes.
    pub notes: Vec<String>,
    /// The validation folds, their mean (where the champion is chosen) and the test.
    pub sections: Vec<Section>,
    /// The backtests at several cutoffs (the test's among them) and their notes, when any ran or
    /// was skipped.
    pub backtests: Option<(Vec<Backtest>, Vec<String>)>,
    /// The at-risk list against the naive list at every cutoff evaluated.
    pub risk: Vec<RiskRow>,
    /// The champion.
    pub champion: String,
    /// Its intervals at every cutoff tested.
    pub intervals: Vec<IntervalCheck>,
    /// The training sets that were sampled, and the sample's settings.
    pub sampled: (Vec<Sampled>, Sample),
    /// Where the training snapshots were written.
    pub frames: Option<PathBuf>,
    /// The production model's training cutoffs.
    pub train_cutoffs: Vec<NaiveDate>,
    /// The data's fingerprint.
    pub fingerprint: String,
}

impl Summary {
    /// The first line: the data and the plan.
    fn headline(&self) -> String {
        format!(
            "purchases from {} to {} (data through {}): production cutoff {}{}, training snapshots from {}",
            self.first,
            self.last_day,
            self.end.pred_opt().unwrap_or(self.end),
            self.cutoff,
            if self.at_edge {
                " (the edge of the data)"
            } else {
                ""
            },
            self.earliest
        )
    }

    fn intervals_table(&self) -> Option<String> {
        (!self.intervals.is_empty()).then(|| interval_table(&self.intervals))
    }

    /// What `clv train` prints.
    pub fn console(&self) -> String {
        let mut out = self.headline();
        out.push('\n');
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        for s in &self.sections {
            for note in &s.notes {
                out.push_str(&format!("{note}\n"));
            }
            out.push_str(&format!("\n{}\n\n{}", s.heading, table(&s.scores, &s.fold)));
        }
        if let Some((backtests, notes)) = &self.backtests {
            out.push_str(&format!(
                "\nbacktests at several test cutoffs:\n\n{}",
                crate::across::table(backtests)
            ));
            for note in notes {
                out.push_str(&format!("{note}\n"));
            }
        }
        out.push_str(&format!(
            "\nat-risk list (fading band by value at risk) vs naive (top spenders silent longer than the median): share who then spent nothing\n\n{}",
            crate::risk::table(&self.risk)
        ));
        out.push_str(&format!(
            "champion (lowest mean validation MAE; BG/NBD + GG preferred unless a model ranks as well and beats it by more than one standard error): {}\n",
            self.champion
        ));
        if let Some(intervals) = self.intervals_table() {
            out.push_str(&format!(
                "\n10th-90th percentile intervals (nominal 80%):\n\n{intervals}"
            ));
        }
        let (sampled, sample) = &self.sampled;
        for s in sampled {
            out.push_str(&format!(
                "sampled training set ({} cutoffs from {}): {} of {} rows, {:.1}% of the customers (seed {}, --max-training-rows {})\n",
                s.cutoffs.len(),
                s.cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                s.kept,
                s.rows,
                s.fraction * 100.0,
                sample.seed,
                sample.max_rows
            ));
        }
        if let Some(dir) = &self.frames {
            out.push_str(&format!(
                "wrote the training snapshots to {}\n",
                dir.display()
            ));
        }
        out
    }

    /// `report.md` of `version`.
    pub fn markdown(&self, version: &str) -> String {
        let mut out = format!(
            "# {version}: {}\n\nTrained on the snapshots {} (data {}); its BG/NBD, Gamma-Gamma and \
             seasonal inputs fitted on all the data, at its end ({}), where it is served.\n",
            self.champion,
            dates(&self.train_cutoffs),
            self.fingerprint,
            self.end
        );
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        for s in &self.sections {
            for note in &s.notes {
                out.push_str(&format!("\n{note}\n"));
            }
            out.push_str(&format!(
                "\n## {}\n\n{}",
                s.heading,
                table(&s.scores, &s.fold)
            ));
        }
        if let Some(intervals) = self.intervals_table() {
            out.push_str(&format!(
                "\n## Intervals\n\nAt each cutoff tested, the champion's 10th-90th percentile \
                 intervals (bounds inclusive), calibrated on its latest validation fold (non-buyers: \
                 an interval from 0 up to where 80% of them lie, carried to the customers at the \
                 cutoff by their BG/NBD probability of no purchase; buyers: ten bins by predicted \
                 value, in each the spread of actual / predicted), judged after the cutoff beside \
                 one interval for everyone:\n\n{intervals}"
            ));
        }
        if let Some((backtests, notes)) = &self.backtests {
            out.push_str(&format!(
                "\n## Backtests at several test cutoffs\n\nAt each test cutoff C the whole procedure \
                 runs on the data before C, as a user with that data runs it: planned at that data's \
                 edge, the champion chosen on its validation folds, trained on its snapshots, rows and \
                 BG/NBD inputs computed at C; scored on what every customer spent after C.\n\n{}",
                crate::across::table(backtests)
            ));
            for note in notes {
                out.push_str(&format!("\n{note}\n"));
            }
        }
        out.push_str(&format!(
            "\n## At-risk list\n\nThe list `GET /customers/at-risk` serves (the `fading` band: \
             P(alive) ≥ 0.3 and P(no purchase in the horizon) ≥ 0.5, by revenue to date × P(no \
             purchase)), built at each evaluation cutoff, against what its customers spent after \
             it; beside a naive list of the same size (the biggest spenders to date among those \
             silent longer than the median):\n\n{}",
            crate::risk::table(&self.risk)
        ));
        let (sampled, sample) = &self.sampled;
        if !sampled.is_empty() {
            out.push_str(&format!(
                "\n## Samples\n\nTraining sets above {} rows were sampled by customer (seed {}; BG/NBD \
                 fitted on at most {} customers per cutoff; tree ensembles on at most {} rows):\n\n\
                 | cutoffs | rows | kept | customers kept |\n|---|---|---|---|\n",
                sample.max_rows, sample.seed, sample.max_fit_customers, TREE_ROW_BUDGET
            ));
            for s in sampled {
                out.push_str(&format!(
                    "| {} .. {} | {} | {} | {:.1}% |\n",
                    s.cutoffs.first().map(|d| d.to_string()).unwrap_or_default(),
                    s.cutoffs.last().map(|d| d.to_string()).unwrap_or_default(),
                    s.rows,
                    s.kept,
                    s.fraction * 100.0
                ));
            }
        }
        out.push_str("\nPlots: report.html.\n");
        out
    }

    /// The HTML report's opening paragraphs.
    pub(crate) fn html_summary(&self, tested: &str) -> Vec<String> {
        let first = self.train_cutoffs.first().map(|d| d.to_string());
        let last = self.train_cutoffs.last().map(|d| d.to_string());
        vec![
            format!(
                "Champion by the lowest mean validation MAE (a BG/NBD + Gamma-Gamma candidate \
                 preferred unless another ranks as well and beats it by more than one standard \
                 error): {}. Production model trained on the snapshots {} to {}, its BG/NBD inputs \
                 fitted at the end of the data ({}); data {}.",
                self.champion,
                first.unwrap_or_default(),
                last.unwrap_or_default(),
                self.end,
                self.fingerprint
            ),
            format!(
                "The test fold is the procedure run on the data before {}: trained only on \
                 snapshots whose label windows end by it, the champion ({tested}) chosen on that \
                 data's validation folds; it is the honest estimate.",
                self.cutoff
            ),
        ]
    }
}

impl Registered {
    /// What `clv train` prints for `job`: the summary, then where the version went.
    pub fn console(&self, job: &Job) -> String {
        let mut out = self.summary.console();
        if let (Some((experiment, run)), Some(mlflow)) = (&self.mlflow, &job.mlflow) {
            out.push_str(&format!(
                "logged {} to MLflow at {}: experiment {experiment}, run {run}\n",
                self.version, mlflow.uri
            ));
        }
        if self.promoted {
            out.push_str(&format!(
                "registered {} in {} and made it production: {}\n",
                self.version,
                job.models_dir.display(),
                self.reason
            ));
        } else {
            out.push_str(&format!(
                "registered {}; production stays {}: {}\n",
                self.version, self.production, self.reason
            ));
        }
        out
    }
}
