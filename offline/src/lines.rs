//! The contract computed in batch with polars, over normalised lines (see `dataset::normalised`).
//!
//! Written as polars expressions over the whole table, independently of the per-event fold that the
//! streaming path uses, so that the two implementations check each other.

use chrono::{DateTime, NaiveDateTime};
use polars::prelude::*;

use contract::bounds::{self, Bounds};
use contract::{
    Feature, LABEL, LineClass, MS_PER_DAY, NAIVE_MONTHS, SnapshotSpec, add_months, epoch_ms,
    midnight,
};

/// Errors of the batch computation.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// polars failed; `context` says at which step.
    #[error("{context}: {source}")]
    Polars {
        /// The step.
        context: &'static str,
        /// The underlying error.
        source: PolarsError,
    },
    /// The input does not have what the contract needs.
    #[error("{0}")]
    Input(String),
}

type Result<T> = std::result::Result<T, OfflineError>;

fn at(context: &'static str) -> impl FnOnce(PolarsError) -> OfflineError {
    move |source| OfflineError::Polars { context, source }
}

// Input columns (the normalised layout) and intermediate ones.
const CUSTOMER_ID: &str = "customer_id";
const INVOICE: &str = "invoice";
const STOCK_CODE: &str = "stock_code";
const DESCRIPTION: &str = "description";
const COUNTRY: &str = "country";
const QUANTITY: &str = "quantity";
const PRICE: &str = "price";
const INVOICE_DATE: &str = "invoice_date";
const CLASS: &str = "class";
const PRICE_MILLI: &str = "price_milli";
const TIME_MS: &str = "time_ms";
const REVENUE_MILLI: &str = "revenue_milli";
const IS_PURCHASE: &str = "is_purchase";

/// Adds the line's `class` (the contract's rules, in order, the bounds first, as of the wall-clock
/// time of the import: now), its price in thousandths of a pound and its time in epoch milliseconds.
pub fn classified(lines: LazyFrame) -> LazyFrame {
    classified_within(lines, &Bounds::now())
}

/// Whether a line is outside the bounds (FEATURES.md "Bounds"): the same checks as
/// [`Bounds::check`], as one expression.
fn out_of_bounds(b: &Bounds) -> Expr {
    let bytes = |name: &str| col(name).str().len_bytes();
    let code = |name: &str| {
        let n = bytes(name).fill_null(lit(0));
        n.clone()
            .lt(lit(1))
            .or(n.gt(lit(bounds::MAX_CODE_BYTES as u32)))
    };
    let price = col(PRICE).cast(DataType::Float64);
    let customer = col(CUSTOMER_ID).cast(DataType::Int64);
    col(TIME_MS)
        .lt(lit(bounds::EARLIEST_MS))
        .or(col(TIME_MS).gt(lit(b.latest_ms)))
        .or(col(QUANTITY)
            .cast(DataType::Int64)
            .abs()
            .gt(lit(bounds::MAX_QUANTITY)))
        .or(price.clone().is_nan())
        .or(price.abs().gt(lit(bounds::MAX_PRICE)))
        .or(customer
            .clone()
            .lt(lit(1i64))
            .or(customer.gt(lit(bounds::MAX_CUSTOMER_ID as i64)))
            .fill_null(lit(false)))
        .or(code(INVOICE))
        .or(code(STOCK_CODE))
        .or(bytes(COUNTRY)
            .gt(lit(bounds::MAX_COUNTRY_BYTES as u32))
            .fill_null(lit(false)))
        .or(bytes(DESCRIPTION)
            .gt(lit(bounds::MAX_DESCRIPTION_BYTES as u32))
            .fill_null(lit(false)))
}

/// [`classified`] with the bounds of a given time.
pub fn classified_within(lines: LazyFrame, bounds: &Bounds) -> LazyFrame {
    let class = |c: LineClass| lit(c.name());
    // Built from the last rule back: the first rule that holds gives the class.
    let classes = class_rules(bounds)
        .into_iter()
        .rev()
        .fold(class(LineClass::Purchase), |otherwise, (c, condition)| {
            when(condition).then(class(c)).otherwise(otherwise)
        });
    with_price_and_time(lines).with_column(classes.alias(CLASS))
}

/// The line's price in thousandths of a pound and its time in epoch milliseconds.
fn with_price_and_time(lines: LazyFrame) -> LazyFrame {
    lines.with_columns([
        (col(PRICE).cast(DataType::Float64) * lit(1000.0))
            .round(0, RoundMode::HalfAwayFromZero)
            .cast(DataType::Int64)
            .alias(PRICE_MILLI),
        col(INVOICE_DATE)
            .cast(DataType::Datetime(TimeUnit::Milliseconds, None))
            .cast(DataType::Int64)
            .alias(TIME_MS),
    ])
}

/// The contract's rules before "purchase", in order: a line takes the class of the first whose
/// condition holds (a null condition does not hold), and is a purchase when none does. Over
/// [`with_price_and_time`]'s columns.
fn class_rules(bounds: &Bounds) -> [(LineClass, Expr); 6] {
    // Digits only, checked byte by byte: a regex, or stripping the digits, cost a tenth of the
    // snapshot on every line.
    let digits_only = col(INVOICE).map(
        |invoices| {
            let digits: BooleanChunked = invoices
                .str()?
                .iter()
                .map(|v| v.map(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())))
                .collect();
            Ok(digits.with_name(invoices.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Boolean)),
    );
    [
        (
            LineClass::OutOfBounds,
            out_of_bounds(bounds).fill_null(lit(true)),
        ),
        (LineClass::NoCustomer, col(CUSTOMER_ID).is_null()),
        (LineClass::Return, col(INVOICE).str().starts_with(lit("C"))),
        (LineClass::NonSaleInvoice, digits_only.not()),
        (LineClass::NonPositiveQuantity, col(QUANTITY).lt_eq(lit(0))),
        (LineClass::NonPositivePrice, col(PRICE_MILLI).lt_eq(lit(0))),
    ]
}

/// Whether a line is a purchase under [`class_rules`]: no rule holds. The same rows as
/// [`classified_within`]'s `class == "purchase"`, without building the class names.
fn is_purchase(bounds: &Bounds) -> Expr {
    class_rules(bounds)
        .into_iter()
        .fold(lit(true), |all, (_, condition)| {
            all.and(condition.fill_null(lit(false)).not())
        })
}

/// One row per purchase (distinct customer and invoice among purchase lines): `customer_id`, `invoice`,
/// `time_ms` (earliest line) and `revenue_milli` (all its lines, exact).
pub fn purchases(lines: LazyFrame) -> LazyFrame {
    // The rules read every column (the bounds are on the text's lengths too) but the group-by only
    // five: the filter copies, and the group-by gathers into one chunk, only those.
    with_price_and_time(lines)
        .select([
            col(CUSTOMER_ID),
            col(INVOICE),
            col(TIME_MS),
            col(QUANTITY),
            col(PRICE_MILLI),
            is_purchase(&Bounds::now()).alias(IS_PURCHASE),
        ])
        .filter(col(IS_PURCHASE))
        .group_by([col(CUSTOMER_ID), col(INVOICE)])
        .agg([
            col(TIME_MS).min(),
            (col(QUANTITY).cast(DataType::Int64) * col(PRICE_MILLI))
                .sum()
                .alias(REVENUE_MILLI),
        ])
}

/// Features of every customer with a purchase before the cutoff, the label after it, and the naive
/// baseline: `customer_id`, the nine features (contract order), `clv_6m`, `naive_6m`; sorted by customer.
pub fn snapshot(lines: LazyFrame, spec: &SnapshotSpec) -> Result<DataFrame> {
    if spec.horizon_months == 0 {
        return Err(OfflineError::Input(
            "the label horizon must be at least one month".into(),
        ));
    }
    let t = epoch_ms(midnight(spec.cutoff));
    let horizon_end = epoch_ms(midnight(add_months(
        spec.cutoff,
        spec.horizon_months as i32,
    )));
    let naive_start = epoch_ms(midnight(add_months(spec.cutoff, -(NAIVE_MONTHS as i32))));
    let purchases = purchases(lines).cache();

    let gaps_days = col(TIME_MS)
        .sort(SortOptions::default())
        .diff(lit(1), Default::default())
        .cast(DataType::Float64)
        / lit(MS_PER_DAY as f64);
    let month = col(TIME_MS).cast(DataType::Datetime(TimeUnit::Milliseconds, None));
    let month_key = month.clone().dt().year().cast(DataType::Int32) * lit(12)
        + month.dt().month().cast(DataType::Int32);
    let history = purchases
        .clone()
        .filter(col(TIME_MS).lt(lit(t)))
        .group_by([col(CUSTOMER_ID)])
        .agg([
            col(TIME_MS).max().alias("last_ms"),
            col(TIME_MS).min().alias("first_ms"),
            len().cast(DataType::Int64).alias("frequency"),
            col(REVENUE_MILLI).sum().alias(REVENUE_MILLI),
            month_key
                .n_unique()
                .cast(DataType::Int64)
                .alias("active_months"),
            gaps_days.clone().mean().alias("gap_mean"),
            gaps_days.std(1).alias("gap_std"),
        ]);
    let window_revenue = |from: i64, to: i64, name: &'static str| {
        purchases
            .clone()
            .filter(col(TIME_MS).gt_eq(lit(from)).and(col(TIME_MS).lt(lit(to))))
            .group_by([col(CUSTOMER_ID)])
            .agg([col(REVENUE_MILLI).sum().alias(name)])
    };
    let on = [col(CUSTOMER_ID)];
    let frame = history
        .join(
            window_revenue(t, horizon_end, "label_milli"),
            on.clone(),
            on.clone(),
            JoinArgs::new(JoinType::Left),
        )
        .join(
            window_revenue(naive_start, t, "naive_milli"),
            on.clone(),
            on,
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col(CUSTOMER_ID).cast(DataType::Int64),
            (lit(t) - col("last_ms"))
                .floor_div(lit(MS_PER_DAY))
                .alias(Feature::RecencyDays.name()),
            col("frequency").alias(Feature::Frequency.name()),
            pounds(col(REVENUE_MILLI)).alias(Feature::TotalRevenue.name()),
            (pounds(col(REVENUE_MILLI)) / col("frequency").cast(DataType::Float64))
                .alias(Feature::AvgOrderValue.name()),
            (lit(t) - col("first_ms"))
                .floor_div(lit(MS_PER_DAY))
                .alias(Feature::TenureDays.name()),
            col("active_months").alias(Feature::ActiveMonths.name()),
            (col("frequency").cast(DataType::Float64)
                / col("active_months").cast(DataType::Float64))
            .alias(Feature::PurchaseVelocity.name()),
            when(col("frequency").gt(lit(1)))
                .then(col("gap_mean"))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(Feature::AvgGapDays.name()),
            when(col("frequency").eq(lit(2)))
                .then(lit(0.0))
                .when(col("frequency").gt(lit(2)))
                .then(col("gap_std"))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(Feature::StdGapDays.name()),
            pounds(col("label_milli").fill_null(lit(0))).alias(LABEL),
            pounds(col("naive_milli").fill_null(lit(0))).alias(Feature::Naive6m.name()),
        ])
        .sort([CUSTOMER_ID], SortMultipleOptions::default());
    frame.collect().map_err(at("computing the snapshot"))
}

fn pounds(milli: Expr) -> Expr {
    milli.cast(DataType::Float64) / lit(1000.0)
}

/// What a set of lines holds, by the contract's classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSummary {
    /// Lines.
    pub lines: u64,
    /// Lines of each class, in rule order.
    pub by_class: Vec<(LineClass, u64)>,
    /// Distinct customer IDs on any line.
    pub customers: u64,
    /// Distinct customer IDs with a purchase line.
    pub customers_with_purchase: u64,
    /// Distinct invoice numbers on any line.
    pub invoices: u64,
    /// Purchases: distinct (customer, invoice) among purchase lines.
    pub purchases: u64,
    /// Earliest and latest invoice date, when there are lines.
    pub date_range: Option<(NaiveDateTime, NaiveDateTime)>,
}

impl LineSummary {
    /// Lines of one class.
    pub fn count(&self, class: LineClass) -> u64 {
        self.by_class
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(0, |(_, n)| *n)
    }
}

/// Counts lines by class, customers, invoices and purchases.
pub fn summarise(lines: LazyFrame) -> Result<LineSummary> {
    let is = |c: LineClass| col(CLASS).eq(lit(c.name()));
    let mut columns = vec![
        len().cast(DataType::Int64).alias("lines"),
        col(CUSTOMER_ID)
            .drop_nulls()
            .n_unique()
            .cast(DataType::Int64)
            .alias("customers"),
        col(CUSTOMER_ID)
            .filter(is(LineClass::Purchase))
            .n_unique()
            .cast(DataType::Int64)
            .alias("customers_with_purchase"),
        col(INVOICE)
            .n_unique()
            .cast(DataType::Int64)
            .alias("invoices"),
        col(TIME_MS).min().alias("first_ms"),
        col(TIME_MS).max().alias("last_ms"),
    ];
    columns.extend(
        LineClass::ALL
            .iter()
            .map(|&c| is(c).cast(DataType::Int64).sum().alias(c.name())),
    );
    let totals = classified(lines.clone())
        .select(columns)
        .collect()
        .map_err(at("summarising lines"))?;
    let purchases = purchases(lines)
        .select([len().cast(DataType::Int64).alias("purchases")])
        .collect()
        .map_err(at("counting purchases"))?;
    let int = |frame: &DataFrame, name: &'static str| -> Result<Option<i64>> {
        let column = frame.column(name).map_err(at("reading the summary"))?;
        Ok(column.i64().map_err(at("reading the summary"))?.get(0))
    };
    let count = |frame: &DataFrame, name: &'static str| -> Result<u64> {
        Ok(int(frame, name)?.unwrap_or(0).max(0) as u64)
    };
    let time = |ms: Option<i64>| {
        ms.and_then(DateTime::from_timestamp_millis)
            .map(|t| t.naive_utc())
    };
    let by_class = LineClass::ALL
        .iter()
        .map(|&c| Ok((c, count(&totals, c.name())?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(LineSummary {
        lines: count(&totals, "lines")?,
        by_class,
        customers: count(&totals, "customers")?,
        customers_with_purchase: count(&totals, "customers_with_purchase")?,
        invoices: count(&totals, "invoices")?,
        purchases: count(&purchases, "purchases")?,
        date_range: time(int(&totals, "first_ms")?).zip(time(int(&totals, "last_ms")?)),
    })
}

/// The snapshot's columns: `customer_id`, the nine features (the feature row's names, in its
/// order), the label and the baseline.
pub fn snapshot_columns() -> Vec<&'static str> {
    std::iter::once("customer_id")
        .chain(Feature::NINE.iter().map(|f| f.name()))
        .chain([LABEL, Feature::Naive6m.name()])
        .collect()
}
