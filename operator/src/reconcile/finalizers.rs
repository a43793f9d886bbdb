//! Adding and removing the finalizer with JSON patches guarded by a `test`
//! operation, so a concurrent change of the list fails the patch (and the pass
//! is retried) instead of being overwritten.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use std::fmt::Debug;

/// Why the finalizer list could not be patched (a concurrent change of the list fails
/// the `test` operation: the pass is retried).
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    #[error("building the finalizer patch: {0}")]
    Patch(#[from] serde_json::Error),
    #[error("patching the finalizers: {0}")]
    Kube(#[from] kube::Error),
}

/// A kind whose finalizers these functions patch.
pub trait Finalized:
    Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug
{
}
impl<K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug> Finalized for K {}

/// Adds `finalizer` to the object's list.
pub async fn add<K: Finalized>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
) -> Result<(), FinalizerError> {
    let patch = match &obj.meta().finalizers {
        None => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [finalizer] },
        ]),
        Some(list) => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": list },
            { "op": "add", "path": "/metadata/finalizers/-", "value": finalizer },
        ]),
    };
    send(api, obj, patch).await
}

/// Removes `finalizer` from the object's list (nothing to do when absent).
pub async fn remove<K: Finalized>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
) -> Result<(), FinalizerError> {
    let Some(index) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        { "op": "test", "path": path, "value": finalizer },
        { "op": "remove", "path": path },
    ]);
    send(api, obj, patch).await
}

async fn send<K: Finalized>(
    api: &Api<K>,
    obj: &K,
    patch: serde_json::Value,
) -> Result<(), FinalizerError> {
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    api.patch::<K>(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Json(patch),
    )
    .await?;
    Ok(())
}
