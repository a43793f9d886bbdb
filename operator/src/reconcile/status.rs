//! The status write every controller shares: conditions merged, written with server-side
//! apply only when something changed, one Event per condition that changed.

use super::conditions::{Computed, merge_conditions};
use super::events::publish_transitions;
use crate::api::{
    AccessPolicy, AccessPolicyStatus, DataStream, DataStreamStatus, SmartContractService,
    SmartContractServiceStatus,
};
use crate::context::{Context, FIELD_MANAGER};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// A kind the operator reconciles: its name for metrics and Events, and its status.
pub trait ReconciledKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    type Status: Serialize + Clone + Default + PartialEq + Send + Sync;
    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &Self::Status) -> &[Condition];
    fn conditions_mut(status: &mut Self::Status) -> &mut Vec<Condition>;
}

macro_rules! reconciled_kind {
    ($kind:ty, $status:ty) => {
        impl ReconciledKind for $kind {
            const KIND: &'static str = stringify!($kind);
            type Status = $status;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn conditions(status: &$status) -> &[Condition] {
                &status.conditions
            }
            fn conditions_mut(status: &mut $status) -> &mut Vec<Condition> {
                &mut status.conditions
            }
        }
    };
}
reconciled_kind!(SmartContractService, SmartContractServiceStatus);
reconciled_kind!(DataStream, DataStreamStatus);
reconciled_kind!(AccessPolicy, AccessPolicyStatus);

/// Writes `status` with the `computed` conditions if it differs from the stored one, and
/// publishes an Event for every condition whose status or reason changed. An unchanged
/// pass writes nothing. Returns the status it replaced, if it wrote one.
pub async fn write_status<K: ReconciledKind>(
    obj: &K,
    ctx: &Context,
    mut status: K::Status,
    computed: &[Computed],
) -> Result<Option<K::Status>, kube::Error> {
    let old = obj.status().cloned().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    *K::conditions_mut(&mut status) =
        merge_conditions(K::conditions(&old), computed, obj.meta().generation, now);
    if status == old {
        return Ok(None);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::KIND,
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    publish_transitions(ctx, &obj.object_ref(&()), K::conditions(&old), computed).await;
    Ok(Some(old))
}
