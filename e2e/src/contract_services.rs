//! Helpers for tests of the SmartContractService controller: fixtures, an
//! in-process controller scoped to the test's namespace, and polling.

use k8s_openapi::api::core::v1::Secret;
use kontrakt_operator::{
    api::SmartContractService,
    context::{Context, Settings},
    metrics::Metrics,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde_json::json;
use std::{sync::Arc, time::Duration};

/// Runs the controller for `namespace` in this process until the returned sender is dropped.
pub fn start_controller(
    client: Client,
    namespace: &str,
    resync: Duration,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = Settings {
        sidecar_image: "kontrakt-sidecar:test".into(),
        resync,
        chain_timeout: Duration::from_secs(3),
        watch_namespace: Some(namespace.into()),
    };
    let ctx = Context::new(client, Arc::new(Metrics::default()), settings);
    tokio::spawn(kontrakt_operator::run_controllers(ctx, async move {
        let _ = stopped.await;
    }));
    stop
}

/// Polls `probe` every 250 ms until it returns `Some`, failing the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (status, reason) of a condition.
pub fn condition(scs: &SmartContractService, type_: &str) -> Option<(String, String)> {
    let c = scs
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// A Secret holding `key` under `privateKey`.
pub async fn create_secret(client: &Client, ns: &str, name: &str, key: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        string_data: Some([("privateKey".to_owned(), key.to_owned())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
}

/// A Shipping service on `rpc_url` (chain 31337) signed by the Secret `signer`.
pub fn service(name: &str, rpc_url: &str, version: i64) -> SmartContractService {
    serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": name },
        "spec": {
            "chain": { "rpcUrl": rpc_url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": "signer", "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": version },
        }
    }))
    .expect("spec")
}

/// Deletes a service and waits until it is gone, while the test's controller
/// still runs to release its finalizer.
pub async fn delete_and_wait(services: &Api<SmartContractService>, name: &str) {
    services
        .delete(name, &kube::api::DeleteParams::default())
        .await
        .expect("delete service");
    wait_for(
        &format!("service {name} deleted"),
        Duration::from_secs(60),
        || async { services.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}
