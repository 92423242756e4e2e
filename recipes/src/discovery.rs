//! Service discovery as Curator's `curator-x-discovery`: instances
//! registered at `<base path>/<service name>/<instance id>` with the JSON
//! Curator's default `JsonInstanceSerializer` writes, so Java services find
//! Rust ones and the reverse.
//!
//! - [`ServiceDiscovery`]: register, update, unregister (instances come
//!   back after a new session), query names and instances.
//! - [`ServiceCache`]: the instances of one service, kept current.
//! - [`ServiceProvider`]: picks an instance ([`ProviderStrategy`]: round
//!   robin, random, sticky), skipping instances noted as failing
//!   ([`DownInstancePolicy`]).
//!
//! The JSON: `{"name", "id", "address", "port", "sslPort", "payload",
//! "registrationTimeUTC", "serviceType", "uriSpec"}`. A payload is JSON as
//! Jackson writes it for Java's payload class (`@JsonTypeInfo` with class
//! names): see [`ServiceInstance::payload`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;
use zk_client::{CreateMode, Error as ZkError};

use crate::cache::{CacheEvents, PathChildrenCache};
use crate::error::{Error, Result};
use crate::framework::{Framework, zk_basename};
use crate::state::ConnectionState;

/// How an instance's node lives (Curator's `ServiceType`).
///
/// ```
/// use zk_recipes::discovery::{ServiceInstance, ServiceType};
/// let i = ServiceInstance::builder("db").service_type(ServiceType::Static).build();
/// assert_eq!(i.service_type, ServiceType::Static);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// An ephemeral node (the default): gone with the session.
    #[default]
    Dynamic,
    /// An ephemeral sequential node.
    DynamicSequential,
    /// A persistent node.
    Static,
    /// A persistent node, never removed by the framework.
    Permanent,
}

impl ServiceType {
    fn name(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "DYNAMIC",
            ServiceType::DynamicSequential => "DYNAMIC_SEQUENTIAL",
            ServiceType::Static => "STATIC",
            ServiceType::Permanent => "PERMANENT",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "DYNAMIC_SEQUENTIAL" => ServiceType::DynamicSequential,
            "STATIC" => ServiceType::Static,
            "PERMANENT" => ServiceType::Permanent,
            _ => ServiceType::Dynamic,
        }
    }

    fn mode(self) -> CreateMode {
        match self {
            ServiceType::Dynamic => CreateMode::Ephemeral,
            ServiceType::DynamicSequential => CreateMode::EphemeralSequential,
            ServiceType::Static | ServiceType::Permanent => CreateMode::Persistent,
        }
    }
}

/// One instance of a service (Curator's `ServiceInstance`).
///
/// ```
/// use zk_recipes::discovery::ServiceInstance;
///
/// let i = ServiceInstance::builder("orders").address("10.0.0.5").port(8080).build();
/// let json = i.to_json();
/// let back = ServiceInstance::from_json(&json).unwrap();
/// assert_eq!(back, i);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInstance {
    /// The service's name.
    pub name: String,
    /// This instance's id (a random UUID by default).
    pub id: String,
    /// Its address.
    pub address: Option<String>,
    /// Its port.
    pub port: Option<u16>,
    /// Its TLS port.
    pub ssl_port: Option<u16>,
    /// The payload as JSON, as Jackson writes Java's payload: a `String`
    /// payload is `["java.lang.String", "text"]`, an object of class `C`
    /// is `{"@class": "C", ...}`; `None` is `null`.
    pub payload: Option<Value>,
    /// When it was registered (ms since the Unix epoch).
    pub registration_time_utc: i64,
    /// How its node lives.
    pub service_type: ServiceType,
    /// Curator's `UriSpec` as JSON (`{"parts": [...]}`), if any.
    pub uri_spec: Option<Value>,
}

/// Builds a [`ServiceInstance`].
///
/// ```
/// let i = zk_recipes::discovery::ServiceInstance::builder("api").id("api-1").port(80).ssl_port(443).build();
/// assert_eq!((i.id.as_str(), i.ssl_port), ("api-1", Some(443)));
/// ```
#[derive(Debug, Clone)]
pub struct ServiceInstanceBuilder(ServiceInstance);

impl ServiceInstanceBuilder {
    /// Sets the id.
    pub fn id(mut self, id: &str) -> Self {
        self.0.id = id.to_string();
        self
    }
    /// Sets the address.
    pub fn address(mut self, address: &str) -> Self {
        self.0.address = Some(address.to_string());
        self
    }
    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.0.port = Some(port);
        self
    }
    /// Sets the TLS port.
    pub fn ssl_port(mut self, port: u16) -> Self {
        self.0.ssl_port = Some(port);
        self
    }
    /// Sets the payload (Jackson's JSON for the Java payload class).
    pub fn payload(mut self, payload: Value) -> Self {
        self.0.payload = Some(payload);
        self
    }
    /// Sets a `java.lang.String` payload, as a Java service with
    /// `ServiceDiscoveryBuilder.builder(String.class)` reads it.
    pub fn string_payload(self, s: &str) -> Self {
        self.payload(json!(["java.lang.String", s]))
    }
    /// Sets the service type.
    pub fn service_type(mut self, t: ServiceType) -> Self {
        self.0.service_type = t;
        self
    }
    /// Sets a URI template as Curator's `UriSpec` parts (`{scheme}://{address}:{port}`).
    pub fn uri_spec(mut self, spec: &str) -> Self {
        self.0.uri_spec = Some(uri_spec_parts(spec));
        self
    }
    /// The instance.
    pub fn build(self) -> ServiceInstance {
        self.0
    }
}

/// Curator's `UriSpec` parsing: `{name}` is a variable, the rest literal.
fn uri_spec_parts(spec: &str) -> Value {
    let mut parts = Vec::new();
    let mut rest = spec;
    while !rest.is_empty() {
        if let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(json!({"value": &rest[..open], "variable": false}));
            }
            match rest[open..].find('}') {
                Some(close) => {
                    parts.push(json!({"value": &rest[open + 1..open + close], "variable": true}));
                    rest = &rest[open + close + 1..];
                }
                None => {
                    parts.push(json!({"value": &rest[open..], "variable": false}));
                    rest = "";
                }
            }
        } else {
            parts.push(json!({"value": rest, "variable": false}));
            rest = "";
        }
    }
    json!({ "parts": parts })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl ServiceInstance {
    /// A builder for an instance of `name`, with a random id, registered now.
    pub fn builder(name: &str) -> ServiceInstanceBuilder {
        ServiceInstanceBuilder(ServiceInstance {
            name: name.to_string(),
            id: Uuid::new_v4().to_string(),
            address: None,
            port: None,
            ssl_port: None,
            payload: None,
            registration_time_utc: now_ms(),
            service_type: ServiceType::Dynamic,
            uri_spec: None,
        })
    }

    /// The payload as a string, if it is a Java `String` payload (or a
    /// bare JSON string).
    pub fn string_payload(&self) -> Option<&str> {
        match self.payload.as_ref()? {
            Value::Array(a) if a.len() == 2 && a[0] == "java.lang.String" => a[1].as_str(),
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The JSON Curator's default serializer writes (compatible mode: no
    /// `enabled` field).
    pub fn to_json(&self) -> Vec<u8> {
        let v = json!({
            "name": self.name,
            "id": self.id,
            "address": self.address,
            "port": self.port,
            "sslPort": self.ssl_port,
            "payload": self.payload,
            "registrationTimeUTC": self.registration_time_utc,
            "serviceType": self.service_type.name(),
            "uriSpec": self.uri_spec,
        });
        v.to_string().into_bytes()
    }

    /// Reads Curator's JSON (unknown fields, such as `enabled`, ignored).
    ///
    /// # Errors
    /// [`Error::CorruptData`] when it is not a service instance.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::CorruptData(format!("service instance: {why}"));
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let port = |k: &str| v.get(k).and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
        let opt = |k: &str| v.get(k).filter(|x| !x.is_null()).cloned();
        Ok(ServiceInstance {
            name: s("name").ok_or_else(|| bad("no name"))?,
            id: s("id").ok_or_else(|| bad("no id"))?,
            address: s("address"),
            port: port("port"),
            ssl_port: port("sslPort"),
            payload: opt("payload"),
            registration_time_utc: v.get("registrationTimeUTC").and_then(Value::as_i64).unwrap_or(0),
            service_type: ServiceType::parse(&s("serviceType").unwrap_or_default()),
            uri_spec: opt("uriSpec"),
        })
    }
}

/// Registers and finds services (Curator's `ServiceDiscovery`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance};
///
/// let discovery = ServiceDiscovery::new(&fw, "/services");
/// discovery.start().await?;
/// let me = ServiceInstance::builder("orders").address("10.0.0.5").port(8080).build();
/// discovery.register_service(&me).await?;
/// for i in discovery.query_for_instances("orders").await? {
///     println!("{:?}:{:?}", i.address, i.port);
/// }
/// discovery.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceDiscovery {
    inner: Arc<DiscoveryInner>,
}

#[derive(Debug)]
struct DiscoveryInner {
    fw: Framework,
    base_path: String,
    services: Mutex<BTreeMap<String, ServiceInstance>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DiscoveryInner {
    fn path_for(&self, name: &str, id: &str) -> String {
        format!("{}/{name}/{id}", self.base_path)
    }

    /// Creates the instance's node; an existing one is deleted and
    /// re-created so that watchers see the change (as Curator).
    async fn register(&self, s: &ServiceInstance) -> Result<()> {
        let path = self.path_for(&s.name, &s.id);
        let bytes = s.to_json();
        for _ in 0..2 {
            match self
                .fw
                .create()
                .creating_parent_containers_if_needed()
                .with_mode(s.service_type.mode())
                .for_path(&path, &bytes)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::Zk(ZkError::NodeExists)) => match self.fw.delete().for_path(&path).await {
                    Ok(()) | Err(Error::Zk(ZkError::NoNode)) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ServiceDiscovery {
    /// Discovery under `base_path`.
    pub fn new(fw: &Framework, base_path: &str) -> Self {
        ServiceDiscovery {
            inner: Arc::new(DiscoveryInner {
                fw: fw.clone(),
                base_path: base_path.trim_end_matches('/').to_string(),
                services: Mutex::new(BTreeMap::new()),
                task: Mutex::new(None),
            }),
        }
    }

    /// Starts re-registering this process's instances after every
    /// (re)connection, as Curator does after a new session.
    ///
    /// # Errors
    /// Never today; `Result` for Curator's shape.
    pub async fn start(&self) -> Result<()> {
        let inner = self.inner.clone();
        let mut states = inner.fw.connection_state_events();
        let task = tokio::spawn(async move {
            while let Some(st) = states.next().await {
                if matches!(st, ConnectionState::Reconnected | ConnectionState::Connected) {
                    let all: Vec<ServiceInstance> =
                        inner.services.lock().map(|s| s.values().cloned().collect()).unwrap_or_default();
                    for s in all {
                        if let Err(e) = inner.register(&s).await {
                            tracing::warn!(service = %s.name, id = %s.id, error = %e, "could not re-register");
                        }
                    }
                }
            }
        });
        if let Ok(mut t) = self.inner.task.lock() {
            if let Some(old) = t.replace(task) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Registers an instance (kept registered through new sessions).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn register_service(&self, s: &ServiceInstance) -> Result<()> {
        if let Ok(mut m) = self.inner.services.lock() {
            m.insert(s.id.clone(), s.clone());
        }
        self.inner.register(s).await
    }

    /// Writes a registered instance's new details.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when it is not registered here; client
    /// errors after retries.
    pub async fn update_service(&self, s: &ServiceInstance) -> Result<()> {
        let known = self.inner.services.lock().map(|m| m.contains_key(&s.id)).unwrap_or(false);
        if !known {
            return Err(Error::InvalidArgument("service not registered"));
        }
        if let Ok(mut m) = self.inner.services.lock() {
            m.insert(s.id.clone(), s.clone());
        }
        self.inner.fw.set_data(&self.inner.path_for(&s.name, &s.id), &s.to_json(), None).await.map(drop)
    }

    /// Unregisters an instance (deletes its node).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn unregister_service(&self, s: &ServiceInstance) -> Result<()> {
        if let Ok(mut m) = self.inner.services.lock() {
            m.remove(&s.id);
        }
        match self.inner.fw.delete().guaranteed().for_path(&self.inner.path_for(&s.name, &s.id)).await {
            Ok(()) | Err(Error::Zk(ZkError::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The names of the services with a node under the base path.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn query_for_names(&self) -> Result<Vec<String>> {
        match self.inner.fw.get_children(&self.inner.base_path).await {
            Ok(mut n) => {
                n.sort();
                Ok(n)
            }
            Err(Error::Zk(ZkError::NoNode)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The instances of `name` (unreadable nodes skipped).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn query_for_instances(&self, name: &str) -> Result<Vec<ServiceInstance>> {
        let path = format!("{}/{name}", self.inner.base_path);
        let ids = match self.inner.fw.get_children(&path).await {
            Ok(i) => i,
            Err(Error::Zk(ZkError::NoNode)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(i) = self.query_for_instance(name, &id).await? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// One instance of `name` by id.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn query_for_instance(&self, name: &str, id: &str) -> Result<Option<ServiceInstance>> {
        match self.inner.fw.get_data(&self.inner.path_for(name, id)).await {
            Ok((d, _)) => match ServiceInstance::from_json(&d) {
                Ok(i) => Ok(Some(i)),
                Err(e) => {
                    tracing::warn!(service = %name, %id, error = %e, "unreadable service instance");
                    Ok(None)
                }
            },
            Err(Error::Zk(ZkError::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A cache of `name`'s instances.
    pub fn service_cache(&self, name: &str) -> ServiceCache {
        ServiceCache {
            cache: PathChildrenCache::new(&self.inner.fw, &format!("{}/{name}", self.inner.base_path)),
        }
    }

    /// A provider of `name`'s instances, picking with `strategy`.
    pub fn service_provider(&self, name: &str, strategy: ProviderStrategy) -> ServiceProvider {
        ServiceProvider {
            cache: self.service_cache(name),
            strategy,
            next: AtomicUsize::new(0),
            sticky: Mutex::new(None),
            down: Mutex::new(HashMap::new()),
            policy: DownInstancePolicy::default(),
        }
    }

    /// Stops re-registering and unregisters every instance this process
    /// registered (whatever its type, as Curator's `close`).
    pub async fn close(&self) {
        if let Some(t) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
        let all: Vec<ServiceInstance> = self
            .inner
            .services
            .lock()
            .map(|mut s| std::mem::take(&mut *s).into_values().collect())
            .unwrap_or_default();
        for s in all {
            let _ = self.unregister_service(&s).await;
        }
    }
}

impl Drop for ServiceDiscovery {
    fn drop(&mut self) {
        if let Some(t) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// The instances of one service, kept current (Curator's `ServiceCache`).
///
/// ```no_run
/// # async fn f(d: zk_recipes::discovery::ServiceDiscovery) -> zk_recipes::Result<()> {
/// let cache = d.service_cache("orders");
/// cache.start().await?;
/// cache.initialized().await;
/// println!("{} instances", cache.instances().len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceCache {
    cache: PathChildrenCache,
}

impl ServiceCache {
    /// Reads the instances and follows them.
    ///
    /// # Errors
    /// Client errors of the first read.
    pub async fn start(&self) -> Result<()> {
        self.cache.start().await
    }

    /// Waits until the first read is done.
    pub async fn initialized(&self) {
        self.cache.initialized().await;
    }

    /// The instances now (unreadable nodes skipped).
    pub fn instances(&self) -> Vec<ServiceInstance> {
        self.cache.current().iter().filter_map(|c| ServiceInstance::from_json(&c.data).ok()).collect()
    }

    /// Every change from now on (Curator's `cacheChanged`).
    pub fn events(&self) -> CacheEvents {
        self.cache.events()
    }

    /// Stops following.
    pub async fn close(&self) {
        self.cache.close().await;
    }
}

/// How a [`ServiceProvider`] picks (Curator's strategies).
///
/// ```
/// use zk_recipes::discovery::ProviderStrategy;
/// assert_eq!(ProviderStrategy::default(), ProviderStrategy::RoundRobin);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderStrategy {
    /// In turn (the default).
    #[default]
    RoundRobin,
    /// At random.
    Random,
    /// The same instance while it exists, then another in turn.
    Sticky,
}

/// When an instance counts as down (Curator's `DownInstancePolicy`): after
/// `error_threshold` errors noted, for `timeout`.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::discovery::DownInstancePolicy;
/// let p = DownInstancePolicy { timeout: Duration::from_secs(10), ..DownInstancePolicy::default() };
/// assert_eq!(p.error_threshold, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownInstancePolicy {
    /// How long an instance stays down.
    pub timeout: Duration,
    /// Errors that make it down.
    pub error_threshold: u32,
}

impl Default for DownInstancePolicy {
    /// Curator's: 30 s, 2 errors.
    fn default() -> Self {
        DownInstancePolicy { timeout: Duration::from_secs(30), error_threshold: 2 }
    }
}

/// Picks an instance of a service (Curator's `ServiceProvider`).
///
/// ```no_run
/// # async fn f(discovery: zk_recipes::discovery::ServiceDiscovery) -> zk_recipes::Result<()> {
/// use zk_recipes::discovery::ProviderStrategy;
///
/// let provider = discovery.service_provider("orders", ProviderStrategy::RoundRobin);
/// provider.start().await?;
/// if let Some(i) = provider.get_instance() {
///     // ... call it; on failure:
///     provider.note_error(&i);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceProvider {
    cache: ServiceCache,
    strategy: ProviderStrategy,
    next: AtomicUsize,
    sticky: Mutex<Option<String>>,
    down: Mutex<HashMap<String, (Instant, u32)>>,
    policy: DownInstancePolicy,
}

impl ServiceProvider {
    /// With another down-instance policy.
    pub fn with_down_instance_policy(mut self, policy: DownInstancePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts following the instances.
    ///
    /// # Errors
    /// Client errors of the first read.
    pub async fn start(&self) -> Result<()> {
        self.cache.start().await?;
        self.cache.initialized().await;
        Ok(())
    }

    fn is_up(&self, i: &ServiceInstance) -> bool {
        let Ok(mut down) = self.down.lock() else { return true };
        down.retain(|_, (since, _)| since.elapsed() < self.policy.timeout);
        down.get(&i.id).is_none_or(|(_, n)| *n < self.policy.error_threshold)
    }

    /// The instances not counted as down.
    pub fn get_all_instances(&self) -> Vec<ServiceInstance> {
        let mut all = self.cache.instances();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.retain(|i| self.is_up(i));
        all
    }

    /// An instance, by the strategy; `None` when there is none up.
    pub fn get_instance(&self) -> Option<ServiceInstance> {
        let all = self.get_all_instances();
        if all.is_empty() {
            return None;
        }
        let round_robin = || all[self.next.fetch_add(1, Ordering::Relaxed) % all.len()].clone();
        match self.strategy {
            ProviderStrategy::RoundRobin => Some(round_robin()),
            ProviderStrategy::Random => Some(all[rand::random::<usize>() % all.len()].clone()),
            ProviderStrategy::Sticky => {
                let mut sticky = self.sticky.lock().ok()?;
                if let Some(id) = sticky.as_ref() {
                    if let Some(i) = all.iter().find(|i| &i.id == id) {
                        return Some(i.clone());
                    }
                }
                let i = round_robin();
                *sticky = Some(i.id.clone());
                Some(i)
            }
        }
    }

    /// Notes an error calling `instance`: after the policy's threshold it
    /// is skipped until the policy's timeout.
    pub fn note_error(&self, instance: &ServiceInstance) {
        if let Ok(mut down) = self.down.lock() {
            let e = down.entry(instance.id.clone()).or_insert((Instant::now(), 0));
            e.1 += 1;
        }
    }

    /// Stops following.
    pub async fn close(&self) {
        self.cache.close().await;
    }
}

/// The instance id of a node path.
///
/// ```
/// assert_eq!(zk_recipes::discovery::instance_id("/services/api/api-1"), "api-1");
/// ```
pub fn instance_id(path: &str) -> &str {
    zk_basename(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_curator_fields() {
        let i = ServiceInstance::builder("svc")
            .id("x")
            .address("h")
            .port(1)
            .string_payload("p")
            .uri_spec("{scheme}://{address}:{port}")
            .build();
        let v: Value = serde_json::from_slice(&i.to_json()).unwrap();
        for k in [
            "name",
            "id",
            "address",
            "port",
            "sslPort",
            "payload",
            "registrationTimeUTC",
            "serviceType",
            "uriSpec",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["serviceType"], "DYNAMIC");
        assert_eq!(v["payload"], json!(["java.lang.String", "p"]));
        assert_eq!(v["uriSpec"]["parts"][0], json!({"value": "scheme", "variable": true}));
        assert_eq!(v["uriSpec"]["parts"][1], json!({"value": "://", "variable": false}));
        let back = ServiceInstance::from_json(&i.to_json()).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.string_payload(), Some("p"));
        assert!(ServiceInstance::from_json(b"{}").is_err());
        assert!(ServiceInstance::from_json(b"not json").is_err());
    }
}
