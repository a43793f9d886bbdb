//! Shared pieces of the black-box tests: a client for the real local control
//! plane, and throwaway namespaces.
//!
//! The tests need the cluster from `e2e/cluster-up.sh` (`make test` starts it
//! and exports `KUBECONFIG`). Without it they fail loudly: they never skip.

pub mod chain;
pub mod contract_services;
pub mod contracts;
pub mod demo;
pub mod devices;
pub mod operator_process;
pub mod pod_runner;
pub mod real_node;
pub mod secret_scan;
pub mod stack;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

/// The workspace root (the e2e crate lives in it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives in the workspace")
        .to_path_buf()
}

/// Builds `bin` of `package` (`cargo build -p <package> --bin <bin>`) and
/// returns its path under `$CARGO_TARGET_DIR/debug/` or `<workspace>/target/debug/`.
/// Panics when the build fails or the binary is absent. Blocking: call it
/// from `spawn_blocking` in async tests.
pub fn cargo_binary(package: &str, bin: &str) -> PathBuf {
    let workspace = workspace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", package, "--bin", bin])
        .current_dir(&workspace)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{cargo} build -p {package}`: {e}"));
    assert!(
        status.success(),
        "`cargo build -p {package} --bin {bin}` failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let candidates = [
        target.join("debug").join(bin),
        workspace.join("target/debug").join(bin),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("{bin} was built but is in none of {candidates:?}"))
}

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

/// The Pod Security level every test namespace enforces: the real apiserver
/// then admits the operator's pods (and the chart's) only if they comply.
pub const POD_SECURITY_ENFORCE: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");

/// A namespace with a random name, deleted when dropped.
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`, labelled to enforce Pod Security "restricted".
    pub async fn create(client: &Client, prefix: &str) -> Self {
        Self::create_annotated(client, prefix, Default::default()).await
    }

    /// [`Self::create`] with `annotations` (e.g. [`real_node::RealNode::namespace_annotations`]).
    pub async fn create_annotated(
        client: &Client,
        prefix: &str,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!("{prefix}-{:x}{:x}", std::process::id(), nanos);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                annotations: Some(annotations),
                labels: Some(
                    [(
                        POD_SECURITY_ENFORCE.0.to_owned(),
                        POD_SECURITY_ENFORCE.1.to_owned(),
                    )]
                    .into(),
                ),
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

    /// `name` itself, created (or, if it exists, labelled) with server-side
    /// apply: for `make demo`, whose namespaces keep their names across runs.
    /// Deleted when dropped, like any other.
    pub async fn named(
        client: &Client,
        name: &str,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Self {
        let ns = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": { POD_SECURITY_ENFORCE.0: POD_SECURITY_ENFORCE.1 },
                "annotations": annotations,
            },
        });
        Api::<Namespace>::all(client.clone())
            .patch(
                name,
                &kube::api::PatchParams::apply("kontrakt-e2e").force(),
                &kube::api::Patch::Apply(&ns),
            )
            .await
            .unwrap_or_else(|e| panic!("apply namespace {name}: {e}"));
        Self { name: name.into() }
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
                Api::<Namespace>::all(client.clone())
                    .delete(&name, &DeleteParams::background())
                    .await?;
                release_finalizers(&client, &name).await;
                Ok::<(), kube::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("warning: could not delete test namespace {}", self.name);
        }
    }
}

/// The kontrakt kinds (kind, plural), whose objects carry the operator's finalizer.
pub const KONTRAKT_KINDS: [(&str, &str); 3] = [
    ("SmartContractService", "smartcontractservices"),
    ("DataStream", "datastreams"),
    ("AccessPolicy", "accesspolicies"),
];

/// Removes the finalizers of the kontrakt objects of a namespace being
/// deleted: the test's operator is gone by now, and an object it would have
/// retired must not keep the namespace Terminating forever. Deletes them and
/// waits (at most 15 s) until they are all gone.
async fn release_finalizers(client: &Client, ns: &str) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut remaining = 0;
        for (kind, plural) in KONTRAKT_KINDS {
            let gvk = GroupVersionKind::gvk("kontrakt.dev", "v1alpha1", kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for o in list.items {
                remaining += 1;
                let name = o.metadata.name.clone().unwrap_or_default();
                // Delete it now rather than wait for the namespace controller's pass;
                // strip finalizers only once deleting (before, a live operator could add
                // its finalizer back).
                if o.metadata.deletion_timestamp.is_none() {
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                } else if o
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty())
                {
                    let patch = serde_json::json!({ "metadata": { "finalizers": null } });
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }
        }
        if remaining == 0 || tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
