//! The data marketplace end to end: a DataStream on the local control plane →
//! the operator's publisher pod (its sidecar in stream mode, a real container on
//! the real node) polls a simulated sensor, anchors batch roots on anvil → a buyer
//! pays, fetches and verifies every message against the on-chain roots (a
//! tampered one is caught) → the operator reports the stream, its anchored
//! batches, subscribers and revenue → the access expires (403 Expired, no
//! active subscriber in status) → the buyer rates the seller.

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use kontrakt_e2e::{
    contract_services::{service, wait_for},
    real_node::RealNode,
    stack::{Stack, assert_not_refused, assert_operator_restarts},
};
use kontrakt_operator::api::DataStream;
use kontrakt_protocol::config::ChainConfig;
use kontrakt_sidecar::{
    chain::Chain,
    devchain::DEV_KEYS,
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
/// An hour at a price that makes it cost DataMarket's `MIN_RATED_PAYMENT` (0.001 ether), so
/// the finished subscription earns the buyer a rating.
const PRICE: u64 = 277_777_777_778;
const SECONDS: u64 = 3_600;

/// A pump's telemetry on `host`: each GET answers the next reading as JSON.
async fn sensor(host: std::net::IpAddr) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((host, 0))
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
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain and the sensor listen there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("stream", &[("resyncSeconds", "2")], &node).await;
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    let (port, _sensor) = sensor(node.address).await;

    // The seller: a contract service whose signer sells the stream.
    stack
        .services()
        .create(&PostParams::default(), &service("shipping", &anvil.url, 1))
        .await
        .expect("seller");
    let streams: Api<DataStream> = Api::namespaced(stack.client.clone(), stack.ns.name());
    let ds: DataStream = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "DataStream",
        "metadata": { "name": "pump-telemetry" },
        "spec": {
            "seller": { "name": "shipping" },
            "source": { "http": { "url": format!("http://{}:{port}/telemetry", node.address), "intervalSeconds": 1 } },
            "pricing": { "pricePerSecondWei": PRICE, "minDurationSeconds": SECONDS },
            "integrity": { "batchSize": 3, "maxDelaySeconds": 2 },
        }
    }))
    .unwrap();
    streams
        .create(&PostParams::default(), &ds)
        .await
        .expect("create stream");

    let status = stack
        .wait_for("the stream Ready with a batch anchored", LIMIT, || async {
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
    // The buyer reaches the publisher pod at its IP on the node's bridge.
    let publisher = stack
        .wait_for("the publisher pod running", LIMIT, || {
            stack.sidecar_pod("pump-telemetry-publisher")
        })
        .await
        .url;

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
    let market = kontrakt_protocol::addresses::market_address(Address::ZERO);
    let buyer = Buyer::new(chain, key, market);
    buyer
        .subscribe(stream_id, SECONDS)
        .await
        .expect("subscribe");
    let (messages, _) = buyer
        .fetch_verified(&publisher, stream_id, 0)
        .await
        .unwrap_or_else(|e| panic!("fetch and verify: {e}\n{}", stack.diagnostics()));
    assert!(
        messages.len() >= 3,
        "a whole batch, verified: {}",
        messages.len()
    );

    // The operator reads the sale back from the chain.
    let status = stack
        .wait_for("revenue and a subscriber in status", LIMIT, || async {
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
    stack
        .wait_for("no active subscriber after expiry", LIMIT, || async {
            let s = streams.get("pump-telemetry").await.ok()?.status?;
            (s.active_subscribers == Some(0)).then_some(())
        })
        .await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}

alloy::sol! {
    #[sol(rpc)]
    interface DataMarketRatings {
        function ratingOf(address account) external view returns (uint256 sum, uint256 count);
    }
}

/// A pump whose telemetry the test can switch off: while offline it drops
/// every connection unanswered; each reading it serves is recorded with the
/// moment it went out.
struct SwitchableSensor {
    port: u16,
    online: Arc<std::sync::atomic::AtomicBool>,
    served: Arc<std::sync::Mutex<Vec<(u64, std::time::Instant)>>>,
}

impl SwitchableSensor {
    async fn start(host: std::net::IpAddr) -> SwitchableSensor {
        let listener = tokio::net::TcpListener::bind((host, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let online = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let served = Arc::new(std::sync::Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let (on, log) = (online.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                if !on.load(Ordering::SeqCst) {
                    drop(socket); // offline: nothing answers
                    continue;
                }
                let (count, log) = (count.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let body = json!({ "pump": "VerticalPump-9", "reading": n }).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_ok() {
                        let _ = socket.shutdown().await;
                        log.lock().unwrap().push((n, std::time::Instant::now()));
                    }
                });
            }
        });
        SwitchableSensor {
            port,
            online,
            served,
        }
    }

    fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::SeqCst);
    }

    /// Readings served before `t`.
    fn served_before(&self, t: std::time::Instant) -> Vec<u64> {
        self.served
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at)| *at < t)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The operator's publisher pod under faults: its sensor goes offline (the
/// publisher keeps running, status says the source is silent, then receiving
/// again); its container is killed with a batch half full and restarted by the
/// kubelet of the real node (same pod); then the pod itself is deleted
/// and replaced (the log is on the stream's PersistentVolumeClaim). No
/// reading served before either is lost, no batch is anchored twice.
#[tokio::test]
async fn the_publisher_pod_rides_out_a_silent_sensor_and_a_kill() {
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain and the sensor listen there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("stream-faults", &[("resyncSeconds", "2")], &node).await;
    let (client, ns) = (stack.client.clone(), stack.ns.name().to_owned());
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    let sensor = SwitchableSensor::start(node.address).await;
    // The volume the stream's claim binds to: a hostPath PV reserved for it, a
    // directory the publisher's user (65532, not root) may write.
    let volume_dir = tempfile::tempdir().expect("volume dir");
    std::os::unix::fs::chown(volume_dir.path(), Some(65532), Some(65532)).expect("chown");
    let volume = LogVolume::create(&client, &ns, "pump-9-log", volume_dir.path()).await;
    stack
        .services()
        .create(&PostParams::default(), &service("shipping", &anvil.url, 1))
        .await
        .expect("seller");
    let streams: Api<DataStream> = Api::namespaced(client.clone(), &ns);
    let ds: DataStream = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "DataStream",
        "metadata": { "name": "pump-9" },
        "spec": {
            "seller": { "name": "shipping" },
            "source": { "http": { "url": format!("http://{}:{}/telemetry", node.address, sensor.port), "intervalSeconds": 1 } },
            "pricing": { "pricePerSecondWei": PRICE, "minDurationSeconds": SECONDS },
            "integrity": { "batchSize": 3, "maxDelaySeconds": 2 },
            "storage": { "size": "1Gi", "storageClassName": volume.class },
        }
    }))
    .unwrap();
    streams
        .create(&PostParams::default(), &ds)
        .await
        .expect("create stream");
    let receiving = |s: &kontrakt_operator::api::DataStreamStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Receiving")
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let ready = |s: &kontrakt_operator::api::DataStreamStatus| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    let status = stack
        .wait_for("Ready and receiving", LIMIT, || async {
            let s = streams.get("pump-9").await.ok()?.status?;
            (ready(&s) && receiving(&s) == Some(("True".into(), "BatchesAnchored".into())))
                .then_some(s)
        })
        .await;
    let stream_id: U256 = status.stream_id.as_deref().unwrap().parse().unwrap();
    let publisher = || stack.sidecar_pod("pump-9-publisher");
    let pod = stack
        .wait_for("the publisher pod running", LIMIT, publisher)
        .await;

    // The sensor goes offline: the publisher keeps running, the status says so.
    sensor.set_online(false);
    let silent = stack
        .wait_for("Receiving=False SourceSilent", LIMIT, || async {
            let s = streams.get("pump-9").await.ok()?.status?;
            (receiving(&s).map(|r| r.1).as_deref() == Some("SourceSilent")).then_some(s)
        })
        .await;
    assert!(ready(&silent), "anchored data is still served: {silent:?}");
    assert_eq!(
        publisher().await.as_ref(),
        Some(&pod),
        "the publisher kept running\n{}",
        stack.diagnostics()
    );
    sensor.set_online(true);
    stack
        .wait_for("receiving again", LIMIT, || async {
            let s = streams.get("pump-9").await.ok()?.status?;
            (receiving(&s).map(|r| r.0).as_deref() == Some("True")).then_some(())
        })
        .await;

    // Killed with a batch half full: right after a batch is anchored, about
    // 1.5 readings into the next one (batches of 3, one reading a second).
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    let market = kontrakt_protocol::addresses::market_address(Address::ZERO);
    let last_batch = || async {
        kontrakt_protocol::bindings::DataMarket::new(market, &provider)
            .streamOf(stream_id)
            .call()
            .await
            .map(|s| s.lastBatch)
            .unwrap_or_default()
    };
    let before = last_batch().await;
    stack
        .wait_for("the next batch anchored", LIMIT, || async {
            (last_batch().await > before).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed_at = std::time::Instant::now();
    stack.kill_sidecar(&pod);
    let served_before_kill = sensor.served_before(killed_at - Duration::from_millis(500));
    let restarted = stack
        .wait_for("the publisher restarted in its pod", LIMIT, || async {
            publisher()
                .await
                .filter(|p| p.name == pod.name && p.instance != pod.instance)
        })
        .await;
    eprintln!(
        "publisher {}: {} killed, {} runs",
        pod.name, pod.instance, restarted.instance
    );
    assert!(!served_before_kill.is_empty(), "readings before the kill");

    // A buyer reads everything anchored once the readings before the kill are in.
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
    let buyer = Buyer::new(chain, key, market);
    buyer
        .subscribe(stream_id, 5 * SECONDS)
        .await
        .expect("subscribe");
    assert_nothing_lost(
        &buyer,
        stream_id,
        &served_before_kill,
        "the kill",
        || async { publisher().await.map(|p| p.url) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.diagnostics()));

    // The pod is deleted (as on eviction or a drained node): the Deployment
    // makes a new one, which finds the log on the claim and serves it all.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.delete(&pod.name, &Default::default())
        .await
        .expect("delete the publisher pod");
    let deleted_at = std::time::Instant::now();
    let served_before_delete = sensor.served_before(deleted_at - Duration::from_millis(500));
    assert_nothing_lost(
        &buyer,
        stream_id,
        &served_before_delete,
        "the pod was replaced",
        || async {
            publisher()
                .await
                .filter(|p| p.name != pod.name)
                .map(|p| p.url)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.diagnostics()));
    // Each batch number anchored exactly once, numbered without gaps.
    let logs = provider
        .get_logs(
            &alloy::rpc::types::Filter::new()
                .address(market)
                .event_signature(
                    <kontrakt_protocol::bindings::DataMarket::BatchAnchored as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                )
                .topic1(alloy::primitives::B256::from(stream_id))
                .from_block(0),
        )
        .await
        .expect("BatchAnchored logs");
    let batches: Vec<u64> = logs
        .iter()
        .map(|l| {
            l.log_decode::<kontrakt_protocol::bindings::DataMarket::BatchAnchored>()
                .expect("BatchAnchored")
                .inner
                .data
                .batch
        })
        .collect();
    let first = batches[0];
    assert_eq!(
        batches,
        (first..first + batches.len() as u64).collect::<Vec<_>>(),
        "each batch anchored once, in order"
    );
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
    volume.delete().await;
}

/// Waits until the publisher at `publisher()` serves, verified against the chain, readings
/// past the last of `served` (so every one of them had time to be anchored); then checks that
/// they come in order, none twice, and that none of `served` is missing.
async fn assert_nothing_lost<P>(
    buyer: &Buyer,
    stream_id: U256,
    served: &[u64],
    before: &str,
    publisher: impl Fn() -> P,
) -> Result<(), String>
where
    P: std::future::Future<Output = Option<String>>,
{
    let last = *served.last().ok_or("nothing was served")?;
    let readings = wait_for(
        &format!("every reading served before {before} anchored and verified"),
        LIMIT,
        || async {
            let (messages, _) = buyer
                .fetch_verified(&publisher().await?, stream_id, 0)
                .await
                .ok()?;
            let readings: Vec<u64> = messages
                .iter()
                .map(|m| {
                    let v: serde_json::Value = serde_json::from_slice(&m.data).expect("JSON");
                    v["reading"].as_u64().expect("a reading")
                })
                .collect();
            readings.iter().any(|r| *r > last).then_some(readings)
        },
    )
    .await;
    let mut sorted = readings.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != readings {
        return Err(format!(
            "readings out of order or twice after {before}: {readings:?}"
        ));
    }
    let missing: Vec<u64> = served
        .iter()
        .filter(|n| !readings.contains(n))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "readings served before {before} and lost: {missing:?}"
        ));
    }
    Ok(())
}

/// A hostPath PersistentVolume reserved (claimRef) for one claim of the test
/// namespace, with a storage class of its own, so no other claim binds it.
/// Cluster-scoped: deleted by the test.
struct LogVolume {
    client: kube::Client,
    name: String,
    class: String,
}

impl LogVolume {
    async fn create(
        client: &kube::Client,
        namespace: &str,
        claim: &str,
        dir: &std::path::Path,
    ) -> LogVolume {
        let name = format!("{namespace}-{claim}");
        let pv: k8s_openapi::api::core::v1::PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": { "name": name },
            "spec": {
                "capacity": { "storage": "1Gi" },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": name,
                "claimRef": { "namespace": namespace, "name": claim },
                "hostPath": { "path": dir.to_str().unwrap(), "type": "Directory" },
            }
        }))
        .unwrap();
        Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .expect("create the PersistentVolume");
        LogVolume {
            client: client.clone(),
            class: name.clone(),
            name,
        }
    }

    async fn delete(self) {
        let _ = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(self.client)
            .delete(&self.name, &Default::default())
            .await;
    }
}
