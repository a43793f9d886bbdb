//! Shared pieces of the black-box tests: a client for the real local control
//! plane, and throwaway namespaces.
//!
//! The tests need the cluster from `e2e/cluster-up.sh` (`make test` starts it
//! and exports `KUBECONFIG`). Without it they fail loudly: they never skip.

pub mod contract_services;
pub mod pod_runner;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use std::time::{SystemTime, UNIX_EPOCH};

/// A client for the local control plane named by `KUBECONFIG`.
///
/// Panics with instructions when there is none: a test that needs the cluster
/// must fail, not pass, when the cluster is missing.
pub async fn cluster() -> Client {
    let client = connect().await;
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the apiserver in $KUBECONFIG does not answer ({e}): is the local control plane up? run `e2e/cluster-up.sh`")
    });
    client
}

async fn connect() -> Client {
    Client::try_from(kubeconfig().await).expect("client from kubeconfig")
}

/// The client configuration of the local control plane named by `KUBECONFIG`.
pub async fn kubeconfig() -> Config {
    let path = std::env::var("KUBECONFIG").unwrap_or_else(|_| {
        panic!("KUBECONFIG is not set: start the local control plane with `e2e/cluster-up.sh` (or run `make test`)")
    });
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {path}: {e}"));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {path} is unusable: {e}"))
}

/// A namespace with a random name, deleted when dropped.
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!("{prefix}-{:x}{:x}", std::process::id(), nanos);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await, and the test's own runtime is blocked here, so a
        // client of that runtime would deadlock: delete with a fresh client on a
        // short-lived runtime of its own. Runs even when the test panicked.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = connect().await;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("warning: could not delete test namespace {}", self.name);
        }
    }
}
