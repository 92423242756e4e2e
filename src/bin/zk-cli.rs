//! `zk-cli`: an operator's shell for ZooKeeper, what Apache's `zkCli.sh`
//! does, on top of `zk_client::Client`.
//!
//! ```text
//! zk-cli [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [cmd args...]
//! ```
//!
//! - With a command: runs it once and exits: 0 on success, 1 when the
//!   command (or the connection) failed, 2 for a command line that does not
//!   parse. Errors go to stderr, in zkCli's words where zkCli has them
//!   (`Node does not exist: /x`), else as `zk_client::Error` displays them.
//! - Without a command, stdin a terminal: an interactive shell with line
//!   editing and history (rustyline), prompt `[zk: host:port(CONNECTED) N] `,
//!   until `quit` or end of input (Ctrl-D; Ctrl-C clears the line). Watch
//!   events and session state changes print as they arrive.
//! - Without a command, stdin not a terminal: a script, one command a line
//!   (blank lines and lines starting with `#` are skipped). Like zkCli, a
//!   failing command does not stop the script: its error is printed and the
//!   next line runs; the exit status is 1 if any line failed, else 0.
//!   `quit` ends the script early. Watch events print as they arrive (no
//!   session state events, to keep script output clean).
//!
//! `-server` defaults to `localhost:2181`; `-timeout` is the session timeout
//! in milliseconds (default 30000), which is also how long the first
//! connection is waited for; `-r` accepts read-only servers.
//!
//! Commands use zkCli's syntax (run `help`). Output follows zkCli: `ls`
//! prints `[a, b]` (sorted), `stat` the Stat block with Java's date format
//! (always in UTC here), `get` the data (`null` when empty: zk-client does
//! not tell empty data from null), `getAcl`
//! zkCli's `'scheme,'id` / `: perms` pairs, watches
//! `WATCHER::` then `WatchedEvent state:SyncConnected type:NodeDataChanged path:/x`.
//! Arguments may be quoted with `'` or `"` (no escapes, as zkCli); options
//! may come anywhere after the command and combine (`create -es /x`); `--`
//! ends them. Beyond zkCli: `removewatches -p` / `-r` (persistent and
//! persistent-recursive watches), and analysis zkCli lacks: `du` (the
//! largest subtrees by node count and bytes), `fanout` (the nodes with the
//! most children) and `deleteall -d` (what a recursive delete would
//! remove, removing nothing). Quotas (`setquota`, `listquota`, `delquota`)
//! write Apache's layout under `/zookeeper/quota`. `-client-configuration
//! file` takes zkCli's properties (`zookeeper.client.secure=true` and
//! `zookeeper.ssl.*`) for TLS. Not supported: `reconfig` (the server has no
//! dynamic reconfiguration), `config -c` / `-w`, `removewatches -l`, SASL.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use self::shell::{LineSource, Settings, Shell, Step};

/// Turns a command line (or the words of one) into a typed `Command`.
pub(crate) mod parse {
    use std::fmt;
    use std::time::Duration;

    use zk_client::{Acl, AddWatchMode, CreateMode, Id, WatcherType};
    use zk_proto::types::perms;

    /// One command of the shell, its arguments checked.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Command {
        /// `ls [-s] [-w] [-R] path`
        Ls { path: String, stat: bool, watch: bool, recursive: bool },
        /// `get [-s] [-w] path`
        Get { path: String, stat: bool, watch: bool },
        /// `set [-s] [-v version] path data`
        Set { path: String, data: String, version: Option<i32>, stat: bool },
        /// `create [-s] [-e] [-c] [-t ttl] path [data] [acl]`
        Create { path: String, data: String, acl: Option<Vec<Acl>>, mode: CreateMode, ttl: Option<Duration> },
        /// `delete [-v version] path`
        Delete { path: String, version: Option<i32> },
        /// `deleteall path [-b batch size]`
        DeleteAll { path: String, batch: usize },
        /// `stat [-w] path`
        Stat { path: String, watch: bool },
        /// `getAcl [-s] path`
        GetAcl { path: String, stat: bool },
        /// `setAcl [-s] [-v version] [-R] path acl`
        SetAcl { path: String, acl: Vec<Acl>, version: Option<i32>, stat: bool, recursive: bool },
        /// `addauth scheme [auth]`
        AddAuth { scheme: String, auth: String },
        /// `sync path`
        Sync { path: String },
        /// `whoami`
        WhoAmI,
        /// `addWatch [-m mode] path`
        AddWatch { path: String, mode: AddWatchMode },
        /// `removewatches path [-c|-d|-a|-p|-r]`
        RemoveWatches { path: String, watcher_type: WatcherType },
        /// `config [-s]`
        Config { stat: bool },
        /// `getAllChildrenNumber path`
        GetAllChildrenNumber { path: String },
        /// `getEphemerals [path]`
        GetEphemerals { path: String },
        /// `setquota -n|-b|-N|-B val path` (soft count, soft bytes, hard
        /// count, hard bytes; at least one)
        SetQuota { path: String, limits: [Option<i64>; 4] },
        /// `listquota path`
        ListQuota { path: String },
        /// `delquota [-n|-b|-N|-B] path` (no flag: the whole quota)
        DelQuota { path: String, which: [bool; 4] },
        /// `du [-n top] [-d depth] path`: node counts and bytes of the
        /// subtrees `depth` levels below `path`, largest first
        Du { path: String, top: usize, depth: usize },
        /// `fanout [-n top] path`: the nodes with the most children
        Fanout { path: String, top: usize },
        /// `deleteall -d path`: what `deleteall` would delete, deleting
        /// nothing
        DeleteAllDryRun { path: String },
        /// `connect [host:port]`
        Connect { server: Option<String> },
        /// `close`
        Close,
        /// `quit`
        Quit,
        /// `help`
        Help,
        /// `history`
        History,
        /// `redo cmdno`
        Redo { index: usize },
        /// `printwatches [on|off]`
        PrintWatches { on: Option<bool> },
        /// `version`
        Version,
    }

    impl Command {
        /// Whether the command needs a session (the others are the shell's own).
        pub(crate) fn needs_session(&self) -> bool {
            !matches!(
                self,
                Command::Connect { .. }
                    | Command::Close
                    | Command::Quit
                    | Command::Help
                    | Command::History
                    | Command::Redo { .. }
                    | Command::PrintWatches { .. }
                    | Command::Version
            )
        }
    }

    /// Why a line is not a command.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum ParseError {
        /// A quote opened and never closed.
        UnterminatedQuote(char),
        /// The first word names no command.
        UnknownCommand(String),
        /// A known command with wrong arguments.
        BadArgs {
            /// The command's usage line.
            usage: &'static str,
            /// What is wrong.
            reason: String,
        },
    }

    impl fmt::Display for ParseError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                ParseError::UnterminatedQuote(q) => write!(f, "unterminated {q} quote"),
                ParseError::UnknownCommand(c) => write!(f, "unknown command: {c}"),
                ParseError::BadArgs { usage, reason } => write!(f, "{reason}\nusage: {usage}"),
            }
        }
    }

    impl std::error::Error for ParseError {}

    /// A command's name, usage line, flags (letters without a value) and
    /// options (letters taking a value).
    pub(crate) struct Spec {
        pub(crate) name: &'static str,
        pub(crate) usage: &'static str,
        flags: &'static str,
        valued: &'static str,
    }

    const fn spec(
        name: &'static str,
        usage: &'static str,
        flags: &'static str,
        valued: &'static str,
    ) -> Spec {
        Spec { name, usage, flags, valued }
    }

    /// Every command, in the order `help` lists them.
    pub(crate) const COMMANDS: &[Spec] = &[
        spec("addauth", "addauth scheme auth", "", ""),
        spec(
            "addWatch",
            "addWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
            "",
            "m",
        ),
        spec("close", "close", "", ""),
        spec("config", "config [-s]", "s", ""),
        spec("connect", "connect [host:port[,host:port...][/chroot]]", "", ""),
        spec("create", "create [-s] [-e] [-c] [-t ttl] path [data] [acl]", "sec", "t"),
        spec("delete", "delete [-v version] path", "", "v"),
        spec("delquota", "delquota [-n|-b|-N|-B] path", "nbNB", ""),
        spec(
            "deleteall",
            "deleteall path [-b batch size] [-d] # -d: print what would be deleted, delete nothing",
            "d",
            "b",
        ),
        spec(
            "du",
            "du [-n top] [-d depth] path # the largest subtrees (node count, bytes), depth levels below path",
            "",
            "nd",
        ),
        spec("fanout", "fanout [-n top] path # the nodes with the most children under path", "", "n"),
        spec("get", "get [-s] [-w] path", "sw", ""),
        spec("getAcl", "getAcl [-s] path", "s", ""),
        spec("getAllChildrenNumber", "getAllChildrenNumber path", "", ""),
        spec("getEphemerals", "getEphemerals [path]", "", ""),
        spec("help", "help", "", ""),
        spec("history", "history", "", ""),
        spec("listquota", "listquota path", "", ""),
        spec("ls", "ls [-s] [-w] [-R] path", "swR", ""),
        spec("printwatches", "printwatches on|off", "", ""),
        spec("quit", "quit", "", ""),
        spec("redo", "redo cmdno", "", ""),
        spec(
            "removewatches",
            "removewatches path [-c|-d|-a|-p|-r] # children, data, any (default), persistent, persistent recursive",
            "cdaplr",
            "",
        ),
        spec("set", "set [-s] [-v version] path data", "s", "v"),
        spec(
            "setquota",
            "setquota -n|-b|-N|-B val path # -n/-b soft count/bytes, -N/-B hard count/bytes",
            "",
            "nbNB",
        ),
        spec("setAcl", "setAcl [-s] [-v version] [-R] path acl", "sR", "v"),
        spec("stat", "stat [-w] path", "w", ""),
        spec("sync", "sync path", "", ""),
        spec("version", "version", "", ""),
        spec("whoami", "whoami", "", ""),
    ];

    /// The usage text `help` prints.
    pub(crate) fn usage() -> String {
        let mut s =
            String::from("zk-cli -server host:port[,host:port...][/chroot] [-timeout ms] [-r] cmd args\n");
        for c in COMMANDS {
            s.push('\t');
            s.push_str(c.usage);
            s.push('\n');
        }
        s
    }

    /// Splits a line into words: whitespace separates, `'...'` and `"..."`
    /// group (the quotes are dropped, `""` is an empty word); no escapes.
    pub(crate) fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' | '"' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some(q) if q == c => break,
                            Some(other) => word.push(other),
                            None => return Err(ParseError::UnterminatedQuote(c)),
                        }
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        Ok(words)
    }

    /// Parses one line of input; `Ok(None)` for a blank line or a `#` comment.
    pub(crate) fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
        if line.trim_start().starts_with('#') {
            return Ok(None);
        }
        let words = tokenize(line)?;
        if words.is_empty() {
            return Ok(None);
        }
        parse_args(&words).map(Some)
    }

    /// The flags, option values and positional words of one command.
    struct Args {
        spec: &'static Spec,
        flags: Vec<char>,
        values: Vec<(char, String)>,
        words: Vec<String>,
    }

    impl Args {
        fn parse<S: AsRef<str>>(spec: &'static Spec, rest: &[S]) -> Result<Args, ParseError> {
            let mut args = Args { spec, flags: Vec::new(), values: Vec::new(), words: Vec::new() };
            let mut rest = rest.iter().map(AsRef::as_ref);
            let mut options_done = false;
            while let Some(word) = rest.next() {
                let is_option = !options_done
                    && word.len() > 1
                    && word.starts_with('-')
                    && !word[1..].starts_with(|c: char| c.is_ascii_digit());
                if !is_option {
                    args.words.push(word.to_string());
                    continue;
                }
                if word == "--" {
                    options_done = true;
                    continue;
                }
                let letters = &word[1..];
                for (i, c) in letters.char_indices() {
                    if spec.flags.contains(c) {
                        args.flags.push(c);
                    } else if spec.valued.contains(c) {
                        let attached = &letters[i + c.len_utf8()..];
                        let value = if attached.is_empty() {
                            rest.next().ok_or_else(|| args.bad(format!("option -{c} needs a value")))?
                        } else {
                            attached
                        };
                        args.values.push((c, value.to_string()));
                        break;
                    } else {
                        return Err(args.bad(format!("unknown option -{c} in {word}")));
                    }
                }
            }
            Ok(args)
        }

        fn bad(&self, reason: impl Into<String>) -> ParseError {
            ParseError::BadArgs { usage: self.spec.usage, reason: reason.into() }
        }

        fn flag(&self, c: char) -> bool {
            self.flags.contains(&c)
        }

        fn value(&self, c: char) -> Option<&str> {
            self.values.iter().rev().find(|(k, _)| *k == c).map(|(_, v)| v.as_str())
        }

        /// The value of option `c` as a number.
        fn number<T: std::str::FromStr>(&self, c: char, what: &str) -> Result<Option<T>, ParseError> {
            self.value(c)
                .map(|v| v.parse().map_err(|_| self.bad(format!("{what} must be a number, not {v:?}"))))
                .transpose()
        }

        /// The positional words, checking there are `min..=max` of them.
        fn words(&self, min: usize, max: usize) -> Result<&[String], ParseError> {
            let n = self.words.len();
            if n < min {
                let what = if min == 1 { "an argument" } else { "more arguments" };
                return Err(self.bad(format!("{} needs {what}", self.spec.name)));
            }
            if n > max {
                return Err(self.bad(format!(
                    "too many arguments: {} (quote an argument that contains spaces)",
                    self.words[max..].join(" ")
                )));
            }
            Ok(&self.words)
        }

        /// A path ZooKeeper accepts (a trailing `/` only for sequential nodes).
        fn path(&self, path: &str, sequential: bool) -> Result<String, ParseError> {
            zk_proto::path::validate_path(path, sequential)
                .map(|()| path.to_string())
                .map_err(|e| self.bad(e.to_string()))
        }

        /// The single positional word, a path.
        fn only_path(&self) -> Result<String, ParseError> {
            let words = self.words(1, 1)?;
            self.path(&words[0], false)
        }

        fn acl(&self, text: &str) -> Result<Vec<Acl>, ParseError> {
            parse_acl(text).map_err(|e| self.bad(e))
        }
    }

    /// Parses the words of a command line (the command name first).
    pub(crate) fn parse_args<S: AsRef<str>>(words: &[S]) -> Result<Command, ParseError> {
        let Some((name, rest)) = words.split_first() else {
            return Err(ParseError::UnknownCommand(String::new()));
        };
        let name = name.as_ref();
        let spec = COMMANDS
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseError::UnknownCommand(name.to_string()))?;
        let a = Args::parse(spec, rest)?;
        Ok(match spec.name {
            "ls" => Command::Ls {
                path: a.only_path()?,
                stat: a.flag('s'),
                watch: a.flag('w'),
                recursive: a.flag('R'),
            },
            "get" => Command::Get { path: a.only_path()?, stat: a.flag('s'), watch: a.flag('w') },
            "set" => {
                let w = a.words(2, 2)?;
                Command::Set {
                    path: a.path(&w[0], false)?,
                    data: w[1].clone(),
                    version: a.number('v', "version")?,
                    stat: a.flag('s'),
                }
            }
            "create" => parse_create(&a)?,
            "delete" => Command::Delete { path: a.only_path()?, version: a.number('v', "version")? },
            "deleteall" => {
                let batch = a.number::<usize>('b', "batch size")?.unwrap_or(1000);
                if batch == 0 {
                    return Err(a.bad("batch size must be at least 1"));
                }
                if a.flag('d') {
                    Command::DeleteAllDryRun { path: a.only_path()? }
                } else {
                    Command::DeleteAll { path: a.only_path()?, batch }
                }
            }
            "setquota" => {
                let mut limits = [None; 4];
                for (k, (letter, what)) in
                    [('n', "num"), ('b', "bytes"), ('N', "num"), ('B', "bytes")].into_iter().enumerate()
                {
                    if let Some(v) = a.number::<i64>(letter, "quota")? {
                        if what == "num" && v <= 0 {
                            return Err(a.bad("the num quota must be greater than zero"));
                        }
                        if what == "bytes" && v < 0 {
                            return Err(a.bad("the bytes quota must be greater than or equal to zero"));
                        }
                        limits[k] = Some(v);
                    }
                }
                if limits.iter().all(Option::is_none) {
                    return Err(a.bad("give at least one of -n, -b, -N, -B"));
                }
                Command::SetQuota { path: a.only_path()?, limits }
            }
            "listquota" => Command::ListQuota { path: a.only_path()? },
            "delquota" => Command::DelQuota {
                path: a.only_path()?,
                which: [a.flag('n'), a.flag('b'), a.flag('N'), a.flag('B')],
            },
            "du" => {
                let top = a.number::<usize>('n', "top")?.unwrap_or(10);
                let depth = a.number::<usize>('d', "depth")?.unwrap_or(1);
                if top == 0 {
                    return Err(a.bad("top must be at least 1"));
                }
                Command::Du { path: a.only_path()?, top, depth }
            }
            "fanout" => {
                let top = a.number::<usize>('n', "top")?.unwrap_or(10);
                if top == 0 {
                    return Err(a.bad("top must be at least 1"));
                }
                Command::Fanout { path: a.only_path()?, top }
            }
            "stat" => Command::Stat { path: a.only_path()?, watch: a.flag('w') },
            "getAcl" => Command::GetAcl { path: a.only_path()?, stat: a.flag('s') },
            "setAcl" => {
                let w = a.words(2, 2)?;
                Command::SetAcl {
                    path: a.path(&w[0], false)?,
                    acl: a.acl(&w[1])?,
                    version: a.number('v', "version")?,
                    stat: a.flag('s'),
                    recursive: a.flag('R'),
                }
            }
            "addauth" => {
                let w = a.words(1, 2)?;
                Command::AddAuth { scheme: w[0].clone(), auth: w.get(1).cloned().unwrap_or_default() }
            }
            "sync" => Command::Sync { path: a.only_path()? },
            "whoami" => {
                a.words(0, 0)?;
                Command::WhoAmI
            }
            "addWatch" => {
                let mode = match a.value('m') {
                    None => AddWatchMode::PersistentRecursive,
                    Some(m) => parse_watch_mode(m).ok_or_else(|| {
                        a.bad(format!("unknown mode {m:?}: use persistent or persistentRecursive"))
                    })?,
                };
                Command::AddWatch { path: a.only_path()?, mode }
            }
            "removewatches" => {
                if a.flag('l') {
                    return Err(a.bad("-l (remove locally without the server) is not supported"));
                }
                let types = [
                    ('c', WatcherType::Children),
                    ('d', WatcherType::Data),
                    ('a', WatcherType::Any),
                    ('p', WatcherType::Persistent),
                    ('r', WatcherType::PersistentRecursive),
                ];
                let mut chosen = types.iter().filter(|(c, _)| a.flag(*c)).map(|(_, t)| *t);
                let watcher_type = chosen.next().unwrap_or(WatcherType::Any);
                if chosen.next().is_some() {
                    return Err(a.bad("give at most one of -c, -d, -a, -p, -r"));
                }
                Command::RemoveWatches { path: a.only_path()?, watcher_type }
            }
            "config" => {
                a.words(0, 0)?;
                Command::Config { stat: a.flag('s') }
            }
            "getAllChildrenNumber" => Command::GetAllChildrenNumber { path: a.only_path()? },
            "getEphemerals" => {
                let w = a.words(0, 1)?;
                let path = match w.first() {
                    Some(p) => a.path(p, false)?,
                    None => "/".to_string(),
                };
                Command::GetEphemerals { path }
            }
            "connect" => Command::Connect { server: a.words(0, 1)?.first().cloned() },
            "redo" => {
                let w = a.words(1, 1)?;
                let index =
                    w[0].parse().map_err(|_| a.bad(format!("cmdno must be a number, not {:?}", w[0])))?;
                Command::Redo { index }
            }
            "printwatches" => {
                let on = match a.words(0, 1)?.first().map(String::as_str) {
                    None => None,
                    Some(w) if w.eq_ignore_ascii_case("on") => Some(true),
                    Some(w) if w.eq_ignore_ascii_case("off") => Some(false),
                    Some(w) => return Err(a.bad(format!("expected on or off, not {w:?}"))),
                };
                Command::PrintWatches { on }
            }
            other => {
                a.words(0, 0)?;
                match other {
                    "close" => Command::Close,
                    "quit" => Command::Quit,
                    "help" => Command::Help,
                    "history" => Command::History,
                    _ => Command::Version,
                }
            }
        })
    }

    fn parse_create(a: &Args) -> Result<Command, ParseError> {
        let (ephemeral, sequential, container) = (a.flag('e'), a.flag('s'), a.flag('c'));
        let ttl = match a.number::<u64>('t', "ttl")? {
            Some(0) => return Err(a.bad("ttl must be at least 1 ms")),
            other => other.map(Duration::from_millis),
        };
        if container && (ephemeral || sequential) {
            return Err(
                a.bad("-c cannot be combined with -s or -e: containers cannot be ephemeral or sequential")
            );
        }
        if ttl.is_some() && ephemeral {
            return Err(a.bad("TTLs cannot be used with ephemeral nodes"));
        }
        if ttl.is_some() && container {
            return Err(a.bad("TTLs cannot be used with container nodes"));
        }
        let mode = match (ephemeral, sequential, container, ttl.is_some()) {
            (_, _, true, _) => CreateMode::Container,
            (true, true, _, _) => CreateMode::EphemeralSequential,
            (true, false, _, _) => CreateMode::Ephemeral,
            (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
            (false, false, _, true) => CreateMode::PersistentWithTtl,
            (false, true, _, false) => CreateMode::PersistentSequential,
            (false, false, _, false) => CreateMode::Persistent,
        };
        let w = a.words(1, 3)?;
        Ok(Command::Create {
            path: a.path(&w[0], mode.is_sequential())?,
            data: w.get(1).cloned().unwrap_or_default(),
            acl: w.get(2).map(|acl| a.acl(acl)).transpose()?,
            mode,
            ttl,
        })
    }

    /// `persistent` / `persistentRecursive`, in any case, `_` allowed.
    fn parse_watch_mode(mode: &str) -> Option<AddWatchMode> {
        match mode.replace('_', "").to_ascii_lowercase().as_str() {
            "persistent" => Some(AddWatchMode::Persistent),
            "persistentrecursive" => Some(AddWatchMode::PersistentRecursive),
            _ => None,
        }
    }

    /// Parses zkCli's ACL syntax: comma-separated `scheme:id:perms`, where
    /// the id runs from the first to the last colon (so `digest:user:hash:cdrwa`
    /// and `auth::cdrwa` work) and perms are letters of `crwda`.
    pub(crate) fn parse_acl(text: &str) -> Result<Vec<Acl>, String> {
        let mut acl = Vec::new();
        for entry in text.split(',') {
            let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
                return Err(format!("ACL {entry:?} does not have the form scheme:id:perm"));
            };
            if first == last {
                return Err(format!("ACL {entry:?} does not have the form scheme:id:perm"));
            }
            let scheme = &entry[..first];
            if scheme.is_empty() {
                return Err(format!("ACL {entry:?} has no scheme"));
            }
            let perms = parse_perms(&entry[last + 1..]).map_err(|e| format!("ACL {entry:?}: {e}"))?;
            acl.push(Acl::new(perms, Id::new(scheme, &entry[first + 1..last])));
        }
        Ok(acl)
    }

    /// Permission letters (`c` create, `d` delete, `r` read, `w` write, `a` admin).
    pub(crate) fn parse_perms(letters: &str) -> Result<i32, String> {
        if letters.is_empty() {
            return Err("no permissions given (use letters of crwda)".to_string());
        }
        letters.chars().try_fold(0, |acc, c| {
            Ok(acc
                | match c.to_ascii_lowercase() {
                    'c' => perms::CREATE,
                    'd' => perms::DELETE,
                    'r' => perms::READ,
                    'w' => perms::WRITE,
                    'a' => perms::ADMIN,
                    _ => return Err(format!("unknown permission {c:?} (use letters of crwda)")),
                })
        })
    }
}

/// zkCli's output formats.
pub(crate) mod format {
    use std::fmt::Write as _;

    use zk_client::{Acl, Stat, WatchedEvent};
    use zk_proto::types::perms;

    /// The Stat block, as zkCli prints it (one `name = value` a line).
    pub(crate) fn stat(s: &Stat) -> String {
        format!(
            "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\n\
             dataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
            s.czxid,
            java_date(s.ctime),
            s.mzxid,
            java_date(s.mtime),
            s.pzxid,
            s.cversion,
            s.version,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children,
        )
    }

    /// Java's `Date.toString()` of milliseconds since the epoch, in UTC:
    /// `Thu Jan 01 00:00:00 UTC 1970`.
    pub(crate) fn java_date(ms: i64) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
            DAYS[(days + 4).rem_euclid(7) as usize],
            MONTHS[(month - 1) as usize],
            day,
            sod / 3600,
            sod % 3600 / 60,
            sod % 60,
            year
        )
    }

    /// (year, month 1-12, day 1-31) of a day count since 1970-01-01
    /// (Howard Hinnant's algorithm, proleptic Gregorian).
    fn civil_from_days(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// Permission bits as zkCli's letters, in its order `cdrwa`.
    pub(crate) fn perm_string(p: i32) -> String {
        [
            (perms::CREATE, 'c'),
            (perms::DELETE, 'd'),
            (perms::READ, 'r'),
            (perms::WRITE, 'w'),
            (perms::ADMIN, 'a'),
        ]
        .iter()
        .filter(|(bit, _)| p & bit != 0)
        .map(|(_, c)| c)
        .collect()
    }

    /// A string as jute's CSV archive writes it (what zkCli shows for ids).
    fn csv(s: &str) -> String {
        let mut out = String::from("'");
        for c in s.chars() {
            match c {
                '\0' => out.push_str("%00"),
                '\n' => out.push_str("%0A"),
                '\r' => out.push_str("%0D"),
                ',' => out.push_str("%2C"),
                '}' => out.push_str("%7D"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
        out
    }

    /// One ACL entry as zkCli's getAcl prints it: `'world,'anyone` then `: cdrwa`.
    pub(crate) fn acl(a: &Acl) -> String {
        format!("{},{}\n: {}\n", csv(&a.id.scheme), csv(&a.id.id), perm_string(a.perms))
    }

    /// A list as Java prints one: `[a, b]`.
    pub(crate) fn list(items: &[String]) -> String {
        format!("[{}]\n", items.join(", "))
    }

    /// Node data as `get` prints it: the bytes as text, `null` when empty.
    pub(crate) fn data(bytes: &[u8]) -> String {
        if bytes.is_empty() { "null\n".to_string() } else { format!("{}\n", String::from_utf8_lossy(bytes)) }
    }

    /// A watch notification as zkCli prints it.
    pub(crate) fn event(e: &WatchedEvent) -> String {
        let path = if e.path.is_empty() { "null" } else { &e.path };
        let mut s = String::from("\nWATCHER::\n\n");
        let _ = writeln!(s, "WatchedEvent state:{} type:{} path:{}", e.state, e.event_type, path);
        s
    }
}

/// The session and the executor of commands.
pub(crate) mod shell {
    use std::fmt::{self, Write as _};
    use std::io::{BufRead, Write as _};
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use futures::stream::{BoxStream, SelectAll};
    use futures::{FutureExt, StreamExt};
    use rustyline::ExternalPrinter;
    use rustyline::error::ReadlineError;
    use tokio::sync::mpsc;
    use zk_client::{
        Acl, Client, CreateOptions, Error, EventType, KeeperState, Op, OpResult, SessionState, WatchedEvent,
    };

    use super::format;
    use super::parse::{self, Command, ParseError};

    /// How to open sessions.
    #[derive(Debug, Clone)]
    pub(crate) struct Settings {
        /// The connect string (`host:port[,host:port][/chroot]`).
        pub(crate) server: String,
        /// The session timeout, also how long a connection is waited for.
        pub(crate) session_timeout: Duration,
        /// Whether read-only servers are accepted.
        pub(crate) read_only: bool,
        /// TLS, from `-client-configuration` (`zookeeper.client.secure=true`
        /// with `zookeeper.ssl.*`).
        pub(crate) tls: Option<zk_client::zk_tls::TlsSettings>,
    }

    /// Why a command failed.
    #[derive(Debug)]
    pub(crate) enum CliError {
        /// The server (or the client) refused the request on `path`.
        Zk { err: Error, path: Option<String> },
        /// No session: never connected, or closed.
        NotConnected,
        /// `connect` failed.
        Connect { server: String, err: Error },
        /// Anything else.
        Other(String),
    }

    impl fmt::Display for CliError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CliError::Zk { err, path: Some(p) } => match err {
                    // zkCli's own wording (CliWrapperException).
                    Error::NoNode => write!(f, "Node does not exist: {p}"),
                    Error::NoChildrenForEphemerals => write!(f, "Ephemerals cannot have children: {p}"),
                    Error::NodeExists => write!(f, "Node already exists: {p}"),
                    Error::NotEmpty => write!(f, "Node not empty: {p}"),
                    Error::NotReadOnly => write!(f, "Not a read-only call: {p}"),
                    Error::InvalidAcl => write!(f, "Acl is not valid : {p}"),
                    Error::NoAuth => write!(f, "Insufficient permission : {p}"),
                    Error::BadArguments => write!(f, "Arguments are not valid : {p}"),
                    Error::BadVersion => write!(f, "version No is not valid : {p}"),
                    Error::InvalidPath { .. } => write!(f, "{err}"),
                    other => write!(f, "{other}: {p}"),
                },
                CliError::Zk { err, path: None } => write!(f, "{err}"),
                CliError::NotConnected => f.write_str("Not connected (use connect host:port)"),
                CliError::Connect { server, err } => write!(f, "Unable to connect to {server}: {err}"),
                CliError::Other(msg) => f.write_str(msg),
            }
        }
    }

    /// Maps a client error to one about `path`.
    fn at(path: &str) -> impl FnOnce(Error) -> CliError + '_ {
        move |err| CliError::Zk { err, path: Some(path.to_string()) }
    }

    /// What a line did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Step {
        /// Ran (or was blank).
        Done,
        /// Failed; the error was printed.
        Failed,
        /// `quit`.
        Quit,
    }

    /// One line of input.
    #[derive(Debug)]
    pub(crate) enum Input {
        Line(String),
        Interrupted,
        Eof,
        Failed(String),
    }

    /// Where lines come from: a rustyline editor on its own thread (which
    /// is asked for each line with its prompt), or stdin read as a script.
    pub(crate) struct LineSource {
        prompts: Option<std_mpsc::Sender<String>>,
        lines: mpsc::UnboundedReceiver<Input>,
    }

    impl LineSource {
        /// Reads stdin line by line, without prompts.
        pub(crate) fn script() -> LineSource {
            let (tx, lines) = mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let input = match line {
                        Ok(line) => Input::Line(line),
                        Err(e) => Input::Failed(format!("reading stdin: {e}")),
                    };
                    let failed = matches!(input, Input::Failed(_));
                    if tx.send(input).is_err() || failed {
                        return;
                    }
                }
                let _ = tx.send(Input::Eof);
            });
            LineSource { prompts: None, lines }
        }

        /// An interactive editor with history; also returns a printer that
        /// writes above the line being edited, when the terminal allows one.
        pub(crate) fn editor() -> Result<(LineSource, Option<Printer>), String> {
            let (prompt_tx, prompt_rx) = std_mpsc::channel::<String>();
            let (tx, lines) = mpsc::unbounded_channel();
            let (ready_tx, ready_rx) = std_mpsc::channel();
            std::thread::spawn(move || {
                let mut editor = match rustyline::DefaultEditor::new() {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the line editor: {e}")));
                        return;
                    }
                };
                let printer = editor.create_external_printer().ok().map(Printer::spawn);
                if ready_tx.send(Ok(printer)).is_err() {
                    return;
                }
                while let Ok(prompt) = prompt_rx.recv() {
                    let input = match editor.readline(&prompt) {
                        Ok(line) => {
                            if !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                            }
                            Input::Line(line)
                        }
                        Err(ReadlineError::Interrupted) => Input::Interrupted,
                        Err(ReadlineError::Eof) => Input::Eof,
                        Err(e) => Input::Failed(format!("reading the terminal: {e}")),
                    };
                    let last = matches!(input, Input::Eof | Input::Failed(_));
                    if tx.send(input).is_err() || last {
                        return;
                    }
                }
            });
            let printer = ready_rx.recv().map_err(|_| "the line editor stopped".to_string())??;
            Ok((LineSource { prompts: Some(prompt_tx), lines }, printer))
        }

        /// Shows the prompt (interactive only); the line comes from [`LineSource::recv`].
        fn prompt(&self, prompt: String) {
            if let Some(p) = &self.prompts {
                let _ = p.send(prompt);
            }
        }

        async fn recv(&mut self) -> Input {
            self.lines.recv().await.unwrap_or(Input::Eof)
        }
    }

    /// Prints text above the line being edited, from its own thread (so a
    /// busy terminal never blocks the shell).
    #[derive(Clone)]
    pub(crate) struct Printer(std_mpsc::Sender<String>);

    impl Printer {
        fn spawn<P: ExternalPrinter + Send + 'static>(mut printer: P) -> Printer {
            let (tx, rx) = std_mpsc::channel::<String>();
            std::thread::spawn(move || {
                while let Ok(msg) = rx.recv() {
                    if printer.print(msg).is_err() {
                        return;
                    }
                }
            });
            Printer(tx)
        }
    }

    /// A shell: one session (or none), its watches, and the command history.
    pub(crate) struct Shell {
        settings: Settings,
        client: Option<Client>,
        /// Whether the user closed the session (prompt `CLOSED`, else `NOT_CONNECTED`).
        closed: bool,
        /// Watch notifications (and, interactively, session states) to print.
        events: SelectAll<BoxStream<'static, WatchedEvent>>,
        print_watches: bool,
        /// Print session state changes too (interactive mode).
        session_events: bool,
        printer: Option<Printer>,
        history: Vec<String>,
    }

    impl Shell {
        /// A shell with no session yet.
        pub(crate) fn new(settings: Settings, interactive: bool, printer: Option<Printer>) -> Shell {
            Shell {
                settings,
                client: None,
                closed: false,
                events: SelectAll::new(),
                print_watches: true,
                session_events: interactive,
                printer,
                history: Vec::new(),
            }
        }

        /// The connect string.
        pub(crate) fn server(&self) -> &str {
            &self.settings.server
        }

        /// zkCli's prompt: `[zk: host:port(CONNECTED) 3] `.
        pub(crate) fn prompt(&self) -> String {
            let state = match self.client.as_ref().map(Client::state) {
                None if self.closed => "CLOSED",
                None => "NOT_CONNECTED",
                Some(SessionState::Connected) => "CONNECTED",
                Some(SessionState::ConnectedReadOnly) => "CONNECTEDREADONLY",
                Some(SessionState::Connecting | SessionState::Disconnected) => "CONNECTING",
                Some(SessionState::AuthFailed) => "AUTH_FAILED",
                Some(_) => "CLOSED",
            };
            format!("[zk: {}({state}) {}] ", self.settings.server, self.history.len())
        }

        /// Opens a session to the configured server, closing any current one.
        pub(crate) async fn connect(&mut self) -> Result<(), CliError> {
            self.disconnect().await;
            let s = &self.settings;
            let mut builder = Client::builder(&s.server)
                .session_timeout(s.session_timeout)
                .connection_timeout(s.session_timeout)
                .read_only(s.read_only);
            if let Some(tls) = &s.tls {
                builder = builder.tls(tls.clone());
            }
            let client =
                builder.connect().await.map_err(|err| CliError::Connect { server: s.server.clone(), err })?;
            self.closed = false;
            if self.session_events {
                let state = client.state().keeper_state();
                self.print_event(&session_event(state));
                let states = client.state_events().map(|s| session_event(s.keeper_state()));
                self.events.push(states.boxed());
            }
            self.client = Some(client);
            Ok(())
        }

        /// Closes the session, if any, dropping its watches first (so they
        /// print nothing on the way out).
        pub(crate) async fn disconnect(&mut self) {
            self.events = SelectAll::new();
            if let Some(client) = self.client.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
            }
        }

        fn print_event(&self, event: &WatchedEvent) {
            if !self.print_watches {
                return;
            }
            let text = format::event(event);
            match &self.printer {
                Some(p) => {
                    let _ = p.0.send(text);
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                }
            }
        }

        /// Prints the watch events that have already arrived.
        pub(crate) fn print_ready_events(&mut self) {
            while let Some(Some(event)) = self.events.next().now_or_never() {
                self.print_event(&event);
            }
        }

        /// Reads and runs lines until `quit` or the end of input, printing
        /// watch events as they come; returns whether every line succeeded.
        pub(crate) async fn run(&mut self, mut input: LineSource) -> bool {
            let mut ok = true;
            loop {
                input.prompt(self.prompt());
                let next = loop {
                    tokio::select! {
                        Some(event) = self.events.next(), if !self.events.is_empty() => self.print_event(&event),
                        line = input.recv() => break line,
                    }
                };
                match next {
                    Input::Line(line) => match self.run_line(&line).await {
                        Step::Done => {}
                        Step::Failed => ok = false,
                        Step::Quit => break,
                    },
                    Input::Interrupted => {}
                    Input::Eof => break,
                    Input::Failed(e) => {
                        eprintln!("{e}");
                        ok = false;
                        break;
                    }
                }
            }
            self.print_ready_events();
            self.disconnect().await;
            ok
        }

        /// Parses and runs one line, printing its output to stdout and its
        /// error to stderr.
        pub(crate) async fn run_line(&mut self, line: &str) -> Step {
            let parsed = parse::parse_line(line);
            if let Ok(None) = parsed {
                return Step::Done;
            }
            self.history.push(line.to_string());
            let command = match parsed {
                Ok(Some(Command::Redo { index })) => match self.redo(index) {
                    Ok(c) => c,
                    Err(e) => return report(&e),
                },
                Ok(Some(c)) => c,
                Ok(None) => return Step::Done,
                Err(e) => return report_parse(&e),
            };
            self.run_command(command).await
        }

        /// Runs one parsed command, printing its output and error.
        pub(crate) async fn run_command(&mut self, command: Command) -> Step {
            let mut out = String::new();
            let result = self.execute(command, &mut out).await;
            {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(out.as_bytes());
                let _ = stdout.flush();
            }
            let step = match result {
                Ok(step) => step,
                Err(e) => report(&e),
            };
            self.print_ready_events();
            step
        }

        /// The command of history entry `index` (the current line excluded).
        fn redo(&mut self, index: usize) -> Result<Command, CliError> {
            let current = self.history.len() - 1;
            let Some(line) = self.history[..current].get(index).cloned() else {
                return Err(CliError::Other("Command index out of range".to_string()));
            };
            match parse::parse_line(&line) {
                Ok(Some(Command::Redo { .. })) => Err(CliError::Other("No redoing redos".to_string())),
                Ok(Some(c)) => {
                    self.history[current] = line;
                    Ok(c)
                }
                Ok(None) => Err(CliError::Other("Command index out of range".to_string())),
                Err(e) => Err(CliError::Other(e.to_string())),
            }
        }

        /// Runs one command, appending what it prints to `out`.
        pub(crate) async fn execute(&mut self, command: Command, out: &mut String) -> Result<Step, CliError> {
            match command {
                Command::Quit => {
                    self.disconnect().await;
                    return Ok(Step::Quit);
                }
                Command::Help => out.push_str(&parse::usage()),
                Command::Version => {
                    let _ = writeln!(out, "ZooKeeper CLI version: zk-cli {}", env!("CARGO_PKG_VERSION"));
                }
                Command::Connect { server } => {
                    if let Some(server) = server {
                        self.settings.server = server;
                    }
                    self.connect().await?;
                }
                Command::Close => {
                    self.disconnect().await;
                    self.closed = true;
                }
                Command::History => {
                    let n = self.history.len();
                    for (i, line) in self.history.iter().enumerate().skip(n.saturating_sub(11)) {
                        let _ = writeln!(out, "{i} - {line}");
                    }
                }
                Command::Redo { .. } => {
                    return Err(CliError::Other("Command index out of range".to_string()));
                }
                Command::PrintWatches { on: Some(on) } => self.print_watches = on,
                Command::PrintWatches { on: None } => {
                    let _ =
                        writeln!(out, "printwatches is {}", if self.print_watches { "on" } else { "off" });
                }
                other => {
                    let client = self.client.clone().ok_or(CliError::NotConnected)?;
                    self.execute_zk(&client, other, out).await?;
                }
            }
            Ok(Step::Done)
        }

        async fn execute_zk(
            &mut self,
            c: &Client,
            command: Command,
            out: &mut String,
        ) -> Result<(), CliError> {
            match command {
                Command::Ls { path, recursive: true, watch, .. } => {
                    for p in self.subtree_dfs(c, &path, watch).await? {
                        let _ = writeln!(out, "{p}");
                    }
                }
                Command::Ls { path, stat, watch, recursive: false } => {
                    let (mut children, s) = if watch {
                        let (children, s, w) = c.get_children2_watch(&path).await.map_err(at(&path))?;
                        self.events.push(w.into_stream().boxed());
                        (children, s)
                    } else {
                        c.get_children2(&path).await.map_err(at(&path))?
                    };
                    children.sort();
                    out.push_str(&format::list(&children));
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::Get { path, stat, watch } => {
                    let (data, s) = if watch {
                        let (data, s, w) = c.get_data_watch(&path).await.map_err(at(&path))?;
                        self.events.push(w.into_stream().boxed());
                        (data, s)
                    } else {
                        c.get_data(&path).await.map_err(at(&path))?
                    };
                    out.push_str(&format::data(&data));
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::Set { path, data, version, stat } => {
                    let s = c.set_data(&path, data.as_bytes(), version).await.map_err(at(&path))?;
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::Create { path, data, acl, mode, ttl } => {
                    let mut options = CreateOptions::new(mode).with_acl(acl.unwrap_or_else(Acl::open_unsafe));
                    if let Some(ttl) = ttl {
                        options = options.with_ttl(ttl);
                    }
                    let (created, _) = c.create(&path, data.as_bytes(), options).await.map_err(at(&path))?;
                    let _ = writeln!(out, "Created {created}");
                }
                Command::Delete { path, version } => c.delete(&path, version).await.map_err(at(&path))?,
                Command::DeleteAll { path, batch } => delete_all(c, &path, batch).await?,
                Command::Stat { path, watch } => {
                    let s = if watch {
                        let (s, w) = c.exists_watch(&path).await.map_err(at(&path))?;
                        self.events.push(w.into_stream().boxed());
                        s
                    } else {
                        c.exists(&path).await.map_err(at(&path))?
                    };
                    let s = s.ok_or_else(|| at(&path)(Error::NoNode))?;
                    out.push_str(&format::stat(&s));
                }
                Command::GetAcl { path, stat } => {
                    let (acl, s) = c.get_acl(&path).await.map_err(at(&path))?;
                    for a in &acl {
                        out.push_str(&format::acl(a));
                    }
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::SetAcl { path, acl, version, stat, recursive } => {
                    let s = c.set_acl(&path, &acl, version).await.map_err(at(&path))?;
                    if recursive {
                        for p in self.subtree_dfs(c, &path, false).await?.iter().skip(1) {
                            match c.set_acl(p, &acl, version).await {
                                Ok(_) | Err(Error::NoNode) => {}
                                Err(e) => return Err(at(p)(e)),
                            }
                        }
                    }
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::AddAuth { scheme, auth } => {
                    c.add_auth(&scheme, auth.as_bytes())
                        .await
                        .map_err(|err| CliError::Zk { err, path: None })?;
                }
                Command::Sync { path } => {
                    c.sync(&path).await.map_err(at(&path))?;
                    out.push_str("Sync is OK\n");
                }
                Command::WhoAmI => {
                    let infos = c.who_am_i().await.map_err(|err| CliError::Zk { err, path: None })?;
                    out.push_str("Auth scheme: User\n");
                    for info in infos {
                        let _ = writeln!(out, "{}: {}", info.auth_scheme, info.user);
                    }
                }
                Command::AddWatch { path, mode } => {
                    let watcher = c.add_watch(&path, mode).await.map_err(at(&path))?;
                    self.events.push(watcher.boxed());
                }
                Command::RemoveWatches { path, watcher_type } => {
                    c.remove_watches(&path, watcher_type).await.map_err(at(&path))?;
                }
                Command::Config { stat } => {
                    let (data, s) = c.get_config().await.map_err(|err| CliError::Zk { err, path: None })?;
                    let _ = writeln!(out, "{}", String::from_utf8_lossy(&data));
                    if stat {
                        out.push_str(&format::stat(&s));
                    }
                }
                Command::GetAllChildrenNumber { path } => {
                    let n = c.get_all_children_number(&path).await.map_err(at(&path))?;
                    let _ = writeln!(out, "{n}");
                }
                Command::GetEphemerals { path } => {
                    let mut paths = c.get_ephemerals(&path).await.map_err(at(&path))?;
                    paths.sort();
                    out.push_str(&format::list(&paths));
                }
                Command::SetQuota { path, limits } => {
                    for warning in quota::set(c, &path, limits).await? {
                        let _ = writeln!(out, "{warning}");
                    }
                }
                Command::ListQuota { path } => match quota::list(c, &path).await? {
                    Some((limits, stats)) => {
                        let _ = writeln!(out, "absolute path is {}", quota::limit_path(&path));
                        let _ = writeln!(out, "Output quota for {path} {limits}");
                        let _ = writeln!(out, "Output stat for {path} {stats}");
                    }
                    None => return Err(CliError::Other(format!("quota for {path} does not exist."))),
                },
                Command::DelQuota { path, which } => {
                    if !quota::delete(c, &path, which).await? {
                        let _ = writeln!(out, "Quota does not exist for {path}");
                    }
                }
                Command::Du { path, top, depth } => {
                    for (nodes, bytes, p) in analysis::du(c, &path, depth, top).await? {
                        let _ = writeln!(out, "{nodes}\t{bytes}\t{p}");
                    }
                }
                Command::Fanout { path, top } => {
                    for (children, p) in analysis::fanout(c, &path, top).await? {
                        let _ = writeln!(out, "{children}\t{p}");
                    }
                }
                Command::DeleteAllDryRun { path } => {
                    let order = analysis::deletion_order(c, &path).await?;
                    for p in &order {
                        let _ = writeln!(out, "{p}");
                    }
                    let _ = writeln!(out, "would delete {} nodes (dry run: nothing deleted)", order.len());
                }
                other => return Err(CliError::Other(format!("not a ZooKeeper command: {other:?}"))),
            }
            Ok(())
        }

        /// `path` and its descendants, depth first, children sorted (zkCli's
        /// `ZKUtil.visitSubTreeDFS`); with `watch`, a child watch on each.
        /// Nodes deleted meanwhile are skipped; a missing `path` is an error.
        async fn subtree_dfs(
            &mut self,
            c: &Client,
            path: &str,
            watch: bool,
        ) -> Result<Vec<String>, CliError> {
            let mut found = Vec::new();
            let mut stack = vec![path.to_string()];
            while let Some(p) = stack.pop() {
                let children = if watch {
                    c.get_children_watch(&p).await.map(|(children, w)| {
                        self.events.push(w.into_stream().boxed());
                        children
                    })
                } else {
                    c.get_children(&p).await
                };
                let mut children = match children {
                    Ok(children) => children,
                    Err(Error::NoNode) if p != path => continue,
                    Err(e) => return Err(at(&p)(e)),
                };
                children.sort();
                stack.extend(children.iter().rev().map(|child| child_path(&p, child)));
                found.push(p);
            }
            Ok(found)
        }
    }

    /// `deleteall`: the subtree breadth first, deleted deepest first in
    /// multis of `batch` deletes (zkCli's `ZKUtil.deleteRecursive`).
    async fn delete_all(c: &Client, path: &str, batch: usize) -> Result<(), CliError> {
        if path == "/" {
            return Err(CliError::Other("cannot delete the root node /".to_string()));
        }
        let nodes = analysis::deletion_order(c, path).await?;
        for chunk in nodes.chunks(batch) {
            let ops: Vec<Op> = chunk.iter().map(|p| Op::delete(p.as_str(), None)).collect();
            let results = c.try_multi(&ops).await.map_err(at(path))?;
            let failure = results.iter().zip(chunk).find_map(|(r, p)| match r {
                OpResult::Error(Err(e)) if *e != Error::RuntimeInconsistency => Some(at(p)(e.clone())),
                _ => None,
            });
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
        Ok(())
    }

    /// Apache's quotas as its zkCli writes them: under
    /// `/zookeeper/quota/<path>`, `zookeeper_limits` holds the limits and
    /// `zookeeper_stats` what the server counts, both as `StatsTrack` text
    /// (`count=N,bytes=N`, then `=;byteHardLimit=N;countHardLimit=N` when
    /// hard limits are there).
    mod quota {
        use std::collections::BTreeMap;

        use zk_client::{Client, CreateMode, Error};

        use super::{CliError, at, child_path};

        const ROOT: &str = "/zookeeper/quota";
        const KEYS: [&str; 4] = ["count", "bytes", "countHardLimit", "byteHardLimit"];

        pub(super) fn quota_path(path: &str) -> String {
            format!("{ROOT}{path}")
        }

        pub(super) fn limit_path(path: &str) -> String {
            format!("{ROOT}{path}/zookeeper_limits")
        }

        fn stat_path(path: &str) -> String {
            format!("{ROOT}{path}/zookeeper_stats")
        }

        /// Apache's `StatsTrack`: key → value, written count and bytes
        /// first, then the other keys sorted.
        #[derive(Debug, Default)]
        pub(super) struct Track(BTreeMap<String, i64>);

        impl Track {
            pub(super) fn parse(data: &[u8]) -> Track {
                let text = String::from_utf8_lossy(data);
                let mut t = Track::default();
                for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
                    let mut kv = pair.split('=');
                    if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                        t.0.insert(k.to_string(), if v.is_empty() { -1 } else { v.parse().unwrap_or(-1) });
                    }
                }
                t
            }

            fn get(&self, k: &str) -> i64 {
                self.0.get(k).copied().unwrap_or(-1)
            }

            fn set(&mut self, k: &str, v: i64) {
                self.0.insert(k.to_string(), v);
            }
        }

        impl std::fmt::Display for Track {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "count={},bytes={}", self.get("count"), self.get("bytes"))?;
                let extra: Vec<_> = self.0.iter().filter(|(k, _)| *k != "count" && *k != "bytes").collect();
                if !extra.is_empty() {
                    f.write_str("=")?;
                    for (k, v) in extra {
                        write!(f, ";{k}={v}")?;
                    }
                }
                Ok(())
            }
        }

        async fn create_quietly(c: &Client, path: &str, data: &[u8]) -> Result<(), CliError> {
            match c.create(path, data, CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists) => Ok(()),
                Err(e) => Err(at(path)(e)),
            }
        }

        /// Whether a quota sits above `path` or below it (Apache allows one
        /// per branch).
        async fn check_branch(c: &Client, path: &str) -> Result<(), CliError> {
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let mut q = ROOT.to_string();
            for part in &parts[..parts.len().saturating_sub(1)] {
                q.push('/');
                q.push_str(part);
                if c.exists(&format!("{q}/zookeeper_limits")).await.map_err(at(&q))?.is_some() {
                    let above = q.trim_start_matches(ROOT);
                    return Err(CliError::Other(format!("{path} has a parent {above} which has a quota")));
                }
            }
            let mut stack = vec![quota_path(path)];
            while let Some(p) = stack.pop() {
                let children = match c.get_children(&p).await {
                    Ok(ch) => ch,
                    Err(Error::NoNode) => continue,
                    Err(e) => return Err(at(&p)(e)),
                };
                for ch in children {
                    if ch == "zookeeper_limits" && p != quota_path(path) {
                        let below = p.trim_start_matches(ROOT);
                        return Err(CliError::Other(format!("{path} has a child {below} which has a quota")));
                    }
                    if ch != "zookeeper_limits" && ch != "zookeeper_stats" {
                        stack.push(child_path(&p, &ch));
                    }
                }
            }
            Ok(())
        }

        /// `setquota`: the limits given (soft count, soft bytes, hard
        /// count, hard bytes) written, the others kept; returns Apache's
        /// warnings when the limits are below what is already there.
        pub(super) async fn set(
            c: &Client,
            path: &str,
            limits: [Option<i64>; 4],
        ) -> Result<Vec<String>, CliError> {
            if path.starts_with(ROOT) {
                return Err(CliError::Other(format!("cannot set a quota under the path: {ROOT}")));
            }
            if c.exists(path).await.map_err(at(path))?.is_none() {
                return Err(CliError::Other(format!("{path} does not exist.")));
            }
            check_branch(c, path).await?;
            create_quietly(c, "/zookeeper", b"").await?;
            create_quietly(c, ROOT, b"").await?;
            let mut q = ROOT.to_string();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                q.push('/');
                q.push_str(part);
                create_quietly(c, &q, b"").await?;
            }
            let limit_path = limit_path(path);
            let mut track = match c.get_data(&limit_path).await {
                Ok((data, _)) => Track::parse(&data),
                Err(Error::NoNode) => {
                    let mut t = Track::default();
                    for k in KEYS {
                        t.set(k, -1);
                    }
                    t
                }
                Err(e) => return Err(at(&limit_path)(e)),
            };
            for (k, v) in KEYS.iter().zip(limits) {
                if let Some(v) = v {
                    track.set(k, v);
                }
            }
            let stat_path = stat_path(path);
            if c.exists(&limit_path).await.map_err(at(&limit_path))?.is_none() {
                c.create(&limit_path, track.to_string().as_bytes(), CreateMode::Persistent)
                    .await
                    .map_err(at(&limit_path))?;
                create_quietly(c, &stat_path, b"count=0,bytes=0").await?;
            } else {
                c.set_data(&limit_path, track.to_string().as_bytes(), None).await.map_err(at(&limit_path))?;
            }
            let stats = match c.get_data(&stat_path).await {
                Ok((data, _)) => Track::parse(&data),
                Err(_) => Track::default(),
            };
            let below = |soft: &str, hard: &str, have: &str| {
                let n = stats.get(have);
                (track.get(soft) > -1 && track.get(soft) < n) || (track.get(hard) > -1 && track.get(hard) < n)
            };
            let mut warnings = Vec::new();
            if below("count", "countHardLimit", "count") {
                warnings.push(format!(
                    "[Warning]: the count quota you create is less than the existing count:{}",
                    stats.get("count")
                ));
            }
            if below("bytes", "byteHardLimit", "bytes") {
                warnings.push(format!(
                    "[Warning]: the bytes quota you create is less than the existing bytes:{}",
                    stats.get("bytes")
                ));
            }
            Ok(warnings)
        }

        /// `listquota`: the limits and the stats, `None` without a quota.
        pub(super) async fn list(c: &Client, path: &str) -> Result<Option<(Track, Track)>, CliError> {
            let limits = match c.get_data(&limit_path(path)).await {
                Ok((d, _)) => Track::parse(&d),
                Err(Error::NoNode) => return Ok(None),
                Err(e) => return Err(at(path)(e)),
            };
            let stats = match c.get_data(&stat_path(path)).await {
                Ok((d, _)) => Track::parse(&d),
                Err(Error::NoNode) => return Ok(None),
                Err(e) => return Err(at(path)(e)),
            };
            Ok(Some((limits, stats)))
        }

        /// `delquota`: the limits flagged in `which` back to -1, or (none
        /// flagged) the whole quota, its empty parents trimmed. `false`
        /// when there is no quota.
        pub(super) async fn delete(c: &Client, path: &str, which: [bool; 4]) -> Result<bool, CliError> {
            let limit_path = limit_path(path);
            let mut track = match c.get_data(&limit_path).await {
                Ok((d, _)) => Track::parse(&d),
                Err(Error::NoNode) => return Ok(false),
                Err(e) => return Err(at(path)(e)),
            };
            if which.iter().any(|w| *w) {
                for (k, w) in KEYS.iter().zip(which) {
                    if w {
                        track.set(k, -1);
                    }
                }
                c.set_data(&limit_path, track.to_string().as_bytes(), None).await.map_err(at(&limit_path))?;
                return Ok(true);
            }
            let parent = quota_path(path);
            for ch in c.get_children(&parent).await.map_err(at(&parent))? {
                let p = child_path(&parent, &ch);
                match c.delete(&p, None).await {
                    Ok(()) | Err(Error::NoNode) => {}
                    Err(e) => return Err(at(&p)(e)),
                }
            }
            let mut p = parent;
            while p != ROOT {
                match c.get_children(&p).await {
                    Ok(ch) if ch.is_empty() => {
                        let _ = c.delete(&p, None).await;
                    }
                    _ => break,
                }
                p = p.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or_else(|| ROOT.to_string());
            }
            Ok(true)
        }
    }

    /// The analysis commands zkCli does not have.
    mod analysis {
        use zk_client::{Client, Error};

        use super::{CliError, at, child_path};

        /// `path` and every descendant, each with its data length and
        /// children count, breadth first; nodes deleted meanwhile are
        /// skipped.
        async fn walk(c: &Client, path: &str) -> Result<Vec<(String, i64, usize)>, CliError> {
            let mut out: Vec<(String, i64, usize)> = Vec::new();
            let mut i = 0;
            let mut queue = vec![path.to_string()];
            while let Some(p) = queue.get(i).cloned() {
                i += 1;
                match c.get_children2(&p).await {
                    Ok((children, stat)) => {
                        out.push((p.clone(), i64::from(stat.data_length), children.len()));
                        queue.extend(children.iter().map(|ch| child_path(&p, ch)));
                    }
                    Err(Error::NoNode) if i > 1 => {}
                    Err(e) => return Err(at(&p)(e)),
                }
            }
            Ok(out)
        }

        fn depth(path: &str) -> usize {
            path.split('/').filter(|p| !p.is_empty()).count()
        }

        /// Node count and bytes of each subtree `levels` below `path`,
        /// largest (by nodes) first, `top` of them.
        pub(super) async fn du(
            c: &Client,
            path: &str,
            levels: usize,
            top: usize,
        ) -> Result<Vec<(u64, i64, String)>, CliError> {
            let base = depth(path);
            let mut totals: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
            for (p, bytes, _) in walk(c, path).await? {
                // Nodes above the level are not in any of its subtrees.
                if depth(&p) - base < levels {
                    continue;
                }
                // The subtree is named by the ancestor `levels` below `path`.
                let key = if levels == 0 {
                    path.to_string()
                } else {
                    let parts: Vec<&str> = p.split('/').filter(|x| !x.is_empty()).collect();
                    format!("/{}", parts[..base + levels].join("/"))
                };
                let e = totals.entry(key).or_default();
                e.0 += 1;
                e.1 += bytes;
            }
            let mut v: Vec<(u64, i64, String)> = totals.into_iter().map(|(p, (n, b))| (n, b, p)).collect();
            v.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
            v.truncate(top);
            Ok(v)
        }

        /// The `top` nodes with the most children under `path`.
        pub(super) async fn fanout(
            c: &Client,
            path: &str,
            top: usize,
        ) -> Result<Vec<(usize, String)>, CliError> {
            let mut v: Vec<(usize, String)> =
                walk(c, path).await?.into_iter().filter(|(_, _, n)| *n > 0).map(|(p, _, n)| (n, p)).collect();
            v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            v.truncate(top);
            Ok(v)
        }

        /// What `deleteall path` deletes, in its order: deepest first (the
        /// subtree breadth first, reversed).
        pub(super) async fn deletion_order(c: &Client, path: &str) -> Result<Vec<String>, CliError> {
            let mut nodes: Vec<String> = walk(c, path).await?.into_iter().map(|(p, _, _)| p).collect();
            nodes.reverse();
            Ok(nodes)
        }
    }

    fn child_path(parent: &str, child: &str) -> String {
        if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
    }

    fn session_event(state: KeeperState) -> WatchedEvent {
        WatchedEvent { event_type: EventType::None, state, path: String::new(), zxid: -1 }
    }

    /// Prints a command's error; the line failed.
    pub(crate) fn report(e: &CliError) -> Step {
        eprintln!("{e}");
        Step::Failed
    }

    /// Prints why a line does not parse (with the command list for an
    /// unknown command); the line failed.
    pub(crate) fn report_parse(e: &ParseError) -> Step {
        eprintln!("{e}");
        if let ParseError::UnknownCommand(_) = e {
            eprint!("{}", parse::usage());
        }
        Step::Failed
    }
}

/// The process's command line: connection options, then an optional command.
#[derive(Debug)]
struct Options {
    settings: Settings,
    command: Vec<String>,
}

const OPTIONS_USAGE: &str = "usage: zk-cli [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [-client-configuration file] [cmd args...]\n\
     \x20      (no command: an interactive shell, or a script read from stdin when it is not a terminal)";

/// zkCli's `-client-configuration`: a Java properties file; with
/// `zookeeper.client.secure=true`, TLS with its `zookeeper.ssl.*` settings
/// (key and trust stores in JKS, PKCS12 or PEM). Other keys are ignored.
fn client_configuration(path: &std::path::Path) -> Result<Option<zk_client::zk_tls::TlsSettings>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tls = zk_client::zk_tls::TlsSettings::default();
    let mut secure = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            return Err(format!("{}:{}: expected key=value", path.display(), n + 1));
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "zookeeper.client.secure" {
            secure = v.eq_ignore_ascii_case("true");
        } else {
            tls.set(k, v).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        }
    }
    Ok(secure.then_some(tls))
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut settings = Settings {
        server: "localhost:2181".to_string(),
        session_timeout: Duration::from_millis(30_000),
        read_only: false,
        tls: None,
    };
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let value = |name: &str| args.get(i + 1).cloned().ok_or_else(|| format!("{name} needs a value"));
        match arg.trim_start_matches('-') {
            _ if !arg.starts_with('-') => break,
            "server" => {
                settings.server = value(arg)?;
                i += 1;
            }
            "timeout" => {
                let v = value(arg)?;
                let ms: u64 = v.parse().map_err(|_| format!("-timeout must be milliseconds, not {v:?}"))?;
                if ms == 0 {
                    return Err("-timeout must be at least 1 ms".to_string());
                }
                settings.session_timeout = Duration::from_millis(ms);
                i += 1;
            }
            "r" => settings.read_only = true,
            "client-configuration" => {
                settings.tls = client_configuration(std::path::Path::new(&value(arg)?))?;
                i += 1;
            }
            // zkCli's: our connect always waits for the session.
            "waitforconnection" => {}
            "h" | "help" => return Ok(Options { settings, command: vec!["help".to_string()] }),
            _ => return Err(format!("unknown option {arg}")),
        }
        i += 1;
    }
    let mut command = args[i..].to_vec();
    // `zk-cli "ls /"`: one quoted word holding the whole command.
    if let [only] = command.as_slice() {
        if only.contains(char::is_whitespace) {
            command = parse::tokenize(only).map_err(|e| e.to_string())?;
        }
    }
    Ok(Options { settings, command })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{OPTIONS_USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if !options.command.is_empty() {
            return one_shot(options).await;
        }
        if std::io::stdin().is_terminal() {
            interactive(options.settings).await
        } else {
            script(options.settings).await
        }
    })
}

/// Runs the command of the command line once.
async fn one_shot(options: Options) -> ExitCode {
    let command = match parse::parse_args(&options.command) {
        Ok(c) => c,
        Err(e) => {
            shell::report_parse(&e);
            return ExitCode::from(2);
        }
    };
    let mut shell = Shell::new(options.settings, false, None);
    if command.needs_session() {
        if let Err(e) = shell.connect().await {
            shell::report(&e);
            return ExitCode::FAILURE;
        }
    }
    let step = shell.run_command(command).await;
    shell.disconnect().await;
    if step == Step::Failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Runs the lines of stdin, going on after a failure; fails if any line did.
async fn script(settings: Settings) -> ExitCode {
    let mut shell = Shell::new(settings, false, None);
    if let Err(e) = shell.connect().await {
        shell::report(&e);
        return ExitCode::FAILURE;
    }
    if shell.run(LineSource::script()).await { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The interactive shell.
async fn interactive(settings: Settings) -> ExitCode {
    let (input, printer) = match LineSource::editor() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut shell = Shell::new(settings, true, printer);
    println!("Connecting to {}\nWelcome to ZooKeeper!", shell.server());
    if let Err(e) = shell.connect().await {
        shell::report(&e);
    }
    shell.run(input).await;
    ExitCode::SUCCESS
}
