//! Java's JKS key store format (`keytool -storetype JKS`, the type
//! Apache ZooKeeper assumes when none is given), read-only.
//!
//! Layout (all integers big-endian): magic `FEEDFEED`, version (1 or 2),
//! entry count; each entry a tag (1: private key, 2: trusted
//! certificate), an alias and a timestamp; a private key entry holds the
//! key encrypted with Sun's key protector and its certificate chain; a
//! certificate is (in version 2) a type name, then its DER. The file ends
//! with a SHA-1 over the password (UTF-16BE), the words "Mighty
//! Aphrodite" and everything before it.
//!
//! The key protector: the encrypted blob is a 20-byte salt, the cipher
//! text and a 20-byte check. The key stream is SHA-1(password ‖ previous
//! block), starting from the salt; the check is SHA-1(password ‖ plain
//! text), which tells a wrong password from a corrupt file.

use crate::Error;

const MAGIC_JKS: u32 = 0xFEED_FEED;
const MAGIC_JCEKS: u32 = 0xCECE_CECE;
/// 1.3.6.1.4.1.42.2.17.1.1, Sun's JKS key protector.
const KEY_PROTECTOR_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];

/// What a JKS file holds.
#[derive(Debug, Default)]
pub(crate) struct Jks {
    /// Private key entries: PKCS#8 DER of the key, and its chain (DER),
    /// leaf first.
    pub(crate) keys: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// Trusted certificate entries (DER).
    pub(crate) trusted: Vec<Vec<u8>>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len()).ok_or_else(|| {
            Error::BadStore(format!("JKS data ends early (wanted {n} bytes at offset {})", self.pos))
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn utf(&mut self) -> Result<String, Error> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn blob(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn cert(&mut self, version: u32) -> Result<Vec<u8>, Error> {
        if version == 2 {
            let kind = self.utf()?;
            if kind != "X.509" {
                return Err(Error::BadStore(format!("JKS certificate of type {kind:?}, not X.509")));
            }
        }
        Ok(self.blob()?.to_vec())
    }
}

fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.digest().bytes()
}

/// Reads a JKS file. With a password, the file's integrity digest is
/// checked (a wrong password fails here) and private keys are decrypted;
/// without one (a trust store may have none), only trusted certificates
/// can be read, as Java does.
pub(crate) fn parse(data: &[u8], password: Option<&str>) -> Result<Jks, Error> {
    let mut r = Reader { data, pos: 0 };
    let magic = r.u32()?;
    if magic == MAGIC_JCEKS {
        return Err(Error::BadStore("JCEKS key stores are not supported: convert to PKCS12 or JKS".into()));
    }
    if magic != MAGIC_JKS {
        return Err(Error::BadStore("not a JKS key store (bad magic)".into()));
    }
    if data.len() < 20 + 12 {
        return Err(Error::BadStore("JKS data too short".into()));
    }
    let body_end = data.len() - 20;
    if let Some(p) = password {
        let digest = sha1(&[&password_bytes(p), b"Mighty Aphrodite", &data[..body_end]]);
        if digest[..] != data[body_end..] {
            return Err(Error::WrongPassword("the JKS key store's integrity check failed".into()));
        }
    }
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(Error::BadStore(format!("JKS version {version} is not known")));
    }
    let count = r.u32()?;
    let mut out = Jks::default();
    for _ in 0..count {
        let tag = r.u32()?;
        let _alias = r.utf()?;
        let _timestamp = r.take(8)?;
        match tag {
            1 => {
                let protected = r.blob()?;
                let n = r.u32()? as usize;
                let mut chain = Vec::with_capacity(n.min(16));
                for _ in 0..n {
                    chain.push(r.cert(version)?);
                }
                match password {
                    Some(p) => out.keys.push((unprotect(protected, p)?, chain)),
                    // A private key cannot be read without the password;
                    // its certificates still can.
                    None => out.trusted.extend(chain),
                }
            }
            2 => out.trusted.push(r.cert(version)?),
            3 => return Err(Error::BadStore("JKS secret key entries are not supported".into())),
            t => return Err(Error::BadStore(format!("JKS entry tag {t} is not known"))),
        }
    }
    if r.pos != body_end {
        return Err(Error::BadStore("JKS data after the last entry".into()));
    }
    Ok(out)
}

/// One DER element of `tag` at the front of `input`: its contents.
fn der<'a>(input: &mut &'a [u8], tag: u8) -> Result<&'a [u8], Error> {
    let bad = || Error::BadStore("malformed encrypted key in the JKS store".into());
    let (&t, rest) = input.split_first().ok_or_else(bad)?;
    if t != tag {
        return Err(bad());
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad());
    }
    let (contents, after) = rest.split_at(len);
    *input = after;
    Ok(contents)
}

/// Decrypts a key protected by Sun's JKS key protector into PKCS#8 DER.
fn unprotect(protected: &[u8], password: &str) -> Result<Vec<u8>, Error> {
    // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
    let mut outer = protected;
    let mut info = der(&mut outer, 0x30)?;
    let mut alg = der(&mut info, 0x30)?;
    let oid = der(&mut alg, 0x06)?;
    if oid != KEY_PROTECTOR_OID {
        return Err(Error::BadStore(
            "a JKS key protected by an algorithm other than Sun's key protector".into(),
        ));
    }
    let blob = der(&mut info, 0x04)?;
    if blob.len() < 40 {
        return Err(Error::BadStore("JKS protected key too short".into()));
    }
    let (salt, rest) = blob.split_at(20);
    let (cipher, check) = rest.split_at(rest.len() - 20);
    let pw = password_bytes(password);
    let mut plain = Vec::with_capacity(cipher.len());
    let mut block = [0u8; 20];
    block.copy_from_slice(salt);
    for chunk in cipher.chunks(20) {
        block = sha1(&[&pw, &block]);
        plain.extend(chunk.iter().zip(block.iter()).map(|(c, k)| c ^ k));
    }
    if sha1(&[&pw, &plain])[..] != *check {
        return Err(Error::WrongPassword("the JKS private key's password is wrong".into()));
    }
    Ok(plain)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a JKS file as keytool does (the inverse of `parse`), so the
    /// parser is tested without a JVM; tests/tls.rs reads keytool's own.
    pub(crate) fn write(password: &str, key: Option<(&[u8], &[&[u8]])>, trusted: &[&[u8]]) -> Vec<u8> {
        let pw = password_bytes(password);
        let mut out = Vec::new();
        out.extend(MAGIC_JKS.to_be_bytes());
        out.extend(2u32.to_be_bytes());
        out.extend((u32::from(key.is_some()) + trusted.len() as u32).to_be_bytes());
        let cert = |out: &mut Vec<u8>, der: &[u8]| {
            out.extend(5u16.to_be_bytes());
            out.extend(b"X.509");
            out.extend((der.len() as u32).to_be_bytes());
            out.extend(der);
        };
        if let Some((pkcs8, chain)) = key {
            out.extend(1u32.to_be_bytes());
            out.extend(3u16.to_be_bytes());
            out.extend(b"key");
            out.extend(0u64.to_be_bytes());
            let salt = [7u8; 20];
            let mut block = salt;
            let mut cipher = Vec::new();
            for chunk in pkcs8.chunks(20) {
                block = sha1(&[&pw, &block]);
                cipher.extend(chunk.iter().zip(block.iter()).map(|(c, k)| c ^ k));
            }
            let mut blob = salt.to_vec();
            blob.extend(cipher);
            blob.extend(sha1(&[&pw, pkcs8]));
            let mut alg = vec![0x06, KEY_PROTECTOR_OID.len() as u8];
            alg.extend(KEY_PROTECTOR_OID);
            alg.extend([0x05, 0x00]);
            let enc = |tag: u8, body: &[u8]| {
                let mut v = vec![tag];
                let n = body.len();
                if n < 0x80 {
                    v.push(n as u8);
                } else {
                    v.extend([0x82, (n >> 8) as u8, n as u8]);
                }
                v.extend(body);
                v
            };
            let mut inner = enc(0x30, &alg);
            inner.extend(enc(0x04, &blob));
            let epki = enc(0x30, &inner);
            out.extend((epki.len() as u32).to_be_bytes());
            out.extend(&epki);
            out.extend((chain.len() as u32).to_be_bytes());
            for c in chain {
                cert(&mut out, c);
            }
        }
        for (i, t) in trusted.iter().enumerate() {
            out.extend(2u32.to_be_bytes());
            let alias = format!("ca{i}");
            out.extend((alias.len() as u16).to_be_bytes());
            out.extend(alias.as_bytes());
            out.extend(0u64.to_be_bytes());
            cert(&mut out, t);
        }
        let digest = sha1(&[&pw, b"Mighty Aphrodite", &out]);
        out.extend(digest);
        out
    }

    #[test]
    fn round_trip_and_wrong_passwords() {
        let key = vec![0x30u8; 300];
        let chain: [&[u8]; 2] = [b"leaf-der", b"ca-der"];
        let file = write("secret", Some((&key, &chain)), &[b"trusted-der"]);
        let jks = parse(&file, Some("secret")).unwrap();
        assert_eq!(jks.keys.len(), 1);
        assert_eq!(jks.keys[0].0, key);
        assert_eq!(jks.keys[0].1, vec![b"leaf-der".to_vec(), b"ca-der".to_vec()]);
        assert_eq!(jks.trusted, vec![b"trusted-der".to_vec()]);
        assert!(matches!(parse(&file, Some("wrong")), Err(Error::WrongPassword(_))));
        // No password: certificates only.
        let jks = parse(&file, None).unwrap();
        assert!(jks.keys.is_empty() && jks.trusted.len() == 3);
        // Truncated or foreign data is an error, never a panic.
        for n in [0, 3, 10, 40, file.len() - 21] {
            assert!(parse(&file[..n], None).is_err(), "{n}");
        }
        assert!(parse(b"not a key store at all, really not", None).is_err());
    }
}
