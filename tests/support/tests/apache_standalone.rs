//! The standalone harness server comes up, reports `Mode: standalone`, and
//! is gone once dropped.

use std::time::Instant;

use zk_test_support::apache::{ApacheZk, Mode, server_mode};

#[test]
fn standalone_server_starts_and_stops() {
    let t0 = Instant::now();
    let Some(zk) = ApacheZk::start() else { return };
    eprintln!("standalone server ready in {:?}", t0.elapsed());
    assert_eq!(server_mode(zk.addr()), Some(Mode::Standalone));
    assert_eq!(zk.connect_string(), format!("127.0.0.1:{}", zk.port()));
    assert!(zk.data_dir().is_dir());
    let addr = zk.addr();
    drop(zk);
    assert_eq!(server_mode(addr), None, "the server is killed on drop");
}
