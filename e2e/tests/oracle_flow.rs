//! Thing Communication end to end, on the real node: a Shipping service whose
//! oracle endpoint is an HTTP server started by this test on the node's bridge
//! address (where pods reach the host). The contract asks for a shipment cost;
//! the sidecar container, from the config the chart-installed operator pod
//! rendered, fetches it from the endpoint named in the service's spec and fulfils
//! on chain; the operator reports the counters and OracleReady. With the device
//! offline past the request's deadline the request expires, visible in status and
//! as an Event.

use alloy::{
    network::EthereumWallet,
    primitives::{FixedBytes, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use k8s_openapi::api::events::v1::Event;
use kontrakt_e2e::{
    contract_services::condition,
    contracts::Shipping,
    real_node::RealNode,
    stack::{Stack, assert_not_refused, assert_operator_restarts},
};
use kontrakt_operator::api::SmartContractService;
use kontrakt_sidecar::devchain::DEV_KEYS;
use kube::{Api, api::PostParams};
use serde_json::json;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(120);
const COST: u64 = 4_200;

/// A device-cost service on `host`: answers `{"cost": 4200}` to a GET naming the
/// device, counting the requests it saw. Stops when the returned handle is aborted.
async fn device_service(
    host: std::net::IpAddr,
    hits: Arc<AtomicUsize>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) =
                    if request.starts_with("GET /shipment-cost?device=VerticalPump ") {
                        hits.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", json!({ "cost": COST }).to_string())
                    } else {
                        ("404 Not Found", "{}".to_owned())
                    };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn the_contract_asks_and_the_sidecar_answers_from_the_named_endpoint() {
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain and the device listen there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("oracle", &[("resyncSeconds", "2")], &node).await;
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    let hits = Arc::new(AtomicUsize::new(0));
    let (port, device) = device_service(node.address, hits.clone()).await;

    let services: Api<SmartContractService> = stack.services();
    let scs: SmartContractService = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": "shipping" },
        "spec": {
            "chain": { "rpcUrl": anvil.url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": "signer", "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": 1 },
            "oracle": { "endpoints": [{
                "name": "ShipmentCost",
                "url": format!("http://{}:{port}/shipment-cost", node.address),
                "timeoutSeconds": 2,
                "retries": 100,
                "resultPath": "$.cost",
            }]},
        }
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &scs)
        .await
        .expect("create");
    let ready = stack
        .wait_for("shipping Ready with OracleReady", LIMIT, || async {
            let s = services.get("shipping").await.ok()?;
            (condition(&s, "Ready").map(|c| c.0) == Some("True".into())
                && condition(&s, "OracleReady").map(|c| c.0) == Some("True".into()))
            .then_some(s)
        })
        .await;
    let logic = ready
        .status
        .and_then(|s| s.contract_address)
        .expect("address")
        .parse()
        .unwrap();

    // A supplier creates a shipment and asks for its cost.
    let supplier: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(supplier))
        .connect_http(anvil.url.parse().unwrap());
    let shipping = Shipping::new(logic, provider.clone());
    let ask = |id: u8| {
        let shipping = shipping.clone();
        async move {
            let id = FixedBytes::repeat_byte(id);
            let receiver: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
            shipping
                .createShipment(id, receiver.address(), "VerticalPump".into(), U256::from(3))
                .send()
                .await
                .expect("createShipment")
                .get_receipt()
                .await
                .expect("mined");
            shipping
                .requestShipmentCost(id)
                .send()
                .await
                .expect("requestShipmentCost")
                .get_receipt()
                .await
                .expect("mined");
            id
        }
    };
    let first = ask(1).await;
    let counters = stack
        .wait_for("status.oracle.fulfilled == 1", LIMIT, || async {
            let s = services.get("shipping").await.ok()?;
            let o = s.status?.oracle?;
            (o.fulfilled == 1).then_some(o)
        })
        .await;
    assert_eq!(
        (counters.pending, counters.failed, counters.expired),
        (0, 0, 0)
    );
    let shipment = shipping.shipmentOf(first).call().await.expect("shipmentOf");
    assert!(shipment.costKnown, "the callback stored the cost");
    assert_eq!(shipment.cost, U256::from(COST));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched exactly once");

    // The device goes offline; the next request's deadline passes unanswered.
    device.abort();
    let _ = device.await;
    let second = ask(2).await;
    stack
        .wait_for("the sidecar retrying the offline device", LIMIT, || async {
            let s = services.get("shipping").await.ok()?;
            (s.status?.oracle?.pending == 1).then_some(())
        })
        .await;
    provider
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (7_200u64,))
        .await
        .expect("evm_increaseTime");
    provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
    let counters = stack
        .wait_for("status.oracle.expired == 1", LIMIT, || async {
            let s = services.get("shipping").await.ok()?;
            let o = s.status?.oracle?;
            (o.expired == 1).then_some(o)
        })
        .await;
    assert_eq!(
        (counters.fulfilled, counters.pending),
        (1, 0),
        "{counters:?}"
    );
    let unanswered = shipping
        .shipmentOf(second)
        .call()
        .await
        .expect("shipmentOf");
    assert!(!unanswered.costKnown);
    let events: Api<Event> = Api::namespaced(stack.client.clone(), stack.ns.name());
    stack
        .wait_for(
            "an OracleRequestsExpired Event",
            Duration::from_secs(30),
            || async {
                let list = events.list(&Default::default()).await.ok()?;
                list.items
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("OracleRequestsExpired"))
                    .then_some(())
            },
        )
        .await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}
