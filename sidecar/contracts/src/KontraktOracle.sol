// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {KontraktContract} from "./KontraktContract.sol";

/// @title KontraktOracle
/// @notice Base for logic contracts that ask the sidecar's oracle for off-chain data (the
/// paper's Thing Communication): oracle requests with unique ids, `fulfil` (only from an
/// enrolled oracle with a valid attestation, once per id, before expiry) and `cancel`.
/// @dev Extends KontraktContract with the same constructor `(database_, registry_, admin_)`.
/// Only contracts that use the oracle inherit it, so the others do not carry its code. The
/// request bookkeeping lives in this contract's own storage: each logic version answers only
/// its own requests.
abstract contract KontraktOracle is KontraktContract {
    /// @notice Lifecycle of an oracle request.
    enum OracleRequestStatus {
        None,
        Pending,
        Fulfilled,
        Cancelled
    }

    struct OracleRequestRecord {
        bytes32 commitment;
        bytes4 callback;
        uint64 deadline;
        OracleRequestStatus status;
    }

    /// @notice No oracle request with this id exists.
    error UnknownRequest(bytes32 id);
    /// @notice The oracle request was already fulfilled or cancelled.
    error RequestNotPending(bytes32 id);
    /// @notice The oracle request's deadline has not passed yet, so it cannot be cancelled.
    error RequestNotExpired(bytes32 id, uint64 deadline);
    /// @notice The oracle request's deadline has passed, so it can no longer be fulfilled.
    error RequestExpired(bytes32 id, uint64 deadline);
    /// @notice An oracle request's deadline must lie in the future.
    error DeadlineNotInFuture(uint64 deadline);
    /// @notice Oracle fulfilment (attestation check and callback) is not available yet.
    error OracleNotAvailable();
    /// @notice Oracle callbacks may only be called by the contract itself (from `fulfil`).
    error NotOracleCallback(address caller);

    /// @notice The contract asks the oracle for data from the named endpoint (never a URL).
    /// The oracle answers with `fulfil(id, result, attestation)`, which calls `callback`.
    event OracleRequest(bytes32 indexed id, string endpoint, bytes params, bytes4 callback, uint64 deadline);
    /// @notice The request `id` was answered by `oracle`.
    event OracleFulfilled(bytes32 indexed id, address indexed oracle);
    /// @notice The request `id` expired unanswered and was cancelled.
    event OracleCancelled(bytes32 indexed id);

    uint64 private _oracleNonce;
    mapping(bytes32 => OracleRequestRecord) private _oracleRequests;

    /// @param database_ The ContractDatabase holding this contract's data (must have code).
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin (cannot be zero).
    constructor(address database_, address registry_, address admin_)
        KontraktContract(database_, registry_, admin_)
    {}

    /// @dev Oracle callbacks are external (so they have a selector) but run only from `fulfil`.
    modifier onlyOracleCallback() {
        if (msg.sender != address(this)) revert NotOracleCallback(msg.sender);
        _;
    }

    /// @notice The state of oracle request `id`.
    /// @param id The request id (from the `OracleRequest` event).
    /// @return status None, Pending, Fulfilled or Cancelled.
    /// @return callback The selector `fulfil` calls with the result.
    /// @return deadline The last timestamp at which the request may be fulfilled.
    /// @return commitment keccak256(abi.encode(endpoint, params, callback, deadline)).
    function oracleRequestOf(bytes32 id)
        external
        view
        returns (OracleRequestStatus status, bytes4 callback, uint64 deadline, bytes32 commitment)
    {
        OracleRequestRecord storage r = _oracleRequests[id];
        return (r.status, r.callback, r.deadline, r.commitment);
    }

    /// @notice How many oracle requests this contract has made (the next request's nonce).
    /// @return The nonce.
    function oracleNonce() external view returns (uint64) {
        return _oracleNonce;
    }

    /// @notice The commitment stored for a request, so an oracle can check the event it read.
    /// @param endpoint The endpoint name.
    /// @param params The ABI-encoded parameters.
    /// @param callback The callback selector.
    /// @param deadline The request deadline.
    /// @return keccak256(abi.encode(endpoint, params, callback, deadline)).
    function oracleCommitment(string memory endpoint, bytes memory params, bytes4 callback, uint64 deadline)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(endpoint, params, callback, deadline));
    }

    /// @notice Answers oracle request `id`. NOT AVAILABLE YET: after checking that the request
    /// is pending and not expired this always reverts with `OracleNotAvailable`; checking the
    /// enrolled oracle's attestation and calling the callback come with the oracle feature.
    /// @param id The request id.
    /// @param result The ABI-encoded result passed to the callback.
    /// @param attestation The enrolled oracle's signature over the request and result.
    function fulfil(bytes32 id, bytes calldata result, bytes calldata attestation) external virtual whenActive {
        OracleRequestRecord storage r = _oracleRequests[id];
        if (r.status == OracleRequestStatus.None) revert UnknownRequest(id);
        if (r.status != OracleRequestStatus.Pending) revert RequestNotPending(id);
        if (block.timestamp > r.deadline) revert RequestExpired(id, r.deadline);
        (result, attestation);
        revert OracleNotAvailable();
    }

    /// @notice Cancels an unanswered request after its deadline; anyone may call it, once.
    /// @param id The request id.
    function cancel(bytes32 id) external whenActive {
        OracleRequestRecord storage r = _oracleRequests[id];
        if (r.status == OracleRequestStatus.None) revert UnknownRequest(id);
        if (r.status != OracleRequestStatus.Pending) revert RequestNotPending(id);
        if (block.timestamp <= r.deadline) revert RequestNotExpired(id, r.deadline);
        r.status = OracleRequestStatus.Cancelled;
        emit OracleCancelled(id);
    }

    /// @notice Asks the oracle for data from a named endpoint of the sidecar's config.
    /// @param endpoint The endpoint name (never a URL).
    /// @param params ABI-encoded parameters for the endpoint.
    /// @param callback The selector of an `onlyOracleCallback` function `(bytes32 requestId, ...)`.
    /// @param deadline The last timestamp at which the request may be fulfilled.
    /// @return id The unique request id: keccak256(chainid, this, nonce).
    function _requestData(string memory endpoint, bytes memory params, bytes4 callback, uint64 deadline)
        internal
        returns (bytes32 id)
    {
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline);
        uint64 nonce = _oracleNonce++;
        id = keccak256(abi.encode(block.chainid, address(this), nonce));
        _oracleRequests[id] = OracleRequestRecord({
            commitment: oracleCommitment(endpoint, params, callback, deadline),
            callback: callback,
            deadline: deadline,
            status: OracleRequestStatus.Pending
        });
        emit OracleRequest(id, endpoint, params, callback, deadline);
    }
}
