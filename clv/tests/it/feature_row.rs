//! One definition of the feature row: the JSON the scorer serves, its OpenAPI schema, the training
//! frame's columns, `POST /predict`'s body and the models' inputs all list the row's features, by the
//! same names, in the same order ([`contract::Feature::ALL`]).

use std::sync::Arc;

use chrono::NaiveDate;
use contract::{CustomerState, Extra, Feature, FeatureRow, ModelInputs, Nine, Purchase};
use models::{FeatureSet, Spec};
use serde_json::Value;

fn names(features: &[Feature]) -> Vec<String> {
    features.iter().map(|f| f.name().to_string()).collect()
}

fn state() -> CustomerState {
    let mut state = CustomerState::default();
    for (invoice, day, pounds) in [("1", 10, 20), ("2", 40, 35), ("3", 90, 5)] {
        state.purchases.insert(
            invoice.into(),
            Purchase {
                time_ms: 1_293_840_000_000 + day * contract::MS_PER_DAY,
                revenue_milli: pounds * 1000,
            },
        );
    }
    state
}

fn row() -> FeatureRow {
    let inputs = ModelInputs::example();
    contract::row::RowBuilder::new(&inputs, NaiveDate::from_ymd_opt(2011, 6, 1).unwrap())
        .row(&state())
        .unwrap()
}

/// The property names of a component schema of the OpenAPI document, in order.
fn properties(doc: &utoipa::openapi::OpenApi, schema: &str) -> Vec<String> {
    use utoipa::openapi::{RefOr, schema::Schema};
    let components = doc.components.as_ref().unwrap();
    match components.schemas.get(schema) {
        Some(RefOr::T(Schema::Object(object))) => object.properties.keys().cloned().collect(),
        _ => panic!("{schema} is not an object schema of the document"),
    }
}

#[test]
fn json_openapi_frame_and_models_list_the_same_features_in_the_same_order() {
    let nine = names(Feature::NINE);
    let extra = names(Feature::EXTRA);
    let mut all = nine.clone();
    all.extend(extra.clone());
    assert_eq!(names(Feature::ALL), all);

    // The served JSON: the nine at the top level, then `extra` with the extra ones, in column
    // order, with the row's values.
    let text = serde_json::to_string(&row()).unwrap();
    let mut expected = nine.clone();
    expected.push("extra".into());
    expected.extend(extra.clone());
    let positions: Vec<usize> = expected
        .iter()
        .map(|name| {
            text.find(&format!("\"{name}\":"))
                .unwrap_or_else(|| panic!("{name} not in {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    for (feature, value) in Feature::ALL.iter().zip(row().values()) {
        let served = if Feature::NINE.contains(feature) {
            &json[feature.name()]
        } else {
            &json["extra"][feature.name()]
        };
        assert_eq!(served.as_f64(), value, "{}", feature.name());
    }
    let mut expected = nine.clone();
    expected.push("extra".into());

    // The OpenAPI document: the same names, in column order, with the row's docs.
    let typed = scorer::http::openapi();
    assert_eq!(properties(&typed, "FeatureRow"), expected);
    assert_eq!(properties(&typed, "Extra"), extra);
    assert_eq!(properties(&typed, "Nine"), nine);
    let doc = serde_json::to_value(&typed).unwrap();
    for feature in Feature::NINE {
        assert_eq!(
            doc["components"]["schemas"]["Nine"]["properties"][feature.name()]["description"],
            feature.doc()
        );
    }
    // `POST /predict` takes the nine, every one required.
    let predict = &doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        ["$ref"];
    assert_eq!(predict, "#/components/schemas/Nine");
    let required: Vec<String> = doc["components"]["schemas"]["Nine"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(required, nine);
    assert!(
        doc["components"]["schemas"]["ClvResponse"]["properties"]["features"]
            .to_string()
            .contains("FeatureRow")
    );

    // The training frame: `customer_id`, every feature in column order, the label.
    let labelled = trainer::training::Labelled {
        customer_ids: vec![7],
        rows: vec![row()],
        labels: vec![12.5],
    };
    let frame = labelled.frame().unwrap();
    let columns: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut expected_columns = vec!["customer_id".to_string()];
    expected_columns.extend(all.clone());
    expected_columns.push(contract::LABEL.into());
    assert_eq!(columns, expected_columns);
    // ... and back, unchanged.
    let back = trainer::training::Labelled::from_frame(&frame).unwrap();
    assert_eq!(back.rows, labelled.rows);

    // The models' inputs are features of the row.
    // A learned model reads its columns by position: the set registered versions were fitted on
    // stays as it was when they were (a feature added to the row later is not among them, and this
    // list changes only with a new feature set).
    let learned: Vec<String> = all
        .iter()
        .filter(|n| *n != "naive_6m" && *n != "bgnbd_p_no_purchase")
        .cloned()
        .collect();
    assert_eq!(names(&FeatureSet::All.features()), learned);
    assert_eq!(
        learned[9..],
        [
            "revenue_last_3m",
            "revenue_year_before_window",
            "bgnbd_expected_purchases",
            "bgnbd_p_alive",
            "gg_expected_spend",
            "bgnbd_clv",
            "season_index"
        ]
    );
    assert_eq!(names(&FeatureSet::Nine.features()), nine);
    for spec in trainer::backtest::candidates() {
        assert!(spec.features().iter().all(|f| Feature::ALL.contains(f)));
    }
    assert_eq!(Spec::Naive.features(), vec![Feature::Naive6m]);
}

#[test]
fn a_prediction_depends_on_the_customers_row_alone() {
    // Scoring one customer alone or among others gives the same answer: no model reads the
    // population at prediction time.
    let inputs = ModelInputs::example();
    let builder =
        contract::row::RowBuilder::new(&inputs, NaiveDate::from_ymd_opt(2011, 6, 1).unwrap());
    let one = builder.row(&state()).unwrap();
    let mut other = state();
    other.purchases.insert(
        "9".into(),
        Purchase {
            time_ms: 1_293_840_000_000 + 100 * contract::MS_PER_DAY,
            revenue_milli: 900_000,
        },
    );
    let two = builder.row(&other).unwrap();
    let population = [one, two];
    let spec = Spec::BgNbd {
        scaled: false,
        seasonal: true,
        year_before_weight: 0.2,
        sharpen: 1.05,
    };
    let train = models::TrainingSet {
        rows: &population,
        labels: &[10.0, 100.0],
        population: &population,
    };
    let model = Arc::new(models::Trained::fit(&spec, &train, inputs.clone()).unwrap());
    let together = model.predict(&population).unwrap();
    assert_eq!(model.predict_one(&one).unwrap(), together[0]);
    assert_eq!(model.predict_one(&two).unwrap(), together[1]);
    let nine_only = FeatureRow {
        nine: Nine::from_values(&one.nine.values()).unwrap(),
        extra: Extra::unknown(),
    };
    assert_eq!(nine_only.nine, one.nine);
}
