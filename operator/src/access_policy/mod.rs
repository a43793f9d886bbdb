//! The AccessPolicy controller: the policy's participants reach the chain
//! through its registry service's sidecar (see [`render`]); this controller
//! reads the registry back and reports, per participant, what the chain holds.
//!
//! validate (registry service, its signer, the admin not listed) → observe the
//! registry on chain → status. A finalizer holds the object until the sidecar
//! has revoked what the policy enrolled.

pub mod render;
pub mod status;

use crate::{
    api::{AccessPolicy, ApprovalMode, SmartContractService},
    context::{Context, naming_service},
    reconcile::{
        finalizers::{self, FinalizerError},
        publish,
        status::ReconciledKind,
        write_status,
    },
    smart_contract_service::{registry_admin, validate::PolicyLookup},
};
use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    api::PartialObjectMeta,
    runtime::{
        Controller,
        controller::{self, Action},
        events::EventType,
        watcher,
    },
};
use status::Observation;
use std::{future::Future, sync::Arc, time::Duration};
use tracing::{debug, warn};

pub const KIND: &str = <AccessPolicy as ReconciledKind>::KIND;
/// Held until the registry no longer enrolls what this policy enrolled.
pub const FINALIZER: &str = "kontrakt.dev/revoke";
/// `"true"` skips waiting for the revocations on delete (e.g. the chain is gone for good).
pub const SKIP_REVOKE_ANNOTATION: &str = "kontrakt.dev/skip-revoke";
const CONCURRENCY: u16 = 8;
/// A missing registry service is looked at again this rarely (its creation also triggers a pass).
const MISSING_REFERENCE_REQUEUE: Duration = Duration::from_secs(120);

/// Why a pass failed (transient: retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[from] FinalizerError),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Finalizer(_) => "FinalizerError",
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let policies: Api<AccessPolicy> = ctx.watched_api();
    let services: Api<PartialObjectMeta<SmartContractService>> = ctx.watched_api();
    let controller = Controller::new(policies, watcher::Config::default().any_semantic());
    let store = controller.store();
    controller
        // A registry service that appears, changes or gets its contracts
        // deployed changes what its policies can report. Only its name is
        // needed to find them: a metadata-only watch.
        .watches(
            services,
            Default::default(),
            naming_service(store, |p: &AccessPolicy| &p.spec.registry.name),
        )
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "access policy pass failed");
            }
        })
        .await;
}

fn key(p: &AccessPolicy) -> String {
    format!("ap/{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

fn error_policy(policy: Arc<AccessPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(KIND, error.reason());
    let delay = ctx.backoff.next(&key(&policy));
    warn!(object = %key(&policy), error = %error, retry_in_s = delay.as_secs(), "access policy pass failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(policy: Arc<AccessPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<AccessPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = policy.meta().deletion_timestamp.is_some();
    let has_finalizer = policy.finalizers().iter().any(|f| f == FINALIZER);
    if deleting && !has_finalizer {
        return Ok(Action::await_change());
    }
    if !deleting && !has_finalizer {
        finalizers::add(&api, &*policy, FINALIZER).await?;
    }

    let (observation, endpoints) = observe(&policy, &ctx).await?;
    if deleting {
        let skip = policy
            .annotations()
            .get(SKIP_REVOKE_ANNOTATION)
            .is_some_and(|v| v == "true");
        let done =
            skip || status::revocations_done(&policy, &observation, &others(&ctx, &policy).await?);
        if done {
            let note = if skip {
                format!("{SKIP_REVOKE_ANNOTATION} is set: enrollments are left as they are")
            } else {
                "nothing this policy enrolled is still enrolled on chain".into()
            };
            publish(
                &ctx,
                &policy.object_ref(&()),
                EventType::Normal,
                "Revoked",
                &note,
            )
            .await;
            finalizers::remove(&api, &*policy, FINALIZER).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(ctx.progress.next(&key(&policy))));
    }

    // One approval setting per registry: whether this policy's is the one applied.
    let refused = if policy.spec.approval.mode == ApprovalMode::Oracle {
        let peers = others(&ctx, &policy).await?;
        let mut all: Vec<&AccessPolicy> = peers.iter().collect();
        all.push(&policy);
        let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        render::approval(&all, &endpoints)
            .refused
            .remove(&policy.name_any())
    } else {
        None
    };
    let outcome = status::compute(&policy, &observation, refused.as_ref());
    write_status(&*policy, &ctx, outcome.status, &outcome.conditions).await?;
    Ok(match outcome.requeue {
        status::Requeue::Synced => {
            ctx.backoff.reset(&key(&policy));
            ctx.progress.reset(&key(&policy));
            Action::requeue(ctx.settings.resync)
        }
        status::Requeue::Waiting => Action::requeue(ctx.progress.next_in(
            &key(&policy),
            policy.metadata.generation.unwrap_or_default(),
        )),
        status::Requeue::Unreachable => Action::requeue(ctx.backoff.next(&key(&policy))),
        status::Requeue::MissingReference => Action::requeue(MISSING_REFERENCE_REQUEUE),
        status::Requeue::OnChange => Action::await_change(),
    })
}

/// The other policies of the namespace naming the same registry (they keep
/// their participants enrolled when this one goes).
async fn others(ctx: &Context, policy: &AccessPolicy) -> Result<Vec<AccessPolicy>, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    Ok(
        Api::<AccessPolicy>::namespaced(ctx.client.clone(), &namespace)
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|p| {
                p.name_any() != policy.name_any()
                    && p.spec.registry.name == policy.spec.registry.name
                    && p.meta().deletion_timestamp.is_none()
            })
            .collect(),
    )
}

/// Dereferences the registry service and reads its registry from the chain;
/// also returns the names of the registry service's oracle endpoints.
async fn observe(
    policy: &AccessPolicy,
    ctx: &Context,
) -> Result<(Observation, Vec<String>), Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let registry_name = &policy.spec.registry.name;
    let (registry, admin) = match registry_admin(ctx, None, &namespace, registry_name).await? {
        Ok(found) => found,
        Err(PolicyLookup::RegistrySignerNotFound { .. }) => {
            return Ok((Observation::RegistrySignerNotFound, vec![]));
        }
        Err(_) => return Ok((Observation::RegistryServiceNotFound, vec![])),
    };
    let endpoints = registry
        .spec
        .oracle
        .iter()
        .flat_map(|o| &o.endpoints)
        .map(|e| e.name.clone())
        .collect();
    let Some(rpc_url) = registry.spec.chain.rpc_url.clone() else {
        return Ok((Observation::RpcUrlSecretNotSupported, endpoints));
    };
    let address = kontrakt_protocol::addresses::registry_address(&namespace, registry_name, admin);
    Ok((
        status::read_registry(ctx, &rpc_url, address, admin).await,
        endpoints,
    ))
}
