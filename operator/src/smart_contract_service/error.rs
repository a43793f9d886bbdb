//! Why a SmartContractService reconcile did not finish.
//!
//! Two families: the spec cannot work as written ([`Invalid`]: reported as
//! `Ready=False` with the reason and an Event, then the controller waits for
//! the object to change, never hot-looping), and the world is not ready yet
//! ([`Error`]: retried with backoff).

/// A spec that cannot work as written. The reason is the stable Event and
/// condition reason; the message says what to fix. Never holds secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// A failure worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("retiring the contract on chain: {0}")]
    Retire(String),
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
