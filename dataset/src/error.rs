use std::path::PathBuf;

/// Everything that can go wrong while reading, writing, downloading or generating the data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// One row of an input file is malformed; `location` names the file (and sheet) and the row.
    #[error("{location}: column {column:?}: {reason} (value {value:?})")]
    Row {
        /// File, sheet and row, e.g. `data.csv, line 17` or `data.xlsx, sheet "Year 2010-2011", row 5`.
        location: String,
        /// The column's header name.
        column: &'static str,
        /// The cell's text as read.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required column is missing from a header.
    #[error("{source_name}: no column {column} in the header (it has: {found})")]
    MissingColumn {
        /// File (and sheet).
        source_name: String,
        /// The column that is missing, with its accepted spellings.
        column: &'static str,
        /// The header that was found.
        found: String,
    },
    /// The file is not in a format this crate reads.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why it was not read.
        reason: String,
    },
    /// The CSV reader failed (bad quoting, I/O, ...).
    #[error("{source_name}: {source}")]
    Csv {
        /// The file.
        source_name: String,
        /// The underlying error (it names the line where it has one).
        source: csv::Error,
    },
    /// The workbook could not be read.
    #[error("{source_name}: {source}")]
    Xlsx {
        /// The file.
        source_name: String,
        /// The underlying error.
        source: calamine::XlsxError,
    },
    /// The zip archive could not be read.
    #[error("{source_name}: {source}")]
    Zip {
        /// The file.
        source_name: String,
        /// The underlying error.
        source: zip::result::ZipError,
    },
    /// polars failed to build, read or write a frame.
    #[error("{context}: {source}")]
    Polars {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: polars::error::PolarsError,
    },
    /// An HTTP download failed.
    #[error("download of {url}: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Arguments that cannot work together (e.g. an end date before the start date).
    #[error("{0}")]
    InvalidArgument(String),
}

/// Result with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DatasetError::Io { path, source }
    }

    pub(crate) fn polars(
        context: impl Into<String>,
    ) -> impl FnOnce(polars::error::PolarsError) -> Self {
        let context = context.into();
        move |source| DatasetError::Polars { context, source }
    }
}
