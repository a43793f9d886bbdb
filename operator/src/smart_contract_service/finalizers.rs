//! Adding and removing the finalizer with JSON patches guarded by a `test`
//! operation, so a concurrent change of the list fails the patch (and the pass
//! is retried) instead of being overwritten.

use super::error::Error;
use crate::api::SmartContractService;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

/// Adds `finalizer` to the object's list.
pub async fn add(
    api: &Api<SmartContractService>,
    obj: &SmartContractService,
    finalizer: &str,
) -> Result<(), Error> {
    let patch = match &obj.metadata.finalizers {
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
pub async fn remove(
    api: &Api<SmartContractService>,
    obj: &SmartContractService,
    finalizer: &str,
) -> Result<(), Error> {
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

async fn send(
    api: &Api<SmartContractService>,
    obj: &SmartContractService,
    patch: serde_json::Value,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| Error::Finalizer(format!("building the finalizer patch: {e}")))?;
    api.patch::<SmartContractService>(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Json(patch),
    )
    .await
    .map_err(|e| Error::Finalizer(e.to_string()))?;
    Ok(())
}
