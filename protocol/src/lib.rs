//! What the kontrakt operator and the contract sidecar must agree on, and nothing that runs:
//! no HTTP server, no oracle loop, no MQTT client, no signing.
//!
//! - [`config::SidecarConfig`]: THE sidecar config file format (the operator renders it with
//!   [`config::SidecarConfig::to_yaml`]), and [`stream_config::StreamConfig`], THE publisher
//!   config format (`kontrakt-sidecar stream`);
//! - [`addresses`]: the deterministic addresses of the pair, the registry, the market and a
//!   stream's key, computed without a chain;
//! - [`artifact::Artifact`]: built-in templates and mounted artifacts, checked before use;
//! - [`key::parse_signer`]: the one parser of key material;
//! - [`json_path::JsonPath`]: the `resultPath` of an oracle endpoint;
//! - [`mounts`]: the paths a pod mounts and the sidecar's port;
//! - [`bindings`]: one typed binding per contract artifact;
//! - [`views`]: the read-only chain views (registry members and approval, oracle counters,
//!   stream stats and `streamIdOf`) with their error, [`views::ViewError`].

pub mod addresses;
pub mod artifact;
pub mod bindings;
pub mod config;
pub mod json_path;
pub mod key;
pub mod mounts;
pub mod stream_config;
pub mod views;

pub use addresses::{
    PairAddresses, PairSpec, market_address, pair_addresses, registry_address, stream_key,
};
pub use config::SidecarConfig;
pub use stream_config::StreamConfig;
