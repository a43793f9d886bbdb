//! The `EnrollmentRegistry` as read from the chain: every member record and the oracle
//! approval. The one rule both binaries read members by: every page at one block, and
//! `enrolledByOracle` for the enrolled and suspended accounts of each page.

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use serde::Serialize;

use super::ViewError;
use crate::bindings::EnrollmentRegistry;
use crate::config::{OracleApproval, Role};

/// Member records read per `members` call (an `eth_call`: ~2,500 gas per record).
pub const PAGE_SIZE: u64 = 500;

const CONTRACT: &str = "EnrollmentRegistry";

/// The status of an account in the registry (`EnrollmentRegistry.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MemberStatus {
    None,
    Pending,
    Enrolled,
    Suspended,
    Revoked,
    /// The oracle did not verify its join request; it may request again.
    Rejected,
}

impl MemberStatus {
    pub fn from_number(n: u8) -> Self {
        match n {
            1 => Self::Pending,
            2 => Self::Enrolled,
            3 => Self::Suspended,
            4 => Self::Revoked,
            5 => Self::Rejected,
            _ => Self::None,
        }
    }
}

/// One account's record as read from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    pub address: Address,
    pub status: MemberStatus,
    /// The (requested) role; meaningless with status `None`.
    pub role: Role,
    /// 0: never.
    pub expires_at: u64,
    /// Enrolled (or suspended) through the oracle's approval, not by the admin.
    pub via_oracle: bool,
}

impl MemberRecord {
    /// The record of an account the registry does not know.
    pub fn none(address: Address) -> Self {
        Self {
            address,
            status: MemberStatus::None,
            role: Role::Validator,
            expires_at: 0,
            via_oracle: false,
        }
    }
}

/// Every record of the registry at `registry`, newest first, at block `at`, through the
/// paged view (and, for enrolled and suspended accounts, `enrolledByOracle`: one more call
/// per page).
pub async fn read_members<P: Provider>(
    provider: P,
    registry: Address,
    at: BlockId,
) -> Result<Vec<MemberRecord>, ViewError> {
    let failed = |call| move |e| ViewError::new(CONTRACT, registry, call, e);
    let contract = EnrollmentRegistry::new(registry, provider);
    let mut records = Vec::new();
    let mut cursor = Address::ZERO;
    loop {
        let page = contract
            .members(cursor, U256::from(PAGE_SIZE))
            .call()
            .block(at)
            .await
            .map_err(failed("members()"))?;
        let first = records.len();
        records.extend(page.page.iter().map(|r| MemberRecord {
            address: r.account,
            status: MemberStatus::from_number(r.status),
            role: Role::from_number(r.role).unwrap_or(Role::Validator),
            expires_at: r.expiresAt,
            via_oracle: false,
        }));
        let members: Vec<&mut MemberRecord> = records[first..]
            .iter_mut()
            .filter(|r| matches!(r.status, MemberStatus::Enrolled | MemberStatus::Suspended))
            .collect();
        if !members.is_empty() {
            let flags = contract
                .enrolledByOracle(members.iter().map(|r| r.address).collect())
                .call()
                .block(at)
                .await
                .map_err(failed("enrolledByOracle()"))?;
            for (r, flag) in members.into_iter().zip(flags) {
                r.via_oracle = flag;
            }
        }
        if page.next == Address::ZERO || page.page.is_empty() {
            return Ok(records);
        }
        cursor = page.next;
    }
}

/// The registry's oracle approval at block `at` (`None`: off).
pub async fn read_approval<P: Provider>(
    provider: P,
    registry: Address,
    at: BlockId,
) -> Result<Option<OracleApproval>, ViewError> {
    let a = EnrollmentRegistry::new(registry, provider)
        .oracleApproval()
        .call()
        .block(at)
        .await
        .map_err(|e| ViewError::new(CONTRACT, registry, "oracleApproval()", e))?;
    Ok((!a.endpoint.is_empty()).then_some(OracleApproval {
        endpoint: a.endpoint,
        window_seconds: a.windowSeconds,
    }))
}
