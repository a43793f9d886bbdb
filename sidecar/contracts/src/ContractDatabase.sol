// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TwoStepAdmin} from "./TwoStepAdmin.sol";

/// @title ContractDatabase
/// @notice The Contract Database C_d of one logic contract C: typed key-value storage that
/// outlives logic upgrades. Only the current logic version (the writer) may write; the
/// admin switches versions and can freeze writes (read-only mode) during an upgrade. A logic
/// contract that retires itself (`retireLogic`) can never write again, here or after a switch.
/// @dev Deployed through a CREATE2 factory, so the admin is a constructor argument, never
/// msg.sender. Keys of different types are independent: `setUint(k, ..)` and
/// `setString(k, ..)` do not overlap.
/// Gas: the writer, its version, read-only mode and the writer's retirement share one storage
/// slot, so a write checks all of them with one SLOAD; data writes emit no event (the logic
/// contract emits its domain events, the database only logs admin and writer changes);
/// `upsertUints` (record + id index), `setUints` and `getUints` move a whole record in one call.
contract ContractDatabase is TwoStepAdmin {
    /// @notice One word of a batch write: `value` goes under `key`.
    struct UintEntry {
        bytes32 key;
        uint256 value;
    }

    /// @notice The caller is not the current writer (logic contract).
    error NotWriter(address caller);
    /// @notice Writes are frozen (an upgrade is in progress).
    error DatabaseReadOnly();
    /// @notice A new writer's version must be strictly greater than the current one.
    error VersionNotNewer(uint64 current, uint64 proposed);
    /// @notice The address has no code, so it cannot be a logic contract.
    error NotAContract(address account);
    /// @notice The logic contract retired itself: it can never write again.
    error LogicIsRetired(address logic);
    /// @notice A record upsert needs at least its marker word.
    error EmptyRecord();

    /// @notice The writer (logic version) changed.
    event WriterChanged(address indexed previous, address indexed next, uint64 version);
    /// @notice Read-only mode was switched.
    event ReadOnlyChanged(bool readOnly);
    /// @notice The logic contract `logic` retired itself; it can never write again.
    event LogicRetired(address indexed logic);

    // writer, writerVersion, readOnly and writerRetired share one slot (20 + 8 + 1 + 1 bytes,
    // the first slot after TwoStepAdmin's): every write checks all of them with one SLOAD.
    // Keep these four declared together and in this order: `_checkWriter` reads them by offset.
    address private _writer;
    uint64 private _writerVersion;
    bool private _readOnly;
    bool private _writerRetired;

    mapping(bytes32 => uint256) private _uints;
    mapping(bytes32 => int256) private _ints;
    mapping(bytes32 => address) private _addresses;
    mapping(bytes32 => bool) private _bools;
    mapping(bytes32 => bytes32) private _bytes32s;
    mapping(bytes32 => string) private _strings;
    mapping(bytes32 => bytes) private _bytes;
    mapping(address => bool) private _retiredLogic;

    /// @notice Creates the database with no writer; the admin sets the first writer.
    /// @param admin_ The admin (cannot be zero).
    constructor(address admin_) TwoStepAdmin(admin_) {}

    modifier onlyWriter() {
        _checkWriter();
        _;
    }

    /// @dev One SLOAD: the packed writer slot holds writer, version, readOnly and
    /// writerRetired.
    function _checkWriter() private view {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(_writer.slot)
        }
        if (msg.sender != address(uint160(word))) revert NotWriter(msg.sender);
        // byte 28: _readOnly, byte 29: _writerRetired (after 20 bytes writer + 8 bytes version)
        if (word >> 224 != 0) {
            if ((word >> 224) & 0xff != 0) revert DatabaseReadOnly();
            revert LogicIsRetired(msg.sender);
        }
    }

    // ---------------------------------------------------------------- writer

    /// @notice The logic contract currently allowed to write (zero before the first `setWriter`).
    /// @return The writer address.
    function writer() external view returns (address) {
        return _writer;
    }

    /// @notice The version number of the current writer.
    /// @return The writer's version.
    function writerVersion() external view returns (uint64) {
        return _writerVersion;
    }

    /// @notice Makes `logic` the only writer, atomically: deploy the new logic first, then one
    /// `setWriter(new, v+1)` is the whole switch (the old version's writes land before it or
    /// revert with `NotWriter` after it). Also allowed while read-only, for longer upgrades:
    /// `setReadOnly(true)`, deploy, `setWriter`, `setReadOnly(false)`. Clears `writerRetired`.
    /// @param logic The new logic contract (must have code).
    /// @param version Its version; must be strictly greater than the current one, except for the first writer.
    /// A logic contract that retired itself (`isRetired`) is refused with `LogicIsRetired`.
    function setWriter(address logic, uint64 version) external onlyAdmin {
        if (logic.code.length == 0) revert NotAContract(logic);
        if (_retiredLogic[logic]) revert LogicIsRetired(logic);
        address previous = _writer;
        if (previous != address(0) && version <= _writerVersion) revert VersionNotNewer(_writerVersion, version);
        _writer = logic;
        _writerVersion = version;
        _writerRetired = false;
        emit WriterChanged(previous, logic, version);
    }

    /// @notice Retires the calling logic contract for good: it can never write again, and
    /// `setWriter` refuses it. `KontraktContract.retire()` calls this. Any caller may retire
    /// only itself; the data stays readable. Allowed while read-only.
    function retireLogic() external {
        _retiredLogic[msg.sender] = true;
        if (msg.sender == _writer) _writerRetired = true;
        emit LogicRetired(msg.sender);
    }

    /// @notice Whether `logic` retired itself at this database.
    /// @param logic The logic contract.
    /// @return True once `logic` called `retireLogic`.
    function isRetired(address logic) external view returns (bool) {
        return _retiredLogic[logic];
    }

    /// @notice Whether the current writer retired itself (then every write reverts until the
    /// admin switches to a new writer).
    /// @return True while the current writer is retired.
    function writerRetired() external view returns (bool) {
        return _writerRetired;
    }

    /// @notice Whether writes are frozen.
    /// @return True while read-only.
    function readOnly() external view returns (bool) {
        return _readOnly;
    }

    /// @notice Freezes or unfreezes writes (used during an upgrade).
    /// @param readOnly_ True to freeze writes.
    function setReadOnly(bool readOnly_) external onlyAdmin {
        _readOnly = readOnly_;
        emit ReadOnlyChanged(readOnly_);
    }

    // ---------------------------------------------------------------- value

    /// @notice Ether the logic keeps on behalf of its users (escrows, deposits) lives here,
    /// beside the records that account for it, and only the current writer moves it: value
    /// follows the data across upgrades, so version 2 pays out what version 1 took in and a
    /// replaced logic holds nothing. The logic keeps the per-record accounting (whose money,
    /// how much) in its records, as with any other data.
    event ValueDeposited(address indexed writer, uint256 amount);
    /// @notice The writer paid `amount` of the held ether to `to`.
    event ValuePaid(address indexed writer, address indexed to, uint256 amount);

    /// @notice Sending held ether failed.
    error ValueTransferFailed(address to, uint256 amount);

    /// @notice Takes `msg.value` into the database's custody; the current writer only.
    function depositValue() external payable onlyWriter {
        emit ValueDeposited(msg.sender, msg.value);
    }

    /// @notice Pays `amount` of the held ether to `to`; the current writer only.
    /// @param to The recipient.
    /// @param amount The amount, in wei.
    function payValue(address to, uint256 amount) external onlyWriter {
        emit ValuePaid(msg.sender, to, amount);
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert ValueTransferFailed(to, amount);
    }

    /// @notice The ether held for the logic, in wei.
    /// @return The database's balance.
    function heldValue() external view returns (uint256) {
        return address(this).balance;
    }

    // ---------------------------------------------------------------- uint256

    /// @notice Stores an unsigned integer under `key`.
    /// @param key The key.
    /// @param value The value.
    function setUint(bytes32 key, uint256 value) external onlyWriter {
        _uints[key] = value;
    }

    /// @notice Stores many unsigned integers in one call (e.g. every word of one record).
    /// @param entries The (key, value) pairs.
    function setUints(UintEntry[] calldata entries) external onlyWriter {
        // Same slots as `_uints[e.key] = e.value`, without per-element bounds checks (the ABI
        // decoder checked that the array lies inside the calldata).
        assembly ("memory-safe") {
            mstore(0x20, _uints.slot)
            for { let e := entries.offset } lt(e, add(entries.offset, shl(6, entries.length))) { e := add(e, 0x40) } {
                mstore(0, calldataload(e))
                sstore(keccak256(0, 0x40), calldataload(add(e, 0x20)))
            }
        }
    }

    /// @notice Upserts one record in one call: stores its `entries` and, if the record is new,
    /// appends `id` to the list `index` (see `pushUint`). The first entry is the record's
    /// marker: the record exists when that word was non-zero before this call, so callers keep a
    /// non-zero word (e.g. a status) first. Reading the marker before writing it costs no extra
    /// storage gas: the write is then warm.
    /// @param index The list of record ids (its length is the record count).
    /// @param id The record's id, appended to `index` when the record is new.
    /// @param entries The record's (key, value) pairs, marker first (at least one).
    /// @return created True if the record did not exist before.
    function upsertUints(bytes32 index, uint256 id, UintEntry[] calldata entries)
        external
        onlyWriter
        returns (bool created)
    {
        if (entries.length == 0) revert EmptyRecord();
        assembly ("memory-safe") {
            mstore(0x20, _uints.slot)
            let e := entries.offset
            mstore(0, calldataload(e))
            let slot := keccak256(0, 0x40)
            created := iszero(sload(slot))
            sstore(slot, calldataload(add(e, 0x20)))
            for { e := add(e, 0x40) } lt(e, add(entries.offset, shl(6, entries.length))) { e := add(e, 0x40) } {
                mstore(0, calldataload(e))
                sstore(keccak256(0, 0x40), calldataload(add(e, 0x20)))
            }
        }
        if (created) _push(index, id);
    }

    /// @notice Appends `value` to the list `list`: the list's length is `getUint(list)`, its
    /// element `i` is `getUint(keccak256(abi.encode(list, i)))` (also `getUintAt`).
    /// @param list The list's key.
    /// @param value The value to append.
    /// @return index The new element's position.
    function pushUint(bytes32 list, uint256 value) external onlyWriter returns (uint256 index) {
        return _push(list, value);
    }

    /// @notice Element `index` of the list `list` (see `pushUint`; 0 past its end).
    /// @param list The list's key.
    /// @param index The position.
    /// @return The element.
    function getUintAt(bytes32 list, uint256 index) external view returns (uint256) {
        return _uints[_elementKey(list, index)];
    }

    /// @dev `_uints[_elementKey(list, n)] = value; _uints[list] = n + 1` (n < 2^256 - 1: one
    /// element per transaction-funded SSTORE cannot overflow it).
    function _push(bytes32 list, uint256 value) private returns (uint256 index) {
        assembly ("memory-safe") {
            mstore(0, list)
            mstore(0x20, _uints.slot)
            let lengthSlot := keccak256(0, 0x40)
            index := sload(lengthSlot)
            mstore(0x20, index)
            mstore(0, keccak256(0, 0x40)) // the element's key: keccak256(abi.encode(list, index))
            mstore(0x20, _uints.slot)
            sstore(keccak256(0, 0x40), value)
            sstore(lengthSlot, add(index, 1))
        }
    }

    /// @dev keccak256(abi.encode(list, index)), hashed in scratch space.
    function _elementKey(bytes32 list, uint256 index) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0, list)
            mstore(0x20, index)
            key := keccak256(0, 0x40)
        }
    }

    /// @notice Reads many unsigned integers in one call (0 for each unset key).
    /// @param keys The keys.
    /// @return values The values, one per key.
    function getUints(bytes32[] calldata keys) external view returns (uint256[] memory values) {
        values = new uint256[](keys.length);
        for (uint256 i = 0; i < keys.length; ++i) {
            values[i] = _uints[keys[i]];
        }
    }

    /// @notice Reads the unsigned integer under `key` (0 if unset).
    /// @param key The key.
    /// @return The value.
    function getUint(bytes32 key) external view returns (uint256) {
        return _uints[key];
    }

    /// @notice Deletes the unsigned integer under `key`.
    /// @param key The key.
    function deleteUint(bytes32 key) external onlyWriter {
        delete _uints[key];
    }

    // ---------------------------------------------------------------- int256

    /// @notice Stores a signed integer under `key`.
    /// @param key The key.
    /// @param value The value.
    function setInt(bytes32 key, int256 value) external onlyWriter {
        _ints[key] = value;
    }

    /// @notice Reads the signed integer under `key` (0 if unset).
    /// @param key The key.
    /// @return The value.
    function getInt(bytes32 key) external view returns (int256) {
        return _ints[key];
    }

    /// @notice Deletes the signed integer under `key`.
    /// @param key The key.
    function deleteInt(bytes32 key) external onlyWriter {
        delete _ints[key];
    }

    // ---------------------------------------------------------------- address

    /// @notice Stores an address under `key`.
    /// @param key The key.
    /// @param value The value.
    function setAddress(bytes32 key, address value) external onlyWriter {
        _addresses[key] = value;
    }

    /// @notice Reads the address under `key` (zero if unset).
    /// @param key The key.
    /// @return The value.
    function getAddress(bytes32 key) external view returns (address) {
        return _addresses[key];
    }

    /// @notice Deletes the address under `key`.
    /// @param key The key.
    function deleteAddress(bytes32 key) external onlyWriter {
        delete _addresses[key];
    }

    // ---------------------------------------------------------------- bool

    /// @notice Stores a boolean under `key`.
    /// @param key The key.
    /// @param value The value.
    function setBool(bytes32 key, bool value) external onlyWriter {
        _bools[key] = value;
    }

    /// @notice Reads the boolean under `key` (false if unset).
    /// @param key The key.
    /// @return The value.
    function getBool(bytes32 key) external view returns (bool) {
        return _bools[key];
    }

    /// @notice Deletes the boolean under `key`.
    /// @param key The key.
    function deleteBool(bytes32 key) external onlyWriter {
        delete _bools[key];
    }

    // ---------------------------------------------------------------- bytes32

    /// @notice Stores a 32-byte word under `key`.
    /// @param key The key.
    /// @param value The value.
    function setBytes32(bytes32 key, bytes32 value) external onlyWriter {
        _bytes32s[key] = value;
    }

    /// @notice Reads the 32-byte word under `key` (zero if unset).
    /// @param key The key.
    /// @return The value.
    function getBytes32(bytes32 key) external view returns (bytes32) {
        return _bytes32s[key];
    }

    /// @notice Deletes the 32-byte word under `key`.
    /// @param key The key.
    function deleteBytes32(bytes32 key) external onlyWriter {
        delete _bytes32s[key];
    }

    // ---------------------------------------------------------------- string

    /// @notice Stores a string under `key`.
    /// @param key The key.
    /// @param value The value.
    function setString(bytes32 key, string calldata value) external onlyWriter {
        _strings[key] = value;
    }

    /// @notice Reads the string under `key` (empty if unset).
    /// @param key The key.
    /// @return The value.
    function getString(bytes32 key) external view returns (string memory) {
        return _strings[key];
    }

    /// @notice Deletes the string under `key`.
    /// @param key The key.
    function deleteString(bytes32 key) external onlyWriter {
        delete _strings[key];
    }

    // ---------------------------------------------------------------- bytes

    /// @notice Stores a byte string under `key`.
    /// @param key The key.
    /// @param value The value.
    function setBytes(bytes32 key, bytes calldata value) external onlyWriter {
        _bytes[key] = value;
    }

    /// @notice Reads the byte string under `key` (empty if unset).
    /// @param key The key.
    /// @return The value.
    function getBytes(bytes32 key) external view returns (bytes memory) {
        return _bytes[key];
    }

    /// @notice Deletes the byte string under `key`.
    /// @param key The key.
    function deleteBytes(bytes32 key) external onlyWriter {
        delete _bytes[key];
    }
}
