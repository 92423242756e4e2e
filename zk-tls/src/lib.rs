//! TLS for the ZooKeeper client port, configured as Apache ZooKeeper
//! configures it, on [rustls].
//!
//! - Key and trust stores in the formats Apache reads: JKS (Java's; the
//!   default when no type is given and the file name says nothing), PKCS12
//!   and PEM (a file with the certificate chain and, for a key store, an
//!   unencrypted PKCS#8/PKCS#1/SEC1 private key). See [`load_store`].
//! - [`TlsSettings`] holds Apache's `ssl.*` settings (`ssl.keyStore.*`,
//!   `ssl.trustStore.*`, `ssl.clientAuth`, `ssl.protocol`,
//!   `ssl.enabledProtocols`, `ssl.ciphersuites`, `ssl.hostnameVerification`)
//!   as `zoo.cfg` or a client configuration file gives them, and builds a
//!   server or client configuration from them.
//! - [`x509_identity`]: the name Apache's `X509AuthenticationProvider`
//!   gives a client certificate (its subject, RFC 2253), which `x509` ACLs
//!   match.
//!
//! ```no_run
//! let mut tls = zk_tls::TlsSettings::default();
//! tls.set("ssl.keyStore.location", "/etc/zk/server.jks").unwrap();
//! tls.set("ssl.keyStore.password", "secret").unwrap();
//! tls.set("ssl.trustStore.location", "/etc/zk/truststore.jks").unwrap();
//! tls.set("ssl.trustStore.password", "secret").unwrap();
//! let server = tls.server_config().unwrap(); // an Arc<rustls::ServerConfig>
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

mod jks;

pub use rustls;

/// What can go wrong reading stores and settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A store file is not what its type says, or is damaged.
    #[error("bad key store: {0}")]
    BadStore(String),
    /// A store's password does not open it.
    #[error("wrong password: {0}")]
    WrongPassword(String),
    /// A setting has a value that cannot be used.
    #[error("{key}: {message}")]
    Setting {
        /// The setting (`ssl.clientAuth` ...).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration (a key that does not match its
    /// certificate, no common protocol ...).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built (no usable CA ...).
    #[error("certificate verification: {0}")]
    Verifier(String),
}

/// A store's format (`ssl.keyStore.type`, `ssl.trustStore.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// Java's JKS.
    Jks,
    /// PKCS#12 (`.p12`, `.pfx`).
    Pkcs12,
    /// PEM text.
    Pem,
}

impl StoreType {
    /// The type named `name` (`JKS`, `PKCS12`, `PEM`, any case).
    ///
    /// # Errors
    /// [`Error::Setting`] for other names (`BCFKS` is not supported).
    pub fn from_name(name: &str) -> Result<StoreType, Error> {
        match name.to_ascii_uppercase().as_str() {
            "JKS" => Ok(StoreType::Jks),
            "PKCS12" | "P12" | "PFX" => Ok(StoreType::Pkcs12),
            "PEM" => Ok(StoreType::Pem),
            _ => Err(Error::Setting {
                key: "ssl.keyStore.type".into(),
                message: format!("{name:?} is not a supported store type (JKS, PKCS12, PEM)"),
            }),
        }
    }

    /// The type a file name implies, as Apache infers it (`.jks`, `.p12`,
    /// `.pfx`, `.pem`); JKS when the name says nothing.
    pub fn infer(path: &Path) -> StoreType {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "p12" | "pfx" | "pkcs12" => StoreType::Pkcs12,
            "pem" | "crt" | "key" => StoreType::Pem,
            _ => StoreType::Jks,
        }
    }
}

/// Where a store is and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The file.
    pub path: PathBuf,
    /// Its password (`None`: none; a JKS trust store may have none).
    pub password: Option<String>,
    /// Its type (`None`: from the file name, see [`StoreType::infer`]).
    pub store_type: Option<StoreType>,
}

impl StoreSpec {
    /// A store at `path` of the type its name implies, with `password`.
    pub fn new(path: impl Into<PathBuf>, password: Option<&str>) -> StoreSpec {
        StoreSpec { path: path.into(), password: password.map(str::to_string), store_type: None }
    }
}

/// What a store holds.
#[derive(Debug, Default)]
pub struct Store {
    /// The private key (the first key entry), if any.
    pub key: Option<PrivateKeyDer<'static>>,
    /// The key's certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The trusted certificates (trust entries; for PEM, every certificate).
    pub trusted: Vec<CertificateDer<'static>>,
}

/// Reads the store `spec` names.
///
/// # Errors
/// [`Error::Io`], [`Error::BadStore`] (damaged, or not of its type),
/// [`Error::WrongPassword`].
pub fn load_store(spec: &StoreSpec) -> Result<Store, Error> {
    let data = std::fs::read(&spec.path).map_err(|source| Error::Io { path: spec.path.clone(), source })?;
    let kind = spec.store_type.unwrap_or_else(|| StoreType::infer(&spec.path));
    let what = |e: Error| match e {
        Error::BadStore(m) => Error::BadStore(format!("{}: {m}", spec.path.display())),
        Error::WrongPassword(m) => Error::WrongPassword(format!("{}: {m}", spec.path.display())),
        e => e,
    };
    match kind {
        StoreType::Jks => {
            let j = jks::parse(&data, spec.password.as_deref()).map_err(what)?;
            let mut s = Store {
                trusted: j.trusted.into_iter().map(CertificateDer::from).collect(),
                ..Store::default()
            };
            if let Some((key, chain)) = j.keys.into_iter().next() {
                s.key = Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)));
                s.chain = chain.into_iter().map(CertificateDer::from).collect();
            }
            Ok(s)
        }
        StoreType::Pkcs12 => {
            let password = spec.password.as_deref().unwrap_or("");
            let ks = p12_keystore::KeyStore::from_pkcs12(
                &data,
                password,
                p12_keystore::Pkcs12ImportPolicy::Relaxed,
            )
            .map_err(|e| {
                let m = format!("{}: {e}", spec.path.display());
                if e.to_string().to_ascii_lowercase().contains("mac") {
                    Error::WrongPassword(m)
                } else {
                    Error::BadStore(m)
                }
            })?;
            let mut s = Store::default();
            for (_, entry) in ks.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(c) if s.key.is_none() => {
                        s.key =
                            Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key().as_der().to_vec())));
                        s.chain =
                            c.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
                    }
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        s.trusted.push(CertificateDer::from(c.as_der().to_vec()))
                    }
                    _ => {}
                }
            }
            Ok(s)
        }
        StoreType::Pem => {
            let text = data.as_slice();
            if String::from_utf8_lossy(text).contains("ENCRYPTED PRIVATE KEY") {
                return Err(Error::BadStore(format!(
                    "{}: encrypted PEM keys are not supported; decrypt it (openssl pkcs8 -nocrypt) or use PKCS12",
                    spec.path.display()
                )));
            }
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text)
                .collect::<Result<_, _>>()
                .map_err(|e| Error::BadStore(format!("{}: {e}", spec.path.display())))?;
            let key = PrivateKeyDer::from_pem_slice(text).ok();
            Ok(Store { key, chain: certs.clone(), trusted: certs })
        }
    }
}

/// Apache's `ssl.clientAuth`: whether the server asks clients for a
/// certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client must present a certificate the trust store vouches for
    /// (Apache's default).
    #[default]
    Need,
    /// A client may present one; if it does, it is verified.
    Want,
    /// Client certificates are not asked for.
    None,
}

/// Apache's `ssl.*` settings of one side (the server's client port, or a
/// client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.keyStore.*`: this side's certificate and key.
    pub key_store: Option<StoreSpec>,
    /// `ssl.trustStore.*`: the CAs the other side's certificate must chain
    /// to.
    pub trust_store: Option<StoreSpec>,
    /// `ssl.clientAuth` (servers).
    pub client_auth: ClientAuth,
    /// `ssl.protocol` (`TLSv1.2` by default, as Apache 3.8) and
    /// `ssl.enabledProtocols`: the versions offered; TLSv1.2 and TLSv1.3
    /// are supported, older ones are refused.
    pub protocols: Vec<String>,
    /// `ssl.ciphersuites`: IANA names as Java spells them; empty for the
    /// defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.hostnameVerification` (clients; default true): the server's
    /// certificate must name the host connected to.
    pub hostname_verification: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocols: Vec::new(),
            cipher_suites: Vec::new(),
            hostname_verification: true,
        }
    }
}

fn setting(key: &str, message: impl Into<String>) -> Error {
    Error::Setting { key: key.to_string(), message: message.into() }
}

impl TlsSettings {
    /// Takes one `key=value` of a `zoo.cfg` or client configuration file
    /// (with or without the `zookeeper.` prefix Java system properties
    /// have). Returns whether the key was one of these settings.
    ///
    /// # Errors
    /// [`Error::Setting`] for a bad value; [`Error::Io`] when a
    /// `passwordPath` file cannot be read.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let k = key.strip_prefix("zookeeper.").unwrap_or(key);
        let Some(k) = k.strip_prefix("ssl.") else { return Ok(false) };
        let read_password = |path: &str| -> Result<String, Error> {
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|source| Error::Io { path: PathBuf::from(path), source })
        };
        fn spec(slot: &mut Option<StoreSpec>) -> &mut StoreSpec {
            slot.get_or_insert_with(|| StoreSpec::new("", None))
        }
        match k {
            "keyStore.location" => spec(&mut self.key_store).path = PathBuf::from(value),
            "keyStore.password" => spec(&mut self.key_store).password = Some(value.to_string()),
            "keyStore.passwordPath" => spec(&mut self.key_store).password = Some(read_password(value)?),
            "keyStore.type" => {
                spec(&mut self.key_store).store_type =
                    Some(StoreType::from_name(value).map_err(|_| setting(key, "JKS, PKCS12 or PEM"))?)
            }
            "trustStore.location" => spec(&mut self.trust_store).path = PathBuf::from(value),
            "trustStore.password" => spec(&mut self.trust_store).password = Some(value.to_string()),
            "trustStore.passwordPath" => spec(&mut self.trust_store).password = Some(read_password(value)?),
            "trustStore.type" => {
                spec(&mut self.trust_store).store_type =
                    Some(StoreType::from_name(value).map_err(|_| setting(key, "JKS, PKCS12 or PEM"))?)
            }
            "clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "" | "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err(setting(key, format!("need, want or none, not {value:?}"))),
                }
            }
            "protocol" => {
                if self.protocols.is_empty() {
                    self.protocols = vec![value.to_string()];
                }
            }
            "enabledProtocols" => {
                self.protocols =
                    value.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
            }
            "ciphersuites" => {
                self.cipher_suites =
                    value.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
            }
            "hostnameVerification" => {
                self.hostname_verification = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" => true,
                    "false" | "no" => false,
                    _ => return Err(setting(key, format!("true or false, not {value:?}"))),
                }
            }
            // Apache reads these too; here they change nothing (no CRL or
            // OCSP checking, no pluggable SSLContext).
            "crl"
            | "ocsp"
            | "handshakeDetectionTimeoutMillis"
            | "context.supplier.class"
            | "authProvider" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The files behind these settings (to watch for reloads).
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.key_store, &self.trust_store].into_iter().flatten().map(|s| s.path.clone()).collect()
    }

    fn provider(&self) -> Result<CryptoProvider, Error> {
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        if !self.cipher_suites.is_empty() {
            let wanted: Vec<String> = self.cipher_suites.iter().map(|c| c.to_ascii_uppercase()).collect();
            p.cipher_suites.retain(|s| {
                let name = format!("{:?}", s.suite()).replace("TLS13_", "TLS_");
                wanted.contains(&name)
            });
            if p.cipher_suites.is_empty() {
                return Err(setting(
                    "ssl.ciphersuites",
                    format!("none of {:?} is supported", self.cipher_suites),
                ));
            }
        }
        Ok(p)
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
        if self.protocols.is_empty() {
            return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
        }
        let mut v = Vec::new();
        for p in &self.protocols {
            match p.as_str() {
                "TLSv1.3" => v.push(&rustls::version::TLS13),
                "TLSv1.2" => v.push(&rustls::version::TLS12),
                // Java's "TLS": whatever the platform supports.
                "TLS" => v.extend([&rustls::version::TLS13, &rustls::version::TLS12]),
                _ => {}
            }
        }
        if v.is_empty() {
            return Err(setting(
                "ssl.enabledProtocols",
                format!("none of {:?} is supported (TLSv1.2, TLSv1.3)", self.protocols),
            ));
        }
        Ok(v)
    }

    fn roots(&self, what: &str) -> Result<Option<RootCertStore>, Error> {
        let Some(spec) = &self.trust_store else { return Ok(None) };
        let store = load_store(spec)?;
        let mut roots = RootCertStore::empty();
        let certs = if store.trusted.is_empty() { store.chain } else { store.trusted };
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::BadStore(format!(
                "{}: no certificate to verify {what} with",
                spec.path.display()
            )));
        }
        Ok(Some(roots))
    }

    fn identity(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Error> {
        let Some(spec) = &self.key_store else { return Ok(None) };
        let store = load_store(spec)?;
        match store.key {
            Some(key) if !store.chain.is_empty() => Ok(Some((store.chain, key))),
            _ => {
                Err(Error::BadStore(format!("{}: no private key with its certificate", spec.path.display())))
            }
        }
    }

    /// A server configuration: the key store's certificate, client
    /// certificates asked for as `client_auth` says and verified against
    /// the trust store.
    ///
    /// # Errors
    /// When a store cannot be read, the key store has no key, client
    /// authentication is on without a trust store, or no protocol or
    /// cipher suite is left.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let provider = Arc::new(self.provider()?);
        let (chain, key) = self
            .identity()?
            .ok_or_else(|| setting("ssl.keyStore.location", "a TLS port needs a key store"))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions()?)?;
        let builder = match (self.client_auth, self.roots("client certificates")?) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(setting(
                    "ssl.trustStore.location",
                    "ssl.clientAuth need or want verifies client certificates: it needs a trust store \
                     (or set ssl.clientAuth=none)",
                ));
            }
            (auth, Some(roots)) => {
                let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let b = if auth == ClientAuth::Want { b.allow_unauthenticated() } else { b };
                builder.with_client_cert_verifier(b.build().map_err(|e| Error::Verifier(e.to_string()))?)
            }
        };
        Ok(Arc::new(builder.with_single_cert(chain, key)?))
    }

    /// A client configuration: the server's certificate verified against
    /// the trust store (and its name, unless `hostname_verification` is
    /// off), the key store's certificate offered when the server asks.
    ///
    /// # Errors
    /// When a store cannot be read, there is no trust store, or no
    /// protocol or cipher suite is left.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let provider = Arc::new(self.provider()?);
        let roots = self.roots("the server's certificate")?.ok_or_else(|| {
            setting("ssl.trustStore.location", "a TLS client needs a trust store with the servers' CA")
        })?;
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Verifier(e.to_string()))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions()?)?;
        let builder = if self.hostname_verification {
            builder.with_webpki_verifier(webpki)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
        };
        Ok(Arc::new(match self.identity()? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        }))
    }
}

/// Verifies the chain as WebPKI does but accepts any name
/// (`ssl.hostnameVerification=false`).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The name Apache's `X509AuthenticationProvider` gives a client
/// certificate: its subject as Java's `X500Principal.getName()` writes it
/// (RFC 2253: the most specific part first, `CN=client,OU=zk,O=example`).
/// An `x509` ACL id matches it.
///
/// # Errors
/// [`Error::BadStore`] when `cert` is not an X.509 certificate.
pub fn x509_identity(cert: &[u8]) -> Result<String, Error> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(cert)
        .map_err(|e| Error::BadStore(format!("client certificate: {e}")))?;
    let mut rdns = Vec::new();
    for rdn in c.subject().iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let keyword = match oid.as_str() {
                    "2.5.4.3" => Some("CN"),
                    "2.5.4.6" => Some("C"),
                    "2.5.4.7" => Some("L"),
                    "2.5.4.8" => Some("ST"),
                    "2.5.4.9" => Some("STREET"),
                    "2.5.4.10" => Some("O"),
                    "2.5.4.11" => Some("OU"),
                    "0.9.2342.19200300.100.1.25" => Some("DC"),
                    "0.9.2342.19200300.100.1.1" => Some("UID"),
                    _ => None,
                };
                match (keyword, atv.as_str()) {
                    (Some(k), Ok(v)) => format!("{k}={}", escape_rfc2253(v)),
                    // Other attributes: the dotted OID and the value's DER
                    // in hex, as Java writes them.
                    _ => {
                        use x509_parser::der_parser::asn1_rs::ToDer;
                        let der = atv.attr_value().to_der_vec().unwrap_or_default();
                        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{oid}=#{hex}")
                    }
                }
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(p, key))
    }

    #[test]
    fn x509_identity_is_rfc2253_most_specific_first() {
        let (_, issuer) = ca();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "Example, Inc");
        p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "zk");
        p.distinguished_name.push(rcgen::DnType::CommonName, "client");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        assert_eq!(x509_identity(cert.der()).unwrap(), "CN=client,OU=zk,O=Example\\, Inc");
        assert!(x509_identity(b"junk").is_err());
    }

    #[test]
    fn settings_take_apache_keys() {
        let mut s = TlsSettings::default();
        assert!(s.set("ssl.keyStore.location", "/k.p12").unwrap());
        assert!(s.set("zookeeper.ssl.keyStore.password", "pw").unwrap());
        assert!(s.set("ssl.clientAuth", "want").unwrap());
        assert!(s.set("ssl.enabledProtocols", "TLSv1.3, TLSv1.2").unwrap());
        assert!(!s.set("clientPort", "2181").unwrap());
        assert!(!s.set("ssl.quorum.keyStore.location", "/q").unwrap(), "quorum TLS is not taken here");
        assert!(s.set("ssl.clientAuth", "maybe").is_err());
        assert!(s.set("ssl.keyStore.type", "BCFKS").is_err());
        let k = s.key_store.clone().unwrap();
        assert_eq!((k.path.clone(), k.password), (PathBuf::from("/k.p12"), Some("pw".into())));
        assert_eq!(StoreType::infer(&k.path), StoreType::Pkcs12);
        assert_eq!(StoreType::infer(Path::new("/x/keystore")), StoreType::Jks);
        assert_eq!(s.client_auth, ClientAuth::Want);
        assert_eq!(s.protocols, vec!["TLSv1.3".to_string(), "TLSv1.2".into()]);
        s.protocols = vec!["TLSv1".into()];
        assert!(s.versions().is_err(), "old protocols are refused");
        s.protocols.clear();
        s.cipher_suites =
            vec!["TLS_AES_256_GCM_SHA384".into(), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()];
        assert_eq!(s.provider().unwrap().cipher_suites.len(), 2);
        s.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
        assert!(s.provider().is_err());
    }

    #[test]
    fn pem_jks_and_pkcs12_give_the_same_identity() {
        let (ca_cert, issuer) = ca();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "server");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // PEM: key and chain in one file; the CA in another.
        let pem = dir.path().join("server.pem");
        std::fs::write(&pem, format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem())).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
        // JKS, written as keytool writes it.
        let jks = dir.path().join("server.jks");
        let chain: [&[u8]; 2] = [cert.der(), ca_cert.der()];
        std::fs::write(&jks, jks::tests::write("pw", Some((&key.serialize_der(), &chain)), &[])).unwrap();
        let trust_jks = dir.path().join("trust.jks");
        std::fs::write(&trust_jks, jks::tests::write("pw", None, &[ca_cert.der()])).unwrap();
        // PKCS12.
        let mut ks = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8; 20],
            p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
            [
                p12_keystore::Certificate::from_der(cert.der()).unwrap(),
                p12_keystore::Certificate::from_der(ca_cert.der()).unwrap(),
            ],
        );
        ks.add_entry("server", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let p12 = dir.path().join("server.p12");
        std::fs::write(&p12, ks.writer("pw").write().unwrap()).unwrap();
        for path in [&pem, &jks, &p12] {
            let store = load_store(&StoreSpec::new(path, Some("pw"))).unwrap();
            assert_eq!(store.chain[0].as_ref(), cert.der().as_ref(), "{}", path.display());
            assert!(store.key.is_some(), "{}", path.display());
            let mut s = TlsSettings { client_auth: ClientAuth::None, ..TlsSettings::default() };
            s.key_store = Some(StoreSpec::new(path, Some("pw")));
            s.server_config().unwrap();
        }
        for trust in [&ca_pem, &trust_jks] {
            let s = TlsSettings {
                key_store: Some(StoreSpec::new(&jks, Some("pw"))),
                trust_store: Some(StoreSpec::new(trust, Some("pw"))),
                ..TlsSettings::default()
            };
            s.server_config().unwrap();
            s.client_config().unwrap();
        }
        assert!(matches!(load_store(&StoreSpec::new(&jks, Some("nope"))), Err(Error::WrongPassword(_))));
        assert!(matches!(load_store(&StoreSpec::new(&p12, Some("nope"))), Err(Error::WrongPassword(_))));
        let mut typed = StoreSpec::new(&pem, None);
        typed.store_type = Some(StoreType::Jks);
        assert!(matches!(load_store(&typed), Err(Error::BadStore(_))));
        // Need without a trust store is refused at start-up, clearly.
        let s = TlsSettings { key_store: Some(StoreSpec::new(&jks, Some("pw"))), ..TlsSettings::default() };
        let e = s.server_config().unwrap_err().to_string();
        assert!(e.contains("trust store"), "{e}");
    }
}
