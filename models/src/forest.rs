//! A random forest's trees read out of smartcore's model and predicted tree by tree.
//!
//! smartcore predicts row by row, each row walking all of the trees: a forest of 200 trees fitted
//! on 40,000 rows is ~200 MB of nodes, so nearly every step down a tree missed the cache (about
//! 3,300 rows a second a core). Here each tree predicts a block of rows before the next tree
//! does, with the tree in the cache; every row's sum is taken over the trees in the same order,
//! so the predictions are smartcore's to the bit (tested; `cargo run --release --example
//! forest_predict` measures both). smartcore does not expose its trees: they are read from its
//! serialized form (postcard) into the mirror of its 0.7 layout below; a model that does not read
//! back as a well-formed forest is predicted by smartcore itself.

use std::marker::PhantomData;

use serde::Deserialize;
use smartcore::ensemble::random_forest_regressor::RandomForestRegressor;
use smartcore::linalg::basic::matrix::DenseMatrix;

/// The forest type `clv train` fits.
pub type SmartForest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// Rows predicted by one tree before the next: their sums stay in the first-level cache.
const BLOCK_ROWS: usize = 2_048;

// The mirror of smartcore 0.7's serialized forest, field for field (postcard is positional).
#[derive(Deserialize)]
struct Regressor {
    forest_regressor: Option<Forest>,
}

#[derive(Deserialize)]
struct Forest {
    trees: Option<Vec<Tree>>,
    _num_features: Option<usize>,
    _samples: Option<Vec<Vec<bool>>>,
}

#[derive(Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    _parameters: Option<TreeParameters>,
    _depth: u16,
    _root_mass: f64,
    _tx: PhantomData<()>,
    _ty: PhantomData<()>,
    _x: PhantomData<()>,
    _y: PhantomData<()>,
}

#[derive(Deserialize)]
struct TreeParameters {
    _max_depth: Option<u16>,
    _min_samples_leaf: usize,
    _min_samples_split: usize,
    _seed: Option<u64>,
    _splitter: Splitter,
}

#[derive(Deserialize)]
enum Splitter {
    _Random,
    _Best,
}

#[derive(Deserialize)]
struct Node {
    output: f64,
    split_feature: usize,
    split_value: Option<f64>,
    _split_score: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

/// One node: a leaf's output, or a split (`feature`'s value `<= threshold` goes to `low`).
#[derive(Debug, Clone, Copy)]
struct Flat {
    feature: u32,
    low: u32,
    high: u32,
    /// The split value (NaN: every row goes high, as smartcore compares) or the leaf's output.
    value: f64,
}

const LEAF: u32 = u32::MAX;

/// A forest's trees, flat, for prediction.
#[derive(Debug)]
pub struct FlatForest {
    trees: Vec<Vec<Flat>>,
    features: usize,
}

impl FlatForest {
    /// The trees of `model`, which reads `features` features; `None` if the model does not read
    /// back as a forest whose every walk ends at a leaf (every child after its parent, every
    /// feature within `features`).
    pub fn read(model: &SmartForest, features: usize) -> Option<Self> {
        let bytes = postcard::to_stdvec(model).ok()?;
        let regressor: Regressor = postcard::from_bytes(&bytes).ok()?;
        let trees = regressor.forest_regressor?.trees?;
        if trees.is_empty() {
            return None;
        }
        let trees = trees
            .into_iter()
            .map(|tree| flatten(tree.nodes, features))
            .collect::<Option<Vec<_>>>()?;
        Some(FlatForest { trees, features })
    }

    /// The mean of the trees' outputs for each of the `n` rows of `x` (features column-major).
    pub fn predict(&self, x: &[f64], n: usize) -> Vec<f64> {
        debug_assert_eq!(x.len(), n * self.features);
        let mut sums = vec![0.0f64; n];
        for start in (0..n).step_by(BLOCK_ROWS) {
            let end = (start + BLOCK_ROWS).min(n);
            for tree in &self.trees {
                for (row, sum) in (start..end).zip(&mut sums[start..end]) {
                    let mut node = &tree[0];
                    while node.low != LEAF {
                        let value = x[node.feature as usize * n + row];
                        node = &tree[if value <= node.value {
                            node.low as usize
                        } else {
                            node.high as usize
                        }];
                    }
                    *sum += node.value;
                }
            }
        }
        let trees = self.trees.len() as f64;
        sums.into_iter().map(|s| s / trees).collect()
    }
}

fn flatten(nodes: Vec<Node>, features: usize) -> Option<Vec<Flat>> {
    if nodes.is_empty() || nodes.len() >= LEAF as usize {
        return None;
    }
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| match (node.true_child, node.false_child) {
            (None, _) => Some(Flat {
                feature: 0,
                low: LEAF,
                high: LEAF,
                value: node.output,
            }),
            (Some(low), Some(high))
                if low > i && high > i && low < nodes.len() && high < nodes.len() =>
            {
                (node.split_feature < features).then_some(Flat {
                    feature: node.split_feature as u32,
                    low: low as u32,
                    high: high as u32,
                    value: node.split_value.unwrap_or(f64::NAN),
                })
            }
            _ => None,
        })
        .collect()
}
