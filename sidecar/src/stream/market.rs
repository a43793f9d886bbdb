//! The `DataMarket` on chain: deploy-if-absent at its deterministic address,
//! and the stream's idempotent registration.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::TransactionRequest;

use crate::chain::{Chain, ChainError};
use crate::factory::{FactoryError, ensure_factory};
use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;
use kontrakt_protocol::addresses::market_deployment;
use kontrakt_protocol::artifact::Artifact;

use kontrakt_protocol::bindings::DataMarket;

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
