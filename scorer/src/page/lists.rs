//! `/customers`: the ranked customers, paged; `/at-risk`: valuable customers whose activity is
//! fading.

use chrono::NaiveDate;
use maud::html;

use super::{column_heads, layout, note, pounds, search_form, segment_badge};
use crate::follow::Production;
use crate::population::Population;
use crate::response::{AtRisk, Ranked};

/// Customers per page of the ranked list.
pub const PER_PAGE: usize = 50;

/// `/customers?page=N`: the ranked customers of `population`, [`PER_PAGE`] at a time.
pub fn customers(population: &Population, production: &Production, page: usize) -> String {
    let shown = population.len();
    let page = page.clamp(1, shown.div_ceil(PER_PAGE).max(1));
    let start = (page - 1) * PER_PAGE;
    let rows: Vec<Ranked> = population
        .top(start + PER_PAGE)
        .into_iter()
        .skip(start)
        .collect();
    customers_of(&rows, shown, page, population.as_of, production, None)
}

/// Page `page` of a ranking of `shown` customers at `as_of`: its `rows` (a scorer's own, or the
/// group's merged list), with `note` above them.
pub fn customers_of(
    rows: &[Ranked],
    shown: usize,
    page: usize,
    as_of: NaiveDate,
    production: &Production,
    note_text: Option<&str>,
) -> String {
    let pages = shown.div_ceil(PER_PAGE).max(1);
    let body = html! {
        (search_form())
        (note(note_text))
        p {
            (shown) " customers, highest predicted CLV first, as of " (as_of) ". "
            a href="/customers/top.csv?k=10000" download { "Download the top 10,000 as CSV" }
            " (every customer: " code { "clv score --out scores.csv" } ")."
        }
        table {
            caption { "Customers by predicted CLV" }
            (column_heads(&[
                ("rank", false),
                ("customer", true),
                ("CLV, next 6 months", false),
                ("80% interval", false),
                ("P(alive)", false),
                ("segment", true),
            ]))
            tbody {
                @for ranked in rows {
                    @let interval = production.interval.as_ref().map(|c| c.interval(ranked.clv_6m));
                    tr {
                        td { (ranked.rank) }
                        td class="text" {
                            a href={ "/customers/" (ranked.customer_id) } { (ranked.customer_id) }
                        }
                        td { (pounds(ranked.clv_6m)) }
                        td {
                            @match interval {
                                Some((low, high)) => { (pounds(low)) " – " (pounds(high)) }
                                None => { "–" }
                            }
                        }
                        td { (format!("{:.2}", ranked.p_alive)) }
                        td class="text" { (segment_badge(ranked.segment)) }
                    }
                }
            }
        }
        nav class="pages" aria-label="Pages" {
            @if page > 1 {
                a href={ "/customers?page=" (page - 1) } rel="prev" { "← previous" }
            }
            span { "page " (page) " of " (pages) }
            @if page < pages {
                a href={ "/customers?page=" (page + 1) } rel="next" { "next →" }
            }
        }
    };
    layout("Customers", "/customers", body)
}

/// `/at-risk`: the at-risk list (README, "At risk").
pub fn at_risk(population: &Population, k: usize) -> String {
    at_risk_rows(&population.at_risk(k), population.as_of, k)
}

/// The at-risk page of `listed` (the group's merged list, for an instance) at `as_of`.
pub fn at_risk_rows(listed: &[AtRisk], as_of: NaiveDate, k: usize) -> String {
    let body = html! {
        p {
            "Valuable customers whose activity is fading: still alive (P(alive) at least 0.3) but more \
             likely than not to buy nothing in the horizon, highest value at risk (revenue to date × \
             P(no purchase)) first; " (listed.len()) " listed, as of " (as_of) ". "
            a href={ "/customers/at-risk.csv?k=" (k) } download { "Download as CSV" } "."
        }
        @if listed.is_empty() {
            p { "Nobody is in the fading band now." }
        } @else {
            table {
                caption { "At risk" }
                (column_heads(&[
                    ("rank", false),
                    ("customer", true),
                    ("value at risk", false),
                    ("revenue to date", false),
                    ("P(alive)", false),
                    ("days since last purchase", false),
                    ("CLV, next 6 months", false),
                ]))
                tbody {
                    @for r in listed {
                        tr {
                            td { (r.rank) }
                            td class="text" {
                                a href={ "/customers/" (r.customer_id) } { (r.customer_id) }
                            }
                            td { (pounds(r.value_at_risk)) }
                            td { (pounds(r.total_revenue)) }
                            td { (format!("{:.2}", r.p_alive)) }
                            td { (r.recency_days) }
                            td { (pounds(r.clv_6m)) }
                        }
                    }
                }
            }
        }
    };
    layout("At risk", "/at-risk", body)
}
