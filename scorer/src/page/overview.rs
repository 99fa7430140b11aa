//! `/`: the model card, freshness and the population.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use contract::segment::{Activity, Segment, ValueTier};
use maud::{Markup, html};

use super::charts::{bar_chart, gains_chart};
use super::{Scope, layout, pounds, word};
use crate::follow::{Card, Production};
use crate::population::Population;
use crate::response::Freshness;

/// The model's test-fold metrics beside BG/NBD + Gamma-Gamma's.
fn metric_rows(card: &Card, name: &str) -> Markup {
    let columns = [
        "RMSE £",
        "MAE £",
        "R²",
        "Spearman",
        "norm. Gini",
        "top-decile share",
        "predicted/actual total",
    ];
    let rows = [
        (card.tested.as_deref().unwrap_or(name), &card.test),
        ("BG/NBD + Gamma-Gamma", &card.reference),
    ];
    html! {
        table {
            caption { "Test fold (out of time)" }
            thead { tr {
                th scope="col" class="text" { "model" }
                @for c in columns { th scope="col" { (c) } }
            } }
            tbody {
                @for (label, metrics) in rows {
                    @if let Some(m) = metrics {
                        tr {
                            th scope="row" class="text" { (label) }
                            @for cell in m.cells() { td { (cell) } }
                        }
                    }
                }
            }
        }
    }
}

/// When the features, the data and the scores are from.
fn freshness_card(freshness: &Freshness, as_of: NaiveDate) -> Markup {
    let watermark = freshness
        .watermark
        .map(|w| w.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "none yet".into());
    html! {
        div class="card" {
            h2 { "Freshness" }
            dl {
                dt { "Features as of" } dd { (as_of) " (midnight UTC)" }
                dt { "Latest purchase ingested (watermark)" } dd { (watermark) }
                dt { "Scores last refreshed" }
                dd { (freshness.refreshed_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                dt { "Consumer lag" }
                dd { "on the operators' dashboard (Grafana), not known to the scorer" }
            }
        }
    }
}

/// The model's card: its name, version, what it knows and links to its report and the API.
fn model_card(production: &Production) -> Markup {
    let card = &production.card;
    let through = card
        .data_end
        .as_deref()
        .and_then(|d| d.parse::<NaiveDate>().ok())
        .and_then(|d| d.pred_opt())
        .map(|d| d.to_string())
        .unwrap_or_else(|| "not recorded".into());
    html! {
        div class="card" {
            h2 { "Model" }
            dl {
                dt { "Champion" } dd { (production.name) }
                dt { "Version" } dd { (production.version) }
                dt { "Knows the data before" } dd { (card.cutoff) }
                dt { "Trained on data through" } dd { (through) }
                dt { "Trained" } dd { (card.created.get(..10).unwrap_or(&card.created)) }
            }
            p {
                @if card.report.is_some() {
                    a href="/report.html" { "Its training report" } " · "
                }
                a href="/docs/" { "The API (OpenAPI, Swagger UI)" }
            }
        }
    }
}

/// How many customers each segment holds: value tier × activity band.
fn segment_table(segments: &BTreeMap<(u8, u8), usize>) -> Markup {
    let activities = [Activity::Active, Activity::Fading, Activity::Lapsed];
    html! {
        table {
            caption { "Segments: value tier by predicted CLV × activity by P(alive) and P(no purchase)" }
            thead { tr {
                th scope="col" class="text" { "value \\ activity" }
                @for a in activities { th scope="col" { (word(a)) } }
            } }
            tbody {
                @for v in [ValueTier::High, ValueTier::Medium, ValueTier::Low] {
                    tr {
                        th scope="row" class="text" { (word(v)) }
                        @for a in activities {
                            td { (segments.get(&(v as u8, a as u8)).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    }
}

/// The predicted CLV's histogram edges, pounds.
const EDGES: [f64; 9] = [
    10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// What the overview counts over the customers it shows.
struct Counted {
    bars: Vec<(String, f64)>,
    segments: BTreeMap<(u8, u8), usize>,
    total: f64,
    shown: usize,
}

/// The histogram of predicted CLV and the segments of the customers `scope` keeps.
fn count(population: &Population, production: &Production, scope: &Scope<'_>) -> Counted {
    let mut counts = [0usize; EDGES.len() + 2];
    let mut segments: BTreeMap<(u8, u8), usize> = BTreeMap::new();
    let (mut total, mut shown) = (0.0, 0usize);
    for (_, scored) in population.iter().filter(|(id, _)| (scope.keep)(*id)) {
        shown += 1;
        let clv = scored.clv_6m;
        total += clv;
        let bucket = if clv <= 0.0 {
            0
        } else {
            1 + EDGES.partition_point(|e| *e < clv)
        };
        counts[bucket] += 1;
        if let Some(tiers) = production.tiers {
            let s = Segment::of(&tiers, clv, &scored.row);
            *segments
                .entry((s.value as u8, s.activity as u8))
                .or_default() += 1;
        }
    }
    let short = |e: f64| match e >= 1000.0 {
        true => format!("{}k", e / 1000.0),
        false => format!("{e}"),
    };
    let mut labels = vec!["£0".to_string()];
    labels.extend(EDGES.iter().map(|e| format!("≤£{}", short(*e))));
    labels.push(format!(">£{}", short(EDGES[EDGES.len() - 1])));
    let bars = labels
        .into_iter()
        .zip(counts)
        .map(|(l, c)| (l, c as f64))
        .collect();
    Counted {
        bars,
        segments,
        total,
        shown,
    }
}

/// `/`: the model card, freshness and the population.
pub fn overview(population: &Population, production: &Production) -> String {
    overview_in(population, production, &Scope::all())
}

/// [`overview`] of the customers `scope` keeps.
pub fn overview_in(population: &Population, production: &Production, scope: &Scope<'_>) -> String {
    let card = &production.card;
    let counted = count(population, production, scope);
    let top_decile = card.gains.as_ref().map(|gains| {
        gains
            .iter()
            .find(|(x, _)| *x >= 0.1 - 1e-9)
            .map(|(_, y)| *y)
            .unwrap_or(0.0)
    });
    let body = html! {
        div class="cards" {
            (model_card(production))
            (freshness_card(&population.freshness, population.as_of))
        }
        (metric_rows(card, &production.name))
        h2 { "The customers" }
        (scope.note())
        p {
            (counted.shown) " customers with a purchase before " (population.as_of)
            ", predicted to spend " (pounds(counted.total)) " in the next six months."
        }
        (bar_chart("Customers by predicted six-month CLV", &counted.bars, &|v| format!("{v:.0}")))
        @if let (Some(gains), Some(top)) = (&card.gains, top_decile) {
            h2 { "How well it ranks" }
            p {
                "On its test fold (customers it had not seen the outcome of), the 10% of customers it \
                 ranked highest spent " (format!("{:.0}", top * 100.0)) "% of the revenue of the six \
                 months after; the dashed line is a random order."
            }
            (gains_chart(gains))
        }
        @if production.tiers.is_some() {
            (segment_table(&counted.segments))
        }
    };
    layout("Customer lifetime value", "/", body)
}
