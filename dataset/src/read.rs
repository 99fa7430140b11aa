//! Readers for the files Online Retail II comes in: UCI's `.xlsx` (both sheets), CSV exports (both header
//! spellings, ISO or US dates) and UCI's `.zip` holding either. Each returns the lines in canonical order,
//! with the sheet overlap taken once (see [`crate::overlap`]).

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use calamine::{Data, Reader, Xlsx};
use indicatif::ProgressBar;

use crate::line::{
    Column, HeaderMap, customer_id_from_f64, number_text, parse_customer_id, parse_invoice_date,
    parse_price, parse_quantity, quantity_from_f64,
};
use crate::{DatasetError, Line, Result, overlap};

/// The input formats, told apart by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// An Excel workbook, one sheet or more (UCI's `online_retail_II.xlsx`).
    Xlsx,
    /// A CSV export with a header row.
    Csv,
    /// A zip archive holding one `.xlsx` or `.csv` (UCI's download).
    Zip,
    /// A normalised Parquet file written by [`crate::normalised`].
    Parquet,
}

impl InputFormat {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("xlsx") => Ok(InputFormat::Xlsx),
            Some("csv") => Ok(InputFormat::Csv),
            Some("zip") => Ok(InputFormat::Zip),
            Some("parquet") => Ok(InputFormat::Parquet),
            _ => Err(DatasetError::Format {
                path: path.to_path_buf(),
                reason: "unsupported input: expected a .xlsx, .csv, .zip or .parquet file".into(),
            }),
        }
    }
}

/// Lines read from a source file, overlap taken once, in canonical order.
#[derive(Debug, Clone)]
pub struct RawData {
    /// The kept lines; a line's canonical line number is its index + 1.
    pub lines: Vec<Line>,
    /// How many data lines the file holds (before the overlap rule).
    pub lines_read: u64,
    /// How many sheets the lines came from (2 for UCI's workbook or a CSV of both sheets).
    pub sheets: usize,
}

/// Reads a `.xlsx`, `.csv` or `.zip` file. Parquet input is normalised already: see
/// [`crate::normalised::load`].
pub fn read_raw(path: &Path, progress: &ProgressBar) -> Result<RawData> {
    let name = path.display().to_string();
    match InputFormat::of(path)? {
        InputFormat::Csv => {
            let file = File::open(path).map_err(DatasetError::io(path))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            progress.set_length(len);
            read_csv(progress.wrap_read(BufReader::new(file)), &name)
        }
        InputFormat::Xlsx => {
            let file = File::open(path).map_err(DatasetError::io(path))?;
            read_xlsx(BufReader::new(file), &name, progress)
        }
        InputFormat::Zip => read_zip(path, progress),
        InputFormat::Parquet => Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: "a Parquet file is read with dataset::normalised::load, not as a raw source"
                .into(),
        }),
    }
}

/// Reads a CSV export (header row, either spelling). A file that concatenates both sheets is recognised
/// and its overlap taken once.
pub fn read_csv<R: Read>(reader: R, source_name: &str) -> Result<RawData> {
    let lines = CsvLines::new(reader, source_name)?.collect::<Result<Vec<Line>>>()?;
    let lines_read = lines.len() as u64;
    let sheets = overlap::split_concatenated_sheets(lines);
    Ok(RawData {
        sheets: sheets.len(),
        lines: overlap::take_once(sheets),
        lines_read,
    })
}

/// The rows of a CSV export (header row, either spelling) as lines, in file order, one at a time
/// (the overlap rule is the caller's: [`read_csv`], or `crate::stream`).
pub struct CsvLines<R: Read> {
    csv: csv::Reader<R>,
    map: HeaderMap,
    record: csv::ByteRecord,
    source_name: String,
}

impl<R: Read> CsvLines<R> {
    /// Reads the header row of `reader`.
    pub fn new(reader: R, source_name: &str) -> Result<Self> {
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let header: Vec<String> = csv
            .byte_headers()
            .map_err(|source| DatasetError::Csv {
                source_name: source_name.to_string(),
                source,
            })?
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        let map = HeaderMap::find(&header).map_err(|column| DatasetError::MissingColumn {
            source_name: source_name.to_string(),
            column: column.name(),
            found: header.join(","),
        })?;
        Ok(CsvLines {
            csv,
            map,
            record: csv::ByteRecord::new(),
            source_name: source_name.to_string(),
        })
    }

    /// The next row's invoice date alone (cheaper than the whole line: what the overlap rule needs).
    pub fn next_date(&mut self) -> Option<Result<chrono::NaiveDateTime>> {
        match self.read_record() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some(self.cell(Column::InvoiceDate).and_then(|date| {
            parse_invoice_date(&date)
                .map_err(|r| row_error(self.location(), Column::InvoiceDate, &date, r))
        }))
    }

    fn read_record(&mut self) -> Result<bool> {
        self.csv
            .read_byte_record(&mut self.record)
            .map_err(|source| DatasetError::Csv {
                source_name: self.source_name.clone(),
                source,
            })
    }

    fn location(&self) -> String {
        let line_no = self.record.position().map(|p| p.line()).unwrap_or(0);
        format!("{}, line {line_no}", self.source_name)
    }

    /// A field of the current row, borrowed unless it is not UTF-8 (then repaired).
    fn cell(&self, column: Column) -> Result<std::borrow::Cow<'_, str>> {
        match self.record.get(self.map.index(column)) {
            // Validating is much faster than `from_utf8_lossy`'s chunking, and almost every field is valid.
            Some(bytes) => Ok(std::str::from_utf8(bytes).map_or_else(
                |_| String::from_utf8_lossy(bytes),
                std::borrow::Cow::Borrowed,
            )),
            None => Err(row_error(
                self.location(),
                column,
                "",
                "the row has too few fields",
            )),
        }
    }

    fn line(&self) -> Result<Line> {
        let mut line = Line::default();
        self.line_into(&mut line)?;
        Ok(line)
    }

    /// The current row into `line`, its text written over `line`'s (no allocation once `line`'s
    /// strings have the room). On an error `line` is left partly written.
    fn line_into(&self, line: &mut Line) -> Result<()> {
        let fail = |column: Column, text: &str, reason: String| {
            row_error(self.location(), column, text, reason)
        };
        let quantity = self.cell(Column::Quantity)?;
        let date = self.cell(Column::InvoiceDate)?;
        let price = self.cell(Column::Price)?;
        let customer = self.cell(Column::CustomerId)?;
        let description = self.cell(Column::Description)?;
        line.set_invoice(&self.cell(Column::Invoice)?);
        line.set_stock_code(&self.cell(Column::StockCode)?);
        line.set_description(Some(&*description).filter(|d| !d.is_empty()));
        line.quantity =
            parse_quantity(&quantity).map_err(|r| fail(Column::Quantity, &quantity, r))?;
        line.invoice_date =
            parse_invoice_date(&date).map_err(|r| fail(Column::InvoiceDate, &date, r))?;
        line.price = parse_price(&price).map_err(|r| fail(Column::Price, &price, r))?;
        line.customer_id =
            parse_customer_id(&customer).map_err(|r| fail(Column::CustomerId, &customer, r))?;
        line.set_country(&self.cell(Column::Country)?);
        Ok(())
    }

    /// The next row into `line` (as [`CsvLines::line_into`]); `false` at the end.
    pub fn next_into(&mut self, line: &mut Line) -> Result<bool> {
        if !self.read_record()? {
            return Ok(false);
        }
        self.line_into(line)?;
        Ok(true)
    }
}

impl<R: Read> Iterator for CsvLines<R> {
    type Item = Result<Line>;

    fn next(&mut self) -> Option<Result<Line>> {
        match self.read_record() {
            Ok(true) => Some(self.line()),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Reads every sheet of a workbook, in order, and takes the sheets' overlap once.
pub fn read_xlsx<RS: Read + Seek>(
    reader: RS,
    source_name: &str,
    progress: &ProgressBar,
) -> Result<RawData> {
    let xlsx_error = |source| DatasetError::Xlsx {
        source_name: source_name.to_string(),
        source,
    };
    let mut workbook: Xlsx<RS> = Xlsx::new(reader).map_err(xlsx_error)?;
    let mut sheets = Vec::new();
    for sheet in workbook.sheet_names() {
        progress.set_message(format!("reading sheet {sheet:?}"));
        let range = workbook.worksheet_range(&sheet).map_err(xlsx_error)?;
        let first_row = range.start().map(|(row, _)| row as usize).unwrap_or(0);
        progress.set_length(progress.length().unwrap_or(0) + range.height() as u64);
        let mut rows = range
            .rows()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|c| *c != Data::Empty));
        let Some((_, header)) = rows.next() else {
            continue; // an empty sheet holds no lines
        };
        let header: Vec<String> = header.iter().map(|c| c.to_string()).collect();
        let sheet_name = format!("{source_name}, sheet {sheet:?}");
        let map = HeaderMap::find(&header).map_err(|column| DatasetError::MissingColumn {
            source_name: sheet_name.clone(),
            column: column.name(),
            found: header.join(","),
        })?;
        let mut lines = Vec::with_capacity(range.height());
        for (i, row) in rows {
            let location = format!("{sheet_name}, row {}", first_row + i + 1);
            lines.push(
                line_from_cells(row, &map).map_err(|(column, value, reason)| {
                    row_error(location, column, &value, reason)
                })?,
            );
            progress.inc(1);
        }
        sheets.push(lines);
    }
    let lines_read = sheets.iter().map(|s| s.len() as u64).sum();
    Ok(RawData {
        sheets: sheets.len(),
        lines: overlap::take_once(sheets),
        lines_read,
    })
}

type CellError = (Column, String, String);

fn line_from_cells(row: &[Data], map: &HeaderMap) -> std::result::Result<Line, CellError> {
    let cell = |column: Column| row.get(map.index(column)).unwrap_or(&Data::Empty);
    let fail =
        |column: Column, reason: &str| (column, cell(column).to_string(), reason.to_string());
    let text = |column: Column| -> std::result::Result<String, CellError> {
        match cell(column) {
            Data::String(s) | Data::DateTimeIso(s) => Ok(s.clone()),
            Data::Int(i) => Ok(i.to_string()),
            Data::Float(f) => Ok(number_text(*f)),
            Data::Empty => Ok(String::new()),
            _ => Err(fail(column, "expected text")),
        }
    };
    let with = |column: Column| move |reason: String| fail(column, &reason);
    let quantity = match cell(Column::Quantity) {
        Data::Int(i) => *i,
        Data::Float(f) => quantity_from_f64(*f).map_err(with(Column::Quantity))?,
        Data::String(s) => parse_quantity(s).map_err(with(Column::Quantity))?,
        _ => return Err(fail(Column::Quantity, "expected a number")),
    };
    let invoice_date = match cell(Column::InvoiceDate) {
        Data::DateTime(dt) => dt
            .as_datetime()
            .map(round_to_second)
            .ok_or_else(|| fail(Column::InvoiceDate, "date out of range"))?,
        Data::String(s) | Data::DateTimeIso(s) => {
            parse_invoice_date(s).map_err(with(Column::InvoiceDate))?
        }
        _ => return Err(fail(Column::InvoiceDate, "expected a date-time")),
    };
    let price = match cell(Column::Price) {
        Data::Float(f) if f.is_finite() => *f,
        Data::Int(i) => *i as f64,
        Data::String(s) => parse_price(s).map_err(with(Column::Price))?,
        _ => return Err(fail(Column::Price, "expected a number")),
    };
    let customer_id = match cell(Column::CustomerId) {
        Data::Empty => None,
        Data::Float(f) => Some(customer_id_from_f64(*f).map_err(with(Column::CustomerId))?),
        Data::Int(i) => Some(customer_id_from_f64(*i as f64).map_err(with(Column::CustomerId))?),
        Data::String(s) => parse_customer_id(s).map_err(with(Column::CustomerId))?,
        _ => return Err(fail(Column::CustomerId, "expected a customer ID")),
    };
    let description = text(Column::Description)?;
    Ok(Line {
        invoice: text(Column::Invoice)?,
        stock_code: text(Column::StockCode)?,
        description: (!description.is_empty()).then_some(description),
        quantity,
        invoice_date,
        price,
        customer_id,
        country: text(Column::Country)?,
    })
}

/// Excel stores times as fractions of a day; the data's times are whole minutes.
fn round_to_second(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    let ms = t.and_utc().timestamp_millis();
    let rounded = (ms + 500).div_euclid(1000);
    chrono::DateTime::from_timestamp(rounded, 0).map_or(t, |d| d.naive_utc())
}

/// Reads UCI's zip: the first `.xlsx` in it, or else the first `.csv`.
pub fn read_zip(path: &Path, progress: &ProgressBar) -> Result<RawData> {
    progress.set_message("unzipping");
    let (entry, bytes) = read_zip_entry(path)?;
    let inner = format!("{}!{entry}", path.display());
    if entry.to_ascii_lowercase().ends_with(".xlsx") {
        read_xlsx(Cursor::new(bytes), &inner, progress)
    } else {
        read_csv(Cursor::new(bytes), &inner)
    }
}

/// The data file of a zip (see [`data_entry`]): its name and its bytes.
pub(crate) fn read_zip_entry(path: &Path) -> Result<(String, Vec<u8>)> {
    let zip_error = |source| DatasetError::Zip {
        source_name: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(DatasetError::io(path))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
    let entry = data_entry(&archive).ok_or_else(|| DatasetError::Format {
        path: path.to_path_buf(),
        reason: "the zip holds no .xlsx or .csv file".into(),
    })?;
    let mut bytes = Vec::new();
    archive
        .by_name(&entry)
        .map_err(zip_error)?
        .read_to_end(&mut bytes)
        .map_err(DatasetError::io(path))?;
    Ok((entry, bytes))
}

/// The name of the data file inside a zip: the first `.xlsx`, else the first `.csv` (macOS metadata
/// entries skipped).
pub fn data_entry<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Option<String> {
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok())
        .filter(|n| !n.starts_with("__MACOSX/"))
        .map(|n| n.into_owned())
        .collect();
    ["xlsx", "csv"].iter().find_map(|ext| {
        names
            .iter()
            .find(|n| n.to_ascii_lowercase().ends_with(&format!(".{ext}")))
            .map(|n| n.to_string())
    })
}

fn row_error(
    location: String,
    column: Column,
    value: &str,
    reason: impl Into<String>,
) -> DatasetError {
    DatasetError::Row {
        location,
        column: column.name(),
        value: value.to_string(),
        reason: reason.into(),
    }
}
