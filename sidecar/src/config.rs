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
//! listen: 0.0.0.0:8080                     # optional, this is the default
//! interop:
//!   events: [ShipmentRequested]            # events published as CloudEvents; empty = all
//! oracle:
//!   endpoints:                             # the only URLs the oracle may fetch
//!     - name: device-cost
//!       url: http://devices.iot.svc/cost
//!       method: GET
//!       timeoutSeconds: 10
//!       retries: 3
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
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
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

/// The endpoints the oracle may fetch (the oracle loop itself is not built yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleConfig {
    #[serde(default)]
    pub endpoints: Vec<OracleEndpoint>,
}

/// One named endpoint; on-chain requests carry the name, never a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OracleEndpoint {
    pub name: String,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub retries: u32,
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_timeout() -> u64 {
    10
}

impl SidecarConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
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
        for e in &self.oracle.endpoints {
            if e.name.is_empty() || e.url.is_empty() {
                return invalid("oracle.endpoints[]: name and url are required");
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
}
