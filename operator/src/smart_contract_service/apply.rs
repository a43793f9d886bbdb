//! Apply: server-side apply of the owned objects with one field manager.
//!
//! Each applied object carries a hash of what was applied; an object whose
//! hash already matches is not sent again, so a reconcile that changes
//! nothing makes no write call (reads only).

use super::build::Children;
use crate::context::FIELD_MANAGER;
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// Annotation holding the hash of the object as last applied by the operator.
pub const APPLIED_HASH_ANNOTATION: &str = "kontrakt.dev/applied-hash";

/// Applies every child; returns how many were written. The objects the pods
/// need (ServiceAccount, ConfigMap) and the independent ones go together, the
/// Deployment last, so new pods always find the config their hash names.
pub async fn apply(
    client: &Client,
    namespace: &str,
    children: Children,
) -> Result<usize, kube::Error> {
    let Children {
        service_account,
        config_map,
        deployment,
        service,
        network_policy,
    } = children;
    let (a, b, c, d) = futures::try_join!(
        apply_one(client, namespace, service_account),
        apply_one(client, namespace, config_map),
        apply_one(client, namespace, service),
        apply_one(client, namespace, network_policy),
    )?;
    let e = apply_one(client, namespace, deployment).await?;
    Ok([a, b, c, d, e]
        .into_iter()
        .filter(|written| *written)
        .count())
}

/// The content hash the operator stamps on what it applies.
pub fn applied_hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).expect("Kubernetes objects serialise");
    alloy::hex::encode(&alloy::primitives::keccak256(bytes)[..12])
}

async fn apply_one<K>(client: &Client, namespace: &str, mut obj: K) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let hash = applied_hash(&obj);
    obj.annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    if let Some(current) = api.get_metadata_opt(&name).await?
        && current.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash)
    {
        return Ok(false);
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(true)
}
