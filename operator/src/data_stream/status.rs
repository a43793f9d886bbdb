//! DataStream status from the chain: the stream's id on the market (found by
//! the seller's address and the stream key, so it is never stored), anchored
//! batches, the last root, subscribers and revenue from the invoices.

use crate::api::{DataStream, DataStreamStatus, condition};
use crate::context::Context;
use crate::smart_contract_service::status::Computed;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use k8s_openapi::api::apps::v1::Deployment;
use kontrakt_sidecar::stream::market::read_stream_stats;

alloy::sol! {
    /// The one view the sidecar's market module does not wrap for a reader
    /// without a signer: finding the stream by seller and key.
    #[sol(rpc)]
    interface MarketLookup {
        function streamIdOf(address seller, bytes32 key) external view returns (uint256);
    }
}

/// What the chain says about the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Unreachable(String),
    /// No market contract yet, or the stream is not registered on it.
    NotRegistered {
        market: Address,
    },
    Registered {
        stream_id: U256,
        anchored_batches: u64,
        last_root: Option<B256>,
        active_subscribers: u64,
        revenue: U256,
    },
}

/// Reads the stream's state from the market at `market`.
pub async fn observe(
    ctx: &Context,
    rpc_url: &str,
    market: Address,
    seller: Address,
    key: B256,
) -> Observation {
    let provider = match ctx.chains.get(rpc_url) {
        Ok(p) => p,
        Err(e) => return Observation::Unreachable(e),
    };
    let read = async {
        let block = provider
            .get_block_number()
            .await
            .map_err(|e| e.to_string())?;
        let at = alloy::eips::BlockId::number(block);
        if provider
            .get_code_at(market)
            .block_id(at)
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Ok(Observation::NotRegistered { market });
        }
        let id = MarketLookup::new(market, &provider)
            .streamIdOf(seller, key)
            .call()
            .block(at)
            .await
            .map_err(|e| e.to_string())?;
        if id.is_zero() {
            return Ok(Observation::NotRegistered { market });
        }
        let stats = read_stream_stats(&provider, market, id)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(Observation::Registered {
            stream_id: id,
            anchored_batches: stats.anchored_batches,
            last_root: stats.last_root,
            active_subscribers: stats.active_subscribers,
            revenue: stats.revenue_wei,
        })
    };
    let limit = ctx.settings.chain_timeout * 2;
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observation::Unreachable(e),
        Err(_) => Observation::Unreachable(format!("no answer within {}s", limit.as_secs())),
    }
}

pub struct Outcome {
    pub status: DataStreamStatus,
    pub conditions: Vec<Computed>,
    pub ready: bool,
}

/// The status from what was observed. Pure.
pub fn compute(ds: &DataStream, deployment: Option<&Deployment>, o: &Observation) -> Outcome {
    let mut status = DataStreamStatus {
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    let registered = match o {
        Observation::Unreachable(e) => Computed {
            type_: condition::REGISTERED,
            status: false,
            reason: "ChainUnreachable",
            message: format!("chain RPC unreachable: {e}"),
        },
        Observation::NotRegistered { market } => Computed {
            type_: condition::REGISTERED,
            status: false,
            reason: "StreamNotRegistered",
            message: format!(
                "not registered on the DataMarket at {market} yet: the publisher registers it when it starts"
            ),
        },
        Observation::Registered {
            stream_id,
            anchored_batches,
            last_root,
            active_subscribers,
            revenue,
        } => {
            status.stream_id = Some(stream_id.to_string());
            status.anchored_batches = Some(*anchored_batches as i64);
            status.last_root = last_root.map(|r| format!("{r}"));
            status.active_subscribers = Some(*active_subscribers as i64);
            status.revenue_wei = Some(revenue.to_string());
            Computed {
                type_: condition::REGISTERED,
                status: true,
                reason: "StreamRegistered",
                message: format!("stream {stream_id}: {anchored_batches} batch(es) anchored"),
            }
        }
    };
    let available = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let ready = if !registered.status {
        Computed {
            type_: condition::READY,
            status: false,
            reason: registered.reason,
            message: registered.message.clone(),
        }
    } else if available < 1 {
        Computed {
            type_: condition::READY,
            status: false,
            reason: "PublisherNotAvailable",
            message: "the publisher pod is not available".into(),
        }
    } else {
        Computed {
            type_: condition::READY,
            status: true,
            reason: "Publishing",
            message: "registered and publishing".into(),
        }
    };
    let is_ready = ready.status;
    Outcome {
        status,
        conditions: vec![registered, ready],
        ready: is_ready,
    }
}
