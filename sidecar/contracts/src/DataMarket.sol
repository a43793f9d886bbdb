// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IEnrollmentRegistry} from "./IEnrollmentRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title DataMarket
/// @notice Pub-sub data marketplace: a publisher registers a stream with a price per second,
/// subscribers pay for time-bounded access (the `Subscribed` event is the invoice and
/// receipt), the publisher anchors Merkle roots of message batches (raw data never goes on
/// chain), withdraws its earnings, and both sides rate each other once per finished subscription.
///
/// What a rating can and cannot prove: a rating is counted only for a finished access window
/// (a subscription and its extensions) that lasted at least `MIN_RATED_DURATION` and cost at
/// least `MIN_RATED_PAYMENT`, from an account other than the seller (and, with a registry, an
/// enrolled Subscriber or Publisher); each rater counts once per counterparty (its latest
/// score), so `ratingOf` is an average over distinct raters. It proves that every rater paid
/// that much for that long. It cannot prove the raters are independent of the seller: a
/// seller with capital can still fund other accounts, subscribe and rate itself, at the cost
/// of locking `MIN_RATED_PAYMENT` per account for `MIN_RATED_DURATION` (the payment returns to
/// the seller on withdraw). Read `count` beside the average for that reason.
/// @dev With a registry, publishers must be enrolled as `Roles.Publisher` and subscribers as
/// `Roles.Subscriber`; with registry zero there is no policy.
contract DataMarket {
    struct Stream {
        address seller;
        uint64 minDuration;
        uint64 lastBatch;
        bool anchored;
        uint256 pricePerSecond;
    }

    struct Access {
        uint64 until;
        // The `until` of the window each side last rated: a window can be rated once per side.
        uint64 subscriberRatedUntil;
        uint64 sellerRatedUntil;
        // Start of the current access window (a subscription and its extensions).
        uint64 windowStart;
        // What the current window cost in all.
        uint256 windowPaid;
    }

    struct Anchor {
        bytes32 root;
        uint32 messageCount;
        uint64 anchoredAt;
    }

    /// @notice `account` is not enrolled in `role` in the registry.
    error NotEnrolled(address account, uint8 role);
    /// @notice No stream with this id.
    error UnknownStream(uint256 streamId);
    /// @notice Only the stream's seller may do this.
    error NotSeller(uint256 streamId, address caller);
    /// @notice The seller already registered a stream under this key (registration is not
    /// idempotent on chain: a publisher reads `streamIdOf` first).
    error StreamKeyTaken(address seller, bytes32 key, uint256 streamId);
    /// @notice A minimum duration must be at least one second.
    error ZeroDuration();
    /// @notice The duration is below the stream's minimum.
    error DurationTooShort(uint64 duration, uint64 minDuration);
    /// @notice The payment must equal pricePerSecond * duration.
    error WrongPayment(uint256 expected, uint256 sent);
    /// @notice Batch numbers must strictly increase.
    error BatchNotIncreasing(uint64 last, uint64 proposed);
    /// @notice A batch root cannot be zero.
    error ZeroRoot();
    /// @notice The caller has no balance to withdraw.
    error NothingToWithdraw();
    /// @notice Sending the withdrawal failed.
    error TransferFailed();
    /// @notice Scores are 1..5.
    error InvalidScore(uint8 score);
    /// @notice There is no finished, unrated subscription between the caller and the counterparty.
    error NothingToRate(uint256 streamId, address rater, address counterparty);
    /// @notice The finished window was shorter than `MIN_RATED_DURATION` or cost less than
    /// `MIN_RATED_PAYMENT`: it may not be rated.
    error RatingNotEarned(uint256 streamId, address subscriber, uint256 paid, uint64 duration);
    /// @notice A seller may not subscribe to its own stream.
    error SelfSubscription(uint256 streamId);

    /// @notice The least a finished access window must have cost for either side to rate it
    /// (the same for every stream: a seller cannot lower it for its own).
    uint256 public constant MIN_RATED_PAYMENT = 0.001 ether;
    /// @notice The shortest finished access window either side may rate.
    uint64 public constant MIN_RATED_DURATION = 1 hours;

    /// @notice A stream was registered.
    event StreamRegistered(
        uint256 indexed streamId, address indexed seller, bytes32 indexed key, uint256 pricePerSecond, uint64 minDuration
    );
    /// @notice Invoice and receipt of a subscription: `subscriber` paid `amount` to `seller` for
    /// access to `streamId` from `accessFrom` to `accessUntil`.
    event Subscribed(
        uint256 indexed streamId,
        address indexed subscriber,
        address indexed seller,
        uint256 receiptId,
        uint256 amount,
        uint64 accessFrom,
        uint64 accessUntil
    );
    /// @notice The seller anchored the Merkle root of a batch of stream messages.
    event BatchAnchored(uint256 indexed streamId, uint64 indexed batch, bytes32 root, uint32 messageCount);
    /// @notice A seller withdrew its earnings.
    event Withdrawn(address indexed seller, uint256 amount);
    /// @notice `rater` rated `counterparty` for a subscription to `streamId`.
    event Rated(uint256 indexed streamId, address indexed rater, address indexed counterparty, uint8 score);

    address private immutable _registry;
    uint256 private _streamCount;
    uint256 private _receiptCount;
    mapping(uint256 => Stream) private _streams;
    mapping(address => mapping(bytes32 => uint256)) private _streamIds;
    mapping(uint256 => mapping(address => Access)) private _access;
    mapping(uint256 => mapping(uint64 => Anchor)) private _anchors;
    mapping(address => uint256) private _balances;
    // Per rated account: the sum of each distinct rater's latest score, how many raters, and
    // each rater's latest score (0: none yet).
    mapping(address => uint256) private _ratingSum;
    mapping(address => uint256) private _ratingCount;
    mapping(address => mapping(address => uint8)) private _scoreBy;

    /// @param registry_ The EnrollmentRegistry, or zero for no enrollment policy.
    constructor(address registry_) {
        _registry = registry_;
    }

    modifier onlyEnrolled(uint8 role) {
        _requireEnrolled(msg.sender, role);
        _;
    }

    // ---------------------------------------------------------------- seller

    /// @notice Registers a stream sold by the caller under `key` (one stream per seller and key,
    /// so a publisher that restarts finds its stream again with `streamIdOf`).
    /// @param key The stream's identity chosen by the seller (kontrakt: keccak256("kontrakt/stream/<namespace>/<name>")).
    /// @param pricePerSecond Price of one second of access, in wei (0: free).
    /// @param minDuration Shortest subscription, in seconds (at least 1).
    /// @return streamId The new stream's id (starting at 1).
    function registerStream(bytes32 key, uint256 pricePerSecond, uint64 minDuration)
        external
        onlyEnrolled(Roles.Publisher)
        returns (uint256 streamId)
    {
        if (minDuration == 0) revert ZeroDuration();
        uint256 existing = _streamIds[msg.sender][key];
        if (existing != 0) revert StreamKeyTaken(msg.sender, key, existing);
        streamId = ++_streamCount;
        _streamIds[msg.sender][key] = streamId;
        _streams[streamId] = Stream({
            seller: msg.sender,
            minDuration: minDuration,
            lastBatch: 0,
            anchored: false,
            pricePerSecond: pricePerSecond
        });
        emit StreamRegistered(streamId, msg.sender, key, pricePerSecond, minDuration);
    }

    /// @notice Anchors the Merkle root of a batch of messages; only the seller, batch numbers strictly increasing.
    /// @param streamId The stream.
    /// @param batch The batch number.
    /// @param root The Merkle root of the batch's messages.
    /// @param messageCount How many messages the batch holds.
    function anchorBatch(uint256 streamId, uint64 batch, bytes32 root, uint32 messageCount) external {
        Stream storage s = _stream(streamId);
        if (msg.sender != s.seller) revert NotSeller(streamId, msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (s.anchored && batch <= s.lastBatch) revert BatchNotIncreasing(s.lastBatch, batch);
        s.anchored = true;
        s.lastBatch = batch;
        _anchors[streamId][batch] = Anchor({root: root, messageCount: messageCount, anchoredAt: uint64(block.timestamp)});
        emit BatchAnchored(streamId, batch, root, messageCount);
    }

    /// @notice Sends the caller's earnings to the caller.
    function withdraw() external {
        uint256 amount = _balances[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        _balances[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- subscriber

    /// @notice Pays for `duration` seconds of access; extends a running subscription.
    /// @param streamId The stream.
    /// @param duration Seconds of access (at least the stream's minDuration); msg.value must be pricePerSecond * duration.
    function subscribe(uint256 streamId, uint64 duration) external payable onlyEnrolled(Roles.Subscriber) {
        Stream storage s = _stream(streamId);
        if (msg.sender == s.seller) revert SelfSubscription(streamId);
        if (duration < s.minDuration) revert DurationTooShort(duration, s.minDuration);
        uint256 price = s.pricePerSecond * duration;
        if (msg.value != price) revert WrongPayment(price, msg.value);
        Access storage a = _access[streamId][msg.sender];
        uint64 from = a.until > block.timestamp ? a.until : uint64(block.timestamp);
        if (a.until <= block.timestamp) {
            // A new window; a running one is extended.
            a.windowStart = from;
            a.windowPaid = 0;
        }
        a.windowPaid += msg.value;
        uint64 until = from + duration;
        a.until = until;
        _balances[s.seller] += msg.value;
        emit Subscribed(streamId, msg.sender, s.seller, ++_receiptCount, msg.value, from, until);
    }

    // ---------------------------------------------------------------- rating

    /// @notice Rates the other side of a finished subscription, once per side and access window:
    /// a subscriber rates the seller, the seller rates a subscriber. The window must have
    /// earned it (`MIN_RATED_DURATION`, `MIN_RATED_PAYMENT`); with a registry the rater must be
    /// enrolled (Subscriber, or Publisher for the seller). A rater's new score replaces its
    /// previous one for the same counterparty (see the contract notes).
    /// @param streamId The stream.
    /// @param counterparty The seller (when the caller subscribed) or the subscriber (when the caller is the seller).
    /// @param score 1 (worst) to 5 (best).
    function rate(uint256 streamId, address counterparty, uint8 score) external {
        if (score < 1 || score > 5) revert InvalidScore(score);
        Stream storage s = _stream(streamId);
        if (counterparty == msg.sender) revert NothingToRate(streamId, msg.sender, counterparty);
        bool bySeller = msg.sender == s.seller;
        address subscriber = bySeller ? counterparty : msg.sender;
        if (!bySeller && counterparty != s.seller) revert NothingToRate(streamId, msg.sender, counterparty);
        Access storage a = _access[streamId][subscriber];
        uint64 ratedUntil = bySeller ? a.sellerRatedUntil : a.subscriberRatedUntil;
        if (a.until == 0 || a.until > block.timestamp || ratedUntil == a.until) {
            revert NothingToRate(streamId, msg.sender, counterparty);
        }
        uint64 lasted = a.until - a.windowStart;
        if (a.windowPaid < MIN_RATED_PAYMENT || lasted < MIN_RATED_DURATION) {
            revert RatingNotEarned(streamId, subscriber, a.windowPaid, lasted);
        }
        _requireEnrolled(msg.sender, bySeller ? Roles.Publisher : Roles.Subscriber);
        if (bySeller) a.sellerRatedUntil = a.until;
        else a.subscriberRatedUntil = a.until;
        uint8 previous = _scoreBy[counterparty][msg.sender];
        _scoreBy[counterparty][msg.sender] = score;
        if (previous == 0) _ratingCount[counterparty] += 1;
        _ratingSum[counterparty] = _ratingSum[counterparty] - previous + score;
        emit Rated(streamId, msg.sender, counterparty, score);
    }

    // ---------------------------------------------------------------- views

    /// @notice The enrollment registry (zero: no policy).
    /// @return The EnrollmentRegistry address.
    function registry() external view returns (address) {
        return _registry;
    }

    /// @notice How many streams were registered (ids are 1..streamCount).
    /// @return The number of streams.
    function streamCount() external view returns (uint256) {
        return _streamCount;
    }

    /// @notice The id of the stream `seller` registered under `key`.
    /// @param seller The seller.
    /// @param key The key it registered the stream under.
    /// @return The stream id (0: none).
    function streamIdOf(address seller, bytes32 key) external view returns (uint256) {
        return _streamIds[seller][key];
    }

    /// @notice A stream's terms and anchoring progress.
    /// @param streamId The stream.
    /// @return seller The publisher that is paid.
    /// @return pricePerSecond Price of one second of access, in wei.
    /// @return minDuration Shortest subscription, in seconds.
    /// @return lastBatch The last anchored batch number (meaningful if `anchored`).
    /// @return anchored Whether any batch was anchored.
    function streamOf(uint256 streamId)
        external
        view
        returns (address seller, uint256 pricePerSecond, uint64 minDuration, uint64 lastBatch, bool anchored)
    {
        Stream storage s = _stream(streamId);
        return (s.seller, s.pricePerSecond, s.minDuration, s.lastBatch, s.anchored);
    }

    /// @notice Until when `subscriber` may read `streamId` (0: never subscribed).
    /// @param streamId The stream.
    /// @param subscriber The subscriber.
    /// @return The end of access, as a unix timestamp.
    function accessUntil(uint256 streamId, address subscriber) external view returns (uint64) {
        return _access[streamId][subscriber].until;
    }

    /// @notice Whether `subscriber` may read `streamId` now.
    /// @param streamId The stream.
    /// @param subscriber The subscriber.
    /// @return True while the paid access lasts.
    function hasAccess(uint256 streamId, address subscriber) external view returns (bool) {
        return _access[streamId][subscriber].until > block.timestamp;
    }

    /// @notice An anchored batch.
    /// @param streamId The stream.
    /// @param batch The batch number.
    /// @return root The Merkle root (zero if not anchored).
    /// @return messageCount How many messages the batch holds.
    /// @return anchoredAt When it was anchored.
    function batchOf(uint256 streamId, uint64 batch)
        external
        view
        returns (bytes32 root, uint32 messageCount, uint64 anchoredAt)
    {
        Anchor storage b = _anchors[streamId][batch];
        return (b.root, b.messageCount, b.anchoredAt);
    }

    /// @notice A seller's earnings not yet withdrawn.
    /// @param seller The seller.
    /// @return The balance, in wei.
    function balanceOf(address seller) external view returns (uint256) {
        return _balances[seller];
    }

    /// @notice The ratings `account` received, one per distinct rater (its latest score).
    /// @param account The rated account.
    /// @return sum The sum of the raters' latest scores.
    /// @return count How many distinct raters: the average is sum / count.
    function ratingOf(address account) external view returns (uint256 sum, uint256 count) {
        return (_ratingSum[account], _ratingCount[account]);
    }

    /// @notice The latest score `rater` gave `account` (0: none).
    /// @param account The rated account.
    /// @param rater The rater.
    /// @return The score, 1..5, or 0.
    function scoreBy(address account, address rater) external view returns (uint8) {
        return _scoreBy[account][rater];
    }

    function _requireEnrolled(address account, uint8 role) private view {
        if (_registry != address(0) && !IEnrollmentRegistry(_registry).isEnrolled(account, role)) {
            revert NotEnrolled(account, role);
        }
    }

    function _stream(uint256 streamId) private view returns (Stream storage s) {
        s = _streams[streamId];
        if (s.seller == address(0)) revert UnknownStream(streamId);
    }
}
