//! The standard deterministic-deployment proxy (Arachnid's CREATE2 factory) that every pair is
//! created through, and its keyless deployment on chains that lack it.
//!
//! The proxy is created by a presigned pre-EIP-155 transaction (no chain id in the signature),
//! so it lands at the same address on every chain. Anvil (1.7.1) accepts such unprotected
//! transactions by default, with or without `--disable-default-create2-deployer` (that flag
//! only stops anvil from pre-installing the proxy). geth refuses them over RPC unless started
//! with `--rpc.allow-unprotected-txs`; on such a chain the proxy must be installed by its
//! operator, and [`FactoryError::Refused`] says so.

use alloy::primitives::{Address, Bytes, U256, address, bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;

use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;

use crate::chain::{Chain, ChainError};

/// The one-time signer of [`DEPLOYER_TRANSACTION`] (its nonce must still be 0).
pub const DEPLOYER_SIGNER: Address = address!("3fab184622dc19b6109349b94811493bf2a45362");

/// gas price 100 gwei × gas limit 100,000: what the signer must hold.
pub const DEPLOYER_FUNDING_WEI: u128 = 10_000_000_000_000_000;

/// The presigned raw transaction that creates the proxy.
pub const DEPLOYER_TRANSACTION: Bytes = bytes!(
    "f8a58085174876e800830186a08080b853604580600e600039806000f350fe7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf31ba02222222222222222222222222222222222222222222222222222222222222222a02222222222222222222222222222222222222222222222222222222222222222"
);

/// Runtime code of the proxy.
pub const DEPLOYER_RUNTIME_CODE: Bytes = bytes!(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3"
);

/// Why the proxy could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(
        "the deterministic-deployment proxy is absent and cannot be installed: its signer {DEPLOYER_SIGNER} has already used nonce 0"
    )]
    SignerUsed,
    #[error(
        "the deterministic-deployment proxy is absent and the node refused its presigned (pre-EIP-155) transaction: {0}"
    )]
    Refused(String),
    #[error("code at {DETERMINISTIC_DEPLOYER} is not the deterministic-deployment proxy")]
    WrongCode,
}

/// Makes sure the proxy exists; returns whether this call installed it.
pub async fn ensure_factory(chain: &Chain) -> Result<bool, FactoryError> {
    let code = chain.code_at(DETERMINISTIC_DEPLOYER).await?;
    if !code.is_empty() {
        return if code == DEPLOYER_RUNTIME_CODE {
            Ok(false)
        } else {
            Err(FactoryError::WrongCode)
        };
    }
    let p = chain.provider();
    let nonce = chain
        .with_retry("eth_getTransactionCount", || {
            p.get_transaction_count(DEPLOYER_SIGNER).into_future()
        })
        .await?;
    if nonce > 0 {
        return Err(FactoryError::SignerUsed);
    }
    let balance = chain
        .with_retry("eth_getBalance", || {
            p.get_balance(DEPLOYER_SIGNER).into_future()
        })
        .await?;
    let needed = U256::from(DEPLOYER_FUNDING_WEI);
    if balance < needed {
        tracing::info!(signer = %DEPLOYER_SIGNER, "funding the deterministic-deployment proxy's signer");
        let fund = TransactionRequest::default()
            .to(DEPLOYER_SIGNER)
            .value(needed - balance);
        chain.send("fund proxy signer", fund, &[]).await?;
    }
    tracing::info!(proxy = %DETERMINISTIC_DEPLOYER, "installing the deterministic-deployment proxy");
    let sent = p.send_raw_transaction(&DEPLOYER_TRANSACTION).await;
    match sent {
        Ok(pending) => {
            // Another process may have sent the same transaction; the code check decides.
            let _ = pending
                .with_timeout(Some(std::time::Duration::from_secs(60)))
                .get_receipt()
                .await;
        }
        Err(e) => {
            // "already known" / "nonce too low": a concurrent installer won the race.
            if chain.code_at(DETERMINISTIC_DEPLOYER).await?.is_empty() {
                let msg = e.to_string();
                if !(msg.contains("already") || msg.contains("nonce")) {
                    return Err(FactoryError::Refused(msg));
                }
            }
        }
    }
    for _ in 0..50 {
        let code = chain.code_at(DETERMINISTIC_DEPLOYER).await?;
        if code == DEPLOYER_RUNTIME_CODE {
            return Ok(true);
        }
        if !code.is_empty() {
            return Err(FactoryError::WrongCode);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(FactoryError::Refused(
        "the transaction was accepted but no code appeared".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::TxEnvelope;
    use alloy::eips::Decodable2718;

    #[test]
    fn presigned_transaction_is_from_the_known_signer_and_creates_the_proxy() {
        let tx = TxEnvelope::decode_2718(&mut DEPLOYER_TRANSACTION.as_ref()).unwrap();
        let legacy = tx.as_legacy().expect("a legacy transaction");
        assert_eq!(
            legacy.tx().chain_id,
            None,
            "pre-EIP-155: valid on every chain"
        );
        let signer = legacy
            .signature()
            .recover_address_from_prehash(&legacy.signature_hash())
            .unwrap();
        assert_eq!(signer, DEPLOYER_SIGNER);
        assert_eq!(signer.create(0), DETERMINISTIC_DEPLOYER);
    }
}
