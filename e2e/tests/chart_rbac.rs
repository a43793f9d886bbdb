//! The Helm chart's RBAC is all the operator needs: the chart is installed
//! (leader election on, one watched namespace), the operator binary runs with
//! nothing but a token of the chart's ServiceAccount, and a SmartContractService
//! goes all the way to Ready (pod runner's sidecar deploying the pair) and is
//! deleted again (finalizer, retire) without a single refused API call. With
//! two replicas, one leads, the other stands by and takes over when the
//! leader's pod is gone.

use alloy::providers::{Provider, ProviderBuilder};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kontrakt_e2e::{
    chain::Signer,
    contract_services::delete_and_wait,
    operator_process::OperatorProcess,
    operator_process::RELEASE,
    stack::{
        OPERATOR_POD, Stack, assert_operator_restarts, binaries, create_services, is_ready,
        shipping,
    },
};
use kontrakt_sidecar::devchain::Anvil;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use std::time::Duration;

#[tokio::test]
async fn the_operator_runs_on_the_charts_rbac_alone() {
    let binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    let stack = Stack::start(
        "chart-rbac",
        &[("leaderElection.enabled", "true")],
        &binaries,
    )
    .await;
    let release_ns = stack.release.namespace.name().to_owned();

    // The chart's own operator pod passes Pod Security "restricted" (kwok runs it as a fake).
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), &release_ns);
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    stack
        .wait_for(
            "the chart's operator pod admitted and Running",
            Duration::from_secs(60),
            || async {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                list.items
                    .iter()
                    .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                    .then_some(())
            },
        )
        .await;

    let signer = Signer::from_seed(&format!("{}/signer", stack.ns.name()));
    signer.fund(&anvil.url).await;
    stack
        .create_secret("signer", "privateKey", &signer.key_hex)
        .await;
    let services = stack.services();
    services
        .create(
            &PostParams::default(),
            &shipping("shipping", &anvil.url, "signer", 1),
        )
        .await
        .expect("create service");

    let ready = stack.wait_ready("shipping", Duration::from_secs(120)).await;
    let address = ready
        .status
        .as_ref()
        .and_then(|s| s.contract_address.clone())
        .expect("status.contractAddress");
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    let code = provider
        .get_code_at(address.parse().expect("an address"))
        .await
        .expect("eth_getCode");
    assert!(!code.is_empty(), "no code at {address}");
    let running = stack.runner().running();
    assert_eq!(running.len(), 1, "one sidecar process: {running:?}");

    // Leader election ran on the chart's Lease permissions.
    let lease = Api::<Lease>::namespaced(stack.client.clone(), &release_ns)
        .get(RELEASE)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the Lease {RELEASE} in {release_ns}: {e}\n{}",
                stack.diagnostics()
            )
        });
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(OPERATOR_POD),
        "the operator holds the Lease"
    );

    // Delete: the finalizer is removed (retire on chain) with the chart's permissions.
    delete_and_wait(&services, "shipping").await;

    assert_operator_restarts(&stack, 0);
    let refused = stack.operator.forbidden_lines();
    assert!(
        refused.is_empty(),
        "the operator was refused API calls (the chart's RBAC lacks them):\n{}",
        refused.join("\n")
    );
}

#[tokio::test]
async fn with_two_replicas_one_leads_and_the_standby_takes_over() {
    let binaries = binaries().await;
    let anvil = Anvil::start(&[]).expect("anvil");
    // Two replicas force leader election; a short lease keeps the takeover quick.
    let stack = Stack::start(
        "chart-ha",
        &[
            ("replicaCount", "2"),
            ("leaderElection.leaseDurationSeconds", "6"),
            ("leaderElection.renewSeconds", "2"),
        ],
        &binaries,
    )
    .await;
    let release_ns = stack.release.namespace.name().to_owned();
    let leases = Api::<Lease>::namespaced(stack.client.clone(), &release_ns);
    let holder = || async { leases.get_opt(RELEASE).await.ok()??.spec?.holder_identity };
    stack
        .wait_for(
            "the first replica leads",
            Duration::from_secs(30),
            || async { (holder().await.as_deref() == Some(OPERATOR_POD)).then_some(()) },
        )
        .await;
    let standby_pod = "kontrakt-local-1";
    let standby = OperatorProcess::start(
        &stack.client,
        &stack.release,
        binaries.operator.clone(),
        standby_pod,
    )
    .await;
    stack
        .wait_for(
            "the second replica stands by",
            Duration::from_secs(30),
            || async {
                let (code, body) = standby.readyz().await?;
                (code == 200 && body.starts_with("standby")).then_some(())
            },
        )
        .await;

    // The leader reconciles.
    create_services(&stack, &anvil.url, 0..1).await;
    stack.wait_ready("svc-0", Duration::from_secs(120)).await;

    // The leader's pod is gone for good: the standby takes the Lease and reconciles.
    stack.operator.process().kill_9_for_good();
    stack
        .wait_for(
            "the standby took the Lease",
            Duration::from_secs(60),
            || async { (holder().await.as_deref() == Some(standby_pod)).then_some(()) },
        )
        .await;
    create_services(&stack, &anvil.url, 1..2).await;
    let services = stack.services();
    let new = stack
        .wait_for(
            "svc-1 Ready under the new leader",
            Duration::from_secs(120),
            || async {
                let s = services.get_opt("svc-1").await.ok()??;
                is_ready(&s).then_some(s)
            },
        )
        .await;
    assert!(new.status.is_some());
    assert_eq!(
        standby
            .readyz()
            .await
            .map(|(c, b)| (c, b.starts_with("leader"))),
        Some((200, true)),
        "the former standby says it leads"
    );
    for (who, lines) in [
        ("first replica", stack.operator.forbidden_lines()),
        ("second replica", standby.forbidden_lines()),
    ] {
        assert!(
            lines.is_empty(),
            "the {who} was refused API calls:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(
        standby.restarts(),
        0,
        "the standby never crashed:\n{}",
        standby.log_tail(40)
    );
}
