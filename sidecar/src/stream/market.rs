//! The `DataMarket` on chain: its binding, deploy-if-absent at its deterministic address,
//! and the stream's idempotent registration.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::TransactionRequest;

use crate::addresses::market_deployment;
use crate::artifact::Artifact;
use crate::chain::{Chain, ChainError};
use crate::factory::{DETERMINISTIC_DEPLOYER, FactoryError, ensure_factory};

mod binding {
    #![allow(missing_docs, clippy::too_many_arguments)]
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        DataMarket,
        "contracts/out/DataMarket.json"
    );
}
pub use binding::DataMarket;

/// `immutableReferences` key of the market's registry.
const IMMUTABLE_REGISTRY: &str = "DataMarket._registry";

/// What went wrong with the market.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error(
        "DataMarket at {address}: code hash {actual} is not the DataMarket artifact's for registry {registry}"
    )]
    WrongCode {
        address: Address,
        registry: Address,
        actual: B256,
    },
    #[error("DataMarket at {0} was not created (the CREATE2 proxy left no code)")]
    NotCreated(Address),
    #[error("DataMarket at {market}: {what}: {reason}")]
    Read {
        market: Address,
        what: String,
        reason: String,
    },
}

/// The built-in `DataMarket` artifact.
pub fn market_artifact() -> Artifact {
    Artifact::builtin("DataMarket").expect("DataMarket is a built-in artifact")
}

/// The market's runtime code hash for `registry`.
pub fn market_code_hash(registry: Address) -> Option<B256> {
    market_artifact().runtime_code_hash(&BTreeMap::from([(
        IMMUTABLE_REGISTRY,
        registry.into_word(),
    )]))
}

/// Deploys the market of `registry` if absent; returns its address and whether this call
/// created it.
pub async fn ensure_market(
    chain: &Chain,
    registry: Address,
) -> Result<(Address, bool), MarketError> {
    let d = market_deployment(registry);
    let check = |code: &[u8]| {
        let actual = keccak256(code);
        match market_code_hash(registry) {
            Some(expected) if expected != actual => Err(MarketError::WrongCode {
                address: d.address,
                registry,
                actual,
            }),
            _ => Ok(()),
        }
    };
    let code = chain.code_at(d.address).await?;
    if !code.is_empty() {
        return check(&code).map(|()| (d.address, false));
    }
    ensure_factory(chain).await?;
    tracing::info!(market = %d.address, %registry, "creating the DataMarket through the deterministic-deployment proxy");
    let tx = TransactionRequest::default()
        .to(DETERMINISTIC_DEPLOYER)
        .input(d.calldata().into());
    let sent = chain.send("DataMarket", tx, &[]).await;
    let code = chain.code_at(d.address).await?;
    match (sent, code.is_empty()) {
        (_, false) => check(&code).map(|()| (d.address, true)),
        (Ok(_), true) => Err(MarketError::NotCreated(d.address)),
        (Err(e), true) => Err(e.into()),
    }
}

/// Registers the signer's stream under `key` unless it already is; returns its id. The
/// terms of an existing stream are kept (a warning names a difference).
pub async fn ensure_stream(
    chain: &Chain,
    market: Address,
    key: B256,
    price_per_second: U256,
    min_duration: u64,
) -> Result<U256, MarketError> {
    let contract = DataMarket::new(market, chain.provider());
    let read = |what: &str| {
        let what = what.to_owned();
        move |e: alloy::contract::Error| MarketError::Read {
            market,
            what: what.clone(),
            reason: e.to_string(),
        }
    };
    let id = contract
        .streamIdOf(chain.signer(), key)
        .call()
        .await
        .map_err(read("streamIdOf"))?;
    if !id.is_zero() {
        let s = contract
            .streamOf(id)
            .call()
            .await
            .map_err(read("streamOf"))?;
        if s.pricePerSecond != price_per_second || s.minDuration != min_duration {
            tracing::warn!(stream_id = %id, on_chain_price = %s.pricePerSecond, on_chain_min_duration = s.minDuration, "the stream is registered with other terms than configured; the on-chain terms apply");
        }
        return Ok(id);
    }
    let abi = market_artifact().abi;
    let tx = contract
        .registerStream(key, price_per_second, min_duration)
        .into_transaction_request();
    chain
        .send(&format!("registerStream({key})"), tx, &[&abi])
        .await?;
    let id = contract
        .streamIdOf(chain.signer(), key)
        .call()
        .await
        .map_err(read("streamIdOf"))?;
    tracing::info!(stream_id = %id, %market, "stream registered");
    Ok(id)
}

/// The last anchored batch number of a stream (0: none).
pub async fn last_batch(
    chain: &Chain,
    market: Address,
    stream_id: U256,
) -> Result<u64, MarketError> {
    let s = DataMarket::new(market, chain.provider())
        .streamOf(stream_id)
        .call()
        .await
        .map_err(|e| MarketError::Read {
            market,
            what: format!("streamOf({stream_id})"),
            reason: e.to_string(),
        })?;
    Ok(if s.anchored { s.lastBatch } else { 0 })
}

/// What the chain says about one stream: for the operator's DataStream status (read-only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub stream_id: U256,
    pub seller: Address,
    pub price_per_second_wei: U256,
    pub min_duration_seconds: u64,
    /// How many batch roots are anchored.
    pub anchored_batches: u64,
    /// The last anchored batch number and its root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_batch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_root: Option<B256>,
    /// When the last batch was anchored (its block's unix time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_anchored_at: Option<u64>,
    /// The latest block's unix time (the clock `last_anchored_at` compares with).
    pub chain_time: u64,
    /// Accounts whose paid access has not ended (at the latest block's time).
    pub active_subscribers: u64,
    /// Accounts that ever subscribed.
    pub subscribers: u64,
    /// Everything paid for this stream (the sum of its `Subscribed` receipts).
    pub revenue_wei: U256,
}

/// Reads a stream's terms, anchoring progress, subscribers and revenue from the market's
/// state and its `BatchAnchored` / `Subscribed` logs (from block 0: fine for a dedicated
/// chain; a public chain's RPC may limit log ranges).
pub async fn read_stream_stats<P: alloy::providers::Provider>(
    provider: P,
    market: Address,
    stream_id: U256,
) -> Result<StreamStats, MarketError> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    let failed = |what: &str, reason: String| MarketError::Read {
        market,
        what: what.to_owned(),
        reason,
    };
    let contract = DataMarket::new(market, &provider);
    let s = contract
        .streamOf(stream_id)
        .call()
        .await
        .map_err(|e| failed("streamOf", e.to_string()))?;
    let last_batch = s.anchored.then_some(s.lastBatch);
    let last = match last_batch {
        Some(b) => Some(
            contract
                .batchOf(stream_id, b)
                .call()
                .await
                .map_err(|e| failed("batchOf", e.to_string()))?,
        ),
        None => None,
    };
    let logs_of = |signature: B256| {
        Filter::new()
            .address(market)
            .event_signature(signature)
            .topic1(B256::from(stream_id))
            .from_block(0)
    };
    let anchored = provider
        .get_logs(&logs_of(DataMarket::BatchAnchored::SIGNATURE_HASH))
        .await
        .map_err(|e| failed("BatchAnchored logs", e.to_string()))?;
    let subscribed = provider
        .get_logs(&logs_of(DataMarket::Subscribed::SIGNATURE_HASH))
        .await
        .map_err(|e| failed("Subscribed logs", e.to_string()))?;
    let now = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| failed("latest block", e.to_string()))?
        .map_or(0, |b| b.header.timestamp);
    let mut revenue = U256::ZERO;
    let mut until: std::collections::HashMap<Address, u64> = std::collections::HashMap::new();
    for log in &subscribed {
        let event = log
            .log_decode::<DataMarket::Subscribed>()
            .map_err(|e| failed("Subscribed log", e.to_string()))?
            .inner
            .data;
        revenue += event.amount;
        let u = until.entry(event.subscriber).or_default();
        *u = (*u).max(event.accessUntil);
    }
    Ok(StreamStats {
        stream_id,
        seller: s.seller,
        price_per_second_wei: s.pricePerSecond,
        min_duration_seconds: s.minDuration,
        anchored_batches: anchored.len() as u64,
        last_batch,
        last_root: last.as_ref().map(|b| b.root),
        last_anchored_at: last.map(|b| b.anchoredAt),
        chain_time: now,
        active_subscribers: until.values().filter(|u| **u > now).count() as u64,
        subscribers: until.len() as u64,
        revenue_wei: revenue,
    })
}
