//! The feature row: the one definition of every feature a model reads.
//!
//! A [`FeatureRow`] is the contract's nine features ([`Nine`], FEATURES.md) and the extra point-in-time
//! features ([`Extra`]) of one customer as of a time. Every feature is declared once, in the
//! `features!` invocation below, with its name (the Rust field, the JSON key and the frame column are
//! the same word), its documentation (the field's doc comment, the OpenAPI description and
//! [`Feature::doc`] are the same text) and its kind. From that one list come:
//! - the structs and their serde (the scorer's JSON, `POST /predict`'s body);
//! - [`Feature`]: one variant per feature, in column order, with [`Feature::ALL`], [`Feature::NINE`]
//!   and [`Feature::EXTRA`]; models name their inputs with it;
//! - [`FeatureRow::values`] / [`FeatureRow::from_values`]: the row as values in column order (a frame
//!   row), and back;
//! - with the `openapi` feature, the OpenAPI schemas of [`Nine`], [`Extra`] and [`FeatureRow`].
//!
//! Rows are computed by [`RowBuilder`] from a customer's state, `as_of` and the model-wide
//! [`ModelInputs`]: nothing else, so a customer's row (and so its prediction) never depends on other
//! customers.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize};

use crate::inputs::ModelInputs;
use crate::probabilistic::daily_summary;
use crate::state::CustomerState;
use crate::{MS_PER_DAY, SnapshotSpec, add_months, epoch_ms, midnight, pounds};

/// What values a feature takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Whole numbers (days, counts).
    Integer,
    /// Real numbers.
    Number,
    /// Real numbers, or null (undefined for the customer, e.g. gaps with one purchase).
    NullableNumber,
}

impl FeatureKind {
    /// The largest value a feature of this kind may be given (`POST /predict`, the OpenAPI
    /// schema): whole numbers up to 2^53 − 1 (exact as JSON numbers), real numbers up to 10^15 (a
    /// thousand times the most one line may be worth, and small enough that every model's
    /// prediction stays finite). Every feature is ≥ 0.
    pub fn maximum(self) -> f64 {
        match self {
            FeatureKind::Integer => 9_007_199_254_740_991.0,
            FeatureKind::Number | FeatureKind::NullableNumber => 1e15,
        }
    }
}

/// How one kind of feature value converts to and from an `Option<f64>` (a frame cell).
trait Value: Sized {
    const KIND: FeatureKind;
    fn to_cell(&self) -> Option<f64>;
    fn from_cell(cell: Option<f64>) -> Option<Self>;
}

impl Value for i64 {
    const KIND: FeatureKind = FeatureKind::Integer;
    fn to_cell(&self) -> Option<f64> {
        Some(*self as f64)
    }
    fn from_cell(cell: Option<f64>) -> Option<Self> {
        let v = cell?;
        // Exactly representable whole numbers only (|v| < 2^53).
        (v.is_finite() && v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0).then_some(v as i64)
    }
}

impl Value for f64 {
    const KIND: FeatureKind = FeatureKind::Number;
    fn to_cell(&self) -> Option<f64> {
        Some(*self)
    }
    fn from_cell(cell: Option<f64>) -> Option<Self> {
        cell.filter(|v| v.is_finite())
    }
}

impl Value for Option<f64> {
    const KIND: FeatureKind = FeatureKind::NullableNumber;
    fn to_cell(&self) -> Option<f64> {
        *self
    }
    fn from_cell(cell: Option<f64>) -> Option<Self> {
        match cell {
            None => Some(None),
            Some(v) if v.is_finite() => Some(Some(v)),
            Some(_) => None,
        }
    }
}

/// Integer features also accept a whole number written as a float (`12.0`), as the seed's clients
/// send them.
fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Whole {
        Int(i64),
        Float(f64),
    }
    match Whole::deserialize(deserializer)? {
        Whole::Int(v) => Ok(v),
        Whole::Float(v) => <i64 as Value>::from_cell(Some(v))
            .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, not {v}"))),
    }
}

/// A value that does not fit its feature (see [`FeatureRow::from_values`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    /// The row has another number of values than there are features.
    #[error("a feature row has {expected} values, not {actual}")]
    Length {
        /// [`Feature::ALL`]'s length (or [`Feature::NINE`]'s).
        expected: usize,
        /// What was given.
        actual: usize,
    },
    /// A value is null where the feature is not nullable, not whole where it must be, or not finite.
    #[error("{feature}: {value:?} is not a value of this feature")]
    Value {
        /// The feature's name.
        feature: &'static str,
        /// The value.
        value: Option<f64>,
    },
}

macro_rules! group {
    ($(#[$meta:meta])* $group:ident { $( $(#[doc = $doc:literal])+ $field:ident : $ty:ty => $variant:ident ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        pub struct $group {
            $(
                $(#[doc = $doc])+
                #[serde(deserialize_with = "group::field")]
                pub $field: $ty,
            )+
        }

        impl $group {
            /// The features of this group, in column order.
            pub const FEATURES: &'static [Feature] = &[$(Feature::$variant),+];

            /// The value of `feature` (`None` for a null, or when the feature is not of this group).
            pub fn get(&self, feature: Feature) -> Option<f64> {
                match feature {
                    $(Feature::$variant => Value::to_cell(&self.$field),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// The group's values, in column order.
            pub fn values(&self) -> Vec<Option<f64>> {
                vec![$(Value::to_cell(&self.$field)),+]
            }

            /// From values in column order.
            pub fn from_values(values: &[Option<f64>]) -> Result<Self, RowError> {
                if values.len() != Self::FEATURES.len() {
                    return Err(RowError::Length {
                        expected: Self::FEATURES.len(),
                        actual: values.len(),
                    });
                }
                let mut values = values.iter().copied();
                Ok($group {
                    $($field: {
                        let cell = values.next().flatten();
                        <$ty as Value>::from_cell(cell).ok_or(RowError::Value {
                            feature: stringify!($field),
                            value: cell,
                        })?
                    },)+
                })
            }

            #[cfg(feature = "openapi")]
            fn object_schema() -> utoipa::openapi::schema::ObjectBuilder {
                let mut object = utoipa::openapi::schema::ObjectBuilder::new();
                $(
                    object = object
                        .property(stringify!($field), group::schema(
                            <$ty as Value>::KIND,
                            concat!($($doc, "\n"),+).trim(),
                        ))
                        .required(stringify!($field));
                )+
                object
            }
        }
    };
}

mod group {
    use serde::{Deserialize, Deserializer};

    /// Deserializes a field of a feature group: integers leniently (see [`super::whole`]), the rest
    /// as serde does.
    pub(super) fn field<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Lenient,
    {
        T::lenient(deserializer)
    }

    pub(super) trait Lenient: Sized {
        fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    }

    impl Lenient for i64 {
        fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::whole(deserializer)
        }
    }

    impl Lenient for f64 {
        fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            f64::deserialize(deserializer)
        }
    }

    impl Lenient for Option<f64> {
        fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Option::<f64>::deserialize(deserializer)
        }
    }

    #[cfg(feature = "openapi")]
    pub(super) fn schema(
        kind: super::FeatureKind,
        doc: &str,
    ) -> utoipa::openapi::schema::ObjectBuilder {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let maximum = Some(kind.maximum());
        let schema_type = match kind {
            super::FeatureKind::Integer => SchemaType::Type(Type::Integer),
            super::FeatureKind::Number => SchemaType::Type(Type::Number),
            super::FeatureKind::NullableNumber => SchemaType::Array(vec![Type::Number, Type::Null]),
        };
        // Every feature is ≥ 0 (what `/predict` requires of the nine, and what rows hold).
        ObjectBuilder::new()
            .schema_type(schema_type)
            .minimum(Some(0.0))
            .maximum(maximum)
            .description(Some(doc))
    }
}

macro_rules! features {
    (
        $(#[$nine_meta:meta])* nine { $( $(#[doc = $ndoc:literal])+ $nfield:ident : $nty:ty => $nvariant:ident ),+ $(,)? }
        $(#[$extra_meta:meta])* extra { $( $(#[doc = $edoc:literal])+ $efield:ident : $ety:ty => $evariant:ident ),+ $(,)? }
    ) => {
        group! { $(#[$nine_meta])* Nine { $( $(#[doc = $ndoc])+ $nfield : $nty => $nvariant ),+ } }
        group! { $(#[$extra_meta])* Extra { $( $(#[doc = $edoc])+ $efield : $ety => $evariant ),+ } }

        /// One feature of the row, in column order (the nine, then the extra ones). Serialized as
        /// its name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Feature {
            $( $(#[doc = $ndoc])+ $nvariant, )+
            $( $(#[doc = $edoc])+ $evariant, )+
        }

        impl Feature {
            /// Every feature, in column order.
            pub const ALL: &'static [Feature] = &[$(Feature::$nvariant,)+ $(Feature::$evariant,)+];
            /// The contract's nine.
            pub const NINE: &'static [Feature] = Nine::FEATURES;
            /// The extra features.
            pub const EXTRA: &'static [Feature] = Extra::FEATURES;

            /// The name: the column, the JSON key and the field are this word.
            pub fn name(self) -> &'static str {
                match self {
                    $(Feature::$nvariant => stringify!($nfield),)+
                    $(Feature::$evariant => stringify!($efield),)+
                }
            }

            /// The feature of this name.
            pub fn from_name(name: &str) -> Option<Feature> {
                Feature::ALL.iter().copied().find(|f| f.name() == name)
            }

            /// What it means.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Feature::$nvariant => concat!($($ndoc, "\n"),+).trim_ascii(),)+
                    $(Feature::$evariant => concat!($($edoc, "\n"),+).trim_ascii(),)+
                }
            }

            /// The values it takes.
            pub fn kind(self) -> FeatureKind {
                match self {
                    $(Feature::$nvariant => <$nty as Value>::KIND,)+
                    $(Feature::$evariant => <$ety as Value>::KIND,)+
                }
            }
        }
    };
}

impl Serialize for Feature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Feature::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("no feature {name:?}")))
    }
}

features! {
    /// The contract's nine features of a customer as of a time (FEATURES.md), using only purchases
    /// before it. Also the body of `POST /predict`.
    nine {
        /// Whole days from the last purchase to as_of.
        recency_days: i64 => RecencyDays,
        /// Purchases (distinct invoices) before as_of.
        frequency: i64 => Frequency,
        /// Revenue of those purchases, pounds.
        total_revenue: f64 => TotalRevenue,
        /// Revenue per purchase (not per line), pounds.
        avg_order_value: f64 => AvgOrderValue,
        /// Whole days from the first purchase to as_of.
        tenure_days: i64 => TenureDays,
        /// Distinct calendar months with a purchase.
        active_months: i64 => ActiveMonths,
        /// Purchases per active month (frequency / active_months).
        purchase_velocity: f64 => PurchaseVelocity,
        /// Mean gap between consecutive purchases, fractional days; null with one purchase.
        avg_gap_days: Option<f64> => AvgGapDays,
        /// Sample standard deviation of those gaps, days; 0 with one gap, null with one purchase.
        std_gap_days: Option<f64> => StdGapDays,
    }
    /// The extra point-in-time features of a customer as of a time, from purchases before it and the
    /// model-wide inputs.
    extra {
        /// Revenue in the 6 months before as_of, pounds (the contract's naive baseline).
        naive_6m: f64 => Naive6m,
        /// Revenue in the 3 months before as_of, pounds.
        revenue_last_3m: f64 => RevenueLast3m,
        /// Revenue in the label window's months a year before as_of, pounds.
        revenue_year_before_window: f64 => RevenueYearBeforeWindow,
        /// BG/NBD expected purchase days in the label window.
        bgnbd_expected_purchases: f64 => BgnbdExpectedPurchases,
        /// BG/NBD probability that the customer is still active.
        bgnbd_p_alive: f64 => BgnbdPAlive,
        /// BG/NBD probability that the customer buys nothing in the label window.
        bgnbd_p_no_purchase: f64 => BgnbdPNoPurchase,
        /// Gamma-Gamma expected spend per purchase day, pounds.
        gg_expected_spend: f64 => GgExpectedSpend,
        /// BG/NBD expected purchases times Gamma-Gamma expected spend, pounds.
        bgnbd_clv: f64 => BgnbdClv,
        /// The seasonal index of the label window (1 when the seasonal profile is flat).
        season_index: f64 => SeasonIndex,
    }
}

impl Extra {
    /// Extra features that are not known (every value NaN): for scoring with a model that reads
    /// only the nine, from the nine alone.
    pub fn unknown() -> Self {
        Extra {
            naive_6m: f64::NAN,
            revenue_last_3m: f64::NAN,
            revenue_year_before_window: f64::NAN,
            bgnbd_expected_purchases: f64::NAN,
            bgnbd_p_alive: f64::NAN,
            bgnbd_p_no_purchase: f64::NAN,
            gg_expected_spend: f64::NAN,
            bgnbd_clv: f64::NAN,
            season_index: f64::NAN,
        }
    }
}

/// One customer's features as of a time: the nine and the extra ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureRow {
    /// The contract's nine (serialized at the top level).
    #[serde(flatten)]
    pub nine: Nine,
    /// The extra features.
    pub extra: Extra,
}

impl FeatureRow {
    /// The value of `feature` as stored (`None` for a null).
    pub fn get(&self, feature: Feature) -> Option<f64> {
        match Nine::FEATURES.contains(&feature) {
            true => self.nine.get(feature),
            false => self.extra.get(feature),
        }
    }

    /// The value of `feature` as models read it: a null gap (one purchase) is the customer's tenure,
    /// the longest gap they could have.
    pub fn input(&self, feature: Feature) -> f64 {
        self.get(feature).unwrap_or(self.nine.tenure_days as f64)
    }

    /// The values in column order ([`Feature::ALL`]).
    pub fn values(&self) -> Vec<Option<f64>> {
        let mut values = self.nine.values();
        values.extend(self.extra.values());
        values
    }

    /// From values in column order ([`Feature::ALL`]).
    pub fn from_values(values: &[Option<f64>]) -> Result<Self, RowError> {
        if values.len() != Feature::ALL.len() {
            return Err(RowError::Length {
                expected: Feature::ALL.len(),
                actual: values.len(),
            });
        }
        let (nine, extra) = values.split_at(Nine::FEATURES.len());
        Ok(FeatureRow {
            nine: Nine::from_values(nine)?,
            extra: Extra::from_values(extra)?,
        })
    }
}

impl Nine {
    /// The nine features of `state` as of `as_of_ms` (exclusive), or `None` when no purchase came
    /// before it.
    pub fn of(state: &CustomerState, as_of_ms: i64) -> Option<Nine> {
        let mut times: Vec<i64> = Vec::with_capacity(state.purchases.len());
        let mut revenue_milli = 0i128;
        for p in state.purchases.values().filter(|p| p.time_ms < as_of_ms) {
            times.push(p.time_ms);
            revenue_milli += i128::from(p.revenue_milli);
        }
        times.sort_unstable();
        let (&first, &last) = (times.first()?, times.last()?);
        let frequency = times.len() as i64;
        let months: BTreeSet<(i32, u32)> = times
            .iter()
            .filter_map(|&t| DateTime::from_timestamp_millis(t))
            .map(|t| (t.year(), t.month()))
            .collect();
        let active_months = months.len() as i64;
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / MS_PER_DAY as f64)
            .collect();
        let (avg_gap_days, std_gap_days) = match gaps.len() {
            0 => (None, None),
            1 => (Some(gaps[0]), Some(0.0)),
            n => {
                let mean = gaps.iter().sum::<f64>() / n as f64;
                let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                (Some(mean), Some(var.sqrt()))
            }
        };
        let total_revenue = revenue_milli as f64 / 1000.0;
        Some(Nine {
            recency_days: (as_of_ms - last).div_euclid(MS_PER_DAY),
            frequency,
            total_revenue,
            avg_order_value: total_revenue / frequency as f64,
            tenure_days: (as_of_ms - first).div_euclid(MS_PER_DAY),
            active_months,
            purchase_velocity: frequency as f64 / active_months as f64,
            avg_gap_days,
            std_gap_days,
        })
    }
}

/// Computes rows as of one time with one set of model-wide inputs; what is the same for every
/// customer (window bounds, the seasonal index) is computed once, in [`RowBuilder::new`].
#[derive(Debug, Clone)]
pub struct RowBuilder<'a> {
    inputs: &'a ModelInputs,
    as_of: NaiveDate,
    as_of_ms: i64,
    horizon_days: f64,
    naive_start_ms: i64,
    three_months_ago_ms: i64,
    year_before_ms: (i64, i64),
    season_index: f64,
}

impl<'a> RowBuilder<'a> {
    /// Rows as of midnight UTC of `as_of`, for the label window of `inputs.horizon_months`.
    pub fn new(inputs: &'a ModelInputs, as_of: NaiveDate) -> Self {
        let spec = SnapshotSpec {
            cutoff: as_of,
            horizon_months: inputs.horizon_months,
        };
        let h = i32::try_from(inputs.horizon_months).unwrap_or(i32::MAX);
        RowBuilder {
            inputs,
            as_of,
            as_of_ms: spec.cutoff_ms(),
            horizon_days: (add_months(as_of, h) - as_of).num_days() as f64,
            naive_start_ms: spec.naive_start_ms(),
            three_months_ago_ms: epoch_ms(midnight(add_months(as_of, -3))),
            year_before_ms: (
                epoch_ms(midnight(add_months(as_of, -12))),
                epoch_ms(midnight(add_months(as_of, h.saturating_sub(12)))),
            ),
            season_index: inputs.seasonality.index(as_of, inputs.horizon_months),
        }
    }

    /// The time the rows are taken at.
    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }

    /// The row of `state`, or `None` when it has no purchase before `as_of`.
    pub fn row(&self, state: &CustomerState) -> Option<FeatureRow> {
        let nine = Nine::of(state, self.as_of_ms)?;
        let (rft, monetary) = daily_summary(state, self.as_of_ms)?;
        let inputs = self.inputs;
        let purchases = inputs.bgnbd.expected_purchases(&rft, self.horizon_days);
        let spend = inputs.gamma_gamma.expected_spend(rft.x, monetary);
        let revenue = |from: i64, to: i64| pounds(state.revenue_between(from, to));
        Some(FeatureRow {
            nine,
            extra: Extra {
                naive_6m: revenue(self.naive_start_ms, self.as_of_ms),
                revenue_last_3m: revenue(self.three_months_ago_ms, self.as_of_ms),
                revenue_year_before_window: revenue(self.year_before_ms.0, self.year_before_ms.1),
                bgnbd_expected_purchases: purchases,
                bgnbd_p_alive: inputs.bgnbd.p_alive(&rft),
                bgnbd_p_no_purchase: inputs.bgnbd.p_no_purchase(&rft, self.horizon_days),
                gg_expected_spend: spend,
                bgnbd_clv: purchases * spend,
                season_index: self.season_index,
            },
        })
    }
}

#[cfg(feature = "openapi")]
mod openapi;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, ms};

    #[test]
    fn features_as_of_a_cutoff() {
        let mut s = CustomerState::default();
        for e in [
            event("a", "1", 1, 10.0, "2011-01-01 10:00:00"),
            event("b", "2", 2, 10.0, "2011-01-03 22:00:00"),
            event("c", "3", 3, 10.0, "2011-01-11 10:00:00"),
            event("d", "4", 4, 10.0, "2011-06-01 00:00:00"),
        ] {
            s.apply(&e).unwrap();
        }
        let f = Nine::of(&s, ms("2011-06-01 00:00:00")).unwrap();
        assert_eq!(
            (f.frequency, f.recency_days, f.tenure_days, f.active_months),
            (3, 140, 150, 1)
        );
        assert_eq!(f.total_revenue, 60.0);
        assert_eq!(f.avg_order_value, 20.0);
        assert_eq!(f.avg_gap_days, Some(5.0));
        assert!((f.std_gap_days.unwrap() - 12.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            s.revenue_between(ms("2011-06-01 00:00:00"), ms("2011-12-01 00:00:00")),
            40_000
        );
        assert!(Nine::of(&s, ms("2011-01-01 10:00:00")).is_none());
        let one = Nine::of(&s, ms("2011-01-02 00:00:00")).unwrap();
        assert_eq!((one.avg_gap_days, one.std_gap_days), (None, None));
    }

    #[test]
    fn one_list_of_features_in_column_order() {
        let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            &names[..9],
            [
                "recency_days",
                "frequency",
                "total_revenue",
                "avg_order_value",
                "tenure_days",
                "active_months",
                "purchase_velocity",
                "avg_gap_days",
                "std_gap_days"
            ]
        );
        assert_eq!(
            Feature::NINE.len() + Feature::EXTRA.len(),
            Feature::ALL.len()
        );
        assert_eq!(
            Feature::PurchaseVelocity.doc(),
            "Purchases per active month (frequency / active_months)."
        );
        assert_eq!(Feature::StdGapDays.kind(), FeatureKind::NullableNumber);
        // Serde's names are the same words.
        for f in Feature::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
            assert_eq!(
                serde_json::from_value::<Feature>(f.name().into()).unwrap(),
                *f
            );
        }
        assert!(serde_json::from_value::<Feature>("nope".into()).is_err());
    }

    #[test]
    fn a_row_round_trips_through_values_and_json() {
        let mut s = CustomerState::default();
        s.apply(&event("a", "1", 1, 10.0, "2011-01-01 10:00:00"))
            .unwrap();
        let inputs = ModelInputs::example();
        let row = RowBuilder::new(&inputs, NaiveDate::from_ymd_opt(2011, 6, 1).unwrap())
            .row(&s)
            .unwrap();
        assert_eq!(row.nine.avg_gap_days, None);
        assert_eq!(
            row.input(Feature::AvgGapDays),
            150.0,
            "a null gap reads as the tenure"
        );
        assert_eq!(FeatureRow::from_values(&row.values()).unwrap(), row);
        let json = serde_json::to_value(row).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert!(keys.iter().any(|k| *k == "recency_days") && keys.iter().any(|k| *k == "extra"));
        assert_eq!(serde_json::from_value::<FeatureRow>(json).unwrap(), row);
        // Whole floats are integers; fractions and nulls where none may be are not.
        let mut values = row.values();
        values[0] = Some(140.0);
        assert!(FeatureRow::from_values(&values).is_ok());
        values[0] = Some(140.5);
        assert!(matches!(
            FeatureRow::from_values(&values),
            Err(RowError::Value {
                feature: "recency_days",
                ..
            })
        ));
        values[0] = None;
        assert!(FeatureRow::from_values(&values).is_err());
        assert!(FeatureRow::from_values(&values[1..]).is_err());
        let nine: Nine = serde_json::from_str(
            r#"{"recency_days": 12.0, "frequency": 7, "total_revenue": 2450.5, "avg_order_value": 350.07,
                "tenure_days": 400, "active_months": 6, "purchase_velocity": 0.52,
                "avg_gap_days": null, "std_gap_days": 20.1}"#,
        )
        .unwrap();
        assert_eq!(nine.recency_days, 12);
        assert!(
            serde_json::from_str::<Nine>(
                r#"{"recency_days": 12.5, "frequency": 7, "total_revenue": 1, "avg_order_value": 1,
                    "tenure_days": 4, "active_months": 6, "purchase_velocity": 0.5,
                    "avg_gap_days": null, "std_gap_days": null}"#
            )
            .is_err()
        );
    }
}
