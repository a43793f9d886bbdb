//! `make demo` cannot rot: the demo's own scenario (`kontrakt_e2e::demo`), run
//! here in throwaway namespaces on free ports, must end where the demo
//! promises — all three kinds Ready, the oracle's answer on chain, a verified
//! purchase — each checked by a read of its own, not by the scenario's report alone.
//! Both ways it runs: on kwok's fake nodes (`make demo`) and as real containers on
//! the real node (`make demo REAL_NODE=1`).

use alloy::providers::ProviderBuilder;
use kontrakt_e2e::{
    cluster,
    demo::{self, Demo, Ports, SHIPMENT_COST},
    real_node::RealNode,
    stack::{Placement, binaries},
};

mod market {
    alloy::sol! {
        #[sol(rpc)]
        interface DataMarketAccess {
            function accessUntil(uint256 streamId, address subscriber) external view returns (uint256);
        }
    }
}

#[tokio::test]
async fn the_demo_ends_with_every_kind_ready_the_oracle_answered_and_a_verified_purchase() {
    demo_ends_where_it_promises(Placement::PodRunner(binaries().await)).await;
}

#[tokio::test]
async fn the_demo_on_the_real_node_ends_the_same() {
    demo_ends_where_it_promises(Placement::RealNode(RealNode::get())).await;
}

async fn demo_ends_where_it_promises(placement: Placement) {
    let client = cluster().await;
    let namespaces = demo::test_namespaces(&client, &placement).await;
    let demo = Demo::run(namespaces, Ports::free(placement.host()), &placement).await;
    let r = &demo.report;

    // Every kind Ready, read from the API.
    let readiness = demo::readiness(&client, &r.namespace).await;
    assert_eq!(readiness.len(), 3, "{readiness:?}");
    assert!(
        readiness.iter().all(|(_, ready)| ready == "True"),
        "{readiness:?}"
    );

    // The oracle: one answer counted by the operator, fetched once from the device,
    // and the device's value stored by the contract's callback.
    let service = demo::services(&client, &r.namespace)
        .get(demo::SERVICE)
        .await
        .expect("the service");
    let oracle = service
        .status
        .and_then(|s| s.oracle)
        .expect("oracle counters");
    assert_eq!(
        (oracle.fulfilled, oracle.failed, oracle.pending),
        (1, 0, 0),
        "{oracle:?}"
    );
    assert_eq!(
        demo.devices[0].served(),
        1,
        "the cost service was asked once"
    );
    assert_eq!(
        r.shipment_cost,
        alloy::primitives::U256::from(SHIPMENT_COST)
    );

    // The purchase: paid access on the market for the buyer, and verified messages.
    let provider = ProviderBuilder::new().connect_http(demo.anvil.url.parse().unwrap());
    let until = market::DataMarketAccess::new(r.market, &provider)
        .accessUntil(r.stream_id, r.buyer)
        .call()
        .await
        .expect("accessUntil");
    assert!(
        until > alloy::primitives::U256::ZERO,
        "the buyer holds access"
    );
    assert!(r.verified_messages >= 1, "{r:?}");
    assert!(demo.devices[1].served() >= r.verified_messages as u64);
}
