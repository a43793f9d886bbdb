//! The kontrakt operator: CRD types ([`api`]) and one controller per kind.
//!
//! Each controller folder is a pipeline: validate (pure) → build (pure) →
//! apply (server-side apply of owned objects) → status (from observation).

pub mod api;
pub mod config;
pub mod context;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod smart_contract_service;
pub mod telemetry;
