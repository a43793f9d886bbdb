//! The operator as a user installs it: `helm install` of charts/kontrakt, then
//! the `kontrakt-operator` binary run as a local process (kwok runs no
//! containers) with the environment of the chart's Deployment and a kubeconfig
//! holding a token of the chart's ServiceAccount (TokenRequest API). Every call
//! the operator makes is authorised by the chart's RBAC and nothing else.

use crate::TestNamespace;
use k8s_openapi::api::{
    apps::v1::Deployment,
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{Api, Client, api::PostParams, config::Kubeconfig};
use serde_json::json;
use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The release name of every test install (each test has its own release namespace).
pub const RELEASE: &str = "kontrakt";
/// The operator container of the chart's Deployment.
const OPERATOR_CONTAINER: &str = "operator";
/// Lifetime of the ServiceAccount token: longer than any test.
const TOKEN_SECONDS: i64 = 3600;

/// Builds `kontrakt-operator` (see [`crate::cargo_binary`]). Blocking.
pub fn operator_binary() -> PathBuf {
    crate::cargo_binary("kontrakt-operator", "kontrakt-operator")
}

/// helm: `.kontrakt/bin/helm` of the workspace (linked by `make controlplane`
/// and `e2e/cluster-up.sh`), else the one on PATH.
fn helm() -> PathBuf {
    let local = crate::workspace().join(".kontrakt/bin/helm");
    if local.is_file() {
        local
    } else {
        PathBuf::from("helm")
    }
}

/// The chart installed into a namespace of its own, reconciling `watch_namespace` only.
pub struct Release {
    /// The release namespace (deleted with the release in it on drop).
    pub namespace: TestNamespace,
    pub watch_namespace: String,
    /// The chart's operator Deployment as the apiserver stored it.
    pub deployment: Deployment,
}

impl Release {
    /// `helm install kontrakt charts/kontrakt --skip-crds` into `namespace`
    /// (deleted with the release) with `watchNamespace=<watch_namespace>` and `sets`.
    pub async fn install(
        client: &Client,
        namespace: TestNamespace,
        watch_namespace: &str,
        sets: &[(&str, &str)],
    ) -> Release {
        let chart = crate::workspace().join("charts/kontrakt");
        let mut args: Vec<String> = vec![
            "install".into(),
            RELEASE.into(),
            chart.display().to_string(),
            "--namespace".into(),
            namespace.name().into(),
            "--skip-crds".into(),
            "--set".into(),
            format!("watchNamespace={watch_namespace}"),
        ];
        for (k, v) in sets {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        let helm = helm();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&helm)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()))
        })
        .await
        .expect("helm install");
        assert!(
            output.status.success(),
            "helm install into {} failed ({}):\n{}{}",
            namespace.name(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let deployment = Api::<Deployment>::namespaced(client.clone(), namespace.name())
            .get(RELEASE)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the chart's Deployment {RELEASE} in {}: {e}",
                    namespace.name()
                )
            });
        Release {
            namespace,
            watch_namespace: watch_namespace.into(),
            deployment,
        }
    }

    /// The chart's ServiceAccount (the one its Deployment runs as).
    pub fn service_account(&self) -> String {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.service_account_name.clone())
            .expect("the chart's Deployment names a ServiceAccount")
    }

    /// A kubeconfig at `path` for the same apiserver as `$KUBECONFIG`,
    /// authenticated only by a fresh token of the chart's ServiceAccount.
    pub async fn write_token_kubeconfig(&self, client: &Client, path: &Path) {
        let sa = self.service_account();
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = Api::<ServiceAccount>::namespaced(client.clone(), self.namespace.name())
            .create_token_request(&sa, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for ServiceAccount {sa}: {e}"))
            .status
            .expect("a TokenRequest answer has a status")
            .token;

        let admin_path = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
        let admin = Kubeconfig::read_from(&admin_path)
            .unwrap_or_else(|e| panic!("cannot read kubeconfig {admin_path}: {e}"));
        let context = admin
            .current_context
            .as_deref()
            .and_then(|c| admin.contexts.iter().find(|n| n.name == c))
            .and_then(|n| n.context.as_ref())
            .expect("the kubeconfig has a current context");
        let cluster = admin
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .expect("the current context names a cluster");
        let user = format!("system:serviceaccount:{}:{sa}", self.namespace.name());
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "local", "cluster": {
                "server": cluster.server,
                "certificate-authority-data": cluster.certificate_authority_data,
            }}],
            "users": [{ "name": user, "user": { "token": token } }],
            "contexts": [{ "name": "operator", "context": { "cluster": "local", "user": user } }],
            "current-context": "operator",
        });
        write_private(path, &serde_json::to_vec_pretty(&kubeconfig).expect("json"));
    }

    /// The operator container's environment as the chart renders it, with
    /// the downward-API fields filled in for a pod named `pod_name` and the
    /// HTTP server moved to `listen`.
    pub fn operator_env(&self, pod_name: &str, listen: SocketAddr) -> Vec<(String, String)> {
        let container = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == OPERATOR_CONTAINER))
            .expect("the chart's Deployment has the operator container");
        container
            .env
            .iter()
            .flatten()
            .map(|var| {
                let value = match (&var.value, &var.value_from) {
                    (Some(v), _) => v.clone(),
                    (None, Some(from)) => {
                        let field = from
                            .field_ref
                            .as_ref()
                            .map(|f| f.field_path.as_str())
                            .unwrap_or_default();
                        match field {
                            "metadata.name" => pod_name.into(),
                            "metadata.namespace" => self.namespace.name().into(),
                            other => panic!(
                                "env {} of the chart's operator: valueFrom {other:?} is not supported here",
                                var.name
                            ),
                        }
                    }
                    (None, None) => String::new(),
                };
                let value = if var.name == "KONTRAKT_LISTEN" {
                    listen.to_string()
                } else {
                    value
                };
                (var.name.clone(), value)
            })
            .collect()
    }
}

/// The operator binary running as one replica of the chart's Deployment,
/// started again whenever it exits, as the kubelet restarts a container
/// (`restartPolicy: Always`): e.g. after it lost its Lease and exited on
/// purpose, or was killed. The kubelet's crash backoff starts at 10 s; here it
/// is 1 s per restart so far, at most 5 s, to keep tests short.
pub struct OperatorProcess {
    pub listen: SocketAddr,
    pub log: PathBuf,
    state: Arc<Mutex<Supervised>>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    /// The kubeconfig (with the token) and the log; removed on drop.
    _dir: tempfile::TempDir,
}

/// What the supervisor thread and the test share.
struct Supervised {
    launch: Launch,
    child: Option<Child>,
    restarts: u32,
    /// No new process before this.
    not_before: Instant,
    stop: bool,
}

/// How to start the process.
struct Launch {
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Child {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("operator log file");
        let err = out.try_clone().expect("operator log file");
        Command::new(&self.binary)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()))
    }

    /// A line of the harness's own in the operator's log.
    fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let _ = writeln!(f, "[e2e kubelet] {line}");
        }
    }
}

impl Supervised {
    /// Records that the process is gone and when it may start again.
    fn exited(&mut self, how: &str) {
        self.child = None;
        self.restarts += 1;
        let delay = Duration::from_secs(u64::from(self.restarts.min(5)));
        self.not_before = Instant::now() + delay;
        self.launch.note(&format!(
            "the operator {how}; restart {} in {delay:?}",
            self.restarts
        ));
    }
}

fn lock(state: &Mutex<Supervised>) -> std::sync::MutexGuard<'_, Supervised> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl OperatorProcess {
    /// Starts `binary` as replica `pod_name` of `release`: the chart's env, a
    /// free loopback port for /metrics and /readyz, and the ServiceAccount's token.
    pub async fn start(
        client: &Client,
        release: &Release,
        binary: PathBuf,
        pod_name: &str,
    ) -> OperatorProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        release.write_token_kubeconfig(client, &kubeconfig).await;
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let mut env = release.operator_env(pod_name, listen);
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        let log = dir.path().join("operator.log");
        let launch = Launch {
            binary,
            env,
            log: log.clone(),
        };
        let child = launch.spawn();
        let state = Arc::new(Mutex::new(Supervised {
            launch,
            child: Some(child),
            restarts: 0,
            not_before: Instant::now(),
            stop: false,
        }));
        let supervisor = {
            let state = state.clone();
            std::thread::spawn(move || supervise(&state))
        };
        let operator = OperatorProcess {
            listen,
            log,
            state,
            supervisor: Some(supervisor),
            _dir: dir,
        };
        operator.wait_listening().await;
        operator
    }

    /// Waits until the operator's HTTP server listens (it binds before it leads).
    pub async fn wait_listening(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(self.listen).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operator does not listen on {} after 30 s; its log:\n{}",
                self.listen,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The running process's id (none between an exit and the restart).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.state).child.as_ref().map(Child::id)
    }

    /// How often the process exited (or was killed) and was started again.
    pub fn restarts(&self) -> u32 {
        lock(&self.state).restarts
    }

    /// SIGKILL, no chance to clean up (a node dying, an OOM kill). The
    /// supervisor starts it again after its delay, as the kubelet would.
    pub fn kill_9(&self) {
        let mut state = lock(&self.state);
        if let Some(mut child) = state.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            state.exited("was killed with SIGKILL");
        }
    }

    /// SIGKILL and no restart: the replica's pod (or node) is gone for good,
    /// so only another replica can take over.
    pub fn kill_9_for_good(&self) {
        let mut state = lock(&self.state);
        state.stop = true;
        if let Some(mut child) = state.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            state
                .launch
                .note("the operator was killed with SIGKILL; its pod is gone");
        }
    }

    /// `GET /readyz` of the operator: (status code, body), e.g. (200, "standby (leader: …)").
    pub async fn readyz(&self) -> Option<(u16, String)> {
        self.get("/readyz").await
    }

    /// The value of the sample `name` (with its labels, as written) in `GET /metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
            .trim()
            .parse()
            .ok()
    }

    /// `GET path` of the operator's HTTP port: (status code, body).
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.listen).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        Some((code, body))
    }

    /// Waits until a process other than `old` runs and listens.
    pub async fn wait_restarted(&self, old: u32) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.pid().is_none_or(|p| p == old) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operator was not restarted after 30 s; its log:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_listening().await;
    }

    /// The whole log so far (the operator's own output: never a token or key).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines that say an API call was refused (RBAC the chart lacks).
    pub fn forbidden_lines(&self) -> Vec<String> {
        forbidden_lines(&self.log_text())
    }
}

/// Lines of an operator log that say an API call was refused.
pub fn forbidden_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("forbidden") || l.contains("\"code\":403") || l.contains("code: 403")
        })
        .map(str::to_owned)
        .collect()
}

/// The supervisor thread: restarts the process when it exits, until stopped.
fn supervise(state: &Mutex<Supervised>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut s = lock(state);
        if s.stop {
            return;
        }
        let exited = match s.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status),
            _ => None,
        };
        if let Some(status) = exited {
            s.exited(&format!("exited ({status})"));
        }
        if s.child.is_none() && Instant::now() >= s.not_before {
            let child = s.launch.spawn();
            s.child = Some(child);
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.state);
            s.stop = true;
            if let Some(mut child) = s.child.take() {
                // SIGKILL: the test is over and its namespaces go next.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }
}

/// Writes `bytes` to `path` readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    file.write_all(bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
