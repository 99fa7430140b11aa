//! A synthetic Online Retail II: same CSV layout, deterministic from a seed, at any scale.
//!
//! Customers follow the assumptions of the field's standard CLV models, so that models have something
//! real to learn: each customer arrives at some time, buys as a Poisson process whose rate is
//! Gamma-distributed across customers (seasonal, with the Christmas build-up of the real data), drops out
//! after any purchase with a Beta-distributed probability (BG/NBD), and spends per order a Gamma amount
//! whose scale is itself Gamma-distributed across customers (Gamma-Gamma). Defaults are the BG/NBD and
//! Gamma-Gamma parameters fitted on the real data. Around that: several lines per invoice over a product
//! catalogue with skewed popularity and prices, cancellations (`C` invoices), walk-in invoices without a
//! customer ID, stock write-offs, zero prices, duplicated rows, adjustments (`A` invoices), countries.

use std::io::Write;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, LogNormal, Normal, Poisson};

use crate::line::UCI_HEADER;

mod sink;
use crate::{DatasetError, Result};
use sink::{CsvSink, PARQUET_ROW_GROUP, ParquetSink, Record, Sink, csv_error};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Seed of the generator: the same spec gives the same bytes.
    pub seed: u64,
    /// Customers with an ID (the real data has 5,942).
    pub customers: u32,
    /// First day of trading.
    pub start: NaiveDate,
    /// Last day of trading (inclusive).
    pub end: NaiveDate,
}

impl Default for SyntheticSpec {
    /// The real data's shape: 5,942 customers from 2009-12-01 to 2011-12-09.
    fn default() -> Self {
        SyntheticSpec {
            seed: 42,
            customers: 5_942,
            start: NaiveDate::from_ymd_opt(2009, 12, 1).expect("valid date"),
            end: NaiveDate::from_ymd_opt(2011, 12, 9).expect("valid date"),
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyntheticReport {
    /// Data lines written.
    pub lines: u64,
    /// Distinct invoices.
    pub invoices: u64,
    /// Customers with at least one line.
    pub customers: u64,
}

// Population parameters (per day), fitted on the real data with BG/NBD + Gamma-Gamma.
const PURCHASE_RATE_SHAPE: f64 = 0.45; // r
const PURCHASE_RATE_SCALE: f64 = 1.0 / 37.0; // 1/α
const DROPOUT_A: f64 = 0.157;
const DROPOUT_B: f64 = 3.32;
const SPEND_SHAPE: f64 = 2.37; // p
const SPEND_RATE_SHAPE: f64 = 2.2; // q
const SPEND_RATE_RATE: f64 = 250.0; // γ
/// Share of customers already trading on the first day.
const EXISTING_CUSTOMERS: f64 = 0.3;
/// Share of customers whose only activity is a cancellation.
const RETURN_ONLY_CUSTOMERS: f64 = 0.011;
/// Probability that a purchase is followed by a cancellation invoice.
const RETURN_INVOICE_RATE: f64 = 0.22;
/// Lines without a customer ID, as a share of lines with one (the real data: 22.5% of all lines).
const WALK_IN_LINES_PER_CUSTOMER_LINE: f64 = 0.29;
const DUPLICATE_ROW_RATE: f64 = 0.0113;
const ZERO_PRICE_RATE: f64 = 0.0035;
const WRITE_OFF_RATE: f64 = 0.003;
const PRODUCTS: usize = 4_600;
/// Relative trading intensity per calendar month (January first), from the real data's line counts.
const SEASON: [f64; 12] = [
    0.85, 0.72, 0.98, 0.8, 0.9, 0.95, 0.91, 0.86, 1.15, 1.5, 2.0, 1.1,
];
const SEASON_MAX: f64 = 2.0;

const COUNTRIES: [(&str, f64); 12] = [
    ("United Kingdom", 0.905),
    ("Germany", 0.018),
    ("France", 0.017),
    ("EIRE", 0.006),
    ("Spain", 0.006),
    ("Netherlands", 0.005),
    ("Belgium", 0.005),
    ("Switzerland", 0.004),
    ("Portugal", 0.004),
    ("Australia", 0.003),
    ("Italy", 0.003),
    ("Norway", 0.024),
];

const COLOURS: [&str; 10] = [
    "WHITE", "RED", "PINK", "BLUE", "GREEN", "IVORY", "SILVER", "VINTAGE", "RETRO", "JUMBO",
];
const THINGS: [&str; 12] = [
    "HANGING HEART T-LIGHT HOLDER",
    "METAL LANTERN",
    "CAKE CASES",
    "BAG CHARLOTTE",
    "LUNCH BOX",
    "CHRISTMAS BAUBLE",
    "TEA CUP AND SAUCER",
    "PAPER BUNTING",
    "WATER BOTTLE",
    "PHOTO FRAME",
    "NOTEBOOK",
    "DOORMAT",
];

struct Product {
    code: String,
    description: String,
    price_milli: i64,
}

#[derive(Clone, Copy)]
enum Kind {
    Purchase,
    Cancellation,
    Adjustment,
}

/// One invoice before numbering: lines are (product, quantity, price in 1/1000 £).
struct Invoice {
    time: NaiveDateTime,
    kind: Kind,
    customer: Option<(u64, u8)>,
    lines: Vec<(u32, i32, i64)>,
}

/// Writes a synthetic dataset as a CSV file in UCI's layout.
pub fn generate_csv(
    spec: &SyntheticSpec,
    path: &Path,
    progress: &ProgressBar,
) -> Result<SyntheticReport> {
    let file = crate::create_file(path)?;
    let mut out = std::io::BufWriter::new(file);
    let report = generate(spec, &mut out, progress).map_err(|e| match e {
        DatasetError::Io { source, .. } => DatasetError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    })?;
    out.flush().map_err(DatasetError::io(path))?;
    Ok(report)
}

/// Writes a synthetic dataset as a normalised Parquet file (the layout of [`crate::normalised`]):
/// the lines `clv data import` would read from the CSV of the same spec, written a row group at a
/// time without the CSV in between.
pub fn generate_parquet(
    spec: &SyntheticSpec,
    path: &Path,
    progress: &ProgressBar,
) -> Result<SyntheticReport> {
    let file = crate::create_file(path)?;
    let mut sink = ParquetSink {
        path,
        writer: None,
        file: Some(file),
        lines: Vec::with_capacity(PARQUET_ROW_GROUP),
        written: 0,
    };
    let report = generate_into(spec, &mut sink, progress)?;
    sink.flush()?;
    if let Some(writer) = &mut sink.writer {
        writer
            .finish()
            .map_err(DatasetError::polars(format!("writing {}", path.display())))?;
    } else {
        // No line at all: an empty file of the layout.
        let mut frame = crate::normalised::to_frame(&[])?;
        let file = crate::create_file(path)?;
        polars::prelude::ParquetWriter::new(file)
            .finish(&mut frame)
            .map_err(DatasetError::polars(format!("writing {}", path.display())))?;
    }
    Ok(report)
}

/// Writes a synthetic dataset as CSV (UCI's header, ISO dates, invoices in time order) to `out`.
pub fn generate<W: Write>(
    spec: &SyntheticSpec,
    out: W,
    progress: &ProgressBar,
) -> Result<SyntheticReport> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(UCI_HEADER).map_err(csv_error)?;
    let mut sink = CsvSink(csv);
    let report = generate_into(spec, &mut sink, progress)?;
    sink.0.flush().map_err(|source| DatasetError::Io {
        path: "synthetic.csv".into(),
        source,
    })?;
    Ok(report)
}

/// The distributions every customer's history is drawn from (BG/NBD + Gamma-Gamma's shapes).
struct Draws {
    rate: Gamma<f64>,
    dropout: Beta<f64>,
    spend_rate: Gamma<f64>,
    lines_per_invoice: Gamma<f64>,
    return_delay: Exp<f64>,
}

impl Draws {
    fn new() -> Result<Draws> {
        Ok(Draws {
            rate: Gamma::new(PURCHASE_RATE_SHAPE, PURCHASE_RATE_SCALE).map_err(dist)?,
            dropout: Beta::new(DROPOUT_A, DROPOUT_B).map_err(dist)?,
            spend_rate: Gamma::new(SPEND_RATE_SHAPE, 1.0 / SPEND_RATE_RATE).map_err(dist)?,
            lines_per_invoice: Gamma::<f64>::new(1.3, 14.5).map_err(dist)?,
            return_delay: Exp::new(1.0 / 12.0).map_err(dist)?,
        })
    }
}

/// A product by popularity: the first products are bought far more often.
fn popularity(rng: &mut ChaCha8Rng) -> u32 {
    (PRODUCTS as f64 * rng.random::<f64>().powi(2)) as u32
}

/// What a synthetic history is drawn over: the random source, the products and the calendar.
struct World {
    rng: ChaCha8Rng,
    catalogue: Vec<Product>,
    clock: Clock,
}

impl World {
    /// The invoices of customer `index`: a purchase process that drops out (BG/NBD), with returns;
    /// or, for a few, a lone return.
    fn customer(&mut self, index: u32, draws: &Draws, invoices: &mut Vec<Invoice>) -> Result<()> {
        let World {
            rng,
            catalogue,
            clock,
        } = self;
        let days = clock.days;
        let id = 12_346 + u64::from(index);
        let country = pick_country(rng);
        let customer = Some((id, country));
        let arrival = if rng.random_bool(EXISTING_CUSTOMERS) {
            0.0
        } else {
            rng.random::<f64>() * days
        };
        if rng.random_bool(RETURN_ONLY_CUSTOMERS) {
            let product = popularity(rng);
            invoices.push(Invoice {
                time: clock.at(arrival, rng),
                kind: Kind::Cancellation,
                customer,
                lines: vec![(
                    product,
                    -rng.random_range(1..6),
                    catalogue[product as usize].price_milli,
                )],
            });
            return Ok(());
        }
        let lambda = draws.rate.sample(rng).max(1e-5);
        let p_drop = draws.dropout.sample(rng);
        let order_value =
            Gamma::new(SPEND_SHAPE, 1.0 / draws.spend_rate.sample(rng)).map_err(dist)?;
        let gap = Exp::new(lambda * SEASON_MAX).map_err(dist)?;
        let mut t = arrival;
        loop {
            let time = clock.at(t, rng);
            let value_milli = (order_value.sample(rng) * 1000.0).max(1_000.0);
            let n_lines = 1 + Poisson::new(draws.lines_per_invoice.sample(rng).max(0.01))
                .map_err(dist)?
                .sample(rng) as usize;
            let lines = basket(rng, catalogue, &popularity, n_lines, value_milli);
            if rng.random_bool(RETURN_INVOICE_RATE) {
                let back = clock.at(t + draws.return_delay.sample(rng), rng);
                if back <= clock.last() {
                    let n = rng.random_range(1..=lines.len().min(3));
                    let returned = lines[..n]
                        .iter()
                        .map(|&(p, q, price)| (p, -(rng.random_range(1..=q.max(1))), price))
                        .collect();
                    invoices.push(Invoice {
                        time: back,
                        kind: Kind::Cancellation,
                        customer,
                        lines: returned,
                    });
                }
            }
            invoices.push(Invoice {
                time,
                kind: Kind::Purchase,
                customer,
                lines,
            });
            if rng.random_bool(p_drop) {
                return Ok(());
            }
            // Next purchase: a Poisson process thinned by the season.
            loop {
                t += gap.sample(rng);
                if t >= days || rng.random::<f64>() * SEASON_MAX < clock.season(t) {
                    break;
                }
            }
            if t >= days {
                return Ok(());
            }
        }
    }

    /// Walk-in invoices (no customer ID) and stock write-offs, spread over the period with the
    /// season, and a few bad-debt adjustments.
    fn walk_ins(&mut self, customers: u32, invoices: &mut Vec<Invoice>) -> Result<()> {
        let World {
            rng,
            catalogue,
            clock,
        } = self;
        let days = clock.days;
        let customer_lines: usize = invoices.iter().map(|i| i.lines.len()).sum();
        let walk_in_lines = Gamma::<f64>::new(1.0, 26.0).map_err(dist)?;
        let mut walk_in_target = (customer_lines as f64 * WALK_IN_LINES_PER_CUSTOMER_LINE) as usize;
        while walk_in_target > 0 {
            let t = loop {
                let t = rng.random::<f64>() * days;
                if rng.random::<f64>() * SEASON_MAX < clock.season(t) {
                    break t;
                }
            };
            let n_lines = 1 + Poisson::new(walk_in_lines.sample(rng).max(0.01))
                .map_err(dist)?
                .sample(rng) as usize;
            let n_lines = n_lines.min(walk_in_target);
            let mut lines: Vec<(u32, i32, i64)> = (0..n_lines)
                .map(|_| {
                    let p = popularity(rng);
                    (p, rng.random_range(1..4), catalogue[p as usize].price_milli)
                })
                .collect();
            for line in &mut lines {
                if rng.random_bool(WRITE_OFF_RATE * 4.0) {
                    *line = (line.0, -rng.random_range(1..100), 0); // damaged / lost stock
                }
            }
            walk_in_target -= n_lines;
            invoices.push(Invoice {
                time: clock.at(t, rng),
                kind: Kind::Purchase,
                customer: None,
                lines,
            });
        }
        for _ in 0..(customers / 1_500).max(1) {
            let t = rng.random::<f64>() * days;
            invoices.push(Invoice {
                time: clock.at(t, rng),
                kind: Kind::Adjustment,
                customer: None,
                lines: vec![(u32::MAX, 1, rng.random_range(-20_000_000..20_000_000))],
            });
        }
        Ok(())
    }

    /// Writes `invoices` (in time order) as lines of the UCI file: numbered from the real data's
    /// first invoice, with its zero prices and duplicated rows.
    fn write(
        &mut self,
        invoices: &[Invoice],
        sink: &mut impl Sink,
        progress: &ProgressBar,
    ) -> Result<SyntheticReport> {
        let mut report = SyntheticReport::default();
        let mut seen_customers = std::collections::HashSet::new();
        for (number, invoice) in (489_434u64..).zip(invoices) {
            let prefix = match invoice.kind {
                Kind::Purchase => "",
                Kind::Cancellation => "C",
                Kind::Adjustment => "A",
            };
            let invoice_no = format!("{prefix}{number}");
            report.invoices += 1;
            let date = invoice.time.format("%Y-%m-%d %H:%M:%S").to_string();
            let (customer, country) = match invoice.customer {
                Some((id, c)) => {
                    seen_customers.insert(id);
                    (id.to_string(), COUNTRIES[c as usize].0)
                }
                None => (String::new(), "United Kingdom"),
            };
            for &(product, quantity, price_milli) in &invoice.lines {
                let (code, description) = match self.catalogue.get(product as usize) {
                    Some(p) => (p.code.as_str(), p.description.as_str()),
                    None => ("B", "Adjust bad debt"),
                };
                let price_milli = if matches!(invoice.kind, Kind::Purchase)
                    && invoice.customer.is_some()
                    && self.rng.random_bool(ZERO_PRICE_RATE)
                {
                    0
                } else {
                    price_milli
                };
                let (quantity, price) = (quantity.to_string(), pounds(price_milli));
                let record = Record {
                    invoice: &invoice_no,
                    code,
                    description,
                    quantity: &quantity,
                    date: &date,
                    price: &price,
                    customer: &customer,
                    country,
                };
                let copies = if self.rng.random_bool(DUPLICATE_ROW_RATE) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    sink.write(&record)?;
                    report.lines += 1;
                }
            }
            progress.inc(1);
        }
        report.customers = seen_customers.len() as u64;
        Ok(report)
    }
}

fn generate_into(
    spec: &SyntheticSpec,
    sink: &mut impl Sink,
    progress: &ProgressBar,
) -> Result<SyntheticReport> {
    if spec.end < spec.start {
        return Err(DatasetError::InvalidArgument(format!(
            "end {} is before start {}",
            spec.end, spec.start
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let days = (spec.end - spec.start).num_days() as f64 + 1.0;
    let origin = spec.start.and_hms_opt(0, 0, 0).expect("midnight exists");
    let catalogue = catalogue(&mut rng);
    let mut world = World {
        rng,
        catalogue,
        clock: Clock { origin, days },
    };

    progress.set_length(u64::from(spec.customers));
    progress.set_message("customers");
    let mut invoices: Vec<Invoice> = Vec::new();
    let draws = Draws::new()?;
    for index in 0..spec.customers {
        world.customer(index, &draws, &mut invoices)?;
        progress.inc(1);
    }
    world.walk_ins(spec.customers, &mut invoices)?;

    invoices.sort_by_key(|i| i.time);
    progress.set_length(invoices.len() as u64);
    progress.set_position(0);
    progress.set_message("writing");
    world.write(&invoices, sink, progress)
}

/// Maps fractional days since the start to trading times: shop hours, no Saturdays.
struct Clock {
    origin: NaiveDateTime,
    days: f64,
}

impl Clock {
    fn at(&self, t: f64, rng: &mut ChaCha8Rng) -> NaiveDateTime {
        let day = (t.max(0.0) as i64).min(self.days as i64 - 1);
        let mut date = self.origin + Duration::days(day);
        if date.weekday() == Weekday::Sat {
            date -= Duration::days(1);
        }
        let hour = Normal::<f64>::new(12.5, 2.3)
            .map(|n| n.sample(rng))
            .unwrap_or(12.5)
            .clamp(7.0, 20.0) as i64;
        let minute = rng.random_range(0..60);
        date + Duration::hours(hour) + Duration::minutes(minute)
    }

    fn last(&self) -> NaiveDateTime {
        self.origin + Duration::days(self.days as i64 - 1) + Duration::hours(20)
    }

    fn season(&self, t: f64) -> f64 {
        let date = self.origin + Duration::seconds((t * 86_400.0) as i64);
        SEASON[date.month0() as usize]
    }
}

fn catalogue(rng: &mut ChaCha8Rng) -> Vec<Product> {
    let price = LogNormal::new(2.0f64.ln(), 0.8).expect("valid log-normal");
    (0..PRODUCTS)
        .map(|i| {
            let pounds = price.sample(rng).clamp(0.1, 60.0);
            // Prices in pence, a few in tenths of a penny as in the real data.
            let price_milli = if rng.random_bool(0.02) {
                (pounds * 1000.0).round() as i64
            } else {
                (pounds * 100.0).round() as i64 * 10
            };
            Product {
                code: format!("{}", 20_000 + i * 7 % 80_000),
                description: format!(
                    "{} {}",
                    COLOURS[rng.random_range(0..COLOURS.len())],
                    THINGS[rng.random_range(0..THINGS.len())]
                ),
                price_milli: price_milli.max(10),
            }
        })
        .collect()
}

/// Lines of one order worth about `value_milli`: products by popularity, quantities to match the value.
fn basket(
    rng: &mut ChaCha8Rng,
    catalogue: &[Product],
    popularity: &dyn Fn(&mut ChaCha8Rng) -> u32,
    n_lines: usize,
    value_milli: f64,
) -> Vec<(u32, i32, i64)> {
    let weights: Vec<f64> = (0..n_lines)
        .map(|_| -rng.random::<f64>().max(1e-12).ln())
        .collect();
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| {
            let product = popularity(rng);
            let price = catalogue[product as usize].price_milli;
            let quantity = (value_milli * w / total / price as f64)
                .round()
                .clamp(1.0, 10_000.0) as i32;
            (product, quantity, price)
        })
        .collect()
}

fn pick_country(rng: &mut ChaCha8Rng) -> u8 {
    let mut x = rng.random::<f64>() * COUNTRIES.iter().map(|c| c.1).sum::<f64>();
    for (i, (_, weight)) in COUNTRIES.iter().enumerate() {
        if x < *weight {
            return i as u8;
        }
        x -= weight;
    }
    0
}

/// Pounds from integer thousandths, with as few decimals as needed (`2.55`, `0.001`, `-11062.06`).
fn pounds(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let abs = milli.unsigned_abs();
    let text = format!("{sign}{}.{:03}", abs / 1000, abs % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn dist(e: impl std::fmt::Display) -> DatasetError {
    DatasetError::InvalidArgument(format!("distribution parameter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pounds_are_exact() {
        assert_eq!(pounds(2_550), "2.55");
        assert_eq!(pounds(1), "0.001");
        assert_eq!(pounds(0), "0");
        assert_eq!(pounds(-11_062_060), "-11062.06");
        assert_eq!(pounds(5_000), "5");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let spec = SyntheticSpec {
            customers: 50,
            ..SyntheticSpec::default()
        };
        let run = |spec: &SyntheticSpec| {
            let mut out = Vec::new();
            generate(spec, &mut out, &ProgressBar::hidden()).unwrap();
            out
        };
        assert_eq!(run(&spec), run(&spec));
        assert_ne!(
            run(&spec),
            run(&SyntheticSpec {
                seed: 7,
                ..spec.clone()
            })
        );
    }

    #[test]
    fn end_before_start_is_an_error() {
        let spec = SyntheticSpec {
            end: NaiveDate::from_ymd_opt(2009, 1, 1).unwrap(),
            ..SyntheticSpec::default()
        };
        assert!(generate(&spec, Vec::new(), &ProgressBar::hidden()).is_err());
    }
}
