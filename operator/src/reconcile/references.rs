//! Reads of referenced objects that more than one controller makes: a Secret's key, and a
//! registry service (the SmartContractService hosting an `EnrollmentRegistry`) with its
//! admin. Values stay in memory; nothing read here is written anywhere.

use crate::api::SmartContractService;
use alloy::primitives::Address;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    core::DeserializeGuard,
    runtime::reflector::{ObjectRef, Store},
};

/// The value at `key` of Secret `name`, if both exist.
pub async fn read_secret_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, kube::Error> {
    Ok(Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(key))
        .map(|b| b.0))
}

/// The watch cache `store` when it holds its first full list, else None (read from the
/// apiserver instead). Until then an empty cache would say "not found": right after
/// an operator start that turned Ready services not Ready for a moment. Never waits:
/// a pass waiting for a cache the controller itself feeds could wait forever.
pub fn synced<K>(store: &Store<K>) -> Option<&Store<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    // Err: the writer is gone (the operator is stopping); that cache will not fill.
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))).then_some(store)
}

/// What was found for a registry service.
#[derive(Debug, Clone)]
pub enum RegistryLookup {
    /// The service and its admin (its signer's address).
    Found {
        service: Box<SmartContractService>,
        admin: Address,
    },
    ServiceNotFound,
    /// The service's signer Secret is missing or holds no key.
    SignerNotFound,
}

/// The registry service `name` of `namespace` (from `cached` when the caller watches
/// services, else from the apiserver) and its admin.
pub async fn registry_admin(
    client: &Client,
    cached: Option<&Store<DeserializeGuard<SmartContractService>>>,
    namespace: &str,
    name: &str,
) -> Result<RegistryLookup, kube::Error> {
    let service = match cached.and_then(synced) {
        Some(store) => store
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|g| g.0.as_ref().ok().cloned()),
        None => {
            Api::<SmartContractService>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await?
        }
    };
    let Some(service) = service else {
        return Ok(RegistryLookup::ServiceNotFound);
    };
    let key_ref = &service.spec.signer.secret_key_ref;
    let key = read_secret_key(client, namespace, &key_ref.name, &key_ref.key).await?;
    let admin = key
        .and_then(|k| String::from_utf8(k).ok())
        .and_then(|k| kontrakt_protocol::key::parse_signer(&k))
        .map(|signer| signer.address());
    Ok(match admin {
        Some(admin) => RegistryLookup::Found {
            service: Box::new(service),
            admin,
        },
        None => RegistryLookup::SignerNotFound,
    })
}
