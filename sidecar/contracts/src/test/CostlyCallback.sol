// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {OracleRequests} from "../OracleRequests.sol";

/// @title GasSink
/// @notice Test only: burns gas with fresh storage writes, for `CostlyCallback`'s nested call.
contract GasSink {
    mapping(uint256 => uint256) public slots;
    uint256 public calls;

    /// @notice Writes `count` fresh slots (about 22,100 gas each).
    function burn(uint256 count) external {
        uint256 base = ++calls * 1_000;
        for (uint256 i = 0; i < count; ++i) {
            slots[base + i] = i + 1;
        }
    }
}

/// @title CostlyCallback
/// @notice Test only: an oracle client whose callback makes a costly nested call — the shape
/// a gas-griefing sender needs (a gas limit at which the nested call runs out of gas while
/// the callback itself still sees an ordinary revert). The sidecar's tests sweep `fulfil`'s
/// gas limit over it.
contract CostlyCallback is OracleRequests {
    address public immutable oracle;
    GasSink public immutable sink;
    uint256 public stored;

    /// @param oracle_ The only account whose attestations are accepted.
    constructor(address oracle_) {
        oracle = oracle_;
        sink = new GasSink();
    }

    /// @notice Asks endpoint `Costly` for a uint256, committing `callbackGas` for the callback.
    function ask(uint32 callbackGas) external returns (bytes32) {
        return _requestData("Costly", "", this.onAnswer.selector, uint64(block.timestamp + 3600), callbackGas);
    }

    /// @notice The callback: twelve fresh storage writes in another contract, then the value.
    function onAnswer(bytes32, uint256 value) external onlyOracleCallback {
        sink.burn(12);
        stored = value;
    }

    function _isOracle(address signer) internal view override returns (bool) {
        return signer == oracle;
    }
}
