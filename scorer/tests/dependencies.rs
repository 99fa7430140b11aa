//! The scorer computes rows and predictions per customer and never builds a frame: polars is not in
//! its dependency tree (`cargo tree`, normal dependencies).

use std::process::Command;

#[test]
fn polars_is_not_a_dependency_of_the_scorer() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "clv-scorer",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    for wanted in ["clv-contract", "clv-models", "clv-featurestore", "axum"] {
        assert!(crates.contains(&wanted), "{wanted} not in\n{tree}");
    }
    let frames: Vec<&&str> = crates
        .iter()
        .filter(|c| c.starts_with("polars") || **c == "clv-trainer" || **c == "clv-offline")
        .collect();
    assert!(frames.is_empty(), "{frames:?} in the scorer's tree");
}
