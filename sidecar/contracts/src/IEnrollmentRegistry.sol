// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IEnrollmentRegistry
/// @notice The read side of the permissioned network's membership list, used by contracts
/// (`onlyEnrolled`) and by permissioned clients (Besu-style account rules).
interface IEnrollmentRegistry {
    /// @notice Whether `account` is currently enrolled (not pending, suspended, revoked or expired) in `role`.
    /// @param account The account to check.
    /// @param role The role number (see `Roles`).
    /// @return True if `account` holds `role` right now.
    function isEnrolled(address account, uint8 role) external view returns (bool);

    /// @notice Whether a transaction from `sender` may be accepted by a permissioned client.
    /// @param sender The transaction's sender.
    /// @param target The transaction's target (zero for a contract creation).
    /// @param value The value sent, in wei.
    /// @param data The transaction's calldata.
    /// @return True if the transaction is allowed.
    function transactionAllowed(address sender, address target, uint256 value, bytes calldata data)
        external
        view
        returns (bool);
}
