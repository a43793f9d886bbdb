//! The AccessPolicy controller: the policy's participants reach the chain
//! through its registry service's sidecar (see [`render`]); this controller
//! reads the registry back and reports, per participant, what the chain holds.
//!
//! dereference (the registry service, its signer) → observe the registry on
//! chain → status (pure, the admin not listed). A finalizer holds the object until the sidecar
//! has revoked what the policy enrolled.

pub mod dereference;
pub mod render;
pub mod status;

use crate::{
    api::{AccessPolicy, ApprovalMode, SmartContractService},
    context::{Context, ObjectKey, naming_service},
    reconcile::{
        finalizers::{self, FinalizerError},
        publish, report_malformed,
        status::ReconciledKind,
        write_status,
    },
};
use dereference::{Registry, others};
use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    api::PartialObjectMeta,
    core::DeserializeGuard,
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
    // DeserializeGuard: one malformed object is reported, not a stalled watch.
    let policies: Api<DeserializeGuard<AccessPolicy>> = ctx.watched_api();
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
            naming_service(store, |g: &DeserializeGuard<AccessPolicy>| {
                g.0.as_ref().ok().map(|p| p.spec.registry.name.as_str())
            }),
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

fn error_policy(
    guard: Arc<DeserializeGuard<AccessPolicy>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.failure(KIND, error.reason());
    let Ok(policy) = &guard.0 else {
        return Action::await_change();
    };
    let delay = ctx.backoff.next(&ObjectKey::of(policy));
    warn!(object = %ObjectKey::of(policy), error = %error, retry_in_s = delay.as_secs(), "access policy pass failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(
    guard: Arc<DeserializeGuard<AccessPolicy>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Ok(policy) = &guard.0 else {
        report_malformed(&ctx, &guard).await;
        return Ok(Action::await_change());
    };
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<AccessPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = policy.meta().deletion_timestamp.is_some();
    let has_finalizer = policy.finalizers().iter().any(|f| f == FINALIZER);
    if deleting && !has_finalizer {
        ctx.forget(&ObjectKey::of(policy));
        return Ok(Action::await_change());
    }
    if !deleting && !has_finalizer {
        finalizers::add(&api, policy, FINALIZER).await?;
    }

    let (observation, endpoints) = observe(policy, &ctx).await?;
    if deleting {
        let skip = policy
            .annotations()
            .get(SKIP_REVOKE_ANNOTATION)
            .is_some_and(|v| v == "true");
        let done =
            skip || status::revocations_done(policy, &observation, &others(&ctx, policy).await?);
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
            finalizers::remove(&api, policy, FINALIZER).await?;
            ctx.forget(&ObjectKey::of(policy));
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(ctx.progress.next(&ObjectKey::of(policy))));
    }

    // One approval setting per registry: whether this policy's is the one applied.
    let refused = if policy.spec.approval.mode == ApprovalMode::Oracle {
        let peers = others(&ctx, policy).await?;
        let mut all: Vec<&AccessPolicy> = peers.iter().collect();
        all.push(policy);
        let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        render::approval(&all, &endpoints)
            .refused
            .remove(&policy.name_any())
    } else {
        None
    };
    let outcome = status::compute(policy, &observation, refused.as_ref());
    write_status(policy, &ctx, outcome.status, &outcome.conditions).await?;
    Ok(match outcome.requeue {
        status::Requeue::Synced => {
            ctx.forget(&ObjectKey::of(policy));
            Action::requeue(ctx.settings.resync)
        }
        status::Requeue::Waiting => Action::requeue(ctx.progress.next_in(
            &ObjectKey::of(policy),
            policy.metadata.generation.unwrap_or_default(),
        )),
        status::Requeue::Unreachable => Action::requeue(ctx.backoff.next(&ObjectKey::of(policy))),
        status::Requeue::MissingReference => Action::requeue(MISSING_REFERENCE_REQUEUE),
        status::Requeue::OnChange => Action::await_change(),
    })
}

/// The registry named by the policy, read from the chain; also the names of the registry
/// service's oracle endpoints.
async fn observe(
    policy: &AccessPolicy,
    ctx: &Context,
) -> Result<(Observation, Vec<String>), Error> {
    Ok(match dereference::registry(policy, ctx).await? {
        Registry::ServiceNotFound => (Observation::RegistryServiceNotFound, vec![]),
        Registry::SignerNotFound => (Observation::RegistrySignerNotFound, vec![]),
        Registry::Found {
            rpc_url: None,
            endpoints,
            ..
        } => (Observation::RpcUrlSecretNotSupported, endpoints),
        Registry::Found {
            rpc_url: Some(rpc_url),
            address,
            admin,
            endpoints,
        } => (
            status::read_registry(ctx, &rpc_url, address, admin).await,
            endpoints,
        ),
    })
}
