//! Dereference: the seller service a DataStream names, its signer Secret, and the registry
//! of the AccessPolicy it names. Values stay in memory.

use super::validate::References;
use crate::api::{AccessPolicy, DataStream, SmartContractService};
use crate::context::Context;
use crate::reconcile::references::{RegistryLookup, read_secret_key, registry_admin};
use crate::reconcile::{Invalid, InvalidReason};
use alloy::primitives::Address;
use kube::{Api, ResourceExt};

/// What the references hold.
pub struct Found {
    seller: Option<SmartContractService>,
    signer_key: Option<Vec<u8>>,
    registry: Result<Option<Address>, Invalid>,
}

pub async fn dereference(ds: &DataStream, ctx: &Context) -> Result<Found, kube::Error> {
    let namespace = ds.namespace().unwrap_or_default();
    let seller = Api::<SmartContractService>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&ds.spec.seller.name)
        .await?;
    let signer_key = match &seller {
        Some(s) => {
            let r = &s.spec.signer.secret_key_ref;
            read_secret_key(&ctx.client, &namespace, &r.name, &r.key).await?
        }
        None => None,
    };
    let registry = match &ds.spec.access_policy_ref {
        None => Ok(None),
        Some(r) => registry_of(ctx, &namespace, &r.name).await?,
    };
    Ok(Found {
        seller,
        signer_key,
        registry,
    })
}

impl Found {
    /// The references as validate reads them.
    pub fn references(&self) -> References<'_> {
        References {
            seller: self.seller.as_ref(),
            signer_key: self.signer_key.as_deref(),
            registry: self.registry.clone(),
        }
    }

    /// The seller's signer address, if its key parses.
    pub fn seller_address(&self) -> Option<Address> {
        self.signer_key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(kontrakt_protocol::key::parse_signer)
            .map(|s| s.address())
    }
}

/// The EnrollmentRegistry of the AccessPolicy `name`, or why it is unknown.
async fn registry_of(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Result<Option<Address>, Invalid>, kube::Error> {
    let Some(policy) = Api::<AccessPolicy>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await?
    else {
        return Ok(Err(Invalid::new(
            InvalidReason::AccessPolicyNotFound,
            format!("AccessPolicy {name:?} not found"),
        )));
    };
    let registry = &policy.spec.registry.name;
    Ok(
        match registry_admin(&ctx.client, None, namespace, registry).await? {
            RegistryLookup::Found { admin, .. } => Ok(Some(
                kontrakt_protocol::addresses::registry_address(namespace, registry, admin),
            )),
            RegistryLookup::SignerNotFound => Err(Invalid::new(
                InvalidReason::RegistrySignerNotFound,
                format!(
                    "the signer Secret of the registry SmartContractService {registry:?} is missing or holds no key"
                ),
            )),
            RegistryLookup::ServiceNotFound => Err(Invalid::new(
                InvalidReason::RegistryNotFound,
                format!("the AccessPolicy's registry SmartContractService {registry:?} not found"),
            )),
        },
    )
}
