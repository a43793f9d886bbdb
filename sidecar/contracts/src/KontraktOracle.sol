// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {KontraktContract} from "./KontraktContract.sol";
import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {OracleRequests} from "./OracleRequests.sol";
import {Roles} from "./Roles.sol";

/// @title KontraktOracle
/// @notice Base for logic contracts that ask the sidecar's oracle for off-chain data (the
/// paper's Thing Communication): a `KontraktContract` with the oracle request bookkeeping of
/// `OracleRequests` (requests, `fulfil`, `fulfilError`, `cancel`, `oracleStats()`; see there
/// for params, results and attestations).
///
/// Who may answer: the signer of an attestation must be enrolled as `Roles.Oracle` in the
/// registry; without a registry only the admin may attest (otherwise anyone could answer).
/// Nothing can be answered or cancelled once the contract is retired (`ContractRetired`).
/// @dev Extends KontraktContract with the same constructor `(database_, registry_, admin_)`.
/// Only contracts that use the oracle inherit it, so the others do not carry its code. The
/// request bookkeeping lives in this contract's own storage: each logic version answers only
/// its own requests.
abstract contract KontraktOracle is KontraktContract, OracleRequests {
    /// @param database_ The ContractDatabase holding this contract's data (must have code).
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin (cannot be zero).
    constructor(address database_, address registry_, address admin_)
        KontraktContract(database_, registry_, admin_)
    {}

    /// @dev An enrolled oracle; without a registry, the admin.
    function _isOracle(address signer) internal view override returns (bool) {
        address registry_ = registry();
        return registry_ == address(0)
            ? _isAdmin(signer)
            : IEnrollmentRegistry(registry_).isEnrolled(signer, Roles.Oracle);
    }

    /// @dev A retired logic answers nothing (the same check as before any other change).
    function _beforeOracleAnswer() internal view override whenActive {}
}
