//! Where generated rows go: a CSV writer, or Parquet a row group at a time.

use std::io::Write;
use std::path::Path;

use crate::{DatasetError, Result};

/// Lines per row group of a generated Parquet file.
pub(super) const PARQUET_ROW_GROUP: usize = 1 << 18;

/// One generated row, as the CSV holds it.
pub(super) struct Record<'a> {
    pub(super) invoice: &'a str,
    pub(super) code: &'a str,
    pub(super) description: &'a str,
    pub(super) quantity: &'a str,
    pub(super) date: &'a str,
    pub(super) price: &'a str,
    pub(super) customer: &'a str,
    pub(super) country: &'a str,
}

/// Where generated rows go.
pub(super) trait Sink {
    fn write(&mut self, record: &Record<'_>) -> Result<()>;
}

pub(super) struct CsvSink<W: Write>(pub(super) csv::Writer<W>);

pub(super) fn csv_error(e: csv::Error) -> DatasetError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DatasetError::Io {
            path: "synthetic.csv".into(),
            source,
        },
        other => DatasetError::InvalidArgument(format!("writing CSV: {other:?}")),
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn write(&mut self, r: &Record<'_>) -> Result<()> {
        self.0
            .write_record([
                r.invoice,
                r.code,
                r.description,
                r.quantity,
                r.date,
                r.price,
                r.customer,
                r.country,
            ])
            .map_err(csv_error)
    }
}

/// Rows parsed as the CSV reader parses them (so the file equals an import of the CSV), a row group
/// at a time.
pub(super) struct ParquetSink<'a> {
    pub(super) path: &'a Path,
    pub(super) file: Option<std::fs::File>,
    pub(super) writer: Option<polars::io::parquet::write::BatchedWriter<std::fs::File>>,
    pub(super) lines: Vec<crate::Line>,
    pub(super) written: u64,
}

impl ParquetSink<'_> {
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let context = || format!("writing {}", self.path.display());
        let frame = crate::normalised::to_frame_from(&self.lines, self.written + 1)?;
        if self.writer.is_none()
            && let Some(file) = self.file.take()
        {
            let writer = polars::prelude::ParquetWriter::new(file)
                .batched(frame.schema())
                .map_err(DatasetError::polars(context()))?;
            self.writer = Some(writer);
        }
        if let Some(writer) = &mut self.writer {
            writer
                .write_batch(&frame)
                .map_err(DatasetError::polars(context()))?;
        }
        self.written += self.lines.len() as u64;
        self.lines.clear();
        Ok(())
    }
}

impl Sink for ParquetSink<'_> {
    fn write(&mut self, r: &Record<'_>) -> Result<()> {
        use crate::line::*;
        let bad = |what: &str, reason: String| {
            DatasetError::InvalidArgument(format!("generated {what}: {reason}"))
        };
        self.lines.push(crate::Line {
            invoice: r.invoice.to_string(),
            stock_code: r.code.to_string(),
            description: (!r.description.is_empty()).then(|| r.description.to_string()),
            quantity: parse_quantity(r.quantity).map_err(|e| bad("quantity", e))?,
            invoice_date: parse_invoice_date(r.date).map_err(|e| bad("date", e))?,
            price: parse_price(r.price).map_err(|e| bad("price", e))?,
            customer_id: parse_customer_id(r.customer).map_err(|e| bad("customer", e))?,
            country: r.country.to_string(),
        });
        if self.lines.len() >= PARQUET_ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }
}
