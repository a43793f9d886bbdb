//! Approval of join requests through the oracle (`enrollment.approval`) on a real anvil, with
//! a local identity-verification endpoint started by each test on 127.0.0.1: the registry sends
//! each join request to the oracle, the sidecar's oracle loop follows the registry and answers
//! it; verified accounts are enrolled (and kept by the reconciler), denied ones rejected, and
//! the registry refuses answers that are forged, not from an enrolled oracle, or no longer
//! apply.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolValue};
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Anvil, CHAIN_ID, DEV_KEYS, Sidecar, config, free_port, key_file};
use kontrakt_protocol::SidecarConfig;
use kontrakt_protocol::addresses::registry_address;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::{
    EnrollmentConfig, OracleApproval, OracleEndpoint, Participant, ParticipantState, Role,
};
use kontrakt_protocol::key::load_signer;
use kontrakt_protocol::views::registry::MemberStatus;
use kontrakt_sidecar::chain::{Chain, ChainError};
use kontrakt_sidecar::enrollment::{EnrollmentReconciler, registry_artifact};
use kontrakt_sidecar::oracle::{OracleRequest, attest};
use serde_json::{Value, json};

const NS: &str = "default";
const NAME: &str = "registry-host";
const ENDPOINT: &str = "IdentityCheck";
const WINDOW: u32 = 3_600;
/// `OracleRequestStatus`.
const PENDING: u8 = 1;
const FULFILLED: u8 = 2;
const CANCELLED: u8 = 3;
const FAILED: u8 = 4;

// ------------------------------------------------------------------ the identity endpoint

/// What the identity endpoint answers.
#[derive(Debug, Clone)]
enum Verdict {
    /// `{"verified": <bool>}`
    Verified(bool),
    /// An HTTP status without a body (503: the endpoint is down).
    Status(u16),
    /// Any JSON document.
    Json(Value),
}

#[derive(Default)]
struct IdentityState {
    /// Per account (as the request names it), else `default`.
    verdicts: Mutex<HashMap<String, Verdict>>,
    default: Mutex<Option<Verdict>>,
    /// The raw query of every request, in order.
    queries: Mutex<Vec<String>>,
}

/// A local identity-verification endpoint whose verdicts the test sets.
struct IdentityServer {
    port: u16,
    state: Arc<IdentityState>,
    task: tokio::task::JoinHandle<()>,
}

impl IdentityServer {
    async fn start(default: Verdict) -> Self {
        let port = free_port();
        let state = Arc::new(IdentityState::default());
        *state.default.lock().unwrap() = Some(default);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let s = state.clone();
        let app = axum::Router::new().route(
            "/verify",
            axum::routing::get(
                move |uri: axum::http::Uri, Query(q): Query<HashMap<String, String>>| {
                    let s = s.clone();
                    async move { verify(&s, uri, q) }
                },
            ),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { port, state, task }
    }

    fn endpoint(&self) -> OracleEndpoint {
        OracleEndpoint {
            name: ENDPOINT.into(),
            url: format!("http://127.0.0.1:{}/verify", self.port),
            method: "GET".into(),
            timeout_seconds: 2,
            retries: 0,
            result_path: Some("$.verified".into()),
            headers: vec![],
        }
    }

    fn set(&self, account: Address, verdict: Verdict) {
        self.state
            .verdicts
            .lock()
            .unwrap()
            .insert(lower(account), verdict);
    }

    fn set_default(&self, verdict: Verdict) {
        *self.state.default.lock().unwrap() = Some(verdict);
    }

    fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }
}

impl Drop for IdentityServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn verify(s: &IdentityState, uri: axum::http::Uri, q: HashMap<String, String>) -> Response {
    s.queries
        .lock()
        .unwrap()
        .push(uri.query().unwrap_or_default().to_owned());
    let verdict = q
        .get("account")
        .and_then(|a| s.verdicts.lock().unwrap().get(a).cloned())
        .or_else(|| s.default.lock().unwrap().clone())
        .unwrap();
    match verdict {
        Verdict::Verified(v) => axum::Json(json!({ "verified": v })).into_response(),
        Verdict::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Verdict::Json(v) => axum::Json(v).into_response(),
    }
}

/// The address as the registry sends it: lowercase 0x-hex.
fn lower(a: Address) -> String {
    format!("{a:#x}")
}

// ------------------------------------------------------------------ the registry's sidecar

fn approval() -> OracleApproval {
    OracleApproval {
        endpoint: ENDPOINT.into(),
        window_seconds: WINDOW,
    }
}

/// The config of the service hosting the registry, listing nobody.
fn host_config(
    anvil: &Anvil,
    key: &Path,
    identity: &IdentityServer,
    approval: Option<OracleApproval>,
) -> SidecarConfig {
    let mut cfg = config(&anvil.url, key, "Shipping", 1);
    cfg.contract.name = NAME.into();
    cfg.oracle.endpoints = vec![identity.endpoint()];
    cfg.enrollment = Some(EnrollmentConfig {
        participants: vec![],
        approval,
    });
    cfg.validate().unwrap();
    cfg
}

impl Sidecar {
    /// `serve` with `cfg`, once its enrollment reconciler has passed once.
    async fn start(cfg: SidecarConfig) -> Self {
        let sidecar = Self::spawn(cfg);
        sidecar
            .wait_enrollment("the first reconciler pass", |v| {
                v["passes"].as_u64() >= Some(1)
            })
            .await;
        sidecar
    }

    /// Waits until `GET /enrollment` satisfies `ok`; returns that view.
    async fn wait_enrollment(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.wait_json("/enrollment", what, Duration::from_secs(45), ok)
            .await
    }
}

// ------------------------------------------------------------------ chain helpers

async fn connect(url: &str, key: &str) -> Chain {
    let cfg = config(url, Path::new("unused"), "Shipping", 1).chain;
    Chain::connect(&cfg, key.parse::<PrivateKeySigner>().unwrap())
        .await
        .unwrap()
}

/// A fresh account with ether (set by anvil, so no key's nonce is shared with the sidecar).
async fn joiner(anvil: &Anvil) -> (Chain, PrivateKeySigner) {
    let signer = PrivateKeySigner::random();
    let chain = connect(&anvil.url, &alloy::hex::encode_prefixed(signer.to_bytes())).await;
    rpc(
        &chain,
        "anvil_setBalance",
        json!([signer.address(), "0xde0b6b3a7640000"]),
    )
    .await;
    (chain, signer)
}

async fn rpc(chain: &Chain, method: &'static str, params: Value) -> Value {
    chain
        .provider()
        .raw_request::<_, Value>(method.into(), params)
        .await
        .unwrap()
}

/// Moves the chain's clock past a join request's window and mines a block.
async fn pass_deadline(chain: &Chain) {
    rpc(chain, "evm_increaseTime", json!([WINDOW + 1])).await;
    rpc(chain, "evm_mine", json!([])).await;
}

async fn send(
    chain: &Chain,
    what: &str,
    tx: TransactionRequest,
) -> Result<TransactionReceipt, ChainError> {
    chain.send(what, tx, &[&registry_artifact().abi]).await
}

/// The revert reason of a refused transaction.
fn refused(r: Result<TransactionReceipt, ChainError>) -> String {
    match r {
        Err(ChainError::Reverted { reason, .. }) => reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

async fn request_join(
    chain: &Chain,
    registry: Address,
    role: Role,
) -> Result<TransactionReceipt, ChainError> {
    let tx = EnrollmentRegistry::new(registry, chain.provider())
        .requestJoin(role.number())
        .into_transaction_request();
    send(chain, "requestJoin", tx).await
}

/// The oracle request in a receipt, if the registry made one.
fn oracle_request(receipt: &TransactionReceipt) -> Option<OracleRequest> {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(OracleRequest::from_log)
}

async fn member(chain: &Chain, registry: Address, account: Address) -> (MemberStatus, Role) {
    let r = EnrollmentRegistry::new(registry, chain.provider())
        .statusOf(account)
        .call()
        .await
        .unwrap();
    (
        MemberStatus::from_number(r.status),
        Role::from_number(r.role).unwrap(),
    )
}

async fn by_oracle(chain: &Chain, registry: Address, account: Address) -> bool {
    EnrollmentRegistry::new(registry, chain.provider())
        .enrolledByOracle(vec![account])
        .call()
        .await
        .unwrap()[0]
}

async fn request_status(chain: &Chain, registry: Address, id: B256) -> u8 {
    EnrollmentRegistry::new(registry, chain.provider())
        .oracleRequestOf(id)
        .call()
        .await
        .unwrap()
        .status
}

/// Waits until oracle request `id` is no longer pending; returns its status.
async fn wait_answered(chain: &Chain, registry: Address, id: B256) -> u8 {
    let started = Instant::now();
    loop {
        let status = request_status(chain, registry, id).await;
        if status != PENDING {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "join verification {id} still pending after 30s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stats(chain: &Chain, registry: Address) -> (u64, u64, u64, u64) {
    let s = EnrollmentRegistry::new(registry, chain.provider())
        .oracleStats()
        .call()
        .await
        .unwrap();
    (s.requested, s.fulfilled, s.failed, s.expired)
}

/// Every log of `event` from the registry whose first topic is `topic1`.
async fn logs(chain: &Chain, registry: Address, event: B256, topic1: B256) -> Vec<Log> {
    let filter = Filter::new()
        .address(registry)
        .event_signature(event)
        .topic1(topic1)
        .from_block(0);
    chain.provider().get_logs(&filter).await.unwrap()
}

/// Who enrolled `account`, per its `Enrolled` events (oldest first).
async fn enrolled_by(chain: &Chain, registry: Address, account: Address) -> Vec<Address> {
    logs(
        chain,
        registry,
        EnrollmentRegistry::Enrolled::SIGNATURE_HASH,
        account.into_word(),
    )
    .await
    .iter()
    .map(|l| {
        l.log_decode::<EnrollmentRegistry::Enrolled>()
            .unwrap()
            .inner
            .data
            .by
    })
    .collect()
}

/// The answer `verified` to request `id`, attested by `oracle`.
fn answer(registry: Address, id: B256, verified: bool, oracle: &PrivateKeySigner) -> TxParts {
    let result = Bytes::from(verified.abi_encode());
    let digest = attest::result_digest(CHAIN_ID, registry, id, &result);
    TxParts {
        id,
        result,
        attestation: attest::sign(oracle, digest).unwrap(),
    }
}

struct TxParts {
    id: B256,
    result: Bytes,
    attestation: Bytes,
}

async fn fulfil(
    chain: &Chain,
    registry: Address,
    a: &TxParts,
) -> Result<TransactionReceipt, ChainError> {
    let tx = EnrollmentRegistry::new(registry, chain.provider())
        .fulfil(a.id, a.result.clone(), a.attestation.clone())
        .into_transaction_request();
    send(chain, "fulfil", tx).await
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_verified_join_is_enrolled_by_the_oracle_and_kept_and_a_denied_one_may_ask_again() {
    let anvil = Anvil::spawn();
    let identity = IdentityServer::start(Verdict::Verified(false)).await;
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let oracle = load_signer(&key).unwrap().address();
    let registry = registry_address(NS, NAME, oracle);
    let sidecar = Sidecar::start(host_config(&anvil, &key, &identity, Some(approval()))).await;
    let view = sidecar
        .wait_enrollment("oracle approval set on chain", |v| {
            v["oracleApproval"]["endpoint"] == ENDPOINT
        })
        .await;
    assert_eq!(view["oracleApproval"]["windowSeconds"], WINDOW, "{view}");

    // Verified: enrolled in the role it asked for, by the oracle (the sidecar's key).
    let (alice, _) = joiner(&anvil).await;
    identity.set(alice.signer(), Verdict::Verified(true));
    let receipt = request_join(&alice, registry, Role::Publisher)
        .await
        .unwrap();
    let request = oracle_request(&receipt).expect("the join request went to the oracle");
    assert_eq!(request.endpoint, ENDPOINT);
    let view = EnrollmentRegistry::new(registry, alice.provider());
    assert_eq!(
        view.joinRequestOf(alice.signer()).call().await.unwrap(),
        request.id
    );
    assert_eq!(wait_answered(&alice, registry, request.id).await, FULFILLED);
    assert_eq!(
        member(&alice, registry, alice.signer()).await,
        (MemberStatus::Enrolled, Role::Publisher)
    );
    assert!(
        view.isEnrolled(alice.signer(), Role::Publisher.number())
            .call()
            .await
            .unwrap()
    );
    assert!(by_oracle(&alice, registry, alice.signer()).await);
    assert_eq!(
        enrolled_by(&alice, registry, alice.signer()).await,
        [oracle]
    );
    assert_eq!(
        identity.queries(),
        [format!("account={}&role=Publisher", lower(alice.signer()))]
    );

    // Unlisted, but approved by the policy's rule: a later reconciler pass keeps it.
    let view = sidecar
        .wait_enrollment("a pass that sees the oracle's enrollment", |v| {
            v["oracleEnrolled"] == json!([alice.signer()])
        })
        .await;
    assert_eq!(view["inSync"], true, "{view}");
    assert_eq!(view["enrolled"], 1, "{view}");
    assert_eq!(view["oracleAnswers"]["fulfilled"], 1, "{view}");
    let passes = view["passes"].as_u64().unwrap();
    sidecar
        .wait_enrollment("one more pass", |v| v["passes"].as_u64() > Some(passes))
        .await;
    assert_eq!(
        member(&alice, registry, alice.signer()).await.0,
        MemberStatus::Enrolled,
        "not revoked by the reconciler"
    );
    let revoked = logs(
        &alice,
        registry,
        EnrollmentRegistry::Revoked::SIGNATURE_HASH,
        alice.signer().into_word(),
    )
    .await;
    assert!(revoked.is_empty(), "{revoked:?}");

    // Denied: rejected (an event), not enrolled; it may ask again.
    let (bob, _) = joiner(&anvil).await;
    let first = oracle_request(&request_join(&bob, registry, Role::Node).await.unwrap()).unwrap();
    assert_eq!(wait_answered(&bob, registry, first.id).await, FULFILLED);
    assert_eq!(
        member(&bob, registry, bob.signer()).await,
        (MemberStatus::Rejected, Role::Node)
    );
    let rejected = logs(
        &bob,
        registry,
        EnrollmentRegistry::JoinRejected::SIGNATURE_HASH,
        bob.signer().into_word(),
    )
    .await;
    assert_eq!(rejected.len(), 1);
    let event = rejected[0]
        .log_decode::<EnrollmentRegistry::JoinRejected>()
        .unwrap()
        .inner
        .data;
    assert_eq!((event.role, event.by), (Role::Node.number(), oracle));
    assert!(!by_oracle(&bob, registry, bob.signer()).await);

    identity.set(bob.signer(), Verdict::Verified(true));
    let again = oracle_request(&request_join(&bob, registry, Role::Node).await.unwrap()).unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(wait_answered(&bob, registry, again.id).await, FULFILLED);
    assert_eq!(
        member(&bob, registry, bob.signer()).await,
        (MemberStatus::Enrolled, Role::Node)
    );
    assert_eq!(stats(&bob, registry).await, (3, 3, 0, 0));
    sidecar.stop().await;
}

#[tokio::test]
async fn an_identity_endpoint_down_past_the_deadline_leaves_the_account_pending() {
    let anvil = Anvil::spawn();
    let identity = IdentityServer::start(Verdict::Status(503)).await;
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let registry = registry_address(NS, NAME, load_signer(&key).unwrap().address());
    let mut cfg = host_config(&anvil, &key, &identity, Some(approval()));
    cfg.oracle.endpoints[0].retries = 100;
    let sidecar = Sidecar::start(cfg).await;
    sidecar
        .wait_enrollment("oracle approval set on chain", |v| {
            v["oracleApproval"]["endpoint"] == ENDPOINT
        })
        .await;

    let (carol, _) = joiner(&anvil).await;
    let request = oracle_request(
        &request_join(&carol, registry, Role::Subscriber)
            .await
            .unwrap(),
    )
    .unwrap();
    sidecar
        .wait_enrollment("the oracle retrying the endpoint", |v| {
            v["oracleAnswers"]["retries"].as_u64() >= Some(1)
        })
        .await;
    pass_deadline(&carol).await;
    assert_eq!(wait_answered(&carol, registry, request.id).await, CANCELLED);
    assert_eq!(
        member(&carol, registry, carol.signer()).await,
        (MemberStatus::Pending, Role::Subscriber),
        "an expired verification leaves the request pending"
    );
    assert_eq!(
        stats(&carol, registry).await,
        (1, 0, 0, 1),
        "expired, in oracleStats"
    );
    let view = sidecar
        .wait_enrollment("the expiry counted", |v| v["oracleAnswers"]["expired"] == 1)
        .await;
    assert_eq!(view["oracleAnswers"]["gaveUp"], 1, "{view}");

    // An answer that is not a bool fails the request (WrongType): still pending. Each time
    // the account may ask again, since its verification is over.
    identity.set_default(Verdict::Json(json!({ "verified": "maybe" })));
    let failed = oracle_request(
        &request_join(&carol, registry, Role::Subscriber)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(wait_answered(&carol, registry, failed.id).await, FAILED);
    let code = logs(
        &carol,
        registry,
        EnrollmentRegistry::OracleFailed::SIGNATURE_HASH,
        failed.id,
    )
    .await[0]
        .log_decode::<EnrollmentRegistry::OracleFailed>()
        .unwrap()
        .inner
        .data
        .code;
    assert_eq!(code, 8, "WrongType");
    assert_eq!(
        member(&carol, registry, carol.signer()).await.0,
        MemberStatus::Pending
    );

    identity.set_default(Verdict::Verified(true));
    let verified = oracle_request(
        &request_join(&carol, registry, Role::Subscriber)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        wait_answered(&carol, registry, verified.id).await,
        FULFILLED
    );
    assert_eq!(
        member(&carol, registry, carol.signer()).await,
        (MemberStatus::Enrolled, Role::Subscriber)
    );
    assert_eq!(stats(&carol, registry).await, (3, 1, 1, 1));
    sidecar.stop().await;
}

#[tokio::test]
async fn only_an_enrolled_oracle_answers_through_fulfil_and_an_admin_decision_stands() {
    let anvil = Anvil::spawn();
    let admin = connect(&anvil.url, DEV_KEYS[0]).await;
    // The registry with oracle approval, set by the reconciler (no sidecar: the test answers).
    let reconciler =
        EnrollmentReconciler::new(admin.clone(), NS, NAME, vec![]).with_approval(Some(approval()));
    let report = reconciler.pass().await.unwrap();
    assert!(report.registry_created);
    assert_eq!(report.transactions, 1, "one setOracleApproval");
    let report = reconciler.pass().await.unwrap();
    assert_eq!(
        report.transactions, 0,
        "no transaction when it already matches"
    );
    let registry = reconciler.registry();
    let as_admin = EnrollmentRegistry::new(registry, admin.provider());
    let on_chain = as_admin.oracleApproval().call().await.unwrap();
    assert_eq!(
        (on_chain.endpoint.as_str(), on_chain.windowSeconds),
        (ENDPOINT, WINDOW)
    );

    // The request the registry sends: endpoint by name, account and role, the callback.
    let (dave, _) = joiner(&anvil).await;
    let receipt = request_join(&dave, registry, Role::Node).await.unwrap();
    let request = oracle_request(&receipt).unwrap();
    let mined_at = dave
        .provider()
        .get_block_by_number(receipt.block_number.unwrap().into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    assert_eq!(request.endpoint, ENDPOINT);
    assert_eq!(
        request.named_params().unwrap(),
        [
            ("account".to_owned(), lower(dave.signer())),
            ("role".to_owned(), "Node".to_owned())
        ]
    );
    assert_eq!(
        request.callback.0,
        EnrollmentRegistry::onIdentityVerifiedCall::SELECTOR
    );
    assert_eq!(request.deadline, mined_at + u64::from(WINDOW));
    let r = refused(request_join(&dave, registry, Role::Node).await);
    assert!(
        r.starts_with("InvalidStatus"),
        "asking again while verifying: {r}"
    );

    // The callback runs only from fulfil.
    let direct = EnrollmentRegistry::new(registry, dave.provider())
        .onIdentityVerified(request.id, true)
        .into_transaction_request();
    let r = refused(send(&dave, "onIdentityVerified", direct).await);
    assert!(r.starts_with("NotOracleCallback"), "{r}");

    // Forged (a random key), a member that is not an oracle, a tampered result.
    let forger = PrivateKeySigner::random();
    let r = refused(
        fulfil(
            &dave,
            registry,
            &answer(registry, request.id, true, &forger),
        )
        .await,
    );
    assert!(
        r.contains(&format!("NotOracle({})", forger.address())),
        "{r}"
    );
    let node: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
    let oracle: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
    let tx = as_admin
        .enrollMany(
            vec![node.address(), oracle.address()],
            vec![Role::Node.number(), Role::Oracle.number()],
            vec![0, 0],
        )
        .into_transaction_request();
    send(&admin, "enrollMany", tx).await.unwrap();
    let r = refused(fulfil(&dave, registry, &answer(registry, request.id, true, &node)).await);
    assert!(r.contains(&format!("NotOracle({})", node.address())), "{r}");
    let mut tampered = answer(registry, request.id, false, &oracle);
    tampered.result = Bytes::from(true.abi_encode());
    let r = refused(fulfil(&dave, registry, &tampered).await);
    assert!(r.starts_with("NotOracle"), "tampered: {r}");
    assert_eq!(
        member(&dave, registry, dave.signer()).await.0,
        MemberStatus::Pending,
        "nobody enrolled it"
    );
    assert_eq!(request_status(&dave, registry, request.id).await, PENDING);

    // The enrolled oracle's answer, relayed by anyone, enrolls it once.
    let verified = answer(registry, request.id, true, &oracle);
    let receipt = fulfil(&dave, registry, &verified).await.unwrap();
    eprintln!("verified join: fulfil gas {}", receipt.gas_used);
    assert_eq!(
        member(&dave, registry, dave.signer()).await,
        (MemberStatus::Enrolled, Role::Node)
    );
    assert_eq!(
        enrolled_by(&dave, registry, dave.signer()).await,
        [oracle.address()]
    );
    assert!(by_oracle(&dave, registry, dave.signer()).await);
    let r = refused(fulfil(&dave, registry, &verified).await);
    assert!(r.starts_with("RequestNotPending"), "replayed: {r}");

    // The admin acted first (revoked; approved): a later answer changes nothing.
    let ignored =
        |receipt: &TransactionReceipt| {
            receipt.inner.logs().iter().any(|l| {
                l.topic0() == Some(&EnrollmentRegistry::IdentityAnswerIgnored::SIGNATURE_HASH)
            })
        };
    let (frank, _) = joiner(&anvil).await;
    let id = oracle_request(&request_join(&frank, registry, Role::Node).await.unwrap())
        .unwrap()
        .id;
    send(
        &admin,
        "revoke",
        as_admin.revoke(frank.signer()).into_transaction_request(),
    )
    .await
    .unwrap();
    let receipt = fulfil(&frank, registry, &answer(registry, id, true, &oracle))
        .await
        .unwrap();
    assert!(ignored(&receipt));
    assert_eq!(
        member(&frank, registry, frank.signer()).await.0,
        MemberStatus::Revoked
    );
    let (grace, _) = joiner(&anvil).await;
    let id = oracle_request(
        &request_join(&grace, registry, Role::Subscriber)
            .await
            .unwrap(),
    )
    .unwrap()
    .id;
    send(
        &admin,
        "approve",
        as_admin.approve(grace.signer()).into_transaction_request(),
    )
    .await
    .unwrap();
    let receipt = fulfil(&grace, registry, &answer(registry, id, false, &oracle))
        .await
        .unwrap();
    assert!(ignored(&receipt));
    assert_eq!(
        member(&grace, registry, grace.signer()).await.0,
        MemberStatus::Enrolled
    );
    assert!(
        !by_oracle(&grace, registry, grace.signer()).await,
        "the admin approved it"
    );

    // Oracle approval turned off: an answer still in flight changes nothing, and later join
    // requests are not sent to the oracle.
    let (henry, _) = joiner(&anvil).await;
    let id = oracle_request(&request_join(&henry, registry, Role::Node).await.unwrap())
        .unwrap()
        .id;
    // The listing keeps the oracle (unlisted accounts are revoked).
    let listed = Participant {
        address: oracle.address(),
        role: Role::Oracle,
        state: ParticipantState::Enrolled,
        expires_at: None,
    };
    let off = EnrollmentReconciler::new(admin.clone(), NS, NAME, vec![listed]);
    off.pass().await.unwrap();
    let on_chain = as_admin.oracleApproval().call().await.unwrap();
    assert_eq!(
        (on_chain.endpoint.as_str(), on_chain.windowSeconds),
        ("", 0)
    );
    let receipt = fulfil(&henry, registry, &answer(registry, id, true, &oracle))
        .await
        .unwrap();
    assert!(ignored(&receipt));
    assert_eq!(
        member(&henry, registry, henry.signer()).await.0,
        MemberStatus::Pending
    );
    let requested = stats(&admin, registry).await.0;
    let (ivan, _) = joiner(&anvil).await;
    let receipt = request_join(&ivan, registry, Role::Node).await.unwrap();
    assert!(oracle_request(&receipt).is_none(), "manual approval only");
    assert_eq!(stats(&admin, registry).await.0, requested);
    assert_eq!(
        member(&ivan, registry, ivan.signer()).await.0,
        MemberStatus::Pending
    );
}

#[tokio::test]
async fn a_restarted_sidecar_answers_what_came_meanwhile_and_approval_turned_off_sends_nothing() {
    let anvil = Anvil::spawn();
    let identity = IdentityServer::start(Verdict::Verified(true)).await;
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let registry = registry_address(NS, NAME, load_signer(&key).unwrap().address());
    let with_approval = host_config(&anvil, &key, &identity, Some(approval()));
    let sidecar = Sidecar::start(with_approval.clone()).await;
    sidecar
        .wait_enrollment("oracle approval set on chain", |v| {
            v["oracleApproval"]["endpoint"] == ENDPOINT
        })
        .await;
    sidecar.stop().await;

    // Asked while no sidecar runs: the restarted one finds it on chain and answers it.
    let (alice, _) = joiner(&anvil).await;
    let request = oracle_request(
        &request_join(&alice, registry, Role::Publisher)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(identity.queries().len(), 0);
    let sidecar = Sidecar::start(with_approval).await;
    assert_eq!(wait_answered(&alice, registry, request.id).await, FULFILLED);
    assert_eq!(
        member(&alice, registry, alice.signer()).await.0,
        MemberStatus::Enrolled
    );
    assert_eq!(identity.queries().len(), 1, "answered once");
    sidecar.stop().await;

    // Approval turned off in the config: the registry stops asking the oracle, and the
    // oracle's enrollments are no longer members by rule: unlisted, they are revoked.
    let manual = host_config(&anvil, &key, &identity, None);
    let sidecar = Sidecar::start(manual).await;
    let view = sidecar
        .wait_enrollment("approval off and the oracle's enrollment revoked", |v| {
            v.get("oracleApproval").is_none() && v["revoked"] == 1 && v["inSync"] == true
        })
        .await;
    assert!(view.get("oracleAnswers").is_none(), "{view}");
    assert_eq!(
        member(&alice, registry, alice.signer()).await.0,
        MemberStatus::Revoked
    );
    let (bob, _) = joiner(&anvil).await;
    let receipt = request_join(&bob, registry, Role::Node).await.unwrap();
    assert!(oracle_request(&receipt).is_none(), "not sent to the oracle");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(identity.queries().len(), 1, "the endpoint was not asked");
    assert_eq!(
        member(&bob, registry, bob.signer()).await.0,
        MemberStatus::Pending
    );
    assert_eq!(stats(&bob, registry).await, (1, 1, 0, 0));
    sidecar.stop().await;
}
