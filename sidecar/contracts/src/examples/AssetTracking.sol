// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {KontraktOracle} from "../KontraktOracle.sol";
import {Roles} from "../Roles.sol";

/// @title AssetTracking
/// @notice The paper's asset-tracking example: a payer escrows a payment for a container's
/// retailer; the payment is released ("sendMoney") when the oracle reports that the container
/// and the retailer are at the same location (their BLE/GSM/LTE radios met). If that does not
/// happen within `ESCROW_PERIOD`, the payer gets a refund.
/// @dev All data lives in the ContractDatabase, and so does the escrowed ether (the database's
/// custody, `_depositValue`/`_payValue`): a new version releases or refunds what an older one
/// took in, and a replaced version holds nothing.
contract AssetTracking is KontraktOracle {
    /// @notice Lifecycle of a tracked container.
    enum AssetStatus {
        None,
        InTransit,
        Released,
        Refunded
    }

    /// @notice How long after registration the payer can reclaim an unreleased payment.
    uint64 public constant ESCROW_PERIOD = 30 days;
    /// @notice How long the oracle has to answer a co-location request.
    uint64 public constant ORACLE_TIMEOUT = 1 hours;

    bytes32 private constant COUNT = "assets.count";
    bytes32 private constant PAYER = "asset.payer";
    bytes32 private constant RETAILER = "asset.retailer";
    bytes32 private constant AMOUNT = "asset.amount";
    bytes32 private constant REFUND_AFTER = "asset.refundAfter";
    bytes32 private constant LOCATION = "asset.location";
    bytes32 private constant STATUS = "asset.status";
    bytes32 private constant COLOCATION_REQUEST = "colocationRequest.container";

    /// @notice A container id must not be zero.
    error ZeroContainer();
    /// @notice The retailer must not be zero.
    error ZeroRetailer();
    /// @notice Registering a container needs a payment to escrow.
    error NoPayment();
    /// @notice A container with this id is already registered.
    error AssetExists(bytes32 container);
    /// @notice No container with this id.
    error UnknownAsset(bytes32 container);
    /// @notice The container is not in transit (already released or refunded).
    error NotInTransit(bytes32 container, AssetStatus status);
    /// @notice The caller may not do this for this container.
    error NotParty(bytes32 container, address caller);
    /// @notice The escrow period has not ended yet.
    error EscrowNotExpired(bytes32 container, uint64 refundAfter);
    /// @notice The oracle answered a request this contract does not know.
    error UnknownColocationRequest(bytes32 requestId);

    /// @notice A container was registered and `amount` escrowed for `retailer`.
    event AssetRegistered(
        bytes32 indexed container, address indexed payer, address indexed retailer, uint256 amount, uint64 refundAfter
    );
    /// @notice A location of the container was reported.
    event LocationReported(bytes32 indexed container, bytes32 location, address indexed reporter);
    /// @notice The oracle was asked whether container and retailer are co-located.
    event ColocationRequested(bytes32 indexed container, bytes32 indexed requestId);
    /// @notice The oracle answered a co-location request.
    event ColocationReported(bytes32 indexed container, bytes32 indexed requestId, bool colocated);
    /// @notice The escrowed payment was sent to the retailer.
    event PaymentReleased(bytes32 indexed container, address indexed retailer, uint256 amount);
    /// @notice The escrowed payment was refunded to the payer.
    event PaymentRefunded(bytes32 indexed container, address indexed payer, uint256 amount);

    /// @param database_ The ContractDatabase holding the assets.
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin.
    constructor(address database_, address registry_, address admin_)
        KontraktOracle(database_, registry_, admin_)
    {}

    // ---------------------------------------------------------------- contract functions

    /// @notice Registers a container and escrows msg.value for its retailer; the caller is the payer.
    /// @param container The container id (not zero, unused).
    /// @param retailer Who is paid when the container reaches them.
    function registerAsset(bytes32 container, address retailer) external payable whenActive {
        if (container == bytes32(0)) revert ZeroContainer();
        if (retailer == address(0)) revert ZeroRetailer();
        if (msg.value == 0) revert NoPayment();
        if (_status(container) != AssetStatus.None) revert AssetExists(container);
        uint64 refundAfter = uint64(block.timestamp) + ESCROW_PERIOD;
        _setAddress(_key(container, PAYER), msg.sender);
        _setAddress(_key(container, RETAILER), retailer);
        _setUint(_key(container, AMOUNT), msg.value);
        _setUint(_key(container, REFUND_AFTER), refundAfter);
        _setUint(_key(container, STATUS), uint256(AssetStatus.InTransit));
        _setUint(COUNT, _getUint(COUNT) + 1);
        _depositValue(msg.value);
        emit AssetRegistered(container, msg.sender, retailer, msg.value, refundAfter);
    }

    /// @notice Reports where a container in transit is; by the admin or an enrolled Publisher
    /// (anyone when there is no registry).
    /// @param container The container id.
    /// @param location The location (e.g. a geohash or a site id).
    function reportLocation(bytes32 container, bytes32 location) external whenActive {
        if (!_isAdmin(msg.sender) && !_isEnrolled(msg.sender, Roles.Publisher)) {
            revert NotEnrolled(msg.sender, Roles.Publisher);
        }
        _requireInTransit(container);
        _setBytes32(_key(container, LOCATION), location);
        emit LocationReported(container, location, msg.sender);
    }

    /// @notice The payer reclaims the escrowed payment once the escrow period has ended.
    /// @param container The container id.
    function refund(bytes32 container) external whenActive {
        _requireInTransit(container);
        address payer = _getAddress(_key(container, PAYER));
        if (msg.sender != payer) revert NotParty(container, msg.sender);
        uint64 refundAfter = uint64(_getUint(_key(container, REFUND_AFTER)));
        if (block.timestamp <= refundAfter) revert EscrowNotExpired(container, refundAfter);
        uint256 amount = _getUint(_key(container, AMOUNT));
        _setUint(_key(container, STATUS), uint256(AssetStatus.Refunded));
        emit PaymentRefunded(container, payer, amount);
        _payValue(payer, amount);
    }

    // ---------------------------------------------------------------- thing communication

    /// @notice Asks the oracle whether the container and its retailer are at the same location
    /// (endpoint "Colocation" with the parameters container and retailer, both as lowercase
    /// 0x-hex, e.g. `Colocation?container=0x…&retailer=0x…`; the answer is a JSON boolean);
    /// payer, retailer or admin only.
    /// @param container The container id.
    /// @return requestId The oracle request id.
    function requestColocation(bytes32 container) external whenActive returns (bytes32 requestId) {
        _requireInTransit(container);
        address retailer = _getAddress(_key(container, RETAILER));
        if (msg.sender != retailer && msg.sender != _getAddress(_key(container, PAYER)) && !_isAdmin(msg.sender)) {
            revert NotParty(container, msg.sender);
        }
        requestId = _requestData(
            "Colocation",
            _oracleParams(
                "container", _hexString(abi.encodePacked(container)), "retailer", _hexString(abi.encodePacked(retailer))
            ),
            this.onColocation.selector,
            uint64(block.timestamp) + ORACLE_TIMEOUT
        );
        _setBytes32(_key(requestId, COLOCATION_REQUEST), container);
        emit ColocationRequested(container, requestId);
    }

    /// @notice Oracle callback: if co-located and still in transit, pays the retailer ("sendMoney").
    /// Only callable by this contract (from `fulfil`).
    /// @param requestId The oracle request id.
    /// @param colocated Whether container and retailer share a location.
    function onColocation(bytes32 requestId, bool colocated) external onlyOracleCallback whenActive {
        bytes32 container = _getBytes32(_key(requestId, COLOCATION_REQUEST));
        if (container == bytes32(0)) revert UnknownColocationRequest(requestId);
        emit ColocationReported(container, requestId, colocated);
        // A late answer for a container already settled changes nothing.
        if (!colocated || _status(container) != AssetStatus.InTransit) return;
        address retailer = _getAddress(_key(container, RETAILER));
        uint256 amount = _getUint(_key(container, AMOUNT));
        _setUint(_key(container, STATUS), uint256(AssetStatus.Released));
        emit PaymentReleased(container, retailer, amount);
        _payValue(retailer, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice Whether the escrowed payment of `container` was released to the retailer.
    /// @param container The container id.
    /// @return True once released.
    function released(bytes32 container) external view returns (bool) {
        return _status(container) == AssetStatus.Released;
    }

    /// @notice How many containers were registered.
    /// @return The number of containers.
    function assetCount() external view returns (uint256) {
        return _getUint(COUNT);
    }

    /// @notice A container's escrow and last reported location.
    /// @param container The container id.
    /// @return payer Who escrowed the payment.
    /// @return retailer Who is paid on co-location.
    /// @return amount The escrowed amount, in wei.
    /// @return refundAfter After this timestamp the payer may reclaim an unreleased payment.
    /// @return location The last reported location (zero if none).
    /// @return status None, InTransit, Released or Refunded.
    function assetOf(bytes32 container)
        external
        view
        returns (
            address payer,
            address retailer,
            uint256 amount,
            uint64 refundAfter,
            bytes32 location,
            AssetStatus status
        )
    {
        status = _status(container);
        if (status == AssetStatus.None) revert UnknownAsset(container);
        payer = _getAddress(_key(container, PAYER));
        retailer = _getAddress(_key(container, RETAILER));
        amount = _getUint(_key(container, AMOUNT));
        refundAfter = uint64(_getUint(_key(container, REFUND_AFTER)));
        location = _getBytes32(_key(container, LOCATION));
    }

    // ---------------------------------------------------------------- internals

    function _requireInTransit(bytes32 container) private view {
        AssetStatus status = _status(container);
        if (status == AssetStatus.None) revert UnknownAsset(container);
        if (status != AssetStatus.InTransit) revert NotInTransit(container, status);
    }

    function _status(bytes32 container) private view returns (AssetStatus) {
        return AssetStatus(_getUint(_key(container, STATUS)));
    }

    function _key(bytes32 container, bytes32 field) private pure returns (bytes32) {
        return keccak256(abi.encode(container, field));
    }
}
