//! Where a pod's files are mounted and which port the sidecar listens on: the operator
//! renders the pod with these, the sidecar's config points at them.

/// The rendered config's ConfigMap (both modes).
pub const CONFIG_DIR: &str = "/etc/kontrakt";
/// The config file of a contract service's sidecar (`serve`).
pub const SERVICE_CONFIG_FILE: &str = "config.yaml";
/// The config file of a DataStream's publisher (`stream`).
pub const STREAM_CONFIG_FILE: &str = "stream.yaml";
/// The signer Secret's key.
pub const SIGNER_DIR: &str = "/var/run/kontrakt/signer";
pub const SIGNER_FILE: &str = "key";
/// A custom artifact's ConfigMap.
pub const ARTIFACT_DIR: &str = "/etc/kontrakt/artifact";
pub const ARTIFACT_FILE: &str = "artifact.json";
/// Oracle header values: Secret `i` (in spec order) is mounted at `<dir>/<i>/<file>`.
pub const ORACLE_HEADERS_DIR: &str = "/var/run/kontrakt/oracle-headers";
pub const ORACLE_HEADER_FILE: &str = "value";
/// The publisher's batches and log.
pub const STREAM_DATA_DIR: &str = "/var/lib/kontrakt/stream";
/// The MQTT credentials Secret of a DataStream's source.
pub const MQTT_DIR: &str = "/var/run/kontrakt/mqtt";
pub const MQTT_FILE: &str = "credentials";
/// The sidecar's HTTP port in both modes (health, readiness, contract view, events, proofs).
pub const SIDECAR_PORT: u16 = 8080;
