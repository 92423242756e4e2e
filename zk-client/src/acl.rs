//! ACL helpers.

use base64::Engine;
use zk_proto::records::Id;

/// The `digest` id of a user and password, as Apache's
/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1(user:password))`.
///
/// ```
/// use zk_client::digest_id;
/// let id = digest_id("user", "pass");
/// assert_eq!(id.scheme, "digest");
/// assert!(id.id.starts_with("user:"));
/// ```
pub fn digest_id(user: &str, password: &str) -> Id {
    let hash = sha1_smol::Sha1::from(format!("{user}:{password}")).digest().bytes();
    let b64 = base64::engine::general_purpose::STANDARD.encode(hash);
    Id::new("digest", format!("{user}:{b64}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_apache_for_a_known_pair() {
        // base64(sha1("user:pass")), what Apache's generateDigest yields;
        // the interop tests check the server accepts it.
        assert_eq!(super::digest_id("user", "pass").id, "user:smGaoVKd/cQkjm7b88GyorAUz20=");
    }
}
