//! Where the scorer reads features: the store that ingest writes, shared in the same process, or
//! opened by another process as a RocksDB secondary instance that catches up with the primary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use featurestore::store::RocksStore;

use crate::{Result, ScorerError};

/// The feature store as the scorer sees it.
pub enum FeatureSource {
    /// The primary instance, shared with ingest in this process.
    Shared(Arc<RocksStore>),
    /// A secondary instance of a store another process writes.
    Secondary {
        /// The open instance (none until the primary has created the store).
        store: Option<Arc<RocksStore>>,
        /// The primary's folder.
        path: PathBuf,
        /// The secondary's own folder (its info log and manifest copy).
        secondary_dir: PathBuf,
    },
}

impl FeatureSource {
    /// The store at `path` as a secondary instance keeping its files in `secondary_dir`; opened
    /// now if it exists, else at the first [`FeatureSource::catch_up`] after ingest created it.
    pub fn secondary(path: &Path, secondary_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(secondary_dir)?;
        let mut source = FeatureSource::Secondary {
            store: None,
            path: path.to_path_buf(),
            secondary_dir: secondary_dir.to_path_buf(),
        };
        if path.join("CURRENT").exists() {
            source.catch_up()?;
        }
        Ok(source)
    }

    /// Brings the view up to date: a secondary catches up with the primary, and is reopened when the
    /// primary has created partitions since. Returns the sequence number now visible.
    pub fn catch_up(&mut self) -> Result<u64> {
        match self {
            FeatureSource::Shared(store) => Ok(store.sequence_number()),
            FeatureSource::Secondary {
                store,
                path,
                secondary_dir,
            } => {
                let reopen = match store {
                    Some(open) => open.has_new_column_families()?,
                    None => true,
                };
                if reopen {
                    *store = Some(Arc::new(RocksStore::open_secondary(path, secondary_dir)?));
                }
                let open = store.as_ref().ok_or_else(|| {
                    ScorerError::Unusable(format!("no feature store at {}", path.display()))
                })?;
                if !reopen {
                    open.catch_up()?;
                }
                Ok(open.sequence_number())
            }
        }
    }

    /// The open store, shared (for reading one customer's history on a request), once it exists.
    pub fn shared(&self) -> Option<Arc<RocksStore>> {
        match self {
            FeatureSource::Shared(store) => Some(store.clone()),
            FeatureSource::Secondary { store, .. } => store.clone(),
        }
    }

    /// The open store (an error until the primary has created it).
    pub fn store(&self) -> Result<&RocksStore> {
        match self {
            FeatureSource::Shared(store) => Ok(store),
            FeatureSource::Secondary { store, path, .. } => store.as_deref().ok_or_else(|| {
                ScorerError::Unusable(format!("no feature store at {} yet", path.display()))
            }),
        }
    }
}
