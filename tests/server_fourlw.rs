//! Four-letter words on the client port: the same commands answer on our
//! server and on Apache 3.8 with the same shape (monitoring scripts parse
//! them), and the whitelist is enforced as Apache enforces it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use zk_test_support::apache::{ApacheZk, four_letter_word};

fn keys(text: &str, sep: char) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_once(sep).map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

fn word(addr: SocketAddr, cmd: &str) -> String {
    four_letter_word(addr, cmd).unwrap_or_else(|| panic!("no answer to {cmd}"))
}

#[test]
fn four_letter_words_answer_like_apache() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(zk_server::Server::start_temp()).unwrap();
    let a = ours.addr();
    // A session and a watch, so the tables have something in them.
    let client = rt.block_on(zk_client::Client::connect(&ours.connect_string())).unwrap();
    let (_, _w) = rt.block_on(client.exists_watch("/watched")).unwrap();

    assert_eq!(word(a, "ruok"), "imok");
    assert_eq!(word(a, "isro"), "rw");
    let srvr = word(a, "srvr");
    for line in [
        "Zookeeper version: ",
        "Latency min/avg/max: ",
        "Received: ",
        "Sent: ",
        "Connections: ",
        "Outstanding: ",
        "Zxid: 0x",
        "Mode: standalone",
        "Node count: ",
    ] {
        assert!(srvr.contains(line), "srvr lacks {line:?}:\n{srvr}");
    }
    assert!(word(a, "stat").contains("Clients:\n"));
    assert!(word(a, "cons").contains("sid=0x"));
    assert!(word(a, "wchs").contains("connections watching 1 paths"), "{}", word(a, "wchs"));
    assert!(word(a, "wchp").contains("/watched\n\t0x"));
    assert!(word(a, "wchc").contains("\t/watched\n"));
    assert!(word(a, "dump").contains("SessionTracker dump:"));
    assert!(word(a, "envi").starts_with("Environment:\n"));
    assert!(word(a, "dirs").contains("datadir_size: "));
    assert_eq!(word(a, "srst"), "Server stats reset.\n");
    assert_eq!(word(a, "crst"), "Connection stats reset.\n");
    let mntr = word(a, "mntr");
    let conf = word(a, "conf");
    rt.block_on(client.close()).unwrap();
    rt.block_on(ours.stop());

    // A server with the default whitelist answers srvr only.
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::Ipv4Addr::LOCALHOST.into());
    let strict = rt.block_on(zk_server::Server::start_temp_with(cfg)).unwrap();
    assert!(word(strict.addr(), "srvr").contains("Mode: standalone"));
    assert_eq!(word(strict.addr(), "ruok"), "ruok is not executed because it is not in the whitelist.\n");
    rt.block_on(strict.stop());

    // Every key we report, Apache reports too (and in the same format).
    let Some(apache) = ApacheZk::start() else { return };
    let amntr = word(apache.addr(), "mntr");
    let aconf = word(apache.addr(), "conf");
    let missing: Vec<_> = keys(&mntr, '\t').difference(&keys(&amntr, '\t')).cloned().collect();
    assert!(missing.is_empty(), "mntr keys Apache does not have: {missing:?}");
    let missing: Vec<_> = keys(&conf, '=').difference(&keys(&aconf, '=')).cloned().collect();
    assert!(
        missing.is_empty(),
        "conf keys Apache does not have: {missing:?}\nours:\n{conf}\napache:\n{aconf}"
    );
    let asrvr = word(apache.addr(), "srvr");
    let shape =
        |t: &str| t.lines().map(|l| l.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>();
    assert_eq!(shape(&srvr), shape(&asrvr), "srvr lines in the same order as Apache's");
}
