//! Any supported input, one numbered line at a time, with bounded memory: what replay produces from.
//!
//! The lines and their canonical line numbers are those of [`crate::normalised::numbered_lines`],
//! which reads a whole file (a test holds the two equal):
//! - **Parquet** (normalised): read a slice of [`PARQUET_CHUNK`] rows at a time, line numbers as
//!   stored;
//! - **CSV**: read twice. The first pass reads the dates alone, to find where a concatenation of UCI's
//!   two sheets begins its second (the overlap rule of [`crate::overlap`]); the second yields the
//!   lines, skipping the first sheet's lines that the second sheet holds too;
//! - **xlsx**, or a **zip** holding one: read whole, as [`crate::read::read_raw`] does. A sheet holds
//!   at most 1,048,576 rows (the format's limit), so memory is bounded by the format; a zip holding a
//!   CSV keeps the CSV's bytes in memory (not its lines) and streams them as a CSV file.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use polars::prelude::*;

use crate::normalised::{FrameLines, check_columns};
use crate::read::{CsvLines, InputFormat, read_raw, read_zip_entry};
use crate::{DatasetError, Line, Result};

/// Rows of a normalised Parquet file read at a time.
pub const PARQUET_CHUNK: usize = 1 << 18;

/// The numbered lines of an input, read as they are consumed: as an iterator of owned lines, or
/// each written over the last one ([`NumberedLines::next_into`], what replay does: no allocation
/// per line from CSV or Parquet).
pub struct NumberedLines {
    inner: Box<dyn Source>,
    /// How many lines the input holds, when known before reading them (Parquet, CSV, workbooks).
    pub len: Option<u64>,
}

impl NumberedLines {
    /// The next line into `line` (its text written over `line`'s), and its number; `None` at the
    /// end. After an error `line` may be partly written.
    pub fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>> {
        self.inner.next_into(line)
    }
}

impl Iterator for NumberedLines {
    type Item = Result<(u64, Line)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Line::default();
        let number = self.inner.next_into(&mut line)?;
        Some(number.map(|n| (n, line)))
    }
}

/// Where numbered lines come from.
trait Source: Send {
    fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>>;
}

/// Lines read whole before (a workbook's).
impl Source for std::iter::Zip<std::ops::RangeFrom<u64>, std::vec::IntoIter<Line>> {
    fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>> {
        let (number, next) = self.next()?;
        *line = next;
        Some(Ok(number))
    }
}

/// Opens `path` (`.parquet`, `.csv`, `.xlsx`, `.zip`) for reading its numbered lines in order.
pub fn numbered_lines(path: &Path, progress: &ProgressBar) -> Result<NumberedLines> {
    match InputFormat::of(path)? {
        InputFormat::Parquet => ParquetLines::open(path),
        InputFormat::Csv => {
            let name = path.display().to_string();
            let open = || -> Result<CsvLines<BufReader<File>>> {
                let file = File::open(path).map_err(DatasetError::io(path))?;
                CsvLines::new(BufReader::with_capacity(1 << 20, file), &name)
            };
            csv_lines(open)
        }
        InputFormat::Zip => {
            let (entry, bytes) = read_zip_entry(path)?;
            if entry.to_ascii_lowercase().ends_with(".csv") {
                let name = format!("{}!{entry}", path.display());
                let bytes = std::sync::Arc::new(bytes);
                let open = move || CsvLines::new(Cursor::new(ArcBytes(bytes.clone())), &name);
                csv_lines(open)
            } else {
                whole(path, progress)
            }
        }
        InputFormat::Xlsx => whole(path, progress),
    }
}

fn whole(path: &Path, progress: &ProgressBar) -> Result<NumberedLines> {
    let lines = read_raw(path, progress)?.lines;
    Ok(NumberedLines {
        len: Some(lines.len() as u64),
        inner: Box::new((1..).zip(lines)),
    })
}

/// Shared bytes as a reader's buffer.
#[derive(Clone)]
struct ArcBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Where a file's second sheet begins (its row index and first date), found from the dates alone:
/// the rule of [`crate::overlap::split_concatenated_sheets`].
fn second_sheet<R: Read>(
    mut dates: CsvLines<R>,
) -> Result<(u64, Option<(u64, chrono::NaiveDateTime)>)> {
    let (mut rows, mut previous, mut first_decrease, mut decreases) = (0u64, None, None, 0);
    while let Some(date) = dates.next_date() {
        let date = date?;
        if previous.is_some_and(|p| date < p) {
            decreases += 1;
            first_decrease.get_or_insert((rows, date));
        }
        previous = Some(date);
        rows += 1;
    }
    Ok((rows, first_decrease.filter(|_| decreases == 1)))
}

fn csv_lines<R: Read + Send + 'static>(
    open: impl Fn() -> Result<CsvLines<R>>,
) -> Result<NumberedLines> {
    let (rows, split) = second_sheet(open()?)?;
    Ok(NumberedLines {
        len: Some(rows),
        inner: Box::new(CsvSource {
            lines: open()?,
            split,
            row: 0,
            number: 0,
        }),
    })
}

/// A CSV file's rows, the first sheet's lines that the second holds too skipped.
struct CsvSource<R: Read> {
    lines: CsvLines<R>,
    /// Where the second sheet begins (its row, its first date).
    split: Option<(u64, chrono::NaiveDateTime)>,
    /// Rows read, and lines kept.
    row: u64,
    number: u64,
}

impl<R: Read + Send> Source for CsvSource<R> {
    fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>> {
        loop {
            let row = self.row;
            let read = self.lines.next_into(line);
            self.row += 1;
            match read {
                Ok(true) => {}
                Ok(false) => return None,
                // A bad row is an error where it is read (the rows after it can still be read).
                Err(e) => return Some(Err(e)),
            }
            // The first sheet's lines dated from the second sheet's first line on are in the second.
            let kept = match self.split {
                Some((start, first)) if row < start => line.invoice_date < first,
                _ => true,
            };
            if kept {
                self.number += 1;
                return Some(Ok(self.number));
            }
        }
    }
}

/// A normalised Parquet file, a slice of rows at a time.
struct ParquetLines {
    path: PathBuf,
    metadata: std::sync::Arc<polars::io::parquet::read::FileMetadata>,
    rows: usize,
    offset: usize,
    chunk: Option<FrameLines>,
}

impl ParquetLines {
    fn open(path: &Path) -> Result<NumberedLines> {
        let context = || format!("reading {}", path.display());
        let file = File::open(path).map_err(DatasetError::io(path))?;
        let mut reader = ParquetReader::new(file);
        let rows = reader.num_rows().map_err(DatasetError::polars(context()))?;
        let metadata = reader
            .get_metadata()
            .map_err(DatasetError::polars(context()))?
            .clone();
        let lines = ParquetLines {
            path: path.to_path_buf(),
            metadata,
            rows,
            offset: 0,
            chunk: None,
        };
        Ok(NumberedLines {
            len: Some(rows as u64),
            inner: Box::new(lines),
        })
    }

    fn read_chunk(&mut self) -> Result<FrameLines> {
        let path = &self.path;
        let context = || format!("reading {}", path.display());
        let file = File::open(path).map_err(DatasetError::io(path))?;
        let mut reader = ParquetReader::new(file).with_slice(Some((self.offset, PARQUET_CHUNK)));
        reader.set_metadata(self.metadata.clone());
        let frame = reader.finish().map_err(DatasetError::polars(context()))?;
        check_columns(&frame, path)?;
        self.offset += PARQUET_CHUNK;
        FrameLines::new(&frame)
    }
}

impl Source for ParquetLines {
    fn next_into(&mut self, line: &mut Line) -> Option<Result<u64>> {
        loop {
            if let Some(number) = self.chunk.as_mut().and_then(|c| c.next_into(line)) {
                return Some(number);
            }
            if self.offset >= self.rows {
                return None;
            }
            match self.read_chunk() {
                Ok(chunk) => self.chunk = Some(chunk),
                Err(e) => {
                    // Stop after an error.
                    self.offset = self.rows;
                    return Some(Err(e));
                }
            }
        }
    }
}
