//! The embedded broker's address file: a broker that stops removes the file only while it still
//! holds its own address, so that a broker started since on the same state directory (a quick
//! restart while the old one still stops) is not left without one.

use ingest::broker::{BROKER_FILE, EmbeddedBroker};

#[test]
fn a_stopping_broker_leaves_a_newer_brokers_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(BROKER_FILE);
    let mut old = EmbeddedBroker::start(&[("transactions", 1)]).unwrap();
    old.advertise(dir.path()).unwrap();
    let mut new = EmbeddedBroker::start(&[("transactions", 1)]).unwrap();
    new.advertise(dir.path()).unwrap();
    assert_ne!(old.bootstrap_servers(), new.bootstrap_servers());
    drop(old);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        new.bootstrap_servers()
    );
    drop(new);
    assert!(!file.exists(), "a broker removes its own address");
}
