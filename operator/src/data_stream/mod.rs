//! The DataStream controller: dereference (seller service, its signer, the
//! policy's registry) → validate (pure) → build the publisher (pure) → apply
//! → status from the chain (the stream on the DataMarket, anchored batches,
//! subscribers, revenue). The publisher sidecar registers the stream and
//! anchors batches with the seller's key; the operator only reads the chain.

pub mod build;
pub mod dereference;
pub mod status;
pub mod validate;

use crate::{
    api::{DataStream, DataStreamStatus, SmartContractService},
    context::{Context, ObjectKey, naming_service},
    reconcile::{
        Computed, Invalid, apply::apply_one, report_malformed, status::ReconciledKind, write_status,
    },
};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Resource, ResourceExt,
    api::PartialObjectMeta,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::{self, Action},
        watcher,
    },
};
use std::{future::Future, sync::Arc, time::Duration};
use tracing::{debug, info, warn};

pub const KIND: &str = <DataStream as ReconciledKind>::KIND;
const CONCURRENCY: u16 = 8;
/// Missing references are looked at again this rarely (the seller's creation also triggers a pass).
const MISSING_REFERENCE_REQUEUE: Duration = Duration::from_secs(120);

/// Why a pass failed (transient: retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    // DeserializeGuard: one malformed object is reported, not a stalled watch.
    let streams: Api<DeserializeGuard<DataStream>> = ctx.watched_api();
    let deployments: Api<Deployment> = ctx.watched_api();
    let services: Api<PartialObjectMeta<SmartContractService>> = ctx.watched_api();
    let controller = Controller::new(streams, watcher::Config::default().any_semantic());
    let store = controller.store();
    controller
        .owns(
            deployments,
            watcher::Config::default().labels("app.kubernetes.io/component=stream-publisher"),
        )
        // The seller service's signer and chain are the publisher's (its name
        // finds the streams: a metadata-only watch).
        .watches(
            services,
            Default::default(),
            naming_service(store, |g: &DeserializeGuard<DataStream>| {
                g.0.as_ref().ok().map(|d| d.spec.seller.name.as_str())
            }),
        )
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "data stream pass failed");
            }
        })
        .await;
}

fn error_policy(
    guard: Arc<DeserializeGuard<DataStream>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.failure(KIND, "KubeApiError");
    let Ok(ds) = &guard.0 else {
        return Action::await_change();
    };
    let delay = ctx.backoff.next(&ObjectKey::of(ds));
    warn!(object = %ObjectKey::of(ds), error = %error, retry_in_s = delay.as_secs(), "data stream pass failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(
    guard: Arc<DeserializeGuard<DataStream>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Ok(ds) = &guard.0 else {
        report_malformed(&ctx, &guard).await;
        return Ok(Action::await_change());
    };
    let _timer = ctx.metrics.reconcile(KIND);
    if ds.meta().deletion_timestamp.is_some() {
        // Nothing to undo: the stream stays on the market (its invoices and
        // roots are history); garbage collection removes the publisher.
        ctx.forget_object(&ObjectKey::of(ds));
        return Ok(Action::await_change());
    }
    let namespace = ds.namespace().unwrap_or_default();
    let found = dereference::dereference(ds, &ctx).await?;
    let refs = found.references();
    let plan = match validate::validate(ds, refs) {
        Ok(plan) => plan,
        Err(invalid) => return report_invalid(ds, &ctx, &invalid).await,
    };
    let children = build::build(ds, &plan, &ctx.settings.sidecar_image);
    let owner = ObjectKey::of(ds);
    let applied = (&*ctx.applied, &owner);
    let mut written = 0;
    if let Some(claim) = children.log_claim {
        written += usize::from(apply_one(&ctx.client, &namespace, claim, None, applied).await?);
    }
    for applied in [
        apply_one(&ctx.client, &namespace, children.config_map, None, applied).await?,
        apply_one(&ctx.client, &namespace, children.service, None, applied).await?,
        apply_one(&ctx.client, &namespace, children.deployment, None, applied).await?,
    ] {
        written += usize::from(applied);
    }
    if written > 0 {
        info!(object = %ObjectKey::of(ds), written, "applied publisher objects");
    }
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&build::publisher_name(&ds.name_any()))
        .await?;
    let seller_address = found.seller_address().unwrap_or_default();
    let observation = status::observe(
        &ctx,
        &plan.config.chain.rpc_url,
        plan.config.market(),
        seller_address,
        plan.config.stream.key(),
    )
    .await;
    let outcome = status::compute(ds, deployment.as_ref(), &observation);
    write_status(ds, &ctx, outcome.status, &outcome.conditions).await?;
    Ok(
        if matches!(observation, status::Observation::Unreachable(_)) {
            Action::requeue(ctx.backoff.next(&ObjectKey::of(ds)))
        } else if outcome.ready {
            ctx.forget(&ObjectKey::of(ds));
            // Often enough to notice a silent source (nothing else wakes us then).
            let silence = Duration::from_secs(status::silence_after(ds) / 2);
            Action::requeue(ctx.settings.resync.min(silence.max(Duration::from_secs(5))))
        } else {
            Action::requeue(ctx.progress.next_in(
                &ObjectKey::of(ds),
                ds.metadata.generation.unwrap_or_default(),
            ))
        },
    )
}

async fn report_invalid(
    ds: &DataStream,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Action, Error> {
    ctx.metrics.failure(KIND, invalid.reason.as_str());
    let status = DataStreamStatus {
        observed_generation: ds.metadata.generation,
        ..ds.status.clone().unwrap_or_default()
    };
    let ready = Computed {
        type_: crate::api::condition::READY,
        status: false,
        reason: invalid.reason.as_str(),
        message: invalid.message.clone(),
    };
    write_status(ds, ctx, status, &[ready]).await?;
    Ok(if invalid.reason.is_missing_reference() {
        Action::requeue(MISSING_REFERENCE_REQUEUE)
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests;
