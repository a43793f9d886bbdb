//! Faults, each on the chart-installed operator, the pod runner and a real
//! anvil: the operator killed with SIGKILL in the middle of reconciling 20
//! services, the chain going away and coming back, a sidecar killed with
//! SIGKILL. After each, everything converges with no help and nothing is
//! deployed twice (see [`DeployAudit`] for how deploys are counted).
//!
//! Every service signs with a key of its own, so each signer's nonce is a
//! second, independent count: a pair costs exactly three transactions
//! (database CREATE2, logic CREATE2, `setWriter`).

use k8s_openapi::api::core::v1::ConfigMap;
use kontrakt_e2e::{
    chain::{RestartableAnvil, mine, nonce, pending_nonce, set_automine},
    contract_services::condition,
    stack::{
        Binaries, Stack, TRANSACTIONS_PER_PAIR, all_ready, assert_not_refused,
        assert_one_pair_each, assert_operator_restarts, binaries, create_services, expected_pair,
        is_ready,
    },
};
use kontrakt_sidecar::devchain::Anvil;
use kube::api::ListParams;
use std::time::Duration;

#[tokio::test]
async fn an_operator_killed_while_reconciling_20_services_converges_with_one_pair_each() {
    const SERVICES: usize = 20;
    let binaries: Binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    let stack = Stack::start("fault-operator", &[], &binaries).await;
    let signers = create_services(&stack, &anvil.url, 0..SERVICES).await;

    // Kill as soon as the operator has started writing children: in the
    // middle of the burst, before the services are Ready.
    let config_maps = kube::Api::<ConfigMap>::namespaced(stack.client.clone(), stack.ns.name());
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=kontrakt-operator");
    stack
        .wait_for(
            "the operator's first ConfigMap",
            Duration::from_secs(60),
            || async {
                let n = config_maps.list(&managed).await.ok()?.items.len();
                (n > 0).then_some(())
            },
        )
        .await;
    let killed = stack.operator.process().pid().expect("the operator runs");
    stack.operator.process().kill_9();
    let applied = config_maps.list(&managed).await.unwrap().items.len();
    let listed = stack
        .services()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let ready = listed.iter().filter(|s| is_ready(s)).count();
    eprintln!(
        "killed the operator with SIGKILL: {applied} of {SERVICES} ConfigMaps applied, {ready} Ready"
    );
    assert!(
        ready < SERVICES,
        "every service was Ready before the kill: the kill was not in the middle"
    );

    // The kubelet (the stack's supervisor) starts the container again; the
    // sidecars already started keep going meanwhile.
    stack.operator.process().wait_restarted(killed).await;

    let services = all_ready(&stack, SERVICES, Duration::from_secs(180)).await;
    assert_one_pair_each(&stack, &anvil.url, &services, &signers).await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 1);
}

#[tokio::test]
async fn a_chain_outage_is_reported_and_recovered_from_without_help() {
    let binaries = binaries().await;
    let mut anvil = RestartableAnvil::start();
    // Look at Ready objects every 2 s, so the outage is noticed without a watch event.
    let stack = Stack::start(
        "fault-chain",
        &[("resyncSeconds", "2"), ("chainTimeoutSeconds", "2")],
        &binaries,
    )
    .await;
    let signers = create_services(&stack, &anvil.url, 0..1).await;
    let before = all_ready(&stack, 1, Duration::from_secs(120)).await;
    let generation = before[0].metadata.generation;

    let outage = std::time::Instant::now();
    anvil = tokio::task::spawn_blocking(move || {
        anvil.stop();
        anvil
    })
    .await
    .unwrap();
    let services = stack.services();
    let down = stack
        .wait_for(
            "Ready=False ChainUnreachable while anvil is down",
            Duration::from_secs(60),
            || async {
                let s = services.get("svc-0").await.ok()?;
                (condition(&s, "Ready") == Some(("False".into(), "ChainUnreachable".into()))
                    && condition(&s, "Deployed").is_some_and(|c| c.1 == "ChainUnreachable"))
                .then_some(s)
            },
        )
        .await;
    let message = &down
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    eprintln!(
        "{:?} after anvil stopped: Ready=False ChainUnreachable: {message}",
        outage.elapsed()
    );

    // Down for a while longer, then back on the same port with the same state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    anvil = tokio::task::spawn_blocking(move || {
        anvil.restart();
        anvil
    })
    .await
    .unwrap();

    let back = std::time::Instant::now();
    let after = all_ready(&stack, 1, Duration::from_secs(120)).await;
    eprintln!("Ready again {:?} after anvil came back", back.elapsed());
    assert_eq!(
        after[0].metadata.generation, generation,
        "recovered without anyone touching the spec"
    );
    assert_eq!(
        expected_pair(&after[0]).logic,
        expected_pair(&before[0]).logic,
        "the same pair"
    );
    assert_one_pair_each(&stack, &anvil.url, &after, &signers).await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}

#[tokio::test]
async fn a_sidecar_killed_with_a_transaction_in_flight_is_restarted_and_deploys_nothing_twice() {
    let binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    let stack = Stack::start("fault-sidecar", &[], &binaries).await;
    // Transactions wait in the mempool until mined by hand: the sidecar can be
    // killed at a known point, with its first deploy transaction sent but not mined.
    set_automine(&anvil.url, false).await;
    let signers = create_services(&stack, &anvil.url, 0..1).await;
    let signer = signers[0].address;

    let (pod, pid) = stack
        .wait_for(
            "the sidecar's first transaction pending",
            Duration::from_secs(60),
            || async {
                let (pod, _) = stack.runner().running().into_iter().next()?;
                let pid = stack.runner().pid(&pod)?;
                (pending_nonce(&anvil.url, signer).await > 0).then_some((pod, pid))
            },
        )
        .await;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
    // Its transaction outlives it: mined after the kill, before the restart.
    set_automine(&anvil.url, true).await;
    mine(&anvil.url).await;
    let mined = nonce(&anvil.url, signer).await;
    eprintln!(
        "killed the sidecar of {pod} (pid {pid}) with SIGKILL; {mined} of {TRANSACTIONS_PER_PAIR} transactions mined after it"
    );
    assert_eq!(
        mined, 1,
        "the transaction in flight was mined after the kill"
    );

    // The pod runner (the kubelet) restarts it; the new process finishes the pair.
    let restarted = stack
        .wait_for("the sidecar restarted", Duration::from_secs(60), || async {
            stack.runner().pid(&pod).filter(|p| *p != pid)
        })
        .await;
    eprintln!("the sidecar of {pod} runs again as pid {restarted}");
    let services = all_ready(&stack, 1, Duration::from_secs(120)).await;
    assert_one_pair_each(&stack, &anvil.url, &services, &signers).await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}

/// A restarted operator never reports a Ready service as not Ready: its first passes read
/// caches that hold their first full list. (They used to read an empty Deployment cache
/// and write `Ready=False SidecarNotAvailable` for services whose pods never stopped, then
/// flip back.) Every status change is watched from outside, through the apiserver.
#[tokio::test]
async fn ready_services_stay_ready_across_an_operator_restart() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    const SERVICES: usize = 10;
    let binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    let stack = Stack::start("fault-restart", &[], &binaries).await;
    create_services(&stack, &anvil.url, 0..SERVICES).await;
    all_ready(&stack, SERVICES, Duration::from_secs(180)).await;

    let not_ready = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = not_ready.clone();
    let statuses = watcher(stack.services(), watcher::Config::default())
        .applied_objects()
        .for_each(move |s| {
            if let Ok(s) = s
                && let Some((status, reason)) = condition(&s, "Ready")
                && status != "True"
            {
                let name = s.metadata.name.clone().unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push(format!("{name}: Ready={status} {reason}"));
            }
            futures::future::ready(())
        });
    let watching = tokio::spawn(statuses);

    let operator = stack.operator.process();
    let killed = operator.pid().expect("the operator runs");
    operator.kill_9();
    operator.wait_restarted(killed).await;
    // The restarted operator has finished a pass over every service (the initial list).
    let finished = r#"kontrakt_reconcile_duration_seconds_count{kind="SmartContractService"}"#;
    stack
        .wait_for(
            "a finished pass over every service after the restart",
            Duration::from_secs(120),
            || async {
                let n = operator.metric(finished).await?;
                (n >= SERVICES as f64).then_some(())
            },
        )
        .await;
    // Status writes of those passes reach the watch shortly after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watching.abort();

    let flips = not_ready.lock().unwrap().clone();
    assert!(
        flips.is_empty(),
        "Ready services reported not Ready after the operator restart:\n{}\n{}",
        flips.join("\n"),
        stack.diagnostics()
    );
    assert!(
        all_ready(&stack, SERVICES, Duration::from_secs(5))
            .await
            .len()
            == SERVICES,
        "every service is still Ready"
    );
    assert_operator_restarts(&stack, 1);
}
