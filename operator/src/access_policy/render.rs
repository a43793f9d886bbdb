//! AccessPolicies → the sidecar config sections that carry them (pure).
//!
//! The registry's transactions are sent by the sidecar of the registry
//! service, never by the operator: the signer key stays in that pod, and
//! every transaction of a key goes through the sidecar's one nonce manager (an
//! operator sending with the same key would race its deploys and oracle
//! fulfilments for nonces). So the operator only renders the desired
//! membership into that sidecar's config and reads the chain back for status.

use crate::api::{AccessPolicy, ApprovalMode, ParticipantApproval, Role};
use alloy::primitives::Address;
use kontrakt_protocol::config::{
    self, AccessConfig, AccessRule, ApiOperation, EnrollmentConfig, OracleApproval,
    ParticipantState,
};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The on-chain role of an API role.
pub fn role(role: Role) -> config::Role {
    match role {
        Role::Validator => config::Role::Validator,
        Role::Node => config::Role::Node,
        Role::Publisher => config::Role::Publisher,
        Role::Subscriber => config::Role::Subscriber,
        Role::Oracle => config::Role::Oracle,
    }
}

/// The API role of an on-chain role.
pub fn api_role(role: config::Role) -> Role {
    match role {
        config::Role::Validator => Role::Validator,
        config::Role::Node => Role::Node,
        config::Role::Publisher => Role::Publisher,
        config::Role::Subscriber => Role::Subscriber,
        config::Role::Oracle => Role::Oracle,
    }
}

/// One participant as the registry should hold it, and the policy that lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub participant: config::Participant,
    /// `name` of the participant in its policy, and the policy's name.
    pub name: String,
    pub policy: String,
}

/// The membership the registry of `admin` should hold: every participant of
/// every live policy naming it (sorted by address). An address listed twice is
/// taken from the policy first by name; the admin itself is never listed (it
/// holds every role and can never be revoked).
pub fn desired_members(policies: &[&AccessPolicy], admin: Address) -> Vec<Desired> {
    let mut sorted: Vec<&AccessPolicy> = policies
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    sorted.sort_by_key(|p| p.name_any());
    let mut members: BTreeMap<Address, Desired> = BTreeMap::new();
    for policy in sorted {
        let policy_expiry = policy.spec.expires_at.as_ref().map(unix_seconds);
        for p in &policy.spec.participants {
            let Ok(address) = p.address.parse::<Address>() else {
                continue; // refused at admission; never rendered
            };
            if address == admin || members.contains_key(&address) {
                continue;
            }
            let expiry = match (p.expires_at.as_ref().map(unix_seconds), policy_expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            members.insert(
                address,
                Desired {
                    participant: config::Participant {
                        address,
                        role: role(p.role),
                        state: match p.approval {
                            ParticipantApproval::Approved => ParticipantState::Enrolled,
                            ParticipantApproval::Pending => ParticipantState::Pending,
                            ParticipantApproval::Suspended => ParticipantState::Suspended,
                        },
                        expires_at: expiry,
                    },
                    name: p.name.clone(),
                    policy: policy.name_any(),
                },
            );
        }
    }
    members.into_values().collect()
}

/// The `enrollment:` section of the registry service's sidecar (None when no
/// policy names it). `endpoints` are the names of the registry service's oracle
/// endpoints (an identity endpoint must be one of them).
pub fn enrollment(
    policies: &[&AccessPolicy],
    admin: Address,
    endpoints: &[&str],
) -> Option<EnrollmentConfig> {
    // A policy being deleted still needs its registry's sidecar to revoke what
    // it enrolled: the section stays (without its participants) while any
    // policy, live or being deleted, names the registry.
    (!policies.is_empty()).then(|| EnrollmentConfig {
        participants: desired_members(policies, admin)
            .into_iter()
            .map(|d| d.participant)
            .collect(),
        approval: approval(policies, endpoints).config,
    })
}

/// The identity endpoint's answer window when the policy names none.
pub const DEFAULT_APPROVAL_WINDOW: u32 = 3_600;

/// Why a policy's `approval: Oracle` is not what its registry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRefused {
    pub reason: &'static str,
    pub message: String,
}

/// The one approval setting of a registry, from the policies naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalPlan {
    /// What the registry's sidecar turns on (None: listing only).
    pub config: Option<OracleApproval>,
    /// Policy name → why its Oracle approval is not applied.
    pub refused: BTreeMap<String, ApprovalRefused>,
}

/// The approval an Oracle policy asks its registry for.
pub fn wanted_approval(policy: &AccessPolicy) -> OracleApproval {
    let approval = &policy.spec.approval;
    OracleApproval {
        endpoint: approval.identity_endpoint.clone().unwrap_or_default(),
        window_seconds: approval
            .window_seconds
            .and_then(|w| u32::try_from(w).ok())
            .unwrap_or(DEFAULT_APPROVAL_WINDOW),
    }
}

/// A registry verifies join requests in one way: the first live policy by name
/// asking for `approval: Oracle` with an identity endpoint the registry service
/// has decides it; other Oracle policies asking for the same are served, those
/// asking for another endpoint or window are refused (reported on them, never
/// applied). Manual policies add nothing: their listing works either way.
pub fn approval(policies: &[&AccessPolicy], endpoints: &[&str]) -> ApprovalPlan {
    let mut sorted: Vec<&AccessPolicy> = policies
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.spec.approval.mode == ApprovalMode::Oracle)
        .collect();
    sorted.sort_by_key(|p| p.name_any());
    let mut plan = ApprovalPlan::default();
    let mut decided_by: Option<String> = None;
    for policy in sorted {
        let wanted = wanted_approval(policy);
        let endpoint = wanted.endpoint.clone();
        let registry = &policy.spec.registry.name;
        let refused = if !endpoints.contains(&endpoint.as_str()) {
            Some(ApprovalRefused {
                reason: "IdentityEndpointNotFound",
                message: format!(
                    "the registry SmartContractService {registry:?} has no oracle endpoint {endpoint:?} (it has {endpoints:?}): join requests stay pending until the policy lists them"
                ),
            })
        } else {
            match (&plan.config, &decided_by) {
                (Some(current), Some(by)) if *current != wanted => Some(ApprovalRefused {
                    reason: "ApprovalConflict",
                    message: format!(
                        "policy {by:?} already has the registry {registry:?} verify join requests through endpoint {:?} within {}s; a registry has one approval setting",
                        current.endpoint, current.window_seconds
                    ),
                }),
                _ => None,
            }
        };
        match refused {
            Some(r) => {
                plan.refused.insert(policy.name_any(), r);
            }
            None if plan.config.is_none() => {
                plan.config = Some(wanted);
                decided_by = Some(policy.name_any());
            }
            None => {}
        }
    }
    plan
}

/// The `access:` section of a service that references `policy`: its rules
/// whose operation is a sidecar API operation (`read`, `events`, `call`).
/// Rules naming contract functions are enforced by the contract's own
/// `onlyEnrolled` modifiers, not by the sidecar.
pub fn access(policy: &AccessPolicy) -> AccessConfig {
    AccessConfig {
        rules: policy
            .spec
            .rules
            .iter()
            .filter_map(|r| {
                let operation = match r.operation.as_str() {
                    "read" => ApiOperation::Read,
                    "events" => ApiOperation::Events,
                    "call" => ApiOperation::Call,
                    _ => return None,
                };
                Some(AccessRule {
                    operation,
                    roles: r.roles.iter().map(|x| role(*x)).collect(),
                })
            })
            .collect(),
    }
}

fn unix_seconds(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> u64 {
    u64::try_from(t.0.as_second()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccessPolicySpec, AccessRule as Rule, Participant};

    const ADMIN: Address = Address::repeat_byte(0xad);

    fn policy(name: &str, participants: &[(&str, &str, Role)]) -> AccessPolicy {
        let mut p = AccessPolicy::new(
            name,
            AccessPolicySpec {
                registry: crate::api::LocalObjectRef {
                    name: "registry".into(),
                },
                approval: Default::default(),
                participants: participants
                    .iter()
                    .map(|(n, a, r)| Participant {
                        name: (*n).into(),
                        address: (*a).into(),
                        role: *r,
                        approval: Default::default(),
                        expires_at: None,
                    })
                    .collect(),
                rules: vec![],
                expires_at: None,
            },
        );
        p.metadata.namespace = Some("supply".into());
        p
    }

    const A: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const B: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

    #[test]
    fn policies_are_merged_by_address_first_policy_wins() {
        let one = policy("a-policy", &[("supplier", A, Role::Node)]);
        let two = policy(
            "b-policy",
            &[("dup", A, Role::Oracle), ("maker", B, Role::Publisher)],
        );
        let members = desired_members(&[&two, &one], ADMIN);
        assert_eq!(members.len(), 2);
        let a = members
            .iter()
            .find(|d| d.participant.address == A.parse::<Address>().unwrap())
            .unwrap();
        assert_eq!(
            (a.policy.as_str(), a.participant.role),
            ("a-policy", config::Role::Node)
        );
    }

    #[test]
    fn the_admin_is_never_rendered_and_a_deleted_policy_keeps_an_empty_section() {
        let admin = format!("{ADMIN:#x}");
        let p = policy("p", &[("admin", &admin, Role::Node)]);
        assert_eq!(desired_members(&[&p], ADMIN), vec![]);
        let mut gone = policy("gone", &[("supplier", A, Role::Node)]);
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let section = enrollment(&[&gone], ADMIN, &[]).expect("kept while the policy is deleted");
        assert!(
            section.participants.is_empty(),
            "its participants are revoked"
        );
        assert_eq!(enrollment(&[], ADMIN, &[]), None);
    }

    fn oracle(name: &str, endpoint: &str, window: Option<i32>) -> AccessPolicy {
        let mut p = policy(name, &[]);
        p.spec.approval.mode = ApprovalMode::Oracle;
        p.spec.approval.identity_endpoint = Some(endpoint.into());
        p.spec.approval.window_seconds = window;
        p
    }

    #[test]
    fn one_approval_per_registry_the_first_oracle_policy_by_name_decides() {
        let manual = policy("a-manual", &[]);
        let b = oracle("b-idp", "IdentityCheck", None);
        let c_same = oracle("c-same", "IdentityCheck", Some(3_600));
        let d_other = oracle("d-other", "OtherCheck", None);
        let e_missing = oracle("e-missing", "Nowhere", None);
        let endpoints = ["IdentityCheck", "OtherCheck"];
        let plan = approval(&[&e_missing, &d_other, &c_same, &b, &manual], &endpoints);
        assert_eq!(
            plan.config,
            Some(OracleApproval {
                endpoint: "IdentityCheck".into(),
                window_seconds: DEFAULT_APPROVAL_WINDOW,
            })
        );
        let reasons: Vec<(&str, &str)> = plan
            .refused
            .iter()
            .map(|(n, r)| (n.as_str(), r.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("d-other", "ApprovalConflict"),
                ("e-missing", "IdentityEndpointNotFound")
            ]
        );
        // Manual only, or the Oracle policy being deleted: listing only.
        assert_eq!(approval(&[&manual], &endpoints), ApprovalPlan::default());
        let mut gone = b.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(
            enrollment(&[&gone], ADMIN, &endpoints).unwrap().approval,
            None
        );
        assert_eq!(
            enrollment(&[&b], ADMIN, &endpoints).unwrap().approval,
            plan.config
        );
    }

    #[test]
    fn only_api_operations_become_access_rules() {
        let mut p = policy("p", &[]);
        p.spec.rules = vec![
            Rule {
                operation: "events".into(),
                roles: vec![Role::Subscriber],
            },
            Rule {
                operation: "createShipment".into(),
                roles: vec![Role::Node],
            },
        ];
        let rules = access(&p).rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].operation, ApiOperation::Events);
        assert_eq!(rules[0].roles, vec![config::Role::Subscriber]);
    }
}
