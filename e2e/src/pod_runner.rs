//! The e2e pod runner: kwok marks pods Running without running any container,
//! so this plays the kubelet for the sidecar pods of a namespace.
//!
//! For each Running (not deleting) pod labelled
//! `app.kubernetes.io/name=kontrakt-sidecar` it makes a private temp root,
//! materialises the `sidecar` container's ConfigMap/Secret volume mounts (a
//! PersistentVolumeClaim: a link to its bound hostPath volume) under
//! `<root><mountPath>` (read from the API), rewrites the config named by
//! `--config` so every mount path points into the root and `listen` is a free
//! loopback port, and runs the sidecar binary with the container's args and
//! env. When the pod goes away (or stops being Running) the process gets
//! SIGTERM, then SIGKILL, and the root is removed. `e2e/demo.sh` does the same
//! for one pod in shell.
//!
//! Like the kubelet, it restarts a process that exited (with a growing delay,
//! in the same root: an emptyDir outlives a container restart) and runs the readiness probe: kwok marks every pod Ready at once, but a real
//! sidecar pod is Ready only while `GET /readyz` answers 200 (the pair is in
//! place). The runner probes each process every tick and writes the pod's
//! `Ready` condition when the answer changes, so the Deployment's available
//! replicas — and the operator watching them — see what a cluster would.
//!
//! Secret values (key files, env from Secrets) are written only into the
//! private root and the child's environment; they are never printed.

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use std::{
    collections::{BTreeMap, HashMap},
    fs,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The label selecting the pods the runner plays the kubelet for.
pub const SIDECAR_SELECTOR: &str = "app.kubernetes.io/name=kontrakt-sidecar";
/// The container that is run; other containers (the app) are ignored.
pub const SIDECAR_CONTAINER: &str = "sidecar";
/// At most this many sidecar processes at once.
pub const MAX_PROCESSES: usize = 50;
/// Grace period between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How often exited processes and failed starts are looked at again.
const TICK: Duration = Duration::from_secs(2);
/// How long one readiness probe may take (the sidecar asks the chain).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Restarts of a pod's process that exited on its own before the runner gives up.
const MAX_RESTARTS: u32 = 5;

/// Builds the sidecar binary (`cargo build -p kontrakt-sidecar --bin
/// kontrakt-sidecar`) and returns its path (see [`crate::cargo_binary`]).
pub fn sidecar_binary() -> PathBuf {
    crate::cargo_binary("kontrakt-sidecar", "kontrakt-sidecar")
}

/// One sidecar process playing one pod.
struct Process {
    name: String,
    uid: String,
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
    /// The pod's root, shared with the runner: removed (with the key file) once the pod is
    /// gone and its process dropped.
    _root: Arc<tempfile::TempDir>,
}

impl Drop for Process {
    /// A process is never left behind: SIGKILL if it still runs.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type Processes = Arc<Mutex<BTreeMap<String, Process>>>;

/// Runs the sidecar of every Running sidecar pod of a namespace as a local process.
pub struct PodRunner {
    processes: Processes,
    task: tokio::task::JoinHandle<()>,
}

impl PodRunner {
    /// Starts watching `namespace`; `sidecar_binary` is run for each pod (see [`sidecar_binary`]).
    pub fn start(client: Client, namespace: &str, sidecar_binary: PathBuf) -> PodRunner {
        assert!(
            sidecar_binary.is_file(),
            "sidecar binary {} does not exist",
            sidecar_binary.display()
        );
        let processes: Processes = Arc::default();
        let runner = Runner {
            client: client.clone(),
            namespace: namespace.to_owned(),
            binary: sidecar_binary,
            processes: processes.clone(),
            pods: BTreeMap::new(),
            restarts: HashMap::new(),
            last_error: HashMap::new(),
            roots: HashMap::new(),
        };
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let task = tokio::spawn(runner.run(pods));
        PodRunner { processes, task }
    }

    /// (pod name, the local address of its sidecar's HTTP API) for each running process.
    pub fn running(&self) -> Vec<(String, SocketAddr)> {
        lock(&self.processes)
            .iter()
            .map(|(name, p)| (name.clone(), p.addr))
            .collect()
    }
}

impl PodRunner {
    /// The process id of the sidecar now playing `pod`, if one runs.
    pub fn pid(&self, pod: &str) -> Option<u32> {
        lock(&self.processes).get(pod).map(|p| p.child.id())
    }

    /// The last `lines` lines of each running sidecar's log (its own output,
    /// which never holds the key), for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        lock(&self.processes)
            .iter()
            .map(|(name, p)| format!("--- sidecar of pod {name}:\n{}\n", tail(&p.log, lines)))
            .collect()
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.task.abort();
        // Each Process kills its child and removes its root when dropped.
        drop(std::mem::take(&mut *lock(&self.processes)));
    }
}

fn lock(p: &Processes) -> std::sync::MutexGuard<'_, BTreeMap<String, Process>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// The watch task's state.
struct Runner {
    client: Client,
    namespace: String,
    binary: PathBuf,
    processes: Processes,
    /// The pods as last seen, by name.
    pods: BTreeMap<String, Pod>,
    /// Pod uid -> (restarts so far, not before).
    restarts: HashMap<String, (u32, Instant)>,
    /// Pod name -> the last reason it could not start (printed once per change).
    last_error: HashMap<String, String>,
    /// Pod uid -> its root. Kept across restarts of the pod's process: like the kubelet's,
    /// an emptyDir outlives a container restart and goes with the pod.
    roots: HashMap<String, Arc<tempfile::TempDir>>,
}

impl Runner {
    async fn run(mut self, pods: Api<Pod>) {
        let events =
            watcher(pods, watcher::Config::default().labels(SIDECAR_SELECTOR)).default_backoff();
        let mut events = std::pin::pin!(events);
        let mut init: Option<BTreeMap<String, Pod>> = None;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    None => return,
                    Some(Err(e)) => eprintln!("pod runner: watch error: {e}"),
                    Some(Ok(watcher::Event::Init)) => init = Some(BTreeMap::new()),
                    Some(Ok(watcher::Event::InitApply(pod))) => {
                        init.get_or_insert_default().insert(pod.name_any(), pod);
                    }
                    Some(Ok(watcher::Event::InitDone)) => self.pods = init.take().unwrap_or_default(),
                    Some(Ok(watcher::Event::Apply(pod))) => {
                        self.pods.insert(pod.name_any(), pod);
                    }
                    Some(Ok(watcher::Event::Delete(pod))) => {
                        self.pods.remove(&pod.name_any());
                    }
                },
                _ = tick.tick() => {
                    self.reconcile().await;
                    self.probe_readiness().await;
                    continue;
                }
            }
            self.reconcile().await;
        }
    }

    /// The readiness probe of every pod that should run: Ready only while its
    /// process answers `GET /readyz` with 200. Writes the pod's `Ready` and
    /// `ContainersReady` conditions when they differ from the answer.
    async fn probe_readiness(&mut self) {
        let targets: Vec<(String, Option<SocketAddr>)> = self
            .pods
            .iter()
            .filter(|(_, p)| should_run(p))
            .map(|(name, _)| {
                (
                    name.clone(),
                    lock(&self.processes).get(name).map(|p| p.addr),
                )
            })
            .collect();
        let answers =
            futures::future::join_all(targets.into_iter().map(|(name, addr)| async move {
                let ready = match addr {
                    Some(addr) => probe_ready(addr).await,
                    None => false,
                };
                (name, ready)
            }))
            .await;
        for (name, ready) in answers {
            self.set_ready(&name, ready).await;
        }
    }

    /// Stops processes whose pod is gone, replaced or no longer Running; starts missing ones.
    async fn reconcile(&mut self) {
        let wanted: BTreeMap<String, String> = self
            .pods
            .iter()
            .filter(|(_, p)| should_run(p))
            .map(|(name, p)| (name.clone(), p.uid().unwrap_or_default()))
            .collect();

        // Processes to stop, and processes that exited on their own.
        let mut stop = Vec::new();
        {
            let mut processes = lock(&self.processes);
            let names: Vec<String> = processes.keys().cloned().collect();
            for name in names {
                let p = processes.get_mut(&name).expect("listed");
                if wanted.get(&name) != Some(&p.uid) {
                    stop.push(processes.remove(&name).expect("listed"));
                } else if let Ok(Some(status)) = p.child.try_wait() {
                    let p = processes.remove(&name).expect("listed");
                    eprintln!(
                        "pod runner: sidecar of pod {name} exited ({status}); its log:\n{}",
                        tail(&p.log, 30)
                    );
                    let entry = self
                        .restarts
                        .entry(p.uid.clone())
                        .or_insert((0, Instant::now()));
                    entry.0 += 1;
                    entry.1 = Instant::now() + Duration::from_secs(2 * u64::from(entry.0));
                }
            }
        }
        let stopping: Vec<_> = stop
            .into_iter()
            .map(|p| {
                eprintln!("pod runner: stopping the sidecar of pod {}", p.name);
                tokio::task::spawn_blocking(move || stop_process(p))
            })
            .collect();
        for handle in stopping {
            let _ = handle.await;
        }
        self.restarts
            .retain(|uid, _| wanted.values().any(|u| u == uid));
        self.roots
            .retain(|uid, _| wanted.values().any(|u| u == uid));
        self.last_error.retain(|name, _| wanted.contains_key(name));

        for (name, uid) in &wanted {
            if lock(&self.processes).contains_key(name) {
                continue;
            }
            if lock(&self.processes).len() >= MAX_PROCESSES {
                eprintln!("pod runner: {MAX_PROCESSES} processes already; not starting pod {name}");
                break;
            }
            match self.restarts.get(uid) {
                Some((n, _)) if *n > MAX_RESTARTS => continue,
                Some((_, at)) if *at > Instant::now() => continue,
                Some((n, _)) if *n == MAX_RESTARTS => {
                    eprintln!("pod runner: sidecar of pod {name} exited {n} times; giving up");
                    self.restarts.get_mut(uid).expect("present").0 += 1;
                    continue;
                }
                _ => {}
            }
            let pod = self.pods[name].clone();
            let root = match self.roots.get(uid) {
                Some(root) => root.clone(),
                None => match tempfile::Builder::new()
                    .prefix(&format!("kontrakt-pod-{name}-"))
                    .tempdir()
                {
                    Ok(root) => {
                        let root = Arc::new(root);
                        self.roots.insert(uid.clone(), root.clone());
                        root
                    }
                    Err(e) => {
                        eprintln!("pod runner: pod {name}: temp root: {e}");
                        continue;
                    }
                },
            };
            match self.launch(&pod, root).await {
                Ok(p) => {
                    eprintln!(
                        "pod runner: pod {name} runs as pid {} on {} (log {})",
                        p.child.id(),
                        p.addr,
                        p.log.display()
                    );
                    self.last_error.remove(name);
                    lock(&self.processes).insert(name.clone(), p);
                    // A container that just started is not ready until its
                    // probe passes (kwok said Ready before anything ran).
                    self.set_ready(name, false).await;
                }
                // Retried on the next event or tick (e.g. a ConfigMap not created yet).
                Err(e) => {
                    if self.last_error.get(name) != Some(&e) {
                        eprintln!("pod runner: cannot start pod {name} yet: {e}");
                        self.last_error.insert(name.clone(), e);
                    }
                }
            }
        }
    }

    /// Materialises the pod's mounts, rewrites its config and spawns the binary.
    async fn launch(&self, pod: &Pod, root: Arc<tempfile::TempDir>) -> Result<Process, String> {
        let name = pod.name_any();
        let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == SIDECAR_CONTAINER)
            .ok_or_else(|| format!("pod has no container {SIDECAR_CONTAINER}"))?;
        let root_path = root.path().to_path_buf();

        // Volumes, at <root><mountPath>.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .ok_or_else(|| format!("mount {} names no volume", mount.name))?;
            let target = under(&root_path, &mount.mount_path);
            if let Some(claim) = &volume.persistent_volume_claim {
                // The claim's bound volume, at its hostPath: it outlives the pod.
                let host = self.claimed_path(&claim.claim_name).await?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| format!("mkdir: {e}"))?;
                }
                if !target.exists() {
                    std::os::unix::fs::symlink(&host, &target)
                        .map_err(|e| format!("link {}: {e}", target.display()))?;
                }
                mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), target));
                continue;
            }
            let files = self.volume_files(volume).await?;
            match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let (bytes, mode) = files
                        .get(sub)
                        .ok_or_else(|| format!("volume {} has no {sub}", volume.name))?;
                    write_file(&target, bytes, *mode)?;
                }
                None => {
                    fs::create_dir_all(&target).map_err(|e| format!("mkdir: {e}"))?;
                    for (path, (bytes, mode)) in &files {
                        if path.split('/').any(|c| c == "..") {
                            return Err(format!("volume {} item path {path}", volume.name));
                        }
                        write_file(&target.join(path), bytes, *mode)?;
                    }
                }
            }
            mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), target));
        }
        // Longest mount path first, so nested mounts win.
        mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        let relocate = |s: &str| relocate(&mounts, s);

        // Args: the config path (and any other mounted path) rewritten.
        let mut args: Vec<String> = container
            .command
            .iter()
            .flatten()
            .skip(1)
            .cloned()
            .collect();
        args.extend(container.args.iter().flatten().cloned());
        let config_at = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--config=").map(str::to_owned))
            })
            .ok_or("the sidecar's args name no --config")?;
        let local_config = relocate(&config_at)
            .ok_or_else(|| format!("config {config_at} is on no mounted volume"))?;
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.split_once('=') {
                Some((flag, v)) if flag.starts_with("--") => {
                    relocate(v).map_or_else(|| a.clone(), |v| format!("{flag}={v}"))
                }
                _ => relocate(a).unwrap_or_else(|| a.clone()),
            })
            .collect();

        // The config: mount paths into the root, listen on a free loopback port.
        let text = fs::read_to_string(&local_config)
            .map_err(|e| format!("read config {config_at}: {e}"))?;
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("config {config_at}: {e}"))?;
        rewrite_strings(&mut config, &relocate);
        let addr = free_port()?;
        let map = config
            .as_mapping_mut()
            .ok_or_else(|| format!("config {config_at} is not a mapping"))?;
        map.insert("listen".into(), addr.to_string().into());
        let rewritten = serde_yaml::to_string(&config).map_err(|e| format!("config: {e}"))?;
        write_file(Path::new(&local_config), rewritten.as_bytes(), 0o600)?;

        let env = self.env(pod, container).await?;
        let log = root_path.join("sidecar.log");
        // Appended to: the log of an earlier run of the pod's process stays readable.
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("log file: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(env)
            .current_dir(&root_path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        Ok(Process {
            name,
            uid: pod.uid().unwrap_or_default(),
            addr,
            child,
            log,
            _root: root,
        })
    }

    /// The directory of the hostPath PersistentVolume bound to `claim` (the
    /// claim must be Bound: a pod would not be scheduled otherwise).
    async fn claimed_path(&self, claim: &str) -> Result<PathBuf, String> {
        use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
        let pvc = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &self.namespace)
            .get_opt(claim)
            .await
            .map_err(|e| format!("claim {claim}: {e}"))?
            .ok_or_else(|| format!("claim {claim} does not exist"))?;
        let volume = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("claim {claim} is not bound yet"))?;
        let pv = Api::<PersistentVolume>::all(self.client.clone())
            .get(&volume)
            .await
            .map_err(|e| format!("volume {volume}: {e}"))?;
        pv.spec
            .and_then(|s| s.host_path)
            .map(|h| PathBuf::from(h.path))
            .ok_or_else(|| format!("volume {volume} is not a hostPath volume"))
    }

    /// The files of a volume: relative path -> (content, mode).
    async fn volume_files(
        &self,
        volume: &Volume,
    ) -> Result<BTreeMap<String, (Vec<u8>, u32)>, String> {
        let mode = |m: Option<i32>, default: Option<i32>| {
            m.or(default).map_or(0o644, |m| (m as u32) & 0o777)
        };
        let select = |data: BTreeMap<String, Vec<u8>>,
                      items: &Option<Vec<KeyToPath>>,
                      default_mode: Option<i32>,
                      what: &str|
         -> Result<BTreeMap<String, (Vec<u8>, u32)>, String> {
            match items {
                None => Ok(data
                    .into_iter()
                    .map(|(k, v)| (k, (v, mode(None, default_mode))))
                    .collect()),
                Some(items) => items
                    .iter()
                    .map(|i| {
                        let v = data
                            .get(&i.key)
                            .ok_or_else(|| format!("{what} has no key {}", i.key))?;
                        Ok((i.path.clone(), (v.clone(), mode(i.mode, default_mode))))
                    })
                    .collect(),
            }
        };
        if let Some(src) = &volume.config_map {
            let what = format!("ConfigMap {}", src.name);
            let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
                .get_opt(&src.name)
                .await
                .map_err(|e| format!("get {what}: {e}"))?;
            let Some(cm) = cm else {
                return if src.optional == Some(true) {
                    Ok(BTreeMap::new())
                } else {
                    Err(format!("{what} does not exist"))
                };
            };
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, ByteString(v))| (k, v)),
            );
            return select(data, &src.items, src.default_mode, &what);
        }
        if let Some(src) = &volume.secret {
            let name = src.secret_name.clone().unwrap_or_default();
            let what = format!("Secret {name}");
            let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
                .get_opt(&name)
                .await
                .map_err(|e| format!("get {what}: {e}"))?;
            let Some(secret) = secret else {
                return if src.optional == Some(true) {
                    Ok(BTreeMap::new())
                } else {
                    Err(format!("{what} does not exist"))
                };
            };
            let data = secret_data(secret);
            return select(data, &src.items, src.default_mode, &what);
        }
        if volume.empty_dir.is_some() {
            return Ok(BTreeMap::new());
        }
        Err(format!(
            "volume {} is of a kind the pod runner cannot materialise",
            volume.name
        ))
    }

    /// The container's environment: values, valueFrom Secret/ConfigMap keys and
    /// pod fields, and envFrom.
    async fn env(&self, pod: &Pod, container: &Container) -> Result<Vec<(String, String)>, String> {
        let mut env = Vec::new();
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.config_map_ref {
                let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| format!("get ConfigMap {}: {e}", r.name))?;
                match cm {
                    Some(cm) => env.extend(
                        cm.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (format!("{prefix}{k}"), v)),
                    ),
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("ConfigMap {} does not exist", r.name)),
                }
            }
            if let Some(r) = &from.secret_ref {
                let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| format!("get Secret {}: {e}", r.name))?;
                match secret {
                    Some(s) => env.extend(
                        secret_data(s)
                            .into_iter()
                            .map(|(k, v)| (format!("{prefix}{k}"), lossy(v))),
                    ),
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("Secret {} does not exist", r.name)),
                }
            }
        }
        for var in container.env.iter().flatten() {
            let value = if let Some(v) = &var.value {
                Some(v.clone())
            } else if let Some(from) = &var.value_from {
                if let Some(r) = &from.secret_key_ref {
                    let s = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
                        .get_opt(&r.name)
                        .await
                        .map_err(|e| format!("get Secret {}: {e}", r.name))?;
                    match s.map(secret_data).and_then(|mut d| d.remove(&r.key)) {
                        Some(v) => Some(lossy(v)),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(format!(
                                "env {}: Secret {} key {} missing",
                                var.name, r.name, r.key
                            ));
                        }
                    }
                } else if let Some(r) = &from.config_map_key_ref {
                    let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
                        .get_opt(&r.name)
                        .await
                        .map_err(|e| format!("get ConfigMap {}: {e}", r.name))?;
                    match cm.and_then(|c| c.data).and_then(|mut d| d.remove(&r.key)) {
                        Some(v) => Some(v),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(format!(
                                "env {}: ConfigMap {} key {} missing",
                                var.name, r.name, r.key
                            ));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    Some(match f.field_path.as_str() {
                        "metadata.name" => pod.name_any(),
                        "metadata.namespace" => self.namespace.clone(),
                        "metadata.uid" => pod.uid().unwrap_or_default(),
                        "spec.nodeName" => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                        "spec.serviceAccountName" => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_default(),
                        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
                        other => {
                            return Err(format!("env {}: fieldRef {other} unsupported", var.name));
                        }
                    })
                } else {
                    return Err(format!("env {}: unsupported valueFrom", var.name));
                }
            } else {
                Some(String::new())
            };
            if let Some(value) = value {
                env.push((var.name.clone(), value));
            }
        }
        Ok(env)
    }

    /// Writes the pod's `Ready` and `ContainersReady` conditions unless they already say `ready`.
    async fn set_ready(&mut self, name: &str, ready: bool) {
        let Some(pod) = self.pods.get(name) else {
            return;
        };
        if pod_ready(pod) == Some(ready) {
            return;
        }
        let status = if ready { "True" } else { "False" };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({ "status": { "conditions": [
            { "type": "Ready", "status": status, "lastTransitionTime": now },
            { "type": "ContainersReady", "status": status, "lastTransitionTime": now },
        ]}});
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        match pods
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            // Keep the answer, so the next tick does not write it again
            // before the watch delivers it.
            Ok(pod) => {
                self.pods.insert(name.to_owned(), pod);
            }
            Err(e) => eprintln!("pod runner: cannot set pod {name} Ready={status}: {e}"),
        }
    }
}

/// The pod's `Ready` condition, if it has one.
fn pod_ready(pod: &Pod) -> Option<bool> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

/// `GET /readyz` answered 200 within [`PROBE_TIMEOUT`].
async fn probe_ready(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 64];
        while head.len() < 12 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Running, scheduled to keep running (not deleting), with a sidecar container.
fn should_run(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, ByteString(v))| (k, v))
        .collect();
    data.extend(
        secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    data
}

fn lossy(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `<root><path>` for an absolute container path.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Writes a file (parents created) with `mode`, replacing any previous one.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    // A read-only file from the volume may be rewritten (the config).
    if path.exists() {
        fs::remove_file(path).map_err(|e| format!("replace {}: {e}", path.display()))?;
    }
    fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// `s` with its mount path prefix (the longest first in `mounts`) replaced by
/// the local directory, when it is on a mount.
fn relocate(mounts: &[(String, PathBuf)], s: &str) -> Option<String> {
    mounts.iter().find_map(|(m, local)| {
        let rest = s.strip_prefix(m.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", local.display()))
    })
}

/// Rewrites every string in a YAML document through `f` (when it returns `Some`).
fn rewrite_strings(value: &mut serde_yaml::Value, f: &impl Fn(&str) -> Option<String>) {
    match value {
        serde_yaml::Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        serde_yaml::Value::Sequence(items) => {
            items.iter_mut().for_each(|v| rewrite_strings(v, f));
        }
        serde_yaml::Value::Mapping(map) => {
            map.iter_mut().for_each(|(_, v)| rewrite_strings(v, f));
        }
        serde_yaml::Value::Tagged(t) => rewrite_strings(&mut t.value, f),
        _ => {}
    }
}

/// A loopback address with a port free right now.
fn free_port() -> Result<SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// SIGTERM, up to [`GRACE`] to exit, then SIGKILL; the root goes with `p`.
fn stop_process(mut p: Process) {
    let pid = p.child.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = p.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Dropping `p` kills what is left and removes the root.
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_move_into_the_root_and_addresses_stay_strings() {
        let yaml = "signer:\n  keyFile: /var/run/kontrakt/signer/key\n\
                    contract:\n  artifactFile: /etc/kontrakt/artifact/A.json\n  name: /etc/kontraktx\n\
                    registry: \"0x00000000000000000000000000000000000000e1\"\n";
        let mut value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let mounts: Vec<(String, PathBuf)> = [
            "/etc/kontrakt/artifact",
            "/var/run/kontrakt/signer",
            "/etc/kontrakt",
        ]
        .into_iter()
        .map(|m| (m.to_owned(), PathBuf::from(format!("/r{m}"))))
        .collect();
        rewrite_strings(&mut value, &|s: &str| relocate(&mounts, s));
        let out = serde_yaml::to_string(&value).unwrap();
        assert!(
            out.contains("keyFile: /r/var/run/kontrakt/signer/key"),
            "{out}"
        );
        assert!(
            out.contains("artifactFile: /r/etc/kontrakt/artifact/A.json"),
            "{out}"
        );
        assert!(out.contains("name: /etc/kontraktx"), "{out}");
        let back: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(
            back["registry"].as_str(),
            Some("0x00000000000000000000000000000000000000e1")
        );
    }
}
