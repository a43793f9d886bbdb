// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {KontraktOracle} from "../KontraktOracle.sol";
import {Roles} from "../Roles.sol";

/// @title Shipping
/// @notice The paper's supply-chain example: a supplier ships IoT devices to a receiver
/// (manufacturer), who confirms the delivery; the shipment cost of a device category comes
/// from a device-specific service through the oracle (`ShipmentCost?device=VerticalPump`).
/// @dev All data lives in the ContractDatabase (through the base's helpers), so a new version
/// of this logic keeps every shipment.
contract Shipping is KontraktOracle {
    /// @notice Lifecycle of a shipment.
    enum ShipmentStatus {
        None,
        Created,
        Shipped,
        Delivered
    }

    /// @notice How long the oracle has to answer a cost request.
    uint64 public constant ORACLE_TIMEOUT = 1 hours;

    bytes32 private constant COUNT = "shipping.count";
    bytes32 private constant SUPPLIER = "shipment.supplier";
    bytes32 private constant RECEIVER = "shipment.receiver";
    bytes32 private constant DEVICE = "shipment.device";
    bytes32 private constant QUANTITY = "shipment.quantity";
    bytes32 private constant STATUS = "shipment.status";
    bytes32 private constant COST = "shipment.cost";
    bytes32 private constant COST_KNOWN = "shipment.costKnown";
    bytes32 private constant COST_REQUEST = "costRequest.shipment";

    /// @notice A shipment id must not be zero.
    error ZeroShipmentId();
    /// @notice A shipment with this id already exists.
    error ShipmentExists(bytes32 id);
    /// @notice No shipment with this id.
    error UnknownShipment(bytes32 id);
    /// @notice The shipment is not in the status this step needs.
    error InvalidShipmentStatus(bytes32 id, ShipmentStatus status);
    /// @notice The caller is not the party this step needs.
    error NotParty(bytes32 id, address caller);
    /// @notice Receiver must be set, device named and quantity positive.
    error InvalidShipment();
    /// @notice The oracle answered a request this contract does not know.
    error UnknownCostRequest(bytes32 requestId);

    /// @notice A shipment agreement was created by its supplier.
    event ShipmentCreated(bytes32 indexed id, address indexed supplier, address indexed receiver, string device, uint256 quantity);
    /// @notice The supplier shipped the goods.
    event ShipmentShipped(bytes32 indexed id);
    /// @notice The receiver confirmed the delivery.
    event ShipmentDelivered(bytes32 indexed id);
    /// @notice The shipment cost was asked from the oracle.
    event ShipmentCostRequested(bytes32 indexed id, bytes32 indexed requestId);
    /// @notice The oracle reported the shipment cost.
    event ShipmentCostReported(bytes32 indexed id, uint256 cost);

    /// @param database_ The ContractDatabase holding the shipments.
    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    /// @param admin_ The admin.
    constructor(address database_, address registry_, address admin_)
        KontraktOracle(database_, registry_, admin_)
    {}

    // ---------------------------------------------------------------- contract functions

    /// @notice Creates a shipment agreement; the caller is the supplier (an enrolled Node).
    /// @param id The shipment id (not zero, unused).
    /// @param receiver The receiving manufacturer, who confirms the delivery.
    /// @param device The device category, e.g. "VerticalPump" (selects the shipment-cost service).
    /// @param quantity How many devices.
    function createShipment(bytes32 id, address receiver, string calldata device, uint256 quantity)
        external
        whenActive
        onlyEnrolled(Roles.Node)
    {
        if (id == bytes32(0)) revert ZeroShipmentId();
        if (receiver == address(0) || bytes(device).length == 0 || quantity == 0) revert InvalidShipment();
        if (_status(id) != ShipmentStatus.None) revert ShipmentExists(id);
        _setAddress(_key(id, SUPPLIER), msg.sender);
        _setAddress(_key(id, RECEIVER), receiver);
        _setString(_key(id, DEVICE), device);
        _setUint(_key(id, QUANTITY), quantity);
        _setUint(_key(id, STATUS), uint256(ShipmentStatus.Created));
        _setUint(COUNT, _getUint(COUNT) + 1);
        emit ShipmentCreated(id, msg.sender, receiver, device, quantity);
    }

    /// @notice The supplier marks the goods as shipped.
    /// @param id The shipment id.
    function markShipped(bytes32 id) external whenActive {
        _advance(id, SUPPLIER, ShipmentStatus.Created, ShipmentStatus.Shipped);
        emit ShipmentShipped(id);
    }

    /// @notice The receiver confirms the delivery.
    /// @param id The shipment id.
    function confirmDelivery(bytes32 id) external whenActive {
        _advance(id, RECEIVER, ShipmentStatus.Shipped, ShipmentStatus.Delivered);
        emit ShipmentDelivered(id);
    }

    // ---------------------------------------------------------------- thing communication

    /// @notice Asks the oracle for the shipment cost of the shipment's device category
    /// (endpoint "ShipmentCost" with the parameter device, the paper's
    /// `ShipmentCost?device=VerticalPump`); supplier or receiver only.
    /// @param id The shipment id.
    /// @return requestId The oracle request id.
    function requestShipmentCost(bytes32 id) external whenActive returns (bytes32 requestId) {
        if (_status(id) == ShipmentStatus.None) revert UnknownShipment(id);
        if (msg.sender != _getAddress(_key(id, SUPPLIER)) && msg.sender != _getAddress(_key(id, RECEIVER))) {
            revert NotParty(id, msg.sender);
        }
        string memory device = _getString(_key(id, DEVICE));
        requestId = _requestData(
            "ShipmentCost",
            _oracleParams("device", device),
            this.onShipmentCost.selector,
            uint64(block.timestamp) + ORACLE_TIMEOUT
        );
        _setBytes32(_key(requestId, COST_REQUEST), id);
        emit ShipmentCostRequested(id, requestId);
    }

    /// @notice Oracle callback with the shipment cost; only callable by this contract (from `fulfil`).
    /// @param requestId The oracle request id.
    /// @param cost The shipment cost reported by the device-specific service.
    function onShipmentCost(bytes32 requestId, uint256 cost) external onlyOracleCallback whenActive {
        bytes32 id = _getBytes32(_key(requestId, COST_REQUEST));
        if (id == bytes32(0)) revert UnknownCostRequest(requestId);
        _setUint(_key(id, COST), cost);
        _setBool(_key(id, COST_KNOWN), true);
        emit ShipmentCostReported(id, cost);
    }

    // ---------------------------------------------------------------- views

    /// @notice The status of a shipment.
    /// @param id The shipment id.
    /// @return The status (None if unknown).
    function shipmentStatus(bytes32 id) external view returns (ShipmentStatus) {
        return _status(id);
    }

    /// @notice How many shipments were created.
    /// @return The number of shipments.
    function shipmentCount() external view returns (uint256) {
        return _getUint(COUNT);
    }

    /// @notice A shipment's terms and state.
    /// @param id The shipment id.
    /// @return supplier The supplier.
    /// @return receiver The receiver.
    /// @return device The device category.
    /// @return quantity How many devices.
    /// @return status The status.
    /// @return cost The shipment cost reported by the oracle (meaningful if `costKnown`).
    /// @return costKnown Whether the oracle reported the cost.
    function shipmentOf(bytes32 id)
        external
        view
        returns (
            address supplier,
            address receiver,
            string memory device,
            uint256 quantity,
            ShipmentStatus status,
            uint256 cost,
            bool costKnown
        )
    {
        status = _status(id);
        if (status == ShipmentStatus.None) revert UnknownShipment(id);
        supplier = _getAddress(_key(id, SUPPLIER));
        receiver = _getAddress(_key(id, RECEIVER));
        device = _getString(_key(id, DEVICE));
        quantity = _getUint(_key(id, QUANTITY));
        cost = _getUint(_key(id, COST));
        costKnown = _getBool(_key(id, COST_KNOWN));
    }

    // ---------------------------------------------------------------- internals

    function _advance(bytes32 id, bytes32 partyField, ShipmentStatus from, ShipmentStatus to) private {
        ShipmentStatus status = _status(id);
        if (status == ShipmentStatus.None) revert UnknownShipment(id);
        if (msg.sender != _getAddress(_key(id, partyField))) revert NotParty(id, msg.sender);
        if (status != from) revert InvalidShipmentStatus(id, status);
        _setUint(_key(id, STATUS), uint256(to));
    }

    function _status(bytes32 id) private view returns (ShipmentStatus) {
        return ShipmentStatus(_getUint(_key(id, STATUS)));
    }

    function _key(bytes32 id, bytes32 field) private pure returns (bytes32) {
        return keccak256(abi.encode(id, field));
    }
}
