//! Why a SmartContractService reconcile did not finish.
//!
//! Two families: the spec cannot work as written ([`Invalid`](crate::reconcile::Invalid):
//! reported as `Ready=False` with the reason and an Event, then the controller waits for
//! the object to change, never hot-looping), and the world is not ready yet ([`Error`]:
//! retried with backoff).

use crate::reconcile::finalizers::FinalizerError;
use alloy::primitives::B256;

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[from] FinalizerError),
    #[error("retiring the contract on chain: {0}")]
    Retire(#[from] RetireError),
}

impl Error {
    /// Stable label for metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Retire(_) => "RetireFailed",
        }
    }
}

/// Why the logic contract could not be retired (yet).
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error("chain.rpcUrl {0:?} is not a valid URL")]
    InvalidUrl(String),
    #[error("{call}: no answer within {secs}s")]
    Unanswered { call: &'static str, secs: u64 },
    #[error("{call}: {reason}")]
    Rpc { call: &'static str, reason: String },
    #[error("wrong chain: the spec expects chain id {expected}, the RPC reports {actual}")]
    WrongChain { expected: u64, actual: u64 },
    #[error("retire() reverted in transaction {0}")]
    Reverted(B256),
}
