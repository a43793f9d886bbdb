//! The SmartContractService controller: dereference → validate → build (pure)
//! → apply → status, wrapped in a finalizer that retires the contract on chain.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod error;
pub mod pod_failure;
pub mod retire;
pub mod status;
pub mod validate;

use crate::{
    api::{AccessPolicy, SmartContractService, SmartContractServiceStatus},
    context::{Context, FIELD_MANAGER, ObjectKey, scoped_api},
    reconcile::{
        Computed, Invalid, finalizers, publish, report_malformed, status::ReconciledKind,
        write_status,
    },
};
use error::Error;
use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::ListParams,
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::EventType,
        reflector, watcher,
    },
};
use std::{future::Future, sync::Arc, time::Duration};
use tracing::{debug, info, warn};

pub const KIND: &str = <SmartContractService as ReconciledKind>::KIND;
/// Held until the contract is retired on chain.
pub const FINALIZER: &str = "kontrakt.dev/retire";
/// `"true"` on a SmartContractService skips retiring on delete (e.g. the chain is gone for good).
pub const SKIP_RETIRE_ANNOTATION: &str = "kontrakt.dev/skip-retire";
/// Reconciles running at once. The apiserver, not this number, bounds a burst
/// (scale bench, 1,000 services: the same 27-28 s at 8, 12 and 32); fewer in
/// flight hold less memory (peak RSS 4.4 MiB lower at 12 than at 32, 0.6 MiB
/// more at 8), more keep passes going while some wait on a slow chain RPC.
const RECONCILE_CONCURRENCY: u16 = 12;
/// A spec whose referenced Secret or ConfigMap is missing is looked at again
/// this rarely (those objects are not watched); other invalid specs wait for a change.
const MISSING_REFERENCE_REQUEUE: Duration = Duration::from_secs(120);

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let ns = ctx.settings.watch_namespace.as_deref();
    let managed =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    // What the operator owns, cached from watches: a pass reads applied hashes
    // and Deployment readiness from here instead of asking the apiserver.
    let (owned, deployments, feeds) = apply::Owned::watch(&client, ns, &managed);
    let feeds = tokio::spawn(feeds);
    owned.wait_until_ready().await;

    // DeserializeGuard: one malformed object is reported, not a stalled watch.
    let (services, writer) = reflector::store();
    let service_events = watcher(
        scoped_api(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(crate::reconcile::apply::slim)
    .reflect(writer)
    .applied_objects()
    // Status-only changes (our own status writes) need no pass.
    .predicate_filter(pass_due, Default::default());
    // A policy's participants go into its registry service's sidecar config;
    // its registry's address into the config of every service referencing it.
    let (policies, writer) = reflector::store();
    let policy_events = watcher(scoped_api::<AccessPolicy>(&client, ns), Default::default())
        .default_backoff()
        .modify(crate::reconcile::apply::slim)
        .reflect(writer)
        .touched_objects()
        .predicate_filter(
            |p: &AccessPolicy| pass_due_meta(p.meta()),
            Default::default(),
        );
    let caches = Caches {
        owned,
        services: services.clone(),
        policies,
    };
    let reconciler = Arc::new(Reconciler { ctx, caches });
    let by_policy = services.clone();
    Controller::for_stream(service_events, services)
        .owns_stream(deployments)
        .watches_stream(policy_events, move |policy: AccessPolicy| {
            let namespace = policy.namespace().unwrap_or_default();
            let name = policy.name_any();
            let registry = policy.spec.registry.name.clone();
            by_policy
                .state()
                .into_iter()
                .filter_map(|g| g.0.as_ref().ok().cloned())
                .filter(|scs| {
                    scs.namespace().as_deref() == Some(&namespace)
                        && (scs.name_any() == registry
                            || scs
                                .spec
                                .access_policy_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name))
                })
                .map(|scs| reflector::ObjectRef::from_obj(&scs).erase())
                .map(|r| reflector::ObjectRef::new(&r.name).within(&namespace))
                .collect::<Vec<_>>()
        })
        // Unbounded, a burst of new objects runs every reconcile at once and the
        // apiserver answers with timeouts (measured: 442 of 1,000 Service applies).
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, reconciler)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    feeds.abort();
}

/// What makes a pass due: the spec (generation), the annotations
/// (skip-retire) or deletion — not a status change, nor the finalizer this
/// pass added itself (a removed finalizer is put back by the next resync).
fn pass_due(guard: &DeserializeGuard<SmartContractService>) -> Option<u64> {
    pass_due_meta(guard.meta())
}

fn pass_due_meta(meta: &kube::api::ObjectMeta) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        meta.generation,
        &meta.annotations,
        meta.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// The controller's shared state: the operator-wide context and its watch caches.
struct Reconciler {
    ctx: Arc<Context>,
    caches: Caches,
}

/// What the controller's watches hold.
pub(crate) struct Caches {
    pub owned: apply::Owned,
    pub services: reflector::Store<DeserializeGuard<SmartContractService>>,
    pub policies: reflector::Store<AccessPolicy>,
}

async fn reconcile(
    guard: Arc<DeserializeGuard<SmartContractService>>,
    reconciler: Arc<Reconciler>,
) -> Result<Action, Error> {
    let ctx = &reconciler.ctx;
    let scs = match &guard.0 {
        Ok(scs) => scs,
        Err(_) => {
            // Cannot be reconciled until someone fixes it; say so once per change.
            report_malformed(ctx, &guard).await;
            return Ok(Action::await_change());
        }
    };
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<SmartContractService> =
        Api::namespaced(ctx.client.clone(), &scs.namespace().unwrap_or_default());
    if scs.meta().deletion_timestamp.is_some() {
        if !scs.finalizers().iter().any(|f| f == FINALIZER) {
            ctx.forget_object(&ObjectKey::of(scs));
            return Ok(Action::await_change());
        }
        let action = retire::cleanup(scs, ctx).await?;
        finalizers::remove(&api, scs, FINALIZER).await?;
        ctx.forget_object(&ObjectKey::of(scs));
        return Ok(action);
    }
    // The finalizer goes on in the same pass as the first apply, concurrently
    // (not in a pass of its own): a queue wait and a round trip less per new
    // object. Owned objects applied before it are garbage-collected anyway.
    let add_finalizer = async {
        if scs.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        finalizers::add(&api, scs, FINALIZER).await?;
        Ok::<_, Error>(())
    };
    let (added, action) = tokio::join!(
        add_finalizer,
        reconcile_service(scs, ctx, Some(&reconciler.caches))
    );
    added?;
    action
}

fn error_policy(
    guard: Arc<DeserializeGuard<SmartContractService>>,
    error: &Error,
    reconciler: Arc<Reconciler>,
) -> Action {
    let ctx = &reconciler.ctx;
    ctx.metrics.failure(KIND, error.reason());
    let Ok(scs) = &guard.0 else {
        return Action::await_change();
    };
    let delay = ctx.backoff.next(&ObjectKey::of(scs));
    warn!(object = %ObjectKey::of(scs), error = %error, retry_in_s = delay.as_secs(), "reconcile failed; retrying");
    Action::requeue(delay)
}

/// One pass over a live object: read references, validate, build, apply, observe, report.
async fn reconcile_service(
    scs: &SmartContractService,
    ctx: &Context,
    caches: Option<&Caches>,
) -> Result<Action, Error> {
    let owned = caches.map(|c| &c.owned);
    let namespace = scs.namespace().unwrap_or_default();
    let client = &ctx.client;

    let found = dereference::dereference(scs, ctx, caches).await?;
    let refs = found.references(scs);
    let plan = match validate::validate(scs, &refs) {
        Ok(plan) => plan,
        Err(invalid) => return report_invalid(scs, ctx, &invalid).await,
    };

    let children = build::build(scs, &plan, &ctx.settings.sidecar_image);
    let owner = ObjectKey::of(scs);
    let written = apply::apply(client, &namespace, children, owned, (&ctx.applied, &owner)).await?;
    if written > 0 {
        info!(object = %ObjectKey::of(scs), written, "applied owned objects");
        publish(
            ctx,
            &scs.object_ref(&()),
            EventType::Normal,
            "Applied",
            &format!("applied {written} owned object(s)"),
        )
        .await;
    }

    let deployment = match owned.and_then(|o| o.deployment(&namespace, &plan.name)) {
        // The watch's copy; a Deployment written in this pass has no status yet
        // anyway, and its status changes come back as watch events.
        Some(cached) => cached,
        // No cache, or not synced yet (the first passes after a start).
        None => {
            Api::<Deployment>::namespaced(client.clone(), &namespace)
                .get_opt(&plan.name)
                .await?
        }
    };
    // A cached Deployment not (yet) available is read again from the apiserver before it
    // is reported: a watch cache can lag (seen in CI: a service left SidecarNotAvailable
    // for minutes while its Deployment was available), and only passes of services that
    // are not Ready pay for the GET, so the periodic pass always ends on the truth.
    let deployment = match deployment {
        Some(d) if owned.is_some() && !fully_available(&d) => {
            Api::<Deployment>::namespaced(client.clone(), &namespace)
                .get_opt(&plan.name)
                .await?
        }
        d => d,
    };
    let chain = status::observe_chain(&plan, &ctx.chains, ctx.settings.chain_timeout).await;
    let mut outcome = status::compute(scs, &plan, deployment.as_ref(), &chain);
    if !outcome.ready && scs.spec.replicas > 0 {
        // Only while not Ready: one list of the service's pods, to name a
        // container the kubelet cannot run (the Deployment only says "unavailable").
        // Best effort: without it the condition is still right, only less specific.
        let selector = format!("{}={}", build::SERVICE_LABEL, plan.name);
        match Api::<Pod>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(pods) => {
                if let Some(trouble) = pod_failure::find(&pods.items) {
                    outcome.name_pod_failure(&trouble);
                }
            }
            Err(e) => {
                debug!(object = %ObjectKey::of(scs), error = %e, "cannot list the service's pods")
            }
        }
    }
    write_service_status(scs, ctx, outcome.status, &outcome.conditions).await?;

    Ok(if outcome.chain_unreachable {
        Action::requeue(ctx.backoff.next(&ObjectKey::of(scs)))
    } else if outcome.ready {
        ctx.forget(&ObjectKey::of(scs));
        Action::requeue(ctx.settings.resync)
    } else {
        ctx.backoff.reset(&ObjectKey::of(scs));
        Action::requeue(ctx.progress.next_in(
            &ObjectKey::of(scs),
            scs.metadata.generation.unwrap_or_default(),
        ))
    })
}

/// Every wanted replica of `d` is available.
fn fully_available(d: &Deployment) -> bool {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    available >= wanted
}

async fn report_invalid(
    scs: &SmartContractService,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Action, Error> {
    ctx.metrics.failure(KIND, invalid.reason.as_str());
    let (status, conditions) = status::invalid(scs, invalid);
    write_service_status(scs, ctx, status, &conditions).await?;
    Ok(if invalid.reason.is_missing_reference() {
        Action::requeue(MISSING_REFERENCE_REQUEUE)
    } else {
        Action::await_change()
    })
}

/// Writes the status (see [`write_status`]) and, when it did, one Event per kind of oracle
/// request that failed or expired since the status it replaced.
async fn write_service_status(
    scs: &SmartContractService,
    ctx: &Context,
    status: SmartContractServiceStatus,
    computed: &[Computed],
) -> Result<(), Error> {
    let after = status.oracle.clone();
    let Some(old) = write_status(scs, ctx, status, computed).await? else {
        return Ok(());
    };
    // Oracle requests that failed or expired since the last status: one Event
    // per kind and pass, with the counts (the requests themselves are on chain).
    let before = old.oracle.unwrap_or_default();
    if let Some(after) = after {
        for (reason, then, now, what) in [
            (
                "OracleRequestsFailed",
                before.failed,
                after.failed,
                "answered with an error",
            ),
            (
                "OracleRequestsExpired",
                before.expired,
                after.expired,
                "expired unanswered",
            ),
        ] {
            if now > then {
                let note = format!(
                    "{} more oracle request(s) {what} ({now} in all)",
                    now - then
                );
                publish(ctx, &scs.object_ref(&()), EventType::Warning, reason, &note).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod call_sequence_tests;
