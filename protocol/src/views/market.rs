//! A stream on the `DataMarket`: found by seller and key (`streamIdOf`), and what the chain
//! says about it (the operator's DataStream status, the sidecar's buyer side).

use std::collections::HashMap;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::ViewError;
use crate::bindings::DataMarket;

const CONTRACT: &str = "DataMarket";

/// The id of `seller`'s stream registered under `key` (zero: not registered), at `at`.
pub async fn stream_id_of<P: Provider>(
    provider: P,
    market: Address,
    seller: Address,
    key: B256,
    at: BlockId,
) -> Result<U256, ViewError> {
    DataMarket::new(market, provider)
        .streamIdOf(seller, key)
        .call()
        .block(at)
        .await
        .map_err(|e| ViewError::new(CONTRACT, market, "streamIdOf()", e))
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
pub async fn read_stream_stats<P: Provider>(
    provider: P,
    market: Address,
    stream_id: U256,
) -> Result<StreamStats, ViewError> {
    let failed =
        |call: &'static str, reason: String| ViewError::new(CONTRACT, market, call, reason);
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
    let mut until: HashMap<Address, u64> = HashMap::new();
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
