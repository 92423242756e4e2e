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
use zk_test_support::apache::ApacheZk;
use zk_test_support::external::missing;

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
        common::trace_init();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = rt.block_on(zk_server::Server::start_temp()).expect("start zk-server");
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
/// returns the output.
fn zkcli_script(cs: &str, script: &str) -> String {
    let mut p = Proc::spawn(&format!("zkCli.sh -server {cs} < script"), ZKCLI, &["-server", cs]);
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        p.send(line);
    }
    p.send("quit");
    let (code, out) = p.finish();
    assert_eq!(code, 0, "zkCli.sh on {cs} exited with {code}; output:\n{out}");
    out
}

/// zkCli.sh output without the noise (SLF4J, banners, blank lines), with
/// zxids, session ids and times masked: what must be equal across servers.
fn clean(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim_end)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("SLF4J:")
                || l.starts_with("Connecting to ")
                || l.starts_with("Welcome to ZooKeeper")
                || l.starts_with("JLine support")
                || *l == "WATCHER::")
        })
        .map(|l| {
            if l.starts_with("ctime = ") || l.starts_with("mtime = ") {
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
        let mut run = |args: &[&str], want_code: i32, want_line: &str| {
            let (code, out) = zkcli_once(&cs, args);
            let lines = clean(&out);
            assert_eq!(code, want_code, "{name}: zkCli {args:?} exit code; output:\n{out}");
            assert!(has(&lines, want_line), "{name}: zkCli {args:?} did not print {want_line:?}:\n{out}");
            all.push_str(&out);
        };
        run(&["create", "/zkcli", "hello"], 0, "Created /zkcli");
        run(&["get", "/zkcli"], 0, "hello");
        run(&["ls", "/"], 0, "[zkcli, zookeeper]");
        run(&["set", "/zkcli", "world"], 0, "WatchedEvent state:SyncConnected type:None path:null");
        run(&["stat", "/zkcli"], 0, "dataVersion = 1");
        run(&["create", "-s", "/zkcli/n-", "x"], 0, "Created /zkcli/n-0000000000");
        run(&["create", "/zkcli", "again"], 1, "Node already exists: /zkcli");
        run(&["get", "/missing"], 1, "Node does not exist: /missing");
        run(&["delete", "/zkcli"], 1, "Node not empty: /zkcli");
        run(&["delete", "/zkcli/n-0000000000"], 0, "WatchedEvent state:SyncConnected type:None path:null");
        run(&["ls", "/zkcli"], 0, "[]");

        let (data, version, kids) = with_rust_client(&cs, None, async |c| {
            let (data, stat) = c.get_data("/zkcli").await.unwrap();
            (data.to_vec(), stat.version, c.get_children("/zkcli").await.unwrap())
        });
        assert_eq!((&data[..], version, kids.len()), (&b"world"[..], 1, 0), "{name}: as the Rust client sees it");
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
        let out = zkcli_script(&cs, SESSION_SCRIPT);
        let l = clean(&out);
        let ctx = |what: &str| format!("{name}: {what}; transcript:\n{out}");
        for want in [
            "Created /zkcli",
            "hello",
            "[cont, ttl, zkcli, zookeeper]",
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
        // `ls /` ran before /cont and /ttl existed.
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
        assert_eq!((acl[0].perms, acl[0].id.scheme.as_str(), acl[0].id.id.as_str()), (perms::READ, "world", "anyone"));
        assert_eq!((cont, &ttl[..], tree_gone), (vec!["kid".to_string()], &b"t"[..], true), "{name}");
        transcripts.push((name, l));
    }
    assert_same_transcripts("scripted zkCli session", &transcripts);
    targets.stop();
}

/// [`clean`] without masking.
fn clean_unmasked(out: &str) -> Vec<String> {
    let masked = clean(out);
    let raw: Vec<String> = out
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("SLF4J:")
                || l.starts_with("Connecting to ")
                || l.starts_with("Welcome to ZooKeeper")
                || l.starts_with("JLine support")
                || *l == "WATCHER::")
        })
        .map(str::to_string)
        .collect();
    assert_eq!(raw.len(), masked.len());
    raw
}

/// The `(type, path)` of each `WatchedEvent` line printed from `from` on.
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
                "set w1" => drop(c.set_data("/w", b"w1", None).await.unwrap()),
                "create later" => drop(c.create("/w/later", b"", CreateMode::Persistent).await.unwrap()),
                "create deep" => {
                    c.create("/w/kid/deep", b"d0", CreateMode::Persistent).await.unwrap();
                    c.set_data("/w/kid/deep", b"d1", None).await.unwrap();
                    c.delete("/w/kid/deep", None).await.unwrap();
                }
                "set w2" => drop(c.set_data("/w", b"w2", None).await.unwrap()),
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
        assert!(
            !events.iter().any(|e| e.ends_with("path:/w/kid")),
            "{name}: the removed recursive watch fired: {events:#?}"
        );
        sequences.push((name, events));
    }
    assert_eq!(sequences[0].1.len(), 7, "{:#?}", sequences[0]);
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
        let owner = zkcli_script(
            &cs,
            "create /acl secret
             addauth digest alice:pw
             setAcl /acl auth:alice:pw:cdrwa
             getAcl /acl
             get /acl
             create /acl/kid k
             whoami",
        );
        let lo = clean(&owner);
        assert!(has(&lo, &format!("'digest,'{digest}")), "{name}: getAcl shows the digest:\n{owner}");
        assert!(has(&lo, ": cdrwa") && has(&lo, "secret") && has(&lo, "Created /acl/kid"), "{name}:\n{owner}");
        assert!(has(&lo, "digest: alice"), "{name}: whoami:\n{owner}");

        let other = zkcli_script(
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
        let data = with_rust_client(&cs, Some("alice:pw"), async |c| c.get_data("/acl").await.unwrap().0.to_vec());
        assert_eq!(&data[..], b"changed", "{name}: the Rust client with alice's digest");
        transcripts.push((name, [lo, lt].concat()));
    }
    assert_same_transcripts("zkCli ACL sessions", &transcripts);
    targets.stop();
}
