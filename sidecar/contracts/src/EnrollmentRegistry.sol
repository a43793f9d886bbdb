// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {OracleRequests} from "./OracleRequests.sol";
import {Roles} from "./Roles.sol";
import {TwoStepAdmin} from "./TwoStepAdmin.sol";

/// @title EnrollmentRegistry
/// @notice Membership of the permissioned network: an account requests to join in a role,
/// the admin approves it, or the oracle does (below), and the admin may suspend, reinstate or
/// revoke it; batched variants serve the sidecar's reconciler. Every change is an event (one
/// per account, also in a batch). One role per account.
///
/// Oracle approval (the paper's join request → oracle approval): once the admin named an
/// identity-verification endpoint (`setOracleApproval`), every `requestJoin` also asks the
/// oracle (`OracleRequests`) to verify the account: endpoint by name, params `account` (the
/// address as lowercase 0x-hex) and `role` (its name, e.g. `Publisher`), callback
/// `onIdentityVerified(id, bool verified)`, deadline now + the window. Only an oracle enrolled
/// in this registry (`Roles.Oracle`, so also the admin) can answer, with `fulfil` and its
/// attestation. Verified: the account is enrolled in the requested role (`Enrolled` with `by` =
/// the oracle) and remembered as oracle-enrolled (`enrolledByOracle`); not verified: the
/// request is rejected (`JoinRejected`, status Rejected) and the account may request again. An
/// answer changes nothing (`IdentityAnswerIgnored`) unless the account is still Pending on that
/// very request and oracle approval is still on, so an admin decision made first stands. A
/// request that failed or expired leaves the account Pending: the admin can still approve it,
/// and the account can request again (a new verification).
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
contract EnrollmentRegistry is IEnrollmentRegistry, TwoStepAdmin, OracleRequests {
    /// @notice Membership status of an account. Rejected: the oracle did not verify its join
    /// request (it may request again).
    enum Status {
        None,
        Pending,
        Enrolled,
        Suspended,
        Revoked,
        Rejected
    }

    /// @dev One storage slot: 1 + 1 + 8 + 20 + 1 bytes (`isEnrolled` reads bytes 0-9).
    struct Member {
        Status status;
        uint8 role;
        uint64 expiresAt;
        // The member added before this one (zero for the first): the enumeration list.
        address older;
        // Enrolled by the oracle's answer (cleared when the admin enrolls or approves it).
        bool viaOracle;
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
    /// @notice Oracle approval needs a window (seconds) for the oracle to answer.
    error InvalidApprovalWindow(uint32 windowSeconds);
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
    /// @notice `account` was revoked (or its pending join request rejected by the admin).
    event Revoked(address indexed account, address indexed by);
    /// @notice The oracle `by` did not verify the join request of `account` (it may request again).
    event JoinRejected(address indexed account, uint8 role, address indexed by);
    /// @notice The join request of `account` was sent to the oracle as request `requestId`.
    event JoinVerificationRequested(address indexed account, bytes32 indexed requestId);
    /// @notice The oracle's answer to `requestId` came when it no longer applied (the account
    /// is not pending on that request any more, or oracle approval is off): nothing changed.
    event IdentityAnswerIgnored(bytes32 indexed requestId, address indexed account, bool verified);
    /// @notice Join requests are verified by the oracle at `endpoint` within `windowSeconds`
    /// (empty endpoint: the admin approves them).
    event OracleApprovalChanged(string endpoint, uint32 windowSeconds, address indexed by);

    mapping(address => Member) private _members;
    // The most recently added member (head of the enumeration list) and the member count, in
    // one slot: adding a member touches one shared slot besides its own record.
    address private _newest;
    uint96 private _memberCount;
    // The identity-verification endpoint's name (empty: manual approval only) and how long
    // the oracle has to answer.
    string private _approvalEndpoint;
    uint32 private _approvalWindow;
    // Join verification requests: the account of each, and each account's latest one.
    mapping(bytes32 => address) private _joinRequestAccount;
    mapping(address => bytes32) private _joinRequestOf;

    /// @param admin_ The admin (cannot be zero).
    constructor(address admin_) TwoStepAdmin(admin_) {}

    // ---------------------------------------------------------------- membership

    /// @notice Asks to join the network in `role` (→ Pending): an account that never had a
    /// status, or whose last request the oracle rejected. With oracle approval on, also sends
    /// the request to the oracle for verification; then a Pending account whose verification
    /// failed or expired may ask again (a new verification, in the role it asks for now).
    /// @param role The requested role (see `Roles`).
    function requestJoin(uint8 role) external {
        if (role > Roles.Max) revert InvalidRole(role);
        Member storage m = _members[msg.sender];
        Status status = m.status;
        string memory endpoint = _approvalEndpoint;
        bool verify = bytes(endpoint).length != 0;
        if (status == Status.None) {
            _members[msg.sender] =
                Member({status: Status.Pending, role: role, expiresAt: 0, older: _newest, viaOracle: false});
            _newest = msg.sender;
            ++_memberCount;
        } else if (
            status == Status.Rejected
                || (status == Status.Pending && verify && !_requestOpen(_joinRequestOf[msg.sender]))
        ) {
            // Already listed: only the record changes.
            (m.status, m.role, m.expiresAt, m.viaOracle) = (Status.Pending, role, 0, false);
        } else {
            revert InvalidStatus(msg.sender, status);
        }
        emit JoinRequested(msg.sender, role);
        if (verify) _requestVerification(msg.sender, role, endpoint);
    }

    /// @notice Approves a pending join request, without expiry.
    /// @param account The account that requested to join.
    function approve(address account) external onlyAdmin {
        Member storage m = _members[account];
        if (m.status != Status.Pending) revert InvalidStatus(account, m.status);
        m.status = Status.Enrolled;
        m.expiresAt = 0;
        m.viaOracle = false;
        emit Enrolled(account, m.role, 0, msg.sender);
    }

    /// @notice The oracle's answer to a join verification request (only through `fulfil`, with
    /// the attestation of an oracle enrolled here). Verified: the account is enrolled in its
    /// requested role, without expiry; not verified: its request is rejected. Nothing changes
    /// when the answer no longer applies (see the contract notes).
    /// @param requestId The oracle request (from `JoinVerificationRequested`).
    /// @param verified Whether the identity endpoint verified the account for the role.
    function onIdentityVerified(bytes32 requestId, bool verified) external onlyOracleCallback {
        address account = _joinRequestAccount[requestId];
        Member storage m = _members[account];
        if (
            m.status != Status.Pending || _joinRequestOf[account] != requestId
                || bytes(_approvalEndpoint).length == 0
        ) {
            emit IdentityAnswerIgnored(requestId, account, verified);
            return;
        }
        address oracle = _answeringOracle();
        if (verified) {
            (m.status, m.expiresAt, m.viaOracle) = (Status.Enrolled, 0, true);
            emit Enrolled(account, m.role, 0, oracle);
        } else {
            m.status = Status.Rejected;
            emit JoinRejected(account, m.role, oracle);
        }
    }

    /// @notice Turns oracle approval of join requests on (an endpoint name of the oracle's
    /// config) or off (empty: the admin approves them). Requests already sent keep their
    /// deadline, but their answers apply only while oracle approval is on.
    /// @param endpoint The identity-verification endpoint's name (never a URL), or empty.
    /// @param windowSeconds How long the oracle has to answer a request (>= 1; ignored when off).
    function setOracleApproval(string calldata endpoint, uint32 windowSeconds) external onlyAdmin {
        if (bytes(endpoint).length == 0) windowSeconds = 0;
        else if (windowSeconds == 0) revert InvalidApprovalWindow(windowSeconds);
        _approvalEndpoint = endpoint;
        _approvalWindow = windowSeconds;
        emit OracleApprovalChanged(endpoint, windowSeconds, msg.sender);
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
    /// @return status None, Pending, Enrolled, Suspended, Revoked or Rejected (as uint8).
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

    /// @notice Whether each account's enrollment came from the oracle's answer (not from the
    /// admin): true for an enrolled or suspended account the oracle approved.
    /// @param accounts The accounts.
    /// @return flags One per account, in order.
    function enrolledByOracle(address[] calldata accounts) external view returns (bool[] memory flags) {
        flags = new bool[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            Member storage m = _members[accounts[i]];
            flags[i] = m.viaOracle && (m.status == Status.Enrolled || m.status == Status.Suspended);
        }
    }

    /// @notice How join requests are approved.
    /// @return endpoint The identity-verification endpoint's name (empty: by the admin only).
    /// @return windowSeconds How long the oracle has to answer a request.
    function oracleApproval() external view returns (string memory endpoint, uint32 windowSeconds) {
        return (_approvalEndpoint, _approvalWindow);
    }

    /// @notice The latest join verification request of `account` (zero: none); its state is
    /// `oracleRequestOf(requestId)`.
    /// @param account The account.
    /// @return requestId The oracle request id.
    function joinRequestOf(address account) external view returns (bytes32 requestId) {
        return _joinRequestOf[account];
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

    /// @dev An oracle enrolled here, which includes the admin (it decides the membership anyway).
    function _isOracle(address signer) internal view override returns (bool) {
        return isEnrolled(signer, Roles.Oracle);
    }

    /// @dev Sends `account`'s join request to the identity endpoint.
    function _requestVerification(address account, uint8 role, string memory endpoint) private {
        bytes32 id = _requestData(
            endpoint,
            _oracleParams("account", _hexString(abi.encodePacked(account)), "role", Roles.name(role)),
            this.onIdentityVerified.selector,
            uint64(block.timestamp) + _approvalWindow
        );
        _joinRequestAccount[id] = account;
        _joinRequestOf[account] = id;
        emit JoinVerificationRequested(account, id);
    }

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
        _members[account] =
            Member({status: Status.Enrolled, role: role, expiresAt: expiresAt, older: older, viaOracle: false});
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
