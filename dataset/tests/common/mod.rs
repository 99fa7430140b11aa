//! Small Online Retail II files built in the tests: CSV text, workbooks (rust_xlsxwriter) and zips.
#![allow(dead_code)]

use std::io::Write;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// One source row: invoice, stock code, description, quantity, date, price, customer (as the xlsx has
/// it: a float, or empty), country.
pub type Row = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static str,
    f64,
    Option<f64>,
    &'static str,
);

/// Sheet "Year 2009-2010": runs to 2010-12-09 and so repeats the first lines of the next sheet.
pub const SHEET_1: &[Row] = &[
    (
        "489434",
        "85048",
        "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
        12,
        "2009-12-01 07:45:00",
        6.95,
        Some(13085.0),
        "United Kingdom",
    ),
    (
        "489435",
        "22350",
        "CAT BOWL",
        12,
        "2009-12-01 07:46:00",
        2.55,
        Some(13085.0),
        "United Kingdom",
    ),
    (
        "C489449",
        "22087",
        "PAPER BUNTING WHITE LACE",
        -12,
        "2009-12-01 10:33:00",
        2.95,
        Some(16321.0),
        "Australia",
    ),
    (
        "489436",
        "48173C",
        "DOOR MAT BLACK FLOCK",
        10,
        "2010-11-30 09:06:00",
        5.95,
        None,
        "United Kingdom",
    ),
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        6,
        "2010-12-01 08:26:00",
        2.55,
        Some(17850.0),
        "United Kingdom",
    ),
    (
        "536366",
        "22633",
        "HAND WARMER UNION JACK",
        6,
        "2010-12-01 08:28:00",
        1.85,
        Some(17850.0),
        "United Kingdom",
    ),
    (
        "538171",
        "22630",
        "DOLLY GIRL LUNCH BOX",
        2,
        "2010-12-09 20:01:00",
        1.95,
        Some(17530.0),
        "United Kingdom",
    ),
];

/// Sheet "Year 2010-2011": starts at 2010-12-01 08:26.
pub const SHEET_2: &[Row] = &[
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        6,
        "2010-12-01 08:26:00",
        2.55,
        Some(17850.0),
        "United Kingdom",
    ),
    (
        "536366",
        "22633",
        "HAND WARMER UNION JACK",
        6,
        "2010-12-01 08:28:00",
        1.85,
        Some(17850.0),
        "United Kingdom",
    ),
    (
        "538171",
        "22630",
        "DOLLY GIRL LUNCH BOX",
        2,
        "2010-12-09 20:01:00",
        1.95,
        Some(17530.0),
        "United Kingdom",
    ),
    (
        "A563185",
        "B",
        "Adjust bad debt",
        1,
        "2011-08-12 14:50:00",
        11062.06,
        None,
        "United Kingdom",
    ),
    (
        "581587",
        "22138",
        "BAKING SET 9 PIECE RETROSPOT",
        3,
        "2011-12-09 12:50:00",
        4.95,
        Some(12680.0),
        "France",
    ),
];

/// Lines kept from both sheets: sheet 1's lines before 2010-12-01 08:26, then all of sheet 2.
pub const KEPT: usize = 4 + 5;

/// A CSV export of `rows` in the new (`Invoice,...,Price,Customer ID`) or old (`InvoiceNo,...,UnitPrice,
/// CustomerID`) spelling; US dates (`12/1/2010 8:26`) when `us_dates`.
pub fn csv_text(rows: &[Row], old_header: bool, us_dates: bool) -> String {
    let mut out = String::from(if old_header {
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    } else {
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
    });
    for (invoice, code, description, quantity, date, price, customer, country) in rows {
        let date = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").unwrap();
        let date = if us_dates {
            date.format("%-m/%-d/%Y %-H:%M").to_string()
        } else {
            date.format("%Y-%m-%d %H:%M:%S").to_string()
        };
        let customer = customer.map(|c| format!("{c:.1}")).unwrap_or_default();
        out.push_str(&format!(
            "{invoice},{code},\"{description}\",{quantity},{date},{price},{customer},{country}\n"
        ));
    }
    out
}

/// A workbook with the given sheets, cells typed as in UCI's file (numeric invoices and customer IDs,
/// real date cells).
pub fn workbook(sheets: &[(&str, &[Row])]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let date_format = Format::new().set_num_format("m/d/yy h:mm");
    for (name, rows) in sheets {
        let sheet = workbook.add_worksheet();
        sheet.set_name(*name).unwrap();
        let header = [
            "Invoice",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "Price",
            "Customer ID",
            "Country",
        ];
        for (c, h) in header.iter().enumerate() {
            sheet.write_string(0, c as u16, *h).unwrap();
        }
        for (r, (invoice, code, description, quantity, date, price, customer, country)) in
            rows.iter().enumerate()
        {
            let r = r as u32 + 1;
            match invoice.parse::<f64>() {
                Ok(n) => sheet.write_number(r, 0, n).unwrap(),
                Err(_) => sheet.write_string(r, 0, *invoice).unwrap(),
            };
            match code.parse::<f64>() {
                Ok(n) => sheet.write_number(r, 1, n).unwrap(),
                Err(_) => sheet.write_string(r, 1, *code).unwrap(),
            };
            sheet.write_string(r, 2, *description).unwrap();
            sheet.write_number(r, 3, *quantity as f64).unwrap();
            let dt = ExcelDateTime::parse_from_str(date).unwrap();
            sheet
                .write_datetime_with_format(r, 4, &dt, &date_format)
                .unwrap();
            sheet.write_number(r, 5, *price).unwrap();
            if let Some(c) = customer {
                sheet.write_number(r, 6, *c).unwrap();
            }
            sheet.write_string(r, 7, *country).unwrap();
        }
    }
    workbook.save_to_buffer().unwrap()
}

/// UCI's two sheets as a workbook.
pub fn uci_workbook() -> Vec<u8> {
    workbook(&[("Year 2009-2010", SHEET_1), ("Year 2010-2011", SHEET_2)])
}

/// A zip holding one file.
pub fn zip_of(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap();
    out.into_inner()
}
