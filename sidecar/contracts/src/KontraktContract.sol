// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ContractDatabase} from "./ContractDatabase.sol";
import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {TwoStepAdmin} from "./TwoStepAdmin.sol";

/// @title KontraktContract
/// @notice Base of every user logic contract run by kontrakt: keeps its data in a separate
/// ContractDatabase (so a new logic version is cheap to deploy) and checks roles against an
/// optional EnrollmentRegistry. Contracts that ask the sidecar's oracle for off-chain data
/// inherit `KontraktOracle` (which extends this base) instead; keeping the oracle code out of
/// this base keeps every other logic contract's runtime code, and so its upgrade deploy, small.
/// @dev Every logic contract takes exactly `(address database_, address registry_, address admin_)`
/// as constructor arguments, in this order, so the sidecar deploys any template the same way
/// (through a CREATE2 factory: the admin is an argument, never msg.sender). The logic can
/// only write after the database admin made it the writer (`ContractDatabase.setWriter`).
/// Retirement is enforced by the database: after `retire()` every database write of this
/// contract reverts (`LogicIsRetired`), so a function that writes the database on every
/// successful path needs no `whenActive` (saving a cold SLOAD); functions that can change
/// state without writing the database keep it.
abstract contract KontraktContract is TwoStepAdmin {
    /// @notice The contract was retired; its data stays readable in the database.
    error ContractRetired();
    /// @notice `account` is not enrolled in `role` in the registry.
    error NotEnrolled(address account, uint8 role);
    /// @notice The address has no code, so it cannot be the database.
    error NotAContract(address account);
    /// @notice Bubbled up from the ContractDatabase: this logic is not (or no longer) its writer.
    error NotWriter(address caller);
    /// @notice Bubbled up from the ContractDatabase: writes are frozen during an upgrade.
    error DatabaseReadOnly();
    /// @notice A batch write's `keys` and `values` differ in length.
    error LengthMismatch(uint256 keys, uint256 values);
    /// @notice Bubbled up from the ContractDatabase: this logic was retired and can never write again.
    error LogicIsRetired(address logic);

    /// @notice The contract was retired by `by`.
    event Retired(address indexed by);

    ContractDatabase private immutable _database;
    address private immutable _registry;

    // Shares TwoStepAdmin's `_admin` slot, so `onlyAdmin whenActive` is one SLOAD.
    bool private _retired;

    /// @param database_ The ContractDatabase holding this contract's data (must have code).
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin (cannot be zero).
    constructor(address database_, address registry_, address admin_) TwoStepAdmin(admin_) {
        if (database_.code.length == 0) revert NotAContract(database_);
        _database = ContractDatabase(database_);
        _registry = registry_;
    }

    /// @dev Nothing changes after `retire`. Needed on state-changing functions that can succeed
    /// without writing the database (e.g. oracle bookkeeping, ether transfers). A function that
    /// writes the database on every successful path needs no guard: the database refuses writes
    /// from a retired logic contract, which reverts the whole call.
    modifier whenActive() {
        if (_retired) revert ContractRetired();
        _;
    }

    /// @dev Without a registry there is no policy and everyone is allowed.
    modifier onlyEnrolled(uint8 role) {
        if (!_isEnrolled(msg.sender, role)) revert NotEnrolled(msg.sender, role);
        _;
    }

    // ---------------------------------------------------------------- views

    /// @notice The database holding this contract's data.
    /// @return The ContractDatabase address.
    function database() external view returns (address) {
        return address(_database);
    }

    /// @notice The enrollment registry (zero: no enrollment policy).
    /// @return The EnrollmentRegistry address.
    /// @dev Public, so derived contracts read the private immutable without an external call.
    function registry() public view returns (address) {
        return _registry;
    }

    /// @notice Whether the contract was retired (every state-changing logic function reverts).
    /// @return True once retired.
    function retired() external view returns (bool) {
        return _retired;
    }

    // ---------------------------------------------------------------- admin

    /// @notice Retires this logic version for good: every state-changing logic function reverts
    /// afterwards (`LogicIsRetired` from the database for writes, `ContractRetired` for the
    /// rest); the data stays readable in the database. Also marks this contract retired at the
    /// database (`ContractDatabase.retireLogic`), which then never accepts it as writer again.
    function retire() external onlyAdmin whenActive {
        _retired = true;
        _database.retireLogic();
        emit Retired(msg.sender);
    }

    // ---------------------------------------------------------------- access helpers

    /// @dev Whether `account` holds `role`; always true without a registry (no policy).
    function _isEnrolled(address account, uint8 role) internal view returns (bool) {
        return _registry == address(0) || IEnrollmentRegistry(_registry).isEnrolled(account, role);
    }

    // ---------------------------------------------------------------- database helpers

    /// @dev The database as a typed contract, for calls the helpers below do not cover.
    function _db() internal view returns (ContractDatabase) {
        return _database;
    }

    /// @dev Puts `amount` of the ether this call received into the database's custody, where
    /// every later version can pay it out: a logic contract that takes value in should call
    /// this rather than hold it (`ContractDatabase.depositValue`).
    function _depositValue(uint256 amount) internal {
        _database.depositValue{value: amount}();
    }

    /// @dev Pays `amount` of the database's held ether to `to` (`ContractDatabase.payValue`).
    function _payValue(address to, uint256 amount) internal {
        _database.payValue(to, amount);
    }

    function _setUint(bytes32 key, uint256 value) internal {
        _database.setUint(key, value);
    }

    /// @dev Writes many words (e.g. one record) in one database call
    /// (`ContractDatabase.setUints`, entry i = (keys[i], values[i])). The calldata is built
    /// directly (the same ABI encoding as a high-level call, in fewer steps); a revert of the
    /// database bubbles up unchanged.
    function _setUints(bytes32[] memory keys, uint256[] memory values) internal {
        address db = address(_database);
        bytes4 selector = ContractDatabase.setUints.selector;
        uint256 n = keys.length;
        if (values.length != n) revert LengthMismatch(n, values.length);
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), 0x20) // offset of the entries array
            mstore(add(ptr, 0x24), n)
            let out := add(ptr, 0x44)
            let d := sub(values, keys)
            for { let k := add(keys, 0x20) } lt(k, add(keys, shl(5, add(n, 1)))) { k := add(k, 0x20) } {
                mstore(out, mload(k))
                mstore(add(out, 0x20), mload(add(k, d)))
                out := add(out, 0x40)
            }
            if iszero(call(gas(), db, 0, ptr, sub(out, ptr), 0, 0)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
        }
    }

    /// @dev Upserts one record in one database call (`ContractDatabase.upsertUints`): `keys[0]`
    /// is the record's non-zero marker word; a new record's `id` is appended to the list `index`.
    /// Encoded directly like `_setUints`.
    /// @return created True if the record is new.
    function _upsertUints(bytes32 index, uint256 id, bytes32[] memory keys, uint256[] memory values)
        internal
        returns (bool created)
    {
        address db = address(_database);
        bytes4 selector = ContractDatabase.upsertUints.selector;
        uint256 n = keys.length;
        if (values.length != n) revert LengthMismatch(n, values.length);
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), index)
            mstore(add(ptr, 0x24), id)
            mstore(add(ptr, 0x44), 0x60) // offset of the entries array
            mstore(add(ptr, 0x64), n)
            let out := add(ptr, 0x84)
            let d := sub(values, keys)
            for { let k := add(keys, 0x20) } lt(k, add(keys, shl(5, add(n, 1)))) { k := add(k, 0x20) } {
                mstore(out, mload(k))
                mstore(add(out, 0x20), mload(add(k, d)))
                out := add(out, 0x40)
            }
            if iszero(call(gas(), db, 0, ptr, sub(out, ptr), 0, 0x20)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            created := mload(0)
        }
    }

    /// @dev Appends to a database list (length at `list`, elements at keccak256(list, i)).
    function _pushUint(bytes32 list, uint256 value) internal returns (uint256 index) {
        address db = address(_database);
        bytes4 selector = ContractDatabase.pushUint.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), list)
            mstore(add(ptr, 0x24), value)
            if iszero(call(gas(), db, 0, ptr, 0x44, 0, 0x20)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            index := mload(0)
        }
    }

    /// @dev Element `index` of a database list.
    function _getUintAt(bytes32 list, uint256 index) internal view returns (uint256) {
        return _database.getUintAt(list, index);
    }

    /// @dev Reads many words in one database call.
    function _getUints(bytes32[] memory keys) internal view returns (uint256[] memory) {
        return _database.getUints(keys);
    }

    /// @dev One word from the database (a plain `getUint` STATICCALL, encoded directly).
    function _getUint(bytes32 key) internal view returns (uint256 value) {
        address db = address(_database);
        bytes4 selector = ContractDatabase.getUint.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), key)
            if iszero(staticcall(gas(), db, ptr, 0x24, 0, 0x20)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            value := mload(0)
        }
    }

    function _deleteUint(bytes32 key) internal {
        _database.deleteUint(key);
    }

    function _setInt(bytes32 key, int256 value) internal {
        _database.setInt(key, value);
    }

    function _getInt(bytes32 key) internal view returns (int256) {
        return _database.getInt(key);
    }

    function _deleteInt(bytes32 key) internal {
        _database.deleteInt(key);
    }

    function _setAddress(bytes32 key, address value) internal {
        _database.setAddress(key, value);
    }

    function _getAddress(bytes32 key) internal view returns (address) {
        return _database.getAddress(key);
    }

    function _deleteAddress(bytes32 key) internal {
        _database.deleteAddress(key);
    }

    function _setBool(bytes32 key, bool value) internal {
        _database.setBool(key, value);
    }

    function _getBool(bytes32 key) internal view returns (bool) {
        return _database.getBool(key);
    }

    function _deleteBool(bytes32 key) internal {
        _database.deleteBool(key);
    }

    function _setBytes32(bytes32 key, bytes32 value) internal {
        _database.setBytes32(key, value);
    }

    function _getBytes32(bytes32 key) internal view returns (bytes32) {
        return _database.getBytes32(key);
    }

    function _deleteBytes32(bytes32 key) internal {
        _database.deleteBytes32(key);
    }

    function _setString(bytes32 key, string memory value) internal {
        _database.setString(key, value);
    }

    function _getString(bytes32 key) internal view returns (string memory) {
        return _database.getString(key);
    }

    function _deleteString(bytes32 key) internal {
        _database.deleteString(key);
    }

    function _setBytes(bytes32 key, bytes memory value) internal {
        _database.setBytes(key, value);
    }

    function _getBytes(bytes32 key) internal view returns (bytes memory) {
        return _database.getBytes(key);
    }

    function _deleteBytes(bytes32 key) internal {
        _database.deleteBytes(key);
    }
}
