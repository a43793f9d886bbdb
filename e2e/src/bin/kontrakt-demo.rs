//! The process behind `make demo` (started by `e2e/demo.sh`): runs the demo
//! scenario of `kontrakt_e2e::demo` in the namespace `$DEMO_NAMESPACE`
//! (default `kontrakt-demo`), writes what it did to `<state>/report.json`,
//! then keeps everything running — anvil, the devices, the operator, the pod
//! runner — until SIGTERM or SIGINT (`make demo-down`), when it stops it all.
//! With `KONTRAKT_REAL_NODE=1` the pods (and the operator) run as real containers
//! on the cluster's real node instead (`make demo REAL_NODE=1`).
//!
//! Usage: `kontrakt-demo <state dir>`; needs `KUBECONFIG` (the local control plane).

use kontrakt_e2e::{
    demo::{BUYER_KEY, Demo, Ports, Report, named_namespaces},
    real_node::RealNode,
    stack::{Placement, binaries},
};
use std::{
    io::Write,
    path::{Path, PathBuf},
};
use tokio::signal::unix::{SignalKind, signal};

/// The chart's release namespace in the demo.
const RELEASE_NAMESPACE: &str = "kontrakt-system";

#[tokio::main]
async fn main() {
    let state = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: kontrakt-demo <state dir>"),
    );
    let namespace = std::env::var("DEMO_NAMESPACE").unwrap_or_else(|_| "kontrakt-demo".into());
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");

    let binaries = binaries().await;
    let sidecar = binaries.sidecar.clone();
    let placement = if std::env::var("KONTRAKT_REAL_NODE").as_deref() == Ok("1") {
        Placement::RealNode(RealNode::get())
    } else {
        Placement::PodRunner(binaries)
    };
    let namespaces = named_namespaces(&namespace, RELEASE_NAMESPACE, &placement).await;
    let demo = Demo::run(namespaces, Ports::SAMPLES, &placement).await;
    // The buyer's key (anvil's account 4: public test material) for trying `buy` by hand.
    let key_file = state.join("buyer.key");
    write_private(&key_file, BUYER_KEY);
    let summary = summary(&demo.report, &sidecar, &key_file);
    std::fs::write(state.join("summary.txt"), summary)
        .unwrap_or_else(|e| panic!("{}: {e}", state.display()));
    // Last: its presence tells `e2e/demo.sh` that the demo is up.
    let report = serde_json::to_string_pretty(&demo.report).expect("a report");
    std::fs::write(state.join("report.json"), report)
        .unwrap_or_else(|e| panic!("{}: {e}", state.display()));
    eprintln!("demo ready: {}", state.join("report.json").display());

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("stopping the demo");
    drop(demo);
    let _ = std::fs::remove_file(key_file);
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// What happened, and what to try next.
fn summary(r: &Report, sidecar: &Path, key_file: &Path) -> String {
    let ns = &r.namespace;
    format!(
        "What happened:
  - SmartContractService shipping: the Shipping contract at {contract} with its database
    at {database}; its sidecar hosts the EnrollmentRegistry {registry}.
  - AccessPolicy supply-chain: the supplier, manufacturer, oracle and telemetry buyer are
    enrolled in that registry (read back from the chain).
  - Oracle: the supplier {supplier} created shipment {shipment} and asked for its cost;
    the sidecar fetched it from the simulated device ({requests} request) and the contract
    stored cost = {cost} (status.oracle.fulfilled = {fulfilled}).
  - DataStream pump-telemetry: stream {stream} on the DataMarket {market}; its publisher
    polls the simulated pump and has anchored {batches} batch root(s) on chain.
  - A buyer {buyer} paid {paid} wei for an hour and verified {verified} messages against
    the anchored roots.

Try next:
  kubectl -n {ns} describe scs shipping
  kubectl -n {ns} get dstream pump-telemetry -o yaml
  kubectl -n {ns} get events --sort-by=.lastTimestamp
  {sidecar} buy --rpc-url {chain} --chain-id 31337 \\
      --key-file {key} --registry {registry} \\
      fetch --stream-id {stream} --publisher {publisher}
  curl -s {metrics} | grep ^kontrakt_
  operator log: {log}
Stop everything with: make demo-down
",
        chain = r.chain_url,
        contract = r.contract,
        database = r.database,
        registry = r.registry,
        supplier = r.supplier,
        shipment = r.shipment,
        requests = r.device_requests,
        cost = r.shipment_cost,
        fulfilled = r.oracle_fulfilled,
        stream = r.stream_id,
        market = r.market,
        batches = r.anchored_batches,
        buyer = r.buyer,
        paid = r.paid_wei,
        verified = r.verified_messages,
        sidecar = sidecar.display(),
        key = key_file.display(),
        publisher = r.publisher_url,
        metrics = r.operator_metrics,
        log = r.operator_log,
    )
}
