//! The oracle end to end on a real anvil, with real HTTP endpoints started by each test on
//! 127.0.0.1: contracts ask (`Shipping`, `AssetTracking`), the sidecar's oracle loop fetches
//! the named endpoint and answers exactly once; the contract refuses forged, replayed and
//! non-enrolled answers.

mod common;

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolError, SolEvent};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{Anvil, DEV_KEYS, Sidecar, config, free_port, key_file};
use kontrakt_protocol::SidecarConfig;
use kontrakt_protocol::addresses::Create2;
use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;
use kontrakt_protocol::artifact::Artifact;
use kontrakt_protocol::bindings::KontraktOracle;
use kontrakt_protocol::config::{OracleEndpoint, OracleHeader};
use kontrakt_protocol::key::load_signer;
use kontrakt_sidecar::chain::{Chain, ChainError};
use kontrakt_sidecar::deploy::Pair;
use kontrakt_sidecar::oracle::attest;
use serde_json::{Value, json};

mod shipping {
    alloy::sol!(
        #[sol(rpc)]
        Shipping,
        "contracts/out/Shipping.json"
    );
}
mod asset_tracking {
    alloy::sol!(
        #[sol(rpc)]
        AssetTracking,
        "contracts/out/AssetTracking.json"
    );
}
mod registry {
    alloy::sol!(
        #[sol(rpc)]
        EnrollmentRegistry,
        "contracts/out/EnrollmentRegistry.json"
    );
}
use asset_tracking::AssetTracking;
use registry::EnrollmentRegistry;
use shipping::Shipping;

const BIN: &str = env!("CARGO_BIN_EXE_kontrakt-sidecar");
/// `OracleRequestStatus`.
const PENDING: u8 = 1;
const FULFILLED: u8 = 2;
const CANCELLED: u8 = 3;
const FAILED: u8 = 4;
/// Role number of `Roles.Oracle`.
const ORACLE_ROLE: u8 = 4;

// ------------------------------------------------------------------ a device

/// What the test device answers next.
#[derive(Debug, Clone)]
enum Answer {
    Json(Value),
    Status(u16),
    Redirect(String),
    Body(String),
    Slow(Duration, Value),
}

#[derive(Default)]
struct DeviceState {
    answer: Mutex<Option<Answer>>,
    hits: AtomicUsize,
    requests: Mutex<VecDeque<(String, Option<String>)>>,
}

/// A local HTTP endpoint whose answers the test controls; counts hits, keeps query and
/// `Authorization` of each request.
struct Device {
    port: u16,
    state: Arc<DeviceState>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    async fn start(answer: Answer) -> Self {
        Self::start_on(free_port(), answer).await
    }

    async fn start_on(port: u16, answer: Answer) -> Self {
        let state = Arc::new(DeviceState::default());
        *state.answer.lock().unwrap() = Some(answer);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let s = state.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let s = s.clone();
            async move { answer_request(&s, uri, headers).await }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { port, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = Some(answer);
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn last_request(&self) -> (String, Option<String>) {
        self.state.requests.lock().unwrap().back().cloned().unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer_request(s: &DeviceState, uri: Uri, headers: HeaderMap) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    s.requests
        .lock()
        .unwrap()
        .push_back((uri.query().unwrap_or_default().to_owned(), auth));
    let answer = s.answer.lock().unwrap().clone().unwrap();
    match answer {
        Answer::Json(v) => axum::Json(v).into_response(),
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Answer::Body(body) => body.into_response(),
        Answer::Slow(wait, v) => {
            tokio::time::sleep(wait).await;
            axum::Json(v).into_response()
        }
    }
}

// ------------------------------------------------------------------ a sidecar

fn endpoint(name: &str, url: &str, result_path: &str) -> OracleEndpoint {
    OracleEndpoint {
        name: name.into(),
        url: url.into(),
        method: "GET".into(),
        timeout_seconds: 2,
        retries: 0,
        result_path: Some(result_path.into()),
        headers: vec![],
    }
}

impl Sidecar {
    /// `serve` with `cfg`, once its `/readyz` answers 200.
    async fn start(cfg: SidecarConfig) -> Self {
        let sidecar = Self::spawn(cfg);
        sidecar.wait_ready().await;
        sidecar
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "sidecar never ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn oracle_view(&self) -> Value {
        self.get_json("/oracle").await.expect("GET /oracle")
    }

    /// Waits until the counter at `pointer` of `GET /oracle` reaches `want`; returns the view.
    async fn wait_view(&self, pointer: &str, want: u64) -> Value {
        self.wait_json(
            "/oracle",
            &format!("{pointer} reaching {want}"),
            Duration::from_secs(20),
            |v| v.pointer(pointer).and_then(Value::as_u64) >= Some(want),
        )
        .await
    }
}

/// The sidecar binary as a process (for kill -9).
struct SidecarProcess(std::process::Child);

impl SidecarProcess {
    fn start(config: &Path) -> Self {
        Self(
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ------------------------------------------------------------------ chain helpers

struct Setup {
    anvil: Anvil,
    _key_dir: tempfile::TempDir,
    cfg: SidecarConfig,
    logic: Address,
    /// The supplier/payer: a separate key, so its transactions never share the sidecar's nonces.
    user: Chain,
}

async fn setup(template: &str) -> Setup {
    let anvil = Anvil::spawn();
    let (dir, key) = key_file(DEV_KEYS[0]);
    let mut cfg = config(&anvil.url, &key, template, 1);
    cfg.contract.name = "oracle".into();
    let signer = load_signer(&key).unwrap().address();
    let logic = Pair::from_config(&cfg, signer)
        .unwrap()
        .plan
        .addresses
        .logic;
    let user = connect(&anvil.url, DEV_KEYS[1]).await;
    Setup {
        anvil,
        _key_dir: dir,
        cfg,
        logic,
        user,
    }
}

async fn connect(url: &str, key: &str) -> Chain {
    let mut cfg = config(url, Path::new("unused"), "Shipping", 1).chain;
    cfg.retry = common::fast_retry();
    Chain::connect(&cfg, key.parse::<PrivateKeySigner>().unwrap())
        .await
        .unwrap()
}

fn abis() -> Vec<alloy::json_abi::JsonAbi> {
    [
        "Shipping",
        "AssetTracking",
        "ContractDatabase",
        "EnrollmentRegistry",
    ]
    .iter()
    .map(|n| Artifact::builtin(n).unwrap().abi)
    .collect()
}

async fn send(
    chain: &Chain,
    what: &str,
    tx: TransactionRequest,
) -> Result<TransactionReceipt, ChainError> {
    let abis = abis();
    let refs: Vec<_> = abis.iter().collect();
    chain.send(what, tx, &refs).await
}

fn request_id(receipt: &TransactionReceipt) -> B256 {
    receipt
        .inner
        .logs()
        .iter()
        .find(|l| l.topic0() == Some(&KontraktOracle::OracleRequest::SIGNATURE_HASH))
        .map(|l| l.topics()[1])
        .expect("an OracleRequest log")
}

/// A shipment of VerticalPumps and its cost request; returns the request id.
async fn ask_shipment_cost(s: &Setup, shipment: u8) -> B256 {
    let c = Shipping::new(s.logic, s.user.provider());
    let id = B256::repeat_byte(shipment);
    let tx = c
        .createShipment(
            id,
            Address::repeat_byte(0xaa),
            "VerticalPump".into(),
            U256::from(3),
        )
        .into_transaction_request();
    send(&s.user, "createShipment", tx).await.unwrap();
    let tx = c.requestShipmentCost(id).into_transaction_request();
    request_id(&send(&s.user, "requestShipmentCost", tx).await.unwrap())
}

async fn status_of(chain: &Chain, logic: Address, id: B256) -> u8 {
    KontraktOracle::new(logic, chain.provider())
        .oracleRequestOf(id)
        .call()
        .await
        .unwrap()
        .status
}

/// Waits until request `id` is no longer pending; returns its status.
async fn wait_answered(chain: &Chain, logic: Address, id: B256, limit: Duration) -> u8 {
    let started = Instant::now();
    loop {
        let status = status_of(chain, logic, id).await;
        if status != PENDING {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "request {id} still pending after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stats(chain: &Chain, logic: Address) -> (u64, u64, u64, u64) {
    let s = KontraktOracle::new(logic, chain.provider())
        .oracleStats()
        .call()
        .await
        .unwrap();
    (s.requested, s.fulfilled, s.failed, s.expired)
}

/// Logs of `event` about request `id`, over the whole chain.
async fn logs_for(
    chain: &Chain,
    logic: Address,
    event: B256,
    id: B256,
) -> Vec<alloy::rpc::types::Log> {
    let filter = Filter::new()
        .address(logic)
        .event_signature(event)
        .topic1(id)
        .from_block(0);
    chain.provider().get_logs(&filter).await.unwrap()
}

/// The error code of the `OracleFailed` answer to `id`.
async fn failure_code(chain: &Chain, logic: Address, id: B256) -> u16 {
    let logs = logs_for(
        chain,
        logic,
        KontraktOracle::OracleFailed::SIGNATURE_HASH,
        id,
    )
    .await;
    assert_eq!(logs.len(), 1, "exactly one OracleFailed for {id}");
    logs[0]
        .log_decode::<KontraktOracle::OracleFailed>()
        .unwrap()
        .inner
        .data
        .code
}

async fn rpc(chain: &Chain, method: &'static str, params: Value) -> Value {
    chain
        .provider()
        .raw_request::<_, Value>(method.into(), params)
        .await
        .unwrap()
}

/// Moves the chain's clock past a request's one-hour deadline and mines a block.
async fn pass_deadline(chain: &Chain) {
    rpc(chain, "evm_increaseTime", json!([3_601])).await;
    rpc(chain, "evm_mine", json!([])).await;
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn happy_path_the_device_cost_reaches_the_contract() {
    let s = setup("Shipping").await;
    let device = Device::start(Answer::Json(json!({"cost": 1234, "currency": "EUR"}))).await;
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("Authorization");
    std::fs::write(&token, "Bearer device-token\n").unwrap();
    let mut cfg = s.cfg.clone();
    let mut cost = endpoint("ShipmentCost", &device.url("/shipment-cost"), "$.cost");
    cost.headers = vec![OracleHeader {
        name: "Authorization".into(),
        value_file: token,
    }];
    cfg.oracle.endpoints = vec![cost];
    let sidecar = Sidecar::start(cfg).await;

    let started = Instant::now();
    let id = ask_shipment_cost(&s, 1).await;
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(20)).await,
        FULFILLED
    );
    let latency = started.elapsed();

    // The paper's `ShipmentCost?device=VerticalPump`, with the header from the Secret file.
    assert_eq!(device.hits(), 1);
    let (query, auth) = device.last_request();
    assert_eq!(query, "device=VerticalPump");
    assert_eq!(auth.as_deref(), Some("Bearer device-token"));
    let shipment = Shipping::new(s.logic, s.user.provider())
        .shipmentOf(B256::repeat_byte(1))
        .call()
        .await
        .unwrap();
    assert!(shipment.costKnown);
    assert_eq!(shipment.cost, U256::from(1234));
    assert_eq!(stats(&s.user, s.logic).await, (1, 1, 0, 0));
    let fulfilled = logs_for(
        &s.user,
        s.logic,
        KontraktOracle::OracleFulfilled::SIGNATURE_HASH,
        id,
    )
    .await;
    assert_eq!(fulfilled.len(), 1);
    // Signed by the sidecar's key (the oracle key is the signer key; no registry: the admin).
    let oracle = Address::from_word(fulfilled[0].topics()[2]);
    assert_eq!(
        oracle,
        load_signer(&s.cfg.signer.key_file).unwrap().address()
    );

    // The sidecar counts once its own receipt is in.
    let view = sidecar.wait_view("/sidecar/fulfilled", 1).await;
    assert_eq!(view["contract"]["fulfilled"], 1, "{view}");
    assert_eq!(view["contract"]["pending"], 0, "{view}");
    assert!(
        !view.to_string().contains("device-token"),
        "no secret on /oracle"
    );
    eprintln!("request -> fulfil: {latency:?}");
    sidecar.stop().await;
    drop(s.anvil);
}

#[tokio::test]
async fn a_device_offline_then_back_before_the_deadline_is_answered_once() {
    let s = setup("Shipping").await;
    let port = free_port();
    let mut cfg = s.cfg.clone();
    let mut cost = endpoint(
        "ShipmentCost",
        &format!("http://127.0.0.1:{port}/cost"),
        "$.cost",
    );
    cost.retries = 20;
    cfg.oracle.endpoints = vec![cost];
    let sidecar = Sidecar::start(cfg).await;

    let id = ask_shipment_cost(&s, 1).await;
    // Offline: the sidecar keeps retrying.
    sidecar.wait_view("/sidecar/retries", 2).await;
    assert_eq!(status_of(&s.user, s.logic, id).await, PENDING);

    let device = Device::start_on(port, Answer::Json(json!({"cost": 77}))).await;
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(30)).await,
        FULFILLED
    );
    let fulfilled = logs_for(
        &s.user,
        s.logic,
        KontraktOracle::OracleFulfilled::SIGNATURE_HASH,
        id,
    )
    .await;
    assert_eq!(fulfilled.len(), 1, "fulfilled exactly once");
    assert_eq!(device.hits(), 1, "nothing fetched after the answer");
    assert_eq!(stats(&s.user, s.logic).await, (1, 1, 0, 0));
    sidecar.stop().await;
}

#[tokio::test]
async fn a_device_offline_past_the_deadline_expires_the_request() {
    let s = setup("Shipping").await;
    let port = free_port();
    let mut cfg = s.cfg.clone();
    let mut cost = endpoint(
        "ShipmentCost",
        &format!("http://127.0.0.1:{port}/cost"),
        "$.cost",
    );
    cost.retries = 100;
    cfg.oracle.endpoints = vec![cost];
    let sidecar = Sidecar::start(cfg).await;

    let id = ask_shipment_cost(&s, 1).await;
    sidecar.wait_view("/sidecar/retries", 1).await;
    pass_deadline(&s.user).await;
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(30)).await,
        CANCELLED
    );
    assert_eq!(
        stats(&s.user, s.logic).await,
        (1, 0, 0, 1),
        "expired, visible in oracleStats"
    );
    let view = sidecar.oracle_view().await;
    assert_eq!(view["contract"]["expired"], 1, "{view}");
    assert_eq!(view["sidecar"]["gaveUp"], 1, "{view}");
    assert!(
        view["sidecar"]["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{view}"
    );
    // A late device answer changes nothing.
    let _device = Device::start_on(port, Answer::Json(json!({"cost": 1}))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&s.user, s.logic, id).await, CANCELLED);
    sidecar.stop().await;
}

#[tokio::test]
async fn requests_that_cannot_be_served_are_answered_with_an_error_code() {
    let s = setup("Shipping").await;
    let device = Device::start(Answer::Json(json!({"cost": 1}))).await;
    let mut cfg = s.cfg.clone();
    cfg.oracle.max_response_bytes = 256;
    let mut cost = endpoint("ShipmentCost", &device.url("/cost"), "$.cost");
    cost.timeout_seconds = 1;
    cfg.oracle.endpoints = vec![cost];
    let sidecar = Sidecar::start(cfg).await;

    let cases = [
        (
            "too large",
            Answer::Json(json!({"cost": 1, "pad": "x".repeat(1_000)})),
            5,
        ),
        ("not JSON", Answer::Body("cost: 12".into()), 6),
        ("wrong type", Answer::Json(json!({"cost": "twelve"})), 8),
        ("negative", Answer::Json(json!({"cost": -3})), 8),
        ("missing", Answer::Json(json!({"price": 3})), 7),
        ("server error", Answer::Status(500), 4),
        (
            "redirect",
            Answer::Redirect(format!("http://127.0.0.1:{}/elsewhere", device.port)),
            4,
        ),
        (
            "slow",
            Answer::Slow(Duration::from_secs(3), json!({"cost": 1})),
            3,
        ),
    ];
    for (n, (what, answer, code)) in cases.into_iter().enumerate() {
        device.set(answer);
        let hits = device.hits();
        let id = ask_shipment_cost(&s, n as u8 + 1).await;
        assert_eq!(
            wait_answered(&s.user, s.logic, id, Duration::from_secs(20)).await,
            FAILED,
            "{what}"
        );
        assert_eq!(failure_code(&s.user, s.logic, id).await, code, "{what}");
        // One attempt each (retries: 0); the redirect was not followed.
        assert_eq!(device.hits(), hits + 1, "{what}");
    }
    assert_eq!(stats(&s.user, s.logic).await, (8, 0, 8, 0));
    sidecar.stop().await;
}

#[tokio::test]
async fn an_unknown_endpoint_name_is_answered_without_any_fetch() {
    let s = setup("Shipping").await;
    let device = Device::start(Answer::Json(json!({"cost": 1}))).await;
    let mut cfg = s.cfg.clone();
    // Configured under another name: "ShipmentCost" is unknown to this sidecar.
    cfg.oracle.endpoints = vec![endpoint("DeviceCost", &device.url("/cost"), "$.cost")];
    let sidecar = Sidecar::start(cfg).await;

    let id = ask_shipment_cost(&s, 1).await;
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(20)).await,
        FAILED
    );
    assert_eq!(
        failure_code(&s.user, s.logic, id).await,
        1,
        "UnknownEndpoint"
    );
    assert_eq!(device.hits(), 0, "never fetched");
    sidecar.stop().await;
}

#[tokio::test]
async fn asset_tracking_pays_when_container_and_retailer_meet_and_a_reverting_callback_fails_once()
{
    let s = setup("AssetTracking").await;
    let device = Device::start(Answer::Json(json!({"colocated": true}))).await;
    let mut cfg = s.cfg.clone();
    cfg.oracle.endpoints = vec![endpoint(
        "Colocation",
        &device.url("/colocation"),
        "$.colocated",
    )];
    let sidecar = Sidecar::start(cfg.clone()).await;
    let signer = load_signer(&cfg.signer.key_file).unwrap().address();
    let database = Pair::from_config(&cfg, signer)
        .unwrap()
        .plan
        .addresses
        .database;

    let c = AssetTracking::new(s.logic, s.user.provider());
    let retailer = Address::repeat_byte(0x7e);
    let amount = U256::from(1_000_000u64);
    let container = B256::repeat_byte(1);
    let tx = c
        .registerAsset(container, retailer)
        .value(amount)
        .into_transaction_request();
    send(&s.user, "registerAsset", tx).await.unwrap();
    let tx = c.requestColocation(container).into_transaction_request();
    let id = request_id(&send(&s.user, "requestColocation", tx).await.unwrap());
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(20)).await,
        FULFILLED
    );
    let (query, _) = device.last_request();
    assert_eq!(
        query,
        format!(
            "container=0x{}&retailer=0x{}",
            "01".repeat(32),
            "7e".repeat(20)
        )
    );
    assert!(c.released(container).call().await.unwrap());
    assert_eq!(
        s.user.provider().get_balance(retailer).await.unwrap(),
        amount
    );

    // A retailer that refuses ether (the database contract): the callback reverts, the answer
    // is recorded as Failed with the revert data, and never retried.
    let stuck = B256::repeat_byte(2);
    let tx = c
        .registerAsset(stuck, database)
        .value(amount)
        .into_transaction_request();
    send(&s.user, "registerAsset", tx).await.unwrap();
    let tx = c.requestColocation(stuck).into_transaction_request();
    let id = request_id(&send(&s.user, "requestColocation", tx).await.unwrap());
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(20)).await,
        FAILED
    );
    let failed = logs_for(
        &s.user,
        s.logic,
        KontraktOracle::OracleCallbackFailed::SIGNATURE_HASH,
        id,
    )
    .await;
    assert_eq!(failed.len(), 1);
    let reason = failed[0]
        .log_decode::<KontraktOracle::OracleCallbackFailed>()
        .unwrap()
        .inner
        .data
        .reason;
    // The payment comes out of the database's custody, whose refusal the callback bubbles up.
    assert_eq!(
        &reason[..4],
        kontrakt_protocol::bindings::ContractDatabase::ValueTransferFailed::SELECTOR.as_slice()
    );
    assert!(!c.released(stuck).call().await.unwrap());
    assert_eq!(stats(&s.user, s.logic).await, (2, 1, 1, 0));
    sidecar.stop().await;
}

#[tokio::test]
async fn a_sidecar_killed_mid_fulfilment_and_restarted_answers_exactly_once() {
    let s = setup("Shipping").await;
    let device = Device::start(Answer::Json(json!({"cost": 99}))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = s.cfg.clone();
    cfg.oracle.endpoints = vec![endpoint("ShipmentCost", &device.url("/cost"), "$.cost")];
    cfg.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, cfg.to_yaml()).unwrap();
    let signer = load_signer(&cfg.signer.key_file).unwrap().address();
    let p = s.user.provider().clone();

    let mut first = SidecarProcess::start(&path);
    wait_code(&p, s.logic).await;
    // The shipment exists before the chain stops mining on its own.
    let c = Shipping::new(s.logic, s.user.provider());
    let shipment = B256::repeat_byte(1);
    let tx = c
        .createShipment(
            shipment,
            Address::repeat_byte(0xaa),
            "VerticalPump".into(),
            U256::from(3),
        )
        .into_transaction_request();
    send(&s.user, "createShipment", tx).await.unwrap();

    // From here blocks are mined only when the test says so: the fulfil waits in the pool.
    rpc(&s.user, "evm_setAutomine", json!([false])).await;
    let tx = c.requestShipmentCost(shipment).into_transaction_request();
    let user = s.user.clone();
    let request = tokio::spawn(async move { send(&user, "requestShipmentCost", tx).await });
    wait_pool(&p, s.user.signer(), 1).await;
    rpc(&s.user, "evm_mine", json!([])).await;
    let id = request_id(&request.await.unwrap().unwrap());

    // The first sidecar fetched, signed and sent its fulfil: kill -9 it before it is mined.
    wait_pool(&p, signer, 1).await;
    first.kill9();
    assert_eq!(status_of(&s.user, s.logic, id).await, PENDING);

    // The restarted sidecar finds the request still pending on chain (rescan)...
    let _second = SidecarProcess::start(&path);
    let started = Instant::now();
    while device.hits() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restarted sidecar never fetched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ... and whatever both sent, the chain takes one answer.
    rpc(&s.user, "evm_setAutomine", json!([true])).await;
    rpc(&s.user, "evm_mine", json!([])).await;
    assert_eq!(
        wait_answered(&s.user, s.logic, id, Duration::from_secs(30)).await,
        FULFILLED
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    rpc(&s.user, "evm_mine", json!([])).await;
    let fulfilled = logs_for(
        &s.user,
        s.logic,
        KontraktOracle::OracleFulfilled::SIGNATURE_HASH,
        id,
    )
    .await;
    assert_eq!(fulfilled.len(), 1, "exactly one fulfilment on chain");
    assert_eq!(stats(&s.user, s.logic).await, (1, 1, 0, 0));
    let pending = p.get_transaction_count(signer).pending().await.unwrap();
    let mined = p.get_transaction_count(signer).await.unwrap();
    assert_eq!(pending, mined, "no transaction of the sidecar left stuck");
}

/// Waits until the pair's logic has code (the sidecar process deployed it).
async fn wait_code(p: &alloy::providers::DynProvider, logic: Address) {
    let started = Instant::now();
    while p.get_code_at(logic).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never deployed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and the writer switch after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits until `account` has `n` transactions waiting in the pool.
async fn wait_pool(p: &alloy::providers::DynProvider, account: Address, n: u64) {
    let started = Instant::now();
    loop {
        let pending = p.get_transaction_count(account).pending().await.unwrap();
        let mined = p.get_transaction_count(account).await.unwrap();
        if pending >= mined + n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{account} never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_contract_refuses_forged_replayed_and_non_enrolled_answers() {
    let s = setup("Shipping").await;
    // The pair's admin is the sidecar key; the registry has an admin of its own (the user),
    // because a registry counts its admin as enrolled in every role.
    let deployer = connect(&s.anvil.url, DEV_KEYS[0]).await;
    let admin = s.user.clone();
    // An EnrollmentRegistry, through the CREATE2 proxy.
    let registry_artifact = Artifact::builtin("EnrollmentRegistry").unwrap();
    let mut initcode = registry_artifact.bytecode.to_vec();
    initcode.extend_from_slice(admin.signer().into_word().as_slice());
    let deployment = Create2::new(B256::repeat_byte(0x0e), Bytes::from(initcode));
    let tx = TransactionRequest::default()
        .to(DETERMINISTIC_DEPLOYER)
        .input(deployment.calldata().into());
    send(&admin, "registry", tx).await.unwrap();
    let registry = deployment.address;
    assert!(!admin.code_at(registry).await.unwrap().is_empty());

    let mut cfg = s.cfg.clone();
    cfg.registry = Some(registry);
    let pair = Pair::from_config(&cfg, deployer.signer()).unwrap();
    pair.ensure(&deployer).await.unwrap();
    let logic = pair.plan.addresses.logic;
    let s = Setup { logic, ..s };
    let id = ask_shipment_cost(&s, 1).await;

    let oracle_key: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
    let result = Bytes::from(U256::from(500).to_be_bytes::<32>().to_vec());
    let digest = attest::result_digest(31337, logic, id, &result);
    let c = KontraktOracle::new(logic, s.user.provider());
    let fulfil = |att: Bytes, result: Bytes| c.fulfil(id, result, att).into_transaction_request();
    let refused = |e: Result<TransactionReceipt, ChainError>| match e {
        Err(ChainError::Reverted { reason, .. }) => reason,
        other => panic!("expected a revert, got {other:?}"),
    };

    // Not enrolled: not even the logic's admin (the sidecar key) may answer when a registry is set.
    let by_admin = attest::sign(&load_signer(&cfg.signer.key_file).unwrap(), digest).unwrap();
    let r = refused(send(&s.user, "fulfil", fulfil(by_admin, result.clone())).await);
    assert!(r.starts_with("NotOracle"), "{r}");
    let by_oracle = attest::sign(&oracle_key, digest).unwrap();
    let r = refused(send(&s.user, "fulfil", fulfil(by_oracle.clone(), result.clone())).await);
    assert!(r.starts_with("NotOracle"), "non-enrolled oracle: {r}");

    let tx = EnrollmentRegistry::new(registry, admin.provider())
        .enroll(oracle_key.address(), ORACLE_ROLE, 0)
        .into_transaction_request();
    send(&admin, "enroll", tx).await.unwrap();

    // Forged: a random key, a tampered result, a signature of the error domain, a short one.
    let forger = PrivateKeySigner::random();
    let forged = attest::sign(&forger, digest).unwrap();
    let r = refused(send(&s.user, "fulfil", fulfil(forged, result.clone())).await);
    assert!(r.contains(&forger.address().to_string()), "{r}");
    let tampered = Bytes::from(U256::from(1).to_be_bytes::<32>().to_vec());
    let r = refused(send(&s.user, "fulfil", fulfil(by_oracle.clone(), tampered)).await);
    assert!(r.starts_with("NotOracle"), "tampered result: {r}");
    let error_sig = attest::sign(&oracle_key, attest::error_digest(31337, logic, id, 1)).unwrap();
    let r = refused(send(&s.user, "fulfil", fulfil(error_sig, result.clone())).await);
    assert!(r.starts_with("NotOracle"), "error-domain signature: {r}");
    let r = refused(
        send(
            &s.user,
            "fulfil",
            fulfil(by_oracle.slice(..64), result.clone()),
        )
        .await,
    );
    assert!(r.starts_with("MalformedAttestation"), "{r}");
    let r = refused(
        send(
            &s.user,
            "fulfilError",
            c.fulfilError(id, 1, by_oracle.clone())
                .into_transaction_request(),
        )
        .await,
    );
    assert!(r.starts_with("NotOracle"), "result signature as error: {r}");
    assert_eq!(status_of(&s.user, logic, id).await, PENDING);

    // The enrolled oracle's answer, relayed by anyone, is accepted once.
    send(&s.user, "fulfil", fulfil(by_oracle.clone(), result.clone()))
        .await
        .unwrap();
    assert_eq!(status_of(&s.user, logic, id).await, FULFILLED);
    let r = refused(send(&s.user, "fulfil", fulfil(by_oracle, result.clone())).await);
    assert!(r.starts_with("RequestNotPending"), "replayed: {r}");
    let shipment = Shipping::new(logic, s.user.provider())
        .shipmentOf(B256::repeat_byte(1))
        .call()
        .await
        .unwrap();
    assert_eq!(shipment.cost, U256::from(500));

    // After the deadline: no answer any more, only cancel (counted as expired).
    let late = ask_shipment_cost(&s, 2).await;
    let r = refused(send(&s.user, "cancel", c.cancel(late).into_transaction_request()).await);
    assert!(r.starts_with("RequestNotExpired"), "{r}");
    pass_deadline(&s.user).await;
    let digest = attest::result_digest(31337, logic, late, &result);
    let att = attest::sign(&oracle_key, digest).unwrap();
    let r = refused(
        send(
            &s.user,
            "fulfil",
            c.fulfil(late, result.clone(), att)
                .into_transaction_request(),
        )
        .await,
    );
    assert!(r.starts_with("RequestExpired"), "{r}");
    send(&s.user, "cancel", c.cancel(late).into_transaction_request())
        .await
        .unwrap();
    assert_eq!(status_of(&s.user, logic, late).await, CANCELLED);
    assert_eq!(stats(&s.user, logic).await, (2, 1, 0, 1));

    // The digests computed off chain are the contract's.
    let on_chain = c
        .oracleResultDigest(id, result.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(on_chain, attest::result_digest(31337, logic, id, &result));
    let on_chain = c.oracleErrorDigest(id, 7).call().await.unwrap();
    assert_eq!(on_chain, attest::error_digest(31337, logic, id, 7));
}
