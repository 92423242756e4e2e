//! Real Apache ZooKeeper clients, unchanged, against our zk-server: the
//! Java shell `zkCli.sh` (Debian `zookeeper`), the C client's shell
//! `cli_mt` (Debian `zookeeper-bin`) and the Python client kazoo (PyPI
//! `kazoo` or Debian `python3-kazoo`).
//!
//! Every scripted session runs against Apache ZooKeeper 3.8 too (when it is
//! installed) and the same key facts are asserted for both servers; the
//! zkCli transcripts must even be equal line for line once zxids, session
//! ids and times are masked. What the clients did is then read back with
//! our Rust client, so each fact is seen from two sides.
//!
//! Every child process runs under `timeout` in its own process group and is
//! killed (group and all) when its handle drops; every server is stopped.
//! Two `#[ignore]`d tests pin down behaviours where our server still
//! differs from Apache (run them with `--ignored`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::within;
use zk_client::{Client, CreateMode, Error, digest_id};
use zk_proto::types::perms;
use zk_test_support::apache::{ApacheZk, ApacheZkOptions};
use zk_test_support::external::missing;
use zk_test_support::proxy::Proxy;

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
const KAZOO_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real_clients/kazoo_session.py");

/// The longest any one client process may live.
const PROC_LIMIT_SECS: u64 = 120;
/// How long to wait for one expected line of output.
const STEP_SECS: u64 = 30;

// ---------------------------------------------------------------------------
// Servers

/// Our server on its own runtime, stopped by [`Ours::stop`] or on drop.
struct Ours {
    rt: tokio::runtime::Runtime,
    server: Option<zk_server::Server>,
    cs: String,
}

impl Ours {
    fn start() -> Ours {
        Self::start_with(|_| {})
    }

    /// With `tweak` applied to the bundled server's configuration.
    fn start_with(tweak: impl FnOnce(&mut zk_server::ServerConfig)) -> Ours {
        common::trace_init();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut cfg = zk_server::ServerConfig::new("");
        cfg.client_port = 0;
        cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
        cfg.four_letter_words = vec!["*".into()];
        cfg.extended_types_enabled = true;
        cfg.max_client_cnxns = 0;
        tweak(&mut cfg);
        let server = rt.block_on(zk_server::Server::start_temp_with(cfg)).expect("start zk-server");
        let cs = server.connect_string();
        Ours { rt, server: Some(server), cs }
    }

    fn stop(mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

/// Runs `f` with a Rust zk-client session on `cs` (optionally digest-
/// authenticated), on a runtime of its own, and closes the session.
fn with_rust_client<T>(cs: &str, auth: Option<&str>, f: impl AsyncFnOnce(&Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut b = Client::builder(cs).session_timeout(Duration::from_secs(10));
        if let Some(a) = auth {
            b = b.auth("digest", a.as_bytes().to_vec());
        }
        let c = within(20, "rust client connect", b.connect()).await.expect("rust client connect");
        let out = within(60, "rust client steps", f(&c)).await;
        within(20, "rust client close", c.close()).await.expect("close");
        out
    })
}

/// Every server to run a session against: ours, then Apache when installed
/// (a loud skip line otherwise, a failure under `ZK_REQUIRE_EXTERNAL=1`).
struct Targets {
    ours: Ours,
    apache: Option<ApacheZk>,
}

impl Targets {
    fn start() -> Targets {
        Targets { ours: Ours::start(), apache: ApacheZk::start() }
    }

    /// `(name, connect string)` of each server.
    fn list(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("zk-server", self.ours.cs.clone())];
        if let Some(a) = &self.apache {
            v.push(("apache", a.connect_string()));
        }
        v
    }

    fn stop(self) {
        self.ours.stop();
        drop(self.apache);
    }
}

// ---------------------------------------------------------------------------
// Child processes

#[derive(Default)]
struct Output {
    text: String,
    eof: bool,
}

type Shared = Arc<(Mutex<Output>, Condvar)>;

fn lock(s: &Shared) -> MutexGuard<'_, Output> {
    s.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client process with stdin to write to and stdout+stderr merged into
/// one pipe (so lines keep the order the process wrote them in). It runs
/// under `timeout` in a process group of its own, which is killed on drop.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Shared,
    reader: Option<JoinHandle<()>>,
    reaped: bool,
}

impl Proc {
    fn spawn(what: &str, program: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec \"$@\" 2>&1")
            .arg("sh")
            .arg("timeout")
            .arg("-k")
            .arg("5")
            .arg(PROC_LIMIT_SECS.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let mut stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let out: Shared = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let shared = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        lock(&shared).text.push_str(&String::from_utf8_lossy(&buf[..n]));
                        shared.1.notify_all();
                    }
                }
            }
            lock(&shared).eof = true;
            shared.1.notify_all();
        });
        Proc { what: what.to_string(), child, stdin, out, reader: Some(reader), reaped: false }
    }

    /// Writes one line to the process's stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()).and_then(|()| stdin.flush()) {
            self.fail(&format!("writing {line:?}: {e}"));
        }
    }

    /// Everything printed so far.
    fn text(&self) -> String {
        lock(&self.out).text.clone()
    }

    /// How many bytes were printed so far (an offset for [`Proc::wait_for`]).
    fn mark(&self) -> usize {
        lock(&self.out).text.len()
    }

    /// Waits until `needle` is printed at or after byte `from`; returns the
    /// offset just past it.
    fn wait_for(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(STEP_SECS);
        let mut o = lock(&self.out);
        loop {
            if let Some(i) = o.text.get(from..).and_then(|t| t.find(needle)) {
                return from + i + needle.len();
            }
            let now = Instant::now();
            if o.eof || now >= deadline {
                let why = if o.eof { "exited" } else { "timed out" };
                drop(o);
                self.fail(&format!("{why} waiting for {needle:?}"));
            }
            o = self.out.1.wait_timeout(o, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Sends `line` and waits for `needle` in what follows; returns the
    /// output from the command on.
    fn cmd(&mut self, line: &str, needle: &str) -> String {
        let from = self.mark();
        self.send(line);
        let end = self.wait_for(from, needle);
        self.text()[from..end].to_string()
    }

    fn fail(&self, msg: &str) -> ! {
        panic!("{}: {msg}; output so far:\n{}\n--- end of output", self.what, self.text());
    }

    /// Closes stdin, waits for the exit (killing the group past the
    /// limit) and returns the exit code and the whole output.
    fn finish(mut self) -> (i32, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(PROC_LIMIT_SECS);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                self.kill_group();
                self.fail("did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.reaped = true;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code().unwrap_or(-1), self.text())
    }

    fn kill_group(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if !self.reaped {
            self.kill_group();
        }
    }
}

// ---------------------------------------------------------------------------
// zkCli.sh

fn zkcli_available() -> bool {
    if !Path::new(ZKCLI).exists() {
        missing("zkCli.sh (Debian package `zookeeper`)", &format!("{ZKCLI} not found"));
        return false;
    }
    if let Err(why) = zk_test_support::apache::available() {
        missing("zkCli.sh (Debian package `zookeeper`)", &why);
        return false;
    }
    true
}

/// An interactive zkCli.sh session on `cs`, connected.
fn zkcli_interactive(name: &str, cs: &str) -> Proc {
    let p = Proc::spawn(&format!("zkCli.sh -server {cs} ({name})"), ZKCLI, &["-server", cs]);
    p.wait_for(0, "state:SyncConnected type:None path:null");
    p
}

/// `zkCli.sh -server cs ARGS...`: one command, its exit code and output.
fn zkcli_once(cs: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["-server", cs];
    all.extend_from_slice(args);
    Proc::spawn(&format!("zkCli.sh -server {cs} {}", args.join(" ")), ZKCLI, &all).finish()
}

/// Feeds `script` (one command a line) to zkCli.sh on stdin, then `quit`;
/// returns the exit code (that of the last command: 0 when it succeeded)
/// and the output.
fn zkcli_script(cs: &str, script: &str) -> (i32, String) {
    let mut p = Proc::spawn(&format!("zkCli.sh -server {cs} < script"), ZKCLI, &["-server", cs]);
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        p.send(line);
    }
    p.send("quit");
    p.finish()
}

/// zkCli.sh output without the noise (SLF4J, banners, blank lines,
/// connection-state events), with zxids, session ids and times masked:
/// what must be equal across servers.
fn clean(out: &str) -> Vec<String> {
    clean_lines(out, true)
}

/// [`clean`] without the masking.
fn clean_unmasked(out: &str) -> Vec<String> {
    clean_lines(out, false)
}

fn clean_lines(out: &str, mask: bool) -> Vec<String> {
    out.lines()
        .map(str::trim_end)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("SLF4J:")
                || l.starts_with("Connecting to ")
                || l.starts_with("Welcome to ZooKeeper")
                || l.starts_with("JLine support")
                || *l == "WATCHER::"
                // Connection-state events come from the event thread and
                // interleave with command output at random.
                || (l.starts_with("WatchedEvent state:") && l.contains(" type:None path:null")))
        })
        .map(|l| {
            if !mask {
                l.to_string()
            } else if l.starts_with("ctime = ") || l.starts_with("mtime = ") {
                format!("{} = <time>", &l[..5])
            } else {
                mask_hex(l)
            }
        })
        .collect()
}

/// Replaces every `0x<hex digits>` by `0x#`.
fn mask_hex(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i + 2]);
        let tail = &rest[i + 2..];
        let n = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n > 0 {
            out.push('#');
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Whether `lines` holds `line` exactly.
fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

/// The value of `key = value` in the first stat block after line `after`.
fn stat_field(lines: &[String], after: usize, key: &str) -> String {
    let prefix = format!("{key} = ");
    lines[after..]
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} after line {after} in {lines:#?}"))
        .to_string()
}

fn index_of(lines: &[String], line: &str) -> usize {
    lines.iter().position(|l| l == line).unwrap_or_else(|| panic!("no line {line:?} in {lines:#?}"))
}

/// Asserts that every server produced the same cleaned transcript.
fn assert_same_transcripts(what: &str, transcripts: &[(&str, Vec<String>)]) {
    let Some((first_name, first)) = transcripts.first() else { return };
    for (name, t) in &transcripts[1..] {
        if t != first {
            let n = first.len().max(t.len());
            let mut diff = String::new();
            for i in 0..n {
                let a = first.get(i).map_or("<none>", String::as_str);
                let b = t.get(i).map_or("<none>", String::as_str);
                let mark = if a == b { "  " } else { "!!" };
                diff.push_str(&format!("{mark} {a:<60} | {b}\n"));
            }
            panic!("{what}: {first_name} and {name} differ ({first_name} | {name}):\n{diff}");
        }
    }
}

/// One-shot invocations (`zkCli.sh -server HOST:PORT cmd args`), as scripts
/// use them: exit codes, outputs, and the data landing in the server.
#[test]
fn zkcli_one_shot_commands() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut transcripts = Vec::new();
    for (name, cs) in targets.list() {
        let mut all = String::new();
        // `want`: a line the command prints, or None for a silent one.
        let mut run = |args: &[&str], want_code: i32, want: Option<&str>| {
            let (code, out) = zkcli_once(&cs, args);
            let lines = clean(&out);
            assert_eq!(code, want_code, "{name}: zkCli {args:?} exit code; output:\n{out}");
            match want {
                Some(w) => assert!(has(&lines, w), "{name}: zkCli {args:?} did not print {w:?}:\n{out}"),
                None => assert!(lines.is_empty(), "{name}: zkCli {args:?} printed something:\n{out}"),
            }
            all.push_str(&out);
        };
        run(&["create", "/zkcli", "hello"], 0, Some("Created /zkcli"));
        run(&["get", "/zkcli"], 0, Some("hello"));
        run(&["ls", "/"], 0, Some("[zkcli, zookeeper]"));
        run(&["set", "/zkcli", "world"], 0, None);
        run(&["stat", "/zkcli"], 0, Some("dataVersion = 1"));
        run(&["create", "-s", "/zkcli/n-", "x"], 0, Some("Created /zkcli/n-0000000000"));
        run(&["create", "/zkcli", "again"], 1, Some("Node already exists: /zkcli"));
        run(&["get", "/missing"], 1, Some("Node does not exist: /missing"));
        run(&["delete", "/zkcli"], 1, Some("Node not empty: /zkcli"));
        run(&["delete", "/zkcli/n-0000000000"], 0, None);
        run(&["ls", "/zkcli"], 0, Some("[]"));

        let (data, version, kids) = with_rust_client(&cs, None, async |c| {
            let (data, stat) = c.get_data("/zkcli").await.unwrap();
            (data.to_vec(), stat.version, c.get_children("/zkcli").await.unwrap())
        });
        assert_eq!(
            (&data[..], version, kids.len()),
            (&b"world"[..], 1, 0),
            "{name}: as the Rust client sees it"
        );
        transcripts.push((name, clean(&all)));
    }
    assert_same_transcripts("one-shot zkCli commands", &transcripts);
    targets.stop();
}

const SESSION_SCRIPT: &str = "
create /zkcli hello
get /zkcli
ls /
stat /zkcli
set /zkcli world
get -s /zkcli
set -v 0 /zkcli stale
create /zkcli dup
get /zkcli/missing
create /zkcli/x/y deep
create bad-path
create -s /zkcli/seq- a
create -s /zkcli/seq- b
create -e /zkcli/eph e
create -e -s /zkcli/eseq- x
create /zkcli/eph/child c
stat /zkcli/eph
getEphemerals /zkcli
ls /zkcli
ls -s /zkcli
ls -R /zkcli
getAllChildrenNumber /zkcli
create -c /cont
create /cont/kid k
create -t 60000 /ttl t
stat /ttl
sync /zkcli
delete /zkcli
delete -v 5 /zkcli/seq-0000000000
delete /zkcli/seq-0000000000
create /tree
create /tree/a
create /tree/a/b
deleteall /tree
ls /tree
getAcl /zkcli
setAcl /zkcli/seq-0000000001 world:anyone:r
set /zkcli/seq-0000000001 denied
getAcl /zkcli/seq-0000000001
whoami
";

/// A scripted zkCli.sh session (commands on stdin): CRUD, stat, versions,
/// error messages, sequential/ephemeral/container/TTL nodes, listing
/// variants, deleteall, ACLs; the same transcript from both servers; the
/// state read back with the Rust client after the session closed.
#[test]
fn zkcli_scripted_session() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut transcripts = Vec::new();
    for (name, cs) in targets.list() {
        let (code, out) = zkcli_script(&cs, SESSION_SCRIPT);
        assert_eq!(code, 0, "{name}: the last command (whoami) succeeded:\n{out}");
        let l = clean(&out);
        let ctx = |what: &str| format!("{name}: {what}; transcript:\n{out}");
        for want in [
            "Created /zkcli",
            "hello",
            "version No is not valid : /zkcli",
            "Node already exists: /zkcli",
            "Node does not exist: /zkcli/missing",
            "Node does not exist: /zkcli/x/y",
            "Path must start with / character",
            "Created /zkcli/seq-0000000000",
            "Created /zkcli/seq-0000000001",
            "Created /zkcli/eph",
            "Created /zkcli/eseq-0000000003",
            "Ephemerals cannot have children: /zkcli/eph/child",
            "[eph, eseq-0000000003, seq-0000000000, seq-0000000001]",
            "/zkcli/eph",
            "/zkcli/eseq-0000000003",
            "4",
            "Created /cont",
            "Created /ttl",
            "Sync is OK",
            "Node not empty: /zkcli",
            "version No is not valid : /zkcli/seq-0000000000",
            "Node does not exist: /tree",
            "'world,'anyone",
            ": cdrwa",
            ": r",
            "Insufficient permission : /zkcli/seq-0000000001",
            "Auth scheme: User",
            "ip: 127.0.0.1",
        ] {
            assert!(has(&l, want), "{}", ctx(&format!("no line {want:?}")));
        }
        assert!(has(&l, "[zkcli, zookeeper]"), "{}", ctx("ls /"));
        // stat after create: 5 bytes, version 0; get -s after set: version 1.
        let first_stat = index_of(&l, "hello") + 2;
        assert_eq!(stat_field(&l, first_stat, "dataLength"), "5", "{}", ctx("stat dataLength"));
        assert_eq!(stat_field(&l, first_stat, "dataVersion"), "0", "{}", ctx("stat dataVersion"));
        let after_set = index_of(&l, "world");
        assert_eq!(stat_field(&l, after_set, "dataVersion"), "1", "{}", ctx("set bumps the version"));
        assert_eq!(stat_field(&l, after_set, "dataLength"), "5", "{}", ctx("dataLength after set"));
        // The ephemeral's owner is the session; `ls -s` counts children.
        let eph_stat = index_of(&l, "Ephemerals cannot have children: /zkcli/eph/child");
        assert_ne!(stat_field(&clean_unmasked(&out), eph_stat, "ephemeralOwner"), "0x0", "{}", ctx("owner"));
        let ls_s = index_of(&l, "[eph, eseq-0000000003, seq-0000000000, seq-0000000001]");
        let ls_s2 = ls_s + 1 + l[ls_s + 1..].iter().position(|x| x.starts_with('[')).unwrap();
        assert_eq!(stat_field(&l, ls_s2, "numChildren"), "4", "{}", ctx("ls -s numChildren"));
        assert_eq!(stat_field(&l, ls_s2, "cversion"), "4", "{}", ctx("ls -s cversion"));
        // ls -R lists the whole subtree, one path a line.
        for p in ["/zkcli/seq-0000000000", "/zkcli/seq-0000000001"] {
            assert!(has(&l, p), "{}", ctx(&format!("ls -R {p}")));
        }
        let ttl_stat = index_of(&l, "Created /ttl");
        assert_eq!(stat_field(&l, ttl_stat, "ephemeralOwner"), "0x#", "{}", ctx("TTL owner hidden"));

        // After the session: ephemerals gone, the rest as the script left it.
        let seen = with_rust_client(&cs, None, async |c| {
            let (data, stat) = c.get_data("/zkcli").await.unwrap();
            let mut kids = c.get_children("/zkcli").await.unwrap();
            kids.sort();
            let (acl, _) = c.get_acl("/zkcli/seq-0000000001").await.unwrap();
            let cont = c.get_children("/cont").await.unwrap();
            let ttl = c.get_data("/ttl").await.unwrap().0.to_vec();
            let tree = c.exists("/tree").await.unwrap().is_none();
            (data.to_vec(), stat.version, kids, acl, cont, ttl, tree)
        });
        let (data, version, kids, acl, cont, ttl, tree_gone) = seen;
        assert_eq!((&data[..], version), (&b"world"[..], 1), "{name}");
        assert_eq!(kids, vec!["seq-0000000001"], "{name}: ephemerals died with the zkCli session");
        assert_eq!(acl.len(), 1, "{name}");
        assert_eq!(
            (acl[0].perms, acl[0].id.scheme.as_str(), acl[0].id.id.as_str()),
            (perms::READ, "world", "anyone")
        );
        assert_eq!((cont, &ttl[..], tree_gone), (vec!["kid".to_string()], &b"t"[..], true), "{name}");
        transcripts.push((name, l));
    }
    assert_same_transcripts("scripted zkCli session", &transcripts);
    targets.stop();
}

/// The `type:.. path:..` of each node event zkCli printed in `out`.
fn watch_events(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("WatchedEvent state:SyncConnected "))
        .filter(|l| !l.starts_with("type:None"))
        .map(str::to_string)
        .collect()
}

/// Watches set from zkCli.sh (`get -w`, `ls -w`, `stat -w`, `addWatch`,
/// `removewatches`) fire WATCHER events when another client changes the
/// node: our Rust client, or a second zkCli.sh.
#[test]
fn zkcli_watches_fire_on_changes_by_other_clients() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut sequences = Vec::new();
    for (name, cs) in targets.list() {
        let rust = |f: &'static str| {
            with_rust_client(&cs, None, async |c| match f {
                "set w1" => {
                    c.set_data("/w", b"w1", None).await.unwrap();
                }
                "create later" => {
                    c.create("/w/later", b"", CreateMode::Persistent).await.unwrap();
                }
                "create deep" => {
                    c.create("/w/kid/deep", b"d0", CreateMode::Persistent).await.unwrap();
                    c.set_data("/w/kid/deep", b"d1", None).await.unwrap();
                    c.delete("/w/kid/deep", None).await.unwrap();
                }
                "set w2" => {
                    c.set_data("/w", b"w2", None).await.unwrap();
                }
                "delete later" => c.delete("/w/later", None).await.unwrap(),
                other => panic!("unknown step {other}"),
            })
        };
        let mut a = zkcli_interactive(name, &cs);
        a.cmd("create /w w0", "Created /w");
        a.cmd("get -w /w", "w0\n");
        let m = a.mark();
        rust("set w1");
        a.wait_for(m, "type:NodeDataChanged path:/w\n");

        a.cmd("ls -w /w", "[]\n");
        let m = a.mark();
        let (code, out) = zkcli_once(&cs, &["create", "/w/kid", "k"]);
        assert_eq!(code, 0, "{name}: second zkCli: {out}");
        a.wait_for(m, "type:NodeChildrenChanged path:/w\n");

        a.cmd("stat -w /w/later", "Node does not exist: /w/later");
        let m = a.mark();
        rust("create later");
        a.wait_for(m, "type:NodeCreated path:/w/later\n");

        a.cmd("addWatch -m PERSISTENT_RECURSIVE /w/kid", "");
        a.cmd("get /w/kid", "k\n"); // the addWatch reply came before this one
        let m = a.mark();
        rust("create deep");
        let m = a.wait_for(m, "type:NodeCreated path:/w/kid/deep\n");
        let m = a.wait_for(m, "type:NodeDataChanged path:/w/kid/deep\n");
        a.wait_for(m, "type:NodeDeleted path:/w/kid/deep\n");
        a.cmd("removewatches /w/kid", "");
        a.cmd("get -w /w", "w1\n");
        let m = a.mark();
        rust("set w2");
        let m = a.wait_for(m, "type:NodeDataChanged path:/w\n");
        a.cmd("get -s -w /w/later", "numChildren = ");
        rust("delete later");
        a.wait_for(m, "type:NodeDeleted path:/w/later\n");
        // A second zkCli deletes the recursively watched node's parent
        // tree; the removed persistent watch must stay silent.
        let (code, out) = zkcli_once(&cs, &["deleteall", "/w/kid"]);
        assert_eq!(code, 0, "{name}: second zkCli: {out}");
        a.cmd("ls /w", "[]\n");
        let (_, out) = {
            a.send("quit");
            a.finish()
        };
        let events = watch_events(&out);
        assert_eq!(
            events,
            [
                "type:NodeDataChanged path:/w",
                "type:NodeChildrenChanged path:/w",
                "type:NodeCreated path:/w/later",
                "type:NodeCreated path:/w/kid/deep",
                "type:NodeDataChanged path:/w/kid/deep",
                "type:NodeDeleted path:/w/kid/deep",
                // The client's own event for `removewatches`; after it the
                // deleteall of /w/kid must stay silent.
                "type:PersistentWatchRemoved path:/w/kid",
                "type:NodeDataChanged path:/w",
                "type:NodeDeleted path:/w/later",
            ],
            "{name}: the WATCHER events zkCli printed:\n{out}"
        );
        sequences.push((name, events));
    }
    assert_same_transcripts("zkCli watch events", &sequences);
    targets.stop();
}

/// `addauth digest` + `setAcl auth:...` from zkCli.sh: another session is
/// refused (NoAuth) for every operation until it authenticates; a wrong
/// password does not help; the digest id matches the Rust client's.
#[test]
fn zkcli_digest_acls_and_noauth() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut transcripts = Vec::new();
    let digest = digest_id("alice", "pw").id;
    for (name, cs) in targets.list() {
        let (code, owner) = zkcli_script(
            &cs,
            "create /acl secret
             addauth digest alice:pw
             setAcl /acl auth:alice:pw:cdrwa
             getAcl /acl
             get /acl
             create /acl/kid k
             whoami",
        );
        assert_eq!(code, 0, "{name}:\n{owner}");
        let lo = clean(&owner);
        assert!(has(&lo, &format!("'digest,'{digest}")), "{name}: getAcl shows the digest:\n{owner}");
        assert!(
            has(&lo, ": cdrwa") && has(&lo, "secret") && has(&lo, "Created /acl/kid"),
            "{name}:\n{owner}"
        );
        assert!(has(&lo, "digest: alice"), "{name}: whoami:\n{owner}");

        let (code, other) = zkcli_script(
            &cs,
            "get /acl
             set /acl x
             ls /acl
             create /acl/x
             delete /acl/kid
             addauth digest alice:wrong
             get /acl
             addauth digest alice:pw
             get /acl
             set /acl changed
             get /acl
             ls /acl",
        );
        assert_eq!(code, 0, "{name}:\n{other}");
        let lt = clean(&other);
        let denied: Vec<&String> = lt.iter().filter(|l| l.starts_with("Insufficient permission")).collect();
        assert_eq!(
            denied,
            [
                "Insufficient permission : /acl",
                "Insufficient permission : /acl",
                "Insufficient permission : /acl",
                "Insufficient permission : /acl/x",
                "Insufficient permission : /acl/kid",
                "Insufficient permission : /acl",
            ],
            "{name}: NoAuth for get, set, ls, create, delete and the wrong password:\n{other}"
        );
        let after = index_of(&lt, "Insufficient permission : /acl/kid");
        assert!(lt[after..].contains(&"secret".to_string()), "{name}: readable after addauth:\n{other}");
        assert!(lt[after..].contains(&"changed".to_string()), "{name}: writable after addauth:\n{other}");
        assert!(has(&lt, "[kid]"), "{name}: listable after addauth:\n{other}");

        let anon = with_rust_client(&cs, None, async |c| c.get_data("/acl").await.map(|_| ()));
        assert_eq!(anon, Err(Error::NoAuth), "{name}: the Rust client without auth");
        let data =
            with_rust_client(&cs, Some("alice:pw"), async |c| c.get_data("/acl").await.unwrap().0.to_vec());
        assert_eq!(&data[..], b"changed", "{name}: the Rust client with alice's digest");
        transcripts.push((name, [lo, lt].concat()));
    }
    assert_same_transcripts("zkCli ACL sessions", &transcripts);
    targets.stop();
}

/// `getAcl` from a session that may not read the node. Apache 3.8 checks
/// READ or ADMIN first (NoAuth otherwise) and, to a reader without ADMIN,
/// shows digest ids with the hash replaced by `x`.
#[test]
fn zkcli_get_acl_needs_read_or_admin_like_apache() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    for (name, cs) in targets.list().into_iter().rev() {
        zkcli_script(
            &cs,
            "addauth digest alice:pw
             create /readable r
             setAcl /readable auth:alice:pw:cdrwa,world:anyone:r
             create /hidden h
             setAcl /hidden auth:alice:pw:cdrwa",
        );
        let (_, out) = zkcli_script(&cs, "getAcl /readable\ngetAcl /hidden");
        let l = clean(&out);
        assert!(has(&l, "'digest,'alice:x"), "{name}: a reader without ADMIN sees the digest masked:\n{out}");
        assert!(has(&l, "Insufficient permission : /hidden"), "{name}: no READ/ADMIN, no ACL:\n{out}");
    }
    targets.stop();
}

/// `setquota` creates /zookeeper/quota/<path>/zookeeper_limits and
/// zookeeper_stats; Apache fills the stats with the subtree's node count
/// and bytes and keeps them current; `listquota` prints them.
#[test]
fn zkcli_quota_stats_like_apache() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    for (name, cs) in targets.list().into_iter().rev() {
        let (_, out) = zkcli_script(
            &cs,
            "create /q abc
             create /q/a 12
             setquota -n 10 /q
             listquota /q
             create /q/b 1
             listquota /q",
        );
        let l = clean(&out);
        let stats: Vec<&String> = l.iter().filter(|x| x.starts_with("Output stat for /q")).collect();
        assert_eq!(
            stats,
            ["Output stat for /q count=2,bytes=5", "Output stat for /q count=3,bytes=6"],
            "{name}:\n{out}"
        );
    }
    targets.stop();
}

/// With `enforceQuota=true` (Apache 3.7+), a write past a quota's hard
/// limit fails with QUOTAEXCEEDED; soft limits only warn; `delquota`
/// lifts the limit. zkCli prints the same on both servers.
#[test]
fn zkcli_quota_enforced_like_apache() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets {
        ours: Ours::start_with(|c| c.enforce_quota = true),
        apache: ApacheZk::start_with(ApacheZkOptions {
            extra_config: vec!["enforceQuota=true".into()],
            ..ApacheZkOptions::default()
        }),
    };
    let mut seen = Vec::new();
    for (name, cs) in targets.list() {
        let (_, out) = zkcli_script(
            &cs,
            "create /h
             setquota -N 3 /h
             create /h/a
             create /h/b
             create /h/c
             create /s
             setquota -n 2 /s
             create /s/a
             create /s/b
             create /b x
             setquota -B 4 /b
             set /b 12
             set /b 12345
             get /b
             delquota /h
             create /h/c
             listquota /h",
        );
        let l: Vec<String> = clean(&out)
            .into_iter()
            .filter(|x| x.starts_with("Created") || x.contains("uota") || x.len() <= 5)
            .collect();
        assert!(
            l.iter().any(|x| x.contains("Quota has exceeded : /h/c")),
            "{name}: the hard count limit:\n{out}"
        );
        assert!(l.iter().any(|x| x == "Created /s/b"), "{name}: a soft limit only warns:\n{out}");
        assert!(
            l.iter().any(|x| x.contains("Quota has exceeded : /b")),
            "{name}: the hard byte limit:\n{out}"
        );
        assert!(l.iter().any(|x| x == "Created /h/c"), "{name}: delquota lifts the limit:\n{out}");
        seen.push((name, l));
    }
    if let [(_, ours), (_, apache)] = &seen[..] {
        assert_eq!(ours, apache, "zkCli prints the same on both servers");
    }
    targets.stop();
}

// ---------------------------------------------------------------------------
// cli_mt, the C client's shell

fn cli_mt_available() -> bool {
    if !Path::new(CLI_MT).exists() {
        missing("cli_mt (Debian package `zookeeper-bin`)", &format!("{CLI_MT} not found"));
        return false;
    }
    true
}

/// The children `ls2` printed in `out` (the `\t` lines after `rc = 0`, up
/// to its stat), sorted.
fn cli_mt_children(out: &str, path: &str) -> Vec<String> {
    let after =
        out.split_once(&format!("{path}: rc = 0\n")).unwrap_or_else(|| panic!("no ls2 reply:\n{out}")).1;
    let mut kids: Vec<String> = after
        .lines()
        .take_while(|l| l.starts_with('\t') && !l.contains('='))
        .map(|l| l.trim().to_string())
        .collect();
    kids.sort();
    kids
}

/// The C client's shell, reading commands from stdin: create (plain,
/// sequential, ephemeral, container, TTL), set, get, ls2, exists watches,
/// the error codes of failing calls, digest auth; the results read back
/// with the Rust client. Same facts from both servers.
#[test]
fn cli_mt_session() {
    if !cli_mt_available() {
        return;
    }
    let targets = Targets::start();
    let mut all_facts = Vec::new();
    for (name, cs) in targets.list() {
        let acl = vec![zk_proto::records::Acl { perms: perms::ALL, id: digest_id("alice", "pw") }];
        with_rust_client(&cs, Some("alice:pw"), async |c| {
            let opts = zk_client::CreateOptions::new(CreateMode::Persistent).with_acl(acl);
            c.create("/secret", b"s3cret", opts).await.unwrap();
        });

        let mut p = Proc::spawn(&format!("cli_mt -h {cs} ({name})"), CLI_MT, &["-h", &cs]);
        p.wait_for(0, "Watcher SESSION_EVENT state = CONNECTED_STATE");
        let mut facts: Vec<String> = Vec::new();
        let mut fact = |f: String| facts.push(f);

        let out = p.cmd("create /cmt", "[/cmt]: rc = ");
        assert!(out.ends_with("[/cmt]: rc = "), "{out}");
        let out = p.cmd("get /cmt", "ephemeralOwner = ");
        assert!(out.contains("/cmt: rc = 0\n"), "{name}: get of a new node:\n{out}");
        fact(format!("new node: {}", out.lines().find(|l| l.contains("value_len")).unwrap_or("-").trim()));
        let out = p.cmd("set /cmt hello", "ephemeralOwner = ");
        assert!(out.contains("/cmt: rc = 0 Stat:") && out.contains("version=1\t"), "{name}: set:\n{out}");
        fact("set: version=1".into());
        let out = p.cmd("get /cmt", "ephemeralOwner = ");
        assert!(out.contains(" value_len = 5\nhello\n"), "{name}: get:\n{out}");
        fact("get: value_len = 5 hello".into());
        for (cmd, want) in [
            ("create +s /cmt/s-", "\tname = /cmt/s-0000000000\n"),
            ("create +s /cmt/s-", "\tname = /cmt/s-0000000001\n"),
            ("create +e /cmt/e", "\tname = /cmt/e\n"),
            ("create +c /cmt/c", "\tname = /cmt/c\n"),
            ("create +t=60000 /cmt/t", "\tname = /cmt/t\n"),
            ("create +es /cmt/es-", "\tname = /cmt/es-0000000005\n"),
        ] {
            p.cmd(cmd, want);
            fact(format!("{cmd}: {}", want.trim()));
        }
        let out = p.cmd("ls2 /cmt", "ephemeralOwner = ");
        let kids = cli_mt_children(&out, "/cmt");
        assert_eq!(kids, ["c", "e", "es-0000000005", "s-0000000000", "s-0000000001", "t"], "{name}:\n{out}");
        fact(format!("ls2: {kids:?}"));

        p.cmd("wexists /cmt/w", "Error -101 for /cmt/w");
        let m = p.mark();
        p.cmd("create /cmt/w", "[/cmt/w]: rc = 0");
        p.wait_for(m, "Watcher CREATED_EVENT state = CONNECTED_STATE for path /cmt/w");
        fact("wexists + create: CREATED_EVENT".into());

        for (cmd, want) in [
            ("delete /cmt", "/cmt: rc = -111\n"),
            ("delete /cmt/nope", "/cmt/nope: rc = -101\n"),
            ("create /cmt", "[/cmt]: rc = -110\n"),
            ("get /nope", "/nope: rc = -101\n"),
            ("create /nope/child", "[/nope/child]: rc = -101\n"),
            ("create /cmt/e/child", "[/cmt/e/child]: rc = -108\n"),
            ("get /secret", "/secret: rc = -102\n"),
            ("delete /cmt/s-0000000000", "/cmt/s-0000000000: rc = 0\n"),
        ] {
            p.cmd(cmd, want);
            fact(format!("{cmd}: {}", want.trim()));
        }
        p.send("addauth digest alice:pw");
        let out = p.cmd("get /secret", "ephemeralOwner = ");
        assert!(out.contains("/secret: rc = 0\n value_len = 6\ns3cret\n"), "{name}: after addauth:\n{out}");
        fact("addauth + get /secret: s3cret".into());
        p.send("quit");
        let (_, out) = p.finish();
        assert!(out.contains("Quitting..."), "{name}: {out}");

        let (data, mut kids) = with_rust_client(&cs, None, async |c| {
            (c.get_data("/cmt").await.unwrap().0.to_vec(), c.get_children("/cmt").await.unwrap())
        });
        kids.sort();
        assert_eq!(&data[..], b"hello", "{name}");
        assert_eq!(kids, ["c", "s-0000000001", "t", "w"], "{name}: ephemerals gone with the C session");
        all_facts.push((name, facts));
    }
    assert_same_transcripts("cli_mt facts", &all_facts);
    targets.stop();
}

// ---------------------------------------------------------------------------
// kazoo

/// A python3 that can `import kazoo`: `$ZK_PYTHON`, `python3` on PATH, or
/// Debian's `/usr/bin/python3` (package `python3-kazoo`).
fn kazoo_python() -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("ZK_PYTHON").into_iter().collect();
    candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for py in candidates {
        let probe = std::panic::catch_unwind(|| {
            Proc::spawn(&format!("{py} -c 'import kazoo'"), &py, &["-c", "import kazoo.client"]).finish()
        });
        if let Ok((0, _)) = probe {
            return Some(py);
        }
    }
    missing(
        "kazoo (PyPI `kazoo` or Debian `python3-kazoo`)",
        "no python3 (ZK_PYTHON, python3 on PATH, /usr/bin/python3) can `import kazoo`",
    );
    None
}

/// kazoo runs tests/real_clients/kazoo_session.py: two sessions, CRUD,
/// one-shot watches, DataWatch, ChildrenWatch, sequential and ephemeral
/// nodes, transactions, digest ACLs, the Lock, Counter, Semaphore,
/// LockingQueue and TreeCache recipes,
/// `server_version()` (the `envi` four-letter word) and session close.
/// What it left is then read with the Rust client.
#[test]
fn kazoo_client_and_recipes() {
    let Some(py) = kazoo_python() else { return };
    let targets = Targets::start();
    let mut steps = Vec::new();
    for (name, cs) in targets.list() {
        let (code, out) = Proc::spawn(&format!("kazoo on {name}"), &py, &[KAZOO_SCRIPT, &cs]).finish();
        assert!(code == 0 && out.contains("KAZOO-ALL-OK"), "{name}: kazoo exited with {code}:\n{out}");
        let done: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("OK "))
            .map(|l| l.split(' ').next().unwrap_or("").into())
            .collect();

        let seen = with_rust_client(&cs, None, async |c| {
            let get =
                async |p: &str| c.get_data(p).await.map(|(d, _)| String::from_utf8_lossy(&d).into_owned());
            let mut kids = c.get_children("/kazoo").await.unwrap();
            kids.sort();
            (
                get("/kazoo/left").await,
                get("/kazoo/counter").await,
                get("/kazoo/node").await,
                get("/kazoo/tx").await,
                get("/kazoo/secret").await,
                c.get_children("/kazoo/lock").await,
                kids,
            )
        });
        let (left, counter, node, tx, secret, lock, kids) = seen;
        assert_eq!(left.as_deref(), Ok("from-kazoo"), "{name}");
        assert_eq!(counter.as_deref(), Ok("3"), "{name}: kazoo's Counter");
        assert_eq!(node.as_deref(), Ok("in-tx"), "{name}: kazoo's transaction");
        assert_eq!(tx.as_deref(), Ok("tx"), "{name}");
        assert_eq!(secret, Err(Error::NoAuth), "{name}: kazoo's digest ACL holds for the Rust client");
        assert_eq!(lock, Ok(vec![]), "{name}: the Lock recipe left no contender behind");
        assert_eq!(
            kids,
            [
                "counter",
                "later",
                "left",
                "lock",
                "node",
                "queue",
                "secret",
                "sem",
                "sem-__lock__",
                "seq-0000000003",
                "seq-0000000004",
                "tx"
            ],
            "{name}: the ephemerals went with kazoo's sessions"
        );
        let secret = with_rust_client(&cs, Some("kaz:pw"), async |c| c.get_data("/kazoo/secret").await);
        assert_eq!(secret.map(|(d, _)| d.to_vec()), Ok(b"s3cret".to_vec()), "{name}");
        steps.push((name, done));
    }
    assert_same_transcripts("kazoo steps", &steps);
    targets.stop();
}

#[test]
fn mask_hex_masks_every_hex_number() {
    assert_eq!(mask_hex("cZxid = 0x1a2 owner 0x0 end"), "cZxid = 0x# owner 0x# end");
    assert_eq!(mask_hex("no hex 0x here"), "no hex 0x here");
    assert_eq!(clean("SLF4J: x\n\nctime = Sat\nWATCHER::\nhello\n"), ["ctime = <time>", "hello"]);
}

// ---------------------------------------------------------------------------
// Connection loss and session expiry, through the fault-injection proxy

/// The `ephemeralOwner = ...` value in `out`.
fn ephemeral_owner(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("ephemeralOwner = "))
        .unwrap_or_else(|| panic!("no ephemeralOwner in {out}"))
        .to_string()
}

/// The connection of a zkCli.sh session breaks (and stays refused) while
/// another client changes what it watches; when it comes back, the server
/// takes the session back (same ephemeral owner, ephemeral kept) and, from
/// the watches the client re-sends with its last zxid (SetWatches), fires
/// the events it missed.
#[test]
fn zkcli_session_and_watches_survive_a_lost_connection() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut sequences = Vec::new();
    for (name, cs) in targets.list() {
        let proxy = Proxy::start(cs.parse().expect("host:port"));
        let pcs = proxy.connect_string();
        let mut a = Proc::spawn(
            &format!("zkCli.sh via proxy ({name})"),
            ZKCLI,
            &["-timeout", "20000", "-server", &pcs],
        );
        a.wait_for(0, "state:SyncConnected type:None path:null");
        a.cmd("create /w w0", "Created /w");
        a.cmd("create -e /eph e", "Created /eph");
        let owner = ephemeral_owner(&a.cmd("stat /eph", "numChildren = "));
        a.cmd("get -w /w", "w0\n");
        a.cmd("ls -w /w", "[]\n");
        a.cmd("stat -w /w2", "Node does not exist: /w2");
        // A persistent watch makes the client re-send its watches with
        // SetWatches2 (the one-shot ones alone go as SetWatches).
        a.cmd("addWatch -m PERSISTENT /w3", "");
        a.cmd("get /w", "w0\n");

        let m = a.mark();
        proxy.set_refuse(true);
        proxy.cut();
        let m = a.wait_for(m, "state:Disconnected type:None path:null");
        with_rust_client(&cs, None, async |c| {
            c.set_data("/w", b"w1", None).await.unwrap();
            c.create("/w/k", b"", CreateMode::Persistent).await.unwrap();
            c.create("/w2", b"", CreateMode::Persistent).await.unwrap();
            c.create("/w3", b"", CreateMode::Persistent).await.unwrap();
        });
        proxy.set_refuse(false);
        a.wait_for(m, "state:SyncConnected type:None path:null");
        for e in [
            "type:NodeDataChanged path:/w\n",
            "type:NodeChildrenChanged path:/w\n",
            "type:NodeCreated path:/w2\n",
        ] {
            a.wait_for(m, e);
        }
        // The persistent watch is back: a change after the reconnect fires
        // (as in Apache, the creation missed meanwhile does not).
        with_rust_client(&cs, None, async |c| {
            c.set_data("/w3", b"3", None).await.unwrap();
        });
        a.wait_for(m, "type:NodeDataChanged path:/w3\n");
        let again = a.cmd("stat /eph", "numChildren = ");
        assert_eq!(ephemeral_owner(&again), owner, "{name}: the same session after reconnecting");
        a.cmd("get /w", "w1\n");
        a.send("quit");
        let (_, out) = a.finish();
        let mut events = watch_events(&out[m..]);
        events.sort();
        assert_eq!(
            events,
            [
                "type:NodeChildrenChanged path:/w",
                "type:NodeCreated path:/w2",
                "type:NodeDataChanged path:/w",
                "type:NodeDataChanged path:/w3",
            ],
            "{name}: the events after the reconnect:\n{out}"
        );
        sequences.push((name, events));
        let eph = with_rust_client(&cs, None, async |c| c.exists("/eph").await.unwrap());
        assert!(eph.is_none(), "{name}: the ephemeral went with the closed session");
        drop(proxy);
    }
    assert_same_transcripts("zkCli events after reconnecting", &sequences);
    targets.stop();
}

/// A zkCli.sh session whose network is gone longer than its session
/// timeout: the server expires it (its ephemeral goes), and when the
/// client gets through again it is told `Expired`; its later commands
/// fail ("Not connected").
#[test]
fn zkcli_sees_its_session_expire() {
    if !zkcli_available() {
        return;
    }
    let targets = Targets::start();
    let mut transcripts = Vec::new();
    for (name, cs) in targets.list() {
        let proxy = Proxy::start(cs.parse().expect("host:port"));
        let pcs = proxy.connect_string();
        let mut a = Proc::spawn(
            &format!("zkCli.sh via proxy ({name})"),
            ZKCLI,
            &["-timeout", "4000", "-server", &pcs],
        );
        a.wait_for(0, "state:SyncConnected type:None path:null");
        a.cmd("create -e /eph e", "Created /eph");
        let m = a.mark();
        proxy.set_refuse(true);
        proxy.cut();
        let m = a.wait_for(m, "state:Disconnected type:None path:null");
        let started = Instant::now();
        with_rust_client(&cs, None, async |c| {
            while c.exists("/eph").await.unwrap().is_some() {
                assert!(started.elapsed() < Duration::from_secs(30), "{name}: the session never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let took = started.elapsed();
        proxy.set_refuse(false);
        a.wait_for(m, "state:Expired type:None path:null");
        let out = a.cmd("ls /", "Not connected");
        a.send("quit");
        let _ = a.finish();
        assert!(took >= Duration::from_secs(2), "{name}: expired after only {took:?}");
        transcripts.push((name, clean(&out)));
        drop(proxy);
    }
    assert_same_transcripts("zkCli after expiry", &transcripts);
    targets.stop();
}

const KAZOO_RECONNECT_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real_clients/kazoo_reconnect.py");

/// kazoo through the proxy, in both modes of kazoo_reconnect.py: a lost
/// connection that comes back within the session timeout (same session,
/// the recipes updated with the changes made meanwhile), and one that does not
/// (LOST, then a new session without the old ephemeral). kazoo does not
/// re-send one-shot watches (it ends them with a NONE event), so the
/// SetWatches path is covered by the zkCli test above.
#[test]
fn kazoo_reconnects_and_sees_expiry() {
    let Some(py) = kazoo_python() else { return };
    let targets = Targets::start();
    for (name, cs) in targets.list() {
        for mode in ["reconnect", "expire"] {
            let proxy = Proxy::start(cs.parse().expect("host:port"));
            let pcs = proxy.connect_string();
            let mut p =
                Proc::spawn(&format!("kazoo {mode} on {name}"), &py, &[KAZOO_RECONNECT_SCRIPT, &pcs, mode]);
            let m = p.wait_for(0, "READY session=");
            proxy.set_refuse(true);
            proxy.cut();
            p.wait_for(m, "SUSPENDED");
            let started = Instant::now();
            with_rust_client(&cs, None, async |c| {
                if mode == "reconnect" {
                    c.set_data("/kr/w", b"w1", None).await.unwrap();
                    c.create("/kr/w/k", b"", CreateMode::Persistent).await.unwrap();
                    c.create("/kr/w2", b"", CreateMode::Persistent).await.unwrap();
                } else {
                    while c.exists("/kr/eph").await.unwrap().is_some() {
                        assert!(started.elapsed() < Duration::from_secs(30), "{name}: never expired");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
            proxy.set_refuse(false);
            p.send("GO");
            let (code, out) = p.finish();
            let want = if mode == "reconnect" { "KAZOO-RECONNECT-OK" } else { "KAZOO-EXPIRE-OK" };
            assert!(code == 0 && out.contains(want), "{name} {mode}: kazoo exited with {code}:\n{out}");
            // Clean up for the next mode (the Rust client sees kazoo's state).
            with_rust_client(&cs, None, async |c| {
                for p in ["/kr/w/k", "/kr/w", "/kr/w2"] {
                    let _ = c.delete(p, None).await;
                }
                let left = c.get_children("/kr").await.unwrap();
                assert_eq!(
                    left,
                    Vec::<String>::new(),
                    "{name} {mode}: kazoo's ephemeral is gone with its session"
                );
                c.delete("/kr", None).await.unwrap();
            });
            drop(proxy);
        }
    }
    targets.stop();
}

const KAZOO_FAILOVER_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real_clients/kazoo_failover.py");

/// kazoo against a 3-server ensemble of ours whose leader is stopped: it
/// keeps its session, its Lock, its ephemeral node and its DataWatch, and
/// writes on once a new leader serves.
#[test]
fn kazoo_keeps_its_session_and_lock_when_our_leader_dies() {
    let Some(py) = kazoo_python() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cluster = rt.block_on(zk_server::TestingCluster::start(3)).expect("start an ensemble");
    let leader = rt.block_on(cluster.wait_for_leader(Duration::from_secs(60))).expect("a leader");
    let cs = cluster.connect_string();
    let mut p = Proc::spawn("kazoo failover", &py, &[KAZOO_FAILOVER_SCRIPT, &cs]);
    p.wait_for(0, "READY session=");
    rt.block_on(cluster.stop(leader));
    let new_leader = rt.block_on(cluster.wait_for_leader(Duration::from_secs(60))).expect("a new leader");
    assert_ne!(new_leader, leader);
    p.send("GO");
    let (code, out) = p.finish();
    assert!(code == 0 && out.contains("KAZOO-FAILOVER-OK"), "kazoo exited with {code}:\n{out}");
    rt.block_on(cluster.stop_all());
}

/// zkCli.sh (Apache's Java client) on a 3-server ensemble of ours: the
/// server holding its connection is SIGKILLed; zkCli reconnects to
/// another server with the same session (Disconnected, then SyncConnected,
/// never Expired), its ephemeral node lives on and it writes on.
#[test]
fn zkcli_moves_to_another_server_with_its_session_when_its_server_dies() {
    if !zkcli_available() {
        return;
    }
    let mut e = zk_test_support::ours::OurEnsemble::start(3, "");
    e.wait_ready(60);
    let cs = e.connect_string();
    let mut cli = zkcli_interactive("failover", &cs);
    cli.cmd("create -e /zkcli-eph held", "Created /zkcli-eph");
    let owner = with_rust_client(&cs, None, async |c: &Client| {
        c.exists("/zkcli-eph").await.unwrap().map(|s| s.ephemeral_owner).unwrap()
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sid = format!("sid={owner:#x}");
    let victim = (0..3)
        .find(|i| {
            rt.block_on(zk_test_support::container::four_letter_word(e.addr(*i), "cons"))
                .is_some_and(|cons| cons.contains(&sid))
        })
        .unwrap_or_else(|| panic!("no server lists zkCli's session {sid}"));
    let mark = cli.mark();
    e.kill(victim);
    cli.wait_for(mark, "state:Disconnected");
    let back = cli.wait_for(mark, "state:SyncConnected");
    let out = cli.cmd("get /zkcli-eph", "held");
    assert!(!out.contains("Exception"), "{out}");
    cli.cmd("create /zkcli-after failover", "Created /zkcli-after");
    assert!(!cli.text()[mark..back].contains("Expired"), "zkCli's session expired:\n{}", cli.text());
    cli.send("quit");
    let (code, text) = cli.finish();
    assert!(!text[mark..].contains("Expired"), "zkCli's session expired (exit {code}):\n{text}");
    let survivor = (0..3).find(|i| *i != victim).unwrap();
    with_rust_client(&e.addr(survivor).to_string(), None, async |c: &Client| {
        c.sync("/").await.unwrap();
        let (data, _) = c.get_data("/zkcli-after").await.unwrap();
        assert_eq!(&data[..], b"failover");
        // zkCli quit: its session closed, and its ephemeral with it.
        assert_eq!(c.exists("/zkcli-eph").await.unwrap(), None);
    });
}

/// `zkCli.sh -r` (Apache's Java client, `canBeReadOnly`) against one of
/// our servers in read-only mode (`readonlymode.enabled`, its two peers
/// stopped): it connects read-only, reads, and a write fails as Apache's
/// client reports it (`Not a read-only call`).
#[test]
fn zkcli_reads_from_a_server_in_read_only_mode() {
    if !zkcli_available() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cluster =
        rt.block_on(zk_server::TestingCluster::start_with(3, "readonlymode.enabled=true\n")).expect("start");
    rt.block_on(cluster.wait_for_leader(Duration::from_secs(60))).expect("a leader");
    let addr = cluster.addr(0).to_string();
    with_rust_client(&addr, None, async |c: &Client| {
        c.create("/ro-cli", b"kept", CreateMode::Persistent).await.unwrap();
    });
    rt.block_on(async {
        cluster.stop(1).await;
        cluster.stop(2).await;
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(zk_test_support::container::four_letter_word(cluster.addr(0), "isro")).as_deref()
        != Some("ro")
    {
        assert!(Instant::now() < deadline, "server 0 never went read-only");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut cli = Proc::spawn(&format!("zkCli.sh -server {addr} -r"), ZKCLI, &["-server", &addr, "-r"]);
    cli.wait_for(0, "state:ConnectedReadOnly");
    cli.cmd("get /ro-cli", "kept");
    let out = cli.cmd("create /ro-cli-write x", "Not a read-only call");
    assert!(!out.contains("Created"), "{out}");
    cli.send("quit");
    cli.finish();
    rt.block_on(cluster.stop_all());
}
