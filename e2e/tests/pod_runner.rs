//! The e2e pod runner plays the kubelet for kwok's pods: the operator's
//! sidecar pod runs as a local `kontrakt-sidecar serve` with the pod's mounted
//! config and key, deploys the pair on a real anvil, and the service becomes
//! Ready with no help from the test; deleting the service stops the process.

use alloy::providers::Provider;
use kontrakt_e2e::{
    TestNamespace, cluster,
    contract_services::{
        condition, create_secret, delete_and_wait, service, start_controller, wait_for,
    },
    pod_runner::{PodRunner, sidecar_binary},
};
use kontrakt_operator::api::SmartContractService;
use kontrakt_sidecar::devchain::{Anvil, DEV_KEYS};
use kube::{Api, api::PostParams};
use std::time::Duration;

#[tokio::test]
async fn runs_the_sidecar_of_each_running_pod_until_the_pod_goes_away() {
    let binary = tokio::task::spawn_blocking(sidecar_binary)
        .await
        .expect("sidecar binary");
    let anvil = Anvil::start(&[]).expect("anvil");
    let admin = cluster().await;
    let ns = TestNamespace::create(&admin, "pod-runner").await;
    create_secret(&admin, ns.name(), "signer", DEV_KEYS[0]).await;
    let _controller = start_controller(admin.clone(), ns.name(), Duration::from_secs(2));
    let runner = PodRunner::start(admin.clone(), ns.name(), binary);

    let services: Api<SmartContractService> = Api::namespaced(admin.clone(), ns.name());
    let name = "shipping";
    services
        .create(&PostParams::default(), &service(name, &anvil.url, 1))
        .await
        .expect("create service");

    // Ready only when the sidecar (run by the pod runner) deployed the pair.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let ready = loop {
        let s = services.get(name).await.expect("get service");
        if condition(&s, "Ready").map(|c| c.0) == Some("True".into()) {
            break s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "not Ready=True after 90 s (the pod runner's sidecar should have deployed the pair)\n\
                 status: {:?}\nprocesses: {:?}\n{}",
                s.status,
                runner.running(),
                runner.log_tails(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let running = runner.running();
    assert_eq!(running.len(), 1, "one sidecar process: {running:?}");
    let (pod, addr) = running[0].clone();
    assert!(pod.starts_with(name), "pod {pod}");

    let address = ready
        .status
        .and_then(|s| s.contract_address)
        .expect("status.contractAddress");
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    let code = provider
        .get_code_at(address.parse().expect("an address"))
        .await
        .expect("eth_getCode");
    assert!(!code.is_empty(), "no code at {address}");

    // The process really serves the pod's sidecar API on its local address.
    tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("the sidecar of {pod} does not listen on {addr}: {e}"));

    // Deleting the service deletes the pod; the runner stops its process.
    delete_and_wait(&services, name).await;
    wait_for(
        "the pod runner stopped the sidecar",
        Duration::from_secs(60),
        || async { runner.running().is_empty().then_some(()) },
    )
    .await;
    wait_for(
        "the sidecar's port closed",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}
