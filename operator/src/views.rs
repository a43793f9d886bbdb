//! The read-only contract views the operator calls to compute status (the
//! operator never sends a transaction for these; see `access_policy::render`).

#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol! {
    /// The EnrollmentRegistry's read side (sidecar/contracts/src/EnrollmentRegistry.sol).
    #[sol(rpc)]
    #[derive(Debug)]
    interface RegistryView {
        struct MemberRecord {
            address account;
            uint8 status;
            uint8 role;
            uint64 expiresAt;
        }
        function admin() external view returns (address);
        function statusOf(address account) external view returns (uint8 status, uint8 role, uint64 expiresAt);
        function isEnrolled(address account, uint8 role) external view returns (bool);
        function memberCount() external view returns (uint256);
        function members(address cursor, uint256 limit) external view returns (MemberRecord[] memory page, address next);
        function enrolledByOracle(address[] calldata accounts) external view returns (bool[] memory flags);
        function oracleApproval() external view returns (string memory endpoint, uint32 windowSeconds);
    }

    /// The oracle counters of KontraktOracle and of the EnrollmentRegistry's
    /// identity checks (sidecar/contracts/src/OracleRequests.sol).
    #[sol(rpc)]
    #[derive(Debug)]
    interface OracleView {
        function oracleStats() external view returns (uint64 requested, uint64 fulfilled, uint64 failed, uint64 expired);
    }
}

/// Membership status numbers of `EnrollmentRegistry.Status`.
pub mod member_status {
    pub const NONE: u8 = 0;
    pub const PENDING: u8 = 1;
    pub const ENROLLED: u8 = 2;
    pub const SUSPENDED: u8 = 3;
    pub const REVOKED: u8 = 4;
    /// The identity endpoint refused the join request (it may ask again).
    pub const REJECTED: u8 = 5;
}

/// `Roles.Oracle`.
pub const ROLE_ORACLE: u8 = 4;
