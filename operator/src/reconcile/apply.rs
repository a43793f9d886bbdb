//! Apply: server-side apply of owned objects with one field manager.
//!
//! Each applied object carries a hash of what was applied; an object whose
//! hash already matches is not sent again, so a reconcile that changes
//! nothing makes no call at all for it. Owner references are set by each
//! controller's build step (pure); garbage collection follows them.

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

/// The content hash the operator stamps on what it applies.
pub fn applied_hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).expect("Kubernetes objects serialise");
    alloy::hex::encode(&alloy::primitives::keccak256(bytes)[..12])
}

/// Applies `obj` (server-side apply, the operator's field manager, forced) unless the
/// object already carries the hash of exactly this content; returns whether it wrote.
/// `cached`: the hash a watch cache holds (`None`: no cache, read the metadata).
pub async fn apply_one<K>(
    client: &Client,
    namespace: &str,
    mut obj: K,
    cached: Option<Option<String>>,
) -> Result<bool, kube::Error>
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
    let applied = match cached {
        Some(applied) => applied,
        None => api
            .get_metadata_opt(&name)
            .await?
            .and_then(|m| m.annotations().get(APPLIED_HASH_ANNOTATION).cloned()),
    };
    if applied.as_ref() == Some(&hash) {
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

/// Drops what the caches never read and what makes up most of an object's
/// size (the managed fields): a thousand services' caches stay small.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}
