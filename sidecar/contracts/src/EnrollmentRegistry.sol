// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {Roles} from "./Roles.sol";
import {TwoStepAdmin} from "./TwoStepAdmin.sol";

/// @title EnrollmentRegistry
/// @notice Membership of the permissioned network: an account requests to join in a role,
/// the admin approves it (oracle-verified approval comes later), and may suspend,
/// reinstate or revoke it; batched variants serve the sidecar's reconciler. Every change is
/// an event (one per account, also in a batch). One role per account.
///
/// The admin counts as enrolled in every role (`isEnrolled(admin, r)` is true): it decides
/// the membership anyway, so refusing it a role would only lock the operator's own sidecar
/// out (that sidecar signs with the admin key, also for attested oracle answers), and the
/// admin can never be suspended or revoked (`CannotSuspendAdmin`, `CannotRevokeAdmin`).
///
/// Readers enumerate the members with one paged view (`members`) instead of scanning logs:
/// each record carries a link to the next older member, kept in the record's own storage
/// slot, so listing costs no extra storage slot per member (only the shared head/count slot).
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

    /// @dev One storage slot: 1 + 1 + 8 + 20 bytes.
    struct Member {
        Status status;
        uint8 role;
        uint64 expiresAt;
        // The member added before this one (zero for the first): the enumeration list.
        address older;
    }

    /// @notice One entry of the `members` listing.
    struct MemberRecord {
        address account;
        uint8 status;
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
    /// @notice The admin's membership cannot be revoked (it controls the list).
    error CannotRevokeAdmin(address admin);
    /// @notice The admin's membership cannot be suspended (it controls the list).
    error CannotSuspendAdmin(address admin);
    /// @notice A batch's arrays differ in length.
    error LengthMismatch(uint256 accounts, uint256 roles, uint256 expiries);
    /// @notice A `members` cursor that is not a member.
    error UnknownCursor(address cursor);

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
    // The most recently added member (head of the enumeration list) and the member count, in
    // one slot: adding a member touches one shared slot besides its own record.
    address private _newest;
    uint96 private _memberCount;

    /// @param admin_ The admin (cannot be zero).
    constructor(address admin_) TwoStepAdmin(admin_) {}

    // ---------------------------------------------------------------- membership

    /// @notice Asks to join the network in `role`; an account that never had a status only.
    /// @param role The requested role (see `Roles`).
    function requestJoin(uint8 role) external {
        if (role > Roles.Max) revert InvalidRole(role);
        Member storage m = _members[msg.sender];
        if (m.status != Status.None) revert InvalidStatus(msg.sender, m.status);
        _members[msg.sender] = Member({status: Status.Pending, role: role, expiresAt: 0, older: _newest});
        _newest = msg.sender;
        ++_memberCount;
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

    /// @notice Enrolls `account` directly, whatever its status (approves a pending request,
    /// reinstates a suspended account, re-enrolls a revoked one, changes role or expiry).
    /// @param account The account.
    /// @param role The role (see `Roles`).
    /// @param expiresAt When the enrollment lapses (0: never).
    function enroll(address account, uint8 role, uint64 expiresAt) external onlyAdmin {
        (address newest, uint96 count) = (_newest, _memberCount);
        (address newest2, uint96 count2) = _enroll(account, role, expiresAt, newest, count);
        if (count2 != count) (_newest, _memberCount) = (newest2, count2);
    }

    /// @notice `enroll` for many accounts in one transaction (the reconciler's batch).
    /// @param accounts The accounts.
    /// @param roles Their roles (see `Roles`), same length.
    /// @param expiresAt Their expiries (0: never), same length.
    function enrollMany(address[] calldata accounts, uint8[] calldata roles, uint64[] calldata expiresAt)
        external
        onlyAdmin
    {
        if (accounts.length != roles.length || accounts.length != expiresAt.length) {
            revert LengthMismatch(accounts.length, roles.length, expiresAt.length);
        }
        // The list head and count stay in memory for the whole batch: one write at the end.
        (address newest, uint96 count) = (_newest, _memberCount);
        uint96 before = count;
        for (uint256 i; i < accounts.length; ++i) {
            (newest, count) = _enroll(accounts[i], roles[i], expiresAt[i], newest, count);
        }
        if (count != before) (_newest, _memberCount) = (newest, count);
    }

    /// @notice Suspends an enrolled account (reversible with `reinstate`); never the admin.
    /// @param account The account.
    function suspend(address account) external onlyAdmin {
        _suspend(account);
    }

    /// @notice `suspend` for many accounts in one transaction.
    /// @param accounts The accounts (each must be enrolled).
    function suspendMany(address[] calldata accounts) external onlyAdmin {
        for (uint256 i; i < accounts.length; ++i) {
            _suspend(accounts[i]);
        }
    }

    /// @notice Reinstates a suspended account.
    /// @param account The account.
    function reinstate(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status != Status.Suspended) revert InvalidStatus(account, m.status);
        m.status = Status.Enrolled;
        emit Reinstated(account, msg.sender);
    }

    /// @notice Revokes a pending, enrolled or suspended account (rejects a pending request);
    /// never the admin. Only `enroll` can bring it back.
    /// @param account The account.
    function revoke(address account) external onlyAdmin {
        _revoke(account);
    }

    /// @notice `revoke` for many accounts in one transaction.
    /// @param accounts The accounts (each pending, enrolled or suspended).
    function revokeMany(address[] calldata accounts) external onlyAdmin {
        for (uint256 i; i < accounts.length; ++i) {
            _revoke(accounts[i]);
        }
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

    /// @notice How many accounts have a record (every status but None; records are never deleted).
    /// @return The number of records `members` lists.
    function memberCount() external view returns (uint256) {
        return _memberCount;
    }

    /// @notice One page of the member records, newest first.
    /// @param cursor The first account of the page (zero: the newest member); a page's `next`.
    /// @param limit The most records returned.
    /// @return page The records.
    /// @return next The cursor of the following page (zero: this was the last page).
    function members(address cursor, uint256 limit)
        external
        view
        returns (MemberRecord[] memory page, address next)
    {
        address account = cursor == address(0) ? _newest : cursor;
        if (cursor != address(0) && _members[cursor].status == Status.None) revert UnknownCursor(cursor);
        uint256 n = limit < _memberCount ? limit : _memberCount;
        page = new MemberRecord[](n);
        uint256 i;
        while (i < n && account != address(0)) {
            Member storage m = _members[account];
            page[i] = MemberRecord({account: account, status: uint8(m.status), role: m.role, expiresAt: m.expiresAt});
            account = m.older;
            ++i;
        }
        // A page that reached the oldest member early is shorter than allocated.
        assembly ("memory-safe") {
            mstore(page, i)
        }
        next = account;
    }

    /// @inheritdoc IEnrollmentRegistry
    /// @dev True for the admin in every role (see the contract's notice). Every logic call
    /// guarded by `onlyEnrolled` pays for this, so an enrolled member costs exactly one SLOAD
    /// (the packed record read once: status in byte 0, role in byte 1, expiresAt in bytes
    /// 2-9); the admin comparison runs only when the member check fails.
    function isEnrolled(address account, uint8 role) public view returns (bool) {
        uint256 word;
        assembly ("memory-safe") {
            mstore(0x00, account)
            mstore(0x20, _members.slot)
            word := sload(keccak256(0x00, 0x40))
        }
        uint64 expiresAt = uint64(word >> 16);
        if (
            uint8(word) == uint8(Status.Enrolled) && uint8(word >> 8) == role
                && (expiresAt == 0 || block.timestamp < expiresAt)
        ) return true;
        return _isAdmin(account);
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

    // ---------------------------------------------------------------- internals

    function _active(Member storage m) private view returns (bool) {
        return m.status == Status.Enrolled && (m.expiresAt == 0 || block.timestamp < m.expiresAt);
    }

    /// @dev Enrolls one account; a new account is linked in front of `newest`. Returns the
    /// new list head and count (the caller stores them).
    function _enroll(address account, uint8 role, uint64 expiresAt, address newest, uint96 count)
        private
        returns (address, uint96)
    {
        if (account == address(0)) revert ZeroAddress();
        if (role > Roles.Max) revert InvalidRole(role);
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ExpiryNotInFuture(expiresAt);
        Member storage m = _members[account];
        address older = m.older;
        if (m.status == Status.None) {
            older = newest;
            newest = account;
            ++count;
        }
        _members[account] = Member({status: Status.Enrolled, role: role, expiresAt: expiresAt, older: older});
        emit Enrolled(account, role, expiresAt, msg.sender);
        return (newest, count);
    }

    function _suspend(address account) private {
        if (_isAdmin(account)) revert CannotSuspendAdmin(account);
        Member storage m = _members[account];
        if (m.status != Status.Enrolled) revert InvalidStatus(account, m.status);
        m.status = Status.Suspended;
        emit Suspended(account, msg.sender);
    }

    function _revoke(address account) private {
        if (_isAdmin(account)) revert CannotRevokeAdmin(account);
        Member storage m = _members[account];
        if (m.status == Status.None || m.status == Status.Revoked) revert InvalidStatus(account, m.status);
        m.status = Status.Revoked;
        emit Revoked(account, msg.sender);
    }
}
