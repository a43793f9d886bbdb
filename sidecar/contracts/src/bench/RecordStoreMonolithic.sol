// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TwoStepAdmin} from "../TwoStepAdmin.sol";
import {RecordCodec, ReadingStatus} from "./RecordCodec.sol";

/// @title RecordStoreMonolithic
/// @notice Gas benchmark, monolithic side: RecordStore written as one contract. The same API,
/// events, two-step admin and retirement (every state change reverts after `retire`), and the
/// same storage words per write (packed with the same RecordCodec), but the records live in
/// this contract's own storage, so a new version must be redeployed and the records migrated
/// into it (`ids`/`get` to enumerate the old one, admin-only `putMany` to fill the new one).
contract RecordStoreMonolithic is TwoStepAdmin {
    /// @notice A record as migrated by `putMany` (the original timestamp is kept).
    struct Record {
        uint256 value;
        address device;
        uint64 timestamp;
        ReadingStatus status;
    }

    /// @notice The contract was retired; its data stays readable.
    error ContractRetired();
    /// @notice `ids` and `records` differ in length.
    error LengthMismatch(uint256 ids, uint256 records);
    /// @notice `index` is not below `count()`.
    error IndexOutOfRange(uint256 index, uint256 count);
    /// @notice A reading needs a device and a status other than None.
    error InvalidRecord();

    /// @notice The contract was retired by `by`.
    event Retired(address indexed by);
    /// @notice Device `device` reported `value` for record `id` at `timestamp`.
    event RecordPut(
        uint256 indexed id, address indexed device, uint256 value, uint64 timestamp, ReadingStatus status
    );
    /// @notice The admin migrated `count` records in (one event per batch).
    event RecordsImported(uint256 count);

    // Shares TwoStepAdmin's `_admin` slot, as in KontraktContract.
    bool private _retired;
    mapping(uint256 => uint256) private _values;
    mapping(uint256 => uint256) private _meta;
    uint256[] private _ids;

    /// @param admin_ The admin, who may migrate records in with `putMany` (cannot be zero).
    constructor(address admin_) TwoStepAdmin(admin_) {}

    /// @dev Guards every state-changing function: nothing changes after `retire`.
    modifier whenActive() {
        if (_retired) revert ContractRetired();
        _;
    }

    // ---------------------------------------------------------------- admin

    /// @notice Whether the contract was retired (every state-changing function reverts).
    /// @return True once retired.
    function retired() external view returns (bool) {
        return _retired;
    }

    /// @notice Retires this version for good: every state-changing function reverts with
    /// `ContractRetired` afterwards; the data stays readable.
    function retire() external onlyAdmin whenActive {
        _retired = true;
        emit Retired(msg.sender);
    }

    // ---------------------------------------------------------------- records

    /// @notice Stores a reading as record `id` (creates it if new), stamped with the block time.
    /// @param id The record id.
    /// @param device The reporting device (not zero).
    /// @param value The reading.
    /// @param status Normal or Alarm.
    function put(uint256 id, address device, uint256 value, ReadingStatus status) external whenActive {
        if (device == address(0) || status == ReadingStatus.None) revert InvalidRecord();
        uint64 timestamp = uint64(block.timestamp);
        _store(id, value, RecordCodec.pack(device, timestamp, status));
        emit RecordPut(id, device, value, timestamp, status);
    }

    /// @notice Migration: stores many records at once, keeping their timestamps; admin only.
    /// @param ids_ The record ids.
    /// @param records The records, one per id.
    function putMany(uint256[] calldata ids_, Record[] calldata records) external onlyAdmin whenActive {
        if (ids_.length != records.length) revert LengthMismatch(ids_.length, records.length);
        for (uint256 i = 0; i < ids_.length; ++i) {
            Record calldata r = records[i];
            if (r.device == address(0) || r.status == ReadingStatus.None) revert InvalidRecord();
            _store(ids_[i], r.value, RecordCodec.pack(r.device, r.timestamp, r.status));
        }
        emit RecordsImported(ids_.length);
    }

    /// @notice Record `id` (all zero if unset).
    /// @param id The record id.
    /// @return value The reading.
    /// @return device The reporting device.
    /// @return timestamp When it was stored.
    /// @return status None if the record does not exist.
    function get(uint256 id)
        external
        view
        returns (uint256 value, address device, uint64 timestamp, ReadingStatus status)
    {
        value = _values[id];
        (device, timestamp, status) = RecordCodec.unpack(_meta[id]);
    }

    /// @notice How many distinct records exist.
    /// @return The number of records.
    function count() external view returns (uint256) {
        return _ids.length;
    }

    /// @notice The id of the `index`-th record, in creation order (to enumerate them).
    /// @param index The position, below `count()`.
    /// @return The record id.
    function ids(uint256 index) external view returns (uint256) {
        uint256 n = _ids.length;
        if (index >= n) revert IndexOutOfRange(index, n);
        return _ids[index];
    }

    function _store(uint256 id, uint256 value, uint256 meta) private {
        bool isNew = !RecordCodec.exists(_meta[id]);
        _values[id] = value;
        _meta[id] = meta;
        if (isNew) _ids.push(id);
    }
}
