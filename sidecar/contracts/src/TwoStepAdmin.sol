// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title TwoStepAdmin
/// @notice One admin account with a two-step transfer: the admin proposes a successor
/// (`transferAdmin`), which becomes the admin only when it accepts (`acceptAdmin`), so a typo
/// never hands the contract to an address nobody controls. Shared by ContractDatabase,
/// EnrollmentRegistry, KontraktContract and the benchmark's RecordStoreMonolithic.
/// @dev The admin is a constructor argument, never msg.sender (these contracts are deployed
/// through a CREATE2 factory). Storage: `_pendingAdmin` (one slot), then `_admin` last, so a
/// derived contract's first small state variable (e.g. KontraktContract's `bool _retired`)
/// shares `_admin`'s slot and `onlyAdmin whenActive` costs one SLOAD.
abstract contract TwoStepAdmin {
    /// @notice The caller is not the admin.
    error NotAdmin(address caller);
    /// @notice The caller is not the pending admin.
    error NotPendingAdmin(address caller);
    /// @notice The zero address is not allowed here.
    error ZeroAddress();

    /// @notice An admin transfer was started (`to` must call `acceptAdmin`); `to` zero cancels it.
    event AdminTransferStarted(address indexed from, address indexed to);
    /// @notice The admin changed.
    event AdminTransferred(address indexed from, address indexed to);

    address private _pendingAdmin;
    address private _admin;

    /// @param admin_ The admin (cannot be zero).
    constructor(address admin_) {
        if (admin_ == address(0)) revert ZeroAddress();
        _admin = admin_;
        emit AdminTransferred(address(0), admin_);
    }

    modifier onlyAdmin() {
        if (msg.sender != _admin) revert NotAdmin(msg.sender);
        _;
    }

    /// @notice The admin.
    /// @return The admin address.
    function admin() external view returns (address) {
        return _admin;
    }

    /// @notice The admin-elect of a started two-step transfer (zero if none).
    /// @return The pending admin address.
    function pendingAdmin() external view returns (address) {
        return _pendingAdmin;
    }

    /// @notice Starts a two-step admin transfer; `next` completes it with `acceptAdmin`.
    /// @param next The proposed admin (zero cancels a started transfer).
    function transferAdmin(address next) external onlyAdmin {
        _pendingAdmin = next;
        emit AdminTransferStarted(msg.sender, next);
    }

    /// @notice Completes an admin transfer; only the pending admin may call it.
    function acceptAdmin() external {
        if (msg.sender != _pendingAdmin || msg.sender == address(0)) revert NotPendingAdmin(msg.sender);
        address previous = _admin;
        _admin = msg.sender;
        _pendingAdmin = address(0);
        emit AdminTransferred(previous, msg.sender);
    }

    /// @dev Whether `account` is the admin.
    function _isAdmin(address account) internal view returns (bool) {
        return account == _admin;
    }
}
