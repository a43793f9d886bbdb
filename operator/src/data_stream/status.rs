//! DataStream status from the chain: the stream's id on the market (found by
//! the seller's address and the stream key, so it is never stored), anchored
//! batches, the last root, subscribers and revenue from the invoices.
//!
//! Whether the source delivers (`Receiving`) is read from the chain too: a
//! source that answers makes the publisher anchor a batch at least every
//! [`expected_gap`]. The publisher pod has no API credentials and the
//! operator does not call into pods, so the anchors — which every buyer can
//! check as well — are the observation. A publisher that keeps running while
//! its sensor is offline anchors nothing new, and the condition says so.

use crate::api::{DataStream, DataStreamStatus, StreamSource, condition};
use crate::context::Context;
use crate::reconcile::Computed;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use k8s_openapi::api::apps::v1::Deployment;
use kontrakt_protocol::views::market::{read_stream_stats, stream_id_of};

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
        /// The last anchor's block time, and now (unix seconds): the later of
        /// the latest block's time and the operator's clock (a chain mining
        /// only on demand, like a dev chain, has no new block while idle).
        last_anchored_at: Option<u64>,
        chain_time: u64,
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
        let id = stream_id_of(&provider, market, seller, key, at)
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
            last_anchored_at: stats.last_anchored_at,
            chain_time: stats.chain_time.max(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
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

/// Slack for sealing, sending and mining an anchor.
const ANCHOR_SLACK_SECS: u64 = 10;

/// The longest gap between two anchors while the source delivers: an HTTP
/// source gives a message per interval, so a batch fills after `batchSize`
/// intervals or is sealed `maxDelay` after its first message; an MQTT topic
/// has no rate, so only `maxDelay` after a message bounds it.
pub fn expected_gap(ds: &DataStream) -> u64 {
    let batch = u64::try_from(ds.spec.integrity.batch_size)
        .unwrap_or(1)
        .max(1);
    let delay = u64::try_from(ds.spec.integrity.max_delay_seconds)
        .unwrap_or(1)
        .max(1);
    match &ds.spec.source {
        StreamSource::Http(h) => {
            let interval = u64::try_from(h.interval_seconds).unwrap_or(1).max(1);
            (batch.saturating_mul(interval)).min(delay + interval)
        }
        StreamSource::Mqtt(_) => delay,
    }
}

/// No anchor for longer than this (seconds) and the source counts as silent.
pub fn silence_after(ds: &DataStream) -> u64 {
    2 * expected_gap(ds) + ANCHOR_SLACK_SECS
}

fn receiving(ds: &DataStream, last_anchored_at: Option<u64>, chain_time: u64) -> Computed {
    let limit = silence_after(ds);
    let what = match &ds.spec.source {
        StreamSource::Http(h) => format!("the sensor at {}", h.url),
        StreamSource::Mqtt(m) => format!("topic {:?} on {}", m.topic, m.broker_url),
    };
    match last_anchored_at {
        None => Computed {
            type_: condition::RECEIVING,
            status: false,
            reason: "NoBatchYet",
            message: format!("no batch anchored yet from {what}"),
        },
        Some(at) if chain_time.saturating_sub(at) > limit => Computed {
            type_: condition::RECEIVING,
            status: false,
            reason: "SourceSilent",
            message: format!(
                "no batch anchored for {}s (expected at least one every {}s): {what} sends nothing — offline? The publisher keeps running and anchors again when it answers",
                chain_time.saturating_sub(at),
                expected_gap(ds)
            ),
        },
        Some(at) => Computed {
            type_: condition::RECEIVING,
            status: true,
            reason: "BatchesAnchored",
            message: format!(
                "last batch anchored {}s ago from {what}",
                chain_time.saturating_sub(at)
            ),
        },
    }
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
            last_anchored_at,
            active_subscribers,
            revenue,
            ..
        } => {
            status.stream_id = Some(stream_id.to_string());
            status.last_anchored_at = last_anchored_at
                .and_then(|t| i64::try_from(t).ok())
                .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t).ok())
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
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
    // Ready says the stream is sold and served (anchored messages stay
    // fetchable while the source is silent); Receiving says whether new data
    // arrives.
    let mut conditions = vec![registered];
    if let Observation::Registered {
        last_anchored_at,
        chain_time,
        ..
    } = o
    {
        conditions.push(receiving(ds, *last_anchored_at, *chain_time));
    }
    conditions.push(ready);
    Outcome {
        status,
        conditions,
        ready: is_ready,
    }
}
