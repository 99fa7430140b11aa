//! A CSV export read straight into the normalised frame by polars' own multi-threaded reader: the
//! header's spellings mapped by position, the fields typed by polars, the invoice dates parsed in
//! the layout the row reader would use, and the sheet-overlap rule over the date column.
//!
//! It gives exactly the frame that [`crate::read::read_csv`] and [`crate::normalised::to_frame`]
//! give, or `None` when the file holds anything it would not read the same way (a number in
//! another spelling, mixed date layouts, an empty required field, a short row, invalid UTF-8, an
//! ID beyond 2^53...): the caller then reads it row by row, which reads what it can and names the
//! first row it cannot. A well-formed export, UCI's or a tool's, never needs the row reader.

use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::line::{Column, HeaderMap, ISO_LAYOUT, invoice_date_layout, iso_date_time};
use crate::normalised::columns;

/// 2^53: the integers below it are exact as 64-bit floats (polars reads the IDs as floats, since
/// exports write them as `17850` or `17850.0`).
const EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A CSV export as the normalised frame, with the count of data lines before the overlap rule.
#[derive(Debug)]
pub(crate) struct CsvFrame {
    /// One row per kept line, normalised layout, canonical line numbers.
    pub frame: DataFrame,
    /// Data lines in the file.
    pub lines_read: u64,
}

/// Reads the CSV export at `path`, or `None` if it must be read row by row (see the module).
pub(crate) fn read(path: &Path) -> Option<CsvFrame> {
    let header = header(path)?;
    let map = HeaderMap::find(&header).ok()?;
    let mut dtypes = vec![DataType::String; header.len()];
    dtypes[map.index(Column::Quantity)] = DataType::Int64;
    dtypes[map.index(Column::Price)] = DataType::Float64;
    dtypes[map.index(Column::CustomerId)] = DataType::Float64;
    let raw = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_dtype_overwrite(Some(Arc::new(dtypes)))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .ok()?
        .finish()
        .ok()?;
    if raw.width() != header.len() {
        return None;
    }
    let at = |column: Column| raw.select_at_idx(map.index(column)).cloned();
    let required = |column: Column| at(column).filter(|c| c.null_count() == 0);
    // A short row leaves its last fields null: the last column must be one that cannot be empty.
    let last = *Column::ALL.iter().max_by_key(|c| map.index(**c))?;
    if matches!(last, Column::Description | Column::CustomerId) && at(last)?.null_count() > 0 {
        return None;
    }
    // The row reader has no description where the field is empty, quoted or not.
    let descriptions = at(Column::Description)?;
    if descriptions.str().ok()?.iter().any(|d| d == Some("")) {
        return None;
    }
    let prices = required(Column::Price)?;
    if !prices.f64().ok()?.into_no_null_iter().all(f64::is_finite) {
        return None;
    }
    let dates = invoice_dates(&required(Column::InvoiceDate)?)?;
    let lines_read = dates.len() as u64;
    let dropped = overlap_cut(dates.rechunk().cont_slice().ok()?);
    let customers = customer_ids(&at(Column::CustomerId)?)?;
    let named = |column: Option<polars::prelude::Column>, name: &str| {
        column.map(|c| c.with_name(name.into()))
    };
    let mut frame = DataFrame::new_infer_height(vec![
        named(required(Column::Invoice), columns::INVOICE)?,
        named(required(Column::StockCode), columns::STOCK_CODE)?,
        named(Some(descriptions), columns::DESCRIPTION)?,
        named(required(Column::Quantity), columns::QUANTITY)?,
        dates
            .into_series()
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .ok()?
            .with_name(columns::INVOICE_DATE.into())
            .into(),
        named(Some(prices), columns::PRICE)?,
        customers.with_name(columns::CUSTOMER_ID.into()).into(),
        named(required(Column::Country), columns::COUNTRY)?,
    ])
    .ok()?;
    // Two slices of the frame, not a filtered copy of every column.
    if let Some(dropped) = dropped {
        let mut kept = frame.slice(0, dropped.start);
        kept.vstack_mut(&frame.slice(dropped.end as i64, frame.height() - dropped.end))
            .ok()?;
        frame = kept;
    }
    let numbers = polars::prelude::Column::new(
        columns::LINE_NUMBER.into(),
        (1..=frame.height() as u64).collect::<Vec<u64>>(),
    );
    frame.insert_column(0, numbers).ok()?;
    Some(CsvFrame { frame, lines_read })
}

/// The header row, as the row reader sees it.
fn header(path: &Path) -> Option<Vec<String>> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .ok()?;
    let header = csv.byte_headers().ok()?;
    Some(
        header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect(),
    )
}

/// The invoice dates in epoch milliseconds, all in the layout the row reader gives the first one.
fn invoice_dates(text: &polars::prelude::Column) -> Option<Int64Chunked> {
    let strings = text.str().ok()?;
    let (layout, _) = invoice_date_layout(strings.get(0)?)?;
    if layout == ISO_LAYOUT {
        return iso_invoice_dates(strings);
    }
    let options = StrptimeOptions {
        format: Some(layout.into()),
        strict: false,
        exact: true,
        cache: true,
    };
    let parsed = DataFrame::new_infer_height(vec![text.clone()])
        .ok()?
        .lazy()
        .select([col(text.name().clone())
            .str()
            .to_datetime(Some(TimeUnit::Milliseconds), None, options, lit("raise"))
            .cast(DataType::Int64)])
        .collect()
        .ok()?;
    let millis = parsed.select_at_idx(0)?.i64().ok()?.clone();
    (millis.null_count() == 0).then_some(millis)
}

/// [`invoice_dates`] in the ISO layout, each read by the row reader's own parser (a line dated as
/// the one before it, as most are, reuses its time), chunk by chunk as polars read them: every
/// column of the frame then has the same chunks, and no operation between two of them gathers one.
fn iso_invoice_dates(strings: &StringChunked) -> Option<Int64Chunked> {
    let mut millis = Int64Chunked::from_vec(strings.name().clone(), Vec::new());
    for texts in strings.downcast_iter() {
        let mut previous: Option<(&str, i64)> = None;
        let chunk = texts
            .values_iter()
            .map(|text| match previous {
                Some((before, ms)) if before == text => Some(ms),
                _ => {
                    let ms = iso_date_time(text)?.and_utc().timestamp_millis();
                    previous = Some((text, ms));
                    Some(ms)
                }
            })
            .collect::<Option<Vec<i64>>>()?;
        millis
            .append_owned(Int64Chunked::from_vec(strings.name().clone(), chunk))
            .ok()?;
    }
    Some(millis)
}

/// The customer IDs as integers: every float a whole number from 1 to 2^53 (else `None`).
fn customer_ids(floats: &polars::prelude::Column) -> Option<Series> {
    let values = floats.f64().ok()?;
    let whole = values
        .iter()
        .flatten()
        .all(|x| x.fract() == 0.0 && (1.0..EXACT_FLOAT_INTEGER).contains(&x));
    if !whole {
        return None;
    }
    floats.as_materialized_series().cast(&DataType::Int64).ok()
}

/// The sheet-overlap rule ([`crate::overlap`]) over the dates: `None` when every line is kept (the
/// dates never decrease, or decrease more than once); otherwise, when they decrease at exactly one
/// row (the second sheet's first), the rows to drop: the first sheet's dated on or after the second
/// sheet's first date. The first sheet's dates never decrease, so those are the rows from the first
/// such one to the second sheet's start; the whole second sheet is kept.
fn overlap_cut(dates: &[i64]) -> Option<std::ops::Range<usize>> {
    let mut decreases = dates
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[1] < pair[0])
        .map(|(i, _)| i + 1);
    let (Some(start), None) = (decreases.next(), decreases.next()) else {
        return None;
    };
    let first = dates[start];
    let from = dates[..start].partition_point(|d| *d < first);
    Some(from..start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_cut_keeps_each_line_once() {
        assert!(overlap_cut(&[1, 2, 2, 3]).is_none());
        assert!(overlap_cut(&[3, 2, 3, 1]).is_none());
        // The rule itself: a line is kept when it is in the second sheet or dated before its start.
        let kept_by_rule = |dates: &[i64], start: usize| -> Vec<bool> {
            let first = dates[start];
            let keep = |(i, d): (usize, &i64)| i >= start || *d < first;
            dates.iter().enumerate().map(keep).collect()
        };
        for (dates, start, cut) in [
            (&[1, 2, 5, 9, 2, 5, 9, 10][..], 4, 1..4),
            (&[1, 2, 2, 9, 2, 5, 9, 10][..], 4, 1..4),
            (&[1, 1, 5, 9, 2, 5][..], 4, 2..4),
            // The second sheet starts before the first sheet's first date: all of it goes.
            (&[5, 9, 1, 2][..], 2, 0..2),
            // ... or within it: its lines from that date on go.
            (&[1, 5, 9, 4, 10][..], 3, 1..3),
        ] {
            assert_eq!(overlap_cut(dates), Some(cut.clone()), "{dates:?}");
            let kept: Vec<bool> = (0..dates.len()).map(|i| !cut.contains(&i)).collect();
            assert_eq!(kept, kept_by_rule(dates, start), "{dates:?}");
        }
    }
}
