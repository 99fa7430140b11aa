//! `/`: the customers first (who to look after, who to win back, how many and what they are
//! predicted to spend), then the model card, its freshness and how well it ranks.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use contract::segment::{Activity, ValueTier};
use maud::{Markup, html};

use super::charts::{bar_chart, gains_chart};
use super::{column_heads, layout, note, pounds, segment_badge, word};
use crate::follow::{Card, Production};
use crate::population::Population;
use crate::response::{AtRisk, Freshness, Ranked, SummaryResponse};

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

/// How many customers each segment holds: value tier × activity band (keys `value/activity`).
fn segment_table(segments: &BTreeMap<String, usize>) -> Markup {
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
                            td { (segments.get(&format!("{}/{}", word(v), word(a))).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    }
}

/// The histogram's bars: a label per bucket of `summary`, and its count.
fn bars(summary: &SummaryResponse) -> Vec<(String, f64)> {
    let short = |e: f64| match e >= 1000.0 {
        true => format!("{}k", e / 1000.0),
        false => format!("{e}"),
    };
    let mut labels = vec!["£0".to_string()];
    labels.extend(summary.edges.iter().map(|e| format!("≤£{}", short(*e))));
    if let Some(last) = summary.edges.last() {
        labels.push(format!(">£{}", short(*last)));
    }
    labels
        .into_iter()
        .zip(&summary.histogram)
        .map(|(l, c)| (l, *c as f64))
        .collect()
}

/// Rows of each list the overview leads with.
pub const OVERVIEW_ROWS: usize = 10;

/// What the overview shows of the customers: a scorer's own, or, for an instance, the group's
/// (added up and merged from every instance), with a note that says which.
pub struct Customers<'a> {
    /// How many, their predicted CLV, its histogram, the segments.
    pub summary: &'a SummaryResponse,
    /// The highest predicted CLV (none while the list cannot be given).
    pub top: Option<&'a [Ranked]>,
    /// The most valuable at risk (none while the list cannot be given).
    pub at_risk: Option<&'a [AtRisk]>,
    /// Said above the numbers.
    pub note: Option<&'a str>,
}

/// The two lists the overview leads with: who to look after, who to win back.
fn marketing_lists(customers: &Customers<'_>) -> Markup {
    html! {
        div class="cards" {
            div class="card" {
                h2 { "Highest predicted value" }
                @match customers.top {
                    Some(top) => {
                        table {
                            caption { "The next six months' most valuable customers" }
                            (column_heads(&[("rank", false), ("customer", true), ("CLV, next 6 months", false), ("segment", true)]))
                            tbody {
                                @for r in top {
                                    tr {
                                        td { (r.rank) }
                                        td class="text" { a href={ "/customers/" (r.customer_id) } { (r.customer_id) } }
                                        td { (pounds(r.clv_6m)) }
                                        td class="text" { (segment_badge(r.segment)) }
                                    }
                                }
                            }
                        }
                        p { a href="/customers" { "Every customer, ranked" } }
                    }
                    None => { p { "Not available right now (partitions are moving); reload in a moment." } }
                }
            }
            div class="card" {
                h2 { "Most valuable at risk" }
                @match customers.at_risk {
                    Some([]) => { p { "Nobody is in the fading band now." } }
                    Some(at_risk) => {
                        table {
                            caption { "Fading customers with the most revenue at stake" }
                            (column_heads(&[("rank", false), ("customer", true), ("value at risk", false), ("P(alive)", false)]))
                            tbody {
                                @for r in at_risk {
                                    tr {
                                        td { (r.rank) }
                                        td class="text" { a href={ "/customers/" (r.customer_id) } { (r.customer_id) } }
                                        td { (pounds(r.value_at_risk)) }
                                        td { (format!("{:.2}", r.p_alive)) }
                                    }
                                }
                            }
                        }
                        p { a href="/at-risk" { "The whole at-risk list" } }
                    }
                    None => { p { "Not available right now (partitions are moving); reload in a moment." } }
                }
            }
        }
    }
}

/// `/`: the overview of every customer of `population`.
pub fn overview(population: &Population, production: &Production) -> String {
    let summary = crate::summary::summarize(population, |_| true);
    let (top, at_risk) = (
        population.top(OVERVIEW_ROWS),
        population.at_risk(OVERVIEW_ROWS),
    );
    overview_of(
        population,
        production,
        &Customers {
            summary: &summary,
            top: Some(&top),
            at_risk: Some(&at_risk),
            note: None,
        },
    )
}

/// `/`: the customers first (the lists, then the numbers), then the model and its freshness.
pub fn overview_of(
    population: &Population,
    production: &Production,
    customers: &Customers<'_>,
) -> String {
    let card = &production.card;
    let summary = customers.summary;
    let top_decile = card.gains.as_ref().map(|gains| {
        gains
            .iter()
            .find(|(x, _)| *x >= 0.1 - 1e-9)
            .map(|(_, y)| *y)
            .unwrap_or(0.0)
    });
    let body = html! {
        (note(customers.note))
        p {
            (summary.customers) " customers with a purchase before " (summary.as_of)
            ", predicted to spend " (pounds(summary.total_clv)) " in the next six months."
        }
        (marketing_lists(customers))
        (bar_chart("Customers by predicted six-month CLV", &bars(summary), &|v| format!("{v:.0}")))
        @if production.tiers.is_some() {
            (segment_table(&summary.segments))
        }
        h2 { "The model" }
        div class="cards" {
            (model_card(production))
            (freshness_card(&population.freshness, population.as_of))
        }
        (metric_rows(card, &production.name))
        @if let (Some(gains), Some(top)) = (&card.gains, top_decile) {
            h2 { "How well it ranks" }
            p {
                "On its test fold (customers it had not seen the outcome of), the 10% of customers it \
                 ranked highest spent " (format!("{:.0}", top * 100.0)) "% of the revenue of the six \
                 months after; the dashed line is a random order."
            }
            (gains_chart(gains))
        }
    };
    layout("Customer lifetime value", "/", body)
}
