//! `/customers/{id}`: the forecast, the purchases by month, the features.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate};
use contract::{CustomerState, Feature};
use maud::{Markup, html};

use super::charts::bar_chart;
use super::{column_heads, layout, pounds, search_form, segment_badge};
use crate::response::{ClvResponse, Freshness};

/// Revenue by calendar month, from the first purchase's month to `as_of`'s (pounds; before `as_of`).
pub fn monthly_revenue(state: &CustomerState, as_of: NaiveDate) -> Vec<(NaiveDate, f64)> {
    let as_of_ms = contract::epoch_ms(contract::midnight(as_of));
    let mut by_month: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for p in state.purchases.values().filter(|p| p.time_ms < as_of_ms) {
        if let Some(day) = DateTime::from_timestamp_millis(p.time_ms).map(|t| t.date_naive())
            && let Some(month) = day.with_day(1)
        {
            *by_month.entry(month).or_default() += p.revenue_milli as f64 / 1000.0;
        }
    }
    let Some(first) = by_month.keys().next().copied() else {
        return Vec::new();
    };
    let last = as_of.with_day(1).unwrap_or(as_of);
    let mut out = Vec::new();
    let mut month = first;
    while month <= last {
        out.push((month, by_month.get(&month).copied().unwrap_or(0.0)));
        month = contract::add_months(month, 1);
    }
    out
}

/// The forecast's card and the freshness card.
fn cards(answer: &ClvResponse, state: Option<&CustomerState>, freshness: &Freshness) -> Markup {
    let interval = answer.clv_6m_low.zip(answer.clv_6m_high);
    let last_purchase = state
        .and_then(|s| s.purchases.values().map(|p| p.time_ms).max())
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "–".into());
    html! {
        div class="cards" {
            div class="card" {
                h2 { "Forecast" }
                p {
                    strong id="clv" { (pounds(answer.clv_6m)) }
                    " in the six months from " (answer.as_of)
                    @if let Some((low, high)) = interval {
                        " (80% interval " (pounds(low)) " – " (pounds(high)) ")"
                    }
                }
                dl {
                    dt { "Segment" } dd { (segment_badge(answer.segment)) }
                    dt { "P(alive)" } dd { (format!("{:.2}", answer.p_alive)) }
                    dt { "Expected purchase days in the six months" }
                    dd { (format!("{:.1}", answer.expected_purchases)) }
                    dt { "Model" } dd { (answer.model.name) " " (answer.model.version) }
                }
            }
            div class="card" {
                h2 { "Freshness" }
                dl {
                    dt { "Features as of" } dd { (answer.as_of) }
                    dt { "This customer's latest purchase" } dd { (last_purchase) }
                    dt { "Scores last refreshed" }
                    dd { (freshness.refreshed_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                }
            }
        }
    }
}

/// A feature's value as the table shows it.
fn shown(value: Option<f64>) -> String {
    match value {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "–".into(),
    }
}

/// `/customers/{id}`: the forecast, the purchases by month, the features.
pub fn customer(
    answer: &ClvResponse,
    state: Option<&CustomerState>,
    freshness: &Freshness,
) -> String {
    let months: Option<Vec<(String, f64)>> = state.map(|state| {
        monthly_revenue(state, answer.as_of)
            .iter()
            .map(|(m, v)| (format!("{:02}/{:02}", m.month(), m.year() % 100), *v))
            .collect()
    });
    let body = html! {
        (search_form())
        (cards(answer, state, freshness))
        @if let Some(bars) = &months {
            h2 { "Purchases by month" }
            (bar_chart(
                &format!("Revenue by month of customer {}", answer.customer_id),
                bars,
                &|v| if v > 0.0 { pounds(v) } else { String::new() },
            ))
        }
        table {
            caption { "Features" }
            (column_heads(&[("feature", true), ("value", false), ("meaning", true)]))
            tbody {
                @for feature in Feature::ALL {
                    tr {
                        th scope="row" class="text" { code { (feature.name()) } }
                        td { (shown(answer.features.get(*feature))) }
                        td class="text" { (feature.doc().lines().next().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    layout(&format!("Customer {}", answer.customer_id), "", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_revenue_fills_the_months_without_purchases_and_stops_at_as_of() {
        let at = |d: &str| contract::epoch_ms(contract::midnight(d.parse().unwrap())) + 3_600_000;
        let mut state = CustomerState::default();
        for (key, day, milli) in [
            ("a", "2011-01-05", 10_000),
            ("b", "2011-01-20", 5_500),
            ("c", "2011-03-02", 1_000),
            ("d", "2011-06-01", 99_000),
        ] {
            state.purchases.insert(
                key.into(),
                contract::Purchase {
                    time_ms: at(day),
                    revenue_milli: milli,
                },
            );
        }
        let months = monthly_revenue(&state, "2011-04-10".parse().unwrap());
        let values: Vec<f64> = months.iter().map(|m| m.1).collect();
        assert_eq!(values, [15.5, 0.0, 1.0, 0.0]);
        assert_eq!(months[0].0.to_string(), "2011-01-01");
    }

    #[test]
    fn shown_values_are_whole_or_three_places() {
        assert_eq!(shown(Some(3.0)), "3");
        assert_eq!(shown(Some(0.12345)), "0.123");
        assert_eq!(shown(None), "–");
    }
}
