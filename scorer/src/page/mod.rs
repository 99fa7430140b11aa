//! The web page for the people who use the scores (a marketing team): server-rendered HTML with
//! inline SVG charts and one stylesheet, no script and nothing fetched from elsewhere, so it works
//! offline and is built into the binary. Pure functions of the scored population and the production
//! version, written as compile-time templates (maud, which escapes every value it is given): the
//! handlers in [`crate::http`] only look them up.
//!
//! - `/`: the customers first (the highest predicted CLV and the most valuable at risk, linked to
//!   their pages; how many, their predicted CLV in all and its distribution), then the model card
//!   (name, version, data, test-fold metrics beside BG/NBD, links to its report and the API docs),
//!   freshness, the cumulative gains on the test fold, segment sizes ([`overview`]); for an instance
//!   of a group, every number and list is the group's, merged from every instance;
//! - `/customers`: the ranked customers, paged, searchable by ID, downloadable as CSV, and `/at-risk`:
//!   valuable customers whose activity is fading ([`lists`]);
//! - `/customers/{id}`: one customer's purchases by month, features and forecast with its interval
//!   ([`customer`]).

use contract::segment::Segment;
use maud::{DOCTYPE, Markup, PreEscaped, html};

mod charts;
pub mod customer;
pub mod lists;
pub mod overview;

pub use customer::{customer, monthly_revenue};
pub use lists::{PER_PAGE, at_risk, at_risk_rows, customers, customers_of};
pub use overview::{Customers, OVERVIEW_ROWS, overview, overview_of};

/// Pounds with thousands separators, no pence above £100.
fn pounds(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let whole = value.abs() >= 100.0;
    let text = if whole {
        format!("{:.0}", value.abs())
    } else {
        format!("{:.2}", value.abs())
    };
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if value < 0.0 { "−" } else { "" };
    if frac.is_empty() {
        format!("{sign}£{grouped}")
    } else {
        format!("{sign}£{grouped}.{frac}")
    }
}

/// The word a value serialises to (a tier, an activity band).
fn word(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A customer's value tier and activity band as two badges.
fn segment_badge(segment: Option<Segment>) -> Markup {
    match segment {
        Some(s) => {
            let (v, a) = (word(s.value), word(s.activity));
            html! {
                span class={ "tier " (v) } { (v) } " "
                span class={ "activity " (a) } { (a) }
            }
        }
        None => html! { "–" },
    }
}

/// The pages' icon: a filled circle in the charts' colour. Inline in each page's head (a saved
/// page keeps it), and served at `/favicon.ico` for what names none (the training report, the
/// documentation, an answer opened in a browser), which browsers ask for.
pub const ICON_SVG: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='#12355b'/></svg>";

/// [`ICON_SVG`] as a data URL.
static ICON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let escaped = ICON_SVG
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('#', "%23");
    format!("data:image/svg+xml,{escaped}")
});

const STYLE: &str = "
:root{color-scheme:light}
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1a1a1a;background:#fff}
header{background:#12355b;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;padding:.2rem .4rem;border-radius:4px}
header a[aria-current=page]{background:#fff;color:#12355b;font-weight:600}
header strong{font-size:1.1rem;margin-right:1rem}
main{padding:1rem 1.2rem;max-width:72rem}
a{color:#0b57d0}
a:focus,button:focus,input:focus{outline:3px solid #f0a500;outline-offset:2px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{padding:.3rem .7rem;border-bottom:1px solid #d0d4da;text-align:right}
th:first-child,td:first-child,td.text,th.text{text-align:left}
th{background:#eef1f5}
.cards{display:flex;gap:1.5rem;flex-wrap:wrap}
.card{border:1px solid #d0d4da;border-radius:6px;padding:.8rem 1rem;min-width:18rem;flex:1}
.tier,.activity{display:inline-block;padding:0 .4rem;border-radius:3px;font-size:.85rem;border:1px solid #767676}
.tier.high{background:#0d5c2e;color:#fff}.tier.medium{background:#d6ecdc;color:#1a1a1a}.tier.low{background:#f2f2f2;color:#1a1a1a}
.activity.active{background:#d9e8fb;color:#1a1a1a}.activity.fading{background:#fde7c2;color:#1a1a1a}.activity.lapsed{background:#f6d5d5;color:#1a1a1a}
form{margin:.5rem 0 1rem}
input{font:inherit;padding:.3rem .5rem;border:1px solid #767676;border-radius:4px}
button{font:inherit;padding:.3rem .8rem;border:1px solid #12355b;background:#12355b;color:#fff;border-radius:4px;cursor:pointer}
nav.pages{display:flex;gap:1rem;margin:.5rem 0}
.muted{color:#555}
svg text{font:12px system-ui,sans-serif;fill:#1a1a1a}
";

/// The page around `body`: navigation (the current page marked), one stylesheet.
fn layout(title: &str, current: &str, body: Markup) -> String {
    let nav = [
        ("/", "Overview"),
        ("/customers", "Customers"),
        ("/at-risk", "At risk"),
        ("/docs/", "API"),
    ];
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · clv" }
                link rel="icon" href=(ICON.as_str());
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "clv" }
                    nav aria-label="Main" {
                        @for (href, label) in nav {
                            a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut text = page.into_string();
    text.push('\n');
    text
}

/// A page saying why there is nothing to show (no model yet, nothing scored, no such customer).
pub fn message(title: &str, text: &str) -> String {
    layout(title, "", html! { p { (text) } })
}

/// The search form of the ranked list and a customer's page.
/// A table's head row: each column's label, text columns (`true`) left-aligned.
fn column_heads(columns: &[(&str, bool)]) -> Markup {
    html! {
        thead { tr {
            @for (label, text) in columns {
                th scope="col" class=[text.then_some("text")] { (label) }
            }
        } }
    }
}

fn search_form() -> Markup {
    html! {
        form method="get" action="/customers" role="search" {
            label for="id" { "Find a customer by ID" } " "
            input id="id" name="id" inputmode="numeric" pattern="[0-9]+" required;
            " "
            button type="submit" { "Open" }
        }
    }
}

/// What a page says above its numbers and lists (for an instance: that they are the group's).
fn note(text: Option<&str>) -> Markup {
    html! {
        @if let Some(note) = text {
            p class="note" { (note) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pounds_are_grouped() {
        assert_eq!(pounds(1234567.891), "£1,234,568");
        assert_eq!(pounds(12.5), "£12.50");
        assert_eq!(pounds(-250.0), "−£250");
        assert_eq!(pounds(f64::NAN), "–");
    }

    #[test]
    fn what_a_page_is_given_is_escaped() {
        let page = message("<b>Title</b>", "a <script>alert('x')</script> & \"quotes\"");
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(page.contains("&amp; &quot;quotes&quot;"), "{page}");
        assert!(
            page.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{page}"
        );
        let note = note(Some("partitions <0>")).into_string();
        assert_eq!(note, "<p class=\"note\">partitions &lt;0&gt;</p>");
    }

    #[test]
    fn the_current_page_is_marked_in_the_navigation() {
        let page = layout("Customers", "/customers", html! {});
        assert!(page.contains("<a href=\"/customers\" aria-current=\"page\">Customers</a>"));
        assert!(page.contains("<a href=\"/\">Overview</a>"));
    }
}
