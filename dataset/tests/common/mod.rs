//! Small Online Retail II files built in the tests: CSV text, workbooks (rust_xlsxwriter) and zips.
#![allow(dead_code)]

use std::io::Write;

use dataset::line::UCI_HEADER;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// One source row as text, in UCI's column order: invoice, stock code, description, quantity, date,
/// price, customer ID (may be empty), country.
pub type Row = [&'static str; 8];

/// Sheet "Year 2009-2010": runs to 2010-12-09 and so repeats the first lines of the next sheet.
pub const SHEET_1: &[Row] = &[
    [
        "489434",
        "85048",
        "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
        "12",
        "2009-12-01 07:45:00",
        "6.95",
        "13085",
        "United Kingdom",
    ],
    [
        "489435",
        "22350",
        "CAT BOWL",
        "12",
        "2009-12-01 07:46:00",
        "2.55",
        "13085",
        "United Kingdom",
    ],
    [
        "C489449",
        "22087",
        "PAPER BUNTING WHITE LACE",
        "-12",
        "2009-12-01 10:33:00",
        "2.95",
        "16321",
        "Australia",
    ],
    [
        "489436",
        "48173C",
        "DOOR MAT BLACK FLOCK",
        "10",
        "2010-11-30 09:06:00",
        "5.95",
        "",
        "United Kingdom",
    ],
    OVERLAP[0],
    OVERLAP[1],
    OVERLAP[2],
];

/// The lines both sheets hold.
const OVERLAP: [Row; 3] = [
    [
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "6",
        "2010-12-01 08:26:00",
        "2.55",
        "17850",
        "United Kingdom",
    ],
    [
        "536366",
        "22633",
        "HAND WARMER UNION JACK",
        "6",
        "2010-12-01 08:28:00",
        "1.85",
        "17850",
        "United Kingdom",
    ],
    [
        "538171",
        "22630",
        "DOLLY GIRL LUNCH BOX",
        "2",
        "2010-12-09 20:01:00",
        "1.95",
        "17530",
        "United Kingdom",
    ],
];

/// Sheet "Year 2010-2011": starts at 2010-12-01 08:26.
pub const SHEET_2: &[Row] = &[
    OVERLAP[0],
    OVERLAP[1],
    OVERLAP[2],
    [
        "A563185",
        "B",
        "Adjust bad debt",
        "1",
        "2011-08-12 14:50:00",
        "11062.06",
        "",
        "United Kingdom",
    ],
    [
        "581587",
        "22138",
        "BAKING SET 9 PIECE RETROSPOT",
        "3",
        "2011-12-09 12:50:00",
        "4.95",
        "12680",
        "France",
    ],
];

/// Lines kept from both sheets: sheet 1's lines before 2010-12-01 08:26, then all of sheet 2.
pub const KEPT: usize = 4 + 5;

/// Both sheets one after the other, as a CSV export of the workbook has them.
pub fn both_sheets() -> Vec<Row> {
    SHEET_1.iter().chain(SHEET_2).copied().collect()
}

/// A CSV export of `rows` in the new (`Invoice,...,Price,Customer ID`) or old (`InvoiceNo,...,UnitPrice,
/// CustomerID`) spelling, customer IDs written as floats (`17850.0`); US dates (`12/1/2010 8:26`) when
/// `us_dates`.
pub fn csv_text(rows: &[Row], old_header: bool, us_dates: bool) -> String {
    let mut out = if old_header {
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
            .to_string()
    } else {
        UCI_HEADER.join(",")
    };
    out.push('\n');
    for [
        invoice,
        code,
        description,
        quantity,
        date,
        price,
        customer,
        country,
    ] in rows
    {
        let date = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").unwrap();
        let date = if us_dates {
            date.format("%-m/%-d/%Y %-H:%M").to_string()
        } else {
            date.format("%Y-%m-%d %H:%M:%S").to_string()
        };
        let customer = if customer.is_empty() {
            String::new()
        } else {
            format!("{customer}.0")
        };
        out.push_str(&format!(
            "{invoice},{code},\"{description}\",{quantity},{date},{price},{customer},{country}\n"
        ));
    }
    out
}

/// Adds a sheet of rows (text, UCI's column order) to a workbook, with cells typed as in UCI's file:
/// numeric invoices, quantities, prices and customer IDs, real date cells, empty cells for no customer.
pub fn add_uci_sheet<'a>(
    workbook: &mut Workbook,
    name: &str,
    rows: impl IntoIterator<Item = [&'a str; 8]>,
) {
    let date_format = Format::new().set_num_format("m/d/yyyy h:mm");
    let sheet = workbook.add_worksheet();
    sheet.set_name(name).unwrap();
    for (c, h) in UCI_HEADER.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (
        i,
        [
            invoice,
            code,
            description,
            quantity,
            date,
            price,
            customer,
            country,
        ],
    ) in rows.into_iter().enumerate()
    {
        let r = i as u32 + 1;
        let number = |text: &str| text.parse::<f64>().unwrap();
        match invoice.parse::<f64>() {
            Ok(n) => sheet.write_number(r, 0, n).unwrap(),
            Err(_) => sheet.write_string(r, 0, invoice).unwrap(),
        };
        sheet.write_string(r, 1, code).unwrap();
        if !description.is_empty() {
            sheet.write_string(r, 2, description).unwrap();
        }
        sheet.write_number(r, 3, number(quantity)).unwrap();
        let date = ExcelDateTime::parse_from_str(date).unwrap();
        sheet
            .write_datetime_with_format(r, 4, &date, &date_format)
            .unwrap();
        sheet.write_number(r, 5, number(price)).unwrap();
        if !customer.is_empty() {
            sheet.write_number(r, 6, number(customer)).unwrap();
        }
        sheet.write_string(r, 7, country).unwrap();
    }
}

/// A workbook with the given sheets.
pub fn workbook(sheets: &[(&str, &[Row])]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    for (name, rows) in sheets {
        add_uci_sheet(&mut workbook, name, rows.iter().copied());
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
