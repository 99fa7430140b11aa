//! nisshi (tansu renamed), the Kafka-compatible broker the real-broker tests run as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::stack::{Running, free_port, wait_for};

/// nisshi (tansu renamed), a Kafka-compatible broker, as a separate process over TCP.
pub struct Nisshi {
    pub process: Running,
    pub bootstrap: String,
    port: u16,
    storage: String,
    dir: PathBuf,
}

impl Nisshi {
    /// A broker on a free port with `storage` (`memory://nisshi/`, or `sqlite://nisshi.db`: a file in
    /// `dir`, kept across restarts).
    pub fn start(dir: &Path, storage: &str) -> Nisshi {
        let port = free_port();
        let broker = Nisshi {
            process: Nisshi::spawn(dir, port, storage),
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            storage: storage.to_string(),
            dir: dir.to_path_buf(),
        };
        broker.wait_listening();
        broker
    }

    fn spawn(dir: &Path, port: u16, storage: &str) -> Running {
        let listener = format!("tcp://127.0.0.1:{port}");
        Running(
            Command::new(nisshi())
                .current_dir(dir)
                .args([
                    "broker",
                    "--listener-url",
                    &listener,
                    "--advertised-listener-url",
                    &listener,
                    "--storage-engine",
                    storage,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nisshi starts"),
        )
    }

    fn wait_listening(&self) {
        wait_for("nisshi to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&self.bootstrap).is_ok()
        });
    }

    /// Stops the broker process (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.process = Nisshi::spawn(&self.dir, self.port, &self.storage);
        self.wait_listening();
    }
}

/// The nisshi binary: `$CLV_NISSHI`, else where `scripts/setup.sh` installs it, else `nisshi` on the
/// PATH.
pub fn nisshi() -> PathBuf {
    if let Some(path) = std::env::var_os("CLV_NISSHI") {
        return PathBuf::from(path);
    }
    let installed = Path::new("/var/cache/clv-tools/bin/nisshi");
    if installed.exists() {
        return installed.to_path_buf();
    }
    PathBuf::from("nisshi")
}
