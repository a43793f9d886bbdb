//! The oracle loop (the paper's Thing Communication): follows one contract's `OracleRequest`
//! logs (the logic contract's, or the EnrollmentRegistry's join verifications: any contract
//! built on `OracleRequests`), fetches the named endpoint from the config (never a URL from the
//! chain), maps the JSON answer to the callback's ABI types, signs the attestation with the
//! signer key (the oracle key IS the signer key: enrol it as `Oracle` in the registry) and
//! answers with `fulfil`, or with `fulfilError` and an [`OracleErrorCode`] when the request
//! cannot be served, or `cancel`s it once its deadline has passed unanswered (it then counts
//! as expired).
//!
//! State lives on the chain. On start the loop reads `oracleStats()` at the head: when requests
//! are pending it scans logs backwards from the head (requests and answers in one filter, 1,000
//! blocks per call) until it has found that many unanswered requests, so the scan is as long
//! as the oldest pending request is old, not the chain; then it follows new blocks (and
//! repeats the scan every 30 s for requests whose handling failed). Every answer
//! is preceded by `oracleRequestOf(id)` (still Pending?), and the contract accepts one answer
//! per id, so a restarted sidecar, or two replicas, never answer twice on chain.
//!
//! While an endpoint is unreachable, times out or answers 5xx/429, attempts repeat with
//! exponential backoff and jitter up to `retries` more times, and only while the chain's
//! time is before the deadline; then the request is answered with the error code (retries
//! spent) or cancelled (deadline passed). Every give-up is logged and counted
//! ([`OracleCounters`], `GET /oracle`).

pub mod attest;
pub mod fetch;
pub mod request;
pub mod result;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockNumberOrTag;
use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use fetch::{Endpoint, EndpointError, FetchError};
pub use request::OracleRequest;
pub use result::Callback;

use crate::chain::{Chain, ChainError};
use kontrakt_protocol::config::OracleConfig;

use kontrakt_protocol::bindings::OracleRequests;
use kontrakt_protocol::views::oracle::OracleStats;

/// How often the loop asks the node for new blocks.
const POLL: Duration = Duration::from_millis(100);
/// How often the loop re-reads the pending requests from the chain, so a request whose
/// handling failed (the chain was down for longer than the send retries) is picked up again.
const RESCAN: Duration = Duration::from_secs(30);
/// Most blocks asked for in one `eth_getLogs`.
const LOG_RANGE: u64 = 1_000;
/// Fetches and sends in progress at once; more wait for a slot (a request backing off or
/// waiting for its deadline holds none).
const CONCURRENCY: usize = 256;
/// Backoff between attempts at an unreachable endpoint: doubling from this...
const DEVICE_BACKOFF: Duration = Duration::from_millis(250);
/// ... up to this.
const DEVICE_BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How often a request waiting for its deadline to pass (to cancel it) looks at the chain's
/// time, at most.
const EXPIRY_POLL_MAX: Duration = Duration::from_secs(5);
/// Gas added to an answer's measured gas (see `Oracle::gas_limit`).
const GAS_HEADROOM: u64 = 20_000;
/// Attempts at sending one answer while the chain itself fails (not the endpoint).
const SEND_ATTEMPTS: u32 = 5;

/// The code of `fulfilError` (the same numbers as the contract's `ORACLE_ERROR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u16)]
pub enum OracleErrorCode {
    /// The request names an endpoint the config does not have; nothing was fetched.
    UnknownEndpoint = 1,
    /// The endpoint stayed unreachable for all attempts.
    Unreachable = 2,
    /// The endpoint did not answer within its timeout for all attempts.
    Timeout = 3,
    /// The endpoint answered a non-2xx status (a 3xx too: redirects are not followed).
    HttpStatus = 4,
    /// The response exceeded `maxResponseBytes`.
    ResponseTooLarge = 5,
    /// The response is not JSON.
    NotJson = 6,
    /// The response has no value at `resultPath`.
    ResultMissing = 7,
    /// The value does not convert to the callback's parameter type.
    WrongType = 8,
    /// The request's params are not `abi.encode(string[] names, string[] values)`.
    BadParams = 9,
    /// The callback selector is not a function `(bytes32, ...)` of the contract's ABI.
    UnknownCallback = 10,
    /// A header's Secret file could not be read.
    SecretUnreadable = 11,
}

impl OracleErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// Why the oracle cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(
        "the oracle key {key} is not the chain's signer {signer}: the oracle signs with the signer key"
    )]
    KeyMismatch { key: Address, signer: Address },
}

/// Why one request could not be handled this time (it stays pending on chain).
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("cannot sign the attestation: {0}")]
    Sign(String),
    #[error("the OracleRequest log does not match the commitment stored on chain")]
    Commitment,
}

/// What this sidecar did, since it started (the chain's `oracleStats()` is the total).
#[derive(Debug, Default)]
pub struct OracleCounters {
    seen: AtomicU64,
    fulfilled: AtomicU64,
    failed: AtomicU64,
    expired: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
    gave_up: AtomicU64,
    last_error: Mutex<Option<LastError>>,
}

/// The most recent failure, for operators' debugging (no secrets: no header values, no URLs).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub request_id: B256,
    pub endpoint: String,
    pub message: String,
    pub unix_time: u64,
}

/// A snapshot of [`OracleCounters`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OracleCountersView {
    /// Requests this sidecar picked up (from the resume scan or new blocks).
    pub seen: u64,
    /// Answered by this sidecar with a result.
    pub fulfilled: u64,
    /// Answered by this sidecar with an error code.
    pub failed: u64,
    /// Cancelled by this sidecar after their deadline.
    pub expired: u64,
    /// Being handled now (fetching, backing off, sending, waiting for the deadline).
    pub in_flight: u64,
    /// Extra attempts at unreachable endpoints.
    pub retries: u64,
    /// Requests given up on (answered with an error after the retries, or cancelled).
    pub gave_up: u64,
    pub last_error: Option<LastError>,
}

impl OracleCounters {
    pub fn view(&self) -> OracleCountersView {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OracleCountersView {
            seen: get(&self.seen),
            fulfilled: get(&self.fulfilled),
            failed: get(&self.failed),
            expired: get(&self.expired),
            in_flight: get(&self.in_flight),
            retries: get(&self.retries),
            gave_up: get(&self.gave_up),
            last_error: self.last_error.lock().expect("not poisoned").clone(),
        }
    }

    fn record_error(&self, req: &OracleRequest, message: String) {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        *self.last_error.lock().expect("not poisoned") = Some(LastError {
            request_id: req.id,
            endpoint: req.endpoint.clone(),
            message,
            unix_time,
        });
    }
}

/// Whether a contract's ABI makes oracle requests (built on `OracleRequests`).
pub fn is_oracle_contract(abi: &JsonAbi) -> bool {
    abi.events.contains_key("OracleRequest") && abi.functions.contains_key("fulfil")
}

/// How a request ended for this sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fulfilled,
    Failed(OracleErrorCode),
    Expired,
    /// Someone (another replica, an earlier run) answered it first; nothing sent.
    AlreadyAnswered,
}

/// The oracle of one contract.
pub struct Oracle {
    chain: Chain,
    key: PrivateKeySigner,
    /// The contract whose requests this oracle answers.
    contract: Address,
    abi: JsonAbi,
    endpoints: HashMap<String, Endpoint>,
    max_response_bytes: u64,
    counters: Arc<OracleCounters>,
    /// Requests being handled now, so a rescan or a repeated log does not start them twice.
    handled: Mutex<HashSet<B256>>,
    slots: Semaphore,
}

impl Oracle {
    /// An oracle answering `contract`'s requests (its ABI: `abi`, where the callbacks are
    /// looked up) from `config`'s endpoints, signing with `key` (the same key as `chain`'s
    /// signer).
    pub fn new(
        config: &OracleConfig,
        chain: Chain,
        key: PrivateKeySigner,
        contract: Address,
        abi: JsonAbi,
        counters: Arc<OracleCounters>,
    ) -> Result<Self, OracleError> {
        if key.address() != chain.signer() {
            return Err(OracleError::KeyMismatch {
                key: key.address(),
                signer: chain.signer(),
            });
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| Ok((e.name.clone(), Endpoint::new(e)?)))
            .collect::<Result<_, EndpointError>>()?;
        Ok(Self {
            chain,
            key,
            contract,
            abi,
            endpoints,
            max_response_bytes: config.max_response_bytes,
            counters,
            handled: Mutex::new(HashSet::new()),
            slots: Semaphore::new(CONCURRENCY),
        })
    }

    /// Runs until `shutdown` turns true: resumes the pending requests, then follows new blocks.
    /// Chain failures are logged and retried; requests being handled are dropped on shutdown
    /// (still pending on chain, so the next start answers them).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let mut next = loop {
            match self.resume().await {
                Ok((head, pending)) => {
                    tracing::info!(contract = %self.contract, head, pending = pending.len(), "oracle resumed");
                    for r in pending {
                        self.spawn(&mut tasks, r);
                    }
                    break head + 1;
                }
                Err(e) => tracing::warn!(error = %e, "oracle resume scan failed, retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.chain.retry_config().backoff(3)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        };
        let mut last_scan = tokio::time::Instant::now();
        loop {
            while tasks.try_join_next().is_some() {}
            if last_scan.elapsed() >= RESCAN {
                last_scan = tokio::time::Instant::now();
                match self.resume().await {
                    Ok((_, pending)) => {
                        for r in pending {
                            self.spawn(&mut tasks, r);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "oracle rescan failed"),
                }
            }
            match self.follow(next, &mut tasks).await {
                Ok(n) => next = n,
                Err(e) => tracing::warn!(error = %e, "oracle log poll failed, retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!("oracle stopped");
    }

    /// The head, and the requests pending at it (oldest first), found by scanning back.
    async fn resume(&self) -> Result<(u64, Vec<OracleRequest>), ChainError> {
        let p = self.chain.provider();
        let head = self
            .chain
            .with_retry("eth_blockNumber", || p.get_block_number().into_future())
            .await?;
        let stats = OracleStats::read(p, self.contract, head.into()).await?;
        let want = stats.pending() as usize;
        let mut found = Vec::new();
        let mut answered = HashSet::new();
        let mut to = head;
        while found.len() < want {
            let from = to.saturating_sub(LOG_RANGE - 1);
            let filter = Filter::new()
                .address(self.contract)
                .event_signature(request::request_and_answer_topics())
                .from_block(from)
                .to_block(to);
            let logs = self
                .chain
                .with_retry("eth_getLogs", || p.get_logs(&filter))
                .await?;
            for log in logs.iter().rev() {
                if let Some(id) = request::answered_id(log) {
                    answered.insert(id);
                } else if let Some(r) = OracleRequest::from_log(log)
                    && !answered.contains(&r.id)
                {
                    found.push(r);
                }
            }
            if from == 0 {
                break;
            }
            to = from - 1;
        }
        found.reverse();
        Ok((head, found))
    }

    /// Picks up requests in blocks `next..=head`; returns the next block to read.
    async fn follow(
        self: &Arc<Self>,
        mut next: u64,
        tasks: &mut JoinSet<()>,
    ) -> Result<u64, ChainError> {
        let p = self.chain.provider();
        let head = self
            .chain
            .with_retry("eth_blockNumber", || p.get_block_number().into_future())
            .await?;
        while next <= head {
            let to = head.min(next + LOG_RANGE - 1);
            let filter = Filter::new()
                .address(self.contract)
                .event_signature(request::request_topic())
                .from_block(next)
                .to_block(to);
            let logs = self
                .chain
                .with_retry("eth_getLogs", || p.get_logs(&filter))
                .await?;
            for r in logs.iter().filter_map(OracleRequest::from_log) {
                self.spawn(tasks, r);
            }
            next = to + 1;
        }
        Ok(next)
    }

    fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, r: OracleRequest) {
        if !self.handled.lock().expect("not poisoned").insert(r.id) {
            return;
        }
        self.counters.seen.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tasks.spawn(async move {
            this.counters.in_flight.fetch_add(1, Ordering::Relaxed);
            this.handle(&r).await;
            // Done (or given up until the next rescan): the chain's state says which, so the
            // set only holds requests in progress.
            this.handled.lock().expect("not poisoned").remove(&r.id);
            this.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Handles one request to its end, retrying chain failures until its deadline has passed.
    async fn handle(&self, r: &OracleRequest) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.serve(r).await {
                Ok(outcome) => {
                    let counter = match outcome {
                        Outcome::Fulfilled => &self.counters.fulfilled,
                        Outcome::Failed(_) => &self.counters.failed,
                        Outcome::Expired => &self.counters.expired,
                        Outcome::AlreadyAnswered => return,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(id = %r.id, endpoint = %r.endpoint, ?outcome, "oracle request answered");
                    return;
                }
                Err(HandleError::Commitment) => {
                    tracing::error!(id = %r.id, endpoint = %r.endpoint, "OracleRequest log does not match its on-chain commitment; not answering");
                    self.counters
                        .record_error(r, HandleError::Commitment.to_string());
                    return;
                }
                Err(e) if attempt < SEND_ATTEMPTS => {
                    let wait = self.chain.retry_config().backoff(attempt);
                    tracing::warn!(id = %r.id, endpoint = %r.endpoint, error = %e, attempt, "oracle answer failed, retrying");
                    self.counters.record_error(r, e.to_string());
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::error!(id = %r.id, endpoint = %r.endpoint, error = %e, "oracle answer failed; the request stays pending until the next rescan");
                    self.counters.record_error(r, e.to_string());
                    return;
                }
            }
        }
    }

    /// Fetches, converts and answers one request (or cancels it after its deadline).
    async fn serve(&self, r: &OracleRequest) -> Result<Outcome, HandleError> {
        let on_chain = self.request_state(r.id).await?;
        if on_chain.status != PENDING {
            return Ok(Outcome::AlreadyAnswered);
        }
        if on_chain.commitment != r.commitment() {
            return Err(HandleError::Commitment);
        }
        let Some(endpoint) = self.endpoints.get(&r.endpoint) else {
            tracing::warn!(id = %r.id, endpoint = %r.endpoint, "request names an endpoint that is not configured; answering UnknownEndpoint without fetching");
            return self.fail(r, OracleErrorCode::UnknownEndpoint).await;
        };
        let callback = match Callback::find(&self.abi, r.callback.0) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(id = %r.id, error = %e, "request names a callback that cannot be served");
                return self.fail(r, OracleErrorCode::UnknownCallback).await;
            }
        };
        let params = match r.named_params() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(id = %r.id, error = %e, "request params cannot be sent");
                return self.fail(r, OracleErrorCode::BadParams).await;
            }
        };
        let mut attempt = 0u32;
        loop {
            if self.chain_time().await? > r.deadline {
                self.give_up(r, "the deadline passed while the endpoint was unavailable");
                return self.expire(r).await;
            }
            attempt += 1;
            let fetched = {
                let _slot = self.slots.acquire().await;
                endpoint.fetch(&params, self.max_response_bytes).await
            };
            let error = match fetched {
                Ok(value) => {
                    return match callback.convert(&value) {
                        Ok(values) => self.fulfil(r, result::encode_result(r.id, values)).await,
                        Err(e) => {
                            tracing::warn!(id = %r.id, endpoint = %r.endpoint, error = %e, "answer has the wrong type");
                            self.counters.record_error(r, e.to_string());
                            self.fail(r, OracleErrorCode::WrongType).await
                        }
                    };
                }
                Err(e) => e,
            };
            if error.is_retryable() && attempt <= endpoint.config.retries {
                let wait = jittered(backoff(attempt));
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = %r.id, endpoint = %r.endpoint, %error, attempt, wait_ms = wait.as_millis() as u64, "endpoint unavailable, retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            self.give_up(r, &error.to_string());
            return self.fail(r, error.code()).await;
        }
    }

    fn give_up(&self, r: &OracleRequest, why: &str) {
        tracing::warn!(id = %r.id, endpoint = %r.endpoint, reason = %why, "giving up on the oracle request");
        self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
        self.counters.record_error(r, why.to_owned());
    }

    async fn fulfil(&self, r: &OracleRequest, result: Bytes) -> Result<Outcome, HandleError> {
        let digest = attest::result_digest(self.chain.chain_id(), self.contract, r.id, &result);
        let attestation = self.sign(digest)?;
        let tx = OracleRequests::new(self.contract, self.chain.provider())
            .fulfil(r.id, result, attestation)
            .into_transaction_request();
        self.answer(r, "fulfil", tx, Outcome::Fulfilled).await
    }

    async fn fail(&self, r: &OracleRequest, code: OracleErrorCode) -> Result<Outcome, HandleError> {
        let digest =
            attest::error_digest(self.chain.chain_id(), self.contract, r.id, code.as_u16());
        let attestation = self.sign(digest)?;
        let tx = OracleRequests::new(self.contract, self.chain.provider())
            .fulfilError(r.id, code.as_u16(), attestation)
            .into_transaction_request();
        self.answer(r, "fulfilError", tx, Outcome::Failed(code))
            .await
    }

    /// Waits until the chain's time is past the deadline, then cancels (counted as expired).
    async fn expire(&self, r: &OracleRequest) -> Result<Outcome, HandleError> {
        loop {
            let now = self.chain_time().await?;
            if now > r.deadline {
                break;
            }
            let left = Duration::from_secs(r.deadline + 1 - now);
            tokio::time::sleep(left.clamp(Duration::from_millis(500), EXPIRY_POLL_MAX)).await;
        }
        let tx = OracleRequests::new(self.contract, self.chain.provider())
            .cancel(r.id)
            .into_transaction_request();
        self.answer(r, "cancel", tx, Outcome::Expired).await
    }

    /// Sends an answer if the request is still pending. A revert because someone answered
    /// first is not an error; one because the deadline passed meanwhile turns into `cancel`.
    async fn answer(
        &self,
        r: &OracleRequest,
        what: &str,
        mut tx: TransactionRequest,
        outcome: Outcome,
    ) -> Result<Outcome, HandleError> {
        if self.request_state(r.id).await?.status != PENDING {
            return Ok(Outcome::AlreadyAnswered);
        }
        let what = format!("{what}({})", r.id);
        // Only `fulfil` runs the callback: the others need no room for it.
        let callback_gas = if outcome == Outcome::Fulfilled {
            r.callback_gas
        } else {
            0
        };
        tx.gas = self.gas_limit(&tx, callback_gas).await;
        let sent = {
            let _slot = self.slots.acquire().await;
            self.chain.send(&what, tx, &[&self.abi]).await
        };
        match sent {
            Ok(_) => Ok(outcome),
            Err(ChainError::Reverted { reason, .. }) => {
                let state = self.request_state(r.id).await?;
                if state.status != PENDING {
                    return Ok(Outcome::AlreadyAnswered);
                }
                if outcome != Outcome::Expired && reason.starts_with("RequestExpired") {
                    return Box::pin(self.expire(r)).await;
                }
                Err(ChainError::Reverted { what, reason }.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The gas limit from one execution of the answer (`eth_createAccessList` reports the gas
    /// used) plus all of the callback gas the request committed, so `fulfil` always has the
    /// callback's full gas (it refuses less) however little the callback used in this run,
    /// with headroom for state changing before it is mined. `eth_estimateGas` would execute it a
    /// dozen times in its search, which limits the answers per second the node can take. `None`
    /// (the answer would revert, or the node cannot tell) leaves the estimate to `Chain::send`,
    /// which names the revert.
    async fn gas_limit(&self, tx: &TransactionRequest, callback_gas: u32) -> Option<u64> {
        let mut call = tx.clone();
        call.from = Some(self.chain.signer());
        let result = self.chain.provider().create_access_list(&call).await.ok()?;
        if result.error.is_some() {
            return None;
        }
        let used = u64::try_from(result.gas_used).ok()?;
        let callback = u64::from(callback_gas);
        Some(used + used / 4 + GAS_HEADROOM + callback + callback / 63)
    }

    fn sign(&self, digest: B256) -> Result<Bytes, HandleError> {
        attest::sign(&self.key, digest).map_err(|e| HandleError::Sign(e.to_string()))
    }

    async fn request_state(&self, id: B256) -> Result<RequestState, ChainError> {
        let c = OracleRequests::new(self.contract, self.chain.provider());
        let s = c
            .oracleRequestOf(id)
            .call()
            .await
            .map_err(|e| rpc_error("oracleRequestOf()", e))?;
        Ok(RequestState {
            status: s.status,
            commitment: s.commitment,
        })
    }

    /// The timestamp of the latest block: deadlines are chain time, not this machine's.
    async fn chain_time(&self) -> Result<u64, ChainError> {
        let p = self.chain.provider();
        let block = self
            .chain
            .with_retry("eth_getBlockByNumber", || {
                p.get_block_by_number(BlockNumberOrTag::Latest)
                    .into_future()
            })
            .await?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
    }
}

/// `OracleRequestStatus.Pending`.
const PENDING: u8 = 1;

struct RequestState {
    status: u8,
    commitment: B256,
}

/// The wait after attempt `attempt` (from 1) at an unavailable endpoint.
fn backoff(attempt: u32) -> Duration {
    DEVICE_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(DEVICE_BACKOFF_MAX)
}

/// Between half and all of `wait`, so replicas and requests do not retry in lockstep.
fn jittered(wait: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    wait / 2 + wait.mul_f64((random % 1_000) as f64 / 2_000.0)
}

fn rpc_error(what: &str, e: alloy::contract::Error) -> ChainError {
    let source = match e {
        alloy::contract::Error::TransportError(t) => t,
        other => alloy::transports::TransportError::local_usage_str(&other.to_string()),
    };
    ChainError::Rpc {
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_jitter_stays_within_half() {
        assert_eq!(backoff(1), DEVICE_BACKOFF);
        assert_eq!(backoff(2), DEVICE_BACKOFF * 2);
        assert_eq!(backoff(40), DEVICE_BACKOFF_MAX);
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(1));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_secs(1));
        }
    }

    #[test]
    fn error_codes_match_the_contract() {
        let abi = kontrakt_protocol::artifact::Artifact::builtin("KontraktOracle")
            .unwrap()
            .abi;
        assert!(is_oracle_contract(&abi));
        // The numbers are part of the on-chain protocol (see OracleRequests.sol).
        assert_eq!(OracleErrorCode::UnknownEndpoint.as_u16(), 1);
        assert_eq!(OracleErrorCode::SecretUnreadable.as_u16(), 11);
        let registry = kontrakt_protocol::artifact::Artifact::builtin("EnrollmentRegistry")
            .unwrap()
            .abi;
        assert!(is_oracle_contract(&registry), "the registry verifies joins");
        let source = include_str!("../../contracts/src/OracleRequests.sol");
        for (name, code) in [
            ("UNKNOWN_ENDPOINT", OracleErrorCode::UnknownEndpoint),
            ("UNREACHABLE", OracleErrorCode::Unreachable),
            ("TIMEOUT", OracleErrorCode::Timeout),
            ("HTTP_STATUS", OracleErrorCode::HttpStatus),
            ("RESPONSE_TOO_LARGE", OracleErrorCode::ResponseTooLarge),
            ("NOT_JSON", OracleErrorCode::NotJson),
            ("RESULT_MISSING", OracleErrorCode::ResultMissing),
            ("WRONG_TYPE", OracleErrorCode::WrongType),
            ("BAD_PARAMS", OracleErrorCode::BadParams),
            ("UNKNOWN_CALLBACK", OracleErrorCode::UnknownCallback),
            ("SECRET_UNREADABLE", OracleErrorCode::SecretUnreadable),
        ] {
            let line = format!("ORACLE_ERROR_{name} = {};", code.as_u16());
            assert!(source.contains(&line), "{line} not in OracleRequests.sol");
        }
    }
}
