//! The scorer's shared state and the loop that keeps it current: it follows the registry's
//! `production` pointer, catches up with the store, and rescores the customers the store wrote since
//! the last refresh (everyone when the model or `as_of` changed, or when the store no longer lists
//! the changes that far back). Handlers only load the latest population: a model swap or a refresh
//! never blocks or drops a request.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::{NaiveDate, Utc};
use metrics::{counter, gauge, histogram};

use crate::follow::{self, Production};
use crate::population::{Population, as_of_watermark};
use crate::response::Freshness;
use crate::source::FeatureSource;
use crate::{Result, ScorerError};

/// The time features are taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The event-time watermark rounded up to the next midnight (the default: the data is
    /// historical).
    Watermark,
    /// The next midnight of the wall clock.
    Now,
    /// A fixed date (midnight, UTC).
    Date(NaiveDate),
}

impl FromStr for AsOf {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "watermark" => Ok(AsOf::Watermark),
            "now" => Ok(AsOf::Now),
            date => NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map(AsOf::Date)
                .map_err(|_| format!("{date:?}: expected watermark, now or YYYY-MM-DD")),
        }
    }
}

impl AsOf {
    fn resolve(self, watermark_ms: Option<i64>) -> Option<NaiveDate> {
        match self {
            AsOf::Watermark => watermark_ms.and_then(as_of_watermark),
            AsOf::Now => as_of_watermark(Utc::now().timestamp_millis()),
            AsOf::Date(date) => Some(date),
        }
    }
}

/// What the handlers read.
#[derive(Default)]
pub struct Scorer {
    population: ArcSwapOption<Population>,
    production: ArcSwapOption<Production>,
    store_readable: AtomicBool,
    store: ArcSwapOption<featurestore::store::RocksStore>,
}

impl Scorer {
    /// The latest scored population.
    pub fn population(&self) -> Option<Arc<Population>> {
        self.population.load_full()
    }

    /// The latest population, borrowed for a moment (no reference count taken: for a request's
    /// lookup; hold it briefly, as it delays the release of a replaced population).
    pub fn population_guard(&self) -> arc_swap::Guard<Option<Arc<Population>>> {
        self.population.load()
    }

    /// The feature store the population was read from, for one customer's history (the page's
    /// customer view); `None` until it exists.
    pub fn store(&self) -> Option<Arc<featurestore::store::RocksStore>> {
        self.store.load_full()
    }

    /// The production models.
    pub fn production(&self) -> Option<Arc<Production>> {
        self.production.load_full()
    }

    /// Ready: a model is loaded, the last store read succeeded and a population is scored.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        if self.production.load().is_none() {
            return Err("no production model in the registry yet".into());
        }
        if !self.store_readable.load(Ordering::Acquire) {
            return Err("the feature store is not readable".into());
        }
        if self.population.load().is_none() {
            return Err("no customers scored yet".into());
        }
        Ok(())
    }
}

/// What the current population was scored from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scored {
    /// The store's sequence number.
    sequence: u64,
    /// The store's last batch.
    batch: u64,
    /// The model version.
    version: String,
    /// The time the features are taken at.
    as_of: NaiveDate,
}

/// How a refresh went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing changed (or nothing to score yet).
    Unchanged,
    /// Everyone was rescored (a new model or `as_of`, or the first refresh).
    Full {
        /// Customers scored.
        customers: usize,
    },
    /// Only the customers written since the last refresh were rescored.
    Changed {
        /// Customers rescored.
        customers: usize,
    },
}

/// Keeps a [`Scorer`] current.
pub struct Refresher {
    scorer: Arc<Scorer>,
    source: FeatureSource,
    models_dir: PathBuf,
    as_of: AsOf,
    scored: Option<Scored>,
    instance: Option<cluster::Serving>,
}

impl Refresher {
    /// Over `source` and the registry in `models_dir`.
    pub fn new(
        scorer: Arc<Scorer>,
        source: FeatureSource,
        models_dir: PathBuf,
        as_of: AsOf,
    ) -> Self {
        Refresher {
            scorer,
            source,
            models_dir,
            as_of,
            scored: None,
            instance: None,
        }
    }

    /// As the scorer of `instance` (`clv instance`): `as_of` follows the group's watermark (every
    /// partition's mark, wherever it is owned) instead of this store's, and each refresh tells the
    /// instance which store batch is scored (a partition is served once its catch-up is).
    pub fn for_instance(mut self, instance: cluster::Serving) -> Self {
        self.instance = Some(instance);
        self
    }

    /// The event-time watermark `as_of` follows: the group's for an instance, else the store's.
    fn watermark_ms(&self, store: &featurestore::store::RocksStore) -> Result<Option<i64>> {
        match &self.instance {
            Some(instance) => Ok(instance.group_watermark()),
            None => Ok(store.watermark_ms()?),
        }
    }

    /// One round ([`Refresher::refresh`]); returns whether anyone was rescored.
    pub fn tick(&mut self) -> Result<bool> {
        Ok(self.refresh()? != Refresh::Unchanged)
    }

    /// One round: follow `production`, catch up, rescore what changed.
    pub fn refresh(&mut self) -> Result<Refresh> {
        self.follow_production()?;
        let Some(production) = self.scorer.production() else {
            return Ok(Refresh::Unchanged);
        };
        let sequence = match self.source.catch_up() {
            Ok(sequence) => {
                let shared = self.source.shared();
                let current = self.scorer.store.load();
                let same = match (current.as_ref(), shared.as_ref()) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    self.scorer.store.store(shared);
                }
                sequence
            }
            Err(e) => {
                self.scorer.store_readable.store(false, Ordering::Release);
                return Err(e);
            }
        };
        if let Some(scored) = &self.scored
            && scored.sequence == sequence
            && scored.version == production.version
            && (self.as_of != AsOf::Now || Some(scored.as_of) == self.as_of.resolve(None))
            && (self.as_of != AsOf::Watermark
                || self
                    .instance
                    .as_ref()
                    .is_none_or(|i| Some(scored.as_of) == self.as_of.resolve(i.group_watermark())))
        {
            return Ok(Refresh::Unchanged);
        }
        let started = Instant::now();
        let outcome = self.rescore(sequence, &production);
        self.scorer
            .store_readable
            .store(outcome.is_ok(), Ordering::Release);
        let refresh = outcome?;
        let kind = match refresh {
            Refresh::Unchanged => return Ok(refresh),
            Refresh::Full { customers } => ("full", customers),
            Refresh::Changed { customers } => ("changed", customers),
        };
        let Some(population) = self.scorer.population() else {
            return Ok(refresh);
        };
        if let Some(watermark) = population.freshness.watermark {
            gauge!(crate::telemetry::FEATURE_WATERMARK).set(watermark.timestamp() as f64);
        }
        gauge!(crate::telemetry::FEATURES_REFRESHED)
            .set(population.freshness.refreshed_at.timestamp_millis() as f64 / 1000.0);
        gauge!(crate::telemetry::AS_OF)
            .set(contract::epoch_ms(contract::midnight(population.as_of)) as f64 / 1000.0);
        gauge!(crate::telemetry::CUSTOMERS).set(population.len() as f64);
        if let Some(drift) = population.drift(&production) {
            for (feature, psi) in drift.features {
                gauge!(crate::telemetry::FEATURE_DRIFT, "feature" => feature.to_string())
                    .set(psi.unwrap_or(f64::NAN));
            }
            gauge!(crate::telemetry::PREDICTION_DRIFT).set(drift.prediction.unwrap_or(f64::NAN));
        }
        histogram!(crate::telemetry::REFRESH_DURATION).record(started.elapsed().as_secs_f64());
        counter!(crate::telemetry::RESCORED, "refresh" => kind.0).increment(kind.1 as u64);
        tracing::debug!(
            as_of = %population.as_of,
            customers = population.len(),
            rescored = kind.1,
            refresh = kind.0,
            version = %production.version,
            seconds = started.elapsed().as_secs_f64(),
            "scored"
        );
        Ok(refresh)
    }

    /// Reads the store at `sequence` and rescores: only the customers written since the last
    /// refresh when the model and `as_of` are the same and the store still lists those changes,
    /// everyone otherwise.
    fn rescore(&mut self, sequence: u64, production: &Production) -> Result<Refresh> {
        let store = self.source.store()?;
        let watermark_ms = self.watermark_ms(store)?;
        let batch = store.batch_number()?;
        let Some(as_of) = self.as_of.resolve(watermark_ms) else {
            // Nothing ingested yet: nothing to score at the watermark.
            return Ok(Refresh::Unchanged);
        };
        let freshness = Freshness {
            watermark: watermark_ms.and_then(chrono::DateTime::from_timestamp_millis),
            refreshed_at: Utc::now(),
            store_sequence: sequence,
        };
        let current = self.scorer.population();
        let same_scoring = self
            .scored
            .as_ref()
            .is_some_and(|s| s.version == production.version && s.as_of == as_of);
        let changes = match (&current, same_scoring) {
            (Some(_), true) => self
                .scored
                .as_ref()
                .map(|s| store.changes_since(s.batch))
                .transpose()?
                .flatten(),
            _ => None,
        };
        let (population, refresh) = match (current, changes) {
            (Some(current), Some(changes)) => {
                let mut changed = Vec::with_capacity(changes.customers.len());
                for (partition, customer) in &changes.customers {
                    changed.push((*customer, store.get_in(*partition, *customer)?));
                }
                let population = current.update(&changed, production, freshness)?;
                let customers = changed.len();
                (population, Refresh::Changed { customers })
            }
            _ => {
                let mut scoring = Population::scoring(as_of, production, freshness);
                store.for_each_state(|id, state| scoring.push(id, state))?;
                let population = scoring.finish()?;
                let customers = population.len();
                tracing::info!(%as_of, customers, version = %production.version, "scored everyone");
                (population, Refresh::Full { customers })
            }
        };
        self.scorer.population.store(Some(Arc::new(population)));
        if let Some(instance) = &self.instance {
            instance.scored(batch);
        }
        self.scored = Some(Scored {
            sequence,
            batch,
            version: production.version.clone(),
            as_of,
        });
        Ok(refresh)
    }

    fn follow_production(&mut self) -> Result<()> {
        let Some(version) = follow::production_version(&self.models_dir)? else {
            return Ok(());
        };
        let current = self.scorer.production();
        if current.as_ref().is_some_and(|p| p.version == version) {
            return Ok(());
        }
        let loaded = follow::load(&self.models_dir, &version)?;
        if let Some(old) = &current {
            gauge!(crate::telemetry::MODEL_INFO, "name" => old.name.clone(), "version" => old.version.clone())
                .set(0.0);
        }
        gauge!(crate::telemetry::MODEL_INFO, "name" => loaded.name.clone(), "version" => loaded.version.clone())
            .set(1.0);
        tracing::info!(version = %loaded.version, model = %loaded.name, "production model loaded");
        self.scorer.production.store(Some(Arc::new(loaded)));
        Ok(())
    }

    /// Runs [`Refresher::tick`] every `interval` on its own thread until `stop` is set.
    pub fn spawn(
        mut self,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("scorer-refresh".into())
            .spawn(move || {
                let mut last_error = String::new();
                while !stop.load(Ordering::Acquire) {
                    let outcome = self.tick();
                    let ticked = outcome.is_ok();
                    let ready = self.scorer.readiness().is_ok();
                    gauge!(crate::telemetry::READY).set(if ready { 1.0 } else { 0.0 });
                    match outcome {
                        Ok(_) => last_error.clear(),
                        Err(e) => {
                            counter!(crate::telemetry::REFRESH_ERRORS).increment(1);
                            let message = e.to_string();
                            // Said once until it changes (e.g. while ingest has not created the
                            // store yet).
                            if message != last_error {
                                tracing::warn!("refresh: {message}");
                                last_error = message;
                            }
                        }
                    }
                    // A partition that caught up waits for a score to be served (a warm standby
                    // taking over): scored at once, not at the next interval.
                    let until = Instant::now() + interval;
                    while Instant::now() < until && !stop.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(20).min(interval));
                        if ticked
                            && self
                                .instance
                                .as_ref()
                                .is_some_and(cluster::Serving::awaits_scoring)
                        {
                            break;
                        }
                    }
                }
            })
            .map_err(ScorerError::Io)
    }
}
