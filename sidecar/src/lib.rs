//! The kontrakt contract sidecar library: what the sidecar binary does, and what the operator
//! must agree on with it.
//!
//! For the operator:
//! - [`config::SidecarConfig`]: THE sidecar config file format (the operator renders it with
//!   [`config::SidecarConfig::to_yaml`]);
//! - [`addresses::pair_addresses`]: the pair's deterministic addresses and code hashes,
//!   computed without a chain from a [`addresses::PairSpec`];
//! - [`artifact::Artifact`]: built-in templates and mounted artifacts, checked before use;
//! - [`bindings`]: typed contract bindings.
//!
//! For the sidecar: [`key`] (the mounted signing key), [`chain`] (provider, the key's nonce
//! manager, retries), [`factory`] (the CREATE2 proxy), [`deploy`] (deploy-if-absent and the
//! version switch), [`events`] (logs as CloudEvents), [`service`] (`serve` and `deploy`).

pub mod addresses;
pub mod artifact;
pub mod bindings;
pub mod chain;
pub mod config;
pub mod deploy;
pub mod devchain;
pub mod events;
pub mod factory;
pub mod key;
pub mod service;

pub use addresses::{PairAddresses, PairSpec, pair_addresses};
pub use config::SidecarConfig;
