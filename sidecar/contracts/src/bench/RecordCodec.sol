// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Status of an IoT asset reading; None marks an absent record.
enum ReadingStatus {
    None,
    Normal,
    Alarm
}

/// @title RecordCodec
/// @notice The benchmark record, shared by RecordStore (pair) and RecordStoreMonolithic so both
/// store exactly the same words: an IoT asset reading with `value` (word 1) and
/// `device | timestamp << 160 | status << 224` (word 2, packed as Solidity would pack a
/// struct `{address device; uint64 timestamp; ReadingStatus status;}`).
library RecordCodec {
    /// @dev Packs the second word of a record.
    function pack(address device, uint64 timestamp, ReadingStatus status) internal pure returns (uint256) {
        return uint256(uint160(device)) | (uint256(timestamp) << 160) | (uint256(uint8(status)) << 224);
    }

    /// @dev Unpacks the second word of a record.
    function unpack(uint256 meta) internal pure returns (address device, uint64 timestamp, ReadingStatus status) {
        device = address(uint160(meta));
        timestamp = uint64(meta >> 160);
        status = ReadingStatus(uint8(meta >> 224));
    }

    /// @dev Whether a packed word belongs to an existing record (status is never None once written).
    function exists(uint256 meta) internal pure returns (bool) {
        return meta >> 224 != 0;
    }
}
