//! The local cluster's real node (`e2e/node/up.sh`, started by `make test`): a
//! kubelet with containerd and runc, where a pod runs as real containers from
//! kontrakt's images (`make images`), exactly as the operator rendered it.
//!
//! The node is tainted; a namespace sends its pods there with two annotations
//! the apiserver's PodNodeSelector and PodTolerationRestriction admission
//! plugins apply to every pod created in it, so the operator's pods need no
//! change. Pods reach the host only at the node's bridge address: a chain for
//! them is started there ([`RealNode::anvil`]).

use k8s_openapi::api::core::v1::Pod;
use kontrakt_sidecar::devchain::Anvil;
use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, process::Command};

/// The label up.sh gives the node; the taint it registers with has the key below.
pub const NODE_LABEL: (&str, &str) = ("kontrakt.dev/node", "real");
pub const TAINT_KEY: &str = "kontrakt.dev/real-node";

/// What up.sh wrote to `node.env`.
#[derive(Debug, Clone)]
pub struct RealNode {
    pub name: String,
    /// The node's address on its bridge: the kubelet's, and the host's as pods see it.
    pub address: IpAddr,
    /// containerd's socket (for `ctr`: container PIDs, killing a container).
    pub containerd: PathBuf,
    /// up.sh's state for this node (the kubelet's PID file and start script).
    pub dir: PathBuf,
    /// Where pods reach the apiserver (a relay on the node's address).
    pub api_server_host: String,
    pub api_server_port: u16,
}

impl RealNode {
    /// The node of the cluster `make test` started (`$KONTRAKT_REAL_NODE_ENV`
    /// names its node.env). Panics when there is none: a real-node test fails,
    /// never skips, without its node.
    pub fn get() -> RealNode {
        let path = std::env::var("KONTRAKT_REAL_NODE_ENV").unwrap_or_else(|_| {
            panic!("KONTRAKT_REAL_NODE_ENV is not set: start the cluster with a real node (`make images`, then `KONTRAKT_REAL_NODE=1 e2e/cluster-up.sh`, or `make test`)")
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("no real node: cannot read {path} ({e}); `KONTRAKT_REAL_NODE=1 e2e/cluster-up.sh` writes it")
        });
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let var = |k: &str| {
            vars.get(k)
                .copied()
                .unwrap_or_else(|| panic!("{path} has no {k}"))
        };
        RealNode {
            name: var("NODE_NAME").into(),
            address: var("NODE_ADDRESS").parse().expect("NODE_ADDRESS is an IP"),
            containerd: var("CONTAINERD_ADDRESS").into(),
            dir: var("NODE_DIR").into(),
            api_server_host: var("API_SERVER_HOST").into(),
            api_server_port: var("API_SERVER_PORT")
                .parse()
                .expect("API_SERVER_PORT is a port"),
        }
    }

    /// The namespace annotations that put every pod created in it on this node.
    pub fn namespace_annotations(&self) -> BTreeMap<String, String> {
        let toleration = serde_json::json!([{
            "key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"
        }]);
        BTreeMap::from([
            (
                "scheduler.alpha.kubernetes.io/node-selector".to_owned(),
                format!("{}={}", NODE_LABEL.0, NODE_LABEL.1),
            ),
            (
                "scheduler.alpha.kubernetes.io/defaultTolerations".to_owned(),
                toleration.to_string(),
            ),
        ])
    }

    /// An anvil on the node's address (pods cannot reach the host's loopback).
    pub fn anvil(&self) -> Anvil {
        Anvil::start_at(self.address, &[]).expect("anvil on the real node's address")
    }

    /// The host PID of `container` of `pod` (containerd's task of its container ID).
    pub fn container_pid(&self, pod: &Pod, container: &str) -> Option<u32> {
        let id = container_id(pod, container)?;
        let tasks = self.ctr(&["tasks", "ls"]);
        tasks.lines().find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next()? == id).then(|| cols.next()?.parse().ok())?
        })
    }

    /// SIGKILL to `container` of `pod`, as an OOM kill or a crash would end it.
    pub fn kill_container(&self, pod: &Pod, container: &str) {
        let id = container_id(pod, container).unwrap_or_else(|| {
            panic!("{container} of {:?} has no container ID", pod.metadata.name)
        });
        self.kill_container_id(&id);
    }

    /// SIGKILL to the container `id` (containerd's task).
    pub fn kill_container_id(&self, id: &str) {
        self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
    }

    /// The kubelet's PID (up.sh records it).
    pub fn kubelet_pid(&self) -> u32 {
        let path = self.dir.join("kubelet.pid");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// SIGKILL to the kubelet (a crash: no shutdown of its pods), then the same
    /// kubelet started again by up.sh's `kubelet.start`. Returns the new PID. The
    /// containers (children of containerd's shims) keep running meanwhile.
    pub fn restart_kubelet(&self) -> u32 {
        let old = self.kubelet_pid();
        let killed = Command::new("kill")
            .args(["-KILL", &old.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success(), "kill -KILL {old} (the kubelet)");
        let gone = std::time::Instant::now();
        while std::path::Path::new(&format!("/proc/{old}")).exists() {
            assert!(
                gone.elapsed() < std::time::Duration::from_secs(10),
                "the kubelet {old} did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let started = Command::new(self.dir.join("kubelet.start"))
            .status()
            .expect("kubelet.start");
        assert!(started.success(), "kubelet.start");
        let new = self.kubelet_pid();
        assert_ne!(new, old, "kubelet.start recorded a new PID");
        new
    }

    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.containerd)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr (apt-get install containerd): {e}"));
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `containerd://<id>` of a container's status, without the scheme.
pub fn container_id(pod: &Pod, container: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == container)?
        .container_id
        .as_deref()?
        .strip_prefix("containerd://")
        .map(str::to_owned)
}

/// `kubectl logs` of every container of the pods labelled `selector` in `ns`
/// (the apiserver asks the kubelet: the path a user's `kubectl logs` takes).
pub fn pod_logs(ns: &str, selector: &str, lines: usize) -> String {
    let out = Command::new("kubectl")
        .args([
            "-n",
            ns,
            "logs",
            "-l",
            selector,
            "--all-containers",
            "--prefix",
        ])
        .arg(format!("--tail={lines}"))
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("(kubectl logs: {e})"),
    }
}

/// The chart's operator as what it is on a cluster: its Deployment's pod on the
/// real node, running the `kontrakt-operator` image with the ServiceAccount
/// token the kubelet mounts, reaching the apiserver through the node's relay
/// (`apiServer.host`), Ready by its own `/readyz` probe.
pub struct OperatorPod {
    pub namespace: String,
    pub deployment: String,
}

impl OperatorPod {
    /// The chart values that let the operator pod reach the apiserver from the node.
    pub fn chart_values(node: &RealNode) -> Vec<(&'static str, String)> {
        vec![
            ("apiServer.host", node.api_server_host.clone()),
            ("apiServer.port", node.api_server_port.to_string()),
        ]
    }

    /// Waits (at most `limit`) until the release's Deployment has an available
    /// replica; panics with its pods' state and logs otherwise.
    pub async fn wait_available(
        client: &kube::Client,
        release: &crate::operator_process::Release,
        limit: std::time::Duration,
    ) -> OperatorPod {
        use k8s_openapi::api::apps::v1::Deployment;
        let namespace = release.namespace.name().to_owned();
        let deployment = release.deployment.metadata.name.clone().expect("a name");
        let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &namespace);
        let deadline = tokio::time::Instant::now() + limit;
        let pod = OperatorPod {
            namespace,
            deployment,
        };
        loop {
            let available = api
                .get_opt(&pod.deployment)
                .await
                .ok()
                .flatten()
                .and_then(|d| d.status?.available_replicas)
                .unwrap_or(0);
            if available >= 1 {
                return pod;
            }
            if tokio::time::Instant::now() > deadline {
                let state = Command::new("kubectl")
                    .args(["-n", &pod.namespace, "get", "pods", "-o", "wide"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!(
                    "the operator Deployment {}/{} has no available replica after {limit:?}\n{state}\n{}",
                    pod.namespace,
                    pod.deployment,
                    pod.log_tail(40)
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The operator container's whole log (`kubectl logs`, through the kubelet).
    pub fn log_text(&self) -> String {
        Command::new("kubectl")
            .args(["-n", &self.namespace, "logs"])
            .arg(format!("deployment/{}", self.deployment))
            .args(["-c", "operator", "--tail=-1"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Restarts of the operator containers so far (the kubelet's count), for
    /// assertions that nothing crashed.
    pub fn restarts(&self) -> u32 {
        let out = Command::new("kubectl")
            .args(["-n", &self.namespace, "get", "pods", "-o"])
            .arg("jsonpath={.items[*].status.containerStatuses[*].restartCount}")
            .output()
            .expect("kubectl get pods");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse::<u32>().expect("a restart count"))
            .sum()
    }

    /// `http://<pod IP>:<port>/metrics` of the operator pod (the host reaches pods on the
    /// node's bridge), if it runs.
    pub fn metrics_url(&self) -> Option<String> {
        let out = Command::new("kubectl")
            .args(["-n", &self.namespace, "get", "pods", "-o"])
            .arg("jsonpath={.items[0].status.podIP} {.items[0].spec.containers[0].ports[0].containerPort}")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (ip, port) = text.trim().split_once(' ')?;
        Some(format!("http://{ip}:{port}/metrics"))
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
