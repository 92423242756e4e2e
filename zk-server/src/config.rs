//! Server configuration: `zoo.cfg` keys as Apache names them, plus the
//! Java system properties Apache reads for the same settings.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error, reported at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file (or `<args>`).
    pub file: String,
    /// The line number (0 when not from a line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Where the AdminServer listens (`admin.*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// `admin.serverAddress` (default `0.0.0.0`).
    pub address: IpAddr,
    /// `admin.serverPort` (default 8080; 0 picks a free port).
    pub port: u16,
    /// `admin.commandURL` (default `/commands`).
    pub command_url: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 8080,
            command_url: "/commands".into(),
        }
    }
}

/// Apache's Prometheus provider class; naming it turns `/metrics` on.
pub const PROMETHEUS_PROVIDER: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// Apache's default provider class (no HTTP endpoint).
pub const DEFAULT_METRICS_PROVIDER: &str = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider";

/// Everything the server reads from `zoo.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `tickTime` (default 2000 ms here, Apache's sample value; Apache's code default is 3000).
    pub tick_time: Duration,
    /// `dataDir`: snapshots and `myid`.
    pub data_dir: PathBuf,
    /// `dataLogDir`: the transaction log (default: `dataDir`).
    pub data_log_dir: PathBuf,
    /// `clientPort` (0 picks a free port).
    pub client_port: u16,
    /// `clientPortAddress` (default all interfaces).
    pub client_port_address: Option<IpAddr>,
    /// `maxClientCnxns` per client IP (0: unlimited; default 60).
    pub max_client_cnxns: usize,
    /// `minSessionTimeout` (default 2 ticks).
    pub min_session_timeout: Option<Duration>,
    /// `maxSessionTimeout` (default 20 ticks).
    pub max_session_timeout: Option<Duration>,
    /// `snapCount` (default 100000).
    pub snap_count: u64,
    /// `snapshot.compression.method` / `zookeeper.snapshot.compression.method`:
    /// `gz`, `snappy` or empty (the default): how snapshots are written.
    /// Snapshots of every format are read.
    pub snapshot_compression: crate::persist::compress::Compression,
    /// `autopurge.snapRetainCount` (default 3, at least 3).
    pub autopurge_snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours (0: off, the default).
    pub autopurge_purge_interval: u64,
    /// `4lw.commands.whitelist` (default `srvr`; `*` for all).
    pub four_letter_words: Vec<String>,
    /// `forceSync` (default yes).
    pub force_sync: bool,
    /// `jute.maxbuffer` (default 0xfffff).
    pub jute_maxbuffer: usize,
    /// `extendedTypesEnabled` / `zookeeper.extendedTypesEnabled` (TTL nodes; default false).
    pub extended_types_enabled: bool,
    /// `enforceQuota` / `zookeeper.enforceQuota` (3.7+): writes past a
    /// quota's hard limit fail with QuotaExceeded (default false).
    pub enforce_quota: bool,
    /// `superDigest` / `zookeeper.DigestAuthenticationProvider.superDigest`.
    pub super_digest: Option<String>,
    /// `globalOutstandingLimit` (default 1000).
    pub global_outstanding_limit: usize,
    /// `znode.container.checkIntervalMs` (default 60000).
    pub container_check_interval: Duration,
    /// `znode.container.maxPerMinute` (default 10000).
    pub container_max_per_minute: usize,
    /// The server id (`myid`, 0 when absent); the top byte of session ids
    /// (a standalone Apache server uses 1 when there is no myid).
    pub server_id: u8,
    /// How long a connection may take to complete its handshake (or its
    /// four-letter word) before it is closed; Apache's
    /// `zookeeper.nio.sessionlessCnxnTimeout`, 10 s by default.
    pub sessionless_cnxn_timeout: Duration,
    /// How long a write to a client's socket may make no progress before
    /// the connection is closed (a client that stopped reading).
    pub client_write_timeout: Duration,
    /// Fault injection for the fail-stop tests, from the environment
    /// variable `ZK_SERVER_FAULT` in the `zk-server` binary only:
    /// `core-panic:<path>` kills the core on a request for `<path>`,
    /// `log-panic:<path>` kills the log thread on a create of `<path>`,
    /// `accept-exit` ends the accept loop after its first connection.
    pub fault_injection: Option<String>,
    /// `readonlymode.enabled` (Apache: a Java system property): a server of
    /// an ensemble that has been looking for a quorum for 2 s serves
    /// read-only clients, reads only.
    pub read_only_mode: bool,
    /// `log.level` (ours): the log filter, as `RUST_LOG` takes it (`info`,
    /// `debug`, `zk_server=debug,info` ...); `RUST_LOG` overrides it.
    pub log_level: Option<String>,
    /// `log.format` (ours): `text` (the default) or `json` (one JSON object
    /// a line); `ZK_LOG_FORMAT` overrides it.
    pub log_json: bool,
    /// `secureClientPort`: the TLS client port (`None`: none; 0 picks a
    /// free port). Needs `ssl.keyStore.*`.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress` (default: `clientPortAddress`, else all
    /// interfaces).
    pub secure_client_port_address: Option<IpAddr>,
    /// Whether the plain `clientPort` is served: false when a `zoo.cfg`
    /// names a `secureClientPort` and no `clientPort`, as Apache.
    pub client_port_enabled: bool,
    /// `ssl.*` (and `zookeeper.ssl.*`): the secure port's key store, trust
    /// store, `ssl.clientAuth` (default need), protocols and cipher suites.
    pub tls: zk_tls::TlsSettings,
    /// `client.certReload` (Apache 3.9; default true here): the key and
    /// trust stores are read again when their files change, for new
    /// connections.
    pub tls_reload: bool,
    /// `X509AuthenticationProvider.superUser`: the client certificate
    /// subject (RFC 2253) that is also `super`.
    pub x509_super_user: Option<String>,
    /// The users SASL DIGEST-MD5 accepts: the `DigestLoginModule`'s
    /// `user_<name>="<password>"` options of the JAAS file named by
    /// `java.security.auth.login.config`, section `zookeeper.sasl.serverconfig`
    /// (default `Server`). `None`: SASL is not configured.
    pub sasl_users: Option<std::collections::BTreeMap<String, String>>,
    /// `superUser` / `zookeeper.superUser`: SASL identities that are also
    /// `super`.
    pub sasl_super_users: Vec<String>,
    /// `enforce.auth.enabled` with `enforce.auth.schemes` (or
    /// `sessionRequireClientSASLAuth=true`, meaning `sasl`): a request from
    /// a connection without an identity of these schemes is answered
    /// SESSIONCLOSEDREQUIRESASLAUTH and the connection closed. Empty: off.
    pub enforce_auth: Vec<String>,
    /// `allowSaslFailedClients`: a client whose SASL failed keeps its
    /// connection (without the identity) unless SASL is required.
    pub allow_sasl_failed_clients: bool,
    /// The AdminServer (`admin.enableServer`, `admin.serverAddress`,
    /// `admin.serverPort`, `admin.commandURL`): Apache's JSON commands over
    /// HTTP and `/ready`. `None`: off. A `zoo.cfg` turns it on at
    /// `0.0.0.0:8080` unless it says `admin.enableServer=false`, as Apache
    /// does; [`ServerConfig::new`] leaves it off (an in-process server
    /// opens no port it was not asked for).
    pub admin: Option<AdminConfig>,
    /// The Prometheus endpoint (`metricsProvider.className=
    /// org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`,
    /// `metricsProvider.httpHost` default `0.0.0.0`,
    /// `metricsProvider.httpPort` default 7000): `GET /metrics`. `None`:
    /// off (Apache's default provider exports nothing).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The ensemble, when the file names servers (`server.N=`).
    pub quorum: Option<crate::quorum::config::QuorumConfig>,
    /// Keys the file had that this server does not use (warned about).
    pub unknown_keys: Vec<String>,
}

impl ServerConfig {
    /// Defaults with `data_dir` as both data dirs.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        ServerConfig {
            tick_time: Duration::from_millis(2000),
            data_log_dir: data_dir.clone(),
            data_dir,
            client_port: 2181,
            client_port_address: None,
            max_client_cnxns: 60,
            min_session_timeout: None,
            max_session_timeout: None,
            snap_count: 100_000,
            snapshot_compression: crate::persist::compress::Compression::None,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval: 0,
            four_letter_words: vec!["srvr".into()],
            force_sync: true,
            jute_maxbuffer: zk_proto::frame::JUTE_MAXBUFFER_DEFAULT,
            extended_types_enabled: false,
            enforce_quota: false,
            super_digest: None,
            global_outstanding_limit: 1000,
            container_check_interval: Duration::from_secs(60),
            container_max_per_minute: 10_000,
            server_id: 1,
            sessionless_cnxn_timeout: Duration::from_secs(10),
            client_write_timeout: Duration::from_secs(30),
            fault_injection: None,
            read_only_mode: false,
            log_level: None,
            log_json: false,
            quorum: None,
            admin: None,
            metrics_addr: None,
            sasl_users: None,
            sasl_super_users: Vec::new(),
            enforce_auth: Vec::new(),
            allow_sasl_failed_clients: false,
            secure_client_port: None,
            secure_client_port_address: None,
            client_port_enabled: true,
            tls: zk_tls::TlsSettings::default(),
            tls_reload: true,
            x509_super_user: None,
            unknown_keys: Vec::new(),
        }
    }

    /// The effective minimum session timeout.
    pub fn min_session(&self) -> Duration {
        self.min_session_timeout.unwrap_or(self.tick_time * 2)
    }

    /// The effective maximum session timeout.
    pub fn max_session(&self) -> Duration {
        self.max_session_timeout.unwrap_or(self.tick_time * 20)
    }

    /// Whether `cmd` is an enabled four-letter word.
    pub fn four_letter_word_enabled(&self, cmd: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == cmd)
    }

    /// Reads a `zoo.cfg` file (and `myid` in its data dir, if any).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and line of a bad value.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        let myid = cfg.data_dir.join("myid");
        let ensemble = cfg.quorum.as_ref().is_some_and(|q| !q.runs_standalone());
        if ensemble && !myid.exists() {
            // Apache: "myid file is missing"; guessing an id would make two
            // servers one.
            return Err(ConfigError {
                file: myid.display().to_string(),
                line: 0,
                message: "missing: a server of an ensemble needs its id (1 to 255) in dataDir/myid".into(),
            });
        }
        if let Ok(id) = std::fs::read_to_string(&myid) {
            cfg.server_id = id.trim().parse().map_err(|_| ConfigError {
                file: myid.display().to_string(),
                line: 1,
                message: format!("myid must be a number from 0 to 255, not {:?}", id.trim()),
            })?;
        }
        if let Some(q) = &cfg.quorum {
            let me = i64::from(cfg.server_id);
            if !q.servers.contains_key(&me) {
                return Err(ConfigError {
                    file: myid.display().to_string(),
                    line: 0,
                    message: format!(
                        "myid is {me}, but zoo.cfg names servers {:?} (is {} there?)",
                        q.servers.keys().collect::<Vec<_>>(),
                        myid.display()
                    ),
                });
            }
        }
        Ok(cfg)
    }

    /// Parses `zoo.cfg` text (`key=value` lines, `#` comments).
    ///
    /// # Errors
    /// A [`ConfigError`] for a missing dataDir or a value that is not valid.
    ///
    /// ```
    /// let cfg = zk_server::ServerConfig::parse("tickTime=500\ndataDir=/tmp/zk\nclientPort=2191\n", "zoo.cfg").unwrap();
    /// assert_eq!(cfg.client_port, 2191);
    /// assert_eq!(cfg.max_session(), std::time::Duration::from_millis(10_000));
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let mut cfg = ServerConfig::new("");
        let mut data_dir = None;
        let mut data_log_dir = None;
        let mut ensemble = crate::quorum::config::EnsembleKeys::default();
        let mut admin = AdminConfig::default();
        let mut admin_on = true;
        let mut prometheus = false;
        let mut metrics_host = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let mut metrics_port = 7000u16;
        let mut client_port_given = false;
        let mut jaas: Option<(PathBuf, usize)> = None;
        let mut jaas_section = "Server".to_string();
        let mut enforce = false;
        let mut enforce_schemes: Option<(Vec<String>, usize)> = None;
        let mut require_sasl = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| ConfigError { file: file.to_string(), line: i + 1, message };
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(format!("expected key=value, found {line:?}")));
            };
            let (key, value) = (key.trim(), value.trim());
            let num = |what: &str| -> Result<u64, ConfigError> {
                value
                    .parse::<u64>()
                    .map_err(|_| err(format!("{key} must be a non-negative number ({what}), not {value:?}")))
            };
            let boolean = || -> Result<bool, ConfigError> {
                match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" => Ok(true),
                    "no" | "false" => Ok(false),
                    _ => Err(err(format!("{key} must be yes/no or true/false, not {value:?}"))),
                }
            };
            match key {
                "tickTime" => {
                    let t = num("milliseconds")?;
                    if t == 0 {
                        return Err(err("tickTime must be positive".into()));
                    }
                    cfg.tick_time = Duration::from_millis(t);
                }
                "dataDir" => data_dir = Some(PathBuf::from(value)),
                "dataLogDir" => data_log_dir = Some(PathBuf::from(value)),
                "secureClientPort" => {
                    cfg.secure_client_port = Some(
                        u16::try_from(num("port")?)
                            .map_err(|_| err(format!("{key} must be a port number, not {value:?}")))?,
                    )
                }
                "secureClientPortAddress" => {
                    cfg.secure_client_port_address = Some(
                        value
                            .parse()
                            .map_err(|_| err(format!("{key} must be an IP address, not {value:?}")))?,
                    )
                }
                "client.certReload" | "zookeeper.client.certReload" => cfg.tls_reload = boolean()?,
                // Java reads this one from the command line (-D); here it
                // is a zoo.cfg key.
                "java.security.auth.login.config" => jaas = Some((PathBuf::from(value), i + 1)),
                "sasl.serverconfig" | "zookeeper.sasl.serverconfig" => jaas_section = value.to_string(),
                k if k == "superUser"
                    || k == "zookeeper.superUser"
                    || k.starts_with("superUser.")
                    || k.starts_with("zookeeper.superUser.") =>
                {
                    cfg.sasl_super_users.push(value.to_string())
                }
                "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => enforce = boolean()?,
                "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
                    let list: Vec<String> =
                        value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if let Some(bad) =
                        list.iter().find(|s| !matches!(s.as_str(), "sasl" | "digest" | "ip" | "x509"))
                    {
                        return Err(err(format!("{key}: authentication scheme {bad:?} is not available")));
                    }
                    enforce_schemes = Some((list, i + 1));
                }
                "sessionRequireClientSASLAuth" | "zookeeper.sessionRequireClientSASLAuth" => {
                    require_sasl = boolean()?
                }
                "allowSaslFailedClients" | "zookeeper.allowSaslFailedClients" => {
                    cfg.allow_sasl_failed_clients = boolean()?
                }
                "X509AuthenticationProvider.superUser" | "zookeeper.X509AuthenticationProvider.superUser" => {
                    cfg.x509_super_user = Some(value.to_string())
                }
                // The transport: Netty or NIO on Apache, tokio here.
                "serverCnxnFactory" | "zookeeper.serverCnxnFactory" => {}
                // Apache loads authentication providers by class name; the
                // built-in ones are always here (x509 on the secure port).
                k if k.starts_with("authProvider.") || k.starts_with("zookeeper.authProvider.") => {
                    const KNOWN: &[&str] = &[
                        "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
                        "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
                        "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
                        "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                    ];
                    if !KNOWN.contains(&value) {
                        return Err(err(format!(
                            "{key}: the provider {value:?} cannot be loaded here (the built-in x509, digest, ip \
                             and sasl providers are always on)"
                        )));
                    }
                }
                k if k.starts_with("ssl.quorum.")
                    || k.starts_with("zookeeper.ssl.quorum.")
                    || k == "sslQuorum" =>
                {
                    cfg.unknown_keys.push(k.to_string())
                }
                k if k.starts_with("ssl.") || k.starts_with("zookeeper.ssl.") => {
                    if !cfg.tls.set(k, value).map_err(|e| err(e.to_string()))? {
                        cfg.unknown_keys.push(k.to_string())
                    }
                }
                "clientPort" => {
                    client_port_given = true;
                    cfg.client_port = u16::try_from(num("a port")?)
                        .map_err(|_| err(format!("clientPort {value} is not a port")))?
                }
                "clientPortAddress" => {
                    cfg.client_port_address = Some(
                        value
                            .parse()
                            .map_err(|_| err(format!("clientPortAddress {value:?} is not an IP address")))?,
                    )
                }
                "maxClientCnxns" => cfg.max_client_cnxns = num("connections")? as usize,
                "minSessionTimeout" => {
                    cfg.min_session_timeout = Some(Duration::from_millis(num("milliseconds")?))
                }
                "maxSessionTimeout" => {
                    cfg.max_session_timeout = Some(Duration::from_millis(num("milliseconds")?))
                }
                "snapCount" | "zookeeper.snapCount" => {
                    cfg.snap_count = num("txns")?.max(2);
                }
                "snapshot.compression.method" | "zookeeper.snapshot.compression.method" => {
                    cfg.snapshot_compression =
                        crate::persist::compress::Compression::parse(value).map_err(err)?;
                }
                "autopurge.snapRetainCount" => {
                    cfg.autopurge_snap_retain_count = (num("snapshots")? as usize).max(3)
                }
                "autopurge.purgeInterval" => cfg.autopurge_purge_interval = num("hours")?,
                "4lw.commands.whitelist" | "zookeeper.4lw.commands.whitelist" => {
                    cfg.four_letter_words =
                        value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                }
                "forceSync" | "zookeeper.forceSync" => cfg.force_sync = boolean()?,
                "jute.maxbuffer" => {
                    let v = num("bytes")? as usize;
                    if v == 0 {
                        return Err(err("jute.maxbuffer must be positive".into()));
                    }
                    cfg.jute_maxbuffer = v;
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    cfg.extended_types_enabled = boolean()?
                }
                "enforceQuota" | "zookeeper.enforceQuota" => cfg.enforce_quota = boolean()?,
                "readonlymode.enabled" => cfg.read_only_mode = boolean()?,
                "log.level" => {
                    tracing_subscriber::EnvFilter::try_new(value)
                        .map_err(|e| err(format!("log.level {value:?} is not a log filter: {e}")))?;
                    cfg.log_level = Some(value.to_string())
                }
                "log.format" => {
                    cfg.log_json = match value {
                        "json" => true,
                        "text" => false,
                        _ => return Err(err(format!("log.format must be text or json, not {value:?}"))),
                    }
                }
                "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if !value.contains(':') {
                        return Err(err("superDigest must look like super:<base64 sha1>".into()));
                    }
                    cfg.super_digest = Some(value.to_string())
                }
                "globalOutstandingLimit" | "zookeeper.globalOutstandingLimit" => {
                    cfg.global_outstanding_limit = (num("requests")? as usize).max(1)
                }
                "znode.container.checkIntervalMs" => {
                    cfg.container_check_interval = Duration::from_millis(num("milliseconds")?.max(1))
                }
                "znode.container.maxPerMinute" => cfg.container_max_per_minute = num("nodes")? as usize,
                k if crate::quorum::config::EnsembleKeys::takes(k) => {
                    ensemble.members.push((i + 1, k.to_string(), value.to_string()))
                }
                "initLimit" => ensemble.init_limit = Some(num("ticks")? as u32),
                "syncLimit" => ensemble.sync_limit = Some(num("ticks")? as u32),
                "standaloneEnabled" => ensemble.standalone_enabled = Some(boolean()?),
                "quorumListenOnAllIPs" => ensemble.listen_on_all_ips = Some(boolean()?),
                "electionPortBindRetry" => ensemble.election_port_bind_retry = Some(num("retries")? as u32),
                "peerType" => {
                    ensemble.peer_type = Some(match value {
                        "participant" => crate::quorum::config::LearnerType::Participant,
                        "observer" => crate::quorum::config::LearnerType::Observer,
                        _ => {
                            return Err(err(format!(
                                "peerType must be participant or observer, not {value:?}"
                            )));
                        }
                    })
                }
                "admin.enableServer" | "zookeeper.admin.enableServer" => admin_on = boolean()?,
                "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                    admin.address = value
                        .parse()
                        .map_err(|_| err(format!("{key} must be an IP address, not {value:?}")))?
                }
                "admin.serverPort" | "zookeeper.admin.serverPort" => {
                    admin.port = u16::try_from(num("port")?)
                        .map_err(|_| err(format!("{key} must be a port number, not {value:?}")))?
                }
                "admin.commandURL" | "zookeeper.admin.commandURL" => {
                    if !value.starts_with('/') || value.len() < 2 || value.contains(['{', '}', '*']) {
                        return Err(err(format!("{key} must be a path such as /commands, not {value:?}")));
                    }
                    admin.command_url = value.trim_end_matches('/').to_string()
                }
                // Jetty's idle timeout: connections here are closed by the
                // HTTP server's own rules.
                "admin.idleTimeout" | "zookeeper.admin.idleTimeout" => {
                    num("ms")?;
                }
                "metricsProvider.className" => {
                    prometheus = match value {
                        PROMETHEUS_PROVIDER => true,
                        DEFAULT_METRICS_PROVIDER => false,
                        _ => {
                            return Err(err(format!(
                                "metricsProvider.className {value:?} is not available here: use \
                                 {PROMETHEUS_PROVIDER} or {DEFAULT_METRICS_PROVIDER}"
                            )));
                        }
                    }
                }
                "metricsProvider.httpPort" => {
                    metrics_port = u16::try_from(num("port")?)
                        .map_err(|_| err(format!("{key} must be a port number, not {value:?}")))?
                }
                "metricsProvider.httpHost" => {
                    metrics_host = value
                        .parse()
                        .map_err(|_| err(format!("{key} must be an IP address, not {value:?}")))?
                }
                // JVM metrics: there is no JVM.
                "metricsProvider.exportJvmInfo" => {
                    boolean()?;
                }
                // Accepted for compatibility; they only matter to features
                // this server does not have.
                k if matches!(k, "reconfigEnabled" | "preAllocSize") => cfg.unknown_keys.push(k.to_string()),
                other => cfg.unknown_keys.push(other.to_string()),
            }
        }
        cfg.admin = admin_on.then_some(admin);
        if require_sasl {
            cfg.enforce_auth = vec!["sasl".to_string()];
        } else if enforce {
            match enforce_schemes {
                Some((list, _)) if !list.is_empty() => cfg.enforce_auth = list,
                _ => {
                    return Err(ConfigError {
                        file: file.to_string(),
                        line: 0,
                        message: "enforce.auth.enabled is true: enforce.auth.schemes must name the schemes"
                            .into(),
                    });
                }
            }
        }
        if let Some((path, line)) = jaas {
            let e = |message: String| ConfigError { file: file.to_string(), line, message };
            let text = std::fs::read_to_string(&path)
                .map_err(|x| e(format!("java.security.auth.login.config {}: {x}", path.display())))?;
            cfg.sasl_users = Some(
                crate::jaas::digest_users(&text, &jaas_section)
                    .map_err(|m| e(format!("{}: {m}", path.display())))?,
            );
        }
        if cfg.secure_client_port.is_some() && !client_port_given {
            cfg.client_port_enabled = false;
        }
        cfg.metrics_addr = prometheus.then(|| std::net::SocketAddr::new(metrics_host, metrics_port));
        let Some(data_dir) = data_dir else {
            return Err(ConfigError {
                file: file.to_string(),
                line: 0,
                message: "dataDir is not set".into(),
            });
        };
        cfg.data_log_dir = data_log_dir.unwrap_or_else(|| data_dir.clone());
        cfg.data_dir = data_dir;
        cfg.quorum = ensemble.build().map_err(|(line, message)| ConfigError {
            file: file.to_string(),
            line,
            message,
        })?;
        if cfg.min_session() > cfg.max_session() {
            return Err(ConfigError {
                file: file.to_string(),
                line: 0,
                message: format!(
                    "minSessionTimeout {:?} is larger than maxSessionTimeout {:?}",
                    cfg.min_session(),
                    cfg.max_session()
                ),
            });
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apache_sample() {
        let text = "# The number of milliseconds of each tick\ntickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/var/lib/zookeeper\nclientPort=2181\n#maxClientCnxns=60\nautopurge.snapRetainCount=3\nautopurge.purgeInterval=1\n4lw.commands.whitelist=ruok, srvr,mntr\nfoo=bar\n";
        let c = ServerConfig::parse(text, "zoo.cfg").unwrap();
        assert_eq!(c.tick_time, Duration::from_secs(2));
        assert_eq!(c.data_log_dir, PathBuf::from("/var/lib/zookeeper"));
        assert_eq!(c.four_letter_words, vec!["ruok", "srvr", "mntr"]);
        assert!(c.four_letter_word_enabled("mntr") && !c.four_letter_word_enabled("dump"));
        assert_eq!(c.min_session(), Duration::from_secs(4));
        assert_eq!(c.max_session(), Duration::from_secs(40));
        assert!(c.unknown_keys.contains(&"foo".to_string()));
    }

    #[test]
    fn admin_and_metrics_keys() {
        let c = ServerConfig::parse("dataDir=/x\n", "zoo.cfg").unwrap();
        assert_eq!(c.admin, Some(AdminConfig::default()), "on at 8080 as Apache");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(ServerConfig::new("/x").admin, None);
        let c = ServerConfig::parse(
            "dataDir=/x\nadmin.serverPort=9090\nadmin.serverAddress=127.0.0.1\nadmin.commandURL=/cmd/\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpPort=7001\nmetricsProvider.exportJvmInfo=false\n",
            "zoo.cfg",
        )
        .unwrap();
        let a = c.admin.unwrap();
        assert_eq!(
            (a.port, a.command_url.as_str(), a.address.to_string()),
            (9090, "/cmd", "127.0.0.1".into())
        );
        assert_eq!(c.metrics_addr, Some("0.0.0.0:7001".parse().unwrap()));
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        assert_eq!(ServerConfig::parse("dataDir=/x\nadmin.enableServer=false\n", "f").unwrap().admin, None);
        let e =
            ServerConfig::parse("dataDir=/x\nmetricsProvider.className=com.example.Nope\n", "f").unwrap_err();
        assert!(e.line == 2 && e.message.contains("PrometheusMetricsProvider"), "{e}");
        assert!(ServerConfig::parse("dataDir=/x\nadmin.serverPort=70000\n", "f").is_err());
        assert!(ServerConfig::parse("dataDir=/x\nadmin.commandURL=nope\n", "f").is_err());
    }

    #[test]
    fn bad_values_name_the_line() {
        let e = ServerConfig::parse("dataDir=/x\nclientPort=99999\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("clientPort"));
        assert!(ServerConfig::parse("tickTime=2000\n", "zoo.cfg").unwrap_err().message.contains("dataDir"));
        assert!(ServerConfig::parse("dataDir=/x\nforceSync=maybe\n", "f").is_err());
        assert!(ServerConfig::parse("dataDir=/x\njunk\n", "f").is_err());
        assert!(
            ServerConfig::parse("dataDir=/x\nminSessionTimeout=9000\nmaxSessionTimeout=100\n", "f").is_err()
        );
    }

    #[test]
    fn ensembles_are_read_and_checked() {
        let text = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/x\nclientPort=2181\n\
                    server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n\
                    server.3=127.0.0.1:2890:3890:observer;2183\nquorumListenOnAllIPs=true\n";
        let c = ServerConfig::parse(text, "zoo.cfg").unwrap();
        let q = c.quorum.unwrap();
        assert_eq!((q.servers.len(), q.init_limit, q.sync_limit), (3, 10, 5));
        assert!(q.listen_on_all_ips && !q.runs_standalone());
        assert!(q.verifier.is_voter(2) && !q.verifier.is_voter(3));
        let e = ServerConfig::parse(
            "dataDir=/x\ninitLimit=5\nsyncLimit=2\nserver.1=a:1:2\nserver.2=b:1\n",
            "zoo.cfg",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "the bad line is named: {e}");
        let one = ServerConfig::parse("dataDir=/x\nserver.1=a:1:2\n", "zoo.cfg").unwrap();
        assert!(one.quorum.unwrap().runs_standalone(), "one server with standaloneEnabled runs standalone");
        assert_eq!(ServerConfig::parse("dataDir=/x\n", "zoo.cfg").unwrap().quorum, None);
    }

    #[test]
    fn myid_must_name_a_server_of_the_ensemble() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let text = format!(
            "dataDir={}\ninitLimit=5\nsyncLimit=2\nserver.1=a:1:2\nserver.2=b:1:2\n",
            dir.path().display()
        );
        std::fs::write(&cfg, text).unwrap();
        let e = ServerConfig::from_file(&cfg).unwrap_err();
        assert!(e.message.contains("needs its id") && e.file.ends_with("myid"), "{e}");
        std::fs::write(dir.path().join("myid"), "7\n").unwrap();
        let e = ServerConfig::from_file(&cfg).unwrap_err();
        assert!(e.message.contains("myid is 7"), "{e}");
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        assert_eq!(ServerConfig::from_file(&cfg).unwrap().server_id, 2);
    }
}
