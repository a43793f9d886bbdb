// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Roles
/// @notice Role numbers of the permissioned network, shared by the EnrollmentRegistry,
/// KontraktContract's `onlyEnrolled` modifier and the sidecar.
library Roles {
    /// @notice A validator (block producer) of the permissioned chain.
    uint8 internal constant Validator = 0;
    /// @notice A plain node or device that may send transactions.
    uint8 internal constant Node = 1;
    /// @notice A data publisher (sells streams, reports readings).
    uint8 internal constant Publisher = 2;
    /// @notice A data subscriber (buys stream access).
    uint8 internal constant Subscriber = 3;
    /// @notice An oracle key that answers contracts' data requests.
    uint8 internal constant Oracle = 4;
    /// @notice The highest valid role number.
    uint8 internal constant Max = Oracle;

    /// @notice The role's name as the sidecar config spells it (`Publisher`); empty for a
    /// number that is not a role.
    function name(uint8 role) internal pure returns (string memory) {
        if (role == Validator) return "Validator";
        if (role == Node) return "Node";
        if (role == Publisher) return "Publisher";
        if (role == Subscriber) return "Subscriber";
        if (role == Oracle) return "Oracle";
        return "";
    }
}
