//! The ensemble as `zoo.cfg` describes it, read as Apache's
//! `QuorumPeerConfig` reads it: `server.N` lines, `group.N` / `weight.N`
//! (hierarchical quorums), `initLimit`, `syncLimit`, `peerType`,
//! `standaloneEnabled`, `quorumListenOnAllIPs`, `electionPortBindRetry`,
//! and the quorum rule that follows ([`QuorumVerifier`]).
//!
//! ```text
//! server.1=zk1:2888:3888
//! server.2=zk2:2888:3888:participant;2181
//! server.3=zk3:2888:3888:observer;0.0.0.0:2181
//! ```

use std::collections::{BTreeMap, BTreeSet};

/// A server's role in the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerType {
    /// Votes in elections and for commits.
    Participant,
    /// Follows the leader without a vote.
    Observer,
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumServer {
    /// The server id (`N`, its `myid`).
    pub id: i64,
    /// The host peers reach it on.
    pub host: String,
    /// The port learners connect to when it leads.
    pub quorum_port: u16,
    /// The port of leader election.
    pub election_port: u16,
    /// Participant or observer.
    pub learner_type: LearnerType,
    /// The client address given after `;` (host, port), if any.
    pub client: Option<(String, u16)>,
}

impl QuorumServer {
    /// Parses the value of `server.<id>=`.
    ///
    /// # Errors
    /// A message saying what is wrong with the value.
    pub fn parse(id: i64, value: &str) -> Result<QuorumServer, String> {
        let (server_part, client_part) = match value.split_once(';') {
            Some((s, c)) => (s.trim(), Some(c.trim())),
            None => (value.trim(), None),
        };
        if server_part.contains('|') {
            return Err("several addresses for one server (multiAddress) are not supported".into());
        }
        let parts = split_host_ports(server_part)?;
        let (host, rest) = parts.split_first().ok_or("no address")?;
        if rest.len() < 2 {
            return Err(format!("{value:?} needs host:quorumPort:electionPort"));
        }
        let port = |s: &str, what: &str| -> Result<u16, String> {
            s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("{what} {s:?} is not a port"))
        };
        let quorum_port = port(&rest[0], "quorum port")?;
        let election_port = port(&rest[1], "election port")?;
        let learner_type = match rest.get(2).map(|s| s.to_ascii_lowercase()) {
            None => LearnerType::Participant,
            Some(t) if t == "participant" => LearnerType::Participant,
            Some(t) if t == "observer" => LearnerType::Observer,
            Some(t) => return Err(format!("unknown server type {t:?} (participant or observer)")),
        };
        if rest.len() > 3 {
            return Err(format!("too many fields in {value:?}"));
        }
        let client = match client_part {
            None | Some("") => None,
            Some(c) => {
                let parts = split_host_ports(c)?;
                match &parts[..] {
                    [p] => Some(("0.0.0.0".to_string(), port(p, "client port")?)),
                    [h, p] => Some((h.clone(), port(p, "client port")?)),
                    _ => return Err(format!("client address {c:?} must be [host:]port")),
                }
            }
        };
        Ok(QuorumServer { id, host: host.clone(), quorum_port, election_port, learner_type, client })
    }

    /// `host:quorumPort`: where learners connect when it leads.
    pub fn quorum_addr(&self) -> String {
        join_host_port(&self.host, self.quorum_port)
    }

    /// `host:port` of its election port (what a peer's initial message
    /// carries).
    pub fn election_addr(&self) -> String {
        join_host_port(&self.host, self.election_port)
    }

    /// The line's value as Apache's `QuorumServer.toString` writes it,
    /// which peers exchange inside election notifications.
    pub fn to_config_value(&self) -> String {
        let ty = match self.learner_type {
            LearnerType::Participant => "participant",
            LearnerType::Observer => "observer",
        };
        let mut s = format!("{}:{}:{}:{ty}", bracket(&self.host), self.quorum_port, self.election_port);
        if let Some((h, p)) = &self.client {
            s.push_str(&format!(";{}", join_host_port(h, *p)));
        }
        s
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_string() }
}

fn join_host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracket(host))
}

/// Splits `host:p1:p2...`, where the host may be `[ipv6]`.
fn split_host_ports(s: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        let mut v = vec![host.to_string()];
        if !after.is_empty() {
            let after = after.strip_prefix(':').ok_or_else(|| format!("expected ':' after ']' in {s:?}"))?;
            v.extend(after.split(':').map(str::to_string));
        }
        return Ok(v);
    }
    Ok(s.split(':').map(|p| p.trim().to_string()).collect())
}

/// Who forms a quorum: a majority of the participants, or Apache's
/// hierarchical rule (a majority of groups, each by a majority of its
/// weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumVerifier {
    /// More than half of the voters.
    Majority {
        /// The participants.
        voters: BTreeSet<i64>,
    },
    /// `group.N` and `weight.N` (Apache's `QuorumHierarchical`).
    Hierarchical {
        /// Server → group.
        group_of: BTreeMap<i64, i64>,
        /// Server → weight (1 unless set).
        weight: BTreeMap<i64, u64>,
    },
}

impl QuorumVerifier {
    /// A server's weight in elections (0: cannot lead).
    pub fn weight(&self, sid: i64) -> u64 {
        match self {
            QuorumVerifier::Majority { voters } => u64::from(voters.contains(&sid)),
            QuorumVerifier::Hierarchical { weight, group_of } => {
                if group_of.contains_key(&sid) {
                    weight.get(&sid).copied().unwrap_or(1)
                } else {
                    0
                }
            }
        }
    }

    /// Whether `sid` votes.
    pub fn is_voter(&self, sid: i64) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => voters.contains(&sid),
            QuorumVerifier::Hierarchical { group_of, .. } => group_of.contains_key(&sid),
        }
    }

    /// The voters.
    pub fn voters(&self) -> Vec<i64> {
        match self {
            QuorumVerifier::Majority { voters } => voters.iter().copied().collect(),
            QuorumVerifier::Hierarchical { group_of, .. } => group_of.keys().copied().collect(),
        }
    }

    /// Whether the servers in `set` form a quorum.
    pub fn contains_quorum(&self, set: &BTreeSet<i64>) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => {
                set.iter().filter(|s| voters.contains(s)).count() > voters.len() / 2
            }
            QuorumVerifier::Hierarchical { group_of, weight } => {
                let w = |s: &i64| weight.get(s).copied().unwrap_or(1);
                let mut total: BTreeMap<i64, u64> = BTreeMap::new();
                for (s, g) in group_of {
                    *total.entry(*g).or_default() += w(s);
                }
                let groups = total.values().filter(|t| **t > 0).count();
                let mut got: BTreeMap<i64, u64> = BTreeMap::new();
                for s in set {
                    if let Some(g) = group_of.get(s) {
                        *got.entry(*g).or_default() += w(s);
                    }
                }
                let majorities =
                    got.iter().filter(|(g, sum)| **sum > total.get(g).copied().unwrap_or(0) / 2).count();
                !set.is_empty() && majorities > groups / 2
            }
        }
    }
}

/// The ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Every server by id.
    pub servers: BTreeMap<i64, QuorumServer>,
    /// Who forms a quorum.
    pub verifier: QuorumVerifier,
    /// `initLimit` ticks: connecting and syncing to a leader.
    pub init_limit: u32,
    /// `syncLimit` ticks: how far a follower may fall behind.
    pub sync_limit: u32,
    /// `standaloneEnabled` (default true): one server alone runs
    /// standalone.
    pub standalone_enabled: bool,
    /// `quorumListenOnAllIPs` (default false): listen for peers on
    /// 0.0.0.0 instead of the configured host.
    pub listen_on_all_ips: bool,
    /// `electionPortBindRetry` (default 3; 0 retries forever).
    pub election_port_bind_retry: u32,
    /// The config version (`version=` in a dynamic file; 0 for static).
    pub version: i64,
}

impl QuorumConfig {
    /// The config as peers exchange it in election notifications
    /// (Apache's `QuorumVerifier.toString`).
    pub fn to_config_string(&self) -> String {
        let mut s = String::new();
        for q in self.servers.values() {
            s.push_str(&format!("server.{}={}\n", q.id, q.to_config_value()));
        }
        if let QuorumVerifier::Hierarchical { group_of, weight } = &self.verifier {
            let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (sid, g) in group_of {
                groups.entry(*g).or_default().push(*sid);
            }
            for (g, members) in groups {
                let m: Vec<String> = members.iter().map(i64::to_string).collect();
                s.push_str(&format!("group.{g}={}\n", m.join(":")));
            }
            for (sid, w) in weight {
                s.push_str(&format!("weight.{sid}={w}\n"));
            }
        }
        s.push_str(&format!("version={:x}", self.version));
        s
    }

    /// Whether this config makes `my_id` run as a standalone server
    /// (Apache: one participant and `standaloneEnabled`).
    pub fn runs_standalone(&self) -> bool {
        self.standalone_enabled && self.verifier.voters().len() == 1 && self.servers.len() == 1
    }
}

/// The ensemble keys of a `zoo.cfg`, collected while the rest of the file
/// is read.
#[derive(Debug, Default, Clone)]
pub struct EnsembleKeys {
    /// (line, key, value) of `server.`, `group.`, `weight.` lines.
    pub members: Vec<(usize, String, String)>,
    /// `initLimit`.
    pub init_limit: Option<u32>,
    /// `syncLimit`.
    pub sync_limit: Option<u32>,
    /// `standaloneEnabled`.
    pub standalone_enabled: Option<bool>,
    /// `quorumListenOnAllIPs`.
    pub listen_on_all_ips: Option<bool>,
    /// `electionPortBindRetry`.
    pub election_port_bind_retry: Option<u32>,
    /// `peerType`.
    pub peer_type: Option<LearnerType>,
}

impl EnsembleKeys {
    /// Whether `key` is one of the ensemble's.
    pub fn takes(key: &str) -> bool {
        key.starts_with("server.") || key.starts_with("group.") || key.starts_with("weight.")
    }

    /// Builds the ensemble; `None` when the file names no server. Errors
    /// carry the line they are about (0 for the file as a whole).
    ///
    /// # Errors
    /// `(line, message)` for a bad line or an inconsistent ensemble.
    pub fn build(&self) -> Result<Option<QuorumConfig>, (usize, String)> {
        let mut servers = BTreeMap::new();
        let mut group_of = BTreeMap::new();
        let mut weight = BTreeMap::new();
        let mut has_groups = false;
        for (line, key, value) in &self.members {
            let (kind, id) = key.split_once('.').unwrap_or((key.as_str(), ""));
            let id: i64 = id.parse().map_err(|_| (*line, format!("{key}: {id:?} is not a server id")))?;
            match kind {
                "server" => {
                    if id < 0 {
                        return Err((*line, format!("{key}: a server id cannot be negative")));
                    }
                    let qs = QuorumServer::parse(id, value).map_err(|e| (*line, format!("{key}: {e}")))?;
                    if servers.insert(id, qs).is_some() {
                        return Err((*line, format!("{key} is given twice")));
                    }
                }
                "group" => {
                    has_groups = true;
                    for m in value.split(':') {
                        let sid: i64 = m
                            .trim()
                            .parse()
                            .map_err(|_| (*line, format!("{key}: {m:?} is not a server id")))?;
                        if group_of.insert(sid, id).is_some() {
                            return Err((*line, format!("server {sid} is in more than one group")));
                        }
                    }
                }
                _ => {
                    let w: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| (*line, format!("{key}: {value:?} is not a weight")))?;
                    weight.insert(id, w);
                }
            }
        }
        if servers.is_empty() {
            if !group_of.is_empty() || !weight.is_empty() {
                return Err((0, "group.N / weight.N given without any server.N".into()));
            }
            return Ok(None);
        }
        let voters: BTreeSet<i64> =
            servers.values().filter(|s| s.learner_type == LearnerType::Participant).map(|s| s.id).collect();
        if voters.is_empty() {
            return Err((0, "the ensemble has no participant (every server is an observer)".into()));
        }
        let verifier = if has_groups {
            for v in &voters {
                if !group_of.contains_key(v) {
                    return Err((0, format!("server {v} is a participant but in no group")));
                }
            }
            for sid in group_of.keys().chain(weight.keys()) {
                match servers.get(sid) {
                    None => {
                        return Err((
                            0,
                            format!("group/weight names server {sid}, which has no server.{sid} line"),
                        ));
                    }
                    Some(s) if s.learner_type == LearnerType::Observer && group_of.contains_key(sid) => {
                        return Err((0, format!("server {sid} is an observer and cannot be in a group")));
                    }
                    _ => {}
                }
            }
            QuorumVerifier::Hierarchical { group_of, weight }
        } else {
            if !weight.is_empty() {
                return Err((0, "weight.N needs group.N lines (hierarchical quorums)".into()));
            }
            QuorumVerifier::Majority { voters }
        };
        let init_limit = self.init_limit.unwrap_or(0);
        let sync_limit = self.sync_limit.unwrap_or(0);
        if servers.len() > 1 && (init_limit == 0 || sync_limit == 0) {
            return Err((0, "an ensemble needs initLimit and syncLimit (in ticks)".into()));
        }
        let mut seen = BTreeMap::new();
        for s in servers.values() {
            for (what, port) in [("quorum", s.quorum_port), ("election", s.election_port)] {
                if let Some(other) = seen.insert((s.host.clone(), port), (s.id, what)) {
                    return Err((
                        0,
                        format!(
                            "server.{} {what} port {}:{port} is also server.{}'s {} port",
                            s.id, s.host, other.0, other.1
                        ),
                    ));
                }
            }
        }
        Ok(Some(QuorumConfig {
            servers,
            verifier,
            init_limit,
            sync_limit,
            standalone_enabled: self.standalone_enabled.unwrap_or(true),
            listen_on_all_ips: self.listen_on_all_ips.unwrap_or(false),
            election_port_bind_retry: self.election_port_bind_retry.unwrap_or(3),
            version: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(lines: &[(&str, &str)]) -> EnsembleKeys {
        let mut k = EnsembleKeys { init_limit: Some(10), sync_limit: Some(5), ..Default::default() };
        for (i, (key, v)) in lines.iter().enumerate() {
            k.members.push((i + 1, key.to_string(), v.to_string()));
        }
        k
    }

    #[test]
    fn server_lines_as_apache_writes_them() {
        let s = QuorumServer::parse(1, "zk1:2888:3888").unwrap();
        assert_eq!((s.host.as_str(), s.quorum_port, s.election_port), ("zk1", 2888, 3888));
        assert_eq!((s.learner_type, s.client.clone()), (LearnerType::Participant, None));
        let s = QuorumServer::parse(3, "10.0.0.3:2888:3888:observer;0.0.0.0:2181").unwrap();
        assert_eq!(s.learner_type, LearnerType::Observer);
        assert_eq!(s.client, Some(("0.0.0.0".into(), 2181)));
        assert_eq!(s.to_config_value(), "10.0.0.3:2888:3888:observer;0.0.0.0:2181");
        let s = QuorumServer::parse(2, "[::1]:2888:3888:participant;2182").unwrap();
        assert_eq!((s.host.as_str(), s.client.clone()), ("::1", Some(("0.0.0.0".into(), 2182))));
        assert_eq!(s.election_addr(), "[::1]:3888");
        for bad in ["zk1:2888", "zk1:x:3888", "zk1:2888:3888:leader", "zk1:0:3888", "a:1:2|b:1:2", "[::1:1:2"]
        {
            assert!(QuorumServer::parse(1, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn majority_and_hierarchical_quorums() {
        let c = keys(&[
            ("server.1", "a:1:2"),
            ("server.2", "b:1:2"),
            ("server.3", "c:1:2"),
            ("server.4", "d:1:2:observer"),
        ])
        .build()
        .unwrap()
        .unwrap();
        let q = |v: &[i64]| c.verifier.contains_quorum(&v.iter().copied().collect());
        assert!(q(&[1, 2]) && q(&[2, 3]) && !q(&[1]) && !q(&[1, 4]), "2 of 3 voters; observers do not count");
        assert_eq!((c.verifier.weight(1), c.verifier.weight(4)), (1, 0));
        assert!(c.to_config_string().ends_with("server.4=d:1:2:observer\nversion=0"));

        // Two groups of three (weights 1,1,1 and 1,1,2): a quorum needs a
        // majority of the weight in a majority of the groups, i.e. both.
        let h = keys(&[
            ("server.1", "a:1:2"),
            ("server.2", "b:1:2"),
            ("server.3", "c:1:2"),
            ("server.4", "d:1:2"),
            ("server.5", "e:1:2"),
            ("server.6", "f:1:2"),
            ("group.1", "1:2:3"),
            ("group.2", "4:5:6"),
            ("weight.6", "2"),
        ])
        .build()
        .unwrap()
        .unwrap();
        let hq = |v: &[i64]| h.verifier.contains_quorum(&v.iter().copied().collect());
        assert!(!hq(&[1, 2, 6]), "group 2 has 2 of its weight 4: not more than half");
        assert!(!hq(&[1, 2, 3]), "one group alone is not a majority of two groups");
        assert!(hq(&[1, 2, 4, 6]));
        assert!(!hq(&[1, 2, 4]), "1 of weight 4 in group 2");
    }

    #[test]
    fn inconsistent_ensembles_are_refused() {
        let err = |lines: &[(&str, &str)]| keys(lines).build().unwrap_err().1;
        assert!(err(&[("server.1", "a:1:2"), ("server.1", "b:1:2")]).contains("twice"));
        assert!(err(&[("server.1", "a:1:2:observer")]).contains("no participant"));
        assert!(err(&[("server.1", "a:1:2"), ("server.2", "a:1:3")]).contains("also server.1"));
        assert!(
            err(&[("server.1", "a:1:2"), ("group.1", "1"), ("group.2", "1")]).contains("more than one group")
        );
        assert!(
            err(&[("server.1", "a:1:2"), ("server.2", "b:1:2"), ("group.1", "1")]).contains("in no group")
        );
        assert!(err(&[("server.1", "a:1:2"), ("weight.1", "2")]).contains("needs group"));
        assert!(err(&[("server.x", "a:1:2")]).contains("not a server id"));
        let mut no_limits = keys(&[("server.1", "a:1:2"), ("server.2", "b:1:2")]);
        no_limits.init_limit = None;
        assert!(no_limits.build().unwrap_err().1.contains("initLimit"));
        assert_eq!(EnsembleKeys::default().build().unwrap(), None);
    }
}
