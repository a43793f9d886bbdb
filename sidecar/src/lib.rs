//! The kontrakt contract sidecar library: what the sidecar binary does. What the operator
//! must agree on with it (config formats, addresses, artifacts, bindings, read-only views)
//! lives in `kontrakt-protocol`.
//!
//! [`chain`] (provider, the key's nonce manager, retries), [`factory`] (the CREATE2 proxy),
//! [`deploy`] (deploy-if-absent and the version switch), [`events`] (logs as CloudEvents),
//! [`enrollment`] (the registry's membership reconciler), [`access`] (signed,
//! enrollment-checked API requests), [`oracle`] (answers the contract's oracle requests from
//! named endpoints), [`service`] (`serve` and `deploy`), [`stream`] (the DataStream
//! publisher and its buyer), [`devchain`] (anvil for tests).

pub mod access;
pub mod chain;
pub mod deploy;
pub mod devchain;
pub mod enrollment;
pub mod events;
pub mod factory;
pub mod oracle;
pub mod service;
pub mod stream;
