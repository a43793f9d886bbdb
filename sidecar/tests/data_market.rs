//! The DataMarket contract on a real anvil: keyed registration, paid time-bounded access,
//! monotonic anchoring, withdrawal, ratings that must be earned and count each rater once,
//! enrollment.

mod common;
mod market;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use common::Anvil;
use kontrakt_protocol::addresses::{market_address, stream_key};
use kontrakt_protocol::bindings::DataMarket;
use kontrakt_protocol::config::Role;
use kontrakt_protocol::views::market::read_stream_stats;
use kontrakt_sidecar::stream::market::{ensure_market, ensure_stream};
use market::{
    advance_time, chain_for, chain_time, deploy_registry, dev_key, enroll, funded, market_tx,
    reverted,
};

#[tokio::test]
async fn register_subscribe_extend_anchor_withdraw_and_rate() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (_, seller) = funded(&anvil, &admin).await;
    let (buyer_key, buyer) = funded(&anvil, &admin).await;
    let (address, created) = ensure_market(&seller, Address::ZERO).await.unwrap();
    assert!(created);
    assert_eq!(address, market_address(Address::ZERO));
    assert_eq!(
        ensure_market(&admin, Address::ZERO).await.unwrap(),
        (address, false),
        "deploy-if-absent finds it"
    );
    let m = DataMarket::new(address, seller.provider());
    let key = stream_key("default", "temperature");
    let price = U256::from(10);

    // Keyed registration: found again, never registered twice.
    let id = ensure_stream(&seller, address, key, price, 60)
        .await
        .unwrap();
    assert_eq!(id, U256::from(1));
    assert_eq!(m.streamIdOf(seller.signer(), key).call().await.unwrap(), id);
    assert_eq!(
        m.streamIdOf(buyer.signer(), key).call().await.unwrap(),
        U256::ZERO
    );
    let nonce = seller
        .provider()
        .get_transaction_count(seller.signer())
        .await
        .unwrap();
    assert_eq!(
        ensure_stream(&seller, address, key, price, 60)
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        seller
            .provider()
            .get_transaction_count(seller.signer())
            .await
            .unwrap(),
        nonce,
        "an existing stream sends nothing"
    );
    let again = m.registerStream(key, price, 60).into_transaction_request();
    assert!(
        reverted(market_tx(&seller, "register twice", again).await).starts_with("StreamKeyTaken(")
    );
    let zero = m
        .registerStream(B256::repeat_byte(9), price, 0)
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&seller, "zero duration", zero).await),
        "ZeroDuration()"
    );

    // Paying less than the minimum, or a wrong amount, reverts.
    let bm = DataMarket::new(address, buyer.provider());
    let short = bm
        .subscribe(id, 30)
        .value(U256::from(300))
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&buyer, "short", short).await),
        "DurationTooShort(30, 60)"
    );
    let cheap = bm
        .subscribe(id, 60)
        .value(U256::from(599))
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&buyer, "cheap", cheap).await),
        "WrongPayment(600, 599)"
    );
    assert!(!bm.hasAccess(id, buyer_key.address()).call().await.unwrap());

    // Paid access is time-bounded and extendable from its end.
    let pay = bm
        .subscribe(id, 60)
        .value(U256::from(600))
        .into_transaction_request();
    market_tx(&buyer, "subscribe", pay.clone()).await.unwrap();
    let now = chain_time(&buyer).await;
    let until = bm
        .accessUntil(id, buyer_key.address())
        .call()
        .await
        .unwrap();
    assert_eq!(until, now + 60);
    assert!(bm.hasAccess(id, buyer_key.address()).call().await.unwrap());
    market_tx(&buyer, "extend", pay).await.unwrap();
    assert_eq!(
        bm.accessUntil(id, buyer_key.address())
            .call()
            .await
            .unwrap(),
        until + 60
    );
    assert_eq!(
        m.balanceOf(seller.signer()).call().await.unwrap(),
        U256::from(1200)
    );

    // Nothing to rate while the subscription runs.
    let early = bm.rate(id, seller.signer(), 5).into_transaction_request();
    assert!(reverted(market_tx(&buyer, "early rating", early).await).starts_with("NothingToRate("));

    // Anchoring: only the seller, non-zero roots, strictly increasing batch numbers.
    let root = B256::repeat_byte(0xab);
    market_tx(
        &seller,
        "anchor 1",
        m.anchorBatch(id, 1, root, 10).into_transaction_request(),
    )
    .await
    .unwrap();
    let dup = m.anchorBatch(id, 1, root, 10).into_transaction_request();
    assert_eq!(
        reverted(market_tx(&seller, "anchor 1 again", dup).await),
        "BatchNotIncreasing(1, 1)"
    );
    let by_buyer = bm.anchorBatch(id, 2, root, 10).into_transaction_request();
    assert!(
        reverted(market_tx(&buyer, "anchor by buyer", by_buyer).await).starts_with("NotSeller(")
    );
    let zero_root = m
        .anchorBatch(id, 2, B256::ZERO, 10)
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&seller, "zero root", zero_root).await),
        "ZeroRoot()"
    );
    market_tx(
        &seller,
        "anchor 3",
        m.anchorBatch(id, 3, B256::repeat_byte(3), 7)
            .into_transaction_request(),
    )
    .await
    .unwrap();
    let s = m.streamOf(id).call().await.unwrap();
    assert_eq!((s.lastBatch, s.anchored), (3, true));
    let b = m.batchOf(id, 3).call().await.unwrap();
    assert_eq!((b.root, b.messageCount), (B256::repeat_byte(3), 7));
    assert_eq!(m.batchOf(id, 2).call().await.unwrap().root, B256::ZERO);

    // What the operator reads for the DataStream status.
    let stats = read_stream_stats(seller.provider(), address, id)
        .await
        .unwrap();
    assert_eq!(stats.seller, seller.signer());
    assert_eq!((stats.anchored_batches, stats.last_batch), (2, Some(3)));
    assert_eq!(stats.last_root, Some(B256::repeat_byte(3)));
    assert_eq!((stats.active_subscribers, stats.subscribers), (1, 1));
    assert_eq!(stats.revenue_wei, U256::from(1200));

    // After the end: access is gone; this cheap, short window (1,200 wei for 120 s) earns
    // neither side a rating (see the ratings test for one that does).
    advance_time(&buyer, 200).await;
    let stats = read_stream_stats(seller.provider(), address, id)
        .await
        .unwrap();
    assert_eq!((stats.active_subscribers, stats.subscribers), (0, 1));
    assert!(!bm.hasAccess(id, buyer_key.address()).call().await.unwrap());
    let six = bm.rate(id, seller.signer(), 6).into_transaction_request();
    assert_eq!(
        reverted(market_tx(&buyer, "score 6", six).await),
        "InvalidScore(6)"
    );
    for (who, chain, tx) in [
        ("buyer", &buyer, bm.rate(id, seller.signer(), 5)),
        ("seller", &seller, m.rate(id, buyer_key.address(), 3)),
    ] {
        assert!(
            reverted(market_tx(chain, who, tx.into_transaction_request()).await)
                .starts_with("RatingNotEarned("),
            "the {who} may not rate an under-minimum window"
        );
    }
    let r = m.ratingOf(seller.signer()).call().await.unwrap();
    assert_eq!((r.sum, r.count), (U256::ZERO, U256::ZERO));

    // Withdraw: the balance moves to the seller, once.
    let before = seller
        .provider()
        .get_balance(seller.signer())
        .await
        .unwrap();
    let receipt = seller
        .send("withdraw", m.withdraw().into_transaction_request(), &[])
        .await
        .unwrap();
    assert_eq!(
        m.balanceOf(seller.signer()).call().await.unwrap(),
        U256::ZERO
    );
    let after = seller
        .provider()
        .get_balance(seller.signer())
        .await
        .unwrap();
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        after,
        before + U256::from(1200) - fee,
        "the 1200 wei paid reach the seller"
    );
    assert_eq!(
        reverted(
            market_tx(
                &seller,
                "withdraw again",
                m.withdraw().into_transaction_request()
            )
            .await
        ),
        "NothingToWithdraw()"
    );
    assert_eq!(
        reverted(
            market_tx(
                &buyer,
                "withdraw nothing",
                bm.withdraw().into_transaction_request()
            )
            .await
        ),
        "NothingToWithdraw()"
    );
}

#[tokio::test]
async fn with_a_registry_only_enrolled_publishers_and_subscribers_take_part() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let registry = deploy_registry(&admin).await;
    let (_, seller) = funded(&anvil, &admin).await;
    let (_, buyer) = funded(&anvil, &admin).await;
    let (address, created) = ensure_market(&seller, registry).await.unwrap();
    assert!(created);
    assert_eq!(address, market_address(registry));
    assert_ne!(
        address,
        market_address(Address::ZERO),
        "one market per registry"
    );
    let m = DataMarket::new(address, seller.provider());
    assert_eq!(m.registry().call().await.unwrap(), registry);
    let key = stream_key("default", "humidity");

    let register = m
        .registerStream(key, U256::from(1), 1)
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&seller, "register unenrolled", register.clone()).await),
        format!("NotEnrolled({}, 2)", seller.signer())
    );
    enroll(&admin, registry, seller.signer(), Role::Publisher).await;
    let id = ensure_stream(&seller, address, key, U256::from(1), 1)
        .await
        .unwrap();

    let bm = DataMarket::new(address, buyer.provider());
    let pay = bm
        .subscribe(id, 10)
        .value(U256::from(10))
        .into_transaction_request();
    assert_eq!(
        reverted(market_tx(&buyer, "subscribe unenrolled", pay.clone()).await),
        format!("NotEnrolled({}, 3)", buyer.signer())
    );
    // Enrolled in another role is not enough.
    enroll(&admin, registry, buyer.signer(), Role::Node).await;
    assert!(
        reverted(market_tx(&buyer, "subscribe as node", pay.clone()).await)
            .starts_with("NotEnrolled(")
    );
    enroll(&admin, registry, buyer.signer(), Role::Subscriber).await;
    market_tx(&buyer, "subscribe", pay).await.unwrap();
    assert!(bm.hasAccess(id, buyer.signer()).call().await.unwrap());
}

/// Ratings resist self-dealing: the seller cannot subscribe to its own stream; only a window
/// of at least `MIN_RATED_DURATION` that cost at least `MIN_RATED_PAYMENT` may be rated, once
/// per side; a rater's second window replaces its score rather than adding one.
#[tokio::test]
async fn ratings_are_earned_once_per_window_and_count_each_rater_once() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (_, seller) = funded(&anvil, &admin).await;
    let (buyer_key, buyer) = funded(&anvil, &admin).await;
    let (address, _) = ensure_market(&seller, Address::ZERO).await.unwrap();
    let m = DataMarket::new(address, seller.provider());
    let (min_paid, min_seconds) = (
        m.MIN_RATED_PAYMENT().call().await.unwrap(),
        m.MIN_RATED_DURATION().call().await.unwrap(),
    );
    // Independent of the contract's constants: 0.001 ether for an hour.
    assert_eq!((min_paid, min_seconds), (U256::from(10u64.pow(15)), 3_600));
    // The lowest price at which an hour costs the minimum (rounded up).
    let price = (min_paid + U256::from(min_seconds - 1)) / U256::from(min_seconds);
    let id = ensure_stream(&seller, address, stream_key("default", "rated"), price, 60)
        .await
        .unwrap();
    let cost = |seconds: u64| price * U256::from(seconds);

    // The seller cannot buy its own stream.
    let own = m
        .subscribe(id, 3_600)
        .value(cost(3_600))
        .into_transaction_request();
    assert!(
        reverted(market_tx(&seller, "self-subscription", own).await)
            .starts_with("SelfSubscription("),
    );

    // An hour's window, paid in two parts (subscription + extension), earns one rating each side.
    let bm = DataMarket::new(address, buyer.provider());
    for part in ["subscribe", "extend"] {
        let pay = bm
            .subscribe(id, 1_800)
            .value(cost(1_800))
            .into_transaction_request();
        market_tx(&buyer, part, pay).await.unwrap();
    }
    advance_time(&buyer, 3_601).await;
    market_tx(
        &buyer,
        "rate seller",
        bm.rate(id, seller.signer(), 5).into_transaction_request(),
    )
    .await
    .unwrap();
    let twice = bm.rate(id, seller.signer(), 4).into_transaction_request();
    assert!(reverted(market_tx(&buyer, "rate twice", twice).await).starts_with("NothingToRate("));
    market_tx(
        &seller,
        "rate buyer",
        m.rate(id, buyer_key.address(), 3)
            .into_transaction_request(),
    )
    .await
    .unwrap();
    let r = m.ratingOf(seller.signer()).call().await.unwrap();
    assert_eq!((r.sum, r.count), (U256::from(5), U256::from(1)));
    let r = m.ratingOf(buyer_key.address()).call().await.unwrap();
    assert_eq!((r.sum, r.count), (U256::from(3), U256::from(1)));

    // A second earned window by the same buyer: its new score replaces the old one.
    let pay = bm
        .subscribe(id, 3_600)
        .value(cost(3_600))
        .into_transaction_request();
    market_tx(&buyer, "subscribe again", pay).await.unwrap();
    advance_time(&buyer, 3_601).await;
    market_tx(
        &buyer,
        "rate again",
        bm.rate(id, seller.signer(), 1).into_transaction_request(),
    )
    .await
    .unwrap();
    let r = m.ratingOf(seller.signer()).call().await.unwrap();
    assert_eq!(
        (r.sum, r.count),
        (U256::from(1), U256::from(1)),
        "one rater, latest score"
    );
    assert_eq!(
        m.scoreBy(seller.signer(), buyer_key.address())
            .call()
            .await
            .unwrap(),
        1
    );

    // A window one second short of the minimum duration earns nothing.
    let (_, other) = funded(&anvil, &admin).await;
    let om = DataMarket::new(address, other.provider());
    let pay = om
        .subscribe(id, 3_599)
        .value(cost(3_599))
        .into_transaction_request();
    market_tx(&other, "short window", pay).await.unwrap();
    advance_time(&other, 3_600).await;
    let early = om.rate(id, seller.signer(), 5).into_transaction_request();
    assert!(
        reverted(market_tx(&other, "short window rating", early).await)
            .starts_with("RatingNotEarned(")
    );
}
