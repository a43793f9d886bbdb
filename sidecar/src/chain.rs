//! The connection to the chain for one signing key: an HTTP provider, the key's single nonce
//! manager, bounded retries when the node is unreachable, and transaction sending that turns
//! reverts into readable errors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::TxEnvelope;
use alloy::eips::Encodable2718;
use alloy::json_abi::JsonAbi;
use alloy::network::{Ethereum, EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::fillers::NonceManager;
use alloy::providers::{DynProvider, Network, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::{RpcError, TransportError, TransportResult};
use tokio::sync::Mutex;

use kontrakt_protocol::config::{ChainConfig, RetryConfig};

/// How long a sent transaction may take to be mined before it counts as stuck.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a sent transaction may wait unmined before the node is asked whether it still
/// holds it as executable (doubling after each replacement).
const STALL_CHECK: Duration = Duration::from_secs(2);

/// How many times one transaction is re-submitted (same nonce, higher fees) when the node
/// has parked or dropped it.
const MAX_REPLACEMENTS: usize = 3;

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("chain.rpcUrl {0:?} is not a valid URL")]
    InvalidUrl(String),
    #[error("RPC {url} unreachable after {attempts} attempt(s): {last_error}")]
    Unreachable {
        url: String,
        attempts: u32,
        last_error: String,
    },
    #[error("wrong chain: config expects chain id {expected}, RPC {url} reports chain id {actual}")]
    WrongChainId {
        expected: u64,
        actual: u64,
        url: String,
    },
    #[error("{what} reverted: {reason}")]
    Reverted { what: String, reason: String },
    #[error("{what}: transaction {tx} not mined within {secs}s")]
    NotMined { what: String, tx: B256, secs: u64 },
    #[error("{what}: RPC error: {source}")]
    Rpc {
        what: String,
        source: TransportError,
    },
    #[error(transparent)]
    View(#[from] kontrakt_protocol::views::ViewError),
}

/// The single nonce manager of one key: hands out consecutive nonces to concurrent senders,
/// and resynchronises from the node's pending count after a failed submission so a hole in
/// the sequence can never leave later transactions stuck.
#[derive(Debug, Clone, Default)]
pub struct SignerNonces {
    next: Arc<Mutex<Option<u64>>>,
}

impl SignerNonces {
    /// Forget the local count; the next transaction asks the node.
    pub async fn resync(&self) {
        *self.next.lock().await = None;
    }
}

#[async_trait::async_trait]
impl NonceManager for SignerNonces {
    async fn get_next_nonce<P, N>(&self, provider: &P, address: Address) -> TransportResult<u64>
    where
        P: Provider<N>,
        N: Network,
    {
        let mut next = self.next.lock().await;
        let nonce = match *next {
            Some(n) => n,
            None => provider.get_transaction_count(address).pending().await?,
        };
        *next = Some(nonce + 1);
        Ok(nonce)
    }
}

/// A connected, chain-id-checked provider signing with one key. Clones share the provider and
/// the key's nonce manager: make one `Chain` per key per process and clone it.
#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
    wallet: EthereumWallet,
    signer: Address,
    chain_id: u64,
    nonces: SignerNonces,
    retry: RetryConfig,
    url: String,
}

impl Chain {
    /// Connects to `config.rpc_url` (retrying with backoff while unreachable) and checks that
    /// the node's chain id is `config.chain_id`.
    pub async fn connect(config: &ChainConfig, key: PrivateKeySigner) -> Result<Self, ChainError> {
        let url: alloy::transports::http::reqwest::Url = config
            .rpc_url
            .parse()
            .map_err(|_| ChainError::InvalidUrl(config.rpc_url.clone()))?;
        let signer = key.address();
        let nonces = SignerNonces::default();
        let wallet = EthereumWallet::from(key);
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_nonce_management(nonces.clone())
            .with_chain_id(config.chain_id)
            .wallet(wallet.clone())
            .connect_http(url)
            .erased();
        let chain = Self {
            provider,
            wallet,
            signer,
            chain_id: config.chain_id,
            nonces,
            retry: config.retry,
            url: config.rpc_url.clone(),
        };
        let actual = chain
            .with_retry("eth_chainId", || chain.provider.get_chain_id())
            .await?;
        if actual != config.chain_id {
            return Err(ChainError::WrongChainId {
                expected: config.chain_id,
                actual,
                url: config.rpc_url.clone(),
            });
        }
        Ok(chain)
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The signing key's address (also the admin of the pair).
    pub fn signer(&self) -> Address {
        self.signer
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn retry_config(&self) -> RetryConfig {
        self.retry
    }

    /// Runs `call` until it succeeds, fails with a non-transport error, or the retry budget
    /// is spent (then [`ChainError::Unreachable`]).
    pub async fn with_retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ChainError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = TransportResult<T>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(RpcError::Transport(e)) if attempt < self.retry.max_attempts => {
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(%what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "RPC unreachable, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(RpcError::Transport(e)) => {
                    return Err(ChainError::Unreachable {
                        url: self.url.clone(),
                        attempts: attempt,
                        last_error: e.to_string(),
                    });
                }
                Err(source) => {
                    return Err(ChainError::Rpc {
                        what: what.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Runtime code at `address` (empty when nothing is deployed there).
    pub async fn code_at(&self, address: Address) -> Result<Bytes, ChainError> {
        self.with_retry("eth_getCode", || {
            self.provider.get_code_at(address).into_future()
        })
        .await
    }

    /// A read-only call; reverts are decoded with `abis`' custom errors.
    pub async fn call(
        &self,
        what: &str,
        tx: TransactionRequest,
        abis: &[&JsonAbi],
    ) -> Result<Bytes, ChainError> {
        match self.provider.call(tx).await {
            Ok(out) => Ok(out),
            Err(e) => Err(self.classify(what, e, abis)),
        }
    }

    /// Signs, sends and waits for one transaction from the key. Gas and fees are estimated
    /// before a nonce is taken, so a reverting call or a failed estimate never consumes a
    /// nonce; the signed bytes are re-submitted unchanged while the node is unreachable (the
    /// nonce is never left as a hole because of a lost reply); a failed submission
    /// resynchronises the nonce manager, and a nonce taken meanwhile by another process using
    /// the same key (a replica) is retried with a fresh one. A transaction the node parks or
    /// drops is replaced (same nonce, higher fees) so later ones cannot stay stuck behind it.
    /// Returns the receipt of a successful transaction.
    pub async fn send(
        &self,
        what: &str,
        tx: TransactionRequest,
        abis: &[&JsonAbi],
    ) -> Result<TransactionReceipt, ChainError> {
        const NONCE_ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        let (request, envelope) = loop {
            let mut tx = tx.clone();
            tx.set_from(self.signer);
            tx.set_chain_id(self.chain_id);
            if tx.gas.is_none() {
                let gas = self
                    .provider
                    .estimate_gas(tx.clone())
                    .await
                    .map_err(|e| self.classify(what, e, abis))?;
                // Headroom: estimation runs against the latest state, the transaction may not.
                tx.set_gas_limit(gas + gas / 5);
            }
            if tx.gas_price.is_none() && tx.max_fee_per_gas.is_none() {
                let fees = self
                    .with_retry("eth_feeHistory", || self.provider.estimate_eip1559_fees())
                    .await?;
                tx.set_max_fee_per_gas(fees.max_fee_per_gas);
                tx.set_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            }
            // From here on the nonce is ours: it is either submitted or handed back (resync).
            let nonce = self
                .with_retry("eth_getTransactionCount", || {
                    self.nonces.get_next_nonce(&self.provider, self.signer)
                })
                .await?;
            tx.set_nonce(nonce);
            let envelope = match self.sign(what, tx.clone()).await {
                Ok(envelope) => envelope,
                Err(e) => {
                    self.nonces.resync().await;
                    return Err(e);
                }
            };
            match self.submit(&envelope).await {
                Ok(()) => break (tx, envelope),
                Err(e) => {
                    self.nonces.resync().await;
                    if is_nonce_conflict(&e) && attempt < NONCE_ATTEMPTS {
                        tracing::debug!(%what, nonce, attempt, error = %e, "nonce conflict, resending");
                        attempt += 1;
                        continue;
                    }
                    return Err(self.classify(what, e, abis));
                }
            }
        };
        let receipt = self.wait_receipt(what, request, envelope).await?;
        if !receipt.status() {
            return Err(ChainError::Reverted {
                what: what.to_owned(),
                reason: format!("transaction {} failed on chain", receipt.transaction_hash),
            });
        }
        Ok(receipt)
    }

    async fn sign(&self, what: &str, tx: TransactionRequest) -> Result<TxEnvelope, ChainError> {
        <TransactionRequest as NetworkTransactionBuilder<Ethereum>>::build(tx, &self.wallet)
            .await
            .map_err(|e| ChainError::Rpc {
                what: what.to_owned(),
                source: TransportError::local_usage_str(&format!(
                    "cannot sign the transaction: {e}"
                )),
            })
    }

    /// Submits signed bytes, re-submitting the same bytes while the node is unreachable: a
    /// reply lost after the node accepted them must not leave the nonce unused. The node
    /// answering "already known" means an earlier attempt got through.
    async fn submit(&self, envelope: &TxEnvelope) -> TransportResult<()> {
        let raw = envelope.encoded_2718();
        let mut attempt = 1;
        loop {
            match self.provider.send_raw_transaction(&raw).await {
                Ok(_) => return Ok(()),
                Err(e) if is_already_known(&e) => return Ok(()),
                Err(RpcError::Transport(e)) if attempt < self.retry.max_attempts => {
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(tx = %envelope.tx_hash(), attempt, error = %e, "submission failed, re-submitting the same transaction");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls for the receipt (polling, not block subscriptions: a transaction mined before a
    /// watcher registers must not be missed). A transaction that is the key's next nonce but
    /// that the node no longer counts as pending (parked in its queue, or dropped) blocks every
    /// later one: it is replaced by the same transaction with the same nonce and higher fees,
    /// and whichever version is mined answers.
    async fn wait_receipt(
        &self,
        what: &str,
        mut request: TransactionRequest,
        envelope: TxEnvelope,
    ) -> Result<TransactionReceipt, ChainError> {
        let start = tokio::time::Instant::now();
        let deadline = start + RECEIPT_TIMEOUT;
        let mut next_check = start + STALL_CHECK;
        let mut hashes = vec![*envelope.tx_hash()];
        let mut wait = Duration::from_millis(20);
        loop {
            for &hash in &hashes {
                let receipt = self
                    .with_retry("eth_getTransactionReceipt", || {
                        self.provider.get_transaction_receipt(hash)
                    })
                    .await?;
                if let Some(r) = receipt {
                    return Ok(r);
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ChainError::NotMined {
                    what: what.to_owned(),
                    tx: hashes[0],
                    secs: RECEIPT_TIMEOUT.as_secs(),
                });
            }
            if now >= next_check && hashes.len() <= MAX_REPLACEMENTS {
                if let Some(hash) = self.replace_if_stuck(what, &mut request).await? {
                    hashes.push(hash);
                }
                next_check = now + STALL_CHECK * hashes.len() as u32;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// Re-submits `request` with higher fees when its nonce is the key's next one on chain and
    /// the node's pending count does not include it. Returns the new transaction's hash.
    async fn replace_if_stuck(
        &self,
        what: &str,
        request: &mut TransactionRequest,
    ) -> Result<Option<B256>, ChainError> {
        let Some(nonce) = request.nonce else {
            return Ok(None);
        };
        let latest = self
            .with_retry("eth_getTransactionCount", || {
                self.provider
                    .get_transaction_count(self.signer)
                    .latest()
                    .into_future()
            })
            .await?;
        let pending = self
            .with_retry("eth_getTransactionCount", || {
                self.provider
                    .get_transaction_count(self.signer)
                    .pending()
                    .into_future()
            })
            .await?;
        if latest != nonce || pending > nonce {
            // Mined (the receipt poll will see it), or waiting behind others, or executable.
            return Ok(None);
        }
        let bump = |fee: u128| fee + fee / 4 + 1;
        if let Some(price) = request.gas_price {
            request.set_gas_price(bump(price));
        } else {
            request.set_max_fee_per_gas(bump(request.max_fee_per_gas.unwrap_or_default()));
            request.set_max_priority_fee_per_gas(bump(
                request.max_priority_fee_per_gas.unwrap_or_default(),
            ));
        }
        let envelope = self.sign(what, request.clone()).await?;
        let hash = *envelope.tx_hash();
        tracing::warn!(%what, nonce, latest, pending, %hash, "transaction parked or dropped by the node, replacing it with higher fees");
        match self.submit(&envelope).await {
            Ok(()) => Ok(Some(hash)),
            Err(e) => {
                // Mined meanwhile ("nonce too low") or not accepted: keep polling what was sent.
                tracing::warn!(%what, nonce, error = %e, "replacement not accepted");
                Ok(None)
            }
        }
    }

    fn classify(&self, what: &str, e: TransportError, abis: &[&JsonAbi]) -> ChainError {
        if let Some(payload) = e.as_error_resp() {
            if let Some(data) = payload.as_revert_data() {
                return ChainError::Reverted {
                    what: what.to_owned(),
                    reason: decode_revert(&data, abis),
                };
            }
            if payload.message.contains("revert") {
                return ChainError::Reverted {
                    what: what.to_owned(),
                    reason: payload.message.to_string(),
                };
            }
        }
        if let RpcError::Transport(t) = &e {
            return ChainError::Unreachable {
                url: self.url.clone(),
                attempts: 1,
                last_error: t.to_string(),
            };
        }
        ChainError::Rpc {
            what: what.to_owned(),
            source: e,
        }
    }
}

/// The node refused the nonce: someone else (another replica with the same key) used it.
fn is_nonce_conflict(e: &TransportError) -> bool {
    e.as_error_resp().is_some_and(|p| {
        let m = p.message.to_ascii_lowercase();
        m.contains("nonce too low") || m.contains("replacement transaction underpriced")
    })
}

/// The node already holds exactly these signed bytes (an earlier submission got through).
fn is_already_known(e: &TransportError) -> bool {
    e.as_error_resp().is_some_and(|p| {
        let m = p.message.to_ascii_lowercase();
        m.contains("already known") || m.contains("already imported")
    })
}

/// Names a revert by the custom errors of `abis` (`NotWriter(0x…)`), or `Error(string)`.
pub fn decode_revert(data: &[u8], abis: &[&JsonAbi]) -> String {
    use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
    if data.len() >= 4 {
        let selector = &data[..4];
        for abi in abis {
            for error in abi.errors() {
                if error.selector().as_slice() == selector {
                    let args = error
                        .abi_decode_input(&data[4..])
                        .map(|vals| vals.iter().map(format_value).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default();
                    return format!("{}({args})", error.name);
                }
            }
        }
        // Error(string)
        if selector == [0x08, 0xc3, 0x79, 0xa0]
            && let Ok(DynSolValue::String(s)) =
                alloy::dyn_abi::DynSolType::String.abi_decode(&data[4..])
        {
            return format!("Error({s:?})");
        }
    }
    format!("revert data 0x{}", alloy::hex::encode(data))
}

fn format_value(v: &alloy::dyn_abi::DynSolValue) -> String {
    use alloy::dyn_abi::DynSolValue;
    match v {
        DynSolValue::Address(a) => a.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::String(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}
