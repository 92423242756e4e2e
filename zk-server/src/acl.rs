//! Authentication providers and ACL checks (Apache's `auth/*Provider`).

use std::net::IpAddr;

use base64::Engine;
use zk_proto::records::{Acl, Id};

/// `user:base64(sha1(user:password))`, Apache's `generateDigest`.
pub(crate) fn generate_digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = sha1_smol::Sha1::from(user_password).digest().bytes();
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// What an auth packet turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Ids to add to the session.
    Ok(Vec<Id>),
    /// The credentials or scheme were refused.
    Failed,
}

/// Handles an auth packet (`scheme`, `auth`) from a client at `peer`.
pub(crate) fn authenticate(
    scheme: &str,
    auth: &[u8],
    peer: Option<IpAddr>,
    super_digest: Option<&str>,
) -> AuthOutcome {
    match scheme {
        "digest" => {
            let Ok(text) = std::str::from_utf8(auth) else { return AuthOutcome::Failed };
            if !text.contains(':') {
                return AuthOutcome::Failed;
            }
            let digest = generate_digest(text);
            let mut ids = vec![Id::new("digest", digest.clone())];
            if super_digest == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            AuthOutcome::Ok(ids)
        }
        "ip" => match peer {
            Some(ip) => AuthOutcome::Ok(vec![Id::new("ip", ip.to_string())]),
            None => AuthOutcome::Failed,
        },
        _ => AuthOutcome::Failed,
    }
}

/// Whether the ACL id `acl_id` matches the session's authenticated `id`
/// (same scheme already checked by the caller).
pub(crate) fn id_matches(acl_id: &Id, id: &Id) -> bool {
    match acl_id.scheme.as_str() {
        "ip" => ip_matches(&acl_id.id, &id.id),
        _ => acl_id.id == id.id,
    }
}

fn ip_matches(pattern: &str, addr: &str) -> bool {
    let (net, bits) = match pattern.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (pattern, None),
    };
    let (Ok(net), Ok(addr)) = (net.parse::<IpAddr>(), addr.parse::<IpAddr>()) else { return false };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Checks and rewrites an ACL for create/setACL (Apache's `fixupACL`):
/// `auth` entries become the session's authenticated ids; every entry must
/// be of a known scheme and well formed. `None` means InvalidACL.
///
/// As Apache (ZOOKEEPER-1877), repeated entries of the request are dropped
/// first (the first of equal entries stays, in order); what `auth`
/// expands to is taken as it comes.
pub(crate) fn fixup_acl(acl: &[Acl], session_ids: &[Id]) -> Option<Vec<Acl>> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a.clone()),
            "auth" => {
                let mut any = false;
                for id in session_ids.iter().filter(|i| i.scheme != "ip" && i.scheme != "super") {
                    any = true;
                    out.push(Acl::new(a.perms, id.clone()));
                }
                if !any {
                    return None;
                }
            }
            "digest" if a.id.id.contains(':') => out.push(a.clone()),
            "ip" if valid_ip_pattern(&a.id.id) => out.push(a.clone()),
            "sasl" | "x509" if !a.id.id.is_empty() => out.push(a.clone()),
            _ => return None,
        }
    }
    Some(out)
}

fn valid_ip_pattern(p: &str) -> bool {
    let (net, bits) = match p.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (p, None),
    };
    let Ok(ip) = net.parse::<IpAddr>() else { return false };
    match bits {
        None => true,
        Some(b) => b.parse::<u32>().is_ok_and(|b| b <= if ip.is_ipv4() { 32 } else { 128 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::types::perms;

    #[test]
    fn digest_matches_apache() {
        assert_eq!(generate_digest("user:pass"), "user:smGaoVKd/cQkjm7b88GyorAUz20=");
    }

    #[test]
    fn ip_prefixes() {
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("::1", "127.0.0.1"));
        assert!(!ip_matches("garbage", "127.0.0.1"));
    }

    #[test]
    fn fixup_rules() {
        let digest = Id::new("digest", "u:x");
        let auth = vec![Acl::new(perms::ALL, Id::auth_ids())];
        assert_eq!(fixup_acl(&auth, &[]), None);
        assert_eq!(
            fixup_acl(&auth, &[Id::new("ip", "127.0.0.1"), digest.clone()]),
            Some(vec![Acl::new(perms::ALL, digest)])
        );
        assert_eq!(fixup_acl(&[], &[]), None);
        assert_eq!(fixup_acl(&[Acl::new(1, Id::new("bogus", "x"))], &[]), None);
        assert_eq!(fixup_acl(&[Acl::new(1, Id::new("ip", "1.2.3.4/40"))], &[]), None);
        assert!(fixup_acl(&Acl::open_unsafe(), &[]).is_some());
        let world = Acl::new(perms::ALL, Id::anyone());
        let read = Acl::new(perms::READ, Id::new("ip", "10.0.0.1"));
        assert_eq!(
            fixup_acl(&[world.clone(), read.clone(), world.clone(), read.clone()], &[]),
            Some(vec![world.clone(), read]),
            "duplicates are removed, first occurrence kept"
        );
        let other_perms = Acl::new(perms::READ, Id::anyone());
        assert_eq!(fixup_acl(&[world.clone(), other_perms.clone()], &[]), Some(vec![world, other_perms]));
    }

    #[test]
    fn auth_schemes() {
        assert!(matches!(authenticate("digest", b"u:p", None, None), AuthOutcome::Ok(ids) if ids.len() == 1));
        let sup = generate_digest("super:secret");
        assert!(
            matches!(authenticate("digest", b"super:secret", None, Some(&sup)), AuthOutcome::Ok(ids) if ids.len() == 2)
        );
        assert_eq!(authenticate("digest", b"nocolon", None, None), AuthOutcome::Failed);
        assert_eq!(authenticate("kerberos", b"x", None, None), AuthOutcome::Failed);
    }
}
