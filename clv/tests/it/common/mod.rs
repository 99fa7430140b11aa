//! Test support: the real dataset from `../shared/data`, decompressed once into the target folder, and
//! running the `clv` binary.

pub mod nisshi;
pub mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The compressed real data: `$CLV_REAL_DATA`, else `../shared/data/online_retail_II.csv.xz` from the
/// workspace root.
pub fn real_data_xz() -> PathBuf {
    if let Some(path) = std::env::var_os("CLV_REAL_DATA") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/online_retail_II.csv.xz")
}

/// The real data as a CSV file in the target folder (never beside the source), decompressed on first
/// use. Safe when several test processes ask at once: each writes its own file and renames it in place.
pub fn real_csv() -> PathBuf {
    let xz = real_data_xz();
    let input = std::fs::File::open(&xz).unwrap_or_else(|e| {
        panic!(
            "the real dataset is needed at {} ({e}); set CLV_REAL_DATA to its path",
            xz.display()
        )
    });
    // Keyed by the compressed file's size, so that another copy of the data is not mistaken for it.
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-data");
    let csv = dir.join(format!("online_retail_II-{size}.csv"));
    if csv.exists() {
        return csv;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join(format!("online_retail_II.csv.{}.tmp", std::process::id()));
    let mut reader = xz2::read::XzDecoder::new(std::io::BufReader::new(input));
    let mut out = std::fs::File::create(&partial).unwrap();
    std::io::copy(&mut reader, &mut out).unwrap();
    drop(out);
    std::fs::rename(&partial, &csv).unwrap();
    csv
}

/// Runs `clv` with `args`; panics with its output when it fails.
pub fn clv(args: &[&str]) -> String {
    let output = clv_output(args);
    assert!(
        output.status.success(),
        "clv {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Generates a dataset of `customers` with `seed` into `dir/data.csv` (`clv data generate`).
pub fn generate(dir: &Path, customers: u32, seed: u64) -> PathBuf {
    let data = dir.join("data.csv");
    clv(&[
        "data",
        "generate",
        "--customers",
        &customers.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        data.to_str().unwrap(),
    ]);
    data
}

/// Generates 300 customers (seed 5) trading from `start` to `end` into `dir/<name>.csv`.
pub fn generate_between(dir: &Path, name: &str, start: &str, end: &str) -> String {
    let data = dir.join(format!("{name}.csv"));
    clv(&[
        "data",
        "generate",
        "--customers",
        "300",
        "--seed",
        "5",
        "--start",
        start,
        "--end",
        end,
        "--out",
        data.to_str().unwrap(),
    ]);
    data.to_str().unwrap().to_string()
}

/// Runs `clv` with `args` and returns what it did, success or not.
pub fn clv_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("clv runs")
}

/// Sum of a money column in exact thousandths of a pound.
pub fn milli_sum(frame: &polars::prelude::DataFrame, column: &str) -> i64 {
    frame
        .column(column)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .map(|x| (x * 1000.0).round() as i64)
        .sum()
}

/// Reads any Parquet file.
pub fn read_parquet(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::SerReader;
    polars::prelude::ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// What the registered model predicts from the offline features of `data` at `as_of`, by customer.
pub fn expected_clv(
    data: &Path,
    models: &Path,
    version: &str,
    as_of: chrono::NaiveDate,
) -> Vec<(u64, f64)> {
    let loaded = dataset::normalised::load(data, &indicatif::ProgressBar::hidden()).unwrap();
    let histories =
        trainer::training::Histories::from_lines(polars::prelude::IntoLazy::lazy(loaded.frame))
            .unwrap();
    let model = models::Trained::load(&models.join(version).join("model.json")).unwrap();
    let builder = model.rows(as_of);
    let (ids, rows): (Vec<u64>, Vec<contract::FeatureRow>) = histories
        .customers()
        .iter()
        .filter_map(|(id, state)| Some((*id, builder.row(state)?)))
        .unzip();
    let predicted = model.predict(&rows).unwrap();
    ids.into_iter().zip(predicted).collect()
}

/// The Python client third-party producers use: `$CLV_CONFLUENT_PYTHON`, else the virtualenv
/// `scripts/setup.sh` installs confluent-kafka into.
pub fn confluent_python() -> PathBuf {
    if let Some(path) = std::env::var_os("CLV_CONFLUENT_PYTHON") {
        return path.into();
    }
    let tools = std::env::var_os("CLV_TOOLS_DIR").unwrap_or_else(|| "/var/cache/clv-tools".into());
    Path::new(&tools).join("confluent/bin/python")
}

/// Sends every event of `data` (the lines with a customer, encoded as `clv replay` does) to `topic`
/// with a confluent-kafka (Python) producer left at its defaults, as a third party would: librdkafka's
/// default partitioner (`consistent_random`, CRC32 of the key) instead of the contract's murmur2, so
/// most events land on another partition than their customer's. Returns (events sent, how many of
/// them the producer put on another partition than `contract::partition` gives over `partitions`).
pub fn produce_with_default_partitioner(
    data: &Path,
    bootstrap: &str,
    topic: &str,
    partitions: u32,
) -> (usize, usize) {
    let lines = dataset::read::read_raw(data, &indicatif::ProgressBar::hidden())
        .unwrap()
        .lines;
    let events = data.with_extension("events.tsv");
    let mut out = String::new();
    let mut home = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if let Some(event) = ingest::replay::event_for_line(n as u64 + 1, line) {
            let json = String::from_utf8(event.encode()).unwrap();
            out.push_str(&format!("{}\t{json}\n", event.customer_id));
            home.push(contract::partition::of_customer(
                event.customer_id,
                partitions,
            ));
        }
    }
    std::fs::write(&events, out).unwrap();
    let script = r#"
import json, sys
from confluent_kafka import Producer
bootstrap, topic, path = sys.argv[1], sys.argv[2], sys.argv[3]
producer = Producer({"bootstrap.servers": bootstrap})  # the default partitioner
placed = []
def delivered(err, msg):
    if err is not None:
        raise SystemExit(f"delivery failed: {err}")
for line in open(path):
    key, value = line.rstrip("\n").split("\t", 1)
    producer.produce(topic, key=key.encode(), value=value.encode(),
                     on_delivery=lambda err, msg, i=len(placed): placed.__setitem__(i, msg.partition()) if err is None else delivered(err, msg))
    placed.append(None)
    producer.poll(0)
producer.flush(60)
print(json.dumps(placed))
"#;
    let python = confluent_python();
    let output = Command::new(&python)
        .args(["-c", script, bootstrap, topic, events.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let placed: Vec<Option<i32>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(placed.len(), home.len());
    let misrouted = placed
        .iter()
        .zip(&home)
        .filter(|(placed, home)| placed.expect("every event delivered") != **home)
        .count();
    (home.len(), misrouted)
}
