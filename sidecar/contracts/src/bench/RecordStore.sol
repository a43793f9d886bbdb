// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {KontraktContract} from "../KontraktContract.sol";
import {RecordCodec, ReadingStatus} from "./RecordCodec.sol";

/// @title RecordStore
/// @notice Gas benchmark, pair side: enumerable IoT asset readings (id => value, device,
/// timestamp, status) kept in the ContractDatabase. Same API, events, admin/retire behaviour
/// and the same storage words per write as RecordStoreMonolithic (a new id: value, packed
/// device/timestamp/status, index entry, count; an existing id: value and packed word), but a
/// new version needs no data migration.
/// @dev One record is one database call: `upsertUints` writes both words and, for a new
/// record (its packed word was zero), appends the id to the id list. Retirement is enforced by the database (`LogicIsRetired`), so `put` needs no
/// `whenActive`.
contract RecordStore is KontraktContract {
    /// @dev The database list of record ids, in creation order (its length is the count).
    bytes32 private constant IDS = "records.ids";
    bytes32 private constant VALUE = "record.value";
    bytes32 private constant META = "record.meta";

    /// @notice `index` is not below `count()`.
    error IndexOutOfRange(uint256 index, uint256 count);
    /// @notice A reading needs a device and a status other than None.
    error InvalidRecord();

    /// @notice Device `device` reported `value` for record `id` at `timestamp`.
    event RecordPut(
        uint256 indexed id, address indexed device, uint256 value, uint64 timestamp, ReadingStatus status
    );

    /// @param database_ The ContractDatabase holding the records.
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin.
    constructor(address database_, address registry_, address admin_)
        KontraktContract(database_, registry_, admin_)
    {}

    /// @notice Stores a reading as record `id` (creates it if new), stamped with the block time.
    /// @param id The record id.
    /// @param device The reporting device (not zero).
    /// @param value The reading.
    /// @param status Normal or Alarm.
    function put(uint256 id, address device, uint256 value, ReadingStatus status) external {
        if (device == address(0) || status == ReadingStatus.None) revert InvalidRecord();
        uint64 timestamp = uint64(block.timestamp);
        bytes32[] memory keys = new bytes32[](2);
        uint256[] memory values = new uint256[](2);
        // The packed word is never zero (status is not None): it marks the record as existing.
        keys[0] = _key(id, META);
        values[0] = RecordCodec.pack(device, timestamp, status);
        keys[1] = _key(id, VALUE);
        values[1] = value;
        _upsertUints(IDS, id, keys, values);
        emit RecordPut(id, device, value, timestamp, status);
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
        value = _getUint(_key(id, VALUE));
        (device, timestamp, status) = RecordCodec.unpack(_getUint(_key(id, META)));
    }

    /// @notice How many distinct records exist.
    /// @return The number of records.
    function count() external view returns (uint256) {
        return _getUint(IDS);
    }

    /// @notice The id of the `index`-th record, in creation order (to enumerate them).
    /// @param index The position, below `count()`.
    /// @return The record id.
    function ids(uint256 index) external view returns (uint256) {
        uint256 n = _getUint(IDS);
        if (index >= n) revert IndexOutOfRange(index, n);
        return _getUintAt(IDS, index);
    }

    /// @dev keccak256(abi.encode(id, field)), hashed in scratch space.
    function _key(uint256 id, bytes32 field) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0, id)
            mstore(0x20, field)
            key := keccak256(0, 0x40)
        }
    }
}
