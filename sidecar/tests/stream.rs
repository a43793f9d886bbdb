//! The publisher end to end on a real anvil, a real local HTTP sensor the test controls and
//! a real mosquitto broker: publish → anchor → buy → verify; tampering, expiry and missing
//! subscriptions refused; a bad or offline sensor; a publisher killed mid-batch.

mod common;
mod market;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use axum::http::StatusCode;
use common::{Anvil, free_port};
use kontrakt_protocol::bindings::DataMarket;
use kontrakt_protocol::config::{Role, SignerConfig};
use kontrakt_protocol::stream_config::{
    HttpSource, IntegrityConfig, MqttSource, SourceConfig, StreamConfig, StreamTerms,
};
use kontrakt_protocol::stream_key;
use kontrakt_sidecar::chain::Chain;
use kontrakt_sidecar::stream::buyer::{Buyer, BuyerError};
use kontrakt_sidecar::stream::log::MessageLog;
use kontrakt_sidecar::stream::market::{ensure_market, ensure_stream};
use kontrakt_sidecar::stream::server::StreamDenied;
use market::{
    advance_time, chain_config, chain_for, deploy_registry, dev_key, enroll, funded, market_tx,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(45);

// ------------------------------------------------------------------ the simulated sensor

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SensorMode {
    Readings,
    Malformed,
    Offline,
}

/// A local HTTP sensor: each GET answers the next reading (`{"seq":n,...}`), garbage, or 503.
#[derive(Clone)]
struct Sensor {
    mode: Arc<Mutex<SensorMode>>,
    /// Every reading body served, in order.
    served: Arc<Mutex<Vec<Vec<u8>>>>,
    url: String,
}

impl Sensor {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/reading", listener.local_addr().unwrap());
        let sensor = Self {
            mode: Arc::new(Mutex::new(SensorMode::Readings)),
            served: Arc::new(Mutex::new(Vec::new())),
            url,
        };
        let s = sensor.clone();
        let app = axum::Router::new().route(
            "/reading",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    let mode = *s.mode.lock().unwrap();
                    match mode {
                        SensorMode::Offline => {
                            (StatusCode::SERVICE_UNAVAILABLE, b"sensor offline".to_vec())
                        }
                        SensorMode::Malformed => (StatusCode::OK, b"temp=21.5;ok".to_vec()),
                        SensorMode::Readings => {
                            let mut served = s.served.lock().unwrap();
                            let body = format!(
                                "{{\"seq\":{},\"celsius\":{}}}",
                                served.len(),
                                20 + served.len() % 7
                            )
                            .into_bytes();
                            served.push(body.clone());
                            (StatusCode::OK, body)
                        }
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        sensor
    }

    fn set(&self, mode: SensorMode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn served(&self) -> Vec<Vec<u8>> {
        self.served.lock().unwrap().clone()
    }
}

// ------------------------------------------------------------------ mosquitto

/// A real mosquitto on a free loopback port with a generated config; killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Self {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "mosquitto not found (looked in /usr/sbin, /usr/bin, /usr/local/sbin): install the broker with `apt-get install -y mosquitto`"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mosquitto exited with {status} before listening on {port}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ the publisher

fn key_hex(key: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(key.to_bytes()))
}

struct Setup {
    _dirs: Vec<tempfile::TempDir>,
    config: StreamConfig,
    url: String,
}

fn stream_config(
    anvil: &Anvil,
    seller: &PrivateKeySigner,
    registry: Option<Address>,
    source: SourceConfig,
    batch_size: u32,
    max_delay_seconds: u64,
) -> Setup {
    let (key_dir, key_file) = common::key_file(&key_hex(seller));
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = StreamConfig {
        chain: chain_config(anvil),
        signer: SignerConfig { key_file },
        registry,
        stream: StreamTerms {
            namespace: "default".into(),
            name: "temperature".into(),
            price_per_second_wei: U256::from(1_000),
            min_duration_seconds: 60,
        },
        source,
        integrity: IntegrityConfig {
            batch_size,
            max_delay_seconds,
        },
        data_dir: data.path().join("log"),
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    Setup {
        _dirs: vec![key_dir, data],
        config,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A publisher running in this process until the sender is dropped or fired.
fn spawn_publisher(
    config: StreamConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        kontrakt_sidecar::stream::publisher::run(config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    });
    (tx, task)
}

async fn status(url: &str) -> Option<Value> {
    let r = reqwest::get(format!("{url}/status")).await.ok()?;
    r.json().await.ok()
}

/// Polls `/status` until `done` holds (bounded).
async fn wait_status(url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(s) = status(url).await
            && done(&s)
        {
            return s;
        }
        assert!(
            start.elapsed() < LIMIT,
            "timed out waiting for {what}; last status: {:?}",
            status(url).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Every anchored batch of a stream on chain: (number, messageCount).
async fn anchored_on_chain(chain: &Chain, market: Address, stream_id: U256) -> Vec<(u64, u32)> {
    let m = DataMarket::new(market, chain.provider());
    let s = m.streamOf(stream_id).call().await.unwrap();
    let mut out = Vec::new();
    if !s.anchored {
        return out;
    }
    for b in 1..=s.lastBatch {
        let batch = m.batchOf(stream_id, b).call().await.unwrap();
        if !batch.root.is_zero() {
            out.push((b, batch.messageCount));
        }
    }
    out
}

async fn stream_id_of(chain: &Chain, market: Address, seller: Address) -> U256 {
    DataMarket::new(market, chain.provider())
        .streamIdOf(seller, stream_key("default", "temperature"))
        .call()
        .await
        .unwrap()
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sensor_to_verified_purchase_then_tampering_expiry_and_strangers_are_refused() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let registry = deploy_registry(&admin).await;
    let (seller_key, seller) = funded(&anvil, &admin).await;
    let (buyer_key, buyer_chain) = funded(&anvil, &admin).await;
    let (stranger_key, stranger_chain) = funded(&anvil, &admin).await;
    enroll(&admin, registry, seller_key.address(), Role::Publisher).await;
    enroll(&admin, registry, buyer_key.address(), Role::Subscriber).await;
    let sensor = Sensor::start().await;
    let setup = stream_config(
        &anvil,
        &seller_key,
        Some(registry),
        SourceConfig::from_http(HttpSource {
            url: sensor.url.clone(),
            interval_seconds: 1,
        }),
        2,
        2,
    );
    let market = setup.config.market();
    let (stop, task) = spawn_publisher(setup.config.clone());
    let s = wait_status(&setup.url, "4 anchored messages", |s| {
        n(s, "anchoredMessages") >= 4
    })
    .await;
    assert!(s["source"]["online"].as_bool().unwrap(), "{s}");
    let stream_id = stream_id_of(&seller, market, seller_key.address()).await;
    assert_eq!(s["streamId"].as_str().unwrap(), format!("{stream_id:#x}"));

    let buyer = Buyer::new(buyer_chain.clone(), buyer_key.clone(), market);
    // Not subscribed yet: 403 with the reason.
    match buyer.fetch(&setup.url, stream_id, 0).await {
        Err(BuyerError::Refused {
            status: 403,
            denied: StreamDenied::NotSubscribed { account, .. },
            ..
        }) => {
            assert_eq!(account, buyer_key.address())
        }
        other => panic!("expected NotSubscribed, got {other:?}"),
    }
    // Unsigned: 401.
    let unsigned = reqwest::get(format!("{}/streams/{stream_id}/messages", setup.url))
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // Subscribe (price 1000 wei/s × 60 s), fetch, verify every proof against the chain.
    let sub = buyer.subscribe(stream_id, 60).await.unwrap();
    assert_eq!(sub.paid_wei, U256::from(60_000));
    let (verified, next) = buyer
        .fetch_verified(&setup.url, stream_id, 0)
        .await
        .unwrap();
    assert!(verified.len() >= 4, "{verified:?}");
    assert_eq!(next, verified.len() as u64);
    let served = sensor.served();
    for m in &verified {
        assert_eq!(
            m.data.as_ref(),
            served[m.index as usize].as_slice(),
            "message {}",
            m.index
        );
    }
    // A tampered message (one byte), or a message moved to another index, is caught.
    let mut page = buyer.fetch(&setup.url, stream_id, 0).await.unwrap();
    let mut bytes = page.messages[1].data.to_vec();
    bytes[2] ^= 0x01;
    page.messages[1].data = bytes.into();
    match buyer.verify(&page).await {
        Err(BuyerError::Tampered { index: 1, .. }) => {}
        other => panic!("expected Tampered at 1, got {other:?}"),
    }
    let mut page = buyer.fetch(&setup.url, stream_id, 0).await.unwrap();
    page.messages[0].index = 1;
    assert!(matches!(
        buyer.verify(&page).await,
        Err(BuyerError::Tampered { .. })
    ));

    // A stranger paying is still refused without enrollment as Subscriber: the market
    // itself refuses the payment, and the publisher refuses the fetch.
    let stranger = Buyer::new(stranger_chain, stranger_key.clone(), market);
    assert!(stranger.subscribe(stream_id, 60).await.is_err());
    match stranger.fetch(&setup.url, stream_id, 0).await {
        Err(BuyerError::Refused {
            status: 403,
            denied: StreamDenied::NotSubscribed { .. },
            ..
        }) => {}
        other => panic!("expected NotSubscribed, got {other:?}"),
    }
    // Paid but no longer enrolled: NotEnrolled.
    let tx = kontrakt_protocol::bindings::EnrollmentRegistry::new(registry, admin.provider())
        .suspend(buyer_key.address())
        .into_transaction_request();
    admin.send("suspend", tx, &[]).await.unwrap();
    match buyer.fetch(&setup.url, stream_id, 0).await {
        Err(BuyerError::Refused {
            status: 403,
            denied:
                StreamDenied::NotEnrolled {
                    role: Role::Subscriber,
                    ..
                },
            ..
        }) => {}
        other => panic!("expected NotEnrolled, got {other:?}"),
    }
    let tx = kontrakt_protocol::bindings::EnrollmentRegistry::new(registry, admin.provider())
        .reinstate(buyer_key.address())
        .into_transaction_request();
    admin.send("reinstate", tx, &[]).await.unwrap();
    buyer.fetch(&setup.url, stream_id, 0).await.unwrap();

    // The subscription expires: 403 Expired, with when.
    advance_time(&buyer_chain, 120).await;
    match buyer.fetch(&setup.url, stream_id, 0).await {
        Err(BuyerError::Refused {
            status: 403,
            denied: StreamDenied::Expired { access_until, .. },
            ..
        }) => {
            assert_eq!(access_until, sub.access_until)
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // A minute for 60,000 wei earns no rating (DataMarket's minimums; the earned case is in
    // tests/data_market.rs): refused with the reason, nothing counted.
    let refused = buyer.rate(stream_id, seller_key.address(), 5).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("RatingNotEarned")),
        "{refused:?}"
    );
    let r = DataMarket::new(market, seller.provider())
        .ratingOf(seller_key.address())
        .call()
        .await
        .unwrap();
    assert_eq!((r.sum, r.count), (U256::ZERO, U256::ZERO));

    // Status and metrics agree with the chain.
    let s = status(&setup.url).await.unwrap();
    let on_chain = anchored_on_chain(&seller, market, stream_id).await;
    assert!(n(&s, "anchoredBatches") as usize <= on_chain.len());
    assert!(s["lastRoot"].is_string(), "{s}");
    let metrics = reqwest::get(format!("{}/metrics", setup.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kontrakt_stream_ingested_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains("kontrakt_stream_source_online 1"),
        "{metrics}"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_offline_sensor_is_counted_shown_and_never_anchored() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (seller_key, seller) = funded(&anvil, &admin).await;
    let sensor = Sensor::start().await;
    sensor.set(SensorMode::Malformed);
    let setup = stream_config(
        &anvil,
        &seller_key,
        None,
        SourceConfig::from_http(HttpSource {
            url: sensor.url.clone(),
            interval_seconds: 1,
        }),
        1000,
        1,
    );
    let market = setup.config.market();
    let (stop, task) = spawn_publisher(setup.config.clone());
    let s = wait_status(&setup.url, "2 malformed", |s| n(s, "malformed") >= 2).await;
    assert_eq!(n(&s, "ingested"), 0);
    sensor.set(SensorMode::Offline);
    let s = wait_status(&setup.url, "source offline", |s| {
        s["source"]["online"] == false
    })
    .await;
    assert!(
        s["source"]["lastError"].as_str().unwrap().contains("503"),
        "{s}"
    );
    let since = s["source"]["offlineSince"].as_u64().unwrap();
    // Still offline a while later, same start, the publisher still answering.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = status(&setup.url).await.unwrap();
    assert_eq!(s["source"]["offlineSince"].as_u64(), Some(since), "{s}");
    assert!(n(&s, "sourceErrors") >= 2, "{s}");
    let metrics = reqwest::get(format!("{}/metrics", setup.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kontrakt_stream_source_online 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "kontrakt_stream_source_offline_since_seconds {since}"
        )),
        "{metrics}"
    );

    // Back online: readings flow again; only they are anchored.
    sensor.set(SensorMode::Readings);
    let s = wait_status(&setup.url, "3 anchored readings", |s| {
        n(s, "anchoredMessages") >= 3 && s["source"]["online"] == true
    })
    .await;
    assert!(s["source"].get("offlineSince").is_none(), "{s}");
    sensor.set(SensorMode::Offline);
    let s = wait_status(&setup.url, "nothing pending", |s| {
        n(s, "pendingMessages") == 0
    })
    .await;
    let stream_id = stream_id_of(&seller, market, seller_key.address()).await;
    let on_chain = anchored_on_chain(&seller, market, stream_id).await;
    let anchored: u64 = on_chain.iter().map(|(_, c)| u64::from(*c)).sum();
    assert_eq!(
        anchored,
        sensor.served().len() as u64,
        "exactly the readings, none of the garbage"
    );
    assert_eq!(anchored, n(&s, "anchoredMessages"));
    assert!(n(&s, "malformed") >= 2);
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_topic_is_batched_by_size_and_by_delay() {
    let broker = Mosquitto::start();
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (seller_key, seller) = funded(&anvil, &admin).await;
    let setup = stream_config(
        &anvil,
        &seller_key,
        None,
        SourceConfig::from_mqtt(MqttSource {
            broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
            topic: "sensors/temperature".into(),
            qos: 1,
            credentials_file: None,
        }),
        10,
        2,
    );
    let market = setup.config.market();
    let (stop, task) = spawn_publisher(setup.config.clone());
    wait_status(&setup.url, "subscribed to the broker", |s| {
        s["source"]["online"] == true
    })
    .await;

    let mut options = rumqttc::MqttOptions::new("test-sensor", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
    let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for i in 0..25 {
        if i == 12 {
            client
                .publish(
                    "sensors/temperature",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    b"<xml/>".to_vec(),
                )
                .await
                .unwrap();
        }
        let body = format!("{{\"seq\":{i}}}");
        client
            .publish(
                "sensors/temperature",
                rumqttc::QoS::AtLeastOnce,
                false,
                body.into_bytes(),
            )
            .await
            .unwrap();
    }
    let s = wait_status(&setup.url, "25 anchored", |s| {
        n(s, "anchoredMessages") >= 25
    })
    .await;
    assert_eq!(n(&s, "malformed"), 1);
    assert_eq!(n(&s, "ingested"), 25);
    let stream_id = stream_id_of(&seller, market, seller_key.address()).await;
    // Two full batches by size, the rest by the max delay.
    assert_eq!(
        anchored_on_chain(&seller, market, stream_id).await,
        vec![(1, 10), (2, 10), (3, 5)]
    );

    // Published while the publisher is down: the broker keeps them for its session.
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    for i in 25..30 {
        let body = format!("{{\"seq\":{i}}}");
        client
            .publish(
                "sensors/temperature",
                rumqttc::QoS::AtLeastOnce,
                false,
                body.into_bytes(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop, task) = spawn_publisher(setup.config.clone());
    wait_status(&setup.url, "30 anchored", |s| {
        n(s, "anchoredMessages") >= 30
    })
    .await;
    assert_eq!(
        anchored_on_chain(&seller, market, stream_id).await,
        vec![(1, 10), (2, 10), (3, 5), (4, 5)]
    );
    pump.abort();
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_sealed_before_a_crash_are_anchored_exactly_once_after_the_restart() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (seller_key, seller) = funded(&anvil, &admin).await;
    let sensor = Sensor::start().await;
    sensor.set(SensorMode::Offline);
    let setup = stream_config(
        &anvil,
        &seller_key,
        None,
        SourceConfig::from_http(HttpSource {
            url: sensor.url.clone(),
            interval_seconds: 1,
        }),
        3,
        1,
    );
    let (market, _) = ensure_market(&seller, Address::ZERO).await.unwrap();
    let terms = &setup.config.stream;
    let stream_id = ensure_stream(
        &seller,
        market,
        terms.key(),
        terms.price_per_second_wei,
        terms.min_duration_seconds,
    )
    .await
    .unwrap();
    // The state a crash left: two sealed batches; the first one's anchoring went through
    // but its receipt was never recorded.
    let mut log = MessageLog::open(&setup.config.data_dir).unwrap();
    for i in 0..5 {
        log.append(format!("{{\"seq\":{i}}}").as_bytes()).unwrap();
    }
    let b1 = log.seal(1, 3).unwrap().unwrap();
    let b2 = log.seal(2, 3).unwrap().unwrap();
    drop(log);
    let m = DataMarket::new(market, seller.provider());
    market_tx(
        &seller,
        "anchor 1",
        m.anchorBatch(stream_id, 1, b1.root, b1.count)
            .into_transaction_request(),
    )
    .await
    .unwrap();
    let nonce = seller
        .provider()
        .get_transaction_count(seller_key.address())
        .await
        .unwrap();

    let (stop, task) = spawn_publisher(setup.config.clone());
    let s = wait_status(&setup.url, "both batches anchored", |s| {
        n(s, "anchoredBatches") == 2 && n(s, "pendingMessages") == 0
    })
    .await;
    assert!(s.get("lastAnchorError").is_none(), "{s}");
    assert_eq!(n(&s, "anchoredMessages"), 5);
    assert_eq!(
        anchored_on_chain(&seller, market, stream_id).await,
        vec![(1, 3), (2, 2)]
    );
    assert_eq!(m.batchOf(stream_id, 1).call().await.unwrap().root, b1.root);
    assert_eq!(m.batchOf(stream_id, 2).call().await.unwrap().root, b2.root);
    assert_eq!(
        seller
            .provider()
            .get_transaction_count(seller_key.address())
            .await
            .unwrap(),
        nonce + 1,
        "one transaction: batch 2; batch 1 was never sent again"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

/// The publisher binary, its stderr in a file; killed on drop (also when a test fails).
struct Publisher(Child);

impl Publisher {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_binary(config: &Path, log: &Path) -> Publisher {
    Publisher(
        Command::new(env!("CARGO_BIN_EXE_kontrakt-sidecar"))
            .args(["stream", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_killed_mid_batch_restarts_without_losing_or_reanchoring_anything() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, &dev_key(0)).await;
    let (seller_key, seller) = funded(&anvil, &admin).await;
    let (buyer_key, buyer_chain) = funded(&anvil, &admin).await;
    let sensor = Sensor::start().await;
    let setup = stream_config(
        &anvil,
        &seller_key,
        None,
        SourceConfig::from_http(HttpSource {
            url: sensor.url.clone(),
            interval_seconds: 1,
        }),
        3,
        30,
    );
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("stream.yaml");
    std::fs::write(&config_file, setup.config.to_yaml()).unwrap();
    let market = setup.config.market();

    let mut first = spawn_binary(&config_file, &dir.path().join("first.log"));
    // Mid-batch: one batch anchored, part of the next one ingested.
    wait_status(&setup.url, "mid-batch", |s| {
        n(s, "anchoredBatches") >= 1 && n(s, "pendingMessages") >= 1
    })
    .await;
    first.kill(); // SIGKILL: no shutdown path runs
    let served_before_kill = sensor.served().len();

    let mut second = spawn_binary(&config_file, &dir.path().join("second.log"));
    wait_status(&setup.url, "more after the restart", |s| {
        n(s, "ingested") >= 4 && n(s, "anchoredMessages") >= served_before_kill as u64
    })
    .await;
    sensor.set(SensorMode::Offline);
    // Everything fetched is sealed by the 30 s delay at the latest: wait for batches by
    // size only, then compare what is complete.
    let s = wait_status(&setup.url, "a quiet log", |s| n(s, "pendingMessages") < 3).await;
    let stream_id = stream_id_of(&seller, market, seller_key.address()).await;
    let on_chain = anchored_on_chain(&seller, market, stream_id).await;
    let numbers: Vec<u64> = on_chain.iter().map(|(b, _)| *b).collect();
    assert_eq!(
        numbers,
        (1..=on_chain.len() as u64).collect::<Vec<_>>(),
        "consecutive batches, none twice"
    );
    let anchored: u64 = on_chain.iter().map(|(_, c)| u64::from(*c)).sum();
    assert_eq!(anchored, n(&s, "anchoredMessages"));
    assert!(on_chain.iter().all(|(_, c)| *c == 3), "{on_chain:?}");

    // A buyer gets every anchored message once, each verified, in the sensor's order: the
    // only reading that may be missing is the one in flight at the kill.
    let buyer = Buyer::new(buyer_chain, buyer_key.clone(), market);
    buyer.subscribe(stream_id, 60).await.unwrap();
    let (verified, _) = buyer
        .fetch_verified(&setup.url, stream_id, 0)
        .await
        .unwrap();
    assert_eq!(verified.len() as u64, anchored);
    let seqs: Vec<u64> = verified
        .iter()
        .map(|m| {
            serde_json::from_slice::<Value>(&m.data).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "no duplicates, in order: {seqs:?}"
    );
    let gaps = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(gaps <= 1, "at most the in-flight reading is lost: {seqs:?}");
    assert!(seqs[0] == 0, "{seqs:?}");

    // The buyer CLI does the same: every line verified.
    let (_key_dir, buyer_key_file) = common::key_file(&key_hex(&buyer_key));
    let out = Command::new(env!("CARGO_BIN_EXE_kontrakt-sidecar"))
        .args([
            "buy",
            "--rpc-url",
            &anvil.url,
            "--chain-id",
            "31337",
            "--key-file",
        ])
        .arg(&buyer_key_file)
        .args([
            "fetch",
            "--stream-id",
            &stream_id.to_string(),
            "--publisher",
            &setup.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, anchored);
    assert_eq!(lines[0]["batch"], 1);
    second.kill();
}

#[test]
fn a_zero_batch_size_or_price_is_refused_at_start() {
    let (_d, key_file) = common::key_file(common::DEV_KEYS[0]);
    let dir = tempfile::tempdir().unwrap();
    for (field, text) in [
        ("integrity.batchSize", "batchSize: 0"),
        ("stream.pricePerSecondWei", "pricePerSecondWei: \"0\""),
    ] {
        let yaml = format!(
            "chain: {{rpcUrl: \"http://127.0.0.1:1\", chainId: 31337}}\nsigner: {{keyFile: {}}}\nstream: {{namespace: d, name: s, {price}, minDurationSeconds: 1}}\nsource: {{http: {{url: \"http://127.0.0.1:1/x\", intervalSeconds: 1}}}}\nintegrity: {{{batch}, maxDelaySeconds: 1}}\ndataDir: {}\n",
            key_file.display(),
            dir.path().display(),
            price = if field.starts_with("stream") {
                text
            } else {
                "pricePerSecondWei: \"1\""
            },
            batch = if field.starts_with("integrity") {
                text
            } else {
                "batchSize: 1"
            },
        );
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kontrakt-sidecar"))
            .args(["stream", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
}
