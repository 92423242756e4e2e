//! TLS on the client port, as Apache configures it: our server's
//! `secureClientPort` with JKS (written by keytool), PKCS12 and PEM
//! stores, client certificates as `x509` identities that ACLs match, store
//! reloads, and clean failures (unknown CA, expired certificate, plain
//! text on the TLS port, no client certificate); kazoo and Apache's Java
//! client (Netty) on our secure port, and our client on Apache's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use zk_client::{Acl, Client, CreateMode, Error, Id};
use zk_server::{Server, ServerConfig};
use zk_test_support::apache::{ApacheZk, ApacheZkOptions};
use zk_tls::{ClientAuth, StoreSpec, StoreType, TlsSettings};

const PW: &str = "changeit";
/// The subject of the client certificate as Apache writes it (RFC 2253).
const CLIENT_DN: &str = "CN=client,OU=zk,O=zk-rs";

/// Certificates and stores made by the test: a CA, a server certificate
/// for 127.0.0.1/localhost, two client certificates, an expired server
/// certificate and a server certificate of another CA.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

fn leaf_params(cn: &str) -> rcgen::CertificateParams {
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "zk-rs");
    p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "zk");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p
}

fn new_ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (rcgen::Issuer::new(p, key), cert.pem())
}

impl Pki {
    fn new() -> Pki {
        let (ca, ca_pem) = new_ca("zk-rs test CA");
        let pki = Pki { dir: tempfile::tempdir().unwrap(), ca, ca_pem };
        std::fs::write(pki.path("ca.pem"), &pki.ca_pem).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues `cn` (by `issuer`, this CA by default) and writes it as
    /// `<name>.pem` (key and chain) and `<name>.p12`.
    fn issue(
        &self,
        name: &str,
        cn: &str,
        expired: bool,
        issuer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
    ) {
        let mut p = leaf_params(cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, issuer.unwrap_or(&self.ca)).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), format!("{}{}", key.serialize_pem(), cert.pem()))
            .unwrap();
        let mut ks = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8; 20],
            p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
            [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
        );
        ks.add_entry(name, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        std::fs::write(self.path(&format!("{name}.p12")), ks.writer(PW).write().unwrap()).unwrap();
    }

    /// `<name>.jks` from `<name>.p12` and `truststore.jks` with the CA, by
    /// keytool: the stores Java itself writes.
    fn keytool_stores(&self, name: &str) {
        let run = |args: &[&str]| {
            let out = Command::new("keytool").args(args).output().expect("keytool");
            assert!(out.status.success(), "keytool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let (p12, jks) = (self.path(&format!("{name}.p12")), self.path(&format!("{name}.jks")));
        let _ = std::fs::remove_file(&jks);
        run(&[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            p12.to_str().unwrap(),
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            PW,
            "-destkeystore",
            jks.to_str().unwrap(),
            "-deststoretype",
            "JKS",
            "-deststorepass",
            PW,
        ]);
        let trust = self.path("truststore.jks");
        if !trust.exists() {
            run(&[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                self.path("ca.pem").to_str().unwrap(),
                "-keystore",
                trust.to_str().unwrap(),
                "-storetype",
                "JKS",
                "-storepass",
                PW,
            ]);
        }
    }

    /// A CA with a server and a client certificate (`server.*`,
    /// `client.*`), the JKS stores too when `jks`.
    fn server_and_client(jks: bool) -> Pki {
        let pki = Pki::new();
        pki.issue("server", "server", false, None);
        pki.issue("client", "client", false, None);
        if jks {
            pki.keytool_stores("server");
            pki.keytool_stores("client");
        }
        pki
    }

    fn settings(&self, key_store: &str, auth: ClientAuth) -> TlsSettings {
        let mut t = TlsSettings { client_auth: auth, ..TlsSettings::default() };
        t.key_store = Some(StoreSpec::new(self.path(key_store), Some(PW)));
        t.trust_store = Some(StoreSpec::new(self.path("ca.pem"), None));
        t
    }
}

/// Whether keytool and java are here (the JDK comes with Debian's
/// zookeeper package); skipped loudly otherwise, failing in CI.
fn java_tools() -> bool {
    match zk_test_support::apache::available() {
        Ok(()) => true,
        Err(why) => {
            assert!(std::env::var("ZK_REQUIRE_EXTERNAL").is_err(), "ZK_REQUIRE_EXTERNAL=1 but {why}");
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

/// Our server with a plain port and a secure port (both free, loopback).
async fn secure_server(tls: TlsSettings, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
    cfg.secure_client_port = Some(0);
    cfg.tls = tls;
    cfg.four_letter_words = vec!["*".into()];
    tweak(&mut cfg);
    Server::start_temp_with(cfg).await.unwrap()
}

/// Our client over TLS: the CA in `trust`, the identity in `identity`.
async fn tls_client(addr: SocketAddr, trust: &Path, identity: Option<&Path>) -> zk_client::Result<Client> {
    let t = TlsSettings {
        trust_store: Some(StoreSpec::new(trust, Some(PW))),
        key_store: identity.map(|p| StoreSpec::new(p, Some(PW))),
        ..TlsSettings::default()
    };
    Client::builder(&addr.to_string()).connection_timeout(Duration::from_secs(5)).tls(t).connect().await
}

async fn x509_ids(c: &Client) -> Vec<String> {
    c.who_am_i().await.unwrap().into_iter().filter(|i| i.auth_scheme == "x509").map(|i| i.user).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_type_serves_and_client_certificates_are_x509_identities() {
    common::trace_init();
    if !java_tools() {
        return;
    }
    let pki = Pki::server_and_client(true);
    pki.issue("other", "other", false, None);
    for (key_store, trust, kind) in [
        ("server.jks", "truststore.jks", StoreType::Jks),
        ("server.p12", "ca.pem", StoreType::Pkcs12),
        ("server.pem", "ca.pem", StoreType::Pem),
    ] {
        let mut tls = pki.settings(key_store, ClientAuth::Need);
        tls.trust_store = Some(StoreSpec::new(pki.path(trust), Some(PW)));
        assert_eq!(StoreType::infer(&pki.path(key_store)), kind);
        let server = secure_server(tls, |_| {}).await;
        let at = server.secure_addr().unwrap();
        // The client's identity from each store type too.
        let identity = match kind {
            StoreType::Jks => "client.jks",
            StoreType::Pkcs12 => "client.p12",
            StoreType::Pem => "client.pem",
        };
        let c = tls_client(at, &pki.path("ca.pem"), Some(&pki.path(identity))).await.unwrap();
        assert_eq!(x509_ids(&c).await, vec![CLIENT_DN.to_string()], "{kind:?}");
        let path = format!("/tls-{kind:?}");
        let only_client = vec![Acl::new(zk_proto::types::perms::ALL, Id::new("x509", CLIENT_DN))];
        let opts = zk_client::CreateOptions::new(CreateMode::Persistent).with_acl(only_client);
        c.create(&path, b"secret", opts).await.unwrap();
        assert_eq!(&c.get_data(&path).await.unwrap().0[..], b"secret");
        // Another certificate of the same CA is another identity.
        let other = tls_client(at, &pki.path("ca.pem"), Some(&pki.path("other.pem"))).await.unwrap();
        assert_eq!(x509_ids(&other).await, vec!["CN=other,OU=zk,O=zk-rs".to_string()]);
        assert_eq!(other.get_data(&path).await.unwrap_err(), Error::NoAuth, "{kind:?}");
        // The plain port still serves, without an x509 identity.
        let plain = Client::connect(&server.connect_string()).await.unwrap();
        assert!(x509_ids(&plain).await.is_empty());
        assert_eq!(plain.get_data(&path).await.unwrap_err(), Error::NoAuth);
        for cl in [c, other, plain] {
            cl.close().await.unwrap();
        }
        server.stop().await;
    }
    // A key made by keytool itself (Java writes EC keys without their
    // public half, which some TLS libraries refuse), self-signed.
    let run = |args: &[&str]| {
        let out = Command::new("keytool").args(args).output().expect("keytool");
        assert!(out.status.success(), "keytool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let java_p12 = pki.path("java.p12");
    for alg in ["EC", "RSA"] {
        let _ = std::fs::remove_file(&java_p12);
        run(&[
            "-genkeypair",
            "-alias",
            "server",
            "-keyalg",
            alg,
            "-dname",
            "CN=java",
            "-ext",
            "san=ip:127.0.0.1",
            "-keystore",
            java_p12.to_str().unwrap(),
            "-storetype",
            "PKCS12",
            "-storepass",
            PW,
        ]);
        let pem = run(&[
            "-exportcert",
            "-rfc",
            "-alias",
            "server",
            "-keystore",
            java_p12.to_str().unwrap(),
            "-storepass",
            PW,
        ]);
        std::fs::write(pki.path("java.pem"), pem).unwrap();
        let mut tls = TlsSettings { client_auth: ClientAuth::None, ..TlsSettings::default() };
        tls.key_store = Some(StoreSpec::new(&java_p12, Some(PW)));
        let server = secure_server(tls, |_| {}).await;
        let c = tls_client(server.secure_addr().unwrap(), &pki.path("java.pem"), None).await.unwrap();
        assert!(c.exists("/").await.unwrap().is_some(), "{alg}");
        c.close().await.unwrap();
        server.stop().await;
    }
    // The recipes over TLS: a lock through the framework.
    let server = secure_server(pki.settings("server.pem", ClientAuth::Need), |_| {}).await;
    let t = TlsSettings {
        trust_store: Some(StoreSpec::new(pki.path("ca.pem"), None)),
        key_store: Some(StoreSpec::new(pki.path("client.p12"), Some(PW))),
        ..TlsSettings::default()
    };
    let fw = zk_recipes::Framework::builder(&server.secure_addr().unwrap().to_string())
        .retry_policy(zk_recipes::retry::RetryOneTime::new(Duration::from_millis(100)))
        .tls(t)
        .build();
    fw.start().await.unwrap();
    let lock = zk_recipes::locks::InterProcessMutex::new(&fw, "/locks/tls");
    assert!(lock.try_acquire(Duration::from_secs(10)).await.unwrap());
    lock.release().await.unwrap();
    fw.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_clean_and_harm_nothing() {
    common::trace_init();
    let pki = Pki::server_and_client(false);
    pki.issue("expired", "server", true, None);
    let (other_ca, other_ca_pem) = new_ca("another CA");
    std::fs::write(pki.path("other-ca.pem"), other_ca_pem).unwrap();
    pki.issue("stranger", "client", false, Some(&other_ca));
    let server = secure_server(pki.settings("server.pem", ClientAuth::Need), |_| {}).await;
    let at = server.secure_addr().unwrap();
    let ca = pki.path("ca.pem");
    let good = tls_client(at, &ca, Some(&pki.path("client.pem"))).await.unwrap();
    good.create("/still-here", b"", CreateMode::Persistent).await.unwrap();

    // A client that trusts another CA refuses our server, and says why.
    let e = tls_client(at, &pki.path("other-ca.pem"), Some(&pki.path("client.pem"))).await.unwrap_err();
    assert!(matches!(&e, Error::Tls(m) if m.contains("UnknownIssuer") || m.contains("issuer")), "{e:?}");
    // A client certificate of another CA is refused by the server.
    let e = tls_client(at, &ca, Some(&pki.path("stranger.pem"))).await.unwrap_err();
    assert!(matches!(e, Error::Tls(_) | Error::ConnectTimeout), "{e:?}");
    // No client certificate while the server needs one.
    let e = tls_client(at, &ca, None).await.unwrap_err();
    assert!(matches!(e, Error::Tls(_) | Error::ConnectTimeout), "{e:?}");
    // Plain text on the TLS port: the server closes it, nothing else.
    let e = Client::builder(&at.to_string())
        .connection_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e, Error::ConnectTimeout);
    let mut raw = tokio::net::TcpStream::connect(at).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&[0, 0, 0, 45, 1, 2, 3]).await.unwrap();
    let mut sink = Vec::new();
    let n = common::within(15, "the server closes a plain-text client", raw.read_to_end(&mut sink)).await;
    assert!(n.is_ok(), "{n:?}");
    // The good session went on through all of it.
    assert!(good.exists("/still-here").await.unwrap().is_some());
    good.close().await.unwrap();
    server.stop().await;

    // An expired server certificate: the client refuses it.
    let server = secure_server(pki.settings("expired.pem", ClientAuth::Need), |_| {}).await;
    let e = tls_client(server.secure_addr().unwrap(), &ca, Some(&pki.path("client.pem"))).await.unwrap_err();
    assert!(matches!(&e, Error::Tls(m) if m.contains("Expired") || m.contains("expired")), "{e:?}");
    server.stop().await;

    // want: a client without a certificate is let in, without an x509 id.
    let server = secure_server(pki.settings("server.pem", ClientAuth::Want), |_| {}).await;
    let anon = tls_client(server.secure_addr().unwrap(), &ca, None).await.unwrap();
    assert!(x509_ids(&anon).await.is_empty());
    anon.close().await.unwrap();
    server.stop().await;

    // Settings that cannot work stop the start-up, clearly.
    let mut cfg = ServerConfig::new("");
    cfg.client_port = 0;
    cfg.secure_client_port = Some(0);
    cfg.tls = pki.settings("server.pem", ClientAuth::Need);
    cfg.tls.key_store = Some(StoreSpec::new(pki.path("server.p12"), Some("wrong")));
    let e = Server::start_temp_with(cfg).await.unwrap_err().to_string();
    assert!(e.contains("wrong password"), "{e}");
}

/// The certificate subject a TLS handshake with `at` shows.
async fn served_subject(at: SocketAddr, ca: &Path) -> Option<String> {
    let t = TlsSettings { trust_store: Some(StoreSpec::new(ca, None)), ..TlsSettings::default() };
    let cfg = t.client_config().unwrap();
    let tcp = tokio::net::TcpStream::connect(at).await.ok()?;
    let name = zk_tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.ok()?;
    let cert = tls.get_ref().1.peer_certificates()?.first()?.clone();
    zk_tls::x509_identity(&cert).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_use_a_changed_key_store() {
    common::trace_init();
    let pki = Pki::new();
    pki.issue("server", "server", false, None);
    pki.issue("renewed", "renewed", false, None);
    pki.issue("client", "client", false, None);
    let live = pki.path("live.pem");
    std::fs::copy(pki.path("server.pem"), &live).unwrap();
    // `want`: the probe below (no client certificate) completes its
    // handshake and reads the certificate served.
    let server = secure_server(pki.settings("live.pem", ClientAuth::Want), |_| {}).await;
    let at = server.secure_addr().unwrap();
    let ca = pki.path("ca.pem");
    let c = tls_client(at, &ca, Some(&pki.path("client.pem"))).await.unwrap();
    assert_eq!(served_subject(at, &ca).await.as_deref(), Some("CN=server,OU=zk,O=zk-rs"));
    // A half-written file is not taken: the old certificate stays.
    std::fs::write(&live, b"-----BEGIN PRIVATE KEY-----\ngarbage").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c2 = tls_client(at, &ca, Some(&pki.path("client.pem"))).await.unwrap();
    c2.close().await.unwrap();
    // The renewed certificate is served once written.
    std::fs::copy(pki.path("renewed.pem"), &live).unwrap();
    common::wait_until_async(20, "the renewed certificate is served", || async {
        served_subject(at, &ca).await.as_deref() == Some("CN=renewed,OU=zk,O=zk-rs")
    })
    .await;
    // The session made before goes on.
    c.create("/after-reload", b"", CreateMode::Persistent).await.unwrap();
    c.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_connects_over_tls() {
    common::trace_init();
    let Some(python) = common::java::kazoo_python() else { return };
    let pki = Pki::server_and_client(false);
    // kazoo loads the key and the certificate from separate files.
    let pem = std::fs::read_to_string(pki.path("client.pem")).unwrap();
    let split = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    std::fs::write(pki.path("client.key"), &pem[..split]).unwrap();
    std::fs::write(pki.path("client.crt"), &pem[split..]).unwrap();
    let server = secure_server(pki.settings("server.pem", ClientAuth::Need), |_| {}).await;
    let at = server.secure_addr().unwrap();
    let script = format!(
        "from kazoo.client import KazooClient\n\
         zk = KazooClient(hosts='{at}', use_ssl=True, verify_certs=True, ca='{ca}', certfile='{crt}', keyfile='{key}')\n\
         zk.start(timeout=15)\n\
         zk.create('/kazoo-tls', b'over tls')\n\
         print('READ', zk.get('/kazoo-tls')[0].decode())\n\
         zk.stop()\n",
        ca = pki.path("ca.pem").display(),
        crt = pki.path("client.crt").display(),
        key = pki.path("client.key").display(),
    );
    let out = common::within(60, "kazoo over TLS", async move {
        tokio::task::spawn_blocking(move || Command::new(python).arg("-c").arg(script).output().unwrap())
            .await
            .unwrap()
    })
    .await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("READ over tls"), "{text}");
    let c = tls_client(at, &pki.path("ca.pem"), Some(&pki.path("client.pem"))).await.unwrap();
    assert_eq!(&c.get_data("/kazoo-tls").await.unwrap().0[..], b"over tls");
    c.close().await.unwrap();
    server.stop().await;
}

/// Apache's Java client (`ZooKeeperMain`, the Netty socket with
/// `zookeeper.client.secure=true`) runs `args` against `at`.
fn java_client(pki: &Pki, at: SocketAddr, args: &[&str]) -> String {
    let ssl = |k: &str, v: &Path| format!("-Dzookeeper.ssl.{k}={}", v.display());
    let out = Command::new("timeout")
        .arg("60")
        .arg("java")
        .arg("-cp")
        // Debian's zookeeper.jar manifest leaves out what the Netty client
        // socket needs beyond the server's jars.
        .arg(format!(
            "{}:{}:/usr/share/java/slf4j-simple.jar",
            zk_test_support::apache::ZOOKEEPER_JAR,
            zk_test_support::apache::NETTY_EXTRA.join(":")
        ))
        .arg("-Dzookeeper.client.secure=true")
        .arg("-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty")
        .arg(ssl("keyStore.location", &pki.path("client.jks")))
        .arg(format!("-Dzookeeper.ssl.keyStore.password={PW}"))
        .arg(ssl("trustStore.location", &pki.path("truststore.jks")))
        .arg(format!("-Dzookeeper.ssl.trustStore.password={PW}"))
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .arg("-server")
        .arg(at.to_string())
        .args(args)
        .output()
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javas_client_uses_our_secure_port_and_ours_apaches() {
    common::trace_init();
    if !java_tools() {
        return;
    }
    let pki = Pki::server_and_client(true);
    let server = secure_server(pki.settings("server.jks", ClientAuth::Need), |_| {}).await;
    let at = server.secure_addr().unwrap();
    let pki = std::sync::Arc::new(pki);
    let p2 = pki.clone();
    let out =
        tokio::task::spawn_blocking(move || java_client(&p2, at, &["create", "/java-tls", "from-java"]))
            .await
            .unwrap();
    assert!(out.contains("Created /java-tls"), "{out}");
    let c = tls_client(at, &pki.path("ca.pem"), Some(&pki.path("client.pem"))).await.unwrap();
    assert_eq!(&c.get_data("/java-tls").await.unwrap().0[..], b"from-java");
    let ours_id = x509_ids(&c).await;
    c.close().await.unwrap();
    server.stop().await;

    // Apache 3.8 with Netty and a secure port, key and trust stores by keytool.
    let secure_port = zk_test_support::free_port();
    let lines = [
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
        format!("secureClientPort={secure_port}"),
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider".to_string(),
        format!("ssl.keyStore.location={}", pki.path("server.jks").display()),
        format!("ssl.keyStore.password={PW}"),
        format!("ssl.trustStore.location={}", pki.path("truststore.jks").display()),
        format!("ssl.trustStore.password={PW}"),
    ];
    let opts = ApacheZkOptions { extra_config: lines.to_vec(), ..ApacheZkOptions::default() };
    let Some(apache) = tokio::task::spawn_blocking(move || ApacheZk::start_with(opts)).await.unwrap() else {
        return;
    };
    let apache_at = SocketAddr::from(([127, 0, 0, 1], secure_port));
    let c = common::within(60, "our client on Apache's secure port", async {
        loop {
            match tls_client(apache_at, &pki.path("ca.pem"), Some(&pki.path("client.p12"))).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    c.create("/rust-tls", b"from-rust", CreateMode::Persistent).await.unwrap();
    // Apache names the certificate as we do: an x509 ACL written for one
    // server holds on the other.
    assert_eq!(x509_ids(&c).await, ours_id, "Apache's x509 id vs ours");
    assert_eq!(ours_id, vec![CLIENT_DN.to_string()]);
    c.close().await.unwrap();
    // Our client refuses Apache's port when it trusts another CA.
    let (_, other_pem) = new_ca("another CA");
    std::fs::write(pki.path("other-ca.pem"), other_pem).unwrap();
    let e =
        tls_client(apache_at, &pki.path("other-ca.pem"), Some(&pki.path("client.p12"))).await.unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    drop(apache);
}
