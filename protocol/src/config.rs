//! The sidecar configuration file: THE format the operator renders into a ConfigMap.
//!
//! One YAML (or JSON) document, `camelCase` keys, unknown keys rejected:
//!
//! ```yaml
//! chain:
//!   rpcUrl: http://anvil.chains.svc:8545   # JSON-RPC over HTTP(S)
//!   chainId: 31337                         # the RPC must report this id, or the sidecar stops
//!   retry:                                 # optional; backoff for an unreachable RPC
//!     maxAttempts: 8
//!     initialBackoffMillis: 250
//!     maxBackoffMillis: 10000
//! signer:
//!   keyFile: /var/run/kontrakt/signer/key  # mounted Secret: hex private key (never the key itself here)
//! contract:
//!   namespace: default                     # with `name` and `version`, the CREATE2 salts
//!   name: shipping
//!   template: Shipping                     # a built-in artifact ... (exactly one of the two)
//!   # artifactFile: /etc/kontrakt/artifact/Custom.json   # ... or a mounted JSON artifact
//!   version: 1                             # >= 1; a higher version upgrades the pair
//! database:
//!   mode: create                           # create | existing
//!   # address: "0x..."                     # only with `mode: existing`
//! registry: "0x00000000000000000000000000000000000000e1"   # optional EnrollmentRegistry
//! enrollment:                              # only on the service hosting the registry: this sidecar
//!   participants:                          # deploys it (admin = signer) and keeps its members equal
//!     - address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
//!       role: Node                         # Validator | Node | Publisher | Subscriber | Oracle
//!       state: Enrolled                    # Enrolled | Pending | Suspended
//!       expiresAt: 1790000000              # optional unix seconds (absent/0: never)
//!   approval:                              # optional: join requests verified by the oracle
//!     endpoint: IdentityCheck              # one of oracle.endpoints (its answer: a bool)
//!     windowSeconds: 3600                  # optional, this is the default
//! access:                                  # API requests must be signed by an enrolled account
//!   rules:
//!     - operation: events                  # read | events | call
//!       roles: [Subscriber]
//! listen: 0.0.0.0:8080                     # optional, this is the default
//! interop:
//!   events: [ShipmentRequested]            # events published as CloudEvents; empty = all
//! oracle:
//!   endpoints:                             # the only URLs the oracle may fetch
//!     - name: ShipmentCost                 # what a contract's OracleRequest names
//!       url: http://devices.iot.svc/shipment-cost
//!       method: GET                        # GET: params as query; POST: a JSON body
//!       timeoutSeconds: 10
//!       retries: 3                         # attempts after the first, also bounded by the deadline
//!       resultPath: $.cost                 # JSON path of the answer
//!       headers:                           # values from mounted Secret files, never inline
//!         - name: Authorization
//!           valueFile: /var/run/kontrakt/oracle-headers/ShipmentCost/Authorization
//!     - name: IdentityCheck
//!       url: http://identity.iam.svc/verify  # ?account=0x…(lowercase)&role=Node
//!       resultPath: $.verified
//!   maxResponseBytes: 65536                # optional, this is the default
//! ```
//!
//! Addresses must be quoted: YAML reads an unquoted `0x…` as an integer. The admin of both
//! contracts is the signer's address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("config is not valid: {0}")]
    Invalid(String),
}

/// The whole sidecar configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarConfig {
    pub chain: ChainConfig,
    pub signer: SignerConfig,
    pub contract: ContractConfig,
    pub database: DatabaseConfig,
    /// The `EnrollmentRegistry` the logic contract checks; zero address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Address>,
    /// Where the HTTP API listens.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub interop: InteropConfig,
    #[serde(default)]
    pub oracle: OracleConfig,
    /// The membership this sidecar keeps in its own `EnrollmentRegistry` (only on the service
    /// that hosts the registry of one or more AccessPolicies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<EnrollmentConfig>,
    /// Which enrolled roles may use which API operation (only with `registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessConfig>,
}

pub(crate) fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], crate::mounts::SIDECAR_PORT))
}

/// The chain the pair lives on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (HTTP or HTTPS).
    pub rpc_url: String,
    /// The chain id the RPC must report.
    pub chain_id: u64,
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Bounded exponential backoff for RPC calls that fail because the node is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in total, including the first (>= 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_millis: u64,
    /// Upper bound of one wait.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_millis: u64,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff() -> u64 {
    250
}
fn default_max_backoff() -> u64 {
    10_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_millis: default_initial_backoff(),
            max_backoff_millis: default_max_backoff(),
        }
    }
}

impl RetryConfig {
    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(
            self.initial_backoff_millis
                .saturating_mul(factor)
                .min(self.max_backoff_millis),
        )
    }
}

/// Where the signing key is mounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignerConfig {
    /// A file holding the hex private key (optionally `0x`-prefixed, surrounding whitespace ignored).
    pub key_file: PathBuf,
}

/// The logic contract and the identity that determines its deterministic addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractConfig {
    /// Kubernetes namespace of the SmartContractService (part of the salts).
    pub namespace: String,
    /// Name of the SmartContractService (part of the salts).
    pub name: String,
    /// A built-in artifact (see [`crate::artifact::Artifact::builtin`]); exclusive with `artifactFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A mounted JSON artifact; exclusive with `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_file: Option<PathBuf>,
    /// The logic version, >= 1. Raising it deploys a new logic against the same database.
    pub version: u64,
}

/// The pair's database contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase", deny_unknown_fields)]
pub enum DatabaseConfig {
    /// Deploy (if absent) a `ContractDatabase` at its deterministic address.
    Create,
    /// Use an already deployed `ContractDatabase`; the signer must be its admin.
    Existing { address: Address },
}

/// Which contract events are published as CloudEvents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InteropConfig {
    /// Event names (e.g. `ShipmentCreated`, `WriterChanged`); empty publishes every event of the
    /// logic and the database.
    #[serde(default)]
    pub events: Vec<String>,
}

/// The endpoints the oracle may fetch: an on-chain `OracleRequest` names one of them, never a
/// URL (no SSRF). The oracle signs its answers with the signer key (`signer.keyFile`), which
/// must be enrolled as `Oracle` in `registry` (without a registry: the logic's admin, i.e.
/// the signer itself).
///
/// A request's `params` are `abi.encode(string[] names, string[] values)` (the contract's
/// `_oracleParams`): `GET` sends them as query parameters (`ShipmentCost?device=VerticalPump`),
/// `POST` as a JSON object of strings (`{"device":"VerticalPump"}`). The JSON value at
/// `resultPath` becomes the callback's arguments after the request id: one argument takes the
/// value itself (uint/int from a JSON integer or a decimal string, bool, string, address and
/// bytes/bytesN from 0x-hex strings, arrays and tuples from JSON arrays or objects), several
/// arguments take a JSON array (in order) or an object (by parameter name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleConfig {
    #[serde(default)]
    pub endpoints: Vec<OracleEndpoint>,
    /// Largest response body read from an endpoint; a larger one answers the request with
    /// the error `ResponseTooLarge`.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
}

impl Default for OracleConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

fn default_max_response_bytes() -> u64 {
    65_536
}

/// One named endpoint; on-chain requests carry the name, never a URL. Redirects are never
/// followed (a 3xx answers the request with the error `HttpStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleEndpoint {
    /// The name contracts ask for (e.g. `ShipmentCost`).
    pub name: String,
    /// http:// or https:// URL; request parameters are added to its query (GET).
    pub url: String,
    /// `GET` (params as query parameters) or `POST` (params as a JSON object body).
    #[serde(default = "default_method")]
    pub method: String,
    /// Timeout of one attempt (connect, send, read the whole response).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Attempts after the first while the endpoint is unreachable, times out or answers
    /// 5xx/429 (exponential backoff with jitter), also bounded by the request's deadline.
    #[serde(default)]
    pub retries: u32,
    /// JSON path of the answer in the response: `$` (the whole document), `$.a.b`, `$.list[0]`,
    /// `$['odd key']`. Absent: `$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_path: Option<String>,
    /// Request headers whose values are read from mounted Secret files at each request
    /// (never inline, never logged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<OracleHeader>,
}

/// A request header whose value lives in a mounted Secret file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleHeader {
    /// Header name (e.g. `Authorization`).
    pub name: String,
    /// The file holding the value (surrounding whitespace is trimmed).
    pub value_file: PathBuf,
}

impl OracleConfig {
    /// Checks the endpoints: unique names, http(s) URLs, a known method, a positive timeout,
    /// valid header names and result paths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.max_response_bytes == 0 {
            return invalid("oracle.maxResponseBytes must be >= 1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for e in &self.endpoints {
            if e.name.is_empty() || e.url.is_empty() {
                return invalid("oracle.endpoints[]: name and url are required".into());
            }
            let at = format!("oracle endpoint {:?}", e.name);
            if !names.insert(e.name.as_str()) {
                return invalid(format!("{at}: the name is used twice"));
            }
            match url::Url::parse(&e.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return invalid(format!("{at}: url must be an http:// or https:// URL")),
            }
            if !matches!(e.method.as_str(), "GET" | "POST") {
                return invalid(format!("{at}: method must be GET or POST"));
            }
            if e.timeout_seconds == 0 {
                return invalid(format!("{at}: timeoutSeconds must be >= 1"));
            }
            if let Some(path) = &e.result_path
                && let Err(err) = crate::json_path::JsonPath::parse(path)
            {
                return invalid(format!("{at}: resultPath {path:?}: {err}"));
            }
            for h in &e.headers {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    return invalid(format!("{at}: {:?} is not a valid header name", h.name));
                }
            }
        }
        Ok(())
    }
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_timeout() -> u64 {
    10
}

/// The desired membership of the registry this sidecar hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// One entry per account (unique addresses); accounts not listed are revoked, except
    /// pending join requests, which stay pending, and (with `approval`) the accounts the
    /// oracle enrolled.
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// Join requests verified through the oracle; absent: only the listing (the admin)
    /// approves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<OracleApproval>,
}

/// Approval of join requests through the oracle: the registry sends every join request to
/// the identity-verification endpoint `endpoint` (params `account`, the address as lowercase
/// 0x-hex, and `role`, e.g. `Publisher`); the JSON value at the endpoint's `resultPath` must be
/// a bool (`true`: enroll in the requested role, `false`: reject the request). This sidecar's
/// oracle loop answers them, signing with the signer key: the registry's admin, which counts as
/// an enrolled oracle there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleApproval {
    /// The name of one of `oracle.endpoints` (never a URL).
    pub endpoint: String,
    /// How long the oracle has to answer a join request; after it the request expires and the
    /// account stays pending (the listing can still approve it, or it may ask again).
    #[serde(default = "default_approval_window")]
    pub window_seconds: u32,
}

fn default_approval_window() -> u32 {
    3_600
}

/// One account of the desired membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Participant {
    pub address: Address,
    pub role: Role,
    #[serde(default)]
    pub state: ParticipantState,
    /// Unix seconds when the enrollment lapses; absent or 0: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// A role of the permissioned network (the numbers of `Roles.sol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Validator = 0,
    Node = 1,
    Publisher = 2,
    Subscriber = 3,
    Oracle = 4,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Validator,
        Role::Node,
        Role::Publisher,
        Role::Subscriber,
        Role::Oracle,
    ];

    /// The on-chain role number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The role of an on-chain role number.
    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }
}

/// What a listed participant should be on chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantState {
    /// Enrolled in its role (approves a pending request, reinstates a suspension).
    #[default]
    Enrolled,
    /// Not approved yet: its own join request stays pending; an enrollment is revoked.
    Pending,
    /// Enrolled but suspended.
    Suspended,
}

/// The sidecar API's access rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessConfig {
    /// Operation → roles allowed; an operation without a rule is open to every enrolled role.
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

/// The roles allowed to use one API operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRule {
    pub operation: ApiOperation,
    pub roles: Vec<Role>,
}

/// An operation of the sidecar API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApiOperation {
    /// `GET` of a view (`/contract`, `/enrollment`).
    Read,
    /// `GET /events`, the CloudEvents feed.
    Events,
    /// A state-changing request (`POST`, ...).
    Call,
}

/// Reads and parses a YAML config file (the sidecar's and the publisher's).
pub(crate) fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

impl SidecarConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = read_yaml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the config as YAML (what the operator writes into the ConfigMap).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("the config is always serialisable")
    }

    /// Checks what serde cannot: exclusive fields and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let c = &self.contract;
        match (&c.template, &c.artifact_file) {
            (Some(_), Some(_)) => {
                return invalid("contract: set either template or artifactFile, not both");
            }
            (None, None) => {
                return invalid("contract: one of template or artifactFile is required");
            }
            _ => {}
        }
        if c.version == 0 {
            return invalid("contract.version must be >= 1");
        }
        if c.namespace.is_empty() || c.name.is_empty() {
            return invalid("contract.namespace and contract.name must not be empty");
        }
        // "/" separates the salt's parts, so it must not appear inside them.
        if c.namespace.contains('/') || c.name.contains('/') {
            return invalid("contract.namespace and contract.name must not contain '/'");
        }
        if !(self.chain.rpc_url.starts_with("http://")
            || self.chain.rpc_url.starts_with("https://"))
        {
            return invalid("chain.rpcUrl must be an http:// or https:// URL");
        }
        if self.chain.retry.max_attempts == 0 {
            return invalid("chain.retry.maxAttempts must be >= 1");
        }
        self.oracle.validate()?;
        self.validate_enrollment()?;
        Ok(())
    }

    /// Participants: unique non-zero addresses (compared as addresses, so case-insensitively);
    /// approval: names a configured oracle endpoint, with a window; access rules: each names a
    /// role, and need a registry to check against.
    fn validate_enrollment(&self) -> Result<(), ConfigError> {
        if let Some(enrollment) = &self.enrollment {
            if let Some(approval) = &enrollment.approval {
                if !self
                    .oracle
                    .endpoints
                    .iter()
                    .any(|e| e.name == approval.endpoint)
                {
                    let known: Vec<&str> = self
                        .oracle
                        .endpoints
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect();
                    return Err(ConfigError::Invalid(format!(
                        "enrollment.approval.endpoint {:?} is not one of oracle.endpoints {known:?}: the oracle fetches only named endpoints",
                        approval.endpoint
                    )));
                }
                if approval.window_seconds == 0 {
                    return Err(ConfigError::Invalid(
                        "enrollment.approval.windowSeconds must be >= 1".into(),
                    ));
                }
            }
            let mut seen = std::collections::HashSet::new();
            for p in &enrollment.participants {
                if p.address == Address::ZERO {
                    return Err(ConfigError::Invalid(
                        "enrollment.participants[]: the zero address cannot be enrolled".into(),
                    ));
                }
                if !seen.insert(p.address) {
                    return Err(ConfigError::Invalid(format!(
                        "enrollment.participants[]: address {} is listed twice",
                        p.address
                    )));
                }
            }
        }
        if let Some(access) = &self.access {
            if self.registry.is_none() {
                return Err(ConfigError::Invalid(
                    "access needs registry: the roles are checked in that EnrollmentRegistry"
                        .into(),
                ));
            }
            if let Some(rule) = access.rules.iter().find(|r| r.roles.is_empty()) {
                return Err(ConfigError::Invalid(format!(
                    "access.rules[]: the rule for operation {:?} names no role",
                    rule.operation
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
chain:
  rpcUrl: http://127.0.0.1:8545
  chainId: 31337
  retry: { maxAttempts: 2, initialBackoffMillis: 10, maxBackoffMillis: 20 }
signer:
  keyFile: /var/run/key
contract:
  namespace: default
  name: shipping
  template: Shipping
  version: 2
database:
  mode: existing
  address: "0x00000000000000000000000000000000000000aa"
registry: "0x00000000000000000000000000000000000000bb"
listen: 127.0.0.1:9000
interop:
  events: [WriterChanged]
oracle:
  endpoints:
    - name: cost
      url: http://devices/cost
      timeoutSeconds: 3
"#;

    #[test]
    fn full_config_round_trips() {
        let c: SidecarConfig = serde_yaml::from_str(FULL).unwrap();
        c.validate().unwrap();
        assert_eq!(c.chain.retry.max_attempts, 2);
        assert!(matches!(c.database, DatabaseConfig::Existing { .. }));
        assert_eq!(c.oracle.endpoints[0].method, "GET");
        let again: SidecarConfig = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc: String = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| *l != "```yaml")
            .skip(1)
            .take_while(|l| *l != "```")
            .map(|l| format!("{l}\n"))
            .collect();
        let c: SidecarConfig = serde_yaml::from_str(&doc).unwrap();
        c.validate().unwrap();
        assert_eq!(c.contract.template.as_deref(), Some("Shipping"));
    }

    #[test]
    fn minimal_config_has_defaults() {
        let c: SidecarConfig = serde_yaml::from_str(
            "chain: {rpcUrl: 'http://x:1', chainId: 1}\nsigner: {keyFile: k}\n\
             contract: {namespace: a, name: b, artifactFile: /a.json, version: 1}\n\
             database: {mode: create}\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.database, DatabaseConfig::Create);
        assert_eq!(c.chain.retry, RetryConfig::default());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let bad = FULL.replace("chainId: 31337", "chainId: 31337\n  chainID: 1");
        assert!(serde_yaml::from_str::<SidecarConfig>(&bad).is_err());
        let bad = FULL.replace("mode: existing", "mode: existing\n  extra: 1");
        assert!(serde_yaml::from_str::<SidecarConfig>(&bad).is_err());
    }

    #[test]
    fn exclusive_artifact_fields_are_checked() {
        let both = FULL.replace(
            "template: Shipping",
            "template: Shipping\n  artifactFile: /x",
        );
        let c: SidecarConfig = serde_yaml::from_str(&both).unwrap();
        assert!(c.validate().is_err());
        let zero = FULL.replace("version: 2", "version: 0");
        let c: SidecarConfig = serde_yaml::from_str(&zero).unwrap();
        assert!(c.validate().is_err());
    }

    const ENROLLMENT: &str = r#"
registry: "0x00000000000000000000000000000000000000bb"
enrollment:
  participants:
    - address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
      role: Node
      state: Enrolled
      expiresAt: 1790000000
    - address: "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
      role: Subscriber
access:
  rules:
    - operation: events
      roles: [Subscriber]
    - operation: call
      roles: [Node, Publisher]
"#;

    fn with_enrollment(extra: &str) -> SidecarConfig {
        let base = FULL.replace(
            "registry: \"0x00000000000000000000000000000000000000bb\"\n",
            "",
        );
        serde_yaml::from_str(&format!("{base}{extra}")).unwrap()
    }

    #[test]
    fn enrollment_and_access_round_trip() {
        let c = with_enrollment(ENROLLMENT);
        c.validate().unwrap();
        let e = c.enrollment.as_ref().unwrap();
        assert_eq!(e.participants[0].role, Role::Node);
        assert_eq!(e.participants[0].expires_at, Some(1_790_000_000));
        assert_eq!(e.participants[1].state, ParticipantState::Enrolled);
        let a = c.access.as_ref().unwrap();
        assert_eq!(a.rules[0].operation, ApiOperation::Events);
        assert_eq!(a.rules[1].roles, [Role::Node, Role::Publisher]);
        let again: SidecarConfig = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(c, again);
        assert_eq!(Role::from_number(Role::Oracle.number()), Some(Role::Oracle));
        assert_eq!(Role::from_number(5), None);
    }

    #[test]
    fn enrollment_inputs_are_checked() {
        // Same address in another case: a duplicate.
        let dup = ENROLLMENT.replace(
            "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        );
        let err = with_enrollment(&dup).validate().unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
        let zero = ENROLLMENT.replace(
            "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
            "0x0000000000000000000000000000000000000000",
        );
        assert!(with_enrollment(&zero).validate().is_err());
        let unknown_role = ENROLLMENT.replace("role: Subscriber", "role: Miner");
        let base = FULL.replace(
            "registry: \"0x00000000000000000000000000000000000000bb\"\n",
            "",
        );
        assert!(serde_yaml::from_str::<SidecarConfig>(&format!("{base}{unknown_role}")).is_err());
        let no_roles = ENROLLMENT.replace("roles: [Subscriber]", "roles: []");
        assert!(with_enrollment(&no_roles).validate().is_err());
        let no_registry = ENROLLMENT.replace(
            "registry: \"0x00000000000000000000000000000000000000bb\"",
            "",
        );
        let err = with_enrollment(&no_registry)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("access needs registry"), "{err}");
    }

    #[test]
    fn oracle_approval_must_name_a_configured_endpoint() {
        let yaml = ENROLLMENT.replace(
            "      role: Subscriber\n",
            "      role: Subscriber\n  approval:\n    endpoint: cost\n",
        );
        let c = with_enrollment(&yaml);
        c.validate().unwrap();
        let approval = c.enrollment.as_ref().unwrap().approval.clone().unwrap();
        assert_eq!(approval.endpoint, "cost");
        assert_eq!(approval.window_seconds, 3_600, "the default window");
        let again: SidecarConfig = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(c, again);

        let err = with_enrollment(&yaml.replace("endpoint: cost", "endpoint: Identity"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"Identity\" is not one of oracle.endpoints [\"cost\"]"),
            "{err}"
        );
        let err = with_enrollment(
            &yaml.replace("endpoint: cost", "endpoint: cost\n    windowSeconds: 0"),
        )
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("windowSeconds"), "{err}");
        // Without approval nothing changes (manual approval).
        assert!(
            with_enrollment(ENROLLMENT)
                .enrollment
                .unwrap()
                .approval
                .is_none()
        );
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let r = RetryConfig {
            max_attempts: 5,
            initial_backoff_millis: 100,
            max_backoff_millis: 350,
        };
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(200));
        assert_eq!(r.backoff(3), Duration::from_millis(350));
    }

    #[test]
    fn oracle_endpoints_round_trip_and_are_checked() {
        let yaml = r#"
endpoints:
  - name: ShipmentCost
    url: http://127.0.0.1:9090/shipment-cost
    method: POST
    timeoutSeconds: 5
    retries: 3
    resultPath: $.cost
    headers:
      - name: Authorization
        valueFile: /var/run/kontrakt/oracle-headers/ShipmentCost/Authorization
maxResponseBytes: 1024
"#;
        let o: OracleConfig = serde_yaml::from_str(yaml).unwrap();
        o.validate().unwrap();
        assert_eq!(o.endpoints[0].result_path.as_deref(), Some("$.cost"));
        assert_eq!(o.endpoints[0].headers[0].name, "Authorization");
        assert_eq!(o.max_response_bytes, 1024);
        let again: OracleConfig =
            serde_yaml::from_str(&serde_yaml::to_string(&o).unwrap()).unwrap();
        assert_eq!(o, again);
        let defaults: OracleConfig = serde_yaml::from_str("endpoints: []").unwrap();
        assert_eq!(defaults.max_response_bytes, 65_536);

        let broken = |from: &str, to: &str| {
            let o: OracleConfig = serde_yaml::from_str(&yaml.replace(from, to)).unwrap();
            o.validate().unwrap_err().to_string()
        };
        assert!(broken("method: POST", "method: PUT").contains("GET or POST"));
        assert!(broken("$.cost", "cost").contains("resultPath"));
        assert!(broken("http://127.0.0.1:9090", "file://").contains("http"));
        assert!(broken("timeoutSeconds: 5", "timeoutSeconds: 0").contains("timeoutSeconds"));
        assert!(broken("name: Authorization", "name: \"Bad Header\"").contains("header name"));
        let twice = yaml.replace(
            "maxResponseBytes",
            "  - {name: ShipmentCost, url: 'http://x'}\nmaxResponseBytes",
        );
        let o: OracleConfig = serde_yaml::from_str(&twice).unwrap();
        assert!(o.validate().unwrap_err().to_string().contains("twice"));
    }
}
