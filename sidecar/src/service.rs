//! `serve` mode: deploy-if-absent (retrying transient failures with backoff), then the HTTP
//! API: `/healthz`, `/readyz`, `GET /contract`, the CloudEvents feed `GET /events` and
//! `GET /enrollment` (the enrollment reconciler's state, when this sidecar hosts a registry),
//! `GET /oracle` (the oracle's counters). Beside the API runs the oracle loop ([`crate::oracle`])
//! for logic contracts that make oracle requests, and a second one for the hosted registry's
//! join verifications when `enrollment.approval` turns oracle approval on.
//! With `access` configured, every route but the probes needs a signed request from an
//! enrolled account ([`crate::access`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::access::AccessGuard;
use crate::chain::{Chain, ChainError};
use crate::deploy::{DeployError, DeployOutcome, Pair};
use crate::enrollment::{EnrollmentReconciler, EnrollmentStatus};
use crate::events::EventDecoder;
use crate::factory::FactoryError;
use crate::oracle::{self, Oracle, OracleCounters, OracleError};
use kontrakt_protocol::config::SidecarConfig;
use kontrakt_protocol::key::{KeyError, load_signer};
use kontrakt_protocol::views::oracle::OracleStats;

/// How often `/events` asks the node for new blocks.
const EVENT_POLL: Duration = Duration::from_millis(500);
/// Most blocks asked for in one `eth_getLogs`.
const LOG_RANGE: u64 = 1_000;

/// Why `serve` or `deploy` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Oracle(#[from] OracleError),
}

/// What `deploy` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub chain_id: u64,
    pub admin: Address,
    pub version: u64,
    #[serde(flatten)]
    pub addresses: kontrakt_protocol::PairAddresses,
    pub outcome: DeployOutcome,
}

/// One-shot deploy-if-absent (the `deploy` subcommand).
pub async fn deploy_once(config: &SidecarConfig) -> Result<DeployReport, ServeError> {
    let key = load_signer(&config.signer.key_file)?;
    let pair = Pair::from_config(config, key.address())?;
    let chain = Chain::connect(&config.chain, key).await?;
    let outcome = pair.ensure(&chain).await?;
    Ok(DeployReport {
        chain_id: chain.chain_id(),
        admin: chain.signer(),
        version: pair.version,
        addresses: pair.plan.addresses,
        outcome,
    })
}

/// Whether retrying can help (the node or the network), as opposed to a wrong config.
fn is_transient(e: &ServeError) -> bool {
    let chain = match e {
        ServeError::Chain(c)
        | ServeError::Deploy(DeployError::Chain(c))
        | ServeError::Deploy(DeployError::Factory(FactoryError::Chain(c))) => c,
        // The old version still holds value: the switch waits until it is settled on chain.
        ServeError::Deploy(DeployError::OldLogicHoldsValue { .. }) => return true,
        _ => return false,
    };
    matches!(
        chain,
        ChainError::Unreachable { .. }
            | ChainError::Rpc { .. }
            | ChainError::View(_)
            | ChainError::NotMined { .. }
            | ChainError::Reverted { .. }
    )
}

struct Service {
    config: SidecarConfig,
    pair: Pair,
    chain: OnceLock<Chain>,
    /// Why the pair is not in place yet (the last failed attempt), for `/readyz`.
    deploy_waiting: std::sync::Mutex<Option<String>>,
    shutdown: watch::Receiver<bool>,
    /// The API's enrollment check (config `registry` + `access`).
    access: Option<AccessGuard>,
    /// The enrollment reconciler's status, once it runs (config `enrollment`).
    enrollment: OnceLock<Arc<tokio::sync::RwLock<EnrollmentStatus>>>,
    /// What the oracle loop did (`GET /oracle`).
    oracle: Arc<OracleCounters>,
    /// What the registry's oracle loop did (`GET /enrollment`, with oracle approval).
    registry_oracle: Arc<OracleCounters>,
}

/// Runs `serve` until `shutdown` resolves (SIGTERM in the binary).
pub async fn serve(
    config: SidecarConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let key = load_signer(&config.signer.key_file)?;
    let pair = Pair::from_config(&config, key.address())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Http)?;
    tracing::info!(listen = %local, database = %pair.plan.addresses.database, logic = %pair.plan.addresses.logic, "serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let access = match (&config.registry, &config.access) {
        (Some(registry), Some(access)) => Some(AccessGuard::new(*registry, access.clone())),
        _ => None,
    };
    let service = Arc::new(Service {
        config,
        pair,
        chain: OnceLock::new(),
        deploy_waiting: std::sync::Mutex::new(None),
        shutdown: stop_rx.clone(),
        access,
        enrollment: OnceLock::new(),
        oracle: Arc::default(),
        registry_oracle: Arc::default(),
    });
    let app = router(service.clone());
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let mut deploy_stop = stop_rx.clone();
    let oracle_key = key.clone();
    tokio::select! {
        r = deploy_with_backoff(&service, key) => r?,
        _ = deploy_stop.wait_for(|s| *s) => {}
    }
    // The registry's transactions go through this sidecar's Chain (one nonce manager per
    // key); see `enrollment` for why the operator does not send them.
    let mut registry_oracle = None;
    if let (Some(enrollment), Some(chain)) = (&service.config.enrollment, service.chain.get()) {
        let contract = &service.config.contract;
        let reconciler = EnrollmentReconciler::new(
            chain.clone(),
            &contract.namespace,
            &contract.name,
            enrollment.participants.clone(),
        )
        .with_approval(enrollment.approval.clone());
        tracing::info!(registry = %reconciler.registry(), participants = enrollment.participants.len(), oracle_approval = ?enrollment.approval.as_ref().map(|a| &a.endpoint), "reconciling enrollment");
        let status = reconciler.status();
        let _ = service.enrollment.set(status.clone());
        if enrollment.approval.is_some() {
            registry_oracle = Some(start_registry_oracle(
                &service,
                chain.clone(),
                oracle_key.clone(),
                reconciler.registry(),
                status,
                stop_rx.clone(),
            )?);
        }
        tokio::spawn(reconciler.run(stop_rx.clone()));
    }
    let oracle = match service.chain.get() {
        Some(chain) => start_oracle(&service, chain.clone(), oracle_key, stop_rx.clone())?,
        None => None,
    };
    server
        .await
        .map_err(|e| ServeError::Http(std::io::Error::other(e)))?
        .map_err(ServeError::Http)?;
    // They watch the same stop signal; this waits for their tasks to be dropped.
    for loop_task in [oracle, registry_oracle].into_iter().flatten() {
        let _ = loop_task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The oracle loop beside the HTTP API, for logic contracts that make oracle requests. It
/// signs with the signer key (the oracle key is the signer key).
fn start_oracle(
    service: &Service,
    chain: Chain,
    key: alloy::signers::local::PrivateKeySigner,
    stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let abi = &service.pair.logic_artifact.abi;
    if !oracle::is_oracle_contract(abi) {
        if !service.config.oracle.endpoints.is_empty() {
            tracing::warn!(contract = %service.pair.logic_artifact.contract_name, "oracle endpoints are configured but the logic contract makes no oracle requests");
        }
        return Ok(None);
    }
    let oracle = Oracle::new(
        &service.config.oracle,
        chain,
        key,
        service.pair.plan.addresses.logic,
        abi.clone(),
        service.oracle.clone(),
    )?;
    tracing::info!(
        endpoints = service.config.oracle.endpoints.len(),
        "oracle loop started"
    );
    Ok(Some(tokio::spawn(Arc::new(oracle).run(stop))))
}

/// The oracle loop of the hosted registry's join verifications (oracle approval on): the same
/// loop as a logic contract's, with the registry's ABI for its callback. It starts once the
/// reconciler has found (or created) the registry.
fn start_registry_oracle(
    service: &Service,
    chain: Chain,
    key: alloy::signers::local::PrivateKeySigner,
    registry: Address,
    status: Arc<tokio::sync::RwLock<EnrollmentStatus>>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let oracle = Oracle::new(
        &service.config.oracle,
        chain,
        key,
        registry,
        crate::enrollment::registry_artifact().abi,
        service.registry_oracle.clone(),
    )?;
    Ok(tokio::spawn(async move {
        while !status.read().await.deployed {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        tracing::info!(%registry, "registry oracle loop started (join verifications)");
        Arc::new(oracle).run(stop).await;
    }))
}

async fn deploy_with_backoff(
    service: &Service,
    key: alloy::signers::local::PrivateKeySigner,
) -> Result<(), ServeError> {
    let retry = service.config.chain.retry;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result: Result<(), ServeError> = async {
            let chain = match service.chain.get() {
                Some(c) => c.clone(),
                None => Chain::connect(&service.config.chain, key.clone()).await?,
            };
            let outcome = service.pair.ensure(&chain).await?;
            tracing::info!(?outcome, "pair in place");
            let _ = service.chain.set(chain);
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if is_transient(&e) => {
                // serve never gives up on a transient failure; the pod stays unready meanwhile.
                let wait = retry.backoff(attempt.min(30));
                tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "deploy failed, retrying");
                *service
                    .deploy_waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn router(service: Arc<Service>) -> Router {
    // Every API route goes here, behind the enrollment check; probes stay open.
    let api = Router::new()
        .route("/contract", get(contract))
        .route("/events", get(events))
        .route("/enrollment", get(enrollment))
        .route("/oracle", get(oracle_status))
        .route_layer(axum::middleware::from_fn_with_state(
            service.clone(),
            require_enrolled,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .with_state(service)
}

/// With `access` configured: only requests signed by an account enrolled in an allowed role
/// pass (see [`crate::access`]).
async fn require_enrolled(
    State(s): State<Arc<Service>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(guard) = &s.access else {
        return next.run(request).await;
    };
    let Some(chain) = s.chain.get() else {
        return unavailable("the pair is not deployed yet");
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match guard
        .check(chain, request.headers(), request.method(), path_and_query)
        .await
    {
        Ok(account) => {
            tracing::debug!(%account, path = request.uri().path(), "signed request allowed");
            next.run(request).await
        }
        Err(denied) => denied.into_response(),
    }
}

/// The enrollment reconciler's view: in sync or not, which accounts differ, the last error.
async fn enrollment(State(s): State<Arc<Service>>) -> Response {
    if s.config.enrollment.is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "this sidecar hosts no EnrollmentRegistry (no enrollment in its config)" })),
        )
            .into_response();
    }
    let Some(status) = s.enrollment.get() else {
        return unavailable("the enrollment reconciler starts once the pair is deployed");
    };
    let mut body = serde_json::to_value(&*status.read().await).expect("the status serialises");
    // With oracle approval: what this sidecar's registry oracle loop did since it started
    // (the registry's own counters are `oracleRequests`).
    if s.config
        .enrollment
        .as_ref()
        .is_some_and(|e| e.approval.is_some())
    {
        body["oracleAnswers"] =
            serde_json::to_value(s.registry_oracle.view()).expect("the counters serialise");
    }
    Json(body).into_response()
}

/// The oracle's counters: the contract's (`oracleStats()`, the truth, shared by every replica)
/// and this sidecar's since it started, with its last error.
async fn oracle_status(State(s): State<Arc<Service>>) -> Response {
    let Some(chain) = s.chain.get() else {
        return unavailable("the pair is not deployed yet");
    };
    if !oracle::is_oracle_contract(&s.pair.logic_artifact.abi) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "the logic contract makes no oracle requests" })),
        )
            .into_response();
    }
    match OracleStats::read(
        chain.provider(),
        s.pair.plan.addresses.logic,
        BlockId::latest(),
    )
    .await
    {
        Ok(stats) => Json(json!({
            "contract": {
                "requested": stats.requested,
                "pending": stats.pending(),
                "fulfilled": stats.fulfilled,
                "failed": stats.failed,
                "expired": stats.expired,
            },
            "sidecar": s.oracle.view(),
        }))
        .into_response(),
        Err(e) => unavailable(&e.to_string()),
    }
}

fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reason": reason })),
    )
        .into_response()
}

async fn readyz(State(s): State<Arc<Service>>) -> Response {
    let Some(chain) = s.chain.get() else {
        let waiting = s.deploy_waiting.lock().unwrap_or_else(|p| p.into_inner());
        return unavailable(waiting.as_deref().unwrap_or("the pair is not deployed yet"));
    };
    match s.pair.state(chain).await {
        Ok(state) if state.is_ready(&s.pair.plan) => {
            (StatusCode::OK, Json(json!({ "ready": true }))).into_response()
        }
        Ok(state) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "ready": false, "reason": "the pair is not as expected", "state": state }),
            ),
        )
            .into_response(),
        Err(e) => unavailable(&e.to_string()),
    }
}

async fn contract(State(s): State<Arc<Service>>) -> Response {
    let Some(chain) = s.chain.get() else {
        return unavailable("the pair is not deployed yet");
    };
    match s.pair.state(chain).await {
        Ok(state) => Json(json!({
            "chainId": chain.chain_id(),
            "namespace": s.config.contract.namespace,
            "name": s.config.contract.name,
            "contract": s.pair.logic_artifact.contract_name,
            "version": s.pair.version,
            "addresses": s.pair.plan.addresses,
            "registry": s.pair.registry,
            "writer": state.writer,
            "writerVersion": state.writer_version,
            "readOnly": state.read_only,
            "retired": state.retired,
            "admin": state.logic_admin,
            "databaseAdmin": state.database_admin,
            "codeMatches": state.code_matches,
        }))
        .into_response(),
        Err(e) => unavailable(&e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from_block: Option<u64>,
}

/// Newline-delimited JSON, one CloudEvent per line, following new blocks until the client
/// goes away or the sidecar stops.
async fn events(State(s): State<Arc<Service>>, Query(q): Query<EventsQuery>) -> Response {
    let Some(chain) = s.chain.get().cloned() else {
        return unavailable("the pair is not deployed yet");
    };
    let a = s.pair.plan.addresses;
    let decoder = EventDecoder::new(
        chain.chain_id(),
        [
            (
                a.logic,
                s.pair.logic_artifact.contract_name.as_str(),
                &s.pair.logic_artifact.abi,
            ),
            (
                a.database,
                "ContractDatabase",
                &s.pair.database_artifact.abi,
            ),
        ],
        &s.config.interop.events,
    );
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let shutdown = s.shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = pump_events(chain, decoder, q.from_block, tx, shutdown).await {
            tracing::warn!(error = %e, "event feed stopped");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

async fn pump_events(
    chain: Chain,
    decoder: EventDecoder,
    from_block: Option<u64>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ChainError> {
    let p = chain.provider();
    let head = chain
        .with_retry("eth_blockNumber", || p.get_block_number().into_future())
        .await?;
    let mut next = from_block.unwrap_or(head + 1);
    let addresses = decoder.addresses();
    let mut times: std::collections::HashMap<u64, u64> = Default::default();
    loop {
        if *shutdown.borrow() || tx.is_closed() {
            return Ok(());
        }
        let head = chain
            .with_retry("eth_blockNumber", || p.get_block_number().into_future())
            .await?;
        if head >= next {
            let to = head.min(next + LOG_RANGE - 1);
            let filter = Filter::new()
                .address(addresses.clone())
                .from_block(next)
                .to_block(to);
            let logs = chain
                .with_retry("eth_getLogs", || p.get_logs(&filter))
                .await?;
            for mut log in logs {
                if log.block_timestamp.is_none()
                    && let Some(n) = log.block_number
                {
                    if !times.contains_key(&n)
                        && let Ok(Some(b)) = p.get_block_by_number(n.into()).await
                    {
                        times.insert(n, b.header.timestamp);
                    }
                    log.block_timestamp = times.get(&n).copied();
                }
                if let Some(event) = decoder.decode(&log) {
                    let mut line = serde_json::to_vec(&event).expect("CloudEvents serialise");
                    line.push(b'\n');
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return Ok(());
                    }
                }
            }
            times.retain(|n, _| *n >= to);
            next = to + 1;
            if next <= head {
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVENT_POLL) => {}
            _ = shutdown.changed() => return Ok(()),
            _ = tx.closed() => return Ok(()),
        }
    }
}
