// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title OracleRequests
/// @notice The request bookkeeping of the sidecar's oracle (the paper's Thing Communication),
/// for any contract that asks it for off-chain data: oracle requests with unique ids,
/// `fulfil` (only with the attestation of an accepted oracle, once per id, before the
/// deadline), `fulfilError` (the oracle could not serve the request) and `cancel` (after the
/// deadline). Logic contracts get it through `KontraktOracle`; the `EnrollmentRegistry` uses it
/// to verify join requests.
///
/// Request parameters: `params` is `abi.encode(string[] names, string[] values)` (build it with
/// `_oracleParams`); the sidecar sends them as query parameters (GET) or as a JSON object of
/// strings (POST) to the endpoint its config names, never to a URL from the chain. Empty
/// `params` means no parameters.
///
/// Results: the callback is a function `(bytes32 requestId, T1 a, T2 b, ...)`; `fulfil` calls
/// it with calldata `abi.encodePacked(callback, id, result)`, so `result` is
/// `abi.encode(id, a, b, ...)` without its first 32-byte word (for static types simply
/// `abi.encode(a, b, ...)`; offsets of dynamic types count from the start of the arguments).
/// A callback may ask which oracle answered with `_answeringOracle()`.
///
/// Attestation: a 65-byte ECDSA signature `r ‖ s ‖ v` (v 27 or 28) in the EIP-191 form
/// (`"\x19Ethereum Signed Message:\n32" ‖ digest`, what `eth_sign`/`personal_sign` of the
/// 32-byte digest produce) over
///   - a result: `keccak256(abi.encode(block.chainid, address(this), id, keccak256(result)))`;
///   - an error: `keccak256(abi.encode(block.chainid, address(this), id, ORACLE_ERROR_DOMAIN, uint256(code)))`.
/// The two preimages differ in length, so a signature of one can never pass as the other.
/// Which signers are accepted is the derived contract's `_isOracle`. Anyone may submit a
/// valid attestation.
///
/// Counters: `oracleStats()` returns requested, fulfilled, failed and expired from one storage
/// slot; pending = requested - fulfilled - failed - expired.
/// @dev Independent of `KontraktContract`: a derived contract says who may attest
/// (`_isOracle`) and may refuse answers altogether (`_beforeOracleAnswer`, e.g. once retired).
/// The bookkeeping lives in the deriving contract's own storage: each contract answers only
/// its own requests.
abstract contract OracleRequests {
    /// @notice Lifecycle of an oracle request. Failed: the oracle answered with an error code,
    /// or the callback reverted on its answer. Cancelled: expired unanswered.
    enum OracleRequestStatus {
        None,
        Pending,
        Fulfilled,
        Cancelled,
        Failed
    }

    struct OracleRequestRecord {
        bytes32 commitment;
        bytes4 callback;
        uint64 deadline;
        OracleRequestStatus status;
        // The gas the callback gets, committed at request time (same slot as the fields above).
        uint32 callbackGas;
    }

    /// @dev All four counters in one slot, so the operator reads them in one call and an
    /// answer updates them with one SSTORE. `requested` is also the next request's nonce.
    struct OracleStats {
        uint64 requested;
        uint64 fulfilled;
        uint64 failed;
        uint64 expired;
    }

    /// @notice The callback gas of a request that names none (`_requestData` without it).
    uint32 public constant DEFAULT_CALLBACK_GAS = 200_000;
    /// @notice The most gas a request may commit for its callback.
    uint32 public constant MAX_CALLBACK_GAS = 5_000_000;
    /// @dev Gas between the check in `fulfil` and the callback's first instruction (the CALL
    /// itself), kept above what it costs so the callback always gets all it committed.
    uint256 private constant CALLBACK_CALL_RESERVE = 2_500;

    /// @notice Domain tag of error attestations (`fulfilError`).
    bytes32 public constant ORACLE_ERROR_DOMAIN = keccak256("KontraktOracle.fulfilError");

    // Error codes of `fulfilError` (the same numbers as the sidecar's `oracle::OracleErrorCode`).
    /// @dev The request names an endpoint the oracle's config does not have (never fetched).
    uint16 internal constant ORACLE_ERROR_UNKNOWN_ENDPOINT = 1;
    /// @dev The endpoint stayed unreachable (connection failed) for all attempts.
    uint16 internal constant ORACLE_ERROR_UNREACHABLE = 2;
    /// @dev The endpoint did not answer within its timeout for all attempts.
    uint16 internal constant ORACLE_ERROR_TIMEOUT = 3;
    /// @dev The endpoint answered with a non-2xx status (redirects are not followed).
    uint16 internal constant ORACLE_ERROR_HTTP_STATUS = 4;
    /// @dev The response exceeded the oracle's size cap.
    uint16 internal constant ORACLE_ERROR_RESPONSE_TOO_LARGE = 5;
    /// @dev The response is not JSON.
    uint16 internal constant ORACLE_ERROR_NOT_JSON = 6;
    /// @dev The response has no value at the endpoint's result path.
    uint16 internal constant ORACLE_ERROR_RESULT_MISSING = 7;
    /// @dev The value does not convert to the callback's parameter type.
    uint16 internal constant ORACLE_ERROR_WRONG_TYPE = 8;
    /// @dev The request's params are not `abi.encode(string[] names, string[] values)`.
    uint16 internal constant ORACLE_ERROR_BAD_PARAMS = 9;
    /// @dev The callback selector is not a function `(bytes32, ...)` of this contract's ABI.
    uint16 internal constant ORACLE_ERROR_UNKNOWN_CALLBACK = 10;
    /// @dev A header value could not be read from its mounted Secret.
    uint16 internal constant ORACLE_ERROR_SECRET_UNREADABLE = 11;

    /// @notice No oracle request with this id exists.
    error UnknownRequest(bytes32 id);
    /// @notice The oracle request was already answered or cancelled.
    error RequestNotPending(bytes32 id);
    /// @notice The oracle request's deadline has not passed yet, so it cannot be cancelled.
    error RequestNotExpired(bytes32 id, uint64 deadline);
    /// @notice The oracle request's deadline has passed, so it can no longer be answered.
    error RequestExpired(bytes32 id, uint64 deadline);
    /// @notice An oracle request's deadline must lie in the future.
    error DeadlineNotInFuture(uint64 deadline);
    /// @notice Oracle callbacks may only be called by the contract itself (from `fulfil`).
    error NotOracleCallback(address caller);
    /// @notice The attestation is not a 65-byte signature with a canonical `s` and v 27/28.
    error MalformedAttestation();
    /// @notice The attestation's signer may not answer oracle requests (see the deriving
    /// contract's rule: an enrolled oracle, or the admin without a registry). A forged
    /// attestation recovers to some unrelated address and fails here too.
    error NotOracle(address signer);
    /// @notice The transaction left less gas than the callback committed at request time
    /// (plus the 1/64 a call keeps back): nothing is recorded and the request stays pending.
    error InsufficientCallbackGas(bytes32 id, uint256 callbackGas);
    /// @notice A request's callback gas must be between 1 and `MAX_CALLBACK_GAS`.
    error CallbackGasOutOfRange(uint256 callbackGas);

    /// @notice The contract asks the oracle for data from the named endpoint (never a URL).
    /// The oracle answers with `fulfil(id, result, attestation)`, which calls `callback`.
    /// `callbackGas` is the gas `fulfil` gives the callback: an answer needs at least that much.
    event OracleRequest(
        bytes32 indexed id, string endpoint, bytes params, bytes4 callback, uint64 deadline, uint32 callbackGas
    );
    /// @notice The request `id` was answered by `oracle` and its callback succeeded.
    event OracleFulfilled(bytes32 indexed id, address indexed oracle);
    /// @notice The request `id` was answered by `oracle` but its callback reverted with `reason`;
    /// the request is answered for good (Failed), never retried.
    event OracleCallbackFailed(bytes32 indexed id, address indexed oracle, bytes reason);
    /// @notice The oracle could not serve request `id` (see the error codes).
    event OracleFailed(bytes32 indexed id, address indexed oracle, uint16 code);
    /// @notice The request `id` expired unanswered and was cancelled.
    event OracleCancelled(bytes32 indexed id);

    OracleStats private _oracleStats;
    mapping(bytes32 => OracleRequestRecord) private _oracleRequests;
    // The oracle whose answer is being delivered, for the callback (transient: nothing stays
    // behind after the transaction, and it costs no storage slot).
    address private transient _callbackOracle;

    /// @dev Oracle callbacks are external (so they have a selector) but run only from `fulfil`.
    modifier onlyOracleCallback() {
        if (msg.sender != address(this)) revert NotOracleCallback(msg.sender);
        _;
    }

    /// @dev Runs the derived contract's `_beforeOracleAnswer` check first.
    modifier whenAnswerable() {
        _beforeOracleAnswer();
        _;
    }

    // ---------------------------------------------------------------- views

    /// @notice The state of oracle request `id`.
    /// @param id The request id (from the `OracleRequest` event).
    /// @return status None, Pending, Fulfilled, Cancelled or Failed.
    /// @return callback The selector `fulfil` calls with the result.
    /// @return deadline The last timestamp at which the request may be answered.
    /// @return commitment keccak256(abi.encode(endpoint, params, callback, deadline, callbackGas)).
    /// @return callbackGas The gas `fulfil` gives the callback.
    function oracleRequestOf(bytes32 id)
        external
        view
        returns (
            OracleRequestStatus status,
            bytes4 callback,
            uint64 deadline,
            bytes32 commitment,
            uint32 callbackGas
        )
    {
        OracleRequestRecord storage r = _oracleRequests[id];
        return (r.status, r.callback, r.deadline, r.commitment, r.callbackGas);
    }

    /// @notice The oracle counters, read in one call.
    /// @return requested Requests made (also the next request's nonce).
    /// @return fulfilled Requests answered with a result whose callback succeeded.
    /// @return failed Requests answered with an error code, or whose callback reverted.
    /// @return expired Requests cancelled after their deadline.
    function oracleStats()
        external
        view
        returns (uint64 requested, uint64 fulfilled, uint64 failed, uint64 expired)
    {
        OracleStats memory s = _oracleStats;
        return (s.requested, s.fulfilled, s.failed, s.expired);
    }

    /// @notice How many oracle requests this contract has made (the next request's nonce).
    /// @return The nonce.
    function oracleNonce() external view returns (uint64) {
        return _oracleStats.requested;
    }

    /// @notice The commitment stored for a request, so an oracle can check the event it read.
    /// @param endpoint The endpoint name.
    /// @param params The ABI-encoded parameters.
    /// @param callback The callback selector.
    /// @param deadline The request deadline.
    /// @param callbackGas The gas the callback gets.
    /// @return keccak256(abi.encode(endpoint, params, callback, deadline, callbackGas)).
    function oracleCommitment(
        string memory endpoint,
        bytes memory params,
        bytes4 callback,
        uint64 deadline,
        uint32 callbackGas
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(endpoint, params, callback, deadline, callbackGas));
    }

    /// @notice The digest an oracle signs (EIP-191) to answer request `id` with `result`.
    /// @param id The request id.
    /// @param result The result bytes passed to `fulfil`.
    /// @return keccak256(abi.encode(block.chainid, address(this), id, keccak256(result))).
    function oracleResultDigest(bytes32 id, bytes calldata result) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), id, keccak256(result)));
    }

    /// @notice The digest an oracle signs (EIP-191) to answer request `id` with error `code`.
    /// @param id The request id.
    /// @param code The error code.
    /// @return keccak256(abi.encode(block.chainid, address(this), id, ORACLE_ERROR_DOMAIN, uint256(code))).
    function oracleErrorDigest(bytes32 id, uint16 code) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), id, ORACLE_ERROR_DOMAIN, uint256(code)));
    }

    // ---------------------------------------------------------------- answers

    /// @notice Answers pending request `id` with `result` and calls its callback with
    /// `abi.encodePacked(callback, id, result)` and exactly the gas the request committed. Once
    /// per id, at or before the deadline. The transaction must leave the callback all of that
    /// gas, or the whole call reverts (`InsufficientCallbackGas`) and the request stays pending;
    /// so a callback that reverts did so with the gas it asked for, and the request is recorded
    /// as Failed (`OracleCallbackFailed` carries the revert data), answered exactly once.
    /// @dev Why the gas is committed: an attestation is public once broadcast, and anyone may
    /// resend it. With "whatever gas is left" a sender could choose a gas limit at which a call
    /// made *by* the callback runs out of gas while the callback itself sees an ordinary revert,
    /// and so record a valid answer as Failed for good (Chainlink reserves callback gas and
    /// Airnode has `fulfillmentGasLimit` for the same reason).
    /// @param id The request id.
    /// @param result The callback's arguments after the id (see the contract notes).
    /// @param attestation The oracle's EIP-191 signature of `oracleResultDigest(id, result)`.
    function fulfil(bytes32 id, bytes calldata result, bytes calldata attestation) external whenAnswerable {
        OracleRequestRecord storage r = _pendingRequest(id);
        address oracle = _attester(oracleResultDigest(id, result), attestation);
        bytes4 callback = r.callback;
        uint256 callbackGas = r.callbackGas;
        // Answered before the callback runs: a re-entering fulfil finds it not pending.
        r.status = OracleRequestStatus.Fulfilled;
        bytes memory call = abi.encodePacked(callback, id, result);
        // A CALL forwards at most 63/64 of what is left (EIP-150): check that this covers the
        // committed gas, so the callback never runs with less than it asked for.
        if (gasleft() < callbackGas + callbackGas / 63 + CALLBACK_CALL_RESERVE) {
            revert InsufficientCallbackGas(id, callbackGas);
        }
        // Saved and restored, so a fulfil nested in a callback cannot leave its oracle behind.
        address outer = _callbackOracle;
        _callbackOracle = oracle;
        // The restore after the call is the point (a nested fulfil's oracle must not stay
        // behind), and the request is already answered, so a re-entering fulfil finds nothing.
        // slither-disable-next-line reentrancy-no-eth
        (bool ok, bytes memory reason) = address(this).call{gas: callbackGas}(call);
        _callbackOracle = outer;
        if (ok) {
            _oracleStats.fulfilled += 1;
            emit OracleFulfilled(id, oracle);
        } else {
            r.status = OracleRequestStatus.Failed;
            _oracleStats.failed += 1;
            emit OracleCallbackFailed(id, oracle, reason);
        }
    }

    /// @notice Answers pending request `id` with an error: the oracle could not serve it
    /// (unknown endpoint, unreachable device, response too large, not JSON, wrong type...).
    /// The request is recorded as Failed; its callback is not called.
    /// @param id The request id.
    /// @param code The error code (see the `ORACLE_ERROR_*` constants).
    /// @param attestation The oracle's EIP-191 signature of `oracleErrorDigest(id, code)`.
    function fulfilError(bytes32 id, uint16 code, bytes calldata attestation) external whenAnswerable {
        OracleRequestRecord storage r = _pendingRequest(id);
        address oracle = _attester(oracleErrorDigest(id, code), attestation);
        r.status = OracleRequestStatus.Failed;
        _oracleStats.failed += 1;
        emit OracleFailed(id, oracle, code);
    }

    /// @notice Cancels an unanswered request after its deadline (counted as expired); anyone
    /// may call it, once.
    /// @param id The request id.
    function cancel(bytes32 id) external whenAnswerable {
        OracleRequestRecord storage r = _oracleRequests[id];
        if (r.status == OracleRequestStatus.None) revert UnknownRequest(id);
        if (r.status != OracleRequestStatus.Pending) revert RequestNotPending(id);
        if (block.timestamp <= r.deadline) revert RequestNotExpired(id, r.deadline);
        r.status = OracleRequestStatus.Cancelled;
        _oracleStats.expired += 1;
        emit OracleCancelled(id);
    }

    // ---------------------------------------------------------------- for the logic

    /// @notice Asks the oracle for data from a named endpoint of the sidecar's config; the
    /// callback gets `DEFAULT_CALLBACK_GAS`.
    /// @param endpoint The endpoint name (never a URL).
    /// @param params `abi.encode(string[] names, string[] values)` (see `_oracleParams`), or empty.
    /// @param callback The selector of an `onlyOracleCallback` function `(bytes32 requestId, ...)`.
    /// @param deadline The last timestamp at which the request may be answered.
    /// @return id The unique request id: keccak256(chainid, this, nonce).
    function _requestData(string memory endpoint, bytes memory params, bytes4 callback, uint64 deadline)
        internal
        returns (bytes32 id)
    {
        return _requestData(endpoint, params, callback, deadline, DEFAULT_CALLBACK_GAS);
    }

    /// @notice The same, with the gas the callback needs (at most `MAX_CALLBACK_GAS`): `fulfil`
    /// gives it exactly that, and the sidecar sends its answer with enough gas for it.
    /// @param callbackGas The callback's gas, including every call it makes.
    /// @return id The unique request id.
    function _requestData(
        string memory endpoint,
        bytes memory params,
        bytes4 callback,
        uint64 deadline,
        uint32 callbackGas
    ) internal returns (bytes32 id) {
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline);
        if (callbackGas == 0 || callbackGas > MAX_CALLBACK_GAS) revert CallbackGasOutOfRange(callbackGas);
        uint64 nonce = _oracleStats.requested++;
        id = keccak256(abi.encode(block.chainid, address(this), nonce));
        _oracleRequests[id] = OracleRequestRecord({
            commitment: oracleCommitment(endpoint, params, callback, deadline, callbackGas),
            callback: callback,
            deadline: deadline,
            status: OracleRequestStatus.Pending,
            callbackGas: callbackGas
        });
        emit OracleRequest(id, endpoint, params, callback, deadline, callbackGas);
    }

    /// @dev Request params with one named parameter.
    function _oracleParams(string memory name, string memory value) internal pure returns (bytes memory) {
        string[] memory names = new string[](1);
        string[] memory values = new string[](1);
        (names[0], values[0]) = (name, value);
        return abi.encode(names, values);
    }

    /// @dev Request params with two named parameters.
    function _oracleParams(string memory name1, string memory value1, string memory name2, string memory value2)
        internal
        pure
        returns (bytes memory)
    {
        string[] memory names = new string[](2);
        string[] memory values = new string[](2);
        (names[0], values[0], names[1], values[1]) = (name1, value1, name2, value2);
        return abi.encode(names, values);
    }

    /// @dev `data` as a lowercase `0x`-prefixed hex string (for ids and addresses in params).
    function _hexString(bytes memory data) internal pure returns (string memory) {
        bytes16 digits = "0123456789abcdef";
        bytes memory out = new bytes(2 + 2 * data.length);
        (out[0], out[1]) = ("0", "x");
        for (uint256 i = 0; i < data.length; ++i) {
            out[2 + 2 * i] = digits[uint8(data[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(data[i]) & 0x0f];
        }
        return string(out);
    }

    // ---------------------------------------------------------------- internals

    function _pendingRequest(bytes32 id) private view returns (OracleRequestRecord storage r) {
        r = _oracleRequests[id];
        OracleRequestStatus status = r.status;
        if (status == OracleRequestStatus.None) revert UnknownRequest(id);
        if (status != OracleRequestStatus.Pending) revert RequestNotPending(id);
        if (block.timestamp > r.deadline) revert RequestExpired(id, r.deadline);
    }

    /// @dev The signer of `attestation` over `digest` (EIP-191), if it may answer requests.
    function _attester(bytes32 digest, bytes calldata attestation) private view returns (address signer) {
        if (attestation.length != 65) revert MalformedAttestation();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(attestation.offset)
            s := calldataload(add(attestation.offset, 0x20))
            v := byte(0, calldataload(add(attestation.offset, 0x40)))
        }
        // EIP-2: only the lower-half s, so each answer has one valid signature.
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0 || (v != 27 && v != 28)) {
            revert MalformedAttestation();
        }
        signer = ecrecover(keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", digest)), v, r, s);
        if (signer == address(0)) revert MalformedAttestation();
        if (!_isOracle(signer)) revert NotOracle(signer);
    }

    // ---------------------------------------------------------------- for the derived contract

    /// @dev Whether `signer` may answer this contract's requests.
    function _isOracle(address signer) internal view virtual returns (bool);

    /// @dev Reverts when no answer (fulfil, fulfilError, cancel) may be recorded now.
    function _beforeOracleAnswer() internal view virtual {}

    /// @dev Whether request `id` can still be answered (pending, deadline not passed).
    function _requestOpen(bytes32 id) internal view returns (bool) {
        OracleRequestRecord storage r = _oracleRequests[id];
        return r.status == OracleRequestStatus.Pending && block.timestamp <= r.deadline;
    }

    /// @dev Inside a callback: the oracle whose attestation `fulfil` accepted (zero elsewhere).
    function _answeringOracle() internal view returns (address) {
        return _callbackOracle;
    }
}
