//! Security checks on the real control plane: test namespaces enforce Pod
//! Security "restricted" (so every operator pod the other tests run was
//! admitted under it), and no Secret value — signer key, oracle header,
//! a garbled key the operator refused — appears in any ConfigMap, object,
//! status or Event of the namespace, nor in the operator's or a sidecar's log
//! (the operator pod and the sidecar containers on the real node, their logs read
//! through the kubelet as `kubectl logs` would).

use alloy::primitives::keccak256;
use k8s_openapi::api::core::v1::Pod;
use kontrakt_e2e::{
    TestNamespace,
    chain::Signer,
    cluster,
    contract_services::condition,
    real_node::RealNode,
    secret_scan::{find_leaks, leak_forms},
    stack::{Stack, assert_operator_restarts},
};
use kontrakt_operator::api::SmartContractService;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn test_namespaces_refuse_pods_that_are_not_restricted() {
    let client = cluster().await;
    let ns = TestNamespace::create(&client, "psa").await;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "privileged" },
        "spec": { "containers": [{
            "name": "c",
            "image": "busybox",
            "securityContext": { "privileged": true },
        }]},
    }))
    .unwrap();
    let refused = Api::<Pod>::namespaced(client, ns.name())
        .create(&PostParams::default(), &pod)
        .await
        .expect_err("a privileged pod is admitted in a test namespace");
    let text = refused.to_string();
    assert!(
        text.contains("PodSecurity") && text.contains("restricted"),
        "refused for another reason: {text}"
    );
}

/// A service with an oracle endpoint whose header comes from a Secret.
fn service_with_secrets(name: &str, rpc_url: &str, signer_secret: &str) -> SmartContractService {
    serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": name },
        "spec": {
            "chain": { "rpcUrl": rpc_url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": signer_secret, "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": 1 },
            "oracle": { "endpoints": [{
                "name": "ShipmentCost",
                "url": "http://127.0.0.1:9/shipment-cost",
                "method": "GET",
                "timeoutSeconds": 5,
                "retries": 1,
                "headers": [{
                    "name": "Authorization",
                    "secretKeyRef": { "name": "oracle-auth", "key": "token" },
                }],
            }]},
            "interop": { "events": ["ShipmentCreated"] },
        }
    }))
    .expect("a SmartContractService")
}

#[tokio::test]
async fn no_secret_value_appears_in_configmaps_objects_statuses_events_or_logs() {
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain listens there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("secret-scan", &[], &node).await;
    let ns = stack.ns.name().to_owned();

    // Values unique to this run, so a match cannot be a coincidence.
    let signer = Signer::from_seed(&format!("{ns}/signer"));
    signer.fund(&anvil.url).await;
    let token = format!("Bearer {}", keccak256(format!("{ns}/token")));
    let garbled = format!(
        "0x{}zz",
        &format!("{}", keccak256(format!("{ns}/garbled")))[2..40]
    );
    stack
        .create_secret("signer", "privateKey", &signer.key_hex)
        .await;
    stack.create_secret("oracle-auth", "token", &token).await;
    stack.create_secret("garbled", "privateKey", &garbled).await;

    let services = stack.services();
    services
        .create(
            &PostParams::default(),
            &service_with_secrets("shipping", &anvil.url, "signer"),
        )
        .await
        .expect("create shipping");
    services
        .create(
            &PostParams::default(),
            &service_with_secrets("garbled", &anvil.url, "garbled"),
        )
        .await
        .expect("create garbled");

    let started = std::time::Instant::now();
    stack.wait_ready("shipping", Duration::from_secs(120)).await;
    eprintln!("shipping Ready after {:?}", started.elapsed());
    // Version 1's pod goes with the upgrade, and its log with it: kept now.
    let first_pod_log = stack.sidecar_logs();
    // An upgrade writes more status, Events and a second pod.
    services
        .patch(
            "shipping",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"contract": {"version": 2}}})),
        )
        .await
        .expect("bump version");
    stack
        .wait_for(
            "shipping upgraded to version 2",
            Duration::from_secs(120),
            || async {
                let s = services.get("shipping").await.ok()?;
                (s.status.as_ref()?.version == Some(2) && kontrakt_e2e::stack::is_ready(&s))
                    .then_some(())
            },
        )
        .await;
    eprintln!("shipping upgraded after {:?}", started.elapsed());
    stack
        .wait_for("garbled refused", Duration::from_secs(60), || async {
            let s = services.get("garbled").await.ok()?;
            (condition(&s, "Ready") == Some(("False".into(), "SignerKeyInvalid".into())))
                .then_some(())
        })
        .await;
    eprintln!("garbled refused after {:?}", started.elapsed());

    let secrets = [
        ("signer key", signer.key_hex.as_str()),
        ("oracle header token", token.as_str()),
        ("garbled signer key", garbled.as_str()),
    ];
    let mut leaks = find_leaks(&stack.client, &ns, &secrets).await;

    // The logs: the operator's, and every sidecar's.
    let logs = [
        (
            "the operator's log",
            stack.operator.log_text().to_ascii_lowercase(),
        ),
        (
            "the sidecars' logs",
            format!("{first_pod_log}\n{}", stack.sidecar_logs()).to_ascii_lowercase(),
        ),
    ];
    // The scan reads real logs, not an error message in their place.
    for (log, text) in &logs {
        assert!(
            text.contains("serving") || text.contains("starting"),
            "{log} was not read:\n{}",
            &text[..text.len().min(500)]
        );
    }
    for (what, secret) in secrets {
        for (log, text) in &logs {
            if leak_forms(secret)
                .iter()
                .any(|f| text.contains(&f.to_ascii_lowercase()))
            {
                leaks.push(format!("{log} contains the {what}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "Secret values leaked:\n{}",
        leaks.join("\n")
    );
    assert_operator_restarts(&stack, 0);
}
