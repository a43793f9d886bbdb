//! The controller's watches survive a kube-apiserver restart: objects created
//! and changed while (and after) the API was away are reconciled once it is back.
//!
//! Its own test binary: cargo runs test binaries one at a time, so the restart
//! cannot disturb other tests.

use k8s_openapi::api::apps::v1::Deployment;
use kontrakt_e2e::{
    TestNamespace, cluster,
    contract_services::{create_secret, delete_and_wait, service, start_controller, wait_for},
};
use kontrakt_operator::api::SmartContractService;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use std::time::Duration;

fn restart_apiserver() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/restart-apiserver.sh");
    let status = std::process::Command::new(script)
        .status()
        .expect("run restart-apiserver.sh");
    assert!(status.success(), "restart-apiserver.sh failed");
}

async fn reconciled(services: &Api<SmartContractService>, name: &str) -> Option<()> {
    let s = services.get(name).await.ok()?;
    (s.status?.observed_generation == s.metadata.generation).then_some(())
}

#[tokio::test]
async fn watches_recover_after_an_apiserver_restart() {
    let anvil = kontrakt_sidecar::devchain::Anvil::start(&[]).expect("anvil");
    let admin = cluster().await;
    let ns = TestNamespace::create(&admin, "restart").await;
    create_secret(
        &admin,
        ns.name(),
        "signer",
        kontrakt_sidecar::devchain::DEV_KEYS[0],
    )
    .await;
    let _controller = start_controller(admin.clone(), ns.name(), Duration::from_secs(300));
    let services: Api<SmartContractService> = Api::namespaced(admin.clone(), ns.name());
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns.name());

    services
        .create(&PostParams::default(), &service("before", &anvil.url, 1))
        .await
        .unwrap();
    wait_for("first service reconciled", Duration::from_secs(30), || {
        reconciled(&services, "before")
    })
    .await;

    // On a blocking thread, so this runtime keeps driving the controller meanwhile.
    tokio::task::spawn_blocking(restart_apiserver)
        .await
        .unwrap();

    // A change to an existing object and a new object, both after the restart.
    let admin = cluster().await;
    let services: Api<SmartContractService> = Api::namespaced(admin.clone(), ns.name());
    services
        .patch(
            "before",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("patch after restart");
    services
        .create(&PostParams::default(), &service("after", &anvil.url, 1))
        .await
        .expect("create after restart");

    wait_for(
        "the change after the restart reconciled",
        Duration::from_secs(120),
        || async {
            let d = deployments.get_opt("before").await.ok()??;
            (d.spec?.replicas == Some(2)).then_some(())
        },
    )
    .await;
    wait_for(
        "the object created after the restart reconciled",
        Duration::from_secs(120),
        || reconciled(&services, "after"),
    )
    .await;
    assert!(
        deployments.get_opt("after").await.unwrap().is_some(),
        "its Deployment exists"
    );
    delete_and_wait(&services, "before").await;
    delete_and_wait(&services, "after").await;
}
