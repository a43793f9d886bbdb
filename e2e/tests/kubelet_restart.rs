//! Node faults on the real node, in a test binary of its own (cargo runs test
//! binaries one after another, so no other real-node test shares the node while
//! its kubelet is down): the kubelet crashes and comes back — the running
//! sidecar container is neither restarted nor replaced and the service stays
//! Ready — then the pod is deleted — the Deployment's new pod finds the pair on
//! chain and sends nothing. Each signer's nonce counts what was deployed.

use k8s_openapi::api::core::v1::{Node, Pod};
use kontrakt_e2e::{
    chain::nonce,
    pod_runner::SIDECAR_SELECTOR,
    real_node::{RealNode, container_id},
    stack::{
        Stack, TRANSACTIONS_PER_PAIR, all_ready, assert_not_refused, assert_one_pair_each,
        assert_operator_restarts, create_services, is_ready,
    },
};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use std::time::{Duration, Instant};

const SIDECAR: &str = "sidecar";

/// The running sidecar pods of the stack: (name, container ID, restarts).
async fn sidecars(stack: &Stack) -> Vec<(String, String, i32)> {
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), stack.ns.name());
    let list = pods
        .list(&ListParams::default().labels(SIDECAR_SELECTOR))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let restarts = p
                .status
                .as_ref()?
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == SIDECAR && c.ready)?
                .restart_count;
            Some((
                p.metadata.name.clone()?,
                container_id(p, SIDECAR)?,
                restarts,
            ))
        })
        .collect()
}

/// The node's Ready condition as the kubelet last reported it: (status, heartbeat).
async fn node_ready(stack: &Stack, node: &RealNode) -> Option<(String, String)> {
    let n = Api::<Node>::all(stack.client.clone())
        .get(&node.name)
        .await
        .ok()?;
    let c = n
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status, format!("{:?}", c.last_heartbeat_time)))
}

#[tokio::test]
async fn a_kubelet_crash_and_a_deleted_pod_deploy_nothing_twice() {
    let node = RealNode::get();
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("kubelet-restart", &[], &node).await;
    let signers = create_services(&stack, &anvil.url, 0..1).await;
    all_ready(&stack, 1, Duration::from_secs(120)).await;
    let before = stack
        .wait_for(
            "a ready sidecar container",
            Duration::from_secs(30),
            || async { sidecars(&stack).await.pop() },
        )
        .await;

    // The kubelet crashes and is started again; its containers never stop.
    let (_, heartbeat) = node_ready(&stack, &node).await.expect("node Ready");
    let started = Instant::now();
    let kubelet = tokio::task::spawn_blocking({
        let node = node.clone();
        move || node.restart_kubelet()
    })
    .await
    .expect("restart the kubelet");
    stack
        .wait_for(
            "the restarted kubelet reporting the node Ready",
            Duration::from_secs(120),
            || async {
                let (status, beat) = node_ready(&stack, &node).await?;
                (status == "True" && beat != heartbeat).then_some(())
            },
        )
        .await;
    eprintln!(
        "kubelet restarted as pid {kubelet}; node Ready again after {:?}",
        started.elapsed()
    );
    // The new kubelet has looked at the pod: its readiness, probed again, holds.
    let services = stack
        .wait_for(
            "the service Ready with the same container after the kubelet restart",
            Duration::from_secs(60),
            || async {
                let now = sidecars(&stack).await;
                let s = stack.services().get("svc-0").await.ok()?;
                (now == [before.clone()] && is_ready(&s)).then_some(vec![s])
            },
        )
        .await;
    assert_eq!(
        nonce(&anvil.url, signers[0].address).await,
        TRANSACTIONS_PER_PAIR,
        "nothing sent across the kubelet restart"
    );

    // The pod is deleted: the Deployment's new pod finds its pair and sends nothing.
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), stack.ns.name());
    pods.delete(&before.0, &DeleteParams::default())
        .await
        .expect("delete the sidecar pod");
    let replaced = stack
        .wait_for(
            "a new sidecar pod Ready and the service Ready",
            Duration::from_secs(120),
            || async {
                let now = sidecars(&stack).await;
                let s = stack.services().get("svc-0").await.ok()?;
                (now.len() == 1 && now[0].0 != before.0 && is_ready(&s)).then(|| now[0].clone())
            },
        )
        .await;
    eprintln!("pod {} replaced by {}", before.0, replaced.0);
    assert_one_pair_each(&stack, &anvil.url, &services, &signers).await;
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}
