//! A kube-apiserver restart: the chart-installed operator binary (leader
//! election on), its watches and the pod runner's ride it out. Work created
//! just before the restart (reconciled across it) and after it converges all
//! the way to Ready — pods created, sidecars run, pairs deployed, status
//! written — and a spec change made after it is applied; nothing is deployed twice.
//!
//! Its own test binary: cargo runs test binaries one at a time, so the restart
//! cannot disturb other tests.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kontrakt_e2e::stack::{Stack, all_ready, assert_one_pair_each, binaries, create_services};
use kontrakt_sidecar::devchain::Anvil;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use std::time::Duration;

fn restart_apiserver() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/restart-apiserver.sh");
    let status = std::process::Command::new(script)
        .status()
        .expect("run restart-apiserver.sh");
    assert!(status.success(), "restart-apiserver.sh failed");
}

#[tokio::test]
async fn work_before_across_and_after_an_apiserver_restart_converges() {
    let binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    let stack = Stack::start("restart", &[("leaderElection.enabled", "true")], &binaries).await;

    // svc-0: Ready before the restart.
    let mut signers = create_services(&stack, &anvil.url, 0..1).await;
    all_ready(&stack, 1, Duration::from_secs(120)).await;

    // svc-1: created right before the restart, so its reconcile straddles it.
    signers.extend(create_services(&stack, &anvil.url, 1..2).await);
    // On a blocking thread, so this runtime keeps driving the pod runner meanwhile.
    let restart_began = Timestamp::now();
    tokio::task::spawn_blocking(restart_apiserver)
        .await
        .unwrap();
    let restart_ended = Timestamp::now();

    // After the restart: a change to svc-0 and a new svc-2.
    let services = stack.services();
    services
        .patch(
            "svc-0",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("patch after restart");
    signers.extend(create_services(&stack, &anvil.url, 2..3).await);

    let deployments: Api<Deployment> = Api::namespaced(stack.client.clone(), stack.ns.name());
    stack
        .wait_for(
            "the change made after the restart applied",
            Duration::from_secs(120),
            || async {
                let d = deployments.get_opt("svc-0").await.ok()??;
                (d.spec?.replicas == Some(2)).then_some(())
            },
        )
        .await;
    let ready = all_ready(&stack, 3, Duration::from_secs(180)).await;
    assert_one_pair_each(&stack, &anvil.url, &ready, &signers).await;
    // A restarted apiserver authorises from RBAC caches it is still filling: for a moment it
    // refuses what the chart's RBAC allows, and the operator retries. Refusals in that window
    // are the apiserver's; any other is a gap in the chart's RBAC.
    let warm_up = restart_began..=restart_ended + SignedDuration::from_secs(10);
    let refused: Vec<String> = stack
        .operator
        .process()
        .forbidden_lines()
        .into_iter()
        .filter(|line| !logged_at(line).is_some_and(|t| warm_up.contains(&t)))
        .collect();
    assert!(
        refused.is_empty(),
        "the operator was refused API calls outside the apiserver's restart:\n{}",
        refused.join("\n")
    );
    // A leader that cannot renew its Lease while the API is away exits on
    // purpose and is restarted (here by the stack's supervisor, in a cluster by
    // the kubelet); that is the only restart allowed.
    let restarts = stack.operator.process().restarts();
    assert!(
        restarts <= 1,
        "the operator was restarted {restarts} times\n{}",
        stack.diagnostics()
    );
    eprintln!("operator restarts across the apiserver restart: {restarts}");
}

/// When a JSON log line was written (its `timestamp` field).
fn logged_at(line: &str) -> Option<Timestamp> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["timestamp"].as_str()?.parse().ok()
}
