//! The report of a training run: one self-contained HTML page (SVG plots inline, no scripts, no
//! network) with the cumulative-gains curve, predicted against actual, the metric table of each fold
//! and the permutation importance of the features.

use std::fmt::Write as _;

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use rand08::SeedableRng;
use rand08::seq::SliceRandom;

use contract::FeatureRow;
use models::registry::Score;
use models::{Spec, Trained, TrainingSet};

use crate::backtest::Forecast;
use crate::evaluate::Snapshots;
use crate::training::Labelled;
use crate::{Result, TrainError};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 480;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> TrainError {
    TrainError::Plot(Box::new(e))
}

/// The cumulative-gains curve of `predicted`: customers ranked by prediction (highest first), the
/// share of customers against the share of the actual total they hold; from (0, 0) to (1, 1).
pub fn gains(actual: &[f64], predicted: &[f64]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..actual.len()).collect();
    order.sort_by(|&i, &j| predicted[j].total_cmp(&predicted[i]));
    let total: f64 = actual.iter().sum();
    let n = actual.len() as f64;
    let mut out = Vec::with_capacity(actual.len() + 1);
    out.push((0.0, 0.0));
    let mut sum = 0.0;
    for (k, i) in order.iter().enumerate() {
        sum += actual[*i];
        let share = if total > 0.0 { sum / total } else { 0.0 };
        out.push(((k + 1) as f64 / n, share));
    }
    out
}

/// The cumulative-gains chart (SVG) of several models' predictions of the same customers, with the
/// perfect ordering and a random one for reference.
pub fn gains_chart(title: &str, actual: &[f64], models: &[(&str, &[f64])]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("share of customers, highest predicted first")
            .y_desc("share of actual revenue")
            .draw()
            .map_err(plot_error)?;
        let perfect = gains(actual, actual);
        chart
            .draw_series(LineSeries::new(perfect, BLACK.stroke_width(1)))
            .map_err(plot_error)?
            .label("perfect ordering")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(plot_error)?
            .label("random")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
        for (k, (name, predicted)) in models.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    gains(actual, predicted),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Predicted against actual (SVG), both as 1 + £ on log scales (most customers are near 0), with the
/// line where they are equal.
pub fn predicted_vs_actual_chart(title: &str, actual: &[f64], predicted: &[f64]) -> Result<String> {
    let top = actual
        .iter()
        .chain(predicted)
        .fold(10.0f64, |m, v| m.max(1.0 + v))
        * 1.2;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..top).log_scale(), (1f64..top).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("1 + actual revenue in the window (£)")
            .y_desc("1 + predicted (£)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(actual.iter().zip(predicted).map(|(a, p)| {
                Circle::new(
                    (1.0 + a, 1.0 + p.max(0.0)),
                    2,
                    PALETTE[0].mix(0.35).filled(),
                )
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                vec![(1.0, 1.0), (top, top)],
                PALETTE[3].stroke_width(1),
            ))
            .map_err(plot_error)?
            .label("predicted = actual")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[3]));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Permutation importance: how much the MAE of `model` on `test` grows when one feature it reads
/// is shuffled across customers (seeded), for each feature. A feature that is the same for every
/// customer of a snapshot (the seasonal index) shows 0: it moves the level, not the ranking.
pub fn permutation_importance(model: &Trained, test: &Labelled) -> Result<Vec<(String, f64)>> {
    let actual = &test.labels;
    let mae = |predicted: &[f64]| {
        actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| (a - p).abs())
            .sum::<f64>()
            / actual.len().max(1) as f64
    };
    let base = mae(&model.predict(&test.rows)?);
    let mut rng = rand08::rngs::StdRng::seed_from_u64(42);
    let mut out = Vec::new();
    for feature in model.spec.features() {
        let column = contract::Feature::ALL
            .iter()
            .position(|f| *f == feature)
            .ok_or_else(|| TrainError::Input(format!("{} is not a feature", feature.name())))?;
        let mut values: Vec<Option<f64>> = test.rows.iter().map(|r| r.get(feature)).collect();
        values.shuffle(&mut rng);
        let shuffled = test
            .rows
            .iter()
            .zip(values)
            .map(|(row, value)| {
                let mut cells = row.values();
                cells[column] = value;
                FeatureRow::from_values(&cells)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.push((
            feature.name().to_string(),
            mae(&model.predict(&shuffled)?) - base,
        ));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

/// A horizontal bar chart (SVG) of feature importances.
pub fn importance_chart(title: &str, importance: &[(String, f64)]) -> Result<String> {
    let n = importance.len().max(1);
    let top = importance.iter().fold(1.0f64, |m, (_, v)| m.max(*v)) * 1.1;
    let bottom = importance.iter().fold(0.0f64, |m, (_, v)| m.min(*v)) * 1.1;
    let names: Vec<String> = importance.iter().map(|(n, _)| n.clone()).collect();
    let mut svg = String::new();
    {
        let height = (120 + 28 * n as u32).max(200);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(210)
            .build_cartesian_2d(bottom..top, (0..n).into_segmented())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("MAE increase when the feature is shuffled (£)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(importance.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    PALETTE[0].filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// What the HTML report shows.
pub struct ReportInput<'a> {
    /// The page's title (the version and its champion).
    pub title: String,
    /// Paragraphs of plain text under the title.
    pub summary: Vec<String>,
    /// The metric tables, in order: each a heading and every candidate's scores.
    pub tables: &'a [(String, Vec<Score>)],
    /// The champion's name (its rows are marked).
    pub champion: &'a str,
    /// Plots, each a title and an SVG document.
    pub charts: Vec<(String, String)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as one HTML page.
pub fn html(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}tr.champion{{background:#fff3c4;font-weight:bold}}\
         figure{{margin:1.5em 0}}figcaption{{color:#555}}</style></head><body>\n<h1>{}</h1>\n",
        escape(&input.title),
        escape(&input.title)
    );
    for paragraph in &input.summary {
        let _ = writeln!(out, "<p>{}</p>", escape(paragraph));
    }
    for (title, svg) in &input.charts {
        let _ = writeln!(
            out,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape(title)
        );
    }
    for (heading, scores) in input.tables {
        let _ = writeln!(
            out,
            "<h2>{}</h2>\n<table><tr><th>model</th><th>RMSE</th>\
             <th>MAE</th><th>R²</th><th>Spearman</th><th>norm. Gini</th><th>top-decile share</th>\
             <th>predicted/actual total</th></tr>",
            escape(heading),
        );
        for s in scores {
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td>{}</td></tr>",
                if s.model == input.champion {
                    " class=\"champion\""
                } else {
                    ""
                },
                escape(&s.model),
                s.metrics.cells().join("</td><td>")
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Whether `spec` is learned from the training rows (not a baseline or BG/NBD).
fn is_learned(spec: &Spec) -> bool {
    matches!(
        spec,
        Spec::Linear { .. }
            | Spec::RandomForest { .. }
            | Spec::Boosting { .. }
            | Spec::TwoStage { .. }
    )
}

/// The report of an evaluated run: on the test fold (`test`: the procedure run on the data before
/// its cutoff), the cumulative gains of the champion, the field's standard BG/NBD, the naive rule and
/// the best learned model (by validation MAE, `validation`); the champion's predicted against actual;
/// the permutation importance of the champion and of that learned model, both refitted on the test
/// fold's training set and shuffled on its evaluation snapshot; added to `page`'s charts.
pub fn build(
    mut page: ReportInput<'_>,
    snapshots: &mut Snapshots<'_>,
    test: &Forecast,
    validation: &[Score],
    candidates: &[Spec],
) -> Result<String> {
    let champion = page.champion;
    let predictions = &test.predictions;
    let learned = validation
        .iter()
        .filter(|s| {
            candidates
                .iter()
                .any(|c| c.name() == s.model && is_learned(c))
        })
        .min_by(|a, b| a.metrics.mae.total_cmp(&b.metrics.mae))
        .map(|s| s.model.clone());
    let mut shown: Vec<String> = vec![champion.to_string()];
    for name in ["bgnbd_gg", "naive"]
        .into_iter()
        .map(String::from)
        .chain(learned.clone())
    {
        if !shown.contains(&name) {
            shown.push(name);
        }
    }
    let curves: Vec<(&str, &[f64])> = shown
        .iter()
        .filter_map(|name| predictions.of(name).map(|p| (name.as_str(), p)))
        .collect();
    let test = &test.test;
    let charts = &mut page.charts;
    charts.push((
        format!(
            "Cumulative gains on the test fold ({}): the share of the next {}-month revenue held by \
             the customers each model ranks highest.",
            test.evaluate_at, snapshots.horizon_months()
        ),
        gains_chart(
            &format!("Cumulative gains, test fold ({})", test.evaluate_at),
            &predictions.actual,
            &curves,
        )?,
    ));
    if let Some(p) = predictions.of(champion) {
        charts.push((
            format!(
                "{champion}: predicted against actual revenue of each customer on the test fold."
            ),
            predicted_vs_actual_chart(
                &format!("{champion}: predicted vs actual, test fold"),
                &predictions.actual,
                p,
            )?,
        ));
    }
    let train = snapshots.stacked(&test.train_cutoffs)?;
    let evaluated = snapshots.evaluated(test)?;
    let inputs = snapshots.inputs(test.evaluate_at)?;
    let set = TrainingSet {
        rows: &train.rows,
        labels: &train.labels,
        population: &evaluated.rows,
    };
    for name in std::iter::once(champion.to_string()).chain(learned) {
        let Some(spec) = candidates.iter().find(|c| c.name() == name) else {
            continue;
        };
        let model = Trained::fit(spec, &set, inputs.clone())?;
        let importance = permutation_importance(&model, &evaluated)?;
        charts.push((
            format!(
                "{name}: permutation importance on the test fold (trained at {}).",
                test.train_cutoffs
                    .last()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            ),
            importance_chart(&format!("{name}: feature importance"), &importance)?,
        ));
    }
    Ok(html(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_run_from_origin_to_one_and_perfect_ordering_is_on_top() {
        let actual = [0.0, 10.0, 0.0, 5.0, 85.0];
        let model = [1.0, 2.0, 3.0, 4.0, 5.0];
        let curve = gains(&actual, &model);
        let perfect = gains(&actual, &actual);
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
        assert_eq!(perfect[1], (0.2, 0.85));
        assert!(curve.iter().zip(&perfect).all(|(c, p)| c.1 <= p.1 + 1e-12));
    }

    #[test]
    fn charts_are_svg_documents() {
        let actual = [0.0, 10.0, 0.0, 5.0, 85.0];
        let model = [1.0, 2.0, 3.0, 4.0, 5.0];
        let svg = gains_chart("gains", &actual, &[("model", &model)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("model") && svg.contains("random"));
        let svg = predicted_vs_actual_chart("scatter", &actual, &model).unwrap();
        assert_eq!(svg.matches("<circle").count(), 5);
        let svg = importance_chart("importance", &[("a".into(), 3.0), ("b".into(), -1.0)]).unwrap();
        let words: Vec<&str> = svg.split_whitespace().collect();
        assert!(words.contains(&"a") && words.contains(&"b"), "{svg}");
    }
}
