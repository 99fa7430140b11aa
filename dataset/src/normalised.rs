//! The normalised Parquet layout: one row per kept line, in canonical order, typed.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `line_number` | u64 | canonical line number, 1-based (FEATURES.md) |
//! | `invoice` | str | invoice number (`C…` cancellation) |
//! | `stock_code` | str | product code |
//! | `description` | str, null | product description |
//! | `quantity` | i64 | units |
//! | `invoice_date` | datetime\[ms\] | invoice time, UTC |
//! | `price` | f64 | unit price, pounds |
//! | `customer_id` | i64, null | customer ID |
//! | `country` | str | country |

use std::fs::File;
use std::path::Path;

use indicatif::ProgressBar;
use polars::prelude::*;

use crate::read::{InputFormat, RawData, read_raw};
use crate::{DatasetError, Line, Result, create_file};

/// Column names of the normalised layout.
pub mod columns {
    /// Canonical 1-based line number.
    pub const LINE_NUMBER: &str = "line_number";
    /// Invoice number.
    pub const INVOICE: &str = "invoice";
    /// Product code.
    pub const STOCK_CODE: &str = "stock_code";
    /// Product description.
    pub const DESCRIPTION: &str = "description";
    /// Units.
    pub const QUANTITY: &str = "quantity";
    /// Invoice time (UTC, milliseconds).
    pub const INVOICE_DATE: &str = "invoice_date";
    /// Unit price in pounds.
    pub const PRICE: &str = "price";
    /// Customer ID.
    pub const CUSTOMER_ID: &str = "customer_id";
    /// Country.
    pub const COUNTRY: &str = "country";
}

/// The lines as a normalised frame, numbered from 1 in the order given (which must be canonical).
pub fn to_frame(lines: &[Line]) -> Result<DataFrame> {
    to_frame_from(lines, 1)
}

/// The lines as a normalised frame, numbered from `first` in the order given: a part of a file
/// written a row group at a time.
pub fn to_frame_from(lines: &[Line], first: u64) -> Result<DataFrame> {
    use columns::*;
    let col = |name: &str, values: Vec<_>| Column::new(name.into(), values);
    let strings = |f: fn(&Line) -> &str| lines.iter().map(f).collect::<Vec<&str>>();
    let frame = DataFrame::new_infer_height(vec![
        Column::new(
            LINE_NUMBER.into(),
            (first..first + lines.len() as u64).collect::<Vec<u64>>(),
        ),
        Column::new(INVOICE.into(), strings(|l| &l.invoice)),
        Column::new(STOCK_CODE.into(), strings(|l| &l.stock_code)),
        Column::new(
            DESCRIPTION.into(),
            lines
                .iter()
                .map(|l| l.description.as_deref())
                .collect::<Vec<_>>(),
        ),
        col(QUANTITY, lines.iter().map(|l| l.quantity).collect()),
        Column::new(
            INVOICE_DATE.into(),
            lines
                .iter()
                .map(|l| l.invoice_date.and_utc().timestamp_millis())
                .collect::<Vec<i64>>(),
        )
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .map_err(DatasetError::polars("invoice dates"))?,
        Column::new(
            PRICE.into(),
            lines.iter().map(|l| l.price).collect::<Vec<f64>>(),
        ),
        Column::new(
            CUSTOMER_ID.into(),
            lines
                .iter()
                .map(|l| l.customer_id.map(|c| c as i64))
                .collect::<Vec<Option<i64>>>(),
        ),
        Column::new(COUNTRY.into(), strings(|l| &l.country)),
    ])
    .map_err(DatasetError::polars("building the normalised frame"))?;
    Ok(frame)
}

/// Writes a frame to a Parquet file (zstd).
pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let file = create_file(path)?;
    ParquetWriter::new(file)
        .finish(frame)
        .map_err(DatasetError::polars(format!("writing {}", path.display())))?;
    Ok(())
}

/// Writes a frame to a CSV file with a header.
pub fn write_csv(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let file = create_file(path)?;
    CsvWriter::new(file)
        .include_header(true)
        .finish(frame)
        .map_err(DatasetError::polars(format!("writing {}", path.display())))?;
    Ok(())
}

/// Reads any table written by [`write_parquet`] or [`write_csv`] (or another tool): `.parquet` or
/// `.csv` with a header, types inferred for CSV.
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let context = || format!("reading {}", path.display());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("parquet") => {
            let file = File::open(path).map_err(DatasetError::io(path))?;
            ParquetReader::new(file)
                .finish()
                .map_err(DatasetError::polars(context()))
        }
        Some("csv") => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .map_err(DatasetError::polars(context())),
        _ => Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: "a table must be a .parquet or .csv file".into(),
        }),
    }
}

/// A loaded input: the normalised frame and, for raw files, what the reader saw.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// One row per kept line, normalised layout.
    pub frame: DataFrame,
    /// Data lines in the file before the overlap rule (`None` for an already normalised Parquet file).
    pub lines_read: Option<u64>,
    /// Which reader read it.
    pub reader: Reader,
}

/// The reader that [`load`] used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A normalised Parquet file, read as it is.
    Parquet,
    /// A well-formed CSV export, read by polars' multi-threaded CSV reader.
    Columnar,
    /// A raw file read row by row (xlsx, zip, or a CSV the columnar reader does not take).
    Rows,
}

/// Loads any supported input (`.xlsx`, `.csv`, `.zip`, or a normalised `.parquet`) as a normalised frame.
///
/// A CSV export is read by polars' multi-threaded reader when it is well formed, and row by row
/// otherwise (the same frame either way; the row reader names the first row it cannot read).
pub fn load(path: &Path, progress: &ProgressBar) -> Result<Loaded> {
    match InputFormat::of(path)? {
        InputFormat::Parquet => Ok(Loaded {
            frame: read_parquet(path)?,
            lines_read: None,
            reader: Reader::Parquet,
        }),
        InputFormat::Csv => match crate::csv_frame::read(path) {
            Some(read) => Ok(Loaded {
                frame: read.frame,
                lines_read: Some(read.lines_read),
                reader: Reader::Columnar,
            }),
            None => load_rows(path, progress),
        },
        _ => load_rows(path, progress),
    }
}

/// [`load`] of a raw file (`.xlsx`, `.csv`, `.zip`) row by row.
pub fn load_rows(path: &Path, progress: &ProgressBar) -> Result<Loaded> {
    let RawData {
        lines, lines_read, ..
    } = read_raw(path, progress)?;
    Ok(Loaded {
        frame: to_frame(&lines)?,
        lines_read: Some(lines_read),
        reader: Reader::Rows,
    })
}

/// Reads a normalised Parquet file and checks that it has the normalised columns.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let context = || format!("reading {}", path.display());
    let file = File::open(path).map_err(DatasetError::io(path))?;
    let frame = ParquetReader::new(file)
        .finish()
        .map_err(DatasetError::polars(context()))?;
    check_columns(&frame, path)?;
    whole_customer_ids(frame, path)
}

/// The largest integer a 64-bit float holds exactly.
const EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// `frame` with a floating-point `customer_id` (pandas writes a nullable integer column so) as
/// integers, when every value is a whole number in range; an error naming the first one otherwise.
fn whole_customer_ids(mut frame: DataFrame, path: &Path) -> Result<DataFrame> {
    use columns::CUSTOMER_ID;
    let fail = || DatasetError::polars(format!("reading {}", path.display()));
    let column = frame.column(CUSTOMER_ID).map_err(fail())?;
    if !matches!(column.dtype(), DataType::Float32 | DataType::Float64) {
        return Ok(frame);
    }
    let floats = column.cast(&DataType::Float64).map_err(fail())?;
    let values = floats.f64().map_err(fail())?;
    let not_whole = (0..values.len()).find_map(|i| {
        values
            .get(i)
            .filter(|v| !(v.fract() == 0.0 && *v >= 0.0 && *v <= EXACT_FLOAT_INTEGER))
            .map(|v| (i, v))
    });
    if let Some((row, value)) = not_whole {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: format!(
                "customer_id {value} (row {row}) is not a whole number from 0 to 2^53: IDs must be integers"
            ),
        });
    }
    let ids = floats.cast(&DataType::Int64).map_err(fail())?;
    frame.with_column(ids).map_err(fail())?;
    Ok(frame)
}

/// Fails unless `frame` has the normalised columns.
pub(crate) fn check_columns(frame: &DataFrame, path: &Path) -> Result<()> {
    use columns::*;
    for name in [
        LINE_NUMBER,
        INVOICE,
        QUANTITY,
        INVOICE_DATE,
        PRICE,
        CUSTOMER_ID,
    ] {
        if frame.column(name).is_err() {
            return Err(DatasetError::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "not a normalised file (no column {name:?}); write one with `clv data import`"
                ),
            });
        }
    }
    Ok(())
}

/// Lines of any supported input with their canonical line numbers: numbered in order for a raw file,
/// as stored for a normalised Parquet file.
pub fn numbered_lines(path: &Path, progress: &ProgressBar) -> Result<Vec<(u64, Line)>> {
    match InputFormat::of(path)? {
        InputFormat::Parquet => lines_from_frame(&read_parquet(path)?),
        _ => Ok((1..)
            .zip(read_raw(path, progress)?.lines)
            .collect::<Vec<(u64, Line)>>()),
    }
}

/// The lines of a normalised frame, with their line numbers.
pub fn lines_from_frame(frame: &DataFrame) -> Result<Vec<(u64, Line)>> {
    let mut rows = FrameLines::new(frame)?;
    let mut out = Vec::with_capacity(frame.height());
    let mut line = Line::default();
    while let Some(number) = rows.next_into(&mut line) {
        // Each kept line owns its strings: taken whole, the next one is written into fresh room.
        out.push((number?, std::mem::take(&mut line)));
    }
    Ok(out)
}

/// The rows of a normalised frame, one at a time, each written into a [`Line`] the caller reuses
/// (no allocation once its strings have the room): what streaming a Parquet file reads.
pub struct FrameLines {
    numbers: UInt64Chunked,
    invoices: StringChunked,
    codes: StringChunked,
    descriptions: StringChunked,
    quantities: Int64Chunked,
    dates: Int64Chunked,
    prices: Float64Chunked,
    customers: Int64Chunked,
    countries: StringChunked,
    height: usize,
    next: usize,
}

impl FrameLines {
    /// The frame's columns, cast to their types once.
    pub fn new(frame: &DataFrame) -> Result<Self> {
        use columns::*;
        let get = |name: &str, dtype: DataType| -> PolarsResult<Column> {
            Ok(frame.column(name)?.cast(&dtype)?.rechunk())
        };
        let read = || -> PolarsResult<FrameLines> {
            let dates = get(
                INVOICE_DATE,
                DataType::Datetime(TimeUnit::Milliseconds, None),
            )?
            .cast(&DataType::Int64)?;
            Ok(FrameLines {
                numbers: get(LINE_NUMBER, DataType::UInt64)?.u64()?.clone(),
                invoices: get(INVOICE, DataType::String)?.str()?.clone(),
                codes: get(STOCK_CODE, DataType::String)?.str()?.clone(),
                descriptions: get(DESCRIPTION, DataType::String)?.str()?.clone(),
                quantities: get(QUANTITY, DataType::Int64)?.i64()?.clone(),
                dates: dates.i64()?.clone(),
                prices: get(PRICE, DataType::Float64)?.f64()?.clone(),
                customers: get(CUSTOMER_ID, DataType::Int64)?.i64()?.clone(),
                countries: get(COUNTRY, DataType::String)?.str()?.clone(),
                height: frame.height(),
                next: 0,
            })
        };
        read().map_err(DatasetError::polars("reading the normalised frame"))
    }

    /// The next row into `line`, and its line number; `None` after the last row.
    pub fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>> {
        use columns::*;
        let i = self.next;
        if i >= self.height {
            return None;
        }
        self.next += 1;
        let missing = |what: &str| {
            DatasetError::polars("reading the normalised frame")(
                polars_err!(ComputeError: "row {i}: no {what}"),
            )
        };
        let mut row = || -> Result<u64> {
            let date = self.dates.get(i).ok_or_else(|| missing(INVOICE_DATE))?;
            line.set_invoice(self.invoices.get(i).unwrap_or_default());
            line.set_stock_code(self.codes.get(i).unwrap_or_default());
            line.set_description(self.descriptions.get(i));
            line.quantity = self.quantities.get(i).ok_or_else(|| missing(QUANTITY))?;
            line.invoice_date = chrono::DateTime::from_timestamp_millis(date)
                .ok_or_else(|| missing(INVOICE_DATE))?
                .naive_utc();
            line.price = self.prices.get(i).ok_or_else(|| missing(PRICE))?;
            line.customer_id = self.customers.get(i).and_then(|c| u64::try_from(c).ok());
            line.set_country(self.countries.get(i).unwrap_or_default());
            self.numbers.get(i).ok_or_else(|| missing(LINE_NUMBER))
        };
        Some(row())
    }
}
