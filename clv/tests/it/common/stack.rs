//! A stack of `clv` processes for end-to-end tests: the embedded broker (or an external one), ingest,
//! replay, and the store they fill, in a temporary folder.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offline::states::differences;
use polars::prelude::DataFrame;

use super::*;

/// A child process killed when dropped (so a failing test leaves nothing running).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(args: &[&str]) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_clv"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clv starts"),
    )
}

/// A child whose stdout is read as it comes, killed when dropped. A long-running process that
/// prints more than a pipe holds (64 KiB: three training runs' tables) would otherwise block on its
/// next line and stop working while the test waits for it.
pub struct Drained {
    child: Running,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// `clv` with `args`, its stdout drained into a buffer ([`Drained`]).
pub fn spawn_drained(args: &[&str]) -> Drained {
    use std::io::BufRead;
    let mut child = spawn(args);
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = output.clone();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    Drained {
        child,
        output,
        reader: Some(reader),
    }
}

impl Drained {
    /// What it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGKILL, its exit awaited.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    /// SIGTERM; its exit awaited (it must succeed); everything it printed.
    pub fn sigterm(&mut self) -> String {
        sigterm(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.output()
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`sigterm`], and how long the child took to exit after it.
pub fn sigterm_timed(child: &mut Running) -> (String, Duration) {
    let asked = Instant::now();
    let out = sigterm(child);
    (out, asked.elapsed())
}

pub fn sigterm(child: &mut Running) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    out
}

pub fn http_get(addr: &str, path: &str) -> String {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

/// GET `path` (the whole response), or why it failed (a server not listening yet).
pub fn try_http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn count_with_customer(path: &Path) -> usize {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .filter(|r| !r.as_ref().unwrap()[6].is_empty())
        .count()
}

/// The broker a stack talks to: the embedded one (`clv broker`, found through its address file) or a
/// separate Kafka-compatible broker given with `--brokers` (whose process the test may own itself).
pub enum Broker {
    Embedded {
        _process: Running,
    },
    External {
        _process: Option<Running>,
        bootstrap: String,
    },
}

/// A broker process, a dataset and a feature-store folder, in a temporary folder.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub events: usize,
    pub broker: Broker,
}

impl Stack {
    /// A generated dataset of `customers` on the embedded broker with `partitions` partitions.
    pub fn start(customers: u32, seed: u64, partitions: u32) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let data = generate(dir.path(), customers, seed);
        let events = count_with_customer(&data);
        Stack::embedded(dir, data, events, partitions)
    }

    /// `data` (with `events` lines that have a customer ID) on a fresh embedded broker.
    pub fn embedded(
        dir: tempfile::TempDir,
        data: PathBuf,
        events: usize,
        partitions: u32,
    ) -> Stack {
        let state = dir.path().join("state");
        let broker = spawn(&[
            "broker",
            "--state-dir",
            state.to_str().unwrap(),
            "--partitions",
            &partitions.to_string(),
        ]);
        wait_for("the broker's address file", Duration::from_secs(30), || {
            state.join("broker.addr").exists()
        });
        Stack {
            dir,
            data,
            events,
            broker: Broker::Embedded { _process: broker },
        }
    }

    /// `data` (with `events` lines that have a customer ID) on a broker at `bootstrap` that the stack
    /// owns (`process`) or the test does (`None`).
    pub fn external(
        dir: tempfile::TempDir,
        data: PathBuf,
        events: usize,
        bootstrap: String,
        process: Option<Running>,
    ) -> Stack {
        Stack {
            dir,
            data,
            events,
            broker: Broker::External {
                _process: process,
                bootstrap,
            },
        }
    }

    /// `clv train` on the stack's data into `models/` of its folder; that folder.
    pub fn train(&self) -> String {
        let models = self.path("models");
        clv(&[
            "train",
            "--input",
            self.data.to_str().unwrap(),
            "--models-dir",
            &models,
        ]);
        models
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    pub fn bootstrap(&self) -> String {
        match &self.broker {
            Broker::Embedded { .. } => {
                std::fs::read_to_string(self.dir.path().join("state/broker.addr")).unwrap()
            }
            Broker::External { bootstrap, .. } => bootstrap.clone(),
        }
    }

    /// Static group membership, so that a restarted ingest gets its partitions back at once.
    pub fn membership_args(&self) -> Vec<String> {
        vec!["--instance-id".into(), "ingest-1".into()]
    }

    /// `--brokers` for an external broker (the embedded one is found through the state folder).
    pub fn broker_args(&self) -> Vec<String> {
        match &self.broker {
            Broker::Embedded { .. } => vec![],
            Broker::External { bootstrap, .. } => vec!["--brokers".into(), bootstrap.clone()],
        }
    }

    /// `clv ingest` with the stack's broker and store; one fresh metrics port each.
    pub fn ingest_args(&self, extra: &[&str]) -> Vec<String> {
        let fixed = [
            "ingest".to_string(),
            "--state-dir".into(),
            self.path("state"),
            "--db".into(),
            self.path("featurestore"),
            "--session-timeout-ms".into(),
            "6000".into(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{}", free_port()),
        ];
        fixed
            .into_iter()
            .chain(self.broker_args())
            .chain(self.membership_args())
            .chain(extra.iter().map(|a| a.to_string()))
            .collect()
    }

    /// A running ingest and the address of its metrics.
    /// Starts `clv ingest` and returns once its metrics are served: by then its signal handler is
    /// installed, so a SIGTERM right after this stops it gracefully (a SIGTERM in the first
    /// milliseconds of a process, before any handler, ends it with the default action).
    pub fn spawn_ingest(&self) -> (Running, String) {
        self.spawn_ingest_with(self.ingest_args(&[]))
    }

    /// [`Stack::spawn_ingest`] with these arguments (from [`Stack::ingest_args`], changed).
    pub fn spawn_ingest_with(&self, args: Vec<String>) -> (Running, String) {
        let at = args.iter().position(|a| a == "--metrics-addr").unwrap();
        let metrics = args[at + 1].clone();
        let mut ingest = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        wait_for("ingest's metrics", Duration::from_secs(30), || {
            if let Ok(Some(exit)) = ingest.0.try_wait() {
                panic!("ingest exited at start: {exit}");
            }
            try_http_get(&metrics, "/metrics").is_ok()
        });
        (ingest, metrics)
    }

    pub fn ingest_until_caught_up(&self) -> String {
        let args = self.ingest_args(&["--until-caught-up"]);
        clv(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn replay_args(&self) -> Vec<String> {
        [
            "replay",
            "--state-dir",
            &self.path("state"),
            "--input",
            self.data.to_str().unwrap(),
            "--max-lag",
            "15000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(self.broker_args())
        .collect()
    }

    pub fn replay(&self) -> String {
        clv(&self
            .replay_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>())
    }

    /// Stops a running ingest (SIGTERM), finishes with `--until-caught-up`, checks that every event
    /// was applied exactly once between the two and that the store equals the offline snapshot at both
    /// cutoffs; returns the second ingest's summary.
    pub fn stop_and_finish(&self, ingest: &mut Running) -> String {
        let during = sigterm(ingest);
        let rest = self.ingest_until_caught_up();
        assert_eq!(
            applied(&during) + applied(&rest),
            self.events as u64,
            "{during}\n{rest}"
        );
        for cutoff in ["2010-12-01", "2011-06-01"] {
            self.store_equals_offline(cutoff);
        }
        rest
    }

    /// The watermark FEATURES.md's rule gives (`contract::watermark`) for these offline histories,
    /// each customer in the partition the store (read as a secondary instance) holds it in.
    pub fn expected_watermark(&self, histories: &trainer::training::Histories) -> i64 {
        let secondary = self.dir.path().join("watermark-reader");
        let store = featurestore::store::RocksStore::open_secondary(
            Path::new(&self.path("featurestore")),
            &secondary,
        )
        .unwrap();
        let partitions = store.partitions();
        let mut marks: std::collections::BTreeMap<i32, contract::watermark::PartitionMark> =
            Default::default();
        for (id, state) in histories.customers() {
            let Some(latest) = state.purchases.values().map(|p| p.time_ms).max() else {
                continue;
            };
            let partition = partitions
                .iter()
                .copied()
                .find(|p| store.get_in(*p, *id).unwrap().is_some())
                .unwrap_or_else(|| panic!("customer {id} is not in the store"));
            marks.entry(partition).or_default().observe(*id, latest);
        }
        contract::watermark::watermark(marks.values()).unwrap()
    }

    /// The snapshot from the store at `cutoff`, checked equal to the offline one for every customer.
    pub fn store_equals_offline(&self, cutoff: &str) -> DataFrame {
        let online = self.path(&format!("online-{cutoff}.parquet"));
        let offline = self.path(&format!("offline-{cutoff}.parquet"));
        clv(&[
            "snapshot",
            "--cutoff",
            cutoff,
            "--db",
            &self.path("featurestore"),
            "--out",
            &online,
        ]);
        clv(&[
            "snapshot",
            "--cutoff",
            cutoff,
            "--input",
            self.data.to_str().unwrap(),
            "--out",
            &offline,
        ]);
        let (online, offline) = (
            read_parquet(Path::new(&online)),
            read_parquet(Path::new(&offline)),
        );
        assert!(
            offline.height() > 10,
            "{cutoff}: {} customers",
            offline.height()
        );
        let diff = differences(&offline, &online, 20);
        assert!(diff.is_empty(), "{cutoff}: {diff:#?}");
        online
    }
}

/// Every event ingest has counted (any outcome), from its metrics page at `addr` (0 before it
/// listens).
pub fn events_counted(addr: &str) -> u64 {
    try_http_get(addr, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("clv_ingest_events_total{")
                || l.starts_with("clv_ingest_events_read_again_total ")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The events applied, summed over classes, of an ingest summary ("applied {\"purchase\": N, …}").
pub fn applied(summary: &str) -> u64 {
    summary
        .split("applied {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap_or_else(|| panic!("no applied counts in {summary}"))
        .split(", ")
        .filter_map(|kv| kv.split(": ").nth(1)?.parse::<u64>().ok())
        .sum()
}
