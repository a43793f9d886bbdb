//! `AccessPolicy` (`ap`): who may take part — compiled into the on-chain
//! EnrollmentRegistry and into the sidecar's API checks.

// Each `printcolumn(..)` in `#[kube(..)]` repeats `type_ = ..`; clippy reads the
// repeats as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most participants one policy may list. The case-insensitive uniqueness
/// check is O(n²) in CEL; the apiserver's cost budget refuses it above about
/// 400 items (measured: 500 is 1.4x over budget, 1000 is 5.7x). Larger
/// networks split into several policies on the same registry.
pub const MAX_PARTICIPANTS: u32 = 400;

/// A permissioned network's membership: participants, their roles, how joins
/// are approved and which roles may do what.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kontrakt.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    plural = "accesspolicies",
    singular = "accesspolicy",
    shortname = "ap",
    category = "kontrakt",
    namespaced,
    status = "AccessPolicyStatus",
    doc = "Who may take part in a permissioned contract network: participants and roles enrolled in the on-chain EnrollmentRegistry, approval of join requests, and per-operation rules.",
    printcolumn(
        name = "Registry",
        type_ = "string",
        json_path = ".spec.registry.name",
        description = "SmartContractService holding the registry"
    ),
    printcolumn(
        name = "Enrolled",
        type_ = "integer",
        json_path = ".status.enrolledCount",
        description = "Participants enrolled on chain"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingCount",
        description = "Join requests waiting for approval"
    ),
    printcolumn(
        name = "Revoked",
        type_ = "integer",
        json_path = ".status.revokedCount",
        description = "Participants revoked on chain",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// The SmartContractService whose chain holds the EnrollmentRegistry; its
    /// signer administers the registry.
    pub registry: LocalObjectRef,
    /// How join requests are approved.
    #[serde(default)]
    pub approval: Approval,
    /// Accounts enrolled by this policy. Names and addresses are unique
    /// (addresses compared case-insensitively). Removing one revokes it on chain.
    #[serde(default)]
    #[schemars(length(max = 400))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(p, self.exists_one(q, q.address.lowerAscii() == p.address.lowerAscii()))").message("participant addresses must be unique (compared case-insensitively)")
    )]
    pub participants: Vec<Participant>,
    /// Which roles may perform which contract operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["operation".into()]))]
    pub rules: Vec<AccessRule>,
    /// After this time every enrollment made by the policy expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// Roles of the permissioned network (from the data-marketplace paper).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Role {
    /// Validates blocks of a permissioned chain.
    Validator,
    /// Runs a node and may transact.
    Node,
    /// Publishes data streams.
    Publisher,
    /// Buys and reads data streams.
    Subscriber,
    /// Answers oracle requests; its attestations are accepted on chain.
    Oracle,
}

/// How an account that asks to join is approved.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ApprovalMode {
    /// An administrator approves by listing the account in `participants`.
    #[default]
    Manual,
    /// The identity endpoint verifies the account through the oracle.
    Oracle,
}

/// Approval of join requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Oracle' ? has(self.identityEndpoint) : !has(self.identityEndpoint)").message("identityEndpoint is required when mode is Oracle and not allowed when mode is Manual"))]
pub struct Approval {
    /// Manual or Oracle approval.
    #[serde(default)]
    pub mode: ApprovalMode,
    /// Name of the registry service's oracle endpoint that verifies identities (mode Oracle).
    /// It is asked with the parameters `account` (lowercase 0x address) and `role`, and its
    /// `resultPath` must select a JSON bool: true enrolls the account, false rejects the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub identity_endpoint: Option<String>,
    /// How long the identity endpoint has to answer a join request (mode Oracle; default
    /// 3600). Unanswered, the request expires and the account stays pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 2_592_000))]
    pub window_seconds: Option<i32>,
}

/// Whether a listed participant is enrolled now or waits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ParticipantApproval {
    /// Enroll the account.
    #[default]
    Approved,
    /// Keep the account pending (its join request stays open).
    Pending,
    /// Suspend the account: still listed, not allowed to act.
    Suspended,
}

/// One account of the network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// Name of the participant within the policy.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The participant's account address.
    #[schemars(length(max = ADDRESS_MAX_LEN))]
    #[x_kube(validation = Rule::new(ADDRESS_RULE).message(ADDRESS_MESSAGE))]
    pub address: String,
    /// The participant's role.
    pub role: Role,
    /// Enroll now, keep pending, or suspend.
    #[serde(default)]
    pub approval: ParticipantApproval,
    /// When this participant's enrollment expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// A contract operation and the roles allowed to perform it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// Operation: a contract function name, or a sidecar API operation (`read`, `events`, `call`).
    #[schemars(length(min = 1, max = 128))]
    pub operation: String,
    /// Roles allowed to perform it.
    #[schemars(length(min = 1, max = 5))]
    pub roles: Vec<Role>,
}

/// A participant as read back from the chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantState {
    /// Name of the participant in the spec, if it is listed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Account address.
    pub address: String,
    /// Role recorded on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// Observed state of an AccessPolicy, read back from the registry on chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    /// Conditions: Synced and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Participants enrolled on chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrolled: Vec<ParticipantState>,
    /// Accounts whose join request waits for approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<ParticipantState>,
    /// Participants suspended on chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<ParticipantState>,
    /// Participants revoked on chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<ParticipantState>,
    /// Accounts whose join request the identity endpoint refused (mode Oracle); they may ask again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<ParticipantState>,
    /// Number of enrolled participants (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_count: Option<i64>,
    /// Number of pending join requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_count: Option<i64>,
    /// Number of revoked participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_count: Option<i64>,
}
