//! The publisher's core: the shared state of a running stream (log, counters, source health),
//! the batcher that seals and anchors batches, and [`run`], the `stream` subcommand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::log::{LogError, MessageLog, SealedBatch};
use super::market::{self, MarketError};
use crate::chain::{Chain, ChainError};
use kontrakt_protocol::bindings::DataMarket;
use kontrakt_protocol::config::ConfigError;
use kontrakt_protocol::key::{KeyError, load_signer};
use kontrakt_protocol::stream_config::StreamConfig;

/// Why the publisher stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Health of the source as the publisher last saw it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceHealth {
    /// The last poll or the broker connection succeeded.
    pub online: bool,
    /// The last failure (`"sensor offline"` shows here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix seconds since when the source has been failing (absent while online).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<u64>,
    /// Unix seconds of the last accepted message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<u64>,
}

/// What `/status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub market: Address,
    pub stream_id: U256,
    pub ingested: u64,
    pub malformed: u64,
    pub source_errors: u64,
    pub anchored_batches: u64,
    pub anchored_messages: u64,
    pub pending_messages: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_root: Option<B256>,
    pub source: SourceHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_anchor_error: Option<String>,
}

/// The state shared by the ingest task, the batcher and the API.
#[derive(Debug)]
pub struct Stream {
    pub market: Address,
    pub stream_id: U256,
    pub registry: Option<Address>,
    log: Mutex<MessageLog>,
    /// An append happened (wakes the batcher).
    appended: Notify,
    /// When the oldest pending message arrived (the max-delay clock).
    oldest_pending: Mutex<Option<Instant>>,
    pub ingested: AtomicU64,
    pub malformed: AtomicU64,
    pub source_errors: AtomicU64,
    source: Mutex<SourceHealth>,
    last_anchor_error: Mutex<Option<String>>,
    pub ready: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the log half-written in memory: every
    // mutation finishes its write before it updates the index.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("not JSON: {0}")]
    Malformed(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Stream {
    pub fn new(
        market: Address,
        stream_id: U256,
        registry: Option<Address>,
        log: MessageLog,
    ) -> Self {
        let pending = log.pending() > 0;
        Self {
            market,
            stream_id,
            registry,
            log: Mutex::new(log),
            appended: Notify::new(),
            oldest_pending: Mutex::new(pending.then(Instant::now)),
            ingested: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            source_errors: AtomicU64::new(0),
            source: Mutex::new(SourceHealth::default()),
            last_anchor_error: Mutex::new(None),
            ready: AtomicBool::new(false),
        }
    }

    pub fn log(&self) -> MutexGuard<'_, MessageLog> {
        lock(&self.log)
    }

    /// Accepts one message from the source: JSON only (anything else is counted as
    /// malformed and dropped, never logged or anchored).
    pub fn accept(&self, message: &[u8]) -> Result<u64, Rejected> {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(message) {
            self.malformed.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Malformed(e.to_string()));
        }
        let index = self.log().append(message)?;
        {
            let mut oldest = lock(&self.oldest_pending);
            oldest.get_or_insert_with(Instant::now);
        }
        self.ingested.fetch_add(1, Ordering::Relaxed);
        lock(&self.source).last_message_at = Some(unix_now());
        self.appended.notify_one();
        Ok(index)
    }

    /// The source answered.
    pub fn source_ok(&self) {
        let mut s = lock(&self.source);
        if !s.online && s.offline_since.is_some() {
            tracing::info!("source back online");
        }
        s.online = true;
        s.offline_since = None;
    }

    /// The source failed (unreachable, an error status, a broker disconnect).
    pub fn source_failed(&self, error: String) {
        self.source_errors.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.source);
        if s.online || s.offline_since.is_none() {
            tracing::warn!(%error, "source offline");
            s.offline_since = Some(unix_now());
        }
        s.online = false;
        s.last_error = Some(error);
    }

    pub fn status(&self) -> StatusReport {
        let (anchored_batches, anchored_messages, pending, last_root) = {
            let log = self.log();
            let anchored: Vec<&SealedBatch> = log
                .batches()
                .iter()
                .filter(|b| b.number <= log.anchored_upto())
                .collect();
            (
                anchored.len() as u64,
                anchored.iter().map(|b| u64::from(b.count)).sum(),
                log.len() - anchored.iter().map(|b| u64::from(b.count)).sum::<u64>(),
                anchored.last().map(|b| b.root),
            )
        };
        StatusReport {
            market: self.market,
            stream_id: self.stream_id,
            ingested: self.ingested.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            source_errors: self.source_errors.load(Ordering::Relaxed),
            anchored_batches,
            anchored_messages,
            pending_messages: pending,
            last_root,
            source: lock(&self.source).clone(),
            last_anchor_error: lock(&self.last_anchor_error).clone(),
        }
    }
}

/// Seals and anchors batches until `shutdown`: a batch closes at `batch_size` messages or
/// `max_delay` after its first message, whichever comes first. A failed anchoring is retried
/// (the sealed batch stays as it is) after the chain is asked whether it went through.
pub async fn run_batcher(
    stream: Arc<Stream>,
    chain: Chain,
    batch_size: u32,
    max_delay: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let abi = market::market_artifact().abi;
    let mut backoff = Duration::from_millis(200);
    loop {
        let due = {
            let pending = stream.log().pending();
            let oldest = *lock(&stream.oldest_pending);
            pending >= u64::from(batch_size)
                || (pending > 0 && oldest.is_some_and(|t| t.elapsed() >= max_delay))
        };
        if due || !stream.log().unanchored().is_empty() {
            match seal_and_anchor(&stream, &chain, batch_size, due, &abi).await {
                Ok(()) => {
                    *lock(&stream.last_anchor_error) = None;
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "anchoring failed, retrying");
                    *lock(&stream.last_anchor_error) = Some(e.to_string());
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
        }
        let wait = {
            let oldest = *lock(&stream.oldest_pending);
            oldest.map_or(max_delay, |t| max_delay.saturating_sub(t.elapsed()))
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = stream.appended.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

async fn seal_and_anchor(
    stream: &Stream,
    chain: &Chain,
    batch_size: u32,
    seal: bool,
    abi: &alloy::json_abi::JsonAbi,
) -> Result<(), PublisherError> {
    let chain_last = market::last_batch(chain, stream.market, stream.stream_id).await?;
    {
        let mut log = stream.log();
        // Receipts lost by a crash or a timeout: the chain already has these.
        let caught_up = log
            .unanchored()
            .iter()
            .filter(|b| b.number <= chain_last)
            .map(|b| b.number)
            .max();
        if let Some(n) = caught_up {
            log.mark_anchored(n)?;
        }
        if seal && log.unanchored().is_empty() {
            let number = log.next_batch_number(chain_last);
            log.seal(number, batch_size)?;
            let mut oldest = lock(&stream.oldest_pending);
            *oldest = (log.pending() > 0).then(Instant::now);
        }
    }
    let contract = DataMarket::new(stream.market, chain.provider());
    let todo = stream.log().unanchored();
    for batch in todo {
        let tx = contract
            .anchorBatch(stream.stream_id, batch.number, batch.root, batch.count)
            .into_transaction_request();
        let receipt = chain
            .send(
                &format!(
                    "anchorBatch(stream {}, batch {})",
                    stream.stream_id, batch.number
                ),
                tx,
                &[abi],
            )
            .await?;
        stream.log().mark_anchored(batch.number)?;
        tracing::info!(batch = batch.number, messages = batch.count, root = %batch.root, gas = receipt.gas_used, "batch anchored");
    }
    Ok(())
}

/// Starts a publisher from `config`: opens the log, deploys the market if absent, registers
/// the stream (idempotent), then ingests, anchors and serves until `shutdown`.
pub async fn run(
    config: StreamConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), PublisherError> {
    config.validate()?;
    let log = MessageLog::open(&config.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| PublisherError::Listen {
            addr: config.listen,
            source,
        })?;
    let key = load_signer(&config.signer.key_file)?;
    let chain = Chain::connect(&config.chain, key).await?;
    let registry = config.registry.unwrap_or(Address::ZERO);
    let (market, _) = market::ensure_market(&chain, registry).await?;
    let terms = &config.stream;
    let stream_id = market::ensure_stream(
        &chain,
        market,
        terms.key(),
        terms.price_per_second_wei,
        terms.min_duration_seconds,
    )
    .await?;
    let stream = Arc::new(Stream::new(market, stream_id, config.registry, log));
    tracing::info!(%market, %stream_id, listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "publisher started");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let ingest = tokio::spawn(super::ingest::run_source(
        config.source.clone(),
        stream.clone(),
        stopped(),
    ));
    let batcher = tokio::spawn(run_batcher(
        stream.clone(),
        chain.clone(),
        config.integrity.batch_size,
        config.integrity.max_delay(),
        stopped(),
    ));
    stream.ready.store(true, Ordering::Relaxed);
    let app = super::server::router(stream.clone(), chain.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = ingest.await;
    let _ = batcher.await;
    served.map_err(|source| PublisherError::Listen {
        addr: config.listen,
        source,
    })
}
