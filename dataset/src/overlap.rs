//! The sheet-overlap rule: UCI's two sheets share the lines of 2010-12-01..2010-12-09; take them once.
//!
//! From each sheet keep only the lines dated before the next sheet's first line, then append the next
//! sheet. A CSV that concatenates both sheets is recognised by its dates: they never decrease except at
//! exactly one row, the second sheet's first. Any other file is taken as it is.

use crate::Line;

/// Splits lines read from one flat file into the sheets they came from: two when the dates decrease at
/// exactly one row (a concatenation of UCI's two sheets), otherwise one.
pub fn split_concatenated_sheets(mut lines: Vec<Line>) -> Vec<Vec<Line>> {
    let mut decreases = lines
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[1].invoice_date < pair[0].invoice_date)
        .map(|(i, _)| i + 1);
    match (decreases.next(), decreases.next()) {
        (Some(second_sheet_start), None) => {
            let second = lines.split_off(second_sheet_start);
            vec![lines, second]
        }
        _ => vec![lines],
    }
}

/// Joins sheets in order, taking each overlapping line once: from every sheet, only the lines dated
/// before the first line of the next non-empty sheet are kept. The result is the canonical order.
pub fn take_once(sheets: Vec<Vec<Line>>) -> Vec<Line> {
    let mut kept: Vec<Line> = Vec::with_capacity(sheets.iter().map(Vec::len).sum());
    let mut sheets = sheets.into_iter().filter(|s| !s.is_empty()).peekable();
    while let Some(sheet) = sheets.next() {
        match sheets.peek().map(|next| next[0].invoice_date) {
            Some(next_start) => {
                kept.extend(sheet.into_iter().filter(|l| l.invoice_date < next_start))
            }
            None => kept.extend(sheet),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn line(invoice: &str, day: u32, hour: u32) -> Line {
        Line {
            invoice: invoice.into(),
            stock_code: "X".into(),
            description: None,
            quantity: 1,
            invoice_date: NaiveDate::from_ymd_opt(2010, 12, day)
                .unwrap()
                .and_hms_opt(hour, 0, 0)
                .unwrap(),
            price: 1.0,
            customer_id: Some(1),
            country: "UK".into(),
        }
    }

    fn invoices(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.invoice.as_str()).collect()
    }

    #[test]
    fn concatenated_sheets_are_taken_once() {
        // Sheet 1 runs to the 9th; sheet 2 starts on the 1st at 8:00 and repeats the overlap.
        let file = vec![
            line("a", 1, 7),
            line("b", 1, 8),
            line("c", 5, 9),
            line("d", 9, 20),
            line("b", 1, 8),
            line("c", 5, 9),
            line("d", 9, 20),
            line("e", 10, 9),
        ];
        let sheets = split_concatenated_sheets(file);
        assert_eq!(sheets.len(), 2);
        assert_eq!(invoices(&take_once(sheets)), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn sorted_file_is_taken_as_is() {
        let file = vec![line("a", 1, 7), line("b", 1, 7), line("c", 2, 7)];
        let sheets = split_concatenated_sheets(file.clone());
        assert_eq!(sheets.len(), 1);
        assert_eq!(take_once(sheets), file);
    }

    #[test]
    fn two_decreases_mean_any_other_file() {
        let file = vec![
            line("a", 3, 7),
            line("b", 2, 7),
            line("c", 3, 7),
            line("d", 1, 7),
        ];
        let sheets = split_concatenated_sheets(file.clone());
        assert_eq!(sheets.len(), 1);
        assert_eq!(take_once(sheets), file);
    }

    #[test]
    fn empty_sheets_are_skipped() {
        let kept = take_once(vec![
            vec![line("a", 1, 7), line("b", 2, 7)],
            vec![],
            vec![line("b", 2, 7)],
        ]);
        assert_eq!(invoices(&kept), ["a", "b"]);
    }
}
