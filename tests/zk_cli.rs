//! `zk-cli`: its line parser and output formats (without a server), and the
//! built binary run against an in-process zk-server: one-shot commands,
//! exit codes and messages, scripts piped through stdin, ACLs and addauth.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The binary's source, for its parser and formatters.
#[path = "../src/bin/zk-cli.rs"]
#[allow(dead_code)]
mod cli;

use std::process::Stdio;
use std::time::Duration;

use cli::parse::{Command, ParseError, parse_acl, parse_args, parse_line, tokenize};
use tokio::io::AsyncWriteExt;
use zk_client::{Acl, AddWatchMode, CreateMode, EventType, Id, KeeperState, Stat, WatchedEvent, WatcherType};
use zk_proto::types::perms;
use zk_server::Server;

fn parse(line: &str) -> Command {
    match parse_line(line) {
        Ok(Some(c)) => c,
        other => panic!("{line:?} should parse, got {other:?}"),
    }
}

/// The reason of a `BadArgs` error (checking the usage rides along).
fn bad(line: &str) -> String {
    match parse_line(line) {
        Err(e @ ParseError::BadArgs { .. }) => {
            assert!(e.to_string().contains("\nusage: "), "{e}");
            let ParseError::BadArgs { reason, .. } = e else { unreachable!() };
            reason
        }
        other => panic!("{line:?} should be rejected with usage, got {other:?}"),
    }
}

fn path(p: &str) -> String {
    p.to_string()
}

// ---------------------------------------------------------------- parser

#[test]
fn tokenizer_groups_quotes_and_skips_blanks() {
    assert_eq!(tokenize(r#"set /a "hello world""#).unwrap(), ["set", "/a", "hello world"]);
    assert_eq!(tokenize("set /a 'say \"hi\"'").unwrap(), ["set", "/a", "say \"hi\""]);
    assert_eq!(tokenize(r#"set /a """#).unwrap(), ["set", "/a", ""]);
    assert_eq!(tokenize(r#"  a"b c"d   e  "#).unwrap(), ["ab cd", "e"]);
    assert_eq!(tokenize(r"x\y").unwrap(), [r"x\y"], "no escapes, as zkCli");
    assert_eq!(tokenize("set /a \"open"), Err(ParseError::UnterminatedQuote('"')));
    assert_eq!(tokenize("set /a 'open"), Err(ParseError::UnterminatedQuote('\'')));
    for blank in ["", "   ", "\t", "# a comment", "   # indented comment"] {
        assert_eq!(parse_line(blank), Ok(None), "{blank:?}");
    }
}

#[test]
fn parses_ls_get_stat() {
    let ls = |path: &str, stat, watch, recursive| Command::Ls { path: path.into(), stat, watch, recursive };
    assert_eq!(parse("ls /"), ls("/", false, false, false));
    assert_eq!(parse("ls -s -w -R /a"), ls("/a", true, true, true));
    assert_eq!(parse("ls -sRw /a"), ls("/a", true, true, true));
    assert_eq!(parse("ls /a/b -s"), ls("/a/b", true, false, false), "options may follow the path");
    assert_eq!(parse("LS /"), ls("/", false, false, false), "names are case-insensitive");
    assert_eq!(parse("get /a"), Command::Get { path: path("/a"), stat: false, watch: false });
    assert_eq!(parse("get -s -w /a"), Command::Get { path: path("/a"), stat: true, watch: true });
    assert_eq!(parse("stat /a"), Command::Stat { path: path("/a"), watch: false });
    assert_eq!(parse("stat -w /a"), Command::Stat { path: path("/a"), watch: true });
}

#[test]
fn parses_set_create_delete() {
    assert_eq!(
        parse("set /a data"),
        Command::Set { path: path("/a"), data: "data".into(), version: None, stat: false }
    );
    assert_eq!(
        parse("set -s -v 3 /a 'x y'"),
        Command::Set { path: path("/a"), data: "x y".into(), version: Some(3), stat: true }
    );
    assert_eq!(
        parse("set -v3 /a x"),
        Command::Set { path: path("/a"), data: "x".into(), version: Some(3), stat: false }
    );
    assert_eq!(
        parse("set /a -1"),
        Command::Set { path: path("/a"), data: "-1".into(), version: None, stat: false },
        "a negative number is data, not an option"
    );
    assert_eq!(
        parse("set -- /a -s"),
        Command::Set { path: path("/a"), data: "-s".into(), version: None, stat: false },
        "-- ends the options"
    );
    assert_eq!(
        parse("set /a ''"),
        Command::Set { path: path("/a"), data: String::new(), version: None, stat: false }
    );
    // The words of a one-shot command line are not split again.
    assert_eq!(
        parse_args(&["set", "/a", "hello world"]).unwrap(),
        Command::Set { path: path("/a"), data: "hello world".into(), version: None, stat: false }
    );

    let create = |p: &str, data: &str, mode, ttl: Option<u64>| Command::Create {
        path: p.into(),
        data: data.into(),
        acl: None,
        mode,
        ttl: ttl.map(Duration::from_millis),
    };
    assert_eq!(parse("create /a"), create("/a", "", CreateMode::Persistent, None));
    assert_eq!(parse("create /a hello"), create("/a", "hello", CreateMode::Persistent, None));
    assert_eq!(parse("create -e /a d"), create("/a", "d", CreateMode::Ephemeral, None));
    assert_eq!(parse("create -s /a/"), create("/a/", "", CreateMode::PersistentSequential, None));
    assert_eq!(parse("create -e -s /a"), create("/a", "", CreateMode::EphemeralSequential, None));
    assert_eq!(parse("create -es /a"), create("/a", "", CreateMode::EphemeralSequential, None));
    assert_eq!(parse("create -c /a"), create("/a", "", CreateMode::Container, None));
    assert_eq!(parse("create -t 1000 /a"), create("/a", "", CreateMode::PersistentWithTtl, Some(1000)));
    assert_eq!(
        parse("create -s -t 5 /a"),
        create("/a", "", CreateMode::PersistentSequentialWithTtl, Some(5))
    );
    assert_eq!(
        parse("create /a d world:anyone:r"),
        Command::Create {
            path: path("/a"),
            data: "d".into(),
            acl: Some(Acl::read_unsafe()),
            mode: CreateMode::Persistent,
            ttl: None
        }
    );

    assert_eq!(parse("delete /a"), Command::Delete { path: path("/a"), version: None });
    assert_eq!(parse("delete -v 2 /a"), Command::Delete { path: path("/a"), version: Some(2) });
    assert_eq!(parse("deleteall /a"), Command::DeleteAll { path: path("/a"), batch: 1000 });
    assert_eq!(parse("deleteall /a -b 10"), Command::DeleteAll { path: path("/a"), batch: 10 });
}

#[test]
fn parses_acls_and_acl_commands() {
    assert_eq!(parse_acl("world:anyone:cdrwa").unwrap(), Acl::open_unsafe());
    assert_eq!(parse_acl("world:anyone:CDRWA").unwrap(), Acl::open_unsafe());
    assert_eq!(parse_acl("auth::cdrwa").unwrap(), Acl::creator_all());
    assert_eq!(
        parse_acl("digest:user:smGaoVKd/cQkjm7b88GyorAUz20=:ra,ip:127.0.0.1:r").unwrap(),
        vec![
            Acl::new(perms::READ | perms::ADMIN, Id::new("digest", "user:smGaoVKd/cQkjm7b88GyorAUz20=")),
            Acl::new(perms::READ, Id::new("ip", "127.0.0.1")),
        ]
    );
    assert_eq!(
        parse_acl("ip:10.0.0.0/8:wc").unwrap(),
        vec![Acl::new(perms::WRITE | perms::CREATE, Id::new("ip", "10.0.0.0/8"))]
    );
    for bad_acl in
        ["world", "world:anyone", ":anyone:r", "world:anyone:", "world:anyone:rx", "world:anyone:r,", ""]
    {
        assert!(parse_acl(bad_acl).is_err(), "{bad_acl:?}");
    }

    assert_eq!(parse("getAcl /a"), Command::GetAcl { path: path("/a"), stat: false });
    assert_eq!(parse("getacl -s /a"), Command::GetAcl { path: path("/a"), stat: true });
    assert_eq!(
        parse("setAcl /a world:anyone:r"),
        Command::SetAcl {
            path: path("/a"),
            acl: Acl::read_unsafe(),
            version: None,
            stat: false,
            recursive: false
        }
    );
    assert_eq!(
        parse("setAcl -s -v 1 -R /a auth::cdrwa"),
        Command::SetAcl {
            path: path("/a"),
            acl: Acl::creator_all(),
            version: Some(1),
            stat: true,
            recursive: true
        }
    );
}

#[test]
fn parses_session_watch_and_shell_commands() {
    assert_eq!(parse("addauth digest u:p"), Command::AddAuth { scheme: "digest".into(), auth: "u:p".into() });
    assert_eq!(parse("addauth x"), Command::AddAuth { scheme: "x".into(), auth: String::new() });
    assert_eq!(parse("sync /a"), Command::Sync { path: path("/a") });
    assert_eq!(parse("whoami"), Command::WhoAmI);
    let add_watch = |mode| Command::AddWatch { path: path("/a"), mode };
    assert_eq!(parse("addWatch /a"), add_watch(AddWatchMode::PersistentRecursive), "zkCli's default");
    assert_eq!(parse("addWatch -m persistent /a"), add_watch(AddWatchMode::Persistent));
    assert_eq!(parse("addwatch -m PERSISTENT_RECURSIVE /a"), add_watch(AddWatchMode::PersistentRecursive));
    assert_eq!(parse("addWatch -m persistentRecursive /a"), add_watch(AddWatchMode::PersistentRecursive));
    let remove = |watcher_type| Command::RemoveWatches { path: path("/a"), watcher_type };
    assert_eq!(parse("removewatches /a"), remove(WatcherType::Any));
    assert_eq!(parse("removewatches /a -c"), remove(WatcherType::Children));
    assert_eq!(parse("removewatches -d /a"), remove(WatcherType::Data));
    assert_eq!(parse("removewatches -a /a"), remove(WatcherType::Any));
    assert_eq!(parse("removewatches -p /a"), remove(WatcherType::Persistent));
    assert_eq!(parse("removewatches -r /a"), remove(WatcherType::PersistentRecursive));
    assert_eq!(parse("config"), Command::Config { stat: false });
    assert_eq!(parse("config -s"), Command::Config { stat: true });
    assert_eq!(parse("getAllChildrenNumber /a"), Command::GetAllChildrenNumber { path: path("/a") });
    assert_eq!(parse("getEphemerals"), Command::GetEphemerals { path: path("/") });
    assert_eq!(parse("getEphemerals /a"), Command::GetEphemerals { path: path("/a") });
    assert_eq!(parse("connect"), Command::Connect { server: None });
    assert_eq!(parse("connect h:1,h:2/app"), Command::Connect { server: Some("h:1,h:2/app".into()) });
    assert_eq!(parse("close"), Command::Close);
    assert_eq!(parse("quit"), Command::Quit);
    assert_eq!(parse("help"), Command::Help);
    assert_eq!(parse("history"), Command::History);
    assert_eq!(parse("redo 3"), Command::Redo { index: 3 });
    assert_eq!(parse("printwatches"), Command::PrintWatches { on: None });
    assert_eq!(parse("printwatches on"), Command::PrintWatches { on: Some(true) });
    assert_eq!(parse("printwatches OFF"), Command::PrintWatches { on: Some(false) });
    assert_eq!(parse("version"), Command::Version);
}

#[test]
fn rejects_bad_input_with_a_reason() {
    assert_eq!(parse_line("foo /"), Err(ParseError::UnknownCommand("foo".into())));
    assert_eq!(parse_line("set /a 'x"), Err(ParseError::UnterminatedQuote('\'')));
    assert!(bad("ls").contains("needs an argument"));
    assert!(bad("ls /a /b").contains("too many arguments: /b"));
    assert!(bad("set /a hello world").contains("quote"));
    assert!(bad("ls -x /a").contains("unknown option -x"));
    assert!(bad("ls a").contains("Path must start with / character"));
    assert!(bad("ls /a/").contains("Path must not end with / character"));
    assert!(bad("get /a//b").contains("empty node name"));
    assert!(bad("set /a").contains("needs more arguments"));
    assert!(bad("set -v x /a d").contains("version must be a number"));
    assert!(bad("set /a d -v").contains("option -v needs a value"));
    assert!(bad("delete -v 1.5 /a").contains("version must be a number"));
    assert!(bad("create -c -e /a").contains("containers cannot be ephemeral or sequential"));
    assert!(bad("create -c -s /a").contains("containers cannot be ephemeral or sequential"));
    assert!(bad("create -t 10 -e /a").contains("ephemeral"));
    assert!(bad("create -t 10 -c /a").contains("container"));
    assert!(bad("create -t 0 /a").contains("at least 1 ms"));
    assert!(bad("create -t soon /a").contains("ttl must be a number"));
    assert!(bad("create /a d notanacl").contains("scheme:id:perm"));
    assert!(bad("create /a d world:anyone:z").contains("unknown permission"));
    assert!(bad("create /a d acl extra").contains("too many arguments"));
    assert!(bad("deleteall -b 0 /a").contains("at least 1"));
    assert!(bad("setAcl /a").contains("needs more arguments"));
    assert!(bad("addWatch -m sometimes /a").contains("unknown mode"));
    assert!(bad("removewatches -c -d /a").contains("at most one"));
    assert!(bad("removewatches -l /a").contains("not supported"));
    assert!(bad("printwatches maybe").contains("on or off"));
    assert!(bad("redo last").contains("cmdno must be a number"));
    assert!(bad("whoami extra").contains("too many arguments"));
    assert!(bad("addauth").contains("needs an argument"));
}

#[test]
fn formats_like_zkcli() {
    use cli::format;
    assert_eq!(format::java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    assert_eq!(format::java_date(1_700_000_000_123), "Tue Nov 14 22:13:20 UTC 2023");
    assert_eq!(format::java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    assert_eq!(format::java_date(4_102_444_800_000), "Fri Jan 01 00:00:00 UTC 2100");
    assert_eq!(format::java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
    let stat = Stat {
        czxid: 0x1a,
        mzxid: 0x1b,
        ctime: 0,
        mtime: 1_700_000_000_123,
        version: 2,
        cversion: 3,
        aversion: 1,
        ephemeral_owner: 0x1000_0abc_0000_0001,
        data_length: 5,
        num_children: 3,
        pzxid: 0x1c,
    };
    assert_eq!(
        format::stat(&stat),
        "cZxid = 0x1a\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x1b\n\
         mtime = Tue Nov 14 22:13:20 UTC 2023\npZxid = 0x1c\ncversion = 3\ndataVersion = 2\n\
         aclVersion = 1\nephemeralOwner = 0x10000abc00000001\ndataLength = 5\nnumChildren = 3\n"
    );
    assert_eq!(
        format::stat(&Stat { czxid: -1, ..Stat::default() }).lines().next(),
        Some("cZxid = 0xffffffffffffffff"),
        "as Java's Long.toHexString"
    );
    assert_eq!(format::acl(&Acl::open_unsafe()[0]), "'world,'anyone\n: cdrwa\n");
    assert_eq!(format::acl(&Acl::new(perms::READ, Id::new("ip", "a,b"))), "'ip,'a%2Cb\n: r\n");
    assert_eq!(format::perm_string(perms::ADMIN | perms::READ), "ra");
    assert_eq!(format::list(&["a".into(), "b".into()]), "[a, b]\n");
    assert_eq!(format::list(&[]), "[]\n");
    assert_eq!(format::data(b""), "null\n");
    assert_eq!(format::data(b"hi"), "hi\n");
    let event = WatchedEvent {
        event_type: EventType::NodeDataChanged,
        state: KeeperState::SyncConnected,
        path: "/x".into(),
        zxid: 5,
    };
    assert_eq!(
        format::event(&event),
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/x\n"
    );
    let session = WatchedEvent { event_type: EventType::None, path: String::new(), ..event };
    assert_eq!(
        format::event(&session),
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
    );
    assert!(cli::parse::usage().contains("\tls [-s] [-w] [-R] path\n"));
}

// ---------------------------------------------------------------- the binary

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert_eq!(self.stderr, "", "{self:?}");
        self.stdout
    }

    /// Asserts a failure with exit code `code` and returns stderr.
    #[track_caller]
    fn fails(self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        self.stderr
    }
}

/// Runs `zk-cli -server <server> args...` with `stdin` piped in (or no
/// stdin at all), killed after 60 s.
async fn zk_cli(server: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .arg("-server")
        .arg(server)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn zk-cli");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("zk-cli {args:?} did not finish in 60 s"))
        .expect("zk-cli output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn one_shot(server: &str, args: &[&str]) -> Run {
    zk_cli(server, args, None).await
}

async fn script(server: &str, lines: &str) -> Run {
    zk_cli(server, &[], Some(lines)).await
}

async fn start() -> Server {
    tokio::time::timeout(Duration::from_secs(30), Server::start_temp())
        .await
        .expect("server start timed out")
        .expect("server start")
}

const STAT_KEYS: [&str; 11] = [
    "cZxid = 0x",
    "ctime = ",
    "mZxid = 0x",
    "mtime = ",
    "pZxid = 0x",
    "cversion = ",
    "dataVersion = ",
    "aclVersion = ",
    "ephemeralOwner = 0x",
    "dataLength = ",
    "numChildren = ",
];

/// Checks `lines` is a Stat block and returns its values by key.
#[track_caller]
fn stat_block(lines: &[&str]) -> Vec<String> {
    assert_eq!(lines.len(), 11, "{lines:?}");
    lines
        .iter()
        .zip(STAT_KEYS)
        .map(|(line, key)| {
            assert!(line.starts_with(key), "{line:?} should start with {key:?}");
            line[key.len()..].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_crud() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();

    assert_eq!(one_shot(cs, &["create", "/app", "hello"]).await.ok(), "Created /app\n");
    assert_eq!(one_shot(cs, &["get", "/app"]).await.ok(), "hello\n");
    assert_eq!(one_shot(cs, &["set", "/app", "hello world"]).await.ok(), "");
    let out = one_shot(cs, &["get", "-s", "/app"]).await.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello world");
    let stat = stat_block(&lines[1..]);
    assert_eq!((stat[6].as_str(), stat[9].as_str(), stat[10].as_str()), ("1", "11", "0"));
    assert!(stat[1].contains(" UTC "), "{}", stat[1]);

    assert_eq!(one_shot(cs, &["create", "/app/b"]).await.ok(), "Created /app/b\n");
    assert_eq!(one_shot(cs, &["get", "/app/b"]).await.ok(), "null\n");
    let seq = one_shot(cs, &["create", "-s", "/app/seq-", "x"]).await.ok();
    assert_eq!(seq, "Created /app/seq-0000000001\n");
    // An ephemeral node lives as long as the one-shot session.
    assert_eq!(one_shot(cs, &["create", "-e", "/app/eph"]).await.ok(), "Created /app/eph\n");
    assert_eq!(one_shot(cs, &["ls", "/app"]).await.ok(), "[b, seq-0000000001]\n");
    assert_eq!(one_shot(cs, &["ls", "/"]).await.ok(), "[app, zookeeper]\n");
    assert_eq!(one_shot(cs, &["ls", "-R", "/app"]).await.ok(), "/app\n/app/b\n/app/seq-0000000001\n");
    let out = one_shot(cs, &["ls", "-s", "/app"]).await.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[b, seq-0000000001]");
    assert_eq!(stat_block(&lines[1..])[10], "2");

    let out = one_shot(cs, &["stat", "/app"]).await.ok();
    let stat = stat_block(&out.lines().collect::<Vec<_>>());
    assert_eq!(stat[8], "0", "ephemeralOwner of a persistent node");
    assert_eq!(stat[10], "2");
    assert_eq!(one_shot(cs, &["getAllChildrenNumber", "/app"]).await.ok(), "2\n");
    assert_eq!(one_shot(cs, &["sync", "/app"]).await.ok(), "Sync is OK\n");
    assert_eq!(one_shot(cs, &["set", "-v", "1", "/app", "v2"]).await.ok(), "");
    let out = one_shot(cs, &["set", "-s", "/app", "v3"]).await.ok();
    assert_eq!(stat_block(&out.lines().collect::<Vec<_>>())[6], "3");

    // The whole command as one word, as `zkCli.sh -server x "ls /"`.
    assert_eq!(one_shot(cs, &["ls /app"]).await.ok(), "[b, seq-0000000001]\n");

    // A chroot in the connect string.
    let chrooted = format!("{cs}/app");
    assert_eq!(one_shot(&chrooted, &["create", "/c", "in chroot"]).await.ok(), "Created /c\n");
    assert_eq!(one_shot(&chrooted, &["ls", "/"]).await.ok(), "[b, c, seq-0000000001]\n");
    assert_eq!(one_shot(cs, &["get", "/app/c"]).await.ok(), "in chroot\n");

    assert_eq!(one_shot(cs, &["delete", "/app"]).await.fails(1), "Node not empty: /app\n");
    assert_eq!(one_shot(cs, &["delete", "/app/b"]).await.ok(), "");
    assert_eq!(one_shot(cs, &["deleteall", "/app"]).await.ok(), "");
    assert_eq!(one_shot(cs, &["stat", "/app"]).await.fails(1), "Node does not exist: /app\n");
    assert_eq!(one_shot(cs, &["ls", "/"]).await.ok(), "[zookeeper]\n");

    // deleteall in small batches, over a deeper tree.
    for p in ["/t", "/t/a", "/t/a/x", "/t/a/y", "/t/b", "/t/b/z"] {
        one_shot(cs, &["create", p]).await.ok();
    }
    assert_eq!(one_shot(cs, &["ls", "-R", "/t"]).await.ok(), "/t\n/t/a\n/t/a/x\n/t/a/y\n/t/b\n/t/b/z\n");
    assert_eq!(one_shot(cs, &["deleteall", "-b", "2", "/t"]).await.ok(), "");
    assert_eq!(one_shot(cs, &["ls", "/"]).await.ok(), "[zookeeper]\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_node_modes() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();
    assert_eq!(one_shot(cs, &["create", "-c", "/box"]).await.ok(), "Created /box\n");
    assert_eq!(one_shot(cs, &["create", "-t", "60000", "/ttl", "t"]).await.ok(), "Created /ttl\n");
    // The suffix is the parent's count of child creates (Apache's): two so far.
    assert_eq!(
        one_shot(cs, &["create", "-s", "-t", "60000", "/ttl-"]).await.ok(),
        "Created /ttl-0000000002\n"
    );
    assert_eq!(one_shot(cs, &["get", "/ttl"]).await.ok(), "t\n");
    assert_eq!(one_shot(cs, &["ls", "/"]).await.ok(), "[box, ttl, ttl-0000000002, zookeeper]\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_errors_exit_non_zero_with_a_message() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();

    let missing = one_shot(cs, &["get", "/missing"]).await;
    assert_eq!(missing.stdout, "");
    assert_eq!(missing.fails(1), "Node does not exist: /missing\n");
    assert_eq!(one_shot(cs, &["ls", "/missing"]).await.fails(1), "Node does not exist: /missing\n");
    assert_eq!(one_shot(cs, &["create", "/no/parent"]).await.fails(1), "Node does not exist: /no/parent\n");
    assert_eq!(one_shot(cs, &["deleteall", "/missing"]).await.fails(1), "Node does not exist: /missing\n");
    one_shot(cs, &["create", "/dup", "v"]).await.ok();
    assert_eq!(one_shot(cs, &["create", "/dup"]).await.fails(1), "Node already exists: /dup\n");
    assert_eq!(
        one_shot(cs, &["set", "-v", "7", "/dup", "x"]).await.fails(1),
        "version No is not valid : /dup\n"
    );
    assert_eq!(
        one_shot(cs, &["delete", "-v", "3", "/dup"]).await.fails(1),
        "version No is not valid : /dup\n"
    );
    let no_watch = one_shot(cs, &["removewatches", "/dup"]).await.fails(1);
    assert!(no_watch.starts_with("NOWATCHER (-121)") && no_watch.ends_with("/dup\n"), "{no_watch}");
    assert_eq!(one_shot(cs, &["deleteall", "/"]).await.fails(1), "cannot delete the root node /\n");

    // Commands that do not parse: exit 2, the reason and the usage.
    let unknown = one_shot(cs, &["bogus", "/"]).await.fails(2);
    assert!(unknown.starts_with("unknown command: bogus\n"), "{unknown}");
    assert!(unknown.contains("\tls [-s] [-w] [-R] path\n"), "{unknown}");
    assert_eq!(one_shot(cs, &["ls"]).await.fails(2), "ls needs an argument\nusage: ls [-s] [-w] [-R] path\n");
    assert!(one_shot(cs, &["get", "relative"]).await.fails(2).contains("Path must start with / character"));
    assert!(one_shot(cs, &["create", "-t", "10", "-e", "/x"]).await.fails(2).contains("TTLs cannot be used"));
    assert!(one_shot(cs, &["-bogus"]).await.fails(2).contains("unknown option -bogus"));
    assert!(zk_cli(cs, &["-timeout", "soon", "ls", "/"], None).await.fails(2).contains("-timeout"));

    // Nothing listens: a clear error, within the timeout.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = zk_cli(&nowhere, &["-timeout", "1000", "ls", "/"], None).await.fails(1);
    assert_eq!(err, format!("Unable to connect to {nowhere}: timed out connecting to the ensemble\n"));
    assert!(started.elapsed() < Duration::from_secs(20));
    // help needs no server.
    assert!(
        one_shot(&nowhere, &["help"])
            .await
            .ok()
            .contains("\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]\n")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_through_stdin_goes_on_after_a_failure() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();

    let run = script(
        cs,
        "# set up\n\
         create /s one\n\
         get /s\n\
         \n\
         set /s two\n\
         get -w /s\n\
         set /s 'three and four'\n\
         get /nope\n\
         ls /\n\
         create /s/c\n\
         getAllChildrenNumber /s\n\
         deleteall /s\n\
         ls /\n",
    )
    .await;
    assert_eq!(
        run.stdout,
        "Created /s\none\ntwo\n\
         \nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/s\n\
         [s, zookeeper]\nCreated /s/c\n1\n[zookeeper]\n"
    );
    assert_eq!(run.fails(1), "Node does not exist: /nope\n");

    // All lines succeed: exit 0; `quit` ends the script.
    let run = script(cs, "create /q\nquit\ncreate /never\n").await;
    assert_eq!(run.ok(), "Created /q\n");
    assert_eq!(one_shot(cs, &["stat", "/never"]).await.fails(1), "Node does not exist: /never\n");

    // Parse errors fail the script too, and it goes on.
    let run = script(cs, "frobnicate\nls -s\nls /q\n").await;
    assert_eq!(run.stdout, "[]\n");
    let err = run.fails(1);
    assert!(err.starts_with("unknown command: frobnicate\n"), "{err}");
    assert!(err.ends_with("ls needs an argument\nusage: ls [-s] [-w] [-R] path\n"), "{err}");

    // history, redo, close and connect.
    let run = script(cs, "create /h x\nhistory\nredo 0\nclose\nls /h\nconnect\nls /h\nversion\n").await;
    assert_eq!(
        run.stdout,
        format!(
            "Created /h\n0 - create /h x\n1 - history\n[]\nZooKeeper CLI version: zk-cli {}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(run.fails(1), "Node already exists: /h\nNot connected (use connect host:port)\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_prints_watch_events() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();
    let event = |kind: &str, path: &str| {
        format!("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{path}\n")
    };
    let run = script(
        cs,
        "create /w\n\
         ls -w /w\n\
         create /w/a\n\
         stat -w /w/b\n\
         create /w/b\n\
         addWatch -m persistent /w/a\n\
         set /w/a 1\n\
         set /w/a 2\n\
         removewatches /w/a -p\n\
         set /w/a 3\n\
         addWatch /w\n\
         create /w/a/deep\n\
         printwatches off\n\
         delete /w/a/deep\n\
         printwatches on\n\
         create -e /w/e\n\
         getEphemerals\n\
         getEphemerals /w/a\n",
    )
    .await;
    let expected = [
        "Created /w\n[]\n".to_string(),
        "Created /w/a\n".to_string(),
        event("NodeChildrenChanged", "/w"),
        "Created /w/b\n".to_string(),
        event("NodeCreated", "/w/b"),
        event("NodeDataChanged", "/w/a"),
        event("NodeDataChanged", "/w/a"),
        event("PersistentWatchRemoved", "/w/a"),
        "Created /w/a/deep\n".to_string(),
        event("NodeCreated", "/w/a/deep"),
        "Created /w/e\n".to_string(),
        event("NodeCreated", "/w/e"),
        "[/w/e]\n[]\n".to_string(),
    ]
    .concat();
    assert_eq!(run.stdout, expected);
    assert_eq!(run.fails(1), "Node does not exist: /w/b\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_addauth() {
    let server = start().await;
    let cs = server.connect_string();
    let cs = cs.as_str();
    let alice = zk_client::digest_id("alice", "secret").id;
    let alice_acl = format!("digest:{alice}:cdrwa");

    assert_eq!(one_shot(cs, &["create", "/secure", "data", &alice_acl]).await.ok(), "Created /secure\n");
    assert_eq!(one_shot(cs, &["get", "/secure"]).await.fails(1), "Insufficient permission : /secure\n");
    assert_eq!(one_shot(cs, &["set", "/secure", "x"]).await.fails(1), "Insufficient permission : /secure\n");

    let run = script(
        cs,
        "addauth digest alice:secret\n\
         get /secure\n\
         getAcl /secure\n\
         whoami\n\
         create /mine m auth::cdrwa\n\
         getAcl -s /mine\n\
         setAcl -v 5 /secure world:anyone:r\n\
         setAcl -s /secure world:anyone:r\n",
    )
    .await;
    let out = run.stdout.clone();
    assert_eq!(run.fails(1), "version No is not valid : /secure\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "data");
    assert_eq!(&lines[1..3], [format!("'digest,'{alice}"), ": cdrwa".to_string()]);
    assert_eq!(lines[3], "Auth scheme: User");
    assert!(lines.contains(&"digest: alice"), "{out}");
    let created = lines.iter().position(|l| *l == "Created /mine").expect("Created /mine");
    assert_eq!(&lines[created + 1..created + 3], [format!("'digest,'{alice}"), ": cdrwa".to_string()]);
    assert_eq!(stat_block(&lines[created + 3..created + 14])[7], "0");
    assert_eq!(stat_block(&lines[created + 14..])[7], "1", "setAcl -s prints the new aclVersion");

    // Now world-readable, still not writable without auth.
    assert_eq!(one_shot(cs, &["get", "/secure"]).await.ok(), "data\n");
    assert_eq!(one_shot(cs, &["getAcl", "/secure"]).await.ok(), "'world,'anyone\n: r\n");
    assert_eq!(one_shot(cs, &["set", "/secure", "x"]).await.fails(1), "Insufficient permission : /secure\n");
    assert_eq!(one_shot(cs, &["get", "/mine"]).await.fails(1), "Insufficient permission : /mine\n");

    // setAcl -R reaches every descendant; ip ACLs.
    for p in ["/tree", "/tree/a", "/tree/a/b"] {
        one_shot(cs, &["create", p]).await.ok();
    }
    assert_eq!(one_shot(cs, &["setAcl", "-R", "/tree", "world:anyone:cdr"]).await.ok(), "");
    for p in ["/tree", "/tree/a", "/tree/a/b"] {
        assert_eq!(one_shot(cs, &["getAcl", p]).await.ok(), "'world,'anyone\n: cdr\n", "{p}");
    }
    assert_eq!(one_shot(cs, &["set", "/tree/a", "x"]).await.fails(1), "Insufficient permission : /tree/a\n");
    assert_eq!(
        one_shot(cs, &["setAcl", "/tree", "ip:127.0.0.1:cdrwa"]).await.fails(1),
        "Insufficient permission : /tree\n"
    );
    assert_eq!(one_shot(cs, &["create", "/open", "", "ip:127.0.0.1:rwa"]).await.ok(), "Created /open\n");
    assert_eq!(one_shot(cs, &["set", "/open", "ok"]).await.ok(), "");
    assert_eq!(one_shot(cs, &["getAcl", "/open"]).await.ok(), "'ip,'127.0.0.1\n: rwa\n");
    server.stop().await;
}

// ------------------------------------------------- quotas, analysis, TLS

/// Apache's zkCli.sh one-shot `args` on `cs` (stdout and stderr).
async fn apache_zkcli(cs: &str, args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new("/usr/share/zookeeper/bin/zkCli.sh");
    cmd.arg("-server").arg(cs).args(args).stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("zkCli.sh within 60 s")
        .expect("zkCli.sh");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn quota_lines(out: &str) -> Vec<String> {
    out.lines().filter(|l| l.starts_with("Output ")).map(str::to_string).collect()
}

/// setquota / listquota / delquota write and read Apache's layout: what
/// zk-cli writes, Apache's zkCli reads the same, on our server and on
/// Apache's, and both servers count the subtree into zookeeper_stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_as_apaches_zkcli_keeps_them() {
    let ours = start().await;
    let apache = tokio::task::spawn_blocking(zk_test_support::apache::ApacheZk::start).await.unwrap();
    let mut targets = vec![("ours", ours.connect_string())];
    if let Some(a) = &apache {
        targets.push(("apache", a.connect_string()));
    }
    for (name, cs) in targets {
        let cs = cs.as_str();
        script(cs, "create /q\ncreate /q/a x\ncreate /q/b yy\ncreate /q/a/c\n").await.ok();
        one_shot(cs, &["setquota", "-n", "10", "/q"]).await.ok();
        one_shot(cs, &["setquota", "-B", "1000", "/q"]).await.ok();
        let run = one_shot(cs, &["listquota", "/q"]).await;
        let out = run.ok();
        assert_eq!(
            quota_lines(&out),
            vec![
                "Output quota for /q count=10,bytes=-1=;byteHardLimit=1000;countHardLimit=-1".to_string(),
                "Output stat for /q count=4,bytes=3".to_string(),
            ],
            "{name}"
        );
        if apache.is_some() {
            assert_eq!(
                quota_lines(&apache_zkcli(cs, &["listquota", "/q"]).await),
                quota_lines(&out),
                "{name}"
            );
        }
        // One quota per branch.
        let e = one_shot(cs, &["setquota", "-n", "2", "/q/a"]).await.fails(1);
        assert!(e.contains("/q/a has a parent /q which has a quota"), "{name}: {e}");
        let e = one_shot(cs, &["setquota", "-n", "2", "/nope"]).await.fails(1);
        assert!(e.contains("/nope does not exist."), "{name}: {e}");
        // A limit below what is there is set, with Apache's warning.
        let w = one_shot(cs, &["setquota", "-n", "2", "/q"]).await.ok();
        assert!(w.contains("[Warning]: the count quota you create is less than the existing count:4"), "{w}");
        // delquota -B resets one limit; delquota removes the quota.
        one_shot(cs, &["delquota", "-B", "/q"]).await.ok();
        let out = one_shot(cs, &["listquota", "/q"]).await.ok();
        assert!(out.contains("count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"), "{name}: {out}");
        one_shot(cs, &["delquota", "/q"]).await.ok();
        let e = one_shot(cs, &["listquota", "/q"]).await.fails(1);
        assert!(e.contains("quota for /q does not exist."), "{name}: {e}");
        let ls = one_shot(cs, &["ls", "/zookeeper/quota"]).await.ok();
        assert_eq!(ls.trim(), "[]", "{name}: the emptied quota branch is trimmed");
        // A quota set by Apache's zkCli reads the same in zk-cli.
        if apache.is_some() {
            apache_zkcli(cs, &["setquota", "-b", "100", "/q/a"]).await;
            let ours_view = one_shot(cs, &["listquota", "/q/a"]).await.ok();
            assert_eq!(
                quota_lines(&ours_view),
                quota_lines(&apache_zkcli(cs, &["listquota", "/q/a"]).await),
                "{name}"
            );
            one_shot(cs, &["delquota", "/q/a"]).await.ok();
        }
    }
    ours.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn du_fanout_and_a_dry_run_delete() {
    let server = start().await;
    let cs = server.connect_string();
    let mut lines = String::from("create /t\ncreate /t/a\ncreate /t/b\ncreate /t/b/z 12345\n");
    for i in 1..=3 {
        lines.push_str(&format!("create /t/a/{i} ab\ncreate /t/a/{i}/x\ncreate /t/a/{i}/y\n"));
    }
    script(&cs, &lines).await.ok();
    let du = one_shot(&cs, &["du", "/t"]).await.ok();
    assert_eq!(du.lines().collect::<Vec<_>>(), ["10\t6\t/t/a", "2\t5\t/t/b"]);
    let du = one_shot(&cs, &["du", "-d", "0", "/t"]).await.ok();
    assert_eq!(du.trim(), "13\t11\t/t");
    let du = one_shot(&cs, &["du", "-d", "2", "-n", "2", "/t"]).await.ok();
    assert_eq!(du.lines().collect::<Vec<_>>(), ["3\t2\t/t/a/1", "3\t2\t/t/a/2"]);
    let fan = one_shot(&cs, &["fanout", "-n", "3", "/t"]).await.ok();
    assert_eq!(fan.lines().collect::<Vec<_>>(), ["3\t/t/a", "2\t/t", "2\t/t/a/1"]);
    let dry = one_shot(&cs, &["deleteall", "-d", "/t/a"]).await.ok();
    let listed: Vec<&str> = dry.lines().collect();
    assert_eq!(listed.len(), 11, "{dry}");
    assert_eq!(listed[9], "/t/a", "the subtree's root goes last");
    assert_eq!(listed[10], "would delete 10 nodes (dry run: nothing deleted)");
    let n = one_shot(&cs, &["getAllChildrenNumber", "/t"]).await.ok();
    assert_eq!(n.trim(), "12", "nothing deleted");
    one_shot(&cs, &["deleteall", "/t/a"]).await.ok();
    let n = one_shot(&cs, &["getAllChildrenNumber", "/t"]).await.ok();
    assert_eq!(n.trim(), "2");
    let e = one_shot(&cs, &["du", "/nope"]).await.fails(1);
    assert!(e.contains("/nope"), "{e}");
    server.stop().await;
}

/// `-client-configuration`: zkCli's properties file, TLS with PEM stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_configuration_connects_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |cn: &str| {
        let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem())
    };
    let file = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = file("ca.pem", ca_cert.pem());
    let server_pem = file("server.pem", leaf("server"));
    let client_pem = file("client.pem", leaf("client"));
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
    cfg.secure_client_port = Some(0);
    cfg.tls.key_store = Some(zk_tls::StoreSpec::new(&server_pem, None));
    cfg.tls.trust_store = Some(zk_tls::StoreSpec::new(&ca, None));
    let server = Server::start_temp_with(cfg).await.unwrap();
    let secure = server.secure_addr().unwrap().to_string();
    let props = file(
        "client.properties",
        format!(
            "# zkCli's client configuration\nzookeeper.client.secure=true\n\
             zookeeper.ssl.keyStore.location={}\nzookeeper.ssl.trustStore.location={}\n",
            client_pem.display(),
            ca.display()
        ),
    );
    let props = props.to_str().unwrap();
    one_shot(&secure, &["-client-configuration", props, "create", "/over-tls", "yes"]).await.ok();
    let out = one_shot(&server.connect_string(), &["get", "/over-tls"]).await.ok();
    assert_eq!(out.trim(), "yes");
    // Without it, the TLS port does not answer a plain client.
    one_shot(&secure, &["-timeout", "3000", "ls", "/"]).await.fails(1);
    let e = one_shot(&secure, &["-client-configuration", "/nope.properties", "ls", "/"]).await.fails(2);
    assert!(e.contains("/nope.properties"), "{e}");
    server.stop().await;
}
