//! The buyer's side of a stream: subscribe and pay, fetch from the publisher with signed
//! requests, verify every message's proof against the root anchored on chain, rate.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;

use super::market::market_artifact;
use super::merkle;
use super::publisher::unix_now;
use super::server::{MessagesPage, StreamDenied};
use crate::access::sign_request;
use crate::chain::{Chain, ChainError};
use kontrakt_protocol::bindings::DataMarket;

/// What went wrong for the buyer.
#[derive(Debug, thiserror::Error)]
pub enum BuyerError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("DataMarket {market}: {what}: {reason}")]
    Read {
        market: Address,
        what: String,
        reason: String,
    },
    #[error("publisher {url}: {reason}")]
    Publisher { url: String, reason: String },
    #[error("publisher {url} refused with {status}: {denied:?}")]
    Refused {
        url: String,
        status: u16,
        denied: StreamDenied,
    },
    #[error(
        "message {index} of stream {stream_id} does not match the root of batch {batch} anchored on chain: tampered or forged"
    )]
    Tampered {
        stream_id: U256,
        index: u64,
        batch: u64,
    },
    #[error("batch {batch} of stream {stream_id} is not anchored on chain")]
    NotAnchored { stream_id: U256, batch: u64 },
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// A message whose proof checked out against the on-chain root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMessage {
    pub index: u64,
    pub batch: u64,
    pub root: B256,
    pub data: Bytes,
}

/// A subscription just paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub stream_id: U256,
    pub paid_wei: U256,
    pub access_until: u64,
}

/// A buyer: one key, one market.
#[derive(Debug, Clone)]
pub struct Buyer {
    chain: Chain,
    key: PrivateKeySigner,
    market: Address,
    http: reqwest::Client,
}

impl Buyer {
    /// `chain` must sign with `key`.
    pub fn new(chain: Chain, key: PrivateKeySigner, market: Address) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a static client configuration");
        Self {
            chain,
            key,
            market,
            http,
        }
    }

    pub fn account(&self) -> Address {
        self.key.address()
    }

    fn read_error(&self, what: String) -> impl Fn(alloy::contract::Error) -> BuyerError {
        let market = self.market;
        move |e| BuyerError::Read {
            market,
            what: what.clone(),
            reason: e.to_string(),
        }
    }

    /// Pays `pricePerSecond × seconds` for access (extends a running subscription).
    pub async fn subscribe(
        &self,
        stream_id: U256,
        seconds: u64,
    ) -> Result<Subscription, BuyerError> {
        let market = DataMarket::new(self.market, self.chain.provider());
        let terms = market
            .streamOf(stream_id)
            .call()
            .await
            .map_err(self.read_error(format!("streamOf({stream_id})")))?;
        let paid = terms.pricePerSecond * U256::from(seconds);
        self.pay(stream_id, seconds, paid).await?;
        let access_until = market
            .accessUntil(stream_id, self.account())
            .call()
            .await
            .map_err(self.read_error(format!("accessUntil({stream_id})")))?;
        Ok(Subscription {
            stream_id,
            paid_wei: paid,
            access_until,
        })
    }

    /// Sends `subscribe(streamId, seconds)` with exactly `value` (the contract refuses a
    /// wrong amount or a too short duration).
    pub async fn pay(&self, stream_id: U256, seconds: u64, value: U256) -> Result<(), BuyerError> {
        let tx = DataMarket::new(self.market, self.chain.provider())
            .subscribe(stream_id, seconds)
            .value(value)
            .into_transaction_request();
        self.chain
            .send(
                &format!("subscribe(stream {stream_id}, {seconds}s)"),
                tx,
                &[&market_artifact().abi],
            )
            .await?;
        Ok(())
    }

    /// One page from the publisher at `publisher` (base URL), unverified.
    pub async fn fetch(
        &self,
        publisher: &str,
        stream_id: U256,
        from: u64,
    ) -> Result<MessagesPage, BuyerError> {
        let path = format!("/streams/{stream_id}/messages?from={from}");
        let url = format!("{}{path}", publisher.trim_end_matches('/'));
        let headers = sign_request(&self.key, "GET", &path, unix_now())
            .map_err(|e| BuyerError::Sign(e.to_string()))?;
        let mut request = self.http.get(&url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let publisher_error = |reason: String| BuyerError::Publisher {
            url: url.clone(),
            reason,
        };
        let response = request
            .send()
            .await
            .map_err(|e| publisher_error(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| publisher_error(e.to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<StreamDenied>(&body) {
                Ok(denied) => BuyerError::Refused {
                    url,
                    status: status.as_u16(),
                    denied,
                },
                Err(_) => {
                    publisher_error(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
                }
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| publisher_error(format!("not a messages page: {e}")))
    }

    /// Checks every message of `page` against the root of its batch on chain.
    pub async fn verify(&self, page: &MessagesPage) -> Result<Vec<VerifiedMessage>, BuyerError> {
        let market = DataMarket::new(self.market, self.chain.provider());
        let mut roots: HashMap<u64, B256> = HashMap::new();
        let mut out = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            let root = match roots.get(&m.batch) {
                Some(r) => *r,
                None => {
                    let b = market
                        .batchOf(page.stream_id, m.batch)
                        .call()
                        .await
                        .map_err(
                            self.read_error(format!("batchOf({}, {})", page.stream_id, m.batch)),
                        )?;
                    if b.root.is_zero() {
                        return Err(BuyerError::NotAnchored {
                            stream_id: page.stream_id,
                            batch: m.batch,
                        });
                    }
                    roots.insert(m.batch, b.root);
                    b.root
                }
            };
            if !merkle::verify(root, m.index, &m.data, &m.proof) {
                return Err(BuyerError::Tampered {
                    stream_id: page.stream_id,
                    index: m.index,
                    batch: m.batch,
                });
            }
            out.push(VerifiedMessage {
                index: m.index,
                batch: m.batch,
                root,
                data: m.data.clone(),
            });
        }
        Ok(out)
    }

    /// [`Self::fetch`] then [`Self::verify`].
    pub async fn fetch_verified(
        &self,
        publisher: &str,
        stream_id: U256,
        from: u64,
    ) -> Result<(Vec<VerifiedMessage>, u64), BuyerError> {
        let page = self.fetch(publisher, stream_id, from).await?;
        let verified = self.verify(&page).await?;
        Ok((verified, page.next))
    }

    /// Rates the other side of a finished subscription (1–5).
    pub async fn rate(
        &self,
        stream_id: U256,
        counterparty: Address,
        score: u8,
    ) -> Result<(), BuyerError> {
        let tx = DataMarket::new(self.market, self.chain.provider())
            .rate(stream_id, counterparty, score)
            .into_transaction_request();
        self.chain
            .send(
                &format!("rate(stream {stream_id}, {counterparty}, {score})"),
                tx,
                &[&market_artifact().abi],
            )
            .await?;
        Ok(())
    }
}
