//! Types shared by the three resources: references, conditions, CEL rule texts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: a 0x-prefixed 20-byte hex address (either case; EIP-55 checksums allowed).
pub const ADDRESS_RULE: &str = "self.matches('^0x[0-9a-fA-F]{40}$')";
pub const ADDRESS_MESSAGE: &str =
    "must be a 0x-prefixed 20-byte hex address (0x followed by 40 hex digits)";
/// CEL: an absolute http or https URL.
pub const HTTP_URL_RULE: &str =
    "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHost() != ''";
pub const HTTP_URL_MESSAGE: &str = "must be an absolute http:// or https:// URL";
/// CEL: a field that cannot change once set.
pub const IMMUTABLE_RULE: &str = "self == oldSelf";

/// Longest accepted address string: `0x` + 40 hex digits. Bounds CEL cost.
pub const ADDRESS_MAX_LEN: u32 = 42;
/// Longest accepted URL. Bounds CEL cost.
pub const URL_MAX_LEN: u32 = 2048;

/// A key in a Secret in the same namespace. kontrakt only ever references
/// secrets: their values are mounted into pods, never copied into ConfigMaps,
/// status, Events or logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the referencing object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A key in a ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap, in the same namespace as the referencing object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the ConfigMap's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to another kontrakt object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the referenced object, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Condition types every kind reports.
pub mod condition {
    /// The object does what it declares; the summary of every other condition.
    pub const READY: &str = "Ready";
    /// The contract pair exists on chain at the expected addresses.
    pub const DEPLOYED: &str = "Deployed";
    /// The oracle loop is running and its endpoints are configured.
    pub const ORACLE_READY: &str = "OracleReady";
    /// The service's signer is enrolled in its AccessPolicy.
    pub const ENROLLED: &str = "Enrolled";
    /// A DataStream is registered on the market.
    pub const REGISTERED: &str = "Registered";
    /// A DataStream's source delivers: batches are anchored as often as its
    /// interval and batching lead one to expect.
    pub const RECEIVING: &str = "Receiving";
    /// An AccessPolicy's participants match the registry on chain.
    pub const SYNCED: &str = "Synced";
}

/// Shorthand used by status structs: conditions as a list-map keyed by `type`.
pub type Conditions = Vec<Condition>;
