//! AccessPolicy status: the registry as read from the chain, compared with
//! the participants the policy lists. Pure except [`read_registry`].

use super::render::{self, ApprovalRefused, Desired};
use crate::api::{
    AccessPolicy, AccessPolicyStatus, ApprovalMode, ParticipantState as Listed, condition,
};

/// Condition type saying whether join requests are approved through the oracle.
pub const ORACLE_APPROVAL: &str = "OracleApproval";
use crate::context::Context;
use crate::reconcile::Computed;
use alloy::primitives::Address;
use alloy::providers::Provider;
use kontrakt_protocol::config::{self, OracleApproval, ParticipantState, Role};
use kontrakt_protocol::views::registry::{MemberStatus, read_approval, read_members};
use std::collections::{BTreeMap, BTreeSet};

/// Names listed in a condition message at most.
const NAMES_SHOWN: usize = 10;

/// One member record of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub status: MemberStatus,
    pub role: Role,
    pub expires_at: u64,
}

/// What the policy's dereference and the chain said.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    RegistryServiceNotFound,
    RegistrySignerNotFound,
    RpcUrlSecretNotSupported,
    Unreachable(String),
    RegistryNotDeployed {
        address: Address,
        admin: Address,
    },
    Registry {
        address: Address,
        admin: Address,
        members: BTreeMap<Address, Record>,
        /// The registry's oracle approval (None: listing only).
        approval: Option<OracleApproval>,
        /// Enrolled or suspended members the identity endpoint approved (not a listing).
        by_oracle: BTreeSet<Address>,
    },
}

/// Reads every member record of the registry at `address` (paged, one block).
pub async fn read_registry(
    ctx: &Context,
    rpc_url: &str,
    address: Address,
    admin: Address,
) -> Observation {
    let provider = match ctx.chains.get(rpc_url) {
        Ok(p) => p,
        Err(e) => return Observation::Unreachable(e),
    };
    let read = async {
        let block = provider
            .get_block_number()
            .await
            .map_err(|e| e.to_string())?;
        let at = alloy::eips::BlockId::number(block);
        let code = provider
            .get_code_at(address)
            .block_id(at)
            .await
            .map_err(|e| e.to_string())?;
        if code.is_empty() {
            return Ok(Observation::RegistryNotDeployed { address, admin });
        }
        // The sidecar's rule: every page at one block, and which enrolled or suspended
        // accounts the oracle approved.
        let records = read_members(&provider, address, at)
            .await
            .map_err(|e| e.to_string())?;
        let approval = read_approval(&provider, address, at)
            .await
            .map_err(|e| e.to_string())?;
        let by_oracle = records
            .iter()
            .filter(|r| r.via_oracle)
            .map(|r| r.address)
            .collect();
        let members = records
            .into_iter()
            .map(|r| {
                let record = Record {
                    status: r.status,
                    role: r.role,
                    expires_at: r.expires_at,
                };
                (r.address, record)
            })
            .collect();
        Ok::<_, String>(Observation::Registry {
            address,
            admin,
            members,
            approval,
            by_oracle,
        })
    };
    // Paging a large registry takes several calls: allow one timeout per page.
    let limit = ctx.settings.chain_timeout * 4;
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observation::Unreachable(e),
        Err(_) => Observation::Unreachable(format!("no answer within {}s", limit.as_secs())),
    }
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Synced,
    Waiting,
    Unreachable,
    MissingReference,
    OnChange,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: AccessPolicyStatus,
    pub conditions: Vec<Computed>,
    pub requeue: Requeue,
}

/// Whether the chain holds `desired` as listed.
pub fn in_sync(desired: &config::Participant, record: Option<&Record>) -> bool {
    let status = record.map_or(MemberStatus::None, |r| r.status);
    let role_ok = record.is_some_and(|r| r.role == desired.role);
    let expiry_ok = record.is_some_and(|r| r.expires_at == desired.expires_at.unwrap_or(0));
    match desired.state {
        ParticipantState::Enrolled => status == MemberStatus::Enrolled && role_ok && expiry_ok,
        ParticipantState::Pending => {
            matches!(
                status,
                MemberStatus::None | MemberStatus::Pending | MemberStatus::Rejected
            )
        }
        ParticipantState::Suspended => status == MemberStatus::Suspended && role_ok,
    }
}

fn state_name(record: Option<&Record>) -> &'static str {
    match record.map(|r| r.status) {
        None | Some(MemberStatus::None) => "not a member",
        Some(MemberStatus::Pending) => "pending",
        Some(MemberStatus::Enrolled) => "enrolled",
        Some(MemberStatus::Suspended) => "suspended",
        Some(MemberStatus::Revoked) => "revoked",
        Some(MemberStatus::Rejected) => "rejected",
    }
}

fn ready_from(c: &Computed) -> Computed {
    Computed {
        type_: condition::READY,
        status: c.status,
        reason: c.reason,
        message: c.message.clone(),
    }
}

/// The status of `policy` from what was observed. Pure. `refused`: why the
/// policy's `approval: Oracle` is not applied to its registry (see
/// [`render::approval`]).
pub fn compute(
    policy: &AccessPolicy,
    observation: &Observation,
    refused: Option<&ApprovalRefused>,
) -> Outcome {
    let mut status = AccessPolicyStatus {
        observed_generation: policy.metadata.generation,
        ..Default::default()
    };
    let synced = |ok, reason, message: String| Computed {
        type_: condition::SYNCED,
        status: ok,
        reason,
        message,
    };
    let registry = &policy.spec.registry.name;
    let (c, requeue) = match observation {
        Observation::RegistryServiceNotFound => (
            synced(
                false,
                "RegistryNotFound",
                format!("the registry SmartContractService {registry:?} does not exist"),
            ),
            Requeue::MissingReference,
        ),
        Observation::RegistrySignerNotFound => (
            synced(
                false,
                "RegistrySignerNotFound",
                format!(
                    "the signer Secret of the registry SmartContractService {registry:?} is missing or holds no key"
                ),
            ),
            Requeue::MissingReference,
        ),
        Observation::RpcUrlSecretNotSupported => (
            synced(
                false,
                "RpcUrlSecretNotSupported",
                format!(
                    "the registry SmartContractService {registry:?} uses chain.rpcUrlSecretRef, which is not supported yet"
                ),
            ),
            Requeue::OnChange,
        ),
        Observation::Unreachable(e) => (
            synced(
                false,
                "ChainUnreachable",
                format!("chain RPC unreachable: {e}"),
            ),
            Requeue::Unreachable,
        ),
        Observation::RegistryNotDeployed { address, admin } => match admin_listed(policy, *admin) {
            Some(c) => (c, Requeue::OnChange),
            None => (
                synced(
                    false,
                    "RegistryNotDeployed",
                    format!(
                        "no EnrollmentRegistry at {address} yet: the sidecar of {registry:?} deploys it"
                    ),
                ),
                Requeue::Waiting,
            ),
        },
        Observation::Registry {
            address,
            admin,
            members,
            by_oracle,
            ..
        } => match admin_listed(policy, *admin) {
            Some(c) => (c, Requeue::OnChange),
            None => {
                let desired = render::desired_members(&[policy], *admin);
                fill_lists(&mut status, policy, &desired, members, by_oracle);
                let behind: Vec<String> = desired
                    .iter()
                    .filter(|d| !in_sync(&d.participant, members.get(&d.participant.address)))
                    .map(|d| {
                        format!(
                            "{} (wants {:?}, chain: {})",
                            d.name,
                            d.participant.state,
                            state_name(members.get(&d.participant.address))
                        )
                    })
                    .collect();
                if behind.is_empty() {
                    (
                        synced(
                            true,
                            "InSync",
                            format!(
                                "{} participant(s) as listed in registry {address}",
                                desired.len()
                            ),
                        ),
                        Requeue::Synced,
                    )
                } else {
                    let more = behind.len().saturating_sub(NAMES_SHOWN);
                    let mut shown = behind[..behind.len().min(NAMES_SHOWN)].join(", ");
                    if more > 0 {
                        shown.push_str(&format!(" and {more} more"));
                    }
                    (
                        synced(
                            false,
                            "NotInSync",
                            format!(
                                "{} of {} participant(s) not yet as listed on chain (the sidecar of {registry:?} sends the transactions): {shown}",
                                behind.len(),
                                desired.len()
                            ),
                        ),
                        Requeue::Waiting,
                    )
                }
            }
        },
    };
    let mut ready = ready_from(&c);
    let mut requeue = requeue;
    let mut conditions = vec![c];
    if policy.spec.approval.mode == ApprovalMode::Oracle {
        let approval = oracle_approval(policy, observation, refused);
        if !approval.status && ready.status {
            // Listing works, but join requests are not verified as asked.
            ready = ready_from(&approval);
            requeue = match refused {
                Some(_) => Requeue::OnChange,
                None => Requeue::Waiting,
            };
        }
        conditions.push(approval);
    }
    conditions.push(ready);
    Outcome {
        status,
        conditions,
        requeue,
    }
}

/// `OracleApproval` of a policy with `approval: Oracle`: True once its
/// registry sends join requests to the policy's identity endpoint.
fn oracle_approval(
    policy: &AccessPolicy,
    observation: &Observation,
    refused: Option<&ApprovalRefused>,
) -> Computed {
    let not = |reason, message| Computed {
        type_: ORACLE_APPROVAL,
        status: false,
        reason,
        message,
    };
    if let Some(r) = refused {
        return not(r.reason, r.message.clone());
    }
    let wanted = render::wanted_approval(policy);
    let (endpoint, window) = (&wanted.endpoint, wanted.window_seconds);
    let registry = &policy.spec.registry.name;
    match observation {
        Observation::Registry {
            approval: Some(a),
            by_oracle,
            ..
        } if *a == wanted => Computed {
            type_: ORACLE_APPROVAL,
            status: true,
            reason: "IdentityEndpointVerifies",
            message: format!(
                "join requests are verified by endpoint {endpoint:?} (answer within {window}s); {} account(s) enrolled through it",
                by_oracle.len()
            ),
        },
        Observation::Registry { .. } | Observation::RegistryNotDeployed { .. } => not(
            "ApprovalNotApplied",
            format!(
                "the sidecar of {registry:?} has not set the registry to verify join requests through {endpoint:?} yet"
            ),
        ),
        _ => not(
            "RegistryNotRead",
            "the registry could not be read (see Synced)".into(),
        ),
    }
}

/// Listing the registry's admin is refused: it holds every role already and
/// can never be suspended or revoked.
fn admin_listed(policy: &AccessPolicy, admin: Address) -> Option<Computed> {
    let p = policy
        .spec
        .participants
        .iter()
        .find(|p| p.address.parse::<Address>().ok() == Some(admin))?;
    Some(Computed {
        type_: condition::SYNCED,
        status: false,
        reason: "AdminIsParticipant",
        message: format!(
            "participant {:?} ({admin}) is the registry's admin (the signer of {:?}): it holds every role and can never be suspended or revoked; remove it from the list",
            p.name, policy.spec.registry.name
        ),
    })
}

fn fill_lists(
    status: &mut AccessPolicyStatus,
    policy: &AccessPolicy,
    desired: &[Desired],
    members: &BTreeMap<Address, Record>,
    by_oracle: &BTreeSet<Address>,
) {
    // Accounts the identity endpoint enrolled belong to the Oracle policies.
    let oracle_policy = policy.spec.approval.mode == ApprovalMode::Oracle;
    let names: BTreeMap<Address, &str> = desired
        .iter()
        .map(|d| (d.participant.address, d.name.as_str()))
        .collect();
    let listed = |a: &Address| names.contains_key(a);
    let entry = |a: &Address, r: &Record| Listed {
        name: names.get(a).map(|n| (*n).to_owned()),
        address: a.to_checksum(None),
        role: Some(render::api_role(r.role)),
    };
    for (a, r) in members {
        match r.status {
            // Enrolled and suspended accounts of other policies on the same
            // registry are theirs to report; pending and revoked ones are
            // shown to every policy of the registry (anyone may ask to join).
            MemberStatus::Enrolled if listed(a) || (oracle_policy && by_oracle.contains(a)) => {
                status.enrolled.push(entry(a, r))
            }
            MemberStatus::Suspended if listed(a) => status.suspended.push(entry(a, r)),
            MemberStatus::Pending => status.pending.push(entry(a, r)),
            MemberStatus::Revoked => status.revoked.push(entry(a, r)),
            MemberStatus::Rejected => status.rejected.push(entry(a, r)),
            _ => {}
        }
    }
    status.enrolled_count = Some(status.enrolled.len() as i64);
    status.pending_count = Some(status.pending.len() as i64);
    status.revoked_count = Some(status.revoked.len() as i64);
}

/// On delete: whether nothing this policy enrolled (and no other live policy
/// lists) is still enrolled or suspended on chain. For an Oracle policy that
/// also covers the accounts its identity endpoint enrolled, unless another live
/// Oracle policy keeps the registry's approval on.
pub fn revocations_done(
    policy: &AccessPolicy,
    observation: &Observation,
    others: &[AccessPolicy],
) -> bool {
    let (members, by_oracle) = match observation {
        Observation::Registry {
            members, by_oracle, ..
        } => (members, by_oracle),
        // Nothing on chain, or nothing left that could revoke.
        Observation::RegistryNotDeployed { .. }
        | Observation::RegistryServiceNotFound
        | Observation::RegistrySignerNotFound => return true,
        Observation::Unreachable(_) | Observation::RpcUrlSecretNotSupported => return false,
    };
    let kept: BTreeSet<Address> = others
        .iter()
        .flat_map(|p| &p.spec.participants)
        .filter_map(|p| p.address.parse().ok())
        .collect();
    let approval_stays = others
        .iter()
        .any(|p| p.spec.approval.mode == ApprovalMode::Oracle);
    let through_oracle = (policy.spec.approval.mode == ApprovalMode::Oracle && !approval_stays)
        .then_some(by_oracle)
        .into_iter()
        .flatten()
        .copied();
    policy
        .spec
        .participants
        .iter()
        .filter_map(|p| p.address.parse::<Address>().ok())
        .chain(through_oracle)
        .filter(|a| !kept.contains(a))
        .all(|a| {
            !members.get(&a).is_some_and(|r| {
                matches!(r.status, MemberStatus::Enrolled | MemberStatus::Suspended)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccessPolicySpec, LocalObjectRef, Participant, Role};

    const ADMIN: Address = Address::repeat_byte(0xad);
    const A: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const B: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    const C: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

    fn policy(participants: &[(&str, &str)]) -> AccessPolicy {
        let mut p = AccessPolicy::new(
            "supply-chain",
            AccessPolicySpec {
                registry: LocalObjectRef {
                    name: "shipping".into(),
                },
                approval: Default::default(),
                participants: participants
                    .iter()
                    .map(|(n, a)| Participant {
                        name: (*n).into(),
                        address: (*a).into(),
                        role: Role::Node,
                        approval: Default::default(),
                        expires_at: None,
                    })
                    .collect(),
                rules: vec![],
                expires_at: None,
            },
        );
        p.metadata.namespace = Some("supply".into());
        p.metadata.generation = Some(1);
        p
    }

    fn record(status: MemberStatus) -> Record {
        Record {
            status,
            role: config::Role::Node,
            expires_at: 0,
        }
    }

    fn registry(members: &[(&str, MemberStatus)]) -> Observation {
        Observation::Registry {
            address: Address::repeat_byte(0xee),
            admin: ADMIN,
            members: members
                .iter()
                .map(|(a, s)| (a.parse().unwrap(), record(*s)))
                .collect(),
            approval: None,
            by_oracle: BTreeSet::new(),
        }
    }

    #[test]
    fn in_sync_lists_enrolled_pending_and_revoked_from_the_chain() {
        let p = policy(&[("supplier", A), ("maker", B)]);
        let out = compute(
            &p,
            &registry(&[
                (A, MemberStatus::Enrolled),
                (B, MemberStatus::Enrolled),
                (C, MemberStatus::Pending),
            ]),
            None,
        );
        assert_eq!(out.requeue, Requeue::Synced);
        assert!(
            out.conditions.iter().all(|c| c.status),
            "{:?}",
            out.conditions
        );
        assert_eq!(out.status.enrolled_count, Some(2));
        assert_eq!(out.status.pending.len(), 1);
        assert_eq!(out.status.pending[0].name, None, "an unlisted join request");
        assert!(
            out.status.enrolled[0].name.is_some(),
            "a listed participant is named"
        );
    }

    #[test]
    fn participants_behind_the_chain_are_named() {
        let p = policy(&[("supplier", A), ("maker", B)]);
        let out = compute(&p, &registry(&[(A, MemberStatus::Enrolled)]), None);
        assert_eq!(out.requeue, Requeue::Waiting);
        let synced = &out.conditions[0];
        assert_eq!((synced.status, synced.reason), (false, "NotInSync"));
        assert!(
            synced
                .message
                .contains("maker (wants Enrolled, chain: not a member)"),
            "{}",
            synced.message
        );
        assert!(!synced.message.contains("supplier"));
    }

    #[test]
    fn listing_the_admin_is_refused_with_the_reason() {
        let admin = format!("{ADMIN:#x}");
        let p = policy(&[("boss", &admin)]);
        let out = compute(&p, &registry(&[]), None);
        assert_eq!(out.requeue, Requeue::OnChange);
        assert_eq!(out.conditions[1].reason, "AdminIsParticipant");
        assert!(
            out.conditions[1]
                .message
                .contains("can never be suspended or revoked")
        );
    }

    fn oracle_policy(participants: &[(&str, &str)]) -> AccessPolicy {
        let mut p = policy(participants);
        p.spec.approval.mode = ApprovalMode::Oracle;
        p.spec.approval.identity_endpoint = Some("IdentityCheck".into());
        p
    }

    fn condition<'a>(out: &'a Outcome, type_: &str) -> &'a Computed {
        out.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn oracle_approval_is_true_once_the_registry_verifies_through_the_endpoint() {
        let p = oracle_policy(&[("supplier", A)]);
        let mut chain = registry(&[
            (A, MemberStatus::Enrolled),
            (B, MemberStatus::Enrolled),
            (C, MemberStatus::Rejected),
        ]);
        // Not applied yet: listing is in sync, Ready waits for the approval.
        let out = compute(&p, &chain, None);
        let oracle = condition(&out, ORACLE_APPROVAL);
        assert_eq!(
            (oracle.status, oracle.reason),
            (false, "ApprovalNotApplied")
        );
        assert!(condition(&out, condition::SYNCED).status);
        assert_eq!(
            condition(&out, condition::READY).reason,
            "ApprovalNotApplied"
        );
        assert_eq!(out.requeue, Requeue::Waiting);

        let Observation::Registry {
            approval,
            by_oracle,
            ..
        } = &mut chain
        else {
            unreachable!()
        };
        *approval = Some(OracleApproval {
            endpoint: "IdentityCheck".into(),
            window_seconds: render::DEFAULT_APPROVAL_WINDOW,
        });
        by_oracle.insert(B.parse().unwrap());
        let out = compute(&p, &chain, None);
        let oracle = condition(&out, ORACLE_APPROVAL);
        assert_eq!(
            (oracle.status, oracle.reason),
            (true, "IdentityEndpointVerifies")
        );
        assert!(oracle.message.contains("1 account(s) enrolled through it"));
        assert!(condition(&out, condition::READY).status);
        assert_eq!(out.requeue, Requeue::Synced);
        let enrolled: Vec<(Option<&str>, &str)> = out
            .status
            .enrolled
            .iter()
            .map(|e| (e.name.as_deref(), e.address.as_str()))
            .collect();
        assert_eq!(
            enrolled,
            vec![(None, B), (Some("supplier"), A)],
            "by address"
        );
        assert_eq!(out.status.rejected.len(), 1, "{:?}", out.status);

        // A Manual policy on the same registry does not claim the oracle's accounts.
        let manual = compute(&policy(&[("supplier", A)]), &chain, None);
        assert_eq!(manual.status.enrolled.len(), 1);
        assert!(manual.conditions.iter().all(|c| c.type_ != ORACLE_APPROVAL));

        // Refused (another policy decides the registry's approval): reported, not retried.
        let refused = ApprovalRefused {
            reason: "ApprovalConflict",
            message: "policy \"a\" already ...".into(),
        };
        let out = compute(&p, &chain, Some(&refused));
        assert_eq!(condition(&out, ORACLE_APPROVAL).reason, "ApprovalConflict");
        assert!(!condition(&out, condition::READY).status);
        assert_eq!(out.requeue, Requeue::OnChange);
    }

    #[test]
    fn deleting_the_oracle_policy_waits_for_what_its_endpoint_enrolled() {
        let p = oracle_policy(&[]);
        let mut chain = registry(&[(B, MemberStatus::Enrolled)]);
        assert!(
            revocations_done(&p, &chain, &[]),
            "nothing through the oracle"
        );
        if let Observation::Registry { by_oracle, .. } = &mut chain {
            by_oracle.insert(B.parse().unwrap());
        }
        assert!(!revocations_done(&p, &chain, &[]));
        assert!(
            revocations_done(&p, &chain, &[oracle_policy(&[])]),
            "another Oracle policy keeps the approval on"
        );
        assert!(
            !revocations_done(&p, &chain, &[policy(&[])]),
            "a Manual policy does not"
        );
    }

    #[test]
    fn a_missing_registry_service_is_reported_and_looked_at_slowly() {
        let out = compute(&policy(&[]), &Observation::RegistryServiceNotFound, None);
        assert_eq!(out.requeue, Requeue::MissingReference);
        assert_eq!(out.conditions[1].reason, "RegistryNotFound");
    }

    #[test]
    fn deletion_waits_for_revocations_except_what_other_policies_keep() {
        let p = policy(&[("supplier", A), ("maker", B)]);
        let enrolled = registry(&[(A, MemberStatus::Enrolled), (B, MemberStatus::Revoked)]);
        assert!(!revocations_done(&p, &enrolled, &[]));
        let other = policy(&[("supplier-too", A)]);
        assert!(revocations_done(&p, &enrolled, &[other]));
        assert!(revocations_done(
            &p,
            &Observation::RegistryServiceNotFound,
            &[]
        ));
        assert!(!revocations_done(
            &p,
            &Observation::Unreachable("down".into()),
            &[]
        ));
    }

    #[test]
    fn pending_listed_participants_are_in_sync_before_they_ask() {
        let d = config::Participant {
            address: A.parse().unwrap(),
            role: config::Role::Node,
            state: ParticipantState::Pending,
            expires_at: None,
        };
        assert!(in_sync(&d, None));
        assert!(in_sync(&d, Some(&record(MemberStatus::Pending))));
        assert!(in_sync(&d, Some(&record(MemberStatus::Rejected))));
        assert!(!in_sync(&d, Some(&record(MemberStatus::Enrolled))));
    }
}
