//! Apply: a SmartContractService's owned objects, through the kit's
//! [`apply_one`]; the applied hashes are read from the operator's watch
//! caches ([`Owned`]), or with a metadata GET without them.

use super::build::Children;
use crate::context::ObjectKey;
use crate::context::scoped_api;
use crate::reconcile::apply::{AppliedVersions, Stamp, apply_one, slim};
use crate::reconcile::references::synced;
use futures::{Stream, StreamExt, future::BoxFuture};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
    },
};
use kube::{
    Client, Resource, ResourceExt,
    api::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// The operator's watch caches of what it owns (selected by its managed-by label).
#[derive(Clone)]
pub struct Owned {
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    config_maps: Store<PartialObjectMeta<ConfigMap>>,
    services: Store<PartialObjectMeta<Service>>,
    network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    deployments: Store<Deployment>,
}

impl Owned {
    /// Starts the caches: returns them, the Deployment events (for the
    /// controller's `owns_stream`) and the future that keeps the other caches
    /// fed (spawn it; it runs until dropped).
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        config: &watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<Deployment, watcher::Error>> + Send + 'static,
        BoxFuture<'static, ()>,
    ) {
        fn meta<K>(
            client: &Client,
            namespace: Option<&str>,
            config: &watcher::Config,
        ) -> (Store<PartialObjectMeta<K>>, BoxFuture<'static, ()>)
        where
            K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
                + Clone
                + DeserializeOwned
                + Debug
                + Send
                + Sync
                + 'static,
        {
            let (store, writer) = reflector::store();
            // An Api of PartialObjectMeta watches metadata only.
            let feed = watcher(
                scoped_api::<PartialObjectMeta<K>>(client, namespace),
                config.clone(),
            )
            .default_backoff()
            // Only the applied hash is read; managedFields, kept, were most of the
            // cache (one fieldsV1 tree per child).
            .modify(|m: &mut PartialObjectMeta<K>| slim(m))
            .reflect(writer)
            .for_each(|_| futures::future::ready(()));
            (store, Box::pin(feed))
        }
        let (service_accounts, a) = meta::<ServiceAccount>(client, namespace, config);
        let (config_maps, b) = meta::<ConfigMap>(client, namespace, config);
        let (services, c) = meta::<Service>(client, namespace, config);
        let (network_policies, d) = meta::<NetworkPolicy>(client, namespace, config);
        let (deployments, writer) = reflector::store();
        let deployment_events =
            watcher(scoped_api::<Deployment>(client, namespace), config.clone())
                .default_backoff()
                // Only the status and the applied hash are read from the cache.
                .modify(|d: &mut Deployment| {
                    slim(d);
                    if let Some(spec) = d.spec.as_mut() {
                        spec.template = Default::default();
                    }
                })
                .reflect(writer)
                .filter_map(availability_changes());
        let feeds = Box::pin(async move {
            futures::join!(a, b, c, d);
        });
        (
            Self {
                service_accounts,
                config_maps,
                services,
                network_policies,
                deployments,
            },
            deployment_events,
            feeds,
        )
    }

    /// The caches from stores a test fills (see `call_sequence_tests`).
    #[cfg(test)]
    pub fn from_stores(
        service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
        config_maps: Store<PartialObjectMeta<ConfigMap>>,
        services: Store<PartialObjectMeta<Service>>,
        network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
        deployments: Store<Deployment>,
    ) -> Self {
        Self {
            service_accounts,
            config_maps,
            services,
            network_policies,
            deployments,
        }
    }

    /// Waits until every cache holds its first full list (the Deployment
    /// cache fills once the controller polls its stream).
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.service_accounts.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.services.wait_until_ready(),
            self.network_policies.wait_until_ready(),
        );
    }

    /// The cached Deployment `namespace/name`: `Some(None)` when the cache holds its
    /// first full list and no such Deployment, `None` while it does not know yet (it is
    /// fed by the controller's `owns_stream`, so it fills only after passes began).
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Option<Deployment>> {
        synced(&self.deployments).map(|store| {
            store
                .get(&ObjectRef::new(name).within(namespace))
                .map(Arc::unwrap_or_clone)
        })
    }

    fn stamp<K: Resource<DynamicType = ()> + Clone>(
        store: &Store<K>,
        namespace: &str,
        name: &str,
    ) -> Stamp {
        store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|o| Stamp::of(o.meta()))
            .unwrap_or_default()
    }
}

/// The Deployment events that can change a service's status: its available
/// replicas changed, or it was deleted (to be applied again). The operator's
/// own applies and the controller-manager's other status updates pass
/// nothing on, so a new service takes two passes, not one per update.
#[allow(clippy::type_complexity)]
fn availability_changes() -> impl FnMut(
    Result<watcher::Event<Deployment>, watcher::Error>,
) -> futures::future::Ready<
    Option<Result<Deployment, watcher::Error>>,
> {
    let mut available: std::collections::HashMap<ObjectRef<Deployment>, i32> = Default::default();
    move |event| {
        let count = |d: &Deployment| {
            d.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        };
        let passed = match event {
            Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => {
                let now = count(&d);
                let before = available.insert(ObjectRef::from_obj(&d), now);
                (before.unwrap_or(0) != now).then_some(Ok(d))
            }
            Ok(watcher::Event::Delete(d)) => {
                available.remove(&ObjectRef::from_obj(&d));
                Some(Ok(d))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(passed)
    }
}

/// Applies every child; returns how many were written. The objects the pods
/// need (ServiceAccount, ConfigMap) and the independent ones go together, the
/// Deployment last, so new pods always find the config their hash names.
pub async fn apply(
    client: &Client,
    namespace: &str,
    children: Children,
    owned: Option<&Owned>,
    applied: (&AppliedVersions, &ObjectKey),
) -> Result<usize, kube::Error> {
    let Children {
        service_account,
        config_map,
        deployment,
        service,
        network_policy,
    } = children;
    // What the caches say was applied last (None: no cache, ask the apiserver).
    let cached = |f: &dyn Fn(&Owned) -> Stamp| owned.map(f);
    let (sa, cm, svc, np, dep) = (
        cached(&|o| Owned::stamp(&o.service_accounts, namespace, &service_account.name_any())),
        cached(&|o| Owned::stamp(&o.config_maps, namespace, &config_map.name_any())),
        cached(&|o| Owned::stamp(&o.services, namespace, &service.name_any())),
        cached(&|o| Owned::stamp(&o.network_policies, namespace, &network_policy.name_any())),
        // Not before the Deployment cache is synced: an empty one would re-send every
        // Deployment after a start (None: ask the apiserver, as without caches).
        owned
            .and_then(|o| synced(&o.deployments))
            .map(|store| Owned::stamp(store, namespace, &deployment.name_any())),
    );
    let (a, b, c, d) = futures::try_join!(
        apply_one(client, namespace, service_account, sa, applied),
        apply_one(client, namespace, config_map, cm, applied),
        apply_one(client, namespace, service, svc, applied),
        apply_one(client, namespace, network_policy, np, applied),
    )?;
    let e = apply_one(client, namespace, deployment, dep, applied).await?;
    Ok([a, b, c, d, e]
        .into_iter()
        .filter(|written| *written)
        .count())
}
