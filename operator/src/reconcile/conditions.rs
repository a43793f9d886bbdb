//! Conditions: what a pass computes, and how it is merged into the stored list (a
//! condition's `lastTransitionTime` moves only when its status does).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as computed this pass (times are filled in by [`merge_conditions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The status conditions to write: computed ones, keeping `lastTransitionTime`
/// of those whose status did not change (so an unchanged pass writes nothing).
pub fn merge_conditions(
    old: &[Condition],
    computed: &[Computed],
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    computed
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let previous = old.iter().find(|o| o.type_ == c.type_);
            let since = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: c.type_.into(),
                status: status.into(),
                reason: c.reason.into(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}
