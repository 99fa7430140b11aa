//! The Online Retail II transaction data: everything before the stream.
//!
//! - [`read`]: the files people have (UCI's `.xlsx` with its two sheets, the CSV exports with either header
//!   spelling, UCI's `.zip`) into [`Line`]s, with the sheet overlap taken once ([`overlap`]);
//!   A CSV export is read by polars' own reader when it is well formed (`csv_frame`), row by row otherwise;
//! - [`normalised`]: the one normalised Parquet layout every later stage reads, with each line's canonical
//!   line number;
//! - [`stream`]: any of them one numbered line at a time, with bounded memory (what replay reads);
//! - [`download`]: fetch UCI's zip, resumably, and check it holds the workbook;
//! - [`synthetic`]: a deterministic generator of data in the same format, at any scale.
//!
//! This crate knows the *format* of the data; what a line means (purchase, return, ignored) is the feature
//! contract's business (`featurestore`).

mod csv_frame;
pub mod download;
mod error;
pub mod line;
pub mod normalised;
pub mod overlap;
pub mod read;
pub mod stream;
pub mod synthetic;

pub use error::{DatasetError, Result};
pub use line::Line;

/// Creates (or truncates) a file for writing, creating its folder first.
pub(crate) fn create_file(path: &std::path::Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(DatasetError::io(dir))?;
    }
    std::fs::File::create(path).map_err(DatasetError::io(path))
}
