//! Connect strings: `host1:2181,host2:2182,[::1]:2183/optional/chroot`.

use crate::error::{Error, Result};

/// The default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `(host, port)` pairs in the order given.
    pub hosts: Vec<(String, u16)>,
    /// The chroot, without trailing slash; `None` for none (or `/`).
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses a connect string.
    ///
    /// # Errors
    /// [`Error::InvalidConnectString`] when there is no host or a port is
    /// not a number; [`Error::InvalidPath`] for an invalid chroot.
    ///
    /// ```
    /// use zk_client::ConnectString;
    /// let cs = ConnectString::parse("zk1:2181,zk2,[::1]:2183/app").unwrap();
    /// assert_eq!(cs.hosts, vec![("zk1".into(), 2181), ("zk2".into(), 2181), ("::1".into(), 2183)]);
    /// assert_eq!(cs.chroot.as_deref(), Some("/app"));
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidConnectString(s.to_string());
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                zk_proto::path::validate_path(c, false)?;
                Some(c.to_string())
            }
        };
        let mut hosts = Vec::new();
        for part in hosts_part.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (host, port) = if let Some(rest) = part.strip_prefix('[') {
                let end = rest.find(']').ok_or_else(bad)?;
                let host = &rest[..end];
                let port = match rest[end + 1..].strip_prefix(':') {
                    Some(p) => p.parse().map_err(|_| bad())?,
                    None if rest.len() == end + 1 => DEFAULT_PORT,
                    None => return Err(bad()),
                };
                (host, port)
            } else {
                match part.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                    None => (part, DEFAULT_PORT),
                }
            };
            if host.is_empty() {
                return Err(bad());
            }
            hosts.push((host.to_string(), port));
        }
        if hosts.is_empty() {
            return Err(bad());
        }
        Ok(ConnectString { hosts, chroot })
    }
}

/// Prefixes and strips a chroot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chroot(Option<std::sync::Arc<str>>);

impl Chroot {
    pub(crate) fn new(chroot: Option<String>) -> Self {
        Chroot(chroot.map(std::sync::Arc::from))
    }

    /// The server path of a client path.
    pub(crate) fn to_server(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_string(),
            Some(root) if path == "/" => root.to_string(),
            Some(root) => format!("{root}{path}"),
        }
    }

    /// The client path of a server path (unchanged when outside the chroot).
    pub(crate) fn to_client(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_string(),
            Some(root) => match path.strip_prefix(&**root) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_chroot() {
        let cs = ConnectString::parse("127.0.0.1:1,localhost").unwrap();
        assert_eq!(cs.hosts, vec![("127.0.0.1".into(), 1), ("localhost".into(), 2181)]);
        assert_eq!(cs.chroot, None);
        assert_eq!(ConnectString::parse("a:1/").unwrap().chroot, None);
        assert_eq!(ConnectString::parse("[::1]").unwrap().hosts, vec![("::1".into(), 2181)]);
        for bad in ["", ",", "a:x", "[::1", "[::1]x", ":1"] {
            assert!(ConnectString::parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(ConnectString::parse("a:1/x/"), Err(Error::InvalidPath { .. })));
    }

    #[test]
    fn chroot_maps_both_ways() {
        let c = Chroot::new(Some("/app".into()));
        assert_eq!(c.to_server("/"), "/app");
        assert_eq!(c.to_server("/x"), "/app/x");
        assert_eq!(c.to_client("/app"), "/");
        assert_eq!(c.to_client("/app/x"), "/x");
        assert_eq!(c.to_client("/apple"), "/apple");
        let none = Chroot::default();
        assert_eq!(none.to_server("/x"), "/x");
    }
}
