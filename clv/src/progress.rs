//! Progress bars on stderr (drawn only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting items (lines, customers, ...) with a rate.
pub fn items(what: &str) -> ProgressBar {
    styled(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{human_pos}}/{{human_len}} {{per_sec}} {{msg}} ({{eta}})"
    ))
}

/// A bar counting bytes.
pub fn bytes(what: &str) -> ProgressBar {
    styled(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{msg}} ({{eta}})"
    ))
}

fn styled(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The bar for reading `path`: bytes for a CSV (read as a stream), rows for a workbook.
pub fn reading(path: &std::path::Path) -> ProgressBar {
    match dataset::read::InputFormat::of(path) {
        Ok(dataset::read::InputFormat::Csv) => bytes("reading"),
        _ => items("reading rows"),
    }
}
