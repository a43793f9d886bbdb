//! Events: one shared recorder, published in the background; one Event per condition
//! that changed; one for an object that cannot be read as its kind.

use super::conditions::Computed;
use super::status::ReconciledKind;
use crate::context::Context;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::DeserializeGuard;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

/// Publishes an Event in the background: recording one never delays or
/// fails a reconcile (under load an Event write takes as long as any other
/// apiserver call, and a pass would otherwise wait for it).
pub async fn publish(
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
    let (recorder, reference, reason, writes) = (
        ctx.recorder.clone(),
        reference.clone(),
        reason.to_owned(),
        ctx.event_writes.clone(),
    );
    tokio::spawn(async move {
        // Never closed: the permit only bounds the writes in flight.
        let _permit = writes.acquire_owned().await;
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, reason, "could not publish event");
        }
    });
}

/// One Event for every condition whose status or reason changed from `old`;
/// a condition repeating another's reason and message (Ready often repeats
/// the condition that holds it back) is said once.
pub async fn publish_transitions(
    ctx: &Context,
    reference: &ObjectReference,
    old: &[Condition],
    computed: &[Computed],
) {
    let mut published: Vec<(&str, &str)> = Vec::new();
    for c in computed {
        let before = old.iter().find(|o| o.type_ == c.type_);
        let changed =
            before.is_none_or(|b| (b.status == "True") != c.status || b.reason != c.reason);
        let repeated = published.contains(&(c.reason, c.message.as_str()));
        if changed && !repeated {
            published.push((c.reason, c.message.as_str()));
            let type_ = if c.status {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish(ctx, reference, type_, c.reason, &c.message).await;
        }
    }
}

/// Reports an object that does not deserialize as its kind (a Warning Event and a failure
/// metric) instead of stalling the watch; it waits for someone to fix it.
pub async fn report_malformed<K: ReconciledKind>(ctx: &Context, guard: &DeserializeGuard<K>) {
    let Err(malformed) = &guard.0 else {
        return;
    };
    let kind = K::KIND;
    warn!(kind, name = ?malformed.metadata.name, namespace = ?malformed.metadata.namespace, error = %malformed.error, "malformed object");
    ctx.metrics.failure(kind, "MalformedObject");
    let reference = ObjectReference {
        api_version: Some(K::api_version(&()).into()),
        kind: Some(kind.into()),
        name: malformed.metadata.name.clone(),
        namespace: malformed.metadata.namespace.clone(),
        uid: malformed.metadata.uid.clone(),
        ..Default::default()
    };
    publish(
        ctx,
        &reference,
        EventType::Warning,
        "MalformedObject",
        &malformed.error,
    )
    .await;
}
