//! The oracle counters of any contract built on `OracleRequests` (a logic contract, or the
//! registry's identity checks).

use alloy::eips::BlockId;
use alloy::primitives::Address;
use alloy::providers::Provider;
use serde::Serialize;

use super::ViewError;
use crate::bindings::OracleRequests;

/// The contract's counters, from one `oracleStats()` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OracleStats {
    pub requested: u64,
    pub fulfilled: u64,
    pub failed: u64,
    pub expired: u64,
}

impl OracleStats {
    /// Requests neither answered nor cancelled (some may be past their deadline).
    pub fn pending(&self) -> u64 {
        self.requested
            .saturating_sub(self.fulfilled + self.failed + self.expired)
    }

    /// `oracleStats()` of `contract` at `at`.
    pub async fn read<P: Provider>(
        provider: P,
        contract: Address,
        at: BlockId,
    ) -> Result<Self, ViewError> {
        let s = OracleRequests::new(contract, provider)
            .oracleStats()
            .call()
            .block(at)
            .await
            .map_err(|e| ViewError::new("OracleRequests", contract, "oracleStats()", e))?;
        Ok(Self {
            requested: s.requested,
            fulfilled: s.fulfilled,
            failed: s.failed,
            expired: s.expired,
        })
    }
}
