//! The publisher's HTTP API: `/healthz`, `/readyz`, `/status` (JSON), `/metrics` (Prometheus
//! text) and, for subscribers, `GET /streams/{id}/messages?from=N&limit=M`.
//!
//! Only messages of anchored batches are served, each with its batch number and Merkle proof,
//! so every message a subscriber gets can be verified against the root on chain right away;
//! `pendingMessages` says how many are still waiting for their batch to be anchored.
//!
//! A subscriber signs each request with the scheme of [`crate::access`]; it is served while
//! `hasAccess(streamId, account)` holds on the market and, with a registry, the account is
//! enrolled as `Subscriber`. Otherwise 403 with a JSON reason (`NotSubscribed`, `Expired`,
//! `NotEnrolled`); a missing or bad signature is 401.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy::primitives::{Address, Bytes, U256};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::merkle::ProofStep;
use super::publisher::{Stream, unix_now};
use crate::access::{Denied, verify_signature};
use crate::chain::Chain;
use kontrakt_protocol::bindings::DataMarket;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::Role;

/// Most messages one request returns.
pub const MAX_PAGE: u64 = 1000;

/// One message with what is needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamMessage {
    /// Position in the stream (from 0).
    pub index: u64,
    /// The anchored batch holding it.
    pub batch: u64,
    /// The message bytes exactly as ingested (hex).
    pub data: Bytes,
    /// Siblings from the leaf up (see [`super::merkle`]).
    pub proof: Vec<ProofStep>,
}

/// A page of messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesPage {
    pub stream_id: U256,
    pub messages: Vec<StreamMessage>,
    /// The `from` of the next page.
    pub next: u64,
    /// Messages ingested but not yet in an anchored batch.
    pub pending_messages: u64,
}

/// Why a subscriber is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all_fields = "camelCase")]
pub enum StreamDenied {
    /// 401.
    Unsigned { reason: String },
    /// 401.
    BadSignature { reason: String },
    /// 403: never subscribed.
    NotSubscribed { account: Address, stream_id: U256 },
    /// 403: the paid access ended.
    Expired {
        account: Address,
        stream_id: U256,
        access_until: u64,
    },
    /// 403: the registry does not enroll the account as Subscriber.
    NotEnrolled {
        account: Address,
        registry: Address,
        role: Role,
    },
    /// 404.
    UnknownStream { stream_id: String },
    /// 503: the chain cannot be asked right now.
    ChainUnavailable { reason: String },
}

impl StreamDenied {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned { .. } | Self::BadSignature { .. } => StatusCode::UNAUTHORIZED,
            Self::NotSubscribed { .. } | Self::Expired { .. } | Self::NotEnrolled { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::UnknownStream { .. } => StatusCode::NOT_FOUND,
            Self::ChainUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for StreamDenied {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

struct Api {
    stream: Arc<Stream>,
    chain: Chain,
}

/// The publisher's routes.
pub fn router(stream: Arc<Stream>, chain: Chain) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/streams/{id}/messages", get(messages))
        .with_state(Arc::new(Api { stream, chain }))
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if api.stream.ready.load(Ordering::Relaxed) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

async fn status(State(api): State<Arc<Api>>) -> Json<super::publisher::StatusReport> {
    Json(api.stream.status())
}

async fn metrics(State(api): State<Arc<Api>>) -> String {
    let s = api.stream.status();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "kontrakt_stream_ingested_total",
        "counter",
        "Messages accepted from the source.",
        s.ingested,
    );
    metric(
        "kontrakt_stream_malformed_total",
        "counter",
        "Source messages rejected as not JSON (never anchored).",
        s.malformed,
    );
    metric(
        "kontrakt_stream_source_errors_total",
        "counter",
        "Failed polls or broker connections.",
        s.source_errors,
    );
    metric(
        "kontrakt_stream_anchored_batches",
        "gauge",
        "Batches whose root is anchored.",
        s.anchored_batches,
    );
    metric(
        "kontrakt_stream_anchored_messages",
        "gauge",
        "Messages in anchored batches.",
        s.anchored_messages,
    );
    metric(
        "kontrakt_stream_pending_messages",
        "gauge",
        "Messages not yet in an anchored batch.",
        s.pending_messages,
    );
    metric(
        "kontrakt_stream_source_online",
        "gauge",
        "1 while the source answers.",
        u64::from(s.source.online),
    );
    metric(
        "kontrakt_stream_source_offline_since_seconds",
        "gauge",
        "Unix time since when the source fails (0: online).",
        s.source.offline_since.unwrap_or(0),
    );
    out
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    from: u64,
    limit: Option<u64>,
}

async fn messages(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<MessagesPage>, StreamDenied> {
    let stream = &api.stream;
    if id.parse::<U256>().ok() != Some(stream.stream_id) {
        return Err(StreamDenied::UnknownStream { stream_id: id });
    }
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let account =
        verify_signature(&headers, &method, path_and_query, unix_now()).map_err(|d| match d {
            Denied::BadSignature { reason } => StreamDenied::BadSignature { reason },
            Denied::Unsigned { reason } => StreamDenied::Unsigned { reason },
            // verify_signature answers only the two above; any other stays a 401.
            other => StreamDenied::Unsigned {
                reason: format!("{other:?}"),
            },
        })?;
    check_access(&api.chain, stream, account).await?;
    let limit = page.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let log = stream.log();
    let anchored_end = log
        .batches()
        .iter()
        .take_while(|b| b.number <= log.anchored_upto())
        .last()
        .map_or(0, |b| b.first + u64::from(b.count));
    let end = anchored_end.min(page.from.saturating_add(limit));
    let mut out = Vec::new();
    let mut tree: Option<(u64, super::merkle::Tree)> = None;
    for index in page.from..end {
        let batch = *log.batch_of(index).expect("below the anchored end");
        if tree.as_ref().is_none_or(|(n, _)| *n != batch.number) {
            tree = Some((batch.number, log.tree(&batch)));
        }
        let (_, t) = tree.as_ref().expect("just built");
        let data = log
            .read(index)
            .map_err(|e| StreamDenied::ChainUnavailable {
                reason: e.to_string(),
            })?
            .expect("below the log's end");
        out.push(StreamMessage {
            index,
            batch: batch.number,
            data: data.into(),
            proof: t
                .proof((index - batch.first) as usize)
                .expect("inside the batch"),
        });
    }
    Ok(Json(MessagesPage {
        stream_id: stream.stream_id,
        messages: out,
        next: end.max(page.from),
        pending_messages: log.len() - anchored_end,
    }))
}

/// Paid, unexpired access on the market and, with a registry, enrollment as Subscriber.
async fn check_access(
    chain: &Chain,
    stream: &Stream,
    account: Address,
) -> Result<(), StreamDenied> {
    let unavailable = |e: alloy::contract::Error| StreamDenied::ChainUnavailable {
        reason: e.to_string(),
    };
    let market = DataMarket::new(stream.market, chain.provider());
    if !market
        .hasAccess(stream.stream_id, account)
        .call()
        .await
        .map_err(unavailable)?
    {
        let until = market
            .accessUntil(stream.stream_id, account)
            .call()
            .await
            .map_err(unavailable)?;
        return Err(if until == 0 {
            StreamDenied::NotSubscribed {
                account,
                stream_id: stream.stream_id,
            }
        } else {
            StreamDenied::Expired {
                account,
                stream_id: stream.stream_id,
                access_until: until,
            }
        });
    }
    if let Some(registry) = stream.registry {
        let enrolled = EnrollmentRegistry::new(registry, chain.provider())
            .isEnrolled(account, Role::Subscriber.number())
            .call()
            .await
            .map_err(unavailable)?;
        if !enrolled {
            return Err(StreamDenied::NotEnrolled {
                account,
                registry,
                role: Role::Subscriber,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_reason_and_status() {
        let expired = StreamDenied::Expired {
            account: Address::repeat_byte(1),
            stream_id: U256::from(7),
            access_until: 1_700_000_000,
        };
        let body = serde_json::to_value(&expired).unwrap();
        assert_eq!(body["error"], "Expired");
        assert_eq!(body["accessUntil"], 1_700_000_000u64);
        assert_eq!(expired.status(), StatusCode::FORBIDDEN);
        let back: StreamDenied = serde_json::from_value(body).unwrap();
        assert_eq!(back, expired);
        for (denied, code) in [
            (
                StreamDenied::NotSubscribed {
                    account: Address::ZERO,
                    stream_id: U256::from(1),
                },
                403,
            ),
            (
                StreamDenied::NotEnrolled {
                    account: Address::ZERO,
                    registry: Address::ZERO,
                    role: Role::Subscriber,
                },
                403,
            ),
            (StreamDenied::Unsigned { reason: "x".into() }, 401),
            (StreamDenied::BadSignature { reason: "x".into() }, 401),
            (
                StreamDenied::UnknownStream {
                    stream_id: "9".into(),
                },
                404,
            ),
            (StreamDenied::ChainUnavailable { reason: "x".into() }, 503),
        ] {
            assert_eq!(denied.into_response().status().as_u16(), code);
        }
    }
}
