//! A random forest of 200 trees fitted on 40,000 rows (as `clv train` fits one) predicting rows
//! as smartcore does (each row walks every tree: ~200 MB of nodes, nearly every step a cache
//! miss) and tree by tree ([`models::forest::FlatForest`]), the same numbers to the bit:
//! `cargo run --release --example forest_predict [rows]`.

use std::time::Instant;

use rand08::{Rng, SeedableRng};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

const FEATURES: usize = 9;

fn rows(n: usize, rng: &mut impl Rng) -> Vec<[f64; FEATURES]> {
    (0..n)
        .map(|_| {
            let frequency = (1.0 / rng.r#gen::<f64>().max(1e-3)).floor();
            let spend = frequency * 20.0 * (1.0 + 5.0 * rng.r#gen::<f64>().powi(3));
            let mut row = [0.0; FEATURES];
            row[0] = (rng.r#gen::<f64>() * 700.0).floor();
            row[1] = frequency;
            row[2] = spend;
            row[3] = spend / frequency;
            for (i, v) in row.iter_mut().enumerate().skip(4) {
                *v = rng.r#gen::<f64>() * (i as f64) * spend.sqrt();
            }
            row
        })
        .collect()
}

fn matrix(rows: &[[f64; FEATURES]]) -> DenseMatrix<f64> {
    let data = (0..FEATURES)
        .flat_map(|f| rows.iter().map(move |r| r[f]))
        .collect();
    DenseMatrix::new(rows.len(), FEATURES, data, true).expect("shape")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut rng = rand08::rngs::StdRng::seed_from_u64(7);
    let train = rows(40_000, &mut rng);
    let y: Vec<f64> = train
        .iter()
        .map(|r| r[2] * (0.5 + rng.r#gen::<f64>()))
        .collect();
    let started = Instant::now();
    let forest = RandomForestRegressor::fit(
        &matrix(&train),
        &y,
        RandomForestRegressorParameters::default()
            .with_n_trees(200)
            .with_min_samples_leaf(5)
            .with_seed(42),
    )
    .expect("fit");
    println!("fit: {:.1} s", started.elapsed().as_secs_f64());
    let test = rows(n, &mut rng);
    let started = Instant::now();
    let unsorted = forest.predict(&matrix(&test)).expect("predict");
    let unsorted_s = started.elapsed().as_secs_f64();
    let x: Vec<f64> = (0..FEATURES)
        .flat_map(|f| test.iter().map(move |r| r[f]))
        .collect();
    let started = Instant::now();
    let flat = models::forest::FlatForest::read(&forest, FEATURES).expect("a forest");
    let read_s = started.elapsed().as_secs_f64();
    let flat_predicted = flat.predict(&x, n);
    let flat_s = started.elapsed().as_secs_f64();
    assert_eq!(unsorted, flat_predicted, "the same predictions to the bit");
    println!(
        "{n} rows on one core: smartcore (row by row) {unsorted_s:.2} s ({:.0} rows/s); tree by \
         tree {flat_s:.2} s ({:.0} rows/s, reading the trees {read_s:.2} s of it): {:.1}x",
        n as f64 / unsorted_s,
        n as f64 / flat_s,
        unsorted_s / flat_s
    );
}
