//! The page's charts, as inline SVG.

use maud::{Markup, html};

/// One decimal, as coordinates are written.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

/// A bar chart: one bar per `(label, value)`.
pub(super) fn bar_chart(
    title: &str,
    bars: &[(String, f64)],
    value_label: &dyn Fn(f64) -> String,
) -> Markup {
    let (width, height, left, bottom) = (640.0, 220.0, 50.0, 40.0);
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1e-9);
    let step = (width - left) / bars.len().max(1) as f64;
    // At most about twelve labels under the bars, and values over them only when they fit.
    let every = bars.len().div_ceil(12).max(1);
    html! {
        svg role="img" aria-label=(title) viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) {
            title { (title) }
            @for (i, (label, value)) in bars.iter().enumerate() {
                @let h = (height - bottom - 20.0) * value / max;
                @let x = left + i as f64 * step;
                @let y = height - bottom - h;
                rect x=(at(x + 2.0)) y=(at(y)) width=(at((step - 4.0).max(1.0))) height=(at(h)) fill="#12355b" {
                    title { (label) ": " (value_label(*value)) }
                }
                @if i % every == 0 {
                    text x=(at(x + step / 2.0)) y=(at(height - bottom + 14.0)) text-anchor="middle" { (label) }
                }
                @if *value > 0.0 && every == 1 {
                    text x=(at(x + step / 2.0)) y=(at(y - 4.0)) text-anchor="middle" { (value_label(*value)) }
                }
            }
        }
    }
}

/// The cumulative-gains chart: the model's curve against random order (the diagonal).
pub(super) fn gains_chart(points: &[(f64, f64)]) -> Markup {
    let size = 260.0;
    let pad = 36.0;
    let place = |(x, y): (f64, f64)| (pad + x * size, pad + (1.0 - y) * size);
    let path: Vec<String> = points
        .iter()
        .map(|p| {
            let (x, y) = place(*p);
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
    let (x0, y0) = place((0.0, 0.0));
    let (x1, y1) = place((1.0, 1.0));
    let w = size + 2.0 * pad;
    html! {
        svg role="img" aria-label=(title) viewBox={ "0 0 " (w) " " (w) } width=(w) height=(w) {
            title { (title) }
            rect x=(pad) y=(pad) width=(size) height=(size) fill="none" stroke="#767676" {}
            line x1=(x0) y1=(y0) x2=(x1) y2=(y1) stroke="#767676" stroke-dasharray="4 4" {}
            polyline points=(path.join(" ")) fill="none" stroke="#0d5c2e" stroke-width="2.5" {}
            text x=(pad) y=(size + pad + 16.0) { "0%" }
            text x=(size + pad) y=(size + pad + 16.0) text-anchor="end" { "100% of customers" }
            text x="4" y=(pad) { "100%" }
            text x=(pad + 4.0) y=(pad + 14.0) { "of revenue" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_has_a_bar_per_value_and_escapes_its_labels() {
        let bars = vec![("<a>".to_string(), 2.0), ("b".to_string(), 0.0)];
        let svg = bar_chart("t & u", &bars, &|v| format!("{v:.0}")).into_string();
        assert_eq!(svg.matches("<rect ").count(), 2);
        assert!(svg.contains("aria-label=\"t &amp; u\""), "{svg}");
        assert!(svg.contains("&lt;a&gt;: 2"), "{svg}");
        assert!(!svg.contains("<a>"), "{svg}");
        assert!(svg.contains("</rect>"), "SVG elements are closed: {svg}");
    }

    #[test]
    fn the_gains_chart_says_the_top_decile_share() {
        let svg = gains_chart(&[(0.0, 0.0), (0.1, 0.42), (1.0, 1.0)]).into_string();
        assert!(svg.contains("held 42% of the revenue"), "{svg}");
        assert!(
            svg.contains("points=\"36.0,296.0 62.0,186.8 296.0,36.0\""),
            "{svg}"
        );
    }
}
