//! The web page for the people who use the scores (a marketing team): server-rendered HTML with
//! inline SVG charts and one stylesheet, no script and nothing fetched from elsewhere, so it works
//! offline and is built into the binary. Pure functions of the scored population and the production
//! version: the handlers in [`crate::http`] only look them up.
//!
//! - `/`: the model card (name, version, data, test-fold metrics beside BG/NBD, links to its report
//!   and the API docs), freshness, the distribution of predicted CLV, the cumulative gains on the
//!   test fold, segment sizes;
//! - `/customers`: the ranked customers, paged, searchable by ID, downloadable as CSV;
//! - `/customers/{id}`: one customer's purchases by month, features and forecast with its interval;
//! - `/at-risk`: valuable customers whose activity is fading.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate};
use contract::segment::{Activity, Segment, ValueTier};
use contract::{CustomerState, Feature};

use crate::follow::Production;
use crate::population::{ClvResponse, Freshness, Population};

/// Customers per page of the ranked list.
pub const PER_PAGE: usize = 50;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn word(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn segment_badge(segment: Option<Segment>) -> String {
    match segment {
        Some(s) => format!(
            "<span class=\"tier {v}\">{v}</span> <span class=\"activity {a}\">{a}</span>",
            v = word(s.value),
            a = word(s.activity)
        ),
        None => "–".into(),
    }
}

/// The page's icon, inline (a browser asks for `/favicon.ico` when a page names none, and the page
/// works offline from its own bytes): a filled circle in the charts' colour.
const ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%2312355b'/%3E%3C/svg%3E";

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
fn layout(title: &str, current: &str, body: &str) -> String {
    let mut nav = String::new();
    for (href, label) in [
        ("/", "Overview"),
        ("/customers", "Customers"),
        ("/at-risk", "At risk"),
        ("/docs/", "API"),
    ] {
        let mark = if href == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{mark}>{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · clv</title><link rel=\"icon\" href=\"{ICON}\"><style>{STYLE}</style></head>\
         <body><header><strong>clv</strong><nav aria-label=\"Main\">{nav}</nav></header>\
         <main id=\"main\"><h1>{title}</h1>{body}</main></body></html>\n",
        title = escape(title)
    )
}

/// A page saying why there is nothing to show (no model yet, nothing scored, no such customer).
pub fn message(title: &str, text: &str) -> String {
    layout(title, "", &format!("<p>{}</p>", escape(text)))
}

/// A bar chart: one bar per `(label, value)`.
fn bar_chart(title: &str, bars: &[(String, f64)], value_label: &dyn Fn(f64) -> String) -> String {
    let (width, height, left, bottom) = (640.0, 220.0, 50.0, 40.0);
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1e-9);
    let step = (width - left) / bars.len().max(1) as f64;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\"><title>{t}</title>",
        t = escape(title)
    );
    // At most about twelve labels under the bars, and values over them only when they fit.
    let every = bars.len().div_ceil(12).max(1);
    for (i, (label, value)) in bars.iter().enumerate() {
        let h = (height - bottom - 20.0) * value / max;
        let x = left + i as f64 * step;
        let y = height - bottom - h;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#12355b\"><title>{}: {}</title></rect>",
            x + 2.0,
            (step - 4.0).max(1.0),
            escape(label),
            escape(&value_label(*value)),
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + step / 2.0,
                height - bottom + 14.0,
                escape(label),
            );
        }
        if *value > 0.0 && every == 1 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + step / 2.0,
                y - 4.0,
                escape(&value_label(*value))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The cumulative-gains chart: the model's curve against random order (the diagonal).
fn gains_chart(points: &[(f64, f64)]) -> String {
    let size = 260.0;
    let pad = 36.0;
    let at = |(x, y): (f64, f64)| (pad + x * size, pad + (1.0 - y) * size);
    let path: Vec<String> = points
        .iter()
        .map(|p| {
            let (x, y) = at(*p);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let top = points
        .iter()
        .find(|(x, _)| *x >= 0.1 - 1e-9)
        .map(|(_, y)| *y)
        .unwrap_or(0.0);
    let title = format!(
        "Cumulative gains on the test fold: the top 10% of customers by prediction held {:.0}% of the revenue",
        top * 100.0
    );
    let (x0, y0) = at((0.0, 0.0));
    let (x1, y1) = at((1.0, 1.0));
    format!(
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {w}\" width=\"{w}\" height=\"{w}\"><title>{t}</title>\
         <rect x=\"{pad}\" y=\"{pad}\" width=\"{size}\" height=\"{size}\" fill=\"none\" stroke=\"#767676\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#767676\" stroke-dasharray=\"4 4\"/>\
         <polyline points=\"{p}\" fill=\"none\" stroke=\"#0d5c2e\" stroke-width=\"2.5\"/>\
         <text x=\"{pad}\" y=\"{b}\">0%</text><text x=\"{r}\" y=\"{b}\" text-anchor=\"end\">100% of customers</text>\
         <text x=\"4\" y=\"{pad}\">100%</text><text x=\"{l}\" y=\"{ty}\">of revenue</text></svg>",
        t = escape(&title),
        w = size + 2.0 * pad,
        p = path.join(" "),
        b = size + pad + 16.0,
        r = size + pad,
        l = pad + 4.0,
        ty = pad + 14.0,
    )
}

fn metric_rows(card: &crate::follow::Card, name: &str) -> String {
    let mut out = String::new();
    let columns = [
        "RMSE £",
        "MAE £",
        "R²",
        "Spearman",
        "norm. Gini",
        "top-decile share",
        "predicted/actual total",
    ];
    let _ = write!(
        out,
        "<table><caption>Test fold (out of time)</caption><thead><tr><th scope=\"col\" class=\"text\">model</th>{}</tr></thead><tbody>",
        columns
            .iter()
            .map(|c| format!("<th scope=\"col\">{c}</th>"))
            .collect::<String>()
    );
    for (label, metrics) in [
        (card.tested.as_deref().unwrap_or(name), &card.test),
        ("BG/NBD + Gamma-Gamma", &card.reference),
    ] {
        if let Some(m) = metrics {
            let _ = write!(
                out,
                "<tr><th scope=\"row\" class=\"text\">{}</th>{}</tr>",
                escape(label),
                m.cells()
                    .iter()
                    .map(|c| format!("<td>{c}</td>"))
                    .collect::<String>()
            );
        }
    }
    out.push_str("</tbody></table>");
    out
}

fn freshness_card(freshness: &Freshness, as_of: NaiveDate) -> String {
    format!(
        "<div class=\"card\"><h2>Freshness</h2><dl>\
         <dt>Features as of</dt><dd>{as_of} (midnight UTC)</dd>\
         <dt>Latest purchase ingested (watermark)</dt><dd>{}</dd>\
         <dt>Scores last refreshed</dt><dd>{}</dd>\
         <dt>Consumer lag</dt><dd>on the operators' dashboard (Grafana), not known to the scorer</dd></dl></div>",
        freshness
            .watermark
            .map(|w| w.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "none yet".into()),
        freshness.refreshed_at.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

/// Which customers a page shows: everyone (`clv serve`), or an instance's own partitions (`clv
/// instance`: the others' customers are theirs to show), with a note that says so.
pub struct Scope<'a> {
    /// Whether a customer is shown.
    pub keep: &'a dyn Fn(u64) -> bool,
    /// Said above the lists (escaped).
    pub note: Option<String>,
}

impl Scope<'_> {
    /// Every customer.
    pub fn all() -> Scope<'static> {
        Scope {
            keep: &|_| true,
            note: None,
        }
    }

    fn note(&self) -> String {
        self.note
            .as_deref()
            .map(|n| format!("<p class=\"note\">{}</p>", escape(n)))
            .unwrap_or_default()
    }
}

/// `/`: the model card, freshness and the population.
pub fn overview(population: &Population, production: &Production) -> String {
    overview_in(population, production, &Scope::all())
}

/// The model's card: its name, version, what it knows and links to its report and the API.
fn model_card(production: &Production) -> String {
    let card = &production.card;
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"card\"><h2>Model</h2><dl>\
         <dt>Champion</dt><dd>{name}</dd><dt>Version</dt><dd>{version}</dd>\
         <dt>Knows the data before</dt><dd>{cutoff}</dd>\
         <dt>Trained on data through</dt><dd>{through}</dd>\
         <dt>Trained</dt><dd>{created}</dd></dl>\
         <p>{report}<a href=\"/docs/\">The API (OpenAPI, Swagger UI)</a></p></div>",
        name = escape(&production.name),
        version = escape(&production.version),
        cutoff = escape(&card.cutoff),
        through = card
            .data_end
            .as_deref()
            .and_then(|d| d.parse::<NaiveDate>().ok())
            .and_then(|d| d.pred_opt())
            .map(|d| d.to_string())
            .unwrap_or_else(|| "not recorded".into()),
        created = escape(card.created.get(..10).unwrap_or(&card.created)),
        report = if card.report.is_some() {
            "<a href=\"/report.html\">Its training report</a> · "
        } else {
            ""
        },
    );
    body
}

/// How many customers each segment holds: value tier × activity band.
fn segment_table(segments: &BTreeMap<(u8, u8), usize>) -> String {
    let mut body = String::new();
    body.push_str(
        "<table><caption>Segments: value tier by predicted CLV × activity by P(alive) and P(no purchase)</caption>\
         <thead><tr><th scope=\"col\" class=\"text\">value \\ activity</th>",
    );
    let activities = [Activity::Active, Activity::Fading, Activity::Lapsed];
    for a in activities {
        let _ = write!(body, "<th scope=\"col\">{}</th>", word(a));
    }
    body.push_str("</tr></thead><tbody>");
    for v in [ValueTier::High, ValueTier::Medium, ValueTier::Low] {
        let _ = write!(
            body,
            "<tr><th scope=\"row\" class=\"text\">{}</th>",
            word(v)
        );
        for a in activities {
            let n = segments.get(&(v as u8, a as u8)).copied().unwrap_or(0);
            let _ = write!(body, "<td>{n}</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    body
}

/// [`overview`] of the customers `scope` keeps.
pub fn overview_in(population: &Population, production: &Production, scope: &Scope<'_>) -> String {
    let card = &production.card;
    let mut body = String::from("<div class=\"cards\">");
    body.push_str(&model_card(production));
    body.push_str(&freshness_card(&population.freshness, population.as_of));
    body.push_str("</div>");
    body.push_str(&metric_rows(card, &production.name));

    // The distribution of predicted CLV.
    const EDGES: [f64; 9] = [
        10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ];
    let mut counts = [0usize; EDGES.len() + 2];
    let mut segments: BTreeMap<(u8, u8), usize> = BTreeMap::new();
    let mut total = 0.0;
    let mut shown = 0usize;
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
    let short = |e: f64| {
        if e >= 1000.0 {
            format!("{}k", e / 1000.0)
        } else {
            format!("{e}")
        }
    };
    let mut labels = vec!["£0".to_string()];
    let mut low = 0.0;
    for e in EDGES {
        labels.push(format!("≤£{}", short(e)));
        low = e;
    }
    labels.push(format!(">£{}", short(low)));
    let bars: Vec<(String, f64)> = labels
        .into_iter()
        .zip(counts)
        .map(|(l, c)| (l, c as f64))
        .collect();
    let _ = write!(
        body,
        "<h2>The customers</h2>{}<p>{} customers with a purchase before {}, predicted to spend {} in the next six months.</p>",
        scope.note(),
        shown,
        population.as_of,
        pounds(total)
    );
    body.push_str(&bar_chart(
        "Customers by predicted six-month CLV",
        &bars,
        &|v| format!("{v:.0}"),
    ));
    if let Some(gains) = &card.gains {
        let top = gains
            .iter()
            .find(|(x, _)| *x >= 0.1 - 1e-9)
            .map(|(_, y)| *y)
            .unwrap_or(0.0);
        let _ = write!(
            body,
            "<h2>How well it ranks</h2><p>On its test fold (customers it had not seen the \
             outcome of), the 10% of customers it ranked highest spent {:.0}% of the revenue of \
             the six months after; the dashed line is a random order.</p>",
            top * 100.0
        );
        body.push_str(&gains_chart(gains));
    }
    if production.tiers.is_some() {
        body.push_str(&segment_table(&segments));
    }
    layout("Customer lifetime value", "/", &body)
}

/// The search form of the ranked list.
fn search_form() -> &'static str {
    "<form method=\"get\" action=\"/customers\" role=\"search\">\
     <label for=\"id\">Find a customer by ID</label> \
     <input id=\"id\" name=\"id\" inputmode=\"numeric\" pattern=\"[0-9]+\" required> \
     <button type=\"submit\">Open</button></form>"
}

/// `/customers?page=N`: the ranked customers, [`PER_PAGE`] at a time.
pub fn customers(population: &Population, production: &Production, page: usize) -> String {
    customers_in(population, production, page, &Scope::all())
}

/// [`customers`] among those `scope` keeps.
pub fn customers_in(
    population: &Population,
    production: &Production,
    page: usize,
    scope: &Scope<'_>,
) -> String {
    let shown = match scope.note {
        None => population.len(),
        Some(_) => population
            .iter()
            .filter(|(id, _)| (scope.keep)(*id))
            .count(),
    };
    let pages = shown.div_ceil(PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let mut body = String::from(search_form());
    body.push_str(&scope.note());
    let _ = write!(
        body,
        "<p>{} customers, highest predicted CLV first, as of {}. \
         <a href=\"/customers/top.csv?k=10000\" download>Download the top 10,000 as CSV</a> \
         (every customer: <code>clv score --out scores.csv</code>).</p>",
        shown, population.as_of
    );
    body.push_str(
        "<table><caption>Customers by predicted CLV</caption><thead><tr>\
         <th scope=\"col\">rank</th><th scope=\"col\" class=\"text\">customer</th>\
         <th scope=\"col\">CLV, next 6 months</th><th scope=\"col\">80% interval</th>\
         <th scope=\"col\">P(alive)</th><th scope=\"col\" class=\"text\">segment</th></tr></thead><tbody>",
    );
    let start = (page - 1) * PER_PAGE;
    for ranked in population
        .top_where(start + PER_PAGE, scope.keep)
        .into_iter()
        .skip(start)
    {
        let Some(scored) = population.get(ranked.customer_id) else {
            continue;
        };
        let p_alive = scored.row.extra.bgnbd_p_alive;
        let interval = production
            .interval
            .as_ref()
            .map(|c| c.interval(scored.clv_6m))
            .map(|(l, h)| format!("{} – {}", pounds(l), pounds(h)))
            .unwrap_or_else(|| "–".into());
        let segment = production
            .tiers
            .map(|t| Segment::of(&t, scored.clv_6m, &scored.row));
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"text\"><a href=\"/customers/{id}\">{id}</a></td><td>{}</td><td>{interval}</td><td>{p_alive:.2}</td><td class=\"text\">{}</td></tr>",
            ranked.rank,
            pounds(scored.clv_6m),
            segment_badge(segment),
            id = ranked.customer_id,
        );
    }
    body.push_str("</tbody></table><nav class=\"pages\" aria-label=\"Pages\">");
    if page > 1 {
        let _ = write!(
            body,
            "<a href=\"/customers?page={}\" rel=\"prev\">← previous</a>",
            page - 1
        );
    }
    let _ = write!(body, "<span>page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(
            body,
            "<a href=\"/customers?page={}\" rel=\"next\">next →</a>",
            page + 1
        );
    }
    body.push_str("</nav>");
    layout("Customers", "/customers", &body)
}

/// `/at-risk`: the at-risk list (README, "At risk").
pub fn at_risk(population: &Population, k: usize) -> String {
    at_risk_rows(&population.at_risk(k), population.as_of, k)
}

/// The at-risk page of `listed` (the group's merged list, for an instance) at `as_of`.
pub fn at_risk_rows(listed: &[crate::population::AtRisk], as_of: NaiveDate, k: usize) -> String {
    let mut body = format!(
        "<p>Valuable customers whose activity is fading: still alive (P(alive) at least 0.3) but more \
         likely than not to buy nothing in the horizon, highest value at risk (revenue to date × \
         P(no purchase)) first; {} listed, as of {}. \
         <a href=\"/customers/at-risk.csv?k={k}\" download>Download as CSV</a>.</p>",
        listed.len(),
        as_of
    );
    if listed.is_empty() {
        body.push_str("<p>Nobody is in the fading band now.</p>");
    } else {
        body.push_str(
            "<table><caption>At risk</caption><thead><tr><th scope=\"col\">rank</th>\
             <th scope=\"col\" class=\"text\">customer</th><th scope=\"col\">value at risk</th>\
             <th scope=\"col\">revenue to date</th><th scope=\"col\">P(alive)</th>\
             <th scope=\"col\">days since last purchase</th><th scope=\"col\">CLV, next 6 months</th></tr></thead><tbody>",
        );
        for r in listed {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"text\"><a href=\"/customers/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                r.rank,
                pounds(r.value_at_risk),
                pounds(r.total_revenue),
                r.p_alive,
                r.recency_days,
                pounds(r.clv_6m),
                id = r.customer_id,
            );
        }
        body.push_str("</tbody></table>");
    }
    layout("At risk", "/at-risk", &body)
}

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

/// `/customers/{id}`: the forecast, the purchases by month, the features.
pub fn customer(
    answer: &ClvResponse,
    state: Option<&CustomerState>,
    freshness: &Freshness,
) -> String {
    let mut body = String::from(search_form());
    let interval = answer
        .clv_6m_low
        .zip(answer.clv_6m_high)
        .map(|(l, h)| format!(" (80% interval {} – {})", pounds(l), pounds(h)))
        .unwrap_or_default();
    let _ = write!(
        body,
        "<div class=\"cards\"><div class=\"card\"><h2>Forecast</h2>\
         <p><strong id=\"clv\">{}</strong> in the six months from {}{interval}</p>\
         <dl><dt>Segment</dt><dd>{}</dd><dt>P(alive)</dt><dd>{:.2}</dd>\
         <dt>Expected purchase days in the six months</dt><dd>{:.1}</dd>\
         <dt>Model</dt><dd>{} {}</dd></dl></div>",
        pounds(answer.clv_6m),
        answer.as_of,
        segment_badge(answer.segment),
        answer.p_alive,
        answer.expected_purchases,
        escape(&answer.model.name),
        escape(&answer.model.version),
    );
    let last_purchase = state.and_then(|s| s.purchases.values().map(|p| p.time_ms).max());
    let _ = write!(
        body,
        "<div class=\"card\"><h2>Freshness</h2><dl><dt>Features as of</dt><dd>{}</dd>\
         <dt>This customer's latest purchase</dt><dd>{}</dd>\
         <dt>Scores last refreshed</dt><dd>{}</dd></dl></div></div>",
        answer.as_of,
        last_purchase
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "–".into()),
        freshness.refreshed_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    if let Some(state) = state {
        let months = monthly_revenue(state, answer.as_of);
        let bars: Vec<(String, f64)> = months
            .iter()
            .map(|(m, v)| (format!("{:02}/{:02}", m.month(), m.year() % 100), *v))
            .collect();
        body.push_str("<h2>Purchases by month</h2>");
        body.push_str(&bar_chart(
            &format!("Revenue by month of customer {}", answer.customer_id),
            &bars,
            &|v| if v > 0.0 { pounds(v) } else { String::new() },
        ));
    }
    body.push_str(
        "<table><caption>Features</caption><thead><tr><th scope=\"col\" class=\"text\">feature</th>\
         <th scope=\"col\">value</th><th scope=\"col\" class=\"text\">meaning</th></tr></thead><tbody>",
    );
    for feature in Feature::ALL {
        let value = answer
            .features
            .get(*feature)
            .map(|v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                }
            })
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            body,
            "<tr><th scope=\"row\" class=\"text\"><code>{}</code></th><td>{value}</td><td class=\"text\">{}</td></tr>",
            feature.name(),
            escape(feature.doc().lines().next().unwrap_or_default())
        );
    }
    body.push_str("</tbody></table>");
    layout(&format!("Customer {}", answer.customer_id), "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_pounds_are_grouped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(pounds(1234567.891), "£1,234,568");
        assert_eq!(pounds(12.5), "£12.50");
        assert_eq!(pounds(-250.0), "−£250");
        assert_eq!(pounds(f64::NAN), "–");
    }

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
}
