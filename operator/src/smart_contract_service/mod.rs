//! The SmartContractService controller: validate → build (pure) → apply →
//! status, wrapped in a finalizer that retires the contract on chain.

pub mod apply;
pub mod build;
pub mod error;
pub mod retire;
pub mod status;
pub mod validate;

use crate::{
    api::{SmartContractService, SmartContractServiceStatus},
    context::{Context, FIELD_MANAGER},
};
use error::{Error, Invalid};
use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, ObjectReference, Secret},
    },
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::{self, Action},
        events::{Event, EventType},
        finalizer::{self, finalizer},
        watcher,
    },
};
use std::{future::Future, sync::Arc, time::Duration};
use tracing::{debug, info, warn};

pub const KIND: &str = "SmartContractService";
/// Held until the contract is retired on chain.
pub const FINALIZER: &str = "kontrakt.dev/retire";
/// `"true"` on a SmartContractService skips retiring on delete (e.g. the chain is gone for good).
pub const SKIP_RETIRE_ANNOTATION: &str = "kontrakt.dev/skip-retire";
/// Reconciles running at once.
const RECONCILE_CONCURRENCY: u16 = 32;
/// A spec whose referenced Secret or ConfigMap is missing is looked at again
/// this rarely (those objects are not watched); other invalid specs wait for a change.
const MISSING_REFERENCE_REQUEUE: Duration = Duration::from_secs(120);

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    // DeserializeGuard: one malformed object is reported, not a stalled watch.
    let (services, deployments) = match &ctx.settings.watch_namespace {
        Some(ns) => (
            Api::<DeserializeGuard<SmartContractService>>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let managed = format!("app.kubernetes.io/managed-by={FIELD_MANAGER}");
    Controller::new(services, watcher::Config::default().any_semantic())
        .owns(deployments, watcher::Config::default().labels(&managed))
        // Unbounded, a burst of new objects runs every reconcile at once and the
        // apiserver answers with timeouts (measured: 442 of 1,000 Service applies).
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

fn key(scs: &SmartContractService) -> String {
    format!("{}/{}", scs.namespace().unwrap_or_default(), scs.name_any())
}

async fn reconcile(
    guard: Arc<DeserializeGuard<SmartContractService>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let scs = match &guard.0 {
        Ok(scs) => scs,
        Err(malformed) => {
            // Cannot be reconciled until someone fixes it; say so once per change.
            warn!(name = ?malformed.metadata.name, namespace = ?malformed.metadata.namespace, error = %malformed.error, "malformed SmartContractService");
            ctx.metrics.failure(KIND, "MalformedObject");
            let reference = ObjectReference {
                api_version: Some(SmartContractService::api_version(&()).into()),
                kind: Some(KIND.into()),
                name: malformed.metadata.name.clone(),
                namespace: malformed.metadata.namespace.clone(),
                uid: malformed.metadata.uid.clone(),
                ..Default::default()
            };
            publish(
                &ctx,
                &reference,
                EventType::Warning,
                "MalformedObject",
                &malformed.error,
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<SmartContractService> =
        Api::namespaced(ctx.client.clone(), &scs.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, Arc::new(scs.clone()), |event| async {
        match event {
            finalizer::Event::Apply(scs) => reconcile_service(&scs, &ctx).await,
            finalizer::Event::Cleanup(scs) => retire::cleanup(&scs, &ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => Ok(action),
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(other) => Err(Error::Finalizer(other.to_string())),
    }
}

fn error_policy(
    guard: Arc<DeserializeGuard<SmartContractService>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.failure(KIND, error.reason());
    let Ok(scs) = &guard.0 else {
        return Action::await_change();
    };
    let delay = ctx.backoff.next(&key(scs));
    warn!(object = %key(scs), error = %error, retry_in_s = delay.as_secs(), "reconcile failed; retrying");
    Action::requeue(delay)
}

/// One pass over a live object: read references, validate, build, apply, observe, report.
async fn reconcile_service(scs: &SmartContractService, ctx: &Context) -> Result<Action, Error> {
    let namespace = scs.namespace().unwrap_or_default();
    let client = &ctx.client;

    // Dereference (the only reads of user objects; values stay in memory).
    let key_ref = &scs.spec.signer.secret_key_ref;
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(&key_ref.name)
        .await?;
    let signer_key = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&key_ref.key))
        .map(|b| b.0);
    let artifact_json = match &scs.spec.contract.artifact_ref {
        Some(r) => Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt(&r.name)
            .await?
            .and_then(|cm| cm.data)
            .and_then(|mut d| d.remove(&r.key)),
        None => None,
    };
    let refs = validate::References {
        signer_key: signer_key.as_deref(),
        artifact_json: artifact_json.as_deref(),
    };

    let plan = match validate::validate(scs, &refs) {
        Ok(plan) => plan,
        Err(invalid) => return report_invalid(scs, ctx, &invalid).await,
    };

    let children = build::build(scs, &plan, &ctx.settings.sidecar_image);
    let written = apply::apply(client, &namespace, children).await?;
    if written > 0 {
        info!(object = %key(scs), written, "applied owned objects");
        publish(
            ctx,
            &scs.object_ref(&()),
            EventType::Normal,
            "Applied",
            &format!("applied {written} owned object(s)"),
        )
        .await;
    }

    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get_opt(&plan.name)
        .await?;
    let chain = status::observe_chain(&plan, ctx.settings.chain_timeout).await;
    let outcome = status::compute(scs, &plan, deployment.as_ref(), &chain);
    write_status(scs, ctx, outcome.status, &outcome.conditions).await?;

    Ok(if outcome.chain_unreachable {
        Action::requeue(ctx.backoff.next(&key(scs)))
    } else if outcome.ready {
        ctx.backoff.reset(&key(scs));
        ctx.progress.reset(&key(scs));
        Action::requeue(ctx.settings.resync)
    } else {
        ctx.backoff.reset(&key(scs));
        Action::requeue(
            ctx.progress
                .next_in(&key(scs), scs.metadata.generation.unwrap_or_default()),
        )
    })
}

async fn report_invalid(
    scs: &SmartContractService,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Action, Error> {
    ctx.metrics.failure(KIND, invalid.reason);
    let (status, conditions) = status::invalid(scs, invalid);
    write_status(scs, ctx, status, &conditions).await?;
    Ok(
        if matches!(invalid.reason, "SignerSecretNotFound" | "ArtifactNotFound") {
            Action::requeue(MISSING_REFERENCE_REQUEUE)
        } else {
            Action::await_change()
        },
    )
}

/// Writes the status if it differs from the stored one, and publishes an Event
/// for every condition whose status or reason changed. An unchanged pass writes nothing.
async fn write_status(
    scs: &SmartContractService,
    ctx: &Context,
    mut status: SmartContractServiceStatus,
    computed: &[status::Computed],
) -> Result<(), Error> {
    let old = scs.status.clone().unwrap_or_default();
    let now = Time(jiff_now());
    status.conditions =
        status::merge_conditions(&old.conditions, computed, scs.metadata.generation, now);
    if status == old {
        return Ok(());
    }
    let api: Api<SmartContractService> =
        Api::namespaced(ctx.client.clone(), &scs.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": SmartContractService::api_version(&()),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        &scs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    let mut published: Vec<(&str, &str)> = Vec::new();
    for c in computed {
        let before = old.conditions.iter().find(|o| o.type_ == c.type_);
        let changed =
            before.is_none_or(|b| (b.status == "True") != c.status || b.reason != c.reason);
        // Ready often repeats Deployed's reason and message: one Event says it.
        let repeated = published.contains(&(c.reason, c.message.as_str()));
        if changed && !repeated {
            published.push((c.reason, c.message.as_str()));
            let type_ = if c.status {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish(ctx, &scs.object_ref(&()), type_, c.reason, &c.message).await;
        }
    }
    Ok(())
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

/// Publishes an Event; failing to record one never fails the reconcile.
pub(crate) async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod call_sequence_tests;
