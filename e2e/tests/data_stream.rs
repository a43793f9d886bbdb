//! The data marketplace end to end: a DataStream on the local control plane →
//! the operator's publisher pod (its sidecar in stream mode, run by the pod
//! runner) polls a simulated sensor, anchors batch roots on anvil → a buyer
//! pays, fetches and verifies every message against the on-chain roots (a
//! tampered one is caught) → the operator reports the stream, its anchored
//! batches, subscribers and revenue → the access expires (403 Expired, no
//! active subscriber in status) → the buyer rates the seller.

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use kontrakt_e2e::{
    TestNamespace, cluster,
    contract_services::{create_secret, service, start_controller, wait_for},
    pod_runner::{PodRunner, sidecar_binary},
};
use kontrakt_operator::api::{DataStream, SmartContractService};
use kontrakt_sidecar::{
    chain::Chain,
    config::ChainConfig,
    devchain::{Anvil, DEV_KEYS},
    stream::{
        buyer::{Buyer, BuyerError},
        server::StreamDenied,
    },
};
use kube::{Api, api::PostParams};
use serde_json::json;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(120);
const PRICE: u64 = 1_000;
const SECONDS: u64 = 60;

/// A pump's telemetry: each GET answers the next reading as JSON.
async fn sensor() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let n = count.fetch_add(1, Ordering::SeqCst);
                let body =
                    json!({ "pump": "VerticalPump-7", "reading": n, "bar": 3 + n % 4 }).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_stream_is_published_anchored_bought_and_verified() {
    let binary = tokio::task::spawn_blocking(sidecar_binary)
        .await
        .expect("sidecar binary");
    let anvil = Anvil::start(&[]).expect("anvil");
    let client = cluster().await;
    let ns = TestNamespace::create(&client, "stream").await;
    create_secret(&client, ns.name(), "signer", DEV_KEYS[0]).await;
    let _controller = start_controller(client.clone(), ns.name(), Duration::from_secs(2));
    let runner = PodRunner::start(client.clone(), ns.name(), binary);
    let (port, _sensor) = sensor().await;

    // The seller: a contract service whose signer sells the stream.
    Api::<SmartContractService>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &service("shipping", &anvil.url, 1))
        .await
        .expect("seller");
    let streams: Api<DataStream> = Api::namespaced(client.clone(), ns.name());
    let ds: DataStream = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "DataStream",
        "metadata": { "name": "pump-telemetry" },
        "spec": {
            "seller": { "name": "shipping" },
            "source": { "http": { "url": format!("http://127.0.0.1:{port}/telemetry"), "intervalSeconds": 1 } },
            "pricing": { "pricePerSecondWei": PRICE, "minDurationSeconds": SECONDS },
            "integrity": { "batchSize": 3, "maxDelaySeconds": 2 },
        }
    }))
    .unwrap();
    streams
        .create(&PostParams::default(), &ds)
        .await
        .expect("create stream");

    let status = wait_for("the stream Ready with a batch anchored", LIMIT, || async {
        let s = streams.get("pump-telemetry").await.ok()?.status?;
        let ready = s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && s.anchored_batches.unwrap_or(0) >= 1).then_some(s)
    })
    .await;
    assert!(status.last_root.is_some(), "{status:?}");
    let stream_id: U256 = status
        .stream_id
        .as_deref()
        .expect("streamId")
        .parse()
        .expect("a decimal id");
    let publisher = runner
        .running()
        .into_iter()
        .find(|(pod, _)| pod.starts_with("pump-telemetry-publisher"))
        .map(|(_, addr)| format!("http://{addr}"))
        .unwrap_or_else(|| panic!("no publisher process: {:?}", runner.running()));

    // A buyer pays for a minute, fetches and verifies every message against the roots on chain.
    let key: alloy::signers::local::PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
    let chain = Chain::connect(
        &ChainConfig {
            rpc_url: anvil.url.clone(),
            chain_id: 31337,
            retry: Default::default(),
        },
        key.clone(),
    )
    .await
    .expect("buyer chain");
    let market = kontrakt_sidecar::addresses::market_address(Address::ZERO);
    let buyer = Buyer::new(chain, key, market);
    buyer
        .subscribe(stream_id, SECONDS)
        .await
        .expect("subscribe");
    let (messages, _) = buyer
        .fetch_verified(&publisher, stream_id, 0)
        .await
        .unwrap_or_else(|e| panic!("fetch and verify: {e}\n{}", runner.log_tails(30)));
    assert!(
        messages.len() >= 3,
        "a whole batch, verified: {}",
        messages.len()
    );

    // The operator reads the sale back from the chain.
    let status = wait_for("revenue and a subscriber in status", LIMIT, || async {
        let s = streams.get("pump-telemetry").await.ok()?.status?;
        (s.revenue_wei.as_deref() == Some(&(PRICE * SECONDS).to_string())
            && s.active_subscribers == Some(1))
        .then_some(s)
    })
    .await;
    assert!(status.anchored_batches.unwrap_or(0) >= 1);

    // A tampered message is caught by the client against the on-chain root.
    let mut page = buyer.fetch(&publisher, stream_id, 0).await.expect("fetch");
    let mut forged = page.messages[0].data.to_vec();
    forged[0] ^= 0x01;
    page.messages[0].data = forged.into();
    match buyer.verify(&page).await {
        Err(BuyerError::Tampered { index: 0, .. }) => {}
        other => panic!("a tampered message must be caught, got {other:?}"),
    }

    // The paid minute ends: access refused with the reason; both sides may now rate.
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    provider
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (SECONDS + 5,))
        .await
        .expect("evm_increaseTime");
    provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
    match buyer.fetch(&publisher, stream_id, 0).await {
        Err(BuyerError::Refused {
            status: 403,
            denied: StreamDenied::Expired { .. },
            ..
        }) => {}
        other => panic!("an expired subscription must get 403 Expired, got {other:?}"),
    }
    let seller: alloy::signers::local::PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    buyer
        .rate(stream_id, seller.address(), 5)
        .await
        .expect("the buyer rates the seller once the subscription ended");
    let (sum, count) = {
        let r = DataMarketRatings::new(market, &provider)
            .ratingOf(seller.address())
            .call()
            .await
            .expect("ratingOf");
        (r.sum, r.count)
    };
    assert_eq!((sum, count), (U256::from(5), U256::from(1)));
    wait_for("no active subscriber after expiry", LIMIT, || async {
        let s = streams.get("pump-telemetry").await.ok()?.status?;
        (s.active_subscribers == Some(0)).then_some(())
    })
    .await;
    drop(runner);
}

alloy::sol! {
    #[sol(rpc)]
    interface DataMarketRatings {
        function ratingOf(address account) external view returns (uint256 sum, uint256 count);
    }
}
