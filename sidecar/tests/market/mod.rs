//! Helpers of the DataMarket and stream tests: keys, funding, the registry, chain time.
#![allow(dead_code)]

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::{ChainConfig, Role};
use kontrakt_sidecar::chain::{Chain, ChainError};
use kontrakt_sidecar::enrollment::{EnrollmentReconciler, registry_artifact};
use kontrakt_sidecar::stream::market::market_artifact;

use crate::common::{Anvil, CHAIN_ID, fast_retry};

pub fn chain_config(anvil: &Anvil) -> ChainConfig {
    ChainConfig {
        rpc_url: anvil.url.clone(),
        chain_id: CHAIN_ID,
        retry: fast_retry(),
    }
}

pub async fn chain_for(anvil: &Anvil, key: &PrivateKeySigner) -> Chain {
    Chain::connect(&chain_config(anvil), key.clone())
        .await
        .unwrap()
}

pub fn dev_key(i: usize) -> PrivateKeySigner {
    crate::common::DEV_KEYS[i].parse().unwrap()
}

/// A fresh account holding 10 ether.
pub async fn funded(anvil: &Anvil, admin: &Chain) -> (PrivateKeySigner, Chain) {
    let key = PrivateKeySigner::random();
    let tx = TransactionRequest::default()
        .to(key.address())
        .value(U256::from(10u128.pow(19)));
    admin.send("fund", tx, &[]).await.unwrap();
    let chain = chain_for(anvil, &key).await;
    (key, chain)
}

/// The registry hosted by default/registry-host, administered by `admin`'s key, empty.
pub async fn deploy_registry(admin: &Chain) -> Address {
    let r = EnrollmentReconciler::new(admin.clone(), "default", "registry-host", vec![]);
    r.pass().await.unwrap();
    r.registry()
}

pub async fn enroll(admin: &Chain, registry: Address, account: Address, role: Role) {
    let tx = EnrollmentRegistry::new(registry, admin.provider())
        .enroll(account, role.number(), 0)
        .into_transaction_request();
    admin
        .send("enroll", tx, &[&registry_artifact().abi])
        .await
        .unwrap();
}

/// Sends a market transaction; the error names the revert.
pub async fn market_tx(
    chain: &Chain,
    what: &str,
    tx: TransactionRequest,
) -> Result<(), ChainError> {
    chain
        .send(what, tx, &[&market_artifact().abi])
        .await
        .map(|_| ())
}

/// The revert reason of a failed market transaction.
pub fn reverted(r: Result<(), ChainError>) -> String {
    match r {
        Err(ChainError::Reverted { reason, .. }) => reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

pub async fn advance_time(chain: &Chain, seconds: u64) {
    let p = chain.provider();
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .unwrap();
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
}

pub async fn chain_time(chain: &Chain) -> u64 {
    let block = chain
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap();
    block.header.timestamp
}
