//! Dereference: read what a SmartContractService references (its signer Secret, its
//! artifact ConfigMap, the AccessPolicies of its namespace and the registry service of the
//! one it names). The only reads of user objects; values stay in memory.

use super::Caches;
use super::validate::{PolicyLookup, References};
use crate::api::{AccessPolicy, SmartContractService};
use crate::context::Context;
use crate::reconcile::references::{RegistryLookup, read_secret_key, registry_admin, synced};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// What the references hold.
pub struct Found {
    signer_key: Option<Vec<u8>>,
    artifact_json: Option<String>,
    /// The AccessPolicies of the namespace.
    policies: Vec<Arc<AccessPolicy>>,
    /// The registry service of the referenced policy (None: no policy, or this service
    /// hosts its registry itself).
    registry: Option<RegistryLookup>,
}

pub(crate) async fn dereference(
    scs: &SmartContractService,
    ctx: &Context,
    caches: Option<&Caches>,
) -> Result<Found, kube::Error> {
    let namespace = scs.namespace().unwrap_or_default();
    let client = &ctx.client;
    let key_ref = &scs.spec.signer.secret_key_ref;
    let signer_key = read_secret_key(client, &namespace, &key_ref.name, &key_ref.key).await?;
    let artifact_json = match &scs.spec.contract.artifact_ref {
        Some(r) => Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt(&r.name)
            .await?
            .and_then(|cm| cm.data)
            .and_then(|mut d| d.remove(&r.key)),
        None => None,
    };
    let policies = policies_in(ctx, caches, &namespace).await?;
    let registry = match referenced(scs, &policies) {
        Some(policy) if policy.spec.registry.name != scs.name_any() => Some(
            registry_admin(
                client,
                caches.map(|c| &c.services),
                &namespace,
                &policy.spec.registry.name,
            )
            .await?,
        ),
        _ => None,
    };
    Ok(Found {
        signer_key,
        artifact_json,
        policies,
        registry,
    })
}

impl Found {
    /// The references as validate reads them.
    pub fn references<'a>(&'a self, scs: &SmartContractService) -> References<'a> {
        let access_policy = match (&scs.spec.access_policy_ref, referenced(scs, &self.policies)) {
            (None, _) => PolicyLookup::NotReferenced,
            (Some(_), None) => PolicyLookup::PolicyNotFound,
            (Some(_), Some(policy)) => {
                let registry = policy.spec.registry.name.clone();
                match &self.registry {
                    None => PolicyLookup::Found {
                        policy,
                        registry_admin: None,
                    },
                    Some(RegistryLookup::Found { admin, .. }) => PolicyLookup::Found {
                        policy,
                        registry_admin: Some(*admin),
                    },
                    Some(RegistryLookup::ServiceNotFound) => {
                        PolicyLookup::RegistryNotFound { registry }
                    }
                    Some(RegistryLookup::SignerNotFound) => {
                        PolicyLookup::RegistrySignerNotFound { registry }
                    }
                }
            }
        };
        References {
            signer_key: self.signer_key.as_deref(),
            artifact_json: self.artifact_json.as_deref(),
            access_policy,
            hosted_policies: self
                .policies
                .iter()
                .filter(|p| p.spec.registry.name == scs.name_any())
                .map(|p| &**p)
                .collect(),
        }
    }
}

/// The AccessPolicy `accessPolicyRef` names, among `policies`.
fn referenced<'a>(
    scs: &SmartContractService,
    policies: &'a [Arc<AccessPolicy>],
) -> Option<&'a AccessPolicy> {
    let name = &scs.spec.access_policy_ref.as_ref()?.name;
    policies
        .iter()
        .find(|p| p.name_any() == *name)
        .map(|p| &**p)
}

/// The AccessPolicies of `namespace`, from the watch cache (or a list without one).
async fn policies_in(
    ctx: &Context,
    caches: Option<&Caches>,
    namespace: &str,
) -> Result<Vec<Arc<AccessPolicy>>, kube::Error> {
    Ok(match caches.and_then(|c| synced(&c.policies)) {
        Some(policies) => policies
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .collect(),
        None => Api::<AccessPolicy>::namespaced(ctx.client.clone(), namespace)
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect(),
    })
}
