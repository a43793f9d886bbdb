//! The read-only chain views both binaries need: the sidecar to plan and serve, the operator
//! to compute status. No signer: any provider will do.

pub mod market;
pub mod oracle;
pub mod registry;

use alloy::primitives::Address;

/// A view call that failed: which contract, which call, and the node's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{contract} at {address}: {call} failed: {reason}")]
pub struct ViewError {
    pub contract: &'static str,
    pub address: Address,
    pub call: &'static str,
    pub reason: String,
}

impl ViewError {
    pub fn new(
        contract: &'static str,
        address: Address,
        call: &'static str,
        reason: impl std::fmt::Display,
    ) -> Self {
        Self {
            contract,
            address,
            call,
            reason: reason.to_string(),
        }
    }
}
