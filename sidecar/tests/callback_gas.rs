//! Committed callback gas, on a real anvil: a valid oracle answer can only be recorded as
//! Failed when the callback itself fails with the gas its request committed.
//!
//! An attestation is public once the sidecar broadcasts it and anyone may resend it with a
//! gas limit of their choosing. Over a callback whose nested call costs ~270k gas, `fulfil`
//! is sent at gas limits swept in small steps; at each one the answer must either be
//! recorded as Fulfilled or the whole transaction must revert (the request stays pending).
//! Each attempt runs from the same chain state (anvil's `evm_snapshot`/`evm_revert`: this
//! test runs on anvil only).

mod common;

use alloy::network::EthereumWallet;
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolError, SolValue};
use common::{Anvil, CHAIN_ID, DEV_KEYS};
use kontrakt_sidecar::oracle::attest;

mod costly {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        CostlyCallback,
        "contracts/out/CostlyCallback.json"
    );
}
use costly::CostlyCallback;

/// `OracleRequestStatus`.
const PENDING: u8 = 1;
const FULFILLED: u8 = 2;
const FAILED: u8 = 4;
/// The callback gas the request commits: room for the nested call's ~270k.
const CALLBACK_GAS: u32 = 400_000;

#[tokio::test]
async fn no_gas_limit_records_a_valid_answer_as_failed() {
    let anvil = Anvil::spawn();
    let oracle: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(oracle.clone()))
        .connect_http(anvil.url.parse().unwrap());
    let client = CostlyCallback::deploy(&provider, oracle.address())
        .await
        .expect("deploy CostlyCallback");

    // The request, and its committed gas in the event and in storage.
    let receipt = client
        .ask(CALLBACK_GAS)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let request = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<CostlyCallback::OracleRequest>().ok())
        .expect("an OracleRequest log")
        .inner
        .data;
    assert_eq!(request.callbackGas, CALLBACK_GAS);
    let id = request.id;
    let state = client.oracleRequestOf(id).call().await.unwrap();
    assert_eq!((state.status, state.callbackGas), (PENDING, CALLBACK_GAS));

    // A request cannot commit more than the maximum, nor nothing.
    for gas in [0, 5_000_001] {
        let refused = client.ask(gas).call().await;
        let selector = alloy::hex::encode(CostlyCallback::CallbackGasOutOfRange::SELECTOR);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains(&selector)),
            "callback gas {gas} must be refused with CallbackGasOutOfRange ({selector}): {refused:?}"
        );
    }

    // The valid answer, as the sidecar would attest it.
    let result = U256::from(42).abi_encode();
    let digest = attest::result_digest(CHAIN_ID, *client.address(), id, &result);
    let attestation = attest::sign(&oracle, digest).unwrap();
    let call = client
        .fulfil(id, result.into(), attestation)
        .into_transaction_request()
        .from(oracle.address());

    let (mut fulfilled, mut reverted) = (0, 0);
    for gas in (120_000u64..=700_000).step_by(5_000) {
        let snapshot: U256 = provider
            .raw_request("evm_snapshot".into(), ())
            .await
            .unwrap();
        let status = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            send_with_gas(&provider, call.clone(), gas),
        )
        .await
        .unwrap_or_else(|_| panic!("gas limit {gas}: no receipt within 20 s"));
        let after = client.oracleRequestOf(id).call().await.unwrap().status;
        match (status, after) {
            (true, FULFILLED) => {
                fulfilled += 1;
                assert_eq!(client.stored().call().await.unwrap(), U256::from(42));
            }
            (false, PENDING) => reverted += 1,
            (_, FAILED) => panic!("gas limit {gas}: a valid answer was recorded as Failed"),
            other => panic!("gas limit {gas}: unexpected outcome {other:?}"),
        }
        let reverted_ok: bool = provider
            .raw_request("evm_revert".into(), (snapshot,))
            .await
            .unwrap();
        assert!(reverted_ok, "evm_revert");
    }
    // The sweep crossed the threshold: both outcomes were seen.
    assert!(
        fulfilled > 0 && reverted > 0,
        "fulfilled {fulfilled}, reverted {reverted}"
    );
    // Below the committed gas the revert names why.
    let refused = provider.call(call.gas_limit(300_000)).await;
    let selector = alloy::hex::encode(CostlyCallback::InsufficientCallbackGas::SELECTOR);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains(&selector)),
        "a short gas limit reverts with InsufficientCallbackGas ({selector}): {refused:?}"
    );
}

/// Sends `call` with exactly `gas` and returns whether it succeeded (a reverted transaction
/// is still mined: its status is false). The nonce is read each time and the receipt polled
/// by hash: after `evm_revert` the chain's nonce and height are back where they were, behind
/// what a client's nonce cache and block watcher have seen.
async fn send_with_gas(provider: &impl Provider, call: TransactionRequest, gas: u64) -> bool {
    let from = call.from.expect("a sender");
    let nonce = provider.get_transaction_count(from).await.expect("nonce");
    let hash = *provider
        .send_transaction(call.gas_limit(gas).nonce(nonce))
        .await
        .expect("accepted by the node")
        .tx_hash();
    loop {
        if let Some(receipt) = provider
            .get_transaction_receipt(hash)
            .await
            .expect("eth_getTransactionReceipt")
        {
            return receipt.status();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
