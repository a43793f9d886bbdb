//! The Shipping sample end to end on the real node: the chart-installed
//! operator's Deployment and the sidecar pods it renders run as real
//! containers of kontrakt's images (`Stack::start_on_real_node`): apply → Ready with the pair on chain → a
//! shipment written through version 1 → bump `contract.version` → version 2
//! is the database's writer and reads the shipment → delete → the logic is
//! retired on chain, the finalizer is gone, the children are garbage-collected.
//!
//! The sample's `accessPolicyRef` is left out (AccessPolicy has no controller
//! in this flow yet), and its chain URL is the test's anvil.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kontrakt_e2e::{
    real_node::RealNode,
    stack::{Stack, assert_not_refused, assert_operator_restarts},
};
use kontrakt_operator::api::SmartContractService;
use kontrakt_protocol::bindings::{ContractDatabase, KontraktContract};
use kontrakt_sidecar::devchain::DEV_KEYS;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use std::time::Duration;

use kontrakt_e2e::contracts::Shipping;

const NAME: &str = "shipping";

/// The sample as a user would apply it, pointed at `rpc_url`, at `version`.
fn sample(rpc_url: &str, version: i64) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/shipping.yaml");
    let text = std::fs::read_to_string(path).expect("e2e/samples/shipping.yaml");
    let mut scs: serde_json::Value = serde_yaml::from_str(&text).expect("the sample parses");
    let spec = scs["spec"].as_object_mut().expect("spec");
    spec.remove("accessPolicyRef");
    spec.insert(
        "chain".into(),
        serde_json::json!({ "rpcUrl": rpc_url, "chainId": 31337 }),
    );
    spec.get_mut("contract").expect("spec.contract")["version"] = version.into();
    scs
}

/// `kubectl apply --server-side` of the sample.
async fn apply(services: &Api<SmartContractService>, scs: &serde_json::Value) {
    services
        .patch(NAME, &PatchParams::apply("e2e-user"), &Patch::Apply(scs))
        .await
        .expect("server-side apply of the sample");
}

fn addresses(s: &SmartContractService) -> (Address, Address) {
    let st = s.status.as_ref().expect("status");
    let parse = |a: &Option<String>, what: &str| -> Address {
        a.as_deref()
            .unwrap_or_else(|| panic!("status.{what} is missing"))
            .parse()
            .unwrap_or_else(|e| panic!("status.{what}: {e}"))
    };
    (
        parse(&st.contract_address, "contractAddress"),
        parse(&st.database_address, "databaseAddress"),
    )
}

/// Names of the objects labelled as the service's children, by kind.
async fn children(client: &Client, ns: &str) -> Vec<String> {
    let lp = ListParams::default().labels(&format!("kontrakt.dev/service={NAME}"));
    let mut found = Vec::new();
    macro_rules! list {
        ($kind:ty, $label:expr) => {
            for o in Api::<$kind>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .unwrap_or_else(|e| panic!("list {}: {e}", $label))
                .items
            {
                found.push(format!(
                    "{} {}",
                    $label,
                    o.metadata.name.unwrap_or_default()
                ));
            }
        };
    }
    list!(Deployment, "Deployment");
    list!(ConfigMap, "ConfigMap");
    list!(Service, "Service");
    list!(ServiceAccount, "ServiceAccount");
    list!(NetworkPolicy, "NetworkPolicy");
    list!(Pod, "Pod");
    found
}

#[tokio::test]
async fn the_shipping_sample_deploys_upgrades_keeps_its_data_and_retires() {
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain listens there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("shipping-flow", &[], &node).await;
    // The Secret the sample names, holding anvil's first (public) development key.
    stack
        .create_secret("anvil-dev-key", "privateKey", DEV_KEYS[0])
        .await;
    let admin: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let services = stack.services();

    // Apply → Ready, with the pair on chain where the status says.
    apply(&services, &sample(&anvil.url, 1)).await;
    let started = std::time::Instant::now();
    let v1 = stack.wait_ready(NAME, Duration::from_secs(120)).await;
    eprintln!("[{:?}] Ready (version 1)", started.elapsed());
    let (logic1, database) = addresses(&v1);
    let status = v1.status.clone().unwrap();
    assert_eq!(status.version, Some(1));
    assert_eq!(status.chain_id, Some(31337));
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    let logic_code = provider.get_code_at(logic1).await.unwrap();
    assert!(!logic_code.is_empty(), "no code at the logic {logic1}");
    assert!(
        !provider.get_code_at(database).await.unwrap().is_empty(),
        "no code at the database {database}"
    );
    assert_eq!(
        status.code_hash.as_deref(),
        Some(format!("{}", keccak256(&logic_code)).as_str()),
        "status.codeHash is the hash of the code at the logic address"
    );
    let db = ContractDatabase::new(database, &provider);
    assert_eq!(
        db.writer().call().await.unwrap(),
        logic1,
        "v1 writes the database"
    );
    assert_eq!(db.writerVersion().call().await.unwrap(), 1);
    assert_eq!(
        db.admin().call().await.unwrap(),
        admin.address(),
        "the signer administers the database"
    );
    assert_eq!(
        KontraktContract::new(logic1, &provider)
            .database()
            .call()
            .await
            .unwrap(),
        database,
        "the logic uses the database"
    );

    // A shipment written through version 1, by a supplier (anvil's second account).
    let supplier: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
    let receiver = DEV_KEYS[2].parse::<PrivateKeySigner>().unwrap().address();
    let as_supplier = ProviderBuilder::new()
        .wallet(EthereumWallet::from(supplier.clone()))
        .connect_http(anvil.url.parse().unwrap());
    let shipment = keccak256("shipment-before-the-upgrade");
    let receipt = Shipping::new(logic1, &as_supplier)
        .createShipment(shipment, receiver, "VerticalPump".into(), U256::from(3))
        .send()
        .await
        .expect("createShipment through v1")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status(), "createShipment through v1 succeeded");

    // Bump the version: the pods roll, the new sidecar deploys v2 and switches the writer.
    apply(&services, &sample(&anvil.url, 2)).await;
    let v2 = stack
        .wait_for("Ready with version 2", Duration::from_secs(150), || async {
            let s = services.get(NAME).await.ok()?;
            let st = s.status.as_ref()?;
            (st.version == Some(2) && kontrakt_e2e::stack::is_ready(&s)).then_some(s)
        })
        .await;
    eprintln!("[{:?}] Ready (version 2)", started.elapsed());
    let (logic2, database2) = addresses(&v2);
    assert_ne!(logic2, logic1, "version 2 is a new logic contract");
    assert_eq!(database2, database, "the same database");
    assert_eq!(
        db.writer().call().await.unwrap(),
        logic2,
        "the database writer switched to v2"
    );
    assert_eq!(db.writerVersion().call().await.unwrap(), 2);

    // The data written through v1 is read through v2.
    let shipping2 = Shipping::new(logic2, &provider);
    let kept = shipping2
        .shipmentOf(shipment)
        .call()
        .await
        .expect("the v1 shipment through v2");
    assert_eq!(kept.supplier, supplier.address());
    assert_eq!(kept.receiver, receiver);
    assert_eq!(kept.device, "VerticalPump");
    assert_eq!(kept.quantity, U256::from(3));
    assert_eq!(
        shipping2.shipmentCount().call().await.unwrap(),
        U256::from(1)
    );

    // v1 can no longer write; v2 can.
    let other = keccak256("shipment-after-the-upgrade");
    let stale = Shipping::new(logic1, &as_supplier)
        .createShipment(other, receiver, "VerticalPump".into(), U256::from(1))
        .call()
        .await;
    assert!(
        stale.is_err(),
        "v1 still writes the database after the upgrade"
    );
    let receipt = Shipping::new(logic2, &as_supplier)
        .createShipment(other, receiver, "VerticalPump".into(), U256::from(1))
        .send()
        .await
        .expect("createShipment through v2")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status(), "createShipment through v2 succeeded");

    // Delete: the finalizer retires v2 on chain, then the children are collected.
    services
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete");
    stack
        .wait_for(
            "the service gone (finalizer done)",
            Duration::from_secs(60),
            || async { services.get_opt(NAME).await.ok()?.is_none().then_some(()) },
        )
        .await;
    eprintln!("[{:?}] deleted", started.elapsed());
    assert!(
        KontraktContract::new(logic2, &provider)
            .retired()
            .call()
            .await
            .unwrap(),
        "v2 is retired on chain"
    );
    assert_eq!(
        shipping2.shipmentCount().call().await.unwrap(),
        U256::from(2),
        "the data stays readable after retirement"
    );
    let ns = stack.ns.name().to_owned();
    stack
        .wait_for(
            "children garbage-collected",
            Duration::from_secs(90),
            || async { children(&stack.client, &ns).await.is_empty().then_some(()) },
        )
        .await;
    eprintln!("[{:?}] children collected", started.elapsed());
    stack
        .wait_for("the sidecars stopped", Duration::from_secs(30), || async {
            stack.sidecars_stopped().await.then_some(())
        })
        .await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}
