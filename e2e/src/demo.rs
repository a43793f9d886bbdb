//! `make demo`: the product's main job on the embedded default, run by the same
//! harness as the e2e suite (chart RBAC, the operator process, the pod runner)
//! so that the demo and the tests cannot drift apart. `tests/demo.rs` runs
//! this very scenario and asserts its end state.
//!
//! The scenario: anvil, two simulated devices (a shipment-cost service and a
//! pump sensor), the operator, the samples of `e2e/samples/` applied as a user
//! would → the Shipping service Ready, the AccessPolicy enrolled → a supplier
//! asks the contract for a shipment's cost and the sidecar's oracle answers it
//! from the device → the DataStream's publisher anchors batches of the pump's
//! readings → a buyer subscribes, fetches and verifies them against the roots
//! on chain.

use crate::{
    KONTRAKT_KINDS, TestNamespace, cluster,
    contracts::Shipping,
    devices::Device,
    stack::{Placement, Stack},
};
use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, U256},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use kontrakt_operator::api::{DataStream, SmartContractService};
use kontrakt_protocol::{
    addresses::{market_address, registry_address},
    config::ChainConfig,
};
use kontrakt_sidecar::{
    chain::Chain,
    devchain::{Anvil, DEV_CHAIN_ID, DEV_KEYS},
    stream::buyer::Buyer,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// The sample objects' names.
pub const SERVICE: &str = "shipping";
pub const POLICY: &str = "supply-chain";
pub const STREAM: &str = "pump-telemetry";
/// What the simulated cost service answers (wei).
pub const SHIPMENT_COST: u64 = 4_200;
/// The device the supplier's shipment names (the oracle asks the cost service for it).
const DEVICE: &str = "VerticalPump";
/// The buyer's subscription.
const SUBSCRIPTION_SECONDS: u64 = 3_600;
/// anvil's development accounts 1 and 4 (public test material): the supplier and
/// the buyer the sample AccessPolicy enrolls (as Node and Subscriber).
const SUPPLIER_KEY: &str = DEV_KEYS[1];
pub const BUYER_KEY: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
/// The Secret the sample service's signer references.
const SIGNER_SECRET: &str = "anvil-dev-key";
/// The chart values of the demo's release: the operator reads the chain state
/// behind each status (oracle counters, anchored batches, subscribers) every
/// 5 s instead of the default 300 s, so that what the demo does shows at once.
const CHART_VALUES: &[(&str, &str)] = &[("resyncSeconds", "5")];
/// How long each step may take before the demo fails with the diagnostics.
const STEP: Duration = Duration::from_secs(180);

/// The ports of the chain and the two devices (on the placement's host address).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub chain: u16,
    pub shipment_cost: u16,
    pub telemetry: u16,
}

impl Ports {
    /// The ports the samples name: what `make demo` uses, so the samples stay true as written.
    pub const SAMPLES: Ports = Ports {
        chain: 8545,
        shipment_cost: 9090,
        telemetry: 9091,
    };

    /// Free ports on `host`, for a test beside a running demo.
    pub fn free(host: IpAddr) -> Ports {
        let port = || {
            std::net::TcpListener::bind((host, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        };
        Ports {
            chain: port(),
            shipment_cost: port(),
            telemetry: port(),
        }
    }
}

/// Where the demo runs.
pub struct Namespaces {
    pub workload: TestNamespace,
    pub release: TestNamespace,
}

/// What the demo did, read back from the cluster and the chain.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespace: String,
    /// The chain's RPC URL (where the pods reach it).
    pub chain_url: String,
    pub contract: Address,
    pub database: Address,
    pub registry: Address,
    pub market: Address,
    pub supplier: Address,
    pub shipment: B256,
    /// `shipmentOf(shipment).cost` on chain, written by the oracle's callback.
    pub shipment_cost: U256,
    /// `status.oracle.fulfilled` of the service.
    pub oracle_fulfilled: i64,
    /// Requests the cost service answered.
    pub device_requests: u64,
    pub stream_id: U256,
    pub anchored_batches: i64,
    pub buyer: Address,
    pub paid_wei: U256,
    /// Messages the buyer fetched and verified against the anchored roots.
    pub verified_messages: usize,
    pub sidecar_url: String,
    pub publisher_url: String,
    pub operator_metrics: String,
    pub operator_log: String,
}

/// The running demo; everything stops when it is dropped (sidecars, operator,
/// namespaces, then the devices and the chain).
pub struct Demo {
    pub stack: Stack,
    pub devices: [Device; 2],
    pub anvil: Anvil,
    pub report: Report,
}

impl Demo {
    /// Runs the whole scenario and returns once a verified purchase is done. The chain and
    /// the devices listen where the pods reach them ([`Placement::host`]).
    pub async fn run(namespaces: Namespaces, ports: Ports, placement: &Placement) -> Demo {
        let host = placement.host();
        let anvil = Anvil::start_on_host(host, ports.chain, &[]).unwrap_or_else(|e| {
            panic!(
                "anvil on {host}:{}: {e} (is something else listening there?)",
                ports.chain
            )
        });
        let at = |port| SocketAddr::new(host, port);
        let devices = [
            Device::shipment_cost(at(ports.shipment_cost), "/shipment-cost", SHIPMENT_COST)
                .await
                .unwrap_or_else(|e| {
                    panic!("the cost service on port {}: {e}", ports.shipment_cost)
                }),
            Device::pump_sensor(at(ports.telemetry), "/telemetry")
                .await
                .unwrap_or_else(|e| panic!("the pump sensor on port {}: {e}", ports.telemetry)),
        ];
        progress(&format!(
            "anvil on {}, the cost service on {}, the pump sensor on {}",
            anvil.url, devices[0].addr, devices[1].addr
        ));
        let stack = Stack::start_placed(
            namespaces.workload,
            namespaces.release,
            CHART_VALUES,
            placement,
        )
        .await;
        progress(&match placement {
            Placement::PodRunner(_) => format!(
                "the chart's RBAC in {}, the operator and the pod runner for {}",
                stack.release.namespace.name(),
                stack.ns.name()
            ),
            Placement::RealNode(node) => format!(
                "the chart installed in {}: the operator pod Ready on the real node {}, for {}",
                stack.release.namespace.name(),
                node.name,
                stack.ns.name()
            ),
        });
        let ns = stack.ns.name().to_owned();
        stack
            .create_secret(SIGNER_SECRET, "privateKey", DEV_KEYS[0])
            .await;
        apply_samples(&stack.client, &ns, host, ports).await;
        progress("the samples applied: SmartContractService, AccessPolicy, DataStream");

        // The service deploys its pair and hosts the registry the policy enrolls into.
        let service = stack.wait_ready(SERVICE, STEP).await;
        wait_kind_ready(&stack, "AccessPolicy", POLICY).await;
        let status = service.status.clone().expect("status");
        let address = |a: Option<String>| -> Address {
            a.expect("an address in status")
                .parse()
                .expect("an address")
        };
        let (contract, database) = (
            address(status.contract_address),
            address(status.database_address),
        );
        let admin = PrivateKeySigner::from_bytes(&DEV_KEYS[0].parse().expect("a key"))
            .expect("a key")
            .address();
        let registry = registry_address(&ns, SERVICE, admin);
        let market = market_address(registry);
        progress(&format!(
            "shipping Ready: contract {contract}, database {database}; supply-chain enrolled"
        ));

        // Thing Communication: the supplier asks the contract for the cost; the oracle answers.
        let supplier: PrivateKeySigner = SUPPLIER_KEY.parse().expect("a key");
        let rpc: alloy::transports::http::reqwest::Url = anvil.url.parse().expect("a URL");
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(supplier.clone()))
            .connect_http(rpc);
        let shipping = Shipping::new(contract, provider);
        let shipment = B256::repeat_byte(0x01);
        let receiver: PrivateKeySigner = DEV_KEYS[2].parse().expect("a key");
        shipping
            .createShipment(shipment, receiver.address(), DEVICE.into(), U256::from(3))
            .send()
            .await
            .expect("createShipment")
            .get_receipt()
            .await
            .expect("createShipment mined");
        shipping
            .requestShipmentCost(shipment)
            .send()
            .await
            .expect("requestShipmentCost")
            .get_receipt()
            .await
            .expect("requestShipmentCost mined");
        let services = stack.services();
        let oracle_fulfilled = stack
            .wait_for(
                "the oracle's answer (status.oracle.fulfilled = 1)",
                STEP,
                || async {
                    let o = services.get(SERVICE).await.ok()?.status?.oracle?;
                    (o.fulfilled >= 1).then_some(o.fulfilled)
                },
            )
            .await;
        progress("the supplier asked for a shipment's cost; the oracle answered from the device");
        let shipment_cost = shipping
            .shipmentOf(shipment)
            .call()
            .await
            .expect("shipmentOf")
            .cost;

        // The marketplace: the publisher anchors the pump's readings; a buyer pays and verifies.
        let streams: Api<DataStream> = Api::namespaced(stack.client.clone(), &ns);
        let stream = stack
            .wait_for("the stream Ready with a batch anchored", STEP, || async {
                let s = streams.get(STREAM).await.ok()?.status?;
                (ready(&s.conditions) && s.anchored_batches.unwrap_or(0) >= 1).then_some(s)
            })
            .await;
        let stream_id: U256 = stream
            .stream_id
            .as_deref()
            .expect("streamId in status")
            .parse()
            .expect("a decimal stream id");
        let publisher = format!("{STREAM}-publisher");
        let publisher_url = stack
            .wait_for("the publisher pod running", STEP, || {
                stack.sidecar_pod(&publisher)
            })
            .await
            .url;
        progress(&format!(
            "pump-telemetry: stream {stream_id}, batches anchored by its publisher"
        ));
        let buyer_key: PrivateKeySigner = BUYER_KEY.parse().expect("a key");
        let chain = Chain::connect(
            &ChainConfig {
                rpc_url: anvil.url.clone(),
                chain_id: DEV_CHAIN_ID,
                retry: Default::default(),
            },
            buyer_key.clone(),
        )
        .await
        .expect("the buyer's chain connection");
        let buyer = Buyer::new(chain, buyer_key, market);
        let subscription = buyer
            .subscribe(stream_id, SUBSCRIPTION_SECONDS)
            .await
            .unwrap_or_else(|e| panic!("the buyer subscribes: {e}\n{}", stack.diagnostics()));
        let (verified, _) = buyer
            .fetch_verified(&publisher_url, stream_id, 0)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the buyer fetches and verifies: {e}\n{}",
                    stack.diagnostics()
                )
            });
        progress(&format!(
            "a buyer subscribed and verified {} messages against the roots on chain",
            verified.len()
        ));
        let anchored_batches = stack
            .wait_for(
                "the sale in the stream's status (one active subscriber)",
                STEP,
                || async {
                    let s = streams.get(STREAM).await.ok()?.status?;
                    (s.active_subscribers == Some(1)).then_some(s.anchored_batches.unwrap_or(0))
                },
            )
            .await;
        // All three kinds Ready at the end, as `kubectl get kontrakt` will show.
        for (kind, name) in [
            ("SmartContractService", SERVICE),
            ("AccessPolicy", POLICY),
            ("DataStream", STREAM),
        ] {
            wait_kind_ready(&stack, kind, name).await;
        }

        let report = Report {
            namespace: ns,
            chain_url: anvil.url.clone(),
            contract,
            database,
            registry,
            market,
            supplier: supplier.address(),
            shipment,
            shipment_cost,
            oracle_fulfilled,
            device_requests: devices[0].served(),
            stream_id,
            anchored_batches,
            buyer: buyer.account(),
            paid_wei: subscription.paid_wei,
            verified_messages: verified.len(),
            sidecar_url: stack
                .sidecar_pod(&format!("{SERVICE}-"))
                .await
                .map(|p| p.url)
                .unwrap_or_default(),
            publisher_url,
            operator_metrics: stack.operator.metrics_url(),
            operator_log: stack.operator.log_hint(),
        };
        Demo {
            stack,
            devices,
            anvil,
            report,
        }
    }
}

/// One line of progress, for the person watching `make demo`.
fn progress(line: &str) {
    eprintln!("== {line}");
}

/// The samples as a user applies them (server-side apply), with the loopback
/// addresses they name replaced by `host` and `ports` (the same ones for `make demo`
/// on fake nodes; on the real node, containers reach the host at the node's address).
async fn apply_samples(client: &Client, ns: &str, host: IpAddr, ports: Ports) {
    let dir = crate::workspace().join("e2e/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let s = Ports::SAMPLES;
    for file in files {
        let mut text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (sample, port) in [
            (s.chain, ports.chain),
            (s.shipment_cost, ports.shipment_cost),
            (s.telemetry, ports.telemetry),
        ] {
            text = text.replace(&format!("127.0.0.1:{sample}"), &format!("{host}:{port}"));
        }
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object: DynamicObject = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let kind = object
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let name = object.metadata.name.clone().expect("a sample has a name");
            kontrakt_api(client, ns, &kind)
                .patch(
                    &name,
                    &PatchParams::apply("kontrakt-demo").force(),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap_or_else(|e| panic!("apply {kind}/{name} from {}: {e}", file.display()));
        }
    }
}

/// The namespaced Api of a kontrakt kind, by kind name.
fn kontrakt_api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let (kind, plural) = KONTRAKT_KINDS
        .into_iter()
        .find(|(k, _)| *k == kind)
        .unwrap_or_else(|| panic!("{kind} is not a kontrakt kind"));
    let gvk = GroupVersionKind::gvk("kontrakt.dev", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Waits until `kind/name` has Ready=True.
async fn wait_kind_ready(stack: &Stack, kind: &str, name: &str) {
    let api = kontrakt_api(&stack.client, stack.ns.name(), kind);
    stack
        .wait_for(&format!("{kind} {name} Ready=True"), STEP, || async {
            let o = api.get(name).await.ok()?;
            let conditions = o.data.pointer("/status/conditions")?.as_array()?.clone();
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                .then_some(())
        })
        .await
}

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The three kinds' Ready condition as `kubectl get kontrakt` shows it: (kind/name, status).
pub async fn readiness(client: &Client, ns: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, _) in KONTRAKT_KINDS {
        let list = kontrakt_api(client, ns, kind)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for o in list.items {
            let ready = o
                .data
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_owned();
            out.push((
                format!("{kind}/{}", o.metadata.name.unwrap_or_default()),
                ready,
            ));
        }
    }
    out
}

/// The demo's namespaces: fixed names for `make demo` (kept while it runs).
pub async fn named_namespaces(workload: &str, release: &str, placement: &Placement) -> Namespaces {
    let client = cluster().await;
    let annotations = placement.namespace_annotations();
    Namespaces {
        workload: TestNamespace::named(&client, workload, annotations.clone()).await,
        release: TestNamespace::named(&client, release, annotations).await,
    }
}

/// Throwaway namespaces, for the test.
pub async fn test_namespaces(client: &Client, placement: &Placement) -> Namespaces {
    let annotations = placement.namespace_annotations();
    Namespaces {
        workload: TestNamespace::create_annotated(client, "demo", annotations.clone()).await,
        release: TestNamespace::create_annotated(client, "kontrakt-op", annotations).await,
    }
}

/// For a test's independent reads of the service.
pub fn services(client: &Client, ns: &str) -> Api<SmartContractService> {
    Api::namespaced(client.clone(), ns)
}
