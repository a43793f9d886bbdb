//! The kontrakt contract sidecar library: what the sidecar binary does, and what the operator
//! must agree on with it.
//!
//! For the operator:
//! - [`config::SidecarConfig`]: THE sidecar config file format (the operator renders it with
//!   [`config::SidecarConfig::to_yaml`]);
//! - [`addresses::pair_addresses`]: the pair's deterministic addresses and code hashes,
//!   computed without a chain from a [`addresses::PairSpec`];
//! - [`artifact::Artifact`]: built-in templates and mounted artifacts, checked before use;
//! - [`bindings`]: typed contract bindings;
//! - [`addresses::registry_address`]: where a service's `EnrollmentRegistry` lives, and
//!   [`enrollment::read_members`] to read its members back for AccessPolicy status.
//! - [`oracle::OracleStats::read`]: a logic contract's oracle counters in one `oracleStats()`
//!   call (requested, fulfilled, failed, expired; pending is the rest).
//!
//! - [`stream::StreamConfig`]: THE publisher config format (`kontrakt-sidecar stream`), and
//!   [`addresses::market_address`] / [`addresses::stream_key`] with `streamIdOf` on
//!   [`stream::market::DataMarket`] to find a DataStream on chain, and
//!   [`stream::market::read_stream_stats`] for its status (anchored batches, last root,
//!   active subscribers, revenue).
//!
//! For the sidecar: [`key`] (the mounted signing key), [`chain`] (provider, the key's nonce
//! manager, retries), [`factory`] (the CREATE2 proxy), [`deploy`] (deploy-if-absent and the
//! version switch), [`events`] (logs as CloudEvents), [`enrollment`] (the registry's membership reconciler),
//! [`access`] (signed, enrollment-checked API requests), [`oracle`] (answers the contract's
//! oracle requests from named endpoints), [`service`] (`serve` and `deploy`).

pub mod access;
pub mod addresses;
pub mod artifact;
pub mod bindings;
pub mod chain;
pub mod config;
pub mod deploy;
pub mod devchain;
pub mod enrollment;
pub mod events;
pub mod factory;
pub mod key;
pub mod oracle;
pub mod service;
pub mod stream;

pub use addresses::{
    PairAddresses, PairSpec, market_address, pair_addresses, registry_address, stream_key,
};
pub use config::SidecarConfig;
