//! What every reconcile shares: the client, the event recorder, metrics and settings.

use crate::metrics::Metrics;
use crate::reconcile::{apply::AppliedVersions, status::ReconciledKind};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use kube::{
    Api, Client, Resource,
    runtime::events::{Recorder, Reporter},
};
use std::sync::Arc;
use std::time::Duration;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "kontrakt-operator";

/// Operator-wide settings the controllers need (from the binary's flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Image of the contract sidecar container.
    pub sidecar_image: String,
    /// How often a Ready object is looked at again (chain state can change without a watch event).
    pub resync: Duration,
    /// Timeout of one read-only chain call made while computing status.
    pub chain_timeout: Duration,
    /// Reconcile objects in this namespace only; `None` watches all namespaces.
    pub watch_namespace: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sidecar_image: "ghcr.io/kontrakt/kontrakt-sidecar:latest".into(),
            resync: Duration::from_secs(300),
            chain_timeout: Duration::from_secs(5),
            watch_namespace: None,
        }
    }
}

/// Shared by all reconciles of all controllers.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Per-object retry delays for transient failures.
    pub backoff: Arc<Backoff>,
    /// Per-object delays between looks at an object still on its way (the
    /// Deployment watch usually says first: pods turn ready once the pair is).
    pub progress: Arc<Backoff>,
    /// Read-only chain clients, one per RPC URL.
    pub chains: Arc<ChainReaders>,
    /// What the last apply of each owned object returned (drift detection).
    pub applied: Arc<AppliedVersions>,
    /// Event writes in flight at once (see `publish`).
    pub event_writes: Arc<tokio::sync::Semaphore>,
}

/// Event writes in flight at once: a burst of new objects publishes thousands
/// of Events; unbounded, each holds a request and its buffers until the busy
/// apiserver answers (the operator's peak memory) and they compete with the
/// reconciles' own writes.
pub const MAX_EVENT_WRITES: usize = 8;

/// One read-only JSON-RPC client per RPC URL, shared by all reconciles: a
/// thousand services on one chain reuse one connection pool instead of
/// opening a connection per pass.
#[derive(Default)]
pub struct ChainReaders {
    providers: std::sync::Mutex<std::collections::HashMap<String, DynProvider>>,
}

impl ChainReaders {
    /// The client for `rpc_url` (created on first use).
    pub fn get(&self, rpc_url: &str) -> Result<DynProvider, String> {
        let mut providers = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = providers.get(rpc_url) {
            return Ok(p.clone());
        }
        let url = rpc_url.parse().map_err(|e| format!("rpc url: {e}"))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        providers.insert(rpc_url.to_owned(), provider.clone());
        Ok(provider)
    }
}

/// The one key of a reconciled object in the per-object maps: its kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    kind: &'static str,
    namespace: String,
    name: String,
}

impl ObjectKey {
    pub fn of<K: ReconciledKind>(obj: &K) -> Self {
        use kube::ResourceExt;
        Self {
            kind: K::KIND,
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Exponential backoff per object, reset by [`Backoff::reset`]: transient
/// failures are retried (5 s … 5 min) and objects still on their way are
/// polled (10 s … 1 min) without hot-looping.
///
/// An object asks again within `max` while it keeps failing, so an entry not asked
/// about for [`Backoff::FORGET_AFTER`] maxima belongs to an object that succeeded
/// without a reset, or is gone (deleted while failing): it is dropped, and the map
/// holds only the objects failing now.
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempts: std::sync::Mutex<std::collections::HashMap<ObjectKey, Attempts>>,
}

/// One object's attempts: the epoch they count for, how many, and when the last was.
struct Attempts {
    epoch: i64,
    count: u32,
    last: std::time::Instant,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Entries idle for this many times `max` are dropped.
    pub const FORGET_AFTER: u32 = 3;

    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            attempts: Default::default(),
        }
    }

    /// The delay before the next attempt for `key`, counting this one.
    pub fn next(&self, key: &ObjectKey) -> Duration {
        self.next_in(key, 0)
    }

    /// Like [`Backoff::next`], starting over whenever `epoch` changes (e.g. a new
    /// spec generation: a new desired state is looked at quickly again).
    pub fn next_in(&self, key: &ObjectKey, epoch: i64) -> Duration {
        let now = std::time::Instant::now();
        let idle = self.max * Self::FORGET_AFTER;
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        attempts.retain(|_, a| now.duration_since(a.last) < idle);
        let entry = attempts.entry(key.clone()).or_insert(Attempts {
            epoch,
            count: 0,
            last: now,
        });
        if entry.epoch != epoch {
            (entry.epoch, entry.count) = (epoch, 0);
        }
        entry.last = now;
        let delay = self
            .first
            .saturating_mul(1 << entry.count.min(16))
            .min(self.max);
        entry.count = entry.count.saturating_add(1);
        delay
    }

    /// Forgets the attempts of `key` (after a success, once it is ready, or deleted).
    pub fn reset(&self, key: &ObjectKey) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// How many objects have attempts counted.
    pub fn len(&self) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An `Api` for `K` in `namespace`, or in all namespaces.
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl Context {
    /// An `Api` for `K` in the namespace the operator watches (`--watch-namespace`), or all.
    pub fn watched_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        scoped_api(&self.client, self.settings.watch_namespace.as_deref())
    }

    /// Forgets `key` in the per-object delays (it is ready, or gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.backoff.reset(key);
        self.progress.reset(key);
    }

    /// Forgets everything kept about `key` (it is gone).
    pub fn forget_object(&self, key: &ObjectKey) {
        self.forget(key);
        self.applied.forget(key);
    }

    pub fn new(client: Client, metrics: Arc<Metrics>, settings: Settings) -> Arc<Self> {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Arc::new(Self {
            client,
            recorder,
            metrics,
            settings,
            backoff: Arc::default(),
            progress: Arc::new(Backoff::new(
                Duration::from_secs(10),
                Duration::from_secs(60),
            )),
            chains: Arc::default(),
            applied: Arc::default(),
            event_writes: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_WRITES)),
        })
    }
}

/// A watch mapper for the controllers of objects that name a SmartContractService
/// (a policy's registry, a stream's seller): on a change of a service, the
/// objects of `store` in its namespace whose `service_of` is its name (a malformed
/// object names none). Only the service's name is needed, so the watch can be
/// metadata-only.
pub fn naming_service<K>(
    store: kube::runtime::reflector::Store<K>,
    service_of: fn(&K) -> Option<&str>,
) -> impl Fn(
    kube::api::PartialObjectMeta<crate::api::SmartContractService>,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::ResourceExt;
    move |scs| {
        let namespace = scs.namespace();
        let name = scs.name_any();
        store
            .state()
            .into_iter()
            .filter(|o| o.namespace() == namespace && service_of(o) == Some(name.as_str()))
            .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&*o))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        let mut scs: crate::api::SmartContractService =
            serde_yaml::from_str(include_str!("../../e2e/samples/shipping.yaml"))
                .expect("sample parses");
        scs.metadata.namespace = Some("ns".into());
        scs.metadata.name = Some(name.into());
        ObjectKey::of(&scs)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..8).map(|_| b.next(&key("a")).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next(&key("b")).as_secs(), 5, "per object");
        b.reset(&key("a"));
        assert_eq!(b.next(&key("a")).as_secs(), 5);
    }

    #[test]
    fn a_new_epoch_starts_over() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        let delays: Vec<_> = (0..4).map(|_| b.next_in(&key("a"), 1).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 60]);
        assert_eq!(
            b.next_in(&key("a"), 2).as_secs(),
            10,
            "generation 2 is polled quickly"
        );
    }

    #[test]
    fn objects_no_longer_failing_are_forgotten() {
        let max = Duration::from_millis(20);
        let b = Backoff::new(Duration::from_millis(5), max);
        for i in 0..100 {
            b.next(&key(&format!("gone-{i}")));
        }
        assert_eq!(b.len(), 100);
        std::thread::sleep(max * Backoff::FORGET_AFTER + Duration::from_millis(10));
        b.next(&key("failing"));
        assert_eq!(b.len(), 1, "only the object failing now is kept");
    }

    #[test]
    fn keys_name_the_kind() {
        assert_eq!(key("a").to_string(), "SmartContractService/ns/a");
    }
}
