//! `clv demo --instances N`: the main job scaled out on the embedded default. Once the data is
//! streamed and a model trained, the demo's store is written as checkpoints of its partitions
//! (the embedded broker keeps only ~5 MiB of each, so the instances could not restore the data from
//! the topic), and N `clv instance` processes are started on the same embedded broker, each with its
//! own store, a warm standby of its neighbours' partitions and the shared checkpoint folder. Each
//! one's address and process ID is printed; SIGKILL one while the demo runs and the others take its
//! partitions over.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use featurestore::store::{RocksStore, SourceId};

use crate::server::Stop;

/// One `clv instance` child.
struct Member {
    id: String,
    address: SocketAddr,
    child: Child,
    log: PathBuf,
    /// Whether its exit was reported.
    gone: bool,
}

/// A free local address (the first instance takes the demo's own).
fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Whether `GET {address}/ready` answers 200.
fn ready(agent: &ureq::Agent, address: SocketAddr) -> bool {
    agent
        .get(format!("http://{address}/ready"))
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// Whether the group, as the instance at `address` sees it, serves every one of `partitions`.
fn covered(agent: &ureq::Agent, address: SocketAddr, partitions: i32) -> bool {
    let Ok(mut response) = agent.get(format!("http://{address}/cluster")).call() else {
        return false;
    };
    let Ok(cluster) = response.body_mut().read_json::<serde_json::Value>() else {
        return false;
    };
    cluster["unserved"]
        .as_object()
        .is_some_and(|u| u.is_empty())
        && cluster["owners"]
            .as_object()
            .is_some_and(|o| o.len() == partitions as usize)
}

/// Writes a checkpoint of every partition of `store` into `dir`, for the instances to start from.
fn checkpoint_everything(store: &RocksStore, source: &SourceId, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for partition in store.partitions() {
        store
            .export_partition(source, partition, dir)
            .with_context(|| format!("writing partition {partition}'s checkpoint"))?;
    }
    Ok(())
}

/// What the group needs from the demo.
pub(super) struct GroupDemo<'a> {
    /// The demo's folder.
    pub dir: &'a Path,
    /// The demo's store (every partition), written as checkpoints.
    pub store: &'a RocksStore,
    /// The embedded broker's config and state folder (where the instances find its address).
    pub broker: ingest::broker::BrokerConfig,
    pub state_dir: PathBuf,
    /// The registry every instance follows.
    pub models_dir: PathBuf,
    /// The first instance listens here (the demo's own address).
    pub first: SocketAddr,
    /// How many instances.
    pub instances: u8,
    /// The topic's partition count.
    pub partitions: i32,
}

impl GroupDemo<'_> {
    /// Starts the instances, prints where they are, waits until `stop`, then stops them.
    pub(super) fn run(self, stop: &Stop, exit_when_ready: bool) -> anyhow::Result<()> {
        let checkpoints = self.dir.join("checkpoints");
        let topic = "transactions";
        let source = SourceId {
            cluster: self.broker.cluster_id(topic)?,
            topic: topic.into(),
        };
        checkpoint_everything(self.store, &source, &checkpoints)?;
        let exe = std::env::current_exe().context("finding the clv binary")?;
        let mut members = Vec::new();
        for i in 1..=self.instances {
            let id = format!("i-{i}");
            let address = match i {
                1 => self.first,
                _ => free_address()?,
            };
            let log = self.dir.join(format!("{id}.log"));
            let out = std::fs::File::create(&log)?;
            let child = Command::new(&exe)
                .arg("instance")
                .args(["--state-dir", &self.state_dir.display().to_string()])
                .args(["--partitions", &self.partitions.to_string()])
                .args(["--group", "clv-instances"])
                .args([
                    "--db",
                    &self.dir.join("instances").join(&id).display().to_string(),
                ])
                .args(["--models-dir", &self.models_dir.display().to_string()])
                .args(["--listen", &address.to_string()])
                .args(["--instance-id", &id])
                .args(["--session-timeout-ms", "6000"])
                .args(["--standby-replicas", "1"])
                .args(["--checkpoint-dir", &checkpoints.display().to_string()])
                // Its standard input is a pipe from this process: when the demo ends, however it
                // ends, the pipe closes and the instance stops.
                .arg("--stop-with-stdin")
                .stdin(Stdio::piped())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting instance {id}"))?;
            members.push(Member {
                id,
                address,
                child,
                log,
                gone: false,
            });
        }
        let outcome = self.serve(&mut members, stop, exit_when_ready);
        for member in members.iter_mut().filter(|m| !m.gone) {
            // SIGTERM (each leaves the group and withdraws its record), else SIGKILL.
            let terminated = Command::new("kill")
                .args(["-TERM", &member.child.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !terminated {
                let _ = member.child.kill();
            }
        }
        for member in &mut members {
            let _ = member.child.wait();
        }
        outcome
    }

    /// Waits for every instance to be ready, prints the group, then watches it until `stop`.
    fn serve(
        &self,
        members: &mut [Member],
        stop: &Stop,
        exit_when_ready: bool,
    ) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let started = Instant::now();
        // Every instance ready, and the group serving every partition as each one sees it.
        while !members
            .iter()
            .all(|m| ready(&agent, m.address) && covered(&agent, m.address, self.partitions))
        {
            anyhow::ensure!(!stop.is_stopped(), "stopped");
            for m in members.iter_mut() {
                if let Some(status) = m.child.try_wait()? {
                    anyhow::bail!(
                        "instance {} exited ({status}): see {}",
                        m.id,
                        m.log.display()
                    );
                }
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the instances were not ready within 5 minutes: see their logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "\n{} instances serve the group (each answers for any customer; the page and the lists are the group's):",
            members.len()
        );
        println!("  id    address                  pid      log");
        for m in members.iter() {
            println!(
                "  {:<5} http://{:<18} {:<8} {}",
                m.id,
                m.address,
                m.child.id(),
                m.log.display()
            );
        }
        let first = members[0].address;
        println!("\ntry:");
        println!("  curl http://{first}/cluster   (who serves which partition, the standbys)");
        println!("  curl 'http://{first}/customers/top?k=10'");
        if let Some(second) = members.get(1) {
            println!(
                "  kill -9 {}   (SIGKILL {}: about 7 s later the others serve its partitions from their warm standbys)",
                second.child.id(),
                second.id
            );
        }
        println!("Ctrl-C stops everything.");
        if exit_when_ready {
            stop.stop();
        }
        while !stop.is_stopped() {
            for m in members.iter_mut().filter(|m| !m.gone) {
                if let Some(status) = m.child.try_wait()? {
                    m.gone = true;
                    println!(
                        "instance {} exited ({status}); the others take its partitions over",
                        m.id
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}
