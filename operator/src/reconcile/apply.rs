//! Apply: server-side apply of owned objects with one field manager.
//!
//! Each applied object carries a hash of what was applied; an object whose
//! hash already matches, and whose resourceVersion is still the one the last
//! apply returned, is not sent again, so a reconcile that changes nothing makes
//! no call at all for it, while a hand edit is reverted. Owner references are
//! set by each controller's build step (pure); garbage collection follows them.

use crate::context::{FIELD_MANAGER, ObjectKey};
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

/// Annotation holding the hash of the object as last applied by the operator.
pub const APPLIED_HASH_ANNOTATION: &str = "kontrakt.dev/applied-hash";

/// The content hash the operator stamps on what it applies.
pub fn applied_hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).expect("Kubernetes objects serialise");
    alloy::hex::encode(&alloy::primitives::keccak256(bytes)[..12])
}

/// What the cluster holds of an owned object: its applied hash and resourceVersion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    pub hash: Option<String>,
    pub resource_version: Option<String>,
}

impl Stamp {
    /// The stamp of `meta` (an object as a cache or a metadata GET returns it).
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            hash: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION).cloned()),
            resource_version: meta.resource_version.clone(),
        }
    }
}

/// The resourceVersion each apply of an owned object returned, per owner. An object whose
/// hash matches but whose resourceVersion moved on since was written by someone else
/// (`kubectl scale`, `kubectl edit`): it is applied again. Entries go with their owner
/// ([`AppliedVersions::forget`]).
#[derive(Default)]
pub struct AppliedVersions {
    by_owner: Mutex<HashMap<ObjectKey, HashMap<String, String>>>,
}

impl AppliedVersions {
    fn get(&self, owner: &ObjectKey, child: &str) -> Option<String> {
        let by_owner = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        by_owner.get(owner)?.get(child).cloned()
    }

    fn set(&self, owner: &ObjectKey, child: String, version: String) {
        let mut by_owner = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        by_owner
            .entry(owner.clone())
            .or_default()
            .insert(child, version);
    }

    /// Forgets what was applied for `owner` (it is gone).
    pub fn forget(&self, owner: &ObjectKey) {
        self.by_owner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(owner);
    }
}

/// Applies `obj` for `owner` (server-side apply, the operator's field manager, forced)
/// unless the cluster holds exactly this content as the operator last applied it; returns
/// whether the apiserver wrote (a no-op apply keeps the resourceVersion).
///
/// `cached`: what a watch cache holds (`None`: no cache, read the metadata). Without a
/// record of the last apply (after a start) a matching hash is trusted: drift from before
/// the start is repaired at the next change of the spec or of the object.
pub async fn apply_one<K>(
    client: &Client,
    namespace: &str,
    mut obj: K,
    cached: Option<Stamp>,
    (applied, owner): (&AppliedVersions, &ObjectKey),
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
    let child = format!("{}/{name}", K::kind(&()));
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let stamp = match cached {
        Some(stamp) => stamp,
        None => api
            .get_metadata_opt(&name)
            .await?
            .map(|m| Stamp::of(&m.metadata))
            .unwrap_or_default(),
    };
    if stamp.hash.as_ref() == Some(&hash) {
        match (applied.get(owner, &child), &stamp.resource_version) {
            // Written by someone else since the last apply.
            (Some(last), Some(now)) if last != *now => {}
            (None, Some(now)) => {
                applied.set(owner, child, now.clone());
                return Ok(false);
            }
            _ => return Ok(false),
        }
    }
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await?;
    let version = written.resource_version();
    if let Some(version) = &version {
        applied.set(owner, child, version.clone());
    }
    Ok(version != stamp.resource_version)
}

/// Drops what the caches never read and what makes up most of an object's
/// size (the managed fields): a thousand services' caches stay small.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}
