//! The Solidity pair on a real anvil: deploy-if-absent, deterministic addresses, upgrade,
//! access control, the factory bootstrap, the nonce manager under load, and failure modes.

mod common;

use std::time::{Duration, Instant};

use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use common::{Anvil, DEV_KEYS, config, key_file};
use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;
use kontrakt_protocol::addresses::{PairSpec, pair_addresses};
use kontrakt_protocol::artifact::{Artifact, ArtifactError};
use kontrakt_protocol::bindings::{ContractDatabase, RecordStore};
use kontrakt_protocol::config::{DatabaseConfig, SidecarConfig};
use kontrakt_protocol::key::load_signer;
use kontrakt_sidecar::chain::{Chain, ChainError};
use kontrakt_sidecar::deploy::{DeployError, Pair};

async fn connect(config: &SidecarConfig) -> Chain {
    let key = load_signer(&config.signer.key_file).unwrap();
    Chain::connect(&config.chain, key).await.unwrap()
}

async fn nonce(chain: &Chain) -> u64 {
    chain
        .provider()
        .get_transaction_count(chain.signer())
        .await
        .unwrap()
}

async fn put(chain: &Chain, store: Address, id: u64, value: u64) -> Result<(), ChainError> {
    let tx = RecordStore::new(store, chain.provider())
        .put(
            U256::from(id),
            Address::repeat_byte(0xd1),
            U256::from(value),
            1,
        )
        .into_transaction_request();
    let abi = Artifact::builtin("RecordStore").unwrap().abi;
    let db = Artifact::contract_database().abi;
    chain.send("put", tx, &[&abi, &db]).await.map(|_| ())
}

#[tokio::test]
async fn deploys_the_pair_at_the_addresses_computed_without_a_chain() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "RecordStore", 1);
    let mut cfg = cfg;
    cfg.registry = Some(Address::repeat_byte(0xbe));
    let chain = connect(&cfg).await;

    // Offline first: the operator's view.
    let logic = Artifact::builtin("RecordStore").unwrap();
    let offline = pair_addresses(&PairSpec::from_config(&cfg, chain.signer(), &logic)).unwrap();

    let pair = Pair::from_config(&cfg, chain.signer()).unwrap();
    let outcome = pair.ensure(&chain).await.unwrap();
    assert!(outcome.database_created && outcome.logic_created && outcome.writer_switched);
    assert!(!outcome.factory_installed, "anvil pre-installs the proxy");
    assert_eq!(pair.plan.addresses, offline);

    let db_code = chain.code_at(offline.database).await.unwrap();
    assert_eq!(keccak256(&db_code), offline.database_code_hash);
    let logic_code = chain.code_at(offline.logic).await.unwrap();
    // The logic's immutables (database, registry) are patched in from immutableReferences.
    assert_eq!(offline.logic_code_hash, Some(keccak256(&logic_code)));
    let state = pair.state(&chain).await.unwrap();
    assert!(state.is_ready(&pair.plan), "{state:?}");
    assert_eq!(state.writer, offline.logic);
    assert_eq!(state.writer_version, 1);
    assert_eq!(state.database_admin, chain.signer());
}

#[tokio::test]
async fn deploying_twice_deploys_once() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "RecordStore", 1);
    let chain = connect(&cfg).await;
    let pair = Pair::from_config(&cfg, chain.signer()).unwrap();
    pair.ensure(&chain).await.unwrap();
    let after_first = nonce(&chain).await;
    assert_eq!(after_first, 3, "database, logic, setWriter");

    // A fresh process: new connection, new nonce manager.
    let chain2 = connect(&cfg).await;
    let outcome = Pair::from_config(&cfg, chain2.signer())
        .unwrap()
        .ensure(&chain2)
        .await
        .unwrap();
    assert_eq!(outcome, Default::default(), "nothing left to do");
    assert_eq!(nonce(&chain2).await, after_first, "no transaction sent");
}

#[tokio::test]
async fn two_concurrent_deployers_end_with_one_pair() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "RecordStore", 1);
    // Two replicas: same key, separate connections and nonce managers.
    let (a, b) = (connect(&cfg).await, connect(&cfg).await);
    let (pa, pb) = (
        Pair::from_config(&cfg, a.signer()).unwrap(),
        Pair::from_config(&cfg, b.signer()).unwrap(),
    );
    let (ra, rb) = tokio::join!(pa.ensure(&a), pb.ensure(&b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(pa.plan.addresses, pb.plan.addresses);
    // Each replica may rightly say it created a contract: with one key and the same
    // nonce both can sign the very same transaction. What must hold is on chain:
    // each contract was created by exactly one transaction.
    assert!(ra.database_created || rb.database_created, "{ra:?} {rb:?}");
    assert!(ra.logic_created || rb.logic_created, "{ra:?} {rb:?}");
    let addresses = &pa.plan.addresses;
    assert_eq!(
        creations(&a, addresses.database).await,
        1,
        "database creations"
    );
    assert_eq!(creations(&a, addresses.logic).await, 1, "logic creations");
    assert!(pa.state(&a).await.unwrap().is_ready(&pa.plan));
}

/// Transactions on chain in which the contract at `address` ran its constructor
/// (every pair contract's constructor logs `AdminTransferred(0, admin)`).
async fn creations(chain: &Chain, address: Address) -> usize {
    use alloy::eips::BlockNumberOrTag;
    let constructed = alloy::primitives::keccak256("AdminTransferred(address,address)");
    let latest = chain.provider().get_block_number().await.unwrap();
    let mut count = 0;
    for n in 0..=latest {
        let receipts = chain
            .provider()
            .get_block_receipts(BlockNumberOrTag::Number(n).into())
            .await
            .unwrap()
            .unwrap_or_default();
        count += receipts
            .iter()
            .filter(|r| {
                r.inner.logs().iter().any(|l| {
                    l.address() == address
                        && l.topics().first() == Some(&constructed)
                        && l.topics().get(1) == Some(&alloy::primitives::B256::ZERO)
                })
            })
            .count();
    }
    count
}

#[tokio::test]
async fn upgrade_keeps_the_data_and_locks_out_the_old_version() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let v1_cfg = config(&anvil.url, &key, "RecordStore", 1);
    let chain = connect(&v1_cfg).await;
    let v1 = Pair::from_config(&v1_cfg, chain.signer()).unwrap();
    v1.ensure(&chain).await.unwrap();
    put(&chain, v1.plan.addresses.logic, 1, 42).await.unwrap();

    let v2_cfg = config(&anvil.url, &key, "RecordStore", 2);
    let v2 = Pair::from_config(&v2_cfg, chain.signer()).unwrap();
    assert_eq!(v2.plan.addresses.database, v1.plan.addresses.database);
    assert_ne!(v2.plan.addresses.logic, v1.plan.addresses.logic);
    let outcome = v2.ensure(&chain).await.unwrap();
    assert!(outcome.logic_created && outcome.writer_switched && !outcome.database_created);

    let store2 = RecordStore::new(v2.plan.addresses.logic, chain.provider());
    assert_eq!(
        store2.get(U256::from(1)).call().await.unwrap().value,
        U256::from(42)
    );
    assert_eq!(store2.count().call().await.unwrap(), U256::from(1));

    let err = put(&chain, v1.plan.addresses.logic, 2, 7)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NotWriter"), "{err}");
    put(&chain, v2.plan.addresses.logic, 2, 7).await.unwrap();

    let state = v2.state(&chain).await.unwrap();
    assert!(state.is_ready(&v2.plan) && state.writer_version == 2);
    // v1's readiness follows: it is no longer the writer.
    assert!(!v1.state(&chain).await.unwrap().is_ready(&v1.plan));

    // v1's sidecar, restarted, must not switch the database back.
    let err = v1.ensure(&chain).await.unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::NewerWriter {
                current: 2,
                ours: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn only_the_admin_switches_versions_and_only_the_writer_writes() {
    let anvil = Anvil::spawn();
    let (_d0, admin_key) = key_file(DEV_KEYS[0]);
    let (_d1, other_key) = key_file(DEV_KEYS[1]);
    let cfg = config(&anvil.url, &admin_key, "RecordStore", 1);
    let admin = connect(&cfg).await;
    let pair = Pair::from_config(&cfg, admin.signer()).unwrap();
    pair.ensure(&admin).await.unwrap();
    let database = pair.plan.addresses.database;

    let other_cfg = config(&anvil.url, &other_key, "RecordStore", 2);
    let other = connect(&other_cfg).await;
    let db_abi = Artifact::contract_database().abi;
    let db = ContractDatabase::new(database, other.provider());

    // Direct: a non-admin setWriter reverts.
    let tx = db
        .setWriter(pair.plan.addresses.logic, 2)
        .into_transaction_request();
    let err = other
        .send("setWriter", tx, &[&db_abi])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NotAdmin"), "{err}");

    // Through the sidecar: an upgrade of someone else's database is refused before sending.
    let mut hijack = other_cfg.clone();
    hijack.database = DatabaseConfig::Existing { address: database };
    let err = Pair::from_config(&hijack, other.signer())
        .unwrap()
        .ensure(&other)
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::NotAdmin { .. }), "{err}");

    // An unauthorised write straight to the database reverts, from admin and stranger alike.
    for chain in [&admin, &other] {
        let db = ContractDatabase::new(database, chain.provider());
        let tx = db
            .setUint(keccak256("k"), U256::from(1))
            .into_transaction_request();
        let err = chain
            .send("setUint", tx, &[&db_abi])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("NotWriter"), "{err}");
    }
}

#[tokio::test]
async fn a_retired_logic_can_never_write_again() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let v1_cfg = config(&anvil.url, &key, "RecordStore", 1);
    let chain = connect(&v1_cfg).await;
    let v1 = Pair::from_config(&v1_cfg, chain.signer()).unwrap();
    v1.ensure(&chain).await.unwrap();
    let (v1_logic, database) = (v1.plan.addresses.logic, v1.plan.addresses.database);
    put(&chain, v1_logic, 1, 42).await.unwrap();

    let store = RecordStore::new(v1_logic, chain.provider());
    let abi = Artifact::builtin("RecordStore").unwrap().abi;
    let db_abi = Artifact::contract_database().abi;
    chain
        .send("retire", store.retire().into_transaction_request(), &[&abi])
        .await
        .unwrap();
    assert!(store.retired().call().await.unwrap());
    let db = ContractDatabase::new(database, chain.provider());
    assert!(db.isRetired(v1_logic).call().await.unwrap());
    assert!(db.writerRetired().call().await.unwrap());

    // The database refuses its writes; the data stays readable.
    let err = put(&chain, v1_logic, 2, 7).await.unwrap_err().to_string();
    assert!(err.contains("LogicIsRetired"), "{err}");
    assert_eq!(
        store.get(U256::from(1)).call().await.unwrap().value,
        U256::from(42)
    );
    let err = chain
        .send("retire", store.retire().into_transaction_request(), &[&abi])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ContractRetired"), "{err}");

    // v2 takes over and writes; v1 can never be made the writer again.
    let v2_cfg = config(&anvil.url, &key, "RecordStore", 2);
    let v2 = Pair::from_config(&v2_cfg, chain.signer()).unwrap();
    v2.ensure(&chain).await.unwrap();
    assert!(!db.writerRetired().call().await.unwrap());
    put(&chain, v2.plan.addresses.logic, 2, 7).await.unwrap();
    let tx = db.setWriter(v1_logic, 3).into_transaction_request();
    let err = chain
        .send("setWriter", tx, &[&db_abi])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("LogicIsRetired"), "{err}");
}

/// Sends `tx` and expects a revert that names `error`.
async fn expect_revert(chain: &Chain, tx: TransactionRequest, abi: &JsonAbi, error: &str) {
    let err = chain.send(error, tx, &[abi]).await.unwrap_err().to_string();
    assert!(err.contains(error), "{err}");
}

/// The two-step admin transfer (`TwoStepAdmin`), shared by the database and the logic.
#[tokio::test]
async fn the_admin_is_handed_over_in_two_steps() {
    let anvil = Anvil::spawn();
    let (_d0, admin_key) = key_file(DEV_KEYS[0]);
    let (_d1, next_key) = key_file(DEV_KEYS[1]);
    let cfg = config(&anvil.url, &admin_key, "RecordStore", 1);
    let admin = connect(&cfg).await;
    let pair = Pair::from_config(&cfg, admin.signer()).unwrap();
    pair.ensure(&admin).await.unwrap();
    let next = connect(&config(&anvil.url, &next_key, "RecordStore", 1)).await;
    let abi = Artifact::builtin("RecordStore").unwrap().abi;
    let db_abi = Artifact::contract_database().abi;

    // The database: only the pending admin accepts, and a zero `next` cancels.
    let db = ContractDatabase::new(pair.plan.addresses.database, admin.provider());
    let accept = || db.acceptAdmin().into_transaction_request();
    let transfer = |to| db.transferAdmin(to).into_transaction_request();
    expect_revert(&next, accept(), &db_abi, "NotPendingAdmin").await;
    admin
        .send("transfer", transfer(next.signer()), &[&db_abi])
        .await
        .unwrap();
    assert_eq!(db.pendingAdmin().call().await.unwrap(), next.signer());
    admin
        .send("cancel", transfer(Address::ZERO), &[&db_abi])
        .await
        .unwrap();
    expect_revert(&next, accept(), &db_abi, "NotPendingAdmin").await;
    admin
        .send("transfer", transfer(next.signer()), &[&db_abi])
        .await
        .unwrap();
    next.send("accept", accept(), &[&db_abi]).await.unwrap();
    assert_eq!(db.admin().call().await.unwrap(), next.signer());
    assert_eq!(db.pendingAdmin().call().await.unwrap(), Address::ZERO);
    expect_revert(&admin, transfer(admin.signer()), &db_abi, "NotAdmin").await;

    // The logic: the new admin can retire it (its admin and retired flag share a slot).
    let store = RecordStore::new(pair.plan.addresses.logic, admin.provider());
    let tx = store
        .transferAdmin(next.signer())
        .into_transaction_request();
    admin.send("transfer", tx, &[&abi]).await.unwrap();
    let tx = store.acceptAdmin().into_transaction_request();
    next.send("accept", tx, &[&abi]).await.unwrap();
    assert_eq!(store.admin().call().await.unwrap(), next.signer());
    let retire = || store.retire().into_transaction_request();
    expect_revert(&admin, retire(), &abi, "NotAdmin").await;
    next.send("retire", retire(), &[&abi]).await.unwrap();
    assert!(store.retired().call().await.unwrap());
    assert_eq!(store.admin().call().await.unwrap(), next.signer());
}

#[tokio::test]
async fn two_hundred_concurrent_transactions_from_one_key() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "RecordStore", 1);
    let chain = connect(&cfg).await;
    let start = nonce(&chain).await;
    let to = Address::repeat_byte(0x42);
    let sends = (0..200).map(|i| {
        let chain = chain.clone();
        tokio::spawn(async move {
            let tx = TransactionRequest::default()
                .to(to)
                .value(U256::from(i + 1));
            chain.send("transfer", tx, &[]).await
        })
    });
    let results = tokio::time::timeout(Duration::from_secs(90), futures::future::join_all(sends))
        .await
        .expect("200 transactions within 90s (each send gives up by itself after 60s)");
    for r in results {
        let receipt = r.unwrap().unwrap();
        assert!(receipt.status());
    }
    assert_eq!(nonce(&chain).await, start + 200, "no gaps, none stuck");
    let balance = chain.provider().get_balance(to).await.unwrap();
    assert_eq!(balance, U256::from(200 * 201 / 2));
}

/// The node forgets a transaction it accepted (anvil under concurrent load parks the key's
/// next nonce in its queue for good; a real mempool may evict it): the sender must replace it
/// with the same nonce instead of waiting out the receipt timeout with every later one stuck.
#[tokio::test]
async fn a_transaction_the_node_drops_is_replaced_with_the_same_nonce() {
    let anvil = Anvil::spawn_with(&["--no-mining"]);
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "RecordStore", 1);
    let chain = connect(&cfg).await;
    let to = Address::repeat_byte(0x43);
    let sender = chain.clone();
    let started = Instant::now();
    let send = tokio::spawn(async move {
        let tx = TransactionRequest::default().to(to).value(U256::from(7));
        sender.send("transfer", tx, &[]).await
    });
    // Accepted into the pool, then dropped by the node before any block is mined.
    let p = chain.provider();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = p.raw_request("txpool_status".into(), ()).await.unwrap();
        if status["pending"] != "0x0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transaction never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: serde_json::Value = p
        .raw_request("anvil_dropAllTransactions".into(), ())
        .await
        .unwrap();
    let _: serde_json::Value = p
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .unwrap();

    let receipt = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("replaced well before the 60s receipt timeout")
        .unwrap()
        .unwrap();
    assert!(receipt.status());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(nonce(&chain).await, 1, "the same nonce, once");
    assert_eq!(
        chain.provider().get_balance(to).await.unwrap(),
        U256::from(7)
    );
}

#[tokio::test]
async fn installs_the_factory_when_the_chain_lacks_it() {
    let anvil = Anvil::spawn_with(&["--disable-default-create2-deployer"]);
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let cfg = config(&anvil.url, &key, "Shipping", 1);
    let chain = connect(&cfg).await;
    assert!(
        chain
            .code_at(DETERMINISTIC_DEPLOYER)
            .await
            .unwrap()
            .is_empty()
    );
    let pair = Pair::from_config(&cfg, chain.signer()).unwrap();
    let outcome = pair.ensure(&chain).await.unwrap();
    assert!(outcome.factory_installed && outcome.database_created && outcome.logic_created);
    assert!(pair.state(&chain).await.unwrap().is_ready(&pair.plan));
    // Same addresses as on a chain that had the proxy all along.
    let logic = Artifact::builtin("Shipping").unwrap();
    let offline = pair_addresses(&PairSpec::from_config(&cfg, chain.signer(), &logic)).unwrap();
    assert_eq!(pair.plan.addresses, offline);
}

#[tokio::test]
async fn wrong_chain_id_names_both() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let mut cfg = config(&anvil.url, &key, "RecordStore", 1);
    cfg.chain.chain_id = 1;
    let err = Chain::connect(&cfg.chain, load_signer(&key).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::WrongChainId {
                expected: 1,
                actual: 31337,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("1") && msg.contains("31337"), "{msg}");
}

#[tokio::test]
async fn unreachable_rpc_fails_after_bounded_retries() {
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let url = format!("http://127.0.0.1:{}", common::free_port());
    let cfg = config(&url, &key, "RecordStore", 1);
    let started = Instant::now();
    let err = Chain::connect(&cfg.chain, load_signer(&key).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::Unreachable { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&url), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn artifact_whose_bytecode_does_not_match_its_abi_is_refused_before_deploying() {
    let dir = tempfile::tempdir().unwrap();
    let store: serde_json::Value =
        serde_json::from_str(include_str!("../contracts/out/RecordStore.json")).unwrap();
    let shipping: serde_json::Value =
        serde_json::from_str(include_str!("../contracts/out/Shipping.json")).unwrap();
    let mut forged = store.clone();
    forged["bytecode"] = shipping["bytecode"].clone();
    forged["deployedBytecode"] = shipping["deployedBytecode"].clone();
    let path = dir.path().join("Forged.json");
    std::fs::write(&path, forged.to_string()).unwrap();

    let (_kd, key) = key_file(DEV_KEYS[0]);
    let mut cfg = config("http://127.0.0.1:1", &key, "RecordStore", 1);
    cfg.contract.template = None;
    cfg.contract.artifact_file = Some(path);
    let err = Pair::from_config(&cfg, Address::repeat_byte(1)).unwrap_err();
    match err {
        DeployError::Artifact(ArtifactError::BytecodeAbiMismatch { functions, .. }) => {
            assert!(
                functions.iter().any(|f| f.starts_with("put(")),
                "{functions:?}"
            );
        }
        other => panic!("expected a bytecode/ABI mismatch, got {other}"),
    }
}
