//! One invoice line of Online Retail II and the parsing of its fields.

use chrono::{NaiveDate, NaiveDateTime};

/// One line of an invoice, as the source has it, with its fields typed.
///
/// Nothing is classified here (purchase, return, ...): that is the feature contract's job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    /// Invoice number; a leading `C` marks a cancellation, `A` an adjustment.
    pub invoice: String,
    /// Product code.
    pub stock_code: String,
    /// Product description, when the source has one.
    pub description: Option<String>,
    /// Units; negative on most cancellation lines.
    pub quantity: i64,
    /// Local time of the invoice, taken as UTC.
    pub invoice_date: NaiveDateTime,
    /// Unit price in pounds (at most 3 decimals in the real data).
    pub price: f64,
    /// Customer ID; `None` for the many lines without one.
    pub customer_id: Option<u64>,
    /// The customer's country.
    pub country: String,
}

impl Line {
    /// Sets the invoice, reusing its room.
    pub fn set_invoice(&mut self, invoice: &str) {
        overwrite(&mut self.invoice, invoice);
    }

    /// Sets the stock code, reusing its room.
    pub fn set_stock_code(&mut self, stock_code: &str) {
        overwrite(&mut self.stock_code, stock_code);
    }

    /// Sets the description, reusing its room.
    pub fn set_description(&mut self, description: Option<&str>) {
        match (&mut self.description, description) {
            (Some(text), Some(new)) => overwrite(text, new),
            (text, new) => *text = new.map(str::to_owned),
        }
    }

    /// Sets the country, reusing its room.
    pub fn set_country(&mut self, country: &str) {
        overwrite(&mut self.country, country);
    }
}

/// `text` becomes `new`, in the room `text` has.
fn overwrite(text: &mut String, new: &str) {
    text.clear();
    text.push_str(new);
}

/// The header of UCI's current file (and of what `clv data generate` writes).
pub const UCI_HEADER: [&str; 8] = [
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "Customer ID",
    "Country",
];

/// The columns of the source, with every header spelling that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `Invoice` or `InvoiceNo`.
    Invoice,
    /// `StockCode`.
    StockCode,
    /// `Description`.
    Description,
    /// `Quantity`.
    Quantity,
    /// `InvoiceDate`.
    InvoiceDate,
    /// `Price` or `UnitPrice`.
    Price,
    /// `Customer ID` or `CustomerID`.
    CustomerId,
    /// `Country`.
    Country,
}

impl Column {
    /// All columns, in UCI's order.
    pub const ALL: [Column; 8] = [
        Column::Invoice,
        Column::StockCode,
        Column::Description,
        Column::Quantity,
        Column::InvoiceDate,
        Column::Price,
        Column::CustomerId,
        Column::Country,
    ];

    /// The name UCI's current file uses.
    pub fn name(self) -> &'static str {
        UCI_HEADER[self as usize]
    }

    /// Every accepted header spelling (compared ignoring case and surrounding space).
    fn spellings(self) -> &'static [&'static str] {
        match self {
            Column::Invoice => &["Invoice", "InvoiceNo"],
            Column::StockCode => &["StockCode"],
            Column::Description => &["Description"],
            Column::Quantity => &["Quantity"],
            Column::InvoiceDate => &["InvoiceDate"],
            Column::Price => &["Price", "UnitPrice"],
            Column::CustomerId => &["Customer ID", "CustomerID"],
            Column::Country => &["Country"],
        }
    }

    /// Whether a header cell names this column.
    pub fn matches(self, header: &str) -> bool {
        let header = header.trim().trim_start_matches('\u{feff}');
        self.spellings()
            .iter()
            .any(|s| s.eq_ignore_ascii_case(header))
    }
}

/// Where each column sits in a header row.
#[derive(Debug, Clone, Copy)]
pub struct HeaderMap {
    index: [usize; 8],
}

impl HeaderMap {
    /// Finds every column in `header`; `Err(column)` names the first one missing.
    pub fn find<S: AsRef<str>>(header: &[S]) -> Result<Self, Column> {
        let mut index = [0; 8];
        for (slot, column) in index.iter_mut().zip(Column::ALL) {
            *slot = header
                .iter()
                .position(|h| column.matches(h.as_ref()))
                .ok_or(column)?;
        }
        Ok(HeaderMap { index })
    }

    /// The position of `column` in the row.
    pub fn index(&self, column: Column) -> usize {
        self.index[column as usize]
    }
}

/// Parses a customer ID: empty means none; otherwise a positive integer, possibly written as a float
/// (`17850.0`).
pub fn parse_customer_id(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(id) = text.parse::<u64>() {
        return positive_id(id).map(Some);
    }
    match text.parse::<f64>() {
        Ok(x) => customer_id_from_f64(x).map(Some),
        Err(_) => Err("not a customer ID (a positive integer)".into()),
    }
}

/// A customer ID from a numeric cell: it must be a positive whole number.
pub fn customer_id_from_f64(x: f64) -> Result<u64, String> {
    if x.is_finite() && x.fract() == 0.0 && x >= 1.0 && x < 2f64.powi(53) {
        Ok(x as u64)
    } else {
        Err("not a customer ID (a positive integer)".into())
    }
}

fn positive_id(id: u64) -> Result<u64, String> {
    if id == 0 {
        Err("customer ID 0 (IDs are positive)".into())
    } else {
        Ok(id)
    }
}

/// Parses a quantity: an integer, or a float with no fractional part.
pub fn parse_quantity(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(q) = text.parse::<i64>() {
        return Ok(q);
    }
    match text.parse::<f64>() {
        Ok(x) => quantity_from_f64(x),
        Err(_) => Err("not an integer quantity".into()),
    }
}

/// A quantity from a numeric cell: it must be a whole number.
pub fn quantity_from_f64(x: f64) -> Result<i64, String> {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 2f64.powi(53) {
        Ok(x as i64)
    } else {
        Err("not an integer quantity".into())
    }
}

/// Parses a unit price in pounds: a finite number.
pub fn parse_price(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err("price is not a finite number".into()),
        Err(_) => Err("not a number".into()),
    }
}

/// `YYYY-MM-DD HH:MM:SS`: UCI's CSV layout, and the one every file clv writes uses.
pub(crate) const ISO_LAYOUT: &str = DATE_TIME_FORMATS[0];

/// The date-time layouts seen in exports of the data.
const DATE_TIME_FORMATS: [&str; 6] = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%y %H:%M",
];

/// Parses an invoice date: ISO (`2010-12-01 08:26:00`) or the US form (`12/1/2010 8:26`, month first).
pub fn parse_invoice_date(text: &str) -> Result<NaiveDateTime, String> {
    invoice_date_layout(text).map(|(_, t)| t).ok_or_else(|| {
        "not a date-time (expected like 2010-12-01 08:26:00 or 12/1/2010 8:26)".into()
    })
}

/// The layout (a `strftime` format) by which [`parse_invoice_date`] reads `text`, with the time
/// it reads: the first of the known layouts that parses it, a bare date last (as midnight).
pub(crate) fn invoice_date_layout(text: &str) -> Option<(&'static str, NaiveDateTime)> {
    let text = text.trim();
    if let Some(time) = iso_date_time(text) {
        return Some((ISO_LAYOUT, time));
    }
    DATE_TIME_FORMATS
        .iter()
        .find_map(|f| Some((*f, NaiveDateTime::parse_from_str(text, f).ok()?)))
        .or_else(|| {
            let day = NaiveDate::parse_from_str(text, DATE_FORMAT).ok()?;
            Some((DATE_FORMAT, day.and_hms_opt(0, 0, 0)?))
        })
}

/// `YYYY-MM-DD HH:MM:SS` exactly (UCI's CSV, and every file clv writes), read without chrono's
/// format interpreter (a seventh of replay's time went there); `None` for any other text, which the
/// layouts then read as before (a time that is not one, such as a leap second, included).
pub(crate) fn iso_date_time(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let shaped = b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shaped {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?.and_hms_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
    )
}

/// A bare date, read as midnight.
const DATE_FORMAT: &str = "%Y-%m-%d";

/// Writes a whole number the way the source writes invoice numbers and codes (`489434`, not `489434.0`).
pub fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_in_every_spelling() {
        assert_eq!(parse_customer_id(""), Ok(None));
        assert_eq!(parse_customer_id("  "), Ok(None));
        assert_eq!(parse_customer_id("17850"), Ok(Some(17850)));
        assert_eq!(parse_customer_id("17850.0"), Ok(Some(17850)));
        assert!(parse_customer_id("17850.5").is_err());
        assert!(parse_customer_id("0").is_err());
        assert!(parse_customer_id("-3").is_err());
        assert!(parse_customer_id("abc").is_err());
        assert!(parse_customer_id("NaN").is_err());
    }

    #[test]
    fn dates_iso_and_us() {
        let iso = parse_invoice_date("2010-12-01 08:26:00").unwrap();
        assert_eq!(parse_invoice_date("12/1/2010 8:26").unwrap(), iso);
        assert_eq!(parse_invoice_date("12/01/2010 08:26").unwrap(), iso);
        assert_eq!(parse_invoice_date("2010-12-01T08:26:00").unwrap(), iso);
        assert!(parse_invoice_date("31/12/2010 8:26").is_err());
        assert!(parse_invoice_date("yesterday").is_err());
    }

    #[test]
    fn the_iso_shortcut_reads_what_chrono_reads() {
        let cases = [
            "2010-12-01 08:26:00",
            "2011-12-09 12:50:59",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2012-02-29 10:00:00",
            "2011-02-29 10:00:00",
            "2010-13-01 08:26:00",
            "2010-12-32 08:26:00",
            "2010-12-01 24:00:00",
            "2010-12-01 23:60:00",
            "2010-12-01 23:59:60",
            "2010-12-01T08:26:00",
            "2010-12-01 08:26:0x",
            "+010-12-01 08:26:00",
            "2010-1-01 08:26:00 ",
        ];
        assert!(cases[..5].iter().all(|t| iso_date_time(t).is_some()));
        for text in cases {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok();
            // Declined (None): the layouts decide, as they did before (checked below).
            if let Some(fast) = iso_date_time(text) {
                assert_eq!(Some(fast), chrono, "{text}");
            }
            assert_eq!(
                parse_invoice_date(text).ok(),
                DATE_TIME_FORMATS
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(text.trim(), f).ok())
                    .or_else(|| NaiveDate::parse_from_str(text.trim(), DATE_FORMAT)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))),
                "{text}"
            );
        }
    }

    #[test]
    fn quantities_and_prices() {
        assert_eq!(parse_quantity("-12"), Ok(-12));
        assert_eq!(parse_quantity("12.0"), Ok(12));
        assert!(parse_quantity("1.5").is_err());
        assert_eq!(parse_price("0.001"), Ok(0.001));
        assert!(parse_price("inf").is_err());
        assert!(parse_price("").is_err());
    }

    #[test]
    fn header_spellings() {
        let new = UCI_HEADER;
        let old = [
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ];
        assert!(HeaderMap::find(&new).is_ok());
        let map = HeaderMap::find(&old).unwrap();
        assert_eq!(map.index(Column::CustomerId), 6);
        assert_eq!(HeaderMap::find(&new[..7]).unwrap_err(), Column::Country);
    }
}
