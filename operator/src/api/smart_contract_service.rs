//! `SmartContractService` (`scs`): one contract microservice — a Solidity pair on
//! a chain, served by the contract sidecar in its own Deployment.

// Each `printcolumn(..)` in `#[kube(..)]` repeats `type_ = ..`; clippy reads the
// repeats as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A smart contract run as a microservice: the operator deploys the sidecar,
/// which deploys the logic contract and its database contract (the pair) on
/// the chain, answers the contract's oracle requests from named endpoints and
/// serves the contract's API and events.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kontrakt.dev",
    version = "v1alpha1",
    kind = "SmartContractService",
    plural = "smartcontractservices",
    singular = "smartcontractservice",
    shortname = "scs",
    category = "kontrakt",
    namespaced,
    status = "SmartContractServiceStatus",
    doc = "A smart contract run as a microservice: a logic contract and its database contract deployed on an Ethereum-compatible chain by a sidecar that also answers oracle requests.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Contract",
        type_ = "string",
        json_path = ".status.contractAddress",
        description = "Address of the logic contract"
    ),
    printcolumn(
        name = "Chain",
        type_ = "integer",
        json_path = ".spec.chain.chainId",
        description = "Chain id"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Version",
        type_ = "integer",
        json_path = ".status.version",
        description = "Deployed logic version",
        priority = 1
    ),
    printcolumn(
        name = "Database",
        type_ = "string",
        json_path = ".status.databaseAddress",
        description = "Address of the database contract",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SmartContractServiceSpec {
    /// The chain the contract lives on.
    pub chain: ChainSpec,
    /// The key that deploys and operates the contract, referenced from a Secret.
    pub signer: SignerSpec,
    /// Which logic contract to deploy, and its version.
    pub contract: ContractSpec,
    /// The pair's database contract: create a new one, or reuse an existing one.
    #[serde(default)]
    pub database: DatabaseSpec,
    /// Named endpoints the oracle may fetch on the contract's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleSpec>,
    /// The AccessPolicy that decides who may call this contract. Without one,
    /// the contract is open to every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy_ref: Option<LocalObjectRef>,
    /// Number of sidecar pods (any replica may deploy: deployment is deterministic).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 10))]
    pub replicas: i32,
    /// The service's own business logic, run as a container next to the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppContainer>,
    /// Which contract events the sidecar publishes as CloudEvents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interop: Option<InteropSpec>,
}

fn default_replicas() -> i32 {
    1
}

/// Where the chain is and which chain it must be.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.rpcUrl) != has(self.rpcUrlSecretRef)").message("exactly one of rpcUrl or rpcUrlSecretRef must be set"))]
pub struct ChainSpec {
    /// JSON-RPC URL of the chain (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = URL_MAX_LEN))]
    #[x_kube(validation = Rule::new(HTTP_URL_RULE).message(HTTP_URL_MESSAGE))]
    pub rpc_url: Option<String>,
    /// A Secret key holding the JSON-RPC URL, for URLs that carry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url_secret_ref: Option<SecretKeyRef>,
    /// The chain id the RPC endpoint must report; a mismatch stops the service.
    /// Immutable: a contract cannot move to another chain.
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new(IMMUTABLE_RULE).message("chainId is immutable"))]
    pub chain_id: i64,
}

/// The signing key of the service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerSpec {
    /// Secret key holding the hex-encoded private key. Mounted into the sidecar
    /// as a file; never copied.
    pub secret_key_ref: SecretKeyRef,
}

/// Built-in logic contracts shipped with the sidecar.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ContractTemplate {
    /// Supplier/manufacturer shipment agreement; asks the oracle for a device-specific shipment cost.
    Shipping,
    /// Pays a retailer when the oracle reports the container and the retailer at the same location.
    AssetTracking,
}

/// The logic contract to deploy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.template) != has(self.artifactRef)").message("exactly one of template or artifactRef must be set"))]
pub struct ContractSpec {
    /// A built-in logic contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ContractTemplate>,
    /// A ConfigMap key holding a compiled artifact (JSON with `abi` and
    /// `bytecode`) of a contract derived from KontraktContract. Its constructor
    /// takes exactly (database, registry, admin), like every logic contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_ref: Option<ConfigMapKeyRef>,
    /// Version of the logic contract. Raising it deploys the new logic against
    /// the same database and switches the database's writer to it; lowering it
    /// is refused.
    #[serde(default = "default_version")]
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("contract.version cannot decrease"))]
    pub version: i64,
}

fn default_version() -> i64 {
    1
}

/// How the pair's database contract is obtained.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DatabaseMode {
    /// Deploy a new database contract at its deterministic address.
    #[default]
    Create,
    /// Reuse the database contract at `address` (e.g. one kept from an earlier service).
    Existing,
}

/// The pair's database contract.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Existing' ? has(self.address) : !has(self.address)").message("address is required when mode is Existing and not allowed when mode is Create"))]
pub struct DatabaseSpec {
    /// Create a new database contract or reuse an existing one.
    #[serde(default)]
    pub mode: DatabaseMode,
    /// Address of the existing database contract (mode Existing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = ADDRESS_MAX_LEN))]
    #[x_kube(validation = Rule::new(ADDRESS_RULE).message(ADDRESS_MESSAGE))]
    pub address: Option<String>,
}

/// The oracle's endpoints. A contract's request names an endpoint; it never
/// carries a URL, so the oracle cannot be pointed anywhere else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OracleSpec {
    /// Named endpoints; names are unique.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub endpoints: Vec<OracleEndpoint>,
}

/// HTTP methods the oracle may use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum HttpMethod {
    /// HTTP GET.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// HTTP POST; the request's parameters are the JSON body.
    #[serde(rename = "POST")]
    Post,
}

/// One IoT or HTTP endpoint the oracle may fetch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OracleEndpoint {
    /// Name a contract uses to ask for this endpoint (e.g. `ShipmentCost`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_.-]*$")
    )]
    pub name: String,
    /// URL of the endpoint (http or https). Request parameters are added as query parameters.
    #[schemars(length(max = URL_MAX_LEN))]
    #[x_kube(validation = Rule::new(HTTP_URL_RULE).message(HTTP_URL_MESSAGE))]
    pub url: String,
    /// HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Timeout of one attempt, in seconds.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: i32,
    /// Attempts after the first while the endpoint is unreachable (bounded also by the request's deadline).
    #[serde(default = "default_retries")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: i32,
    /// Headers whose values come from Secrets (API keys, tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub headers: Vec<SecretHeader>,
    /// JSON path in the response whose value answers the request (e.g. `$.cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('$')").message("resultPath must be a JSON path starting with $"))]
    pub result_path: Option<String>,
}

fn default_timeout_seconds() -> i32 {
    10
}
fn default_retries() -> i32 {
    5
}

/// An HTTP header whose value is read from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretHeader {
    /// Header name.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9-]+$"))]
    pub name: String,
    /// Secret key holding the header value.
    pub secret_key_ref: SecretKeyRef,
}

/// The service's own container, run next to the sidecar in the same pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppContainer {
    /// Container image.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Port the app listens on, exposed by the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Publishing of contract events as CloudEvents (the paper's Interoperability Support).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InteropSpec {
    /// Event names to publish; empty publishes every event of the contract and its database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub events: Vec<String>,
}

/// Lifecycle phase of a SmartContractService, summarising its conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, children not yet created.
    Pending,
    /// Children created, the pair not yet on chain.
    Deploying,
    /// The pair is deployed and the service is ready.
    Ready,
    /// A new logic version is being deployed.
    Upgrading,
    /// Something needs attention; see the conditions.
    Failed,
    /// Being deleted: retiring the contract on chain.
    Retiring,
}

/// Observed state of a SmartContractService, computed from the objects the
/// operator owns and from the chain itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmartContractServiceStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Conditions: Deployed, OracleReady, Enrolled and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Chain id reported by the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<i64>,
    /// Address of the logic contract of the current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_address: Option<String>,
    /// Address of the database contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_address: Option<String>,
    /// keccak256 of the logic contract's runtime code, as found on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<String>,
    /// Logic version the database's writer points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Oracle request counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleCounters>,
}

/// Oracle requests of the contract, by outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OracleCounters {
    /// Requests waiting for an answer.
    pub pending: i64,
    /// Requests answered on chain.
    pub fulfilled: i64,
    /// Requests answered with an error code.
    pub failed: i64,
    /// Requests whose deadline passed unanswered.
    pub expired: i64,
}
