//! Dereference: the registry service an AccessPolicy names (its admin, chain and oracle
//! endpoints) and the other policies on the same registry. Values stay in memory.

use crate::api::AccessPolicy;
use crate::context::Context;
use crate::reconcile::references::{RegistryLookup, registry_admin};
use alloy::primitives::Address;
use kube::{Api, Resource, ResourceExt, core::DeserializeGuard};

/// What was found for the policy's registry service.
pub enum Registry {
    ServiceNotFound,
    SignerNotFound,
    Found {
        /// None: the service takes its RPC URL from a Secret.
        rpc_url: Option<String>,
        /// Where its `EnrollmentRegistry` lives, and its admin.
        address: Address,
        admin: Address,
        /// The names of the service's oracle endpoints.
        endpoints: Vec<String>,
    },
}

pub async fn registry(policy: &AccessPolicy, ctx: &Context) -> Result<Registry, kube::Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = &policy.spec.registry.name;
    Ok(
        match registry_admin(&ctx.client, None, &namespace, name).await? {
            RegistryLookup::ServiceNotFound => Registry::ServiceNotFound,
            RegistryLookup::SignerNotFound => Registry::SignerNotFound,
            RegistryLookup::Found { service, admin } => Registry::Found {
                rpc_url: service.spec.chain.rpc_url.clone(),
                address: kontrakt_protocol::addresses::registry_address(&namespace, name, admin),
                admin,
                endpoints: service
                    .spec
                    .oracle
                    .iter()
                    .flat_map(|o| &o.endpoints)
                    .map(|e| e.name.clone())
                    .collect(),
            },
        },
    )
}

/// The other live policies of the namespace naming the same registry (they keep their
/// participants enrolled when this one goes). A malformed one names nothing.
pub async fn others(
    ctx: &Context,
    policy: &AccessPolicy,
) -> Result<Vec<AccessPolicy>, kube::Error> {
    let namespace = policy.namespace().unwrap_or_default();
    Ok(
        Api::<DeserializeGuard<AccessPolicy>>::namespaced(ctx.client.clone(), &namespace)
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|g| g.0.ok())
            .filter(|p| {
                p.name_any() != policy.name_any()
                    && p.spec.registry.name == policy.spec.registry.name
                    && p.meta().deletion_timestamp.is_none()
            })
            .collect(),
    )
}
