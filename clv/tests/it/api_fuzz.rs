//! schemathesis (from PyPI; `scripts/setup.sh` installs it) against the live scorer's own
//! `/openapi.json`, every check and phase: zero failures. The scorer serves a store the streaming path
//! filled and a model `clv train` registered, so that 200s, 404s and errors are all exercised.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::stack::*;

/// The schemathesis CLI: `$CLV_SCHEMATHESIS`, else where `scripts/setup.sh` installs it.
fn schemathesis() -> PathBuf {
    std::env::var_os("CLV_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/clv-tools/schemathesis/bin/st"))
}

#[test]
fn schemathesis_finds_nothing_against_the_live_scorer() {
    let stack = Stack::start(150, 31, 2);
    let (mut ingest, metrics) = stack.spawn_ingest();
    stack.replay();
    wait_for(
        "ingest to apply every event",
        Duration::from_secs(60),
        || events_counted(&metrics) >= stack.events as u64,
    );
    let models = stack.train();
    let addr = format!("127.0.0.1:{}", free_port());
    let _serve = spawn(&[
        "serve",
        "--db",
        &stack.path("featurestore"),
        "--models-dir",
        &models,
        "--listen",
        &addr,
        "--refresh-seconds",
        "0.2",
    ]);
    wait_for("the scorer to be ready", Duration::from_secs(60), || {
        try_http_get(&addr, "/ready").is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let st = schemathesis();
    // Every phase, the coverage phase included (setup.sh builds the virtualenv on Python >= 3.12).
    let phases = "examples,coverage,fuzzing,stateful";
    let output = Command::new(&st)
        .args([
            "run",
            &format!("http://{addr}/openapi.json"),
            "--checks",
            "all",
            "--phases",
            phases,
            "--max-examples",
            "60",
            "--workers",
            "2",
            "--seed",
            "20261201",
        ])
        .env("NO_COLOR", "1")
        // Its own files (a `.schemathesis` folder) go into the test's folder, not the clone.
        .current_dir(stack.dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs it)", st.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("No issues found"),
        "schemathesis found something:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    sigterm(&mut ingest);
}
