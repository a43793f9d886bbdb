//! One test's whole installation: a workload namespace, the chart installed
//! for it, the operator binary running with the chart's ServiceAccount, and
//! where the sidecar pods run: on kwok's fake nodes with the pod runner playing
//! the kubelet ([`Stack::start`]), or as real containers on the real node
//! ([`Stack::start_on_real_node`]).

use crate::{
    TestNamespace,
    chain::{DeployAudit, ExpectedPair, Signer, nonce},
    cluster,
    contract_services::condition,
    operator_process::{OperatorProcess, Release, forbidden_lines, operator_binary},
    pod_runner::{PodRunner, SIDECAR_CONTAINER, SIDECAR_SELECTOR, sidecar_binary},
    real_node::{OperatorPod, RealNode, pod_logs},
};
use alloy::primitives::Address;
use k8s_openapi::api::core::v1::Secret;
use kontrakt_operator::api::SmartContractService;
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::json;
use std::{path::PathBuf, time::Duration};

/// The binaries a stack runs, built once per test.
pub struct Binaries {
    pub operator: PathBuf,
    pub sidecar: PathBuf,
}

/// Builds both binaries (one cargo call after the other: they share a lock).
pub async fn binaries() -> Binaries {
    tokio::task::spawn_blocking(|| Binaries {
        operator: operator_binary(),
        sidecar: sidecar_binary(),
    })
    .await
    .expect("cargo build")
}

/// Where a stack's pods run.
pub enum Placement {
    /// On kwok's fake nodes, the pod runner playing the kubelet with these binaries
    /// (the operator a local process).
    PodRunner(Binaries),
    /// As real containers of kontrakt's images on the real node (the operator too).
    RealNode(RealNode),
}

impl Placement {
    /// The address where servers the pods must reach (a chain, a device) listen: the
    /// host's loopback for the pod runner's processes, the node's bridge address for
    /// containers (they cannot reach the host's loopback).
    pub fn host(&self) -> std::net::IpAddr {
        match self {
            Placement::PodRunner(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            Placement::RealNode(node) => node.address,
        }
    }

    /// The annotations a namespace needs for its pods to be placed so.
    pub fn namespace_annotations(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            Placement::PodRunner(_) => Default::default(),
            Placement::RealNode(node) => node.namespace_annotations(),
        }
    }
}

/// How a stack runs the operator.
pub enum Operator {
    /// The binary as a local process with the chart's environment and token (fake nodes).
    Process(OperatorProcess),
    /// The chart's Deployment from the operator image, on the real node.
    Pod(OperatorPod),
}

impl Operator {
    /// The local process; panics for an operator pod.
    pub fn process(&self) -> &OperatorProcess {
        match self {
            Operator::Process(p) => p,
            Operator::Pod(_) => panic!("this stack runs the operator as a pod on the real node"),
        }
    }

    pub fn log_text(&self) -> String {
        match self {
            Operator::Process(p) => p.log_text(),
            Operator::Pod(p) => p.log_text(),
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        match self {
            Operator::Process(p) => p.log_tail(n),
            Operator::Pod(p) => p.log_tail(n),
        }
    }

    /// Where its `/metrics` are served (for the demo's summary).
    pub fn metrics_url(&self) -> String {
        match self {
            Operator::Process(p) => format!("http://{}/metrics", p.listen),
            Operator::Pod(p) => p.metrics_url().unwrap_or_default(),
        }
    }

    /// Where to read its log (for the demo's summary).
    pub fn log_hint(&self) -> String {
        match self {
            Operator::Process(p) => p.log.display().to_string(),
            Operator::Pod(p) => format!(
                "kubectl -n {} logs deployment/{}",
                p.namespace, p.deployment
            ),
        }
    }

    /// Times the operator was started again (by the supervisor, or the kubelet).
    pub fn restarts(&self) -> u32 {
        match self {
            Operator::Process(p) => p.restarts(),
            Operator::Pod(p) => p.restarts(),
        }
    }

    /// Log lines that say an API call was refused.
    pub fn forbidden_lines(&self) -> Vec<String> {
        forbidden_lines(&self.log_text())
    }
}

/// The identity (POD_NAME) of the operator replica a stack runs.
pub const OPERATOR_POD: &str = "kontrakt-local-0";

/// Everything one test runs. Dropped in field order: the sidecars stop, the
/// operator is killed, then both namespaces are deleted (on the real node the
/// kubelet then stops the pods).
pub struct Stack {
    /// The host-process pod runner (fake nodes); None on the real node.
    pub runner: Option<PodRunner>,
    /// The real node the pods run on; None on fake nodes.
    pub node: Option<RealNode>,
    pub operator: Operator,
    pub release: Release,
    pub ns: TestNamespace,
    pub client: Client,
}

impl Stack {
    /// A fresh namespace `<prefix>-…`, the chart installed with `sets` to
    /// watch it, the operator and the pod runner started.
    pub async fn start(prefix: &str, sets: &[(&str, &str)], binaries: &Binaries) -> Stack {
        let client = cluster().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let release_ns = TestNamespace::create(&client, "kontrakt-op").await;
        Self::start_in(ns, release_ns, sets, binaries).await
    }

    /// The same in given namespaces: the workload's `ns` and the release's `release_ns`.
    pub async fn start_in(
        ns: TestNamespace,
        release_ns: TestNamespace,
        sets: &[(&str, &str)],
        binaries: &Binaries,
    ) -> Stack {
        let client = cluster().await;
        let release = Release::install(&client, release_ns, ns.name(), sets).await;
        let operator =
            OperatorProcess::start(&client, &release, binaries.operator.clone(), OPERATOR_POD)
                .await;
        let runner = PodRunner::start(client.clone(), ns.name(), binaries.sidecar.clone());
        Stack {
            runner: Some(runner),
            node: None,
            operator: Operator::Process(operator),
            release,
            ns,
            client,
        }
    }

    /// The chart and the operator in `ns`/`release_ns`, the pods where `placement` says.
    pub async fn start_placed(
        ns: TestNamespace,
        release_ns: TestNamespace,
        sets: &[(&str, &str)],
        placement: &Placement,
    ) -> Stack {
        match placement {
            Placement::PodRunner(binaries) => Self::start_in(ns, release_ns, sets, binaries).await,
            Placement::RealNode(node) => {
                Self::start_on_real_node_in(ns, release_ns, sets, node).await
            }
        }
    }

    /// Like [`Stack::start`], but everything runs on `node` as real containers
    /// of the imported images: the chart's operator Deployment (in an annotated
    /// release namespace, reaching the apiserver through the node's relay) and
    /// the sidecar pods it renders. No pod runner, no operator process, nothing
    /// rewritten. Returns once the operator pod is Ready.
    pub async fn start_on_real_node(prefix: &str, sets: &[(&str, &str)], node: &RealNode) -> Stack {
        let client = cluster().await;
        let ns =
            TestNamespace::create_annotated(&client, prefix, node.namespace_annotations()).await;
        let release_ns =
            TestNamespace::create_annotated(&client, "kontrakt-op", node.namespace_annotations())
                .await;
        Self::start_on_real_node_in(ns, release_ns, sets, node).await
    }

    /// The same in given namespaces (annotated with [`RealNode::namespace_annotations`]).
    pub async fn start_on_real_node_in(
        ns: TestNamespace,
        release_ns: TestNamespace,
        sets: &[(&str, &str)],
        node: &RealNode,
    ) -> Stack {
        let client = cluster().await;
        let api = OperatorPod::chart_values(node);
        let mut all: Vec<(&str, &str)> = api.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(sets);
        let release = Release::install(&client, release_ns, ns.name(), &all).await;
        let operator =
            OperatorPod::wait_available(&client, &release, Duration::from_secs(120)).await;
        Stack {
            runner: None,
            node: Some(node.clone()),
            operator: Operator::Pod(operator),
            release,
            ns,
            client,
        }
    }

    /// No sidecar runs any more: no process of the pod runner, or no sidecar
    /// pod left on the real node (the kubelet removes a pod's object only once
    /// its containers stopped).
    pub async fn sidecars_stopped(&self) -> bool {
        match &self.runner {
            Some(runner) => runner.running().is_empty(),
            None => Api::<k8s_openapi::api::core::v1::Pod>::namespaced(
                self.client.clone(),
                self.ns.name(),
            )
            .list(&ListParams::default().labels(SIDECAR_SELECTOR))
            .await
            .is_ok_and(|l| l.items.is_empty()),
        }
    }

    /// The pod runner of a stack on fake nodes.
    pub fn runner(&self) -> &PodRunner {
        self.runner
            .as_ref()
            .expect("this stack runs its pods on the real node, not through the pod runner")
    }

    /// The running sidecar pod whose name starts with `prefix`, wherever it runs.
    pub async fn sidecar_pod(&self, prefix: &str) -> Option<SidecarPod> {
        if let Some(runner) = &self.runner {
            let (name, addr) = runner
                .running()
                .into_iter()
                .find(|(pod, _)| pod.starts_with(prefix))?;
            let pid = runner.pid(&name)?;
            return Some(SidecarPod {
                url: format!("http://{addr}"),
                instance: format!("pid {pid}"),
                name,
            });
        }
        let pods =
            Api::<k8s_openapi::api::core::v1::Pod>::namespaced(self.client.clone(), self.ns.name())
                .list(&ListParams::default().labels(SIDECAR_SELECTOR))
                .await
                .ok()?;
        pods.items.into_iter().find_map(|p| {
            let name = p.metadata.name.clone()?;
            if p.metadata.deletion_timestamp.is_some() || !name.starts_with(prefix) {
                return None;
            }
            let container = crate::real_node::container_id(&p, SIDECAR_CONTAINER)?;
            let status = p.status?;
            let running = status.container_statuses.iter().flatten().any(|c| {
                c.name == SIDECAR_CONTAINER && c.state.as_ref().is_some_and(|s| s.running.is_some())
            });
            let ip = status.pod_ip.filter(|_| running)?;
            Some(SidecarPod {
                url: format!("http://{ip}:{}", kontrakt_protocol::mounts::SIDECAR_PORT),
                instance: format!("container {container}"),
                name,
            })
        })
    }

    /// SIGKILL to the sidecar of `pod` (an OOM kill, a crash): the pod runner's
    /// process, or the container on the real node. Its kubelet starts it again.
    pub fn kill_sidecar(&self, pod: &SidecarPod) {
        match (&self.runner, &self.node) {
            (Some(runner), _) => {
                let pid = runner
                    .pid(&pod.name)
                    .unwrap_or_else(|| panic!("pod {} runs no process", pod.name));
                let status = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .expect("kill");
                assert!(status.success(), "kill -KILL {pid}");
            }
            (None, Some(node)) => {
                let id = pod
                    .instance
                    .strip_prefix("container ")
                    .expect("a container instance");
                node.kill_container_id(id);
            }
            (None, None) => unreachable!("a stack runs its pods somewhere"),
        }
    }

    pub fn services(&self) -> Api<SmartContractService> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// One line per service, Deployment and sidecar pod of the namespace: what
    /// the apiserver says now (the Ready condition with its message, available
    /// replicas, pod phase and readiness). Printed first in a failure, so even a
    /// cut-off log says which object stood still and why.
    pub async fn summary(&self) -> String {
        use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
        let mut lines = vec!["--- objects now:".to_owned()];
        match self.services().list(&ListParams::default()).await {
            Ok(list) => lines.extend(list.items.iter().map(|s| {
                let ready = s
                    .status
                    .as_ref()
                    .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"));
                match ready {
                    Some(c) => format!(
                        "SmartContractService {}: Ready={} {} (since {}): {}",
                        s.metadata.name.as_deref().unwrap_or_default(),
                        c.status,
                        c.reason,
                        c.last_transition_time.0,
                        c.message.chars().take(200).collect::<String>()
                    ),
                    None => format!(
                        "SmartContractService {}: no Ready condition",
                        s.metadata.name.as_deref().unwrap_or_default()
                    ),
                }
            })),
            Err(e) => lines.push(format!("SmartContractServices: cannot list: {e}")),
        }
        match Api::<Deployment>::namespaced(self.client.clone(), self.ns.name())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => lines.extend(list.items.iter().map(|d| {
                let status = d.status.clone().unwrap_or_default();
                format!(
                    "Deployment {}: generation {:?} observed {:?}, {} of {} available",
                    d.metadata.name.as_deref().unwrap_or_default(),
                    d.metadata.generation,
                    status.observed_generation,
                    status.available_replicas.unwrap_or(0),
                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            })),
            Err(e) => lines.push(format!("Deployments: cannot list: {e}")),
        }
        match Api::<Pod>::namespaced(self.client.clone(), self.ns.name())
            .list(&ListParams::default().labels(SIDECAR_SELECTOR))
            .await
        {
            Ok(list) => lines.extend(list.items.iter().map(|p| {
                let status = p.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status)
                    .unwrap_or_else(|| "-".into());
                format!(
                    "Pod {}: {} on {}, Ready={ready}{}",
                    p.metadata.name.as_deref().unwrap_or_default(),
                    status.phase.unwrap_or_default(),
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                    if p.metadata.deletion_timestamp.is_some() {
                        " (deleting)"
                    } else {
                        ""
                    },
                )
            })),
            Err(e) => lines.push(format!("Pods: cannot list: {e}")),
        }
        // Whether the operator's passes ran at all while the wait lasted.
        if let Operator::Process(p) = &self.operator {
            for name in [
                r#"kontrakt_reconciles_total{kind="SmartContractService"}"#,
                r#"kontrakt_reconcile_duration_seconds_count{kind="SmartContractService"}"#,
            ] {
                lines.push(format!(
                    "operator metric {name} = {:?}",
                    p.metric(name).await
                ));
            }
        }
        lines.join("\n")
    }

    /// The whole log of every sidecar running now: the pod runner's processes, or
    /// `kubectl logs` of the sidecar pods on the real node (the kubelet's path).
    pub fn sidecar_logs(&self) -> String {
        match &self.runner {
            Some(runner) => runner.log_tails(100_000),
            None => pod_logs(self.ns.name(), SIDECAR_SELECTOR, 100_000),
        }
    }

    /// The operator's log tail and every sidecar's, for failure messages.
    pub fn diagnostics(&self) -> String {
        let sidecars = match &self.runner {
            Some(runner) => runner.log_tails(25),
            None => pod_logs(self.ns.name(), SIDECAR_SELECTOR, 25),
        };
        let operator = match &self.operator {
            Operator::Process(p) => format!("pid {:?}", p.pid()),
            Operator::Pod(p) => format!("Deployment {}/{}", p.namespace, p.deployment),
        };
        format!(
            "--- operator ({operator}):\n{}\n{}",
            self.operator.log_tail(40),
            sidecars
        )
    }

    /// A Secret `name` holding `value` under `key`.
    pub async fn create_secret(&self, name: &str, key: &str, value: &str) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            string_data: Some([(key.to_owned(), value.to_owned())].into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), self.ns.name())
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("create Secret {name}: {e}"));
    }

    /// Polls until `probe` says yes; on timeout fails with `what` and the diagnostics.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}\n{}",
                    self.summary().await,
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until service `name` is Ready=True and returns it.
    pub async fn wait_ready(&self, name: &str, limit: Duration) -> SmartContractService {
        let services = self.services();
        self.wait_for(&format!("{name} Ready=True"), limit, || async {
            let s = services.get_opt(name).await.ok()??;
            is_ready(&s).then_some(s)
        })
        .await
    }
}

/// A running sidecar pod as a test sees it, through either kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarPod {
    pub name: String,
    /// `http://<address>:<port>` of its sidecar: the process's loopback address under the
    /// pod runner, the pod's IP on the real node (the host reaches pods on the node's bridge).
    pub url: String,
    /// What changes when its sidecar starts again: the process (pod runner) or the
    /// container (real node).
    pub instance: String,
}

/// Ready=True.
pub fn is_ready(s: &SmartContractService) -> bool {
    condition(s, "Ready").is_some_and(|(status, _)| status == "True")
}

/// A Shipping service on `rpc_url` (chain 31337) signed by the key under
/// `privateKey` of the Secret `signer_secret`.
pub fn shipping(
    name: &str,
    rpc_url: &str,
    signer_secret: &str,
    version: i64,
) -> SmartContractService {
    serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": name },
        "spec": {
            "chain": { "rpcUrl": rpc_url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": signer_secret, "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": version },
        }
    }))
    .expect("a SmartContractService")
}

/// Transactions one pair costs its signer.
pub const TRANSACTIONS_PER_PAIR: u64 = 3;

/// The pair a (Ready) service's status names.
pub fn expected_pair(s: &SmartContractService) -> ExpectedPair {
    let st = s.status.as_ref().expect("status");
    let parse = |a: &Option<String>| -> Address {
        a.as_deref()
            .expect("address in status")
            .parse()
            .expect("an address")
    };
    ExpectedPair {
        service: s.metadata.name.clone().unwrap_or_default(),
        database: parse(&st.database_address),
        logic: parse(&st.contract_address),
    }
}

/// Creates services `svc-<i>` for `i` in `indices`, each with its own funded
/// signer in Secret `signer-<i>`; returns the signers in that order.
pub async fn create_services(
    stack: &Stack,
    rpc_url: &str,
    indices: std::ops::Range<usize>,
) -> Vec<Signer> {
    let mut signers = Vec::new();
    for i in indices.clone() {
        let signer = Signer::from_seed(&format!("{}/signer-{i}", stack.ns.name()));
        signer.fund(rpc_url).await;
        stack
            .create_secret(&format!("signer-{i}"), "privateKey", &signer.key_hex)
            .await;
        signers.push(signer);
    }
    let services = stack.services();
    let creates = indices.map(|i| {
        let services = services.clone();
        let scs = shipping(&format!("svc-{i}"), rpc_url, &format!("signer-{i}"), 1);
        async move {
            services
                .create(&PostParams::default(), &scs)
                .await
                .unwrap_or_else(|e| panic!("create svc-{i}: {e}"))
        }
    });
    futures::future::join_all(creates).await;
    signers
}

/// All services of the stack, once every one of `count` is Ready.
pub async fn all_ready(stack: &Stack, count: usize, limit: Duration) -> Vec<SmartContractService> {
    let services = stack.services();
    stack
        .wait_for(&format!("all {count} services Ready"), limit, || async {
            let list = services.list(&ListParams::default()).await.ok()?.items;
            (list.len() == count && list.iter().all(is_ready)).then_some(list)
        })
        .await
}

/// One pair per service on chain, and each signer's nonce is one pair's worth.
pub async fn assert_one_pair_each(
    stack: &Stack,
    rpc_url: &str,
    services: &[SmartContractService],
    signers: &[Signer],
) {
    let pairs: Vec<ExpectedPair> = services.iter().map(expected_pair).collect();
    let audit = DeployAudit::read(rpc_url).await;
    if let Err(e) = audit.check_one_pair_each(&pairs) {
        panic!("{e}\n{}", stack.diagnostics());
    }
    for (i, signer) in signers.iter().enumerate() {
        let n = nonce(rpc_url, signer.address).await;
        assert_eq!(
            n, TRANSACTIONS_PER_PAIR,
            "the signer of svc-{i} sent {n} transactions, expected {TRANSACTIONS_PER_PAIR}"
        );
    }
}

/// No line of the operator's log says an API call was refused.
pub fn assert_not_refused(stack: &Stack) {
    let refused = stack.operator.forbidden_lines();
    assert!(
        refused.is_empty(),
        "the operator was refused API calls:\n{}",
        refused.join("\n")
    );
}

/// The operator process was started again exactly `expected` times: a crash
/// the supervisor papered over fails the test here, with the log.
pub fn assert_operator_restarts(stack: &Stack, expected: u32) {
    let restarts = stack.operator.restarts();
    assert_eq!(
        restarts,
        expected,
        "the operator was restarted {restarts} times, expected {expected}\n{}",
        stack.diagnostics()
    );
}
