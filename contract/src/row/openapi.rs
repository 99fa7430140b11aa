//! The feature row's OpenAPI schemas (the `openapi` feature): the nine at the top level, the extra
//! features under `extra`, each property documented from the contract.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::row::{Extra, FeatureRow, Nine};

impl PartialSchema for Nine {
    fn schema() -> RefOr<Schema> {
        Nine::object_schema()
            .description(Some(
                "The contract's nine features of a customer as of a time (FEATURES.md).",
            ))
            .into()
    }
}
impl ToSchema for Nine {}

impl PartialSchema for Extra {
    fn schema() -> RefOr<Schema> {
        Extra::object_schema()
            .description(Some(
                "The extra point-in-time features the models read besides the nine.",
            ))
            .into()
    }
}
impl ToSchema for Extra {}

impl PartialSchema for FeatureRow {
    fn schema() -> RefOr<Schema> {
        let object: ObjectBuilder = Nine::object_schema()
            .description(Some(
                "A customer's feature row: the contract's nine at the top level, the extra \
                 features under `extra`.",
            ))
            .property("extra", RefOr::Ref(Ref::from_schema_name("Extra")))
            .required("extra");
        object.into()
    }
}
impl ToSchema for FeatureRow {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FeatureRow")
    }
}
