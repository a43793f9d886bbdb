// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {Roles} from "./Roles.sol";
import {TwoStepAdmin} from "./TwoStepAdmin.sol";

/// @title EnrollmentRegistry
/// @notice Membership of the permissioned network: an account requests to join in a role,
/// the admin approves it (oracle-verified approval comes later), and may suspend,
/// reinstate or revoke it. Every change is an event, so the member list can be rebuilt
/// from logs. One role per account.
/// @dev Deployed through a CREATE2 factory, so the admin is a constructor argument.
contract EnrollmentRegistry is IEnrollmentRegistry, TwoStepAdmin {
    /// @notice Membership status of an account.
    enum Status {
        None,
        Pending,
        Enrolled,
        Suspended,
        Revoked
    }

    struct Member {
        Status status;
        uint8 role;
        uint64 expiresAt;
    }

    /// @notice The role number is not one of `Roles`.
    error InvalidRole(uint8 role);
    /// @notice The account's status does not allow this change.
    error InvalidStatus(address account, Status status);
    /// @notice An expiry must be zero (never) or in the future.
    error ExpiryNotInFuture(uint64 expiresAt);
    /// @notice Approval by an oracle-verified credential is not available yet.
    error OracleApprovalNotAvailable();

    /// @notice `account` asked to join in `role`.
    event JoinRequested(address indexed account, uint8 role);
    /// @notice `account` was enrolled in `role` by `by` (expiresAt 0: never expires).
    event Enrolled(address indexed account, uint8 role, uint64 expiresAt, address indexed by);
    /// @notice `account` was suspended.
    event Suspended(address indexed account, address indexed by);
    /// @notice `account` was reinstated after a suspension.
    event Reinstated(address indexed account, address indexed by);
    /// @notice `account` was revoked (or its join request rejected).
    event Revoked(address indexed account, address indexed by);

    mapping(address => Member) private _members;

    /// @param admin_ The admin (cannot be zero).
    constructor(address admin_) TwoStepAdmin(admin_) {}

    // ---------------------------------------------------------------- membership

    /// @notice Asks to join the network in `role`; an account that never had a status only.
    /// @param role The requested role (see `Roles`).
    function requestJoin(uint8 role) external {
        if (role > Roles.Max) revert InvalidRole(role);
        Member storage m = _members[msg.sender];
        if (m.status != Status.None) revert InvalidStatus(msg.sender, m.status);
        m.status = Status.Pending;
        m.role = role;
        emit JoinRequested(msg.sender, role);
    }

    /// @notice Approves a pending join request, without expiry.
    /// @param account The account that requested to join.
    function approve(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status != Status.Pending) revert InvalidStatus(account, m.status);
        m.status = Status.Enrolled;
        m.expiresAt = 0;
        emit Enrolled(account, m.role, 0, msg.sender);
    }

    /// @notice Approves a pending join request with an oracle-verified credential. NOT AVAILABLE
    /// YET: always reverts with `OracleApprovalNotAvailable`.
    /// @param account The account that requested to join.
    /// @param attestation The oracle's attestation of the account's credential.
    function approveWithAttestation(address account, bytes calldata attestation) external virtual {
        (account, attestation);
        revert OracleApprovalNotAvailable();
    }

    /// @notice Enrolls `account` directly, whatever its status (also re-enrolls revoked accounts).
    /// @param account The account.
    /// @param role The role (see `Roles`).
    /// @param expiresAt When the enrollment lapses (0: never).
    function enroll(address account, uint8 role, uint64 expiresAt) external onlyAdmin {
        if (account == address(0)) revert ZeroAddress();
        if (role > Roles.Max) revert InvalidRole(role);
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ExpiryNotInFuture(expiresAt);
        _members[account] = Member({status: Status.Enrolled, role: role, expiresAt: expiresAt});
        emit Enrolled(account, role, expiresAt, msg.sender);
    }

    /// @notice Suspends an enrolled account (reversible with `reinstate`).
    /// @param account The account.
    function suspend(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status != Status.Enrolled) revert InvalidStatus(account, m.status);
        m.status = Status.Suspended;
        emit Suspended(account, msg.sender);
    }

    /// @notice Reinstates a suspended account.
    /// @param account The account.
    function reinstate(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status != Status.Suspended) revert InvalidStatus(account, m.status);
        m.status = Status.Enrolled;
        emit Reinstated(account, msg.sender);
    }

    /// @notice Revokes a pending, enrolled or suspended account (rejects a pending request).
    /// Only `enroll` can bring it back.
    /// @param account The account.
    function revoke(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status == Status.None || m.status == Status.Revoked) revert InvalidStatus(account, m.status);
        m.status = Status.Revoked;
        emit Revoked(account, msg.sender);
    }

    // ---------------------------------------------------------------- views

    /// @notice The membership record of `account`.
    /// @param account The account.
    /// @return status None, Pending, Enrolled, Suspended or Revoked (as uint8).
    /// @return role The (requested) role.
    /// @return expiresAt When the enrollment lapses (0: never).
    function statusOf(address account) external view returns (uint8 status, uint8 role, uint64 expiresAt) {
        Member storage m = _members[account];
        return (uint8(m.status), m.role, m.expiresAt);
    }

    /// @inheritdoc IEnrollmentRegistry
    function isEnrolled(address account, uint8 role) public view returns (bool) {
        Member storage m = _members[account];
        return _active(m) && m.role == role;
    }

    /// @inheritdoc IEnrollmentRegistry
    /// @dev True iff `sender` is enrolled in any role, or is the admin (so the admin can never
    /// lock itself out of a chain that enforces this list).
    function transactionAllowed(address sender, address target, uint256 value, bytes calldata data)
        external
        view
        returns (bool)
    {
        (target, value, data);
        return _isAdmin(sender) || _active(_members[sender]);
    }

    function _active(Member storage m) private view returns (bool) {
        return m.status == Status.Enrolled && (m.expiresAt == 0 || block.timestamp < m.expiresAt);
    }
}
