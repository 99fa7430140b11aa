//! Following the registry's `production` pointer: the models the scorer serves.

use std::path::Path;

use contract::Feature;
use contract::segment::ValueTiers;
use models::Trained;
use models::registry::Registry;

use crate::{Result, ScorerError};

/// The production version's models.
pub struct Production {
    /// The registry version.
    pub version: String,
    /// The champion's name.
    pub name: String,
    /// Months of the label window the model predicts.
    pub horizon_months: u32,
    /// The champion (reads the nine features and the extra ones).
    pub model: Trained,
    /// The best model that reads only the nine contract features (`POST /predict`).
    pub nine: Trained,
    /// Where the champion's value tiers start (none for versions trained before segments).
    pub tiers: Option<ValueTiers>,
    /// The calibration of the champion's intervals (none for versions trained before them).
    pub interval: Option<models::interval::Calibration>,
    /// The training population's distributions, for drift (none for versions trained before it, or
    /// whose reference does not fit its bins).
    pub drift: Option<models::drift::Reference>,
    /// What the web page's model card says of the version.
    pub card: Card,
}

/// The model card: where a version comes from and how it did on its test fold.
#[derive(Debug, Clone, Default)]
pub struct Card {
    /// The production cutoff (its model knows the data before it).
    pub cutoff: String,
    /// The day its training data ends (unknown for older versions).
    pub data_end: Option<String>,
    /// When it was trained.
    pub created: String,
    /// The model the procedure chose on the data before the cutoff (its test), when it is named.
    pub tested: Option<String>,
    /// Its test-fold metrics: the procedure's honest test.
    pub test: Option<models::metrics::Metrics>,
    /// BG/NBD + Gamma-Gamma's on the same fold (`bgnbd_gg`).
    pub reference: Option<models::metrics::Metrics>,
    /// The champion's cumulative gains on the test fold.
    pub gains: Option<Vec<(f64, f64)>>,
    /// The version's HTML report, when it has one.
    pub report: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Production {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Production")
            .field("version", &self.version)
            .field("name", &self.name)
            .finish()
    }
}

/// The version `production` points at in the registry at `dir`, if any.
pub fn production_version(dir: &Path) -> Result<Option<String>> {
    Ok(Registry::open(dir)?.production()?)
}

/// Loads `version` from the registry at `dir`.
pub fn load(dir: &Path, version: &str) -> Result<Production> {
    let registry = Registry::open(dir)?;
    let metadata = registry.metadata(version)?;
    let path = registry.path(version);
    let model = Trained::load(&path.join("model.json"))?;
    let nine = Trained::load(&path.join("model_nine.json"))?;
    if nine
        .spec
        .features()
        .iter()
        .any(|f| !Feature::NINE.contains(f))
    {
        return Err(ScorerError::Unusable(format!(
            "{version}: model_nine.json reads more than the nine features"
        )));
    }
    let data_end = metadata
        .data_end
        .as_deref()
        .and_then(|end| end.parse::<chrono::NaiveDate>().ok());
    if let (Some(fitted), Some(end)) = (model.inputs.fitted_at, data_end)
        && fitted < end
    {
        tracing::warn!(
            "{version}: its BG/NBD inputs were fitted at {fitted}, before the end of its data \
             ({end}): it serves an older fit than the data it was trained from"
        );
    }
    let test = |model: &str| metadata.score(model, "test").map(|s| s.metrics);
    let card = Card {
        cutoff: metadata.cutoff.clone(),
        data_end: metadata.data_end.clone(),
        created: metadata.created.clone(),
        test: test(metadata.tested.as_deref().unwrap_or(&metadata.model)),
        tested: metadata.tested.clone(),
        reference: test("bgnbd_gg"),
        gains: metadata.gains.clone(),
        report: Some(path.join("report.html")).filter(|p| p.is_file()),
    };
    Ok(Production {
        card,
        version: version.to_string(),
        name: metadata.model,
        horizon_months: metadata.horizon_months,
        model,
        nine,
        tiers: metadata.value_tiers,
        interval: metadata.interval,
        drift: metadata.drift.filter(|reference| {
            let fits = reference.fits();
            if !fits {
                tracing::warn!("{version}: its drift reference does not fit its bins; no drift");
            }
            fits
        }),
    })
}
