//! Value follows the data across upgrades, on a real anvil: AssetTracking's escrows are held
//! by the pair's ContractDatabase, so every payer gets exactly their own money back across
//! v1 → v2 → v3 and no replaced version is left holding anything; and the sidecar refuses to
//! switch away from a logic version that holds value itself (it would be stranded).
//! Time moves with anvil's `evm_increaseTime` (anvil only).

mod common;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use common::{Anvil, DEV_KEYS, Sidecar, config, key_file};
use kontrakt_protocol::key::load_signer;
use kontrakt_sidecar::chain::Chain;
use kontrakt_sidecar::deploy::{DeployError, Pair};

mod asset_tracking {
    alloy::sol!(
        #[sol(rpc)]
        AssetTracking,
        "contracts/out/AssetTracking.json"
    );
}
use asset_tracking::AssetTracking;

const ONE_ETH: u128 = 1_000_000_000_000_000_000;

#[tokio::test]
async fn escrows_survive_upgrades_and_each_payer_gets_their_own_money_back() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let admin = {
        let cfg = config(&anvil.url, &key, "AssetTracking", 1);
        Chain::connect(&cfg.chain, load_signer(&cfg.signer.key_file).unwrap())
            .await
            .unwrap()
    };
    let deploy = |version| {
        let cfg = config(&anvil.url, &key, "AssetTracking", version);
        Pair::from_config(&cfg, admin.signer()).unwrap()
    };
    let payers: Vec<PrivateKeySigner> = [DEV_KEYS[1], DEV_KEYS[2]]
        .iter()
        .map(|k| k.parse().unwrap())
        .collect();
    let retailer = Address::repeat_byte(0x7e);
    let escrow = async |logic: Address, payer: &PrivateKeySigner, container: B256| {
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(payer.clone()))
            .connect_http(anvil.url.parse().unwrap());
        AssetTracking::new(logic, provider)
            .registerAsset(container, retailer)
            .value(U256::from(ONE_ETH))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap()
    };

    // Payer A escrows 1 ETH in v1; the admin upgrades; payer B escrows 1 ETH in v2.
    let v1 = deploy(1);
    v1.ensure(&admin).await.unwrap();
    let (a, b) = (B256::repeat_byte(0xa), B256::repeat_byte(0xb));
    escrow(v1.plan.addresses.logic, &payers[0], a).await;
    let v2 = deploy(2);
    v2.ensure(&admin).await.unwrap();
    escrow(v2.plan.addresses.logic, &payers[1], b).await;
    let database = v1.plan.addresses.database;
    let balance = async |who: Address| admin.provider().get_balance(who).await.unwrap();
    assert_eq!(
        balance(database).await,
        U256::from(2 * ONE_ETH),
        "the database holds both"
    );
    assert_eq!(balance(v1.plan.addresses.logic).await, U256::ZERO);
    assert_eq!(balance(v2.plan.addresses.logic).await, U256::ZERO);

    // Upgrade again; the escrow period ends; each payer refunds through v3.
    let v3 = deploy(3);
    v3.ensure(&admin).await.unwrap();
    let _: serde_json::Value = admin
        .provider()
        .raw_request("evm_increaseTime".into(), (31 * 24 * 3600u64,))
        .await
        .unwrap();
    for (payer, container) in payers.iter().zip([a, b]) {
        let before = balance(payer.address()).await;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(payer.clone()))
            .connect_http(anvil.url.parse().unwrap());
        let receipt = AssetTracking::new(v3.plan.addresses.logic, provider)
            .refund(container)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "refund of {container}");
        let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        assert_eq!(
            balance(payer.address()).await,
            before + U256::from(ONE_ETH) - fee,
            "{} got exactly its own 1 ETH back",
            payer.address()
        );
    }
    for (what, address) in [
        ("database", database),
        ("v1", v1.plan.addresses.logic),
        ("v2", v2.plan.addresses.logic),
        ("v3", v3.plan.addresses.logic),
    ] {
        assert_eq!(balance(address).await, U256::ZERO, "{what} holds nothing");
    }

    // A logic that holds value itself (here: forced in by anvil) is not switched away from.
    let _: serde_json::Value = admin
        .provider()
        .raw_request(
            "anvil_setBalance".into(),
            (v3.plan.addresses.logic, U256::from(5)),
        )
        .await
        .unwrap();
    let err = deploy(4).ensure(&admin).await.unwrap_err();
    assert!(
        matches!(&err, DeployError::OldLogicHoldsValue { current: 3, ours: 4, wei, .. } if *wei == U256::from(5)),
        "{err}"
    );
    let writer = v3.state(&admin).await.unwrap();
    assert!(writer.is_ready(&v3.plan), "v3 stays the writer");

    // `serve` of version 4 waits (no crash loop) and says why on /readyz.
    let sidecar = Sidecar::spawn(config(&anvil.url, &key, "AssetTracking", 4));
    let url = format!("{}/readyz", sidecar.base);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let reason = body["reason"].as_str().unwrap_or_default();
            if reason.contains("holds 5 wei") {
                assert_eq!(status, 503);
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never named the held value"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(v3.state(&admin).await.unwrap().is_ready(&v3.plan));
    sidecar.stop().await;
}
