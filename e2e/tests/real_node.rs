//! On the real node (`e2e/node/up.sh`): the operator's sidecar pod runs as a
//! real container of the `kontrakt-sidecar` image (`make images`), from the
//! config the operator rendered, unmodified. What only a kubelet can prove is
//! checked on the host, against the pod spec the apiserver stored (not the
//! operator's constants): uid, capabilities, read-only root, the key file's
//! mode, the memory limit, readiness through the real probe, a kill restarts
//! the container, and a crash loop or an image that cannot be pulled is named in
//! the service's condition.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use kontrakt_e2e::{
    chain::{Signer, nonce},
    contract_services::condition,
    pod_runner::SIDECAR_SELECTOR,
    real_node::RealNode,
    stack::{Stack, TRANSACTIONS_PER_PAIR, assert_one_pair_each, is_ready, shipping},
};
use kube::{
    Api,
    api::{ListParams, LogParams, PostParams},
};
use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const SIDECAR: &str = "sidecar";

async fn stack(prefix: &str, node: &RealNode) -> Stack {
    Stack::start_on_real_node(prefix, &[], node).await
}

/// The one sidecar pod of the stack, once it has a running sidecar container.
async fn running_pod(stack: &Stack) -> Pod {
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), stack.ns.name());
    stack
        .wait_for(
            "a sidecar pod with a started container",
            Duration::from_secs(60),
            || async {
                let list = pods
                    .list(&ListParams::default().labels(SIDECAR_SELECTOR))
                    .await
                    .ok()?
                    .items;
                list.into_iter().find(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().is_some_and(|s| {
                            s.container_statuses.iter().flatten().any(|c| {
                                c.name == SIDECAR
                                    && c.state.as_ref().is_some_and(|st| st.running.is_some())
                            })
                        })
                })
            },
        )
        .await
}

fn sidecar_spec(pod: &Pod) -> &Container {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == SIDECAR))
        .expect("the pod has the sidecar container")
}

/// `Key:\tvalue` of /proc/<pid>/status.
fn proc_status(pid: u32, key: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path inside the container's mount namespace, seen from the host.
fn in_container(pid: u32, path: &str) -> PathBuf {
    Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))
}

/// The container's memory limit as its cgroup enforces it (v1 or v2).
fn memory_limit(pid: u32) -> u64 {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let file = if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        return text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{file}: {text:?}"));
    }
    panic!("no memory cgroup for pid {pid}:\n{cgroups}");
}

fn parse_quantity(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = n.parse().expect("a number");
    n * match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => panic!("unit {other} not handled here"),
    }
}

#[tokio::test]
async fn the_rendered_sidecar_runs_restricted_on_the_real_node_and_becomes_ready() {
    let node = RealNode::get();
    let anvil = node.anvil();
    let stack = stack("real-node", &node).await;
    let signer = Signer::from_seed(&format!("{}/signer", stack.ns.name()));
    signer.fund(&anvil.url).await;
    stack
        .create_secret("signer", "privateKey", &signer.key_hex)
        .await;

    let created = Instant::now();
    stack
        .services()
        .create(
            &PostParams::default(),
            &shipping("shipping", &anvil.url, "signer", 1),
        )
        .await
        .expect("create the service");
    let scs = stack.wait_ready("shipping", Duration::from_secs(180)).await;
    eprintln!(
        "real node: SmartContractService create -> Ready {:.1} s",
        created.elapsed().as_secs_f64()
    );
    // The pair is on chain, deployed once, signed with the key the container read.
    assert_one_pair_each(
        &stack,
        &anvil.url,
        std::slice::from_ref(&scs),
        std::slice::from_ref(&signer),
    )
    .await;

    let pod = running_pod(&stack).await;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.name.as_str()),
        "the pod runs on the real node"
    );
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            let at = |t: &str| {
                cs.iter()
                    .find(|c| c.type_ == t && c.status == "True")?
                    .last_transition_time
                    .clone()
            };
            Some((at("PodScheduled")?, at("Ready")?))
        });
    let (scheduled, ready) =
        ready.expect("the pod is scheduled and Ready (its readiness probe passed)");
    eprintln!(
        "real node: pod {pod_name} scheduled -> Ready {} s",
        ready.0.duration_since(scheduled.0).as_secs_f64()
    );
    let container = sidecar_spec(&pod);
    let image = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == SIDECAR))
        .map(|c| c.image.clone());
    assert_eq!(
        image.as_deref(),
        container.image.as_deref(),
        "the container runs the rendered image"
    );

    let pid = node
        .container_pid(&pod, SIDECAR)
        .expect("containerd runs the sidecar container");
    // uid/gid 65532, no capabilities at all, no privilege escalation, seccomp filter on.
    assert_eq!(proc_status(pid, "Uid"), "65532 65532 65532 65532");
    assert_eq!(proc_status(pid, "Gid"), "65532 65532 65532 65532");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            proc_status(pid, caps),
            "0000000000000000",
            "{caps} of the sidecar"
        );
    }
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(
        proc_status(pid, "Seccomp"),
        "2",
        "seccomp RuntimeDefault (filter mode)"
    );

    // The root filesystem cannot be written, even by root from outside.
    let probe = in_container(pid, "/kontrakt-write-probe");
    match fs::write(&probe, b"x") {
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {}
        other => panic!(
            "writing {} gave {other:?}, expected a read-only filesystem",
            probe.display()
        ),
    }

    // The config the container reads is the operator's ConfigMap, byte for byte.
    let args = container.args.clone().unwrap_or_default();
    let config_path = args
        .iter()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .expect("--config <path>");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mount = |name: &str| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("mount {name}"))
            .mount_path
            .clone()
    };
    let config_map = volumes
        .iter()
        .find_map(|v| v.config_map.as_ref().filter(|_| v.name == "config"))
        .expect("a config volume")
        .name
        .clone();
    let rendered = Api::<ConfigMap>::namespaced(stack.client.clone(), stack.ns.name())
        .get(&config_map)
        .await
        .expect("the rendered ConfigMap");
    let file = Path::new(config_path)
        .file_name()
        .and_then(|f| f.to_str())
        .expect("a file name");
    assert!(
        config_path.starts_with(&mount("config")),
        "--config {config_path} is in the config mount"
    );
    assert_eq!(
        fs::read_to_string(in_container(pid, config_path))
            .expect("the config inside the container"),
        rendered
            .data
            .as_ref()
            .and_then(|d| d.get(file))
            .cloned()
            .expect("the ConfigMap holds the file"),
        "the container reads the config the operator rendered"
    );

    // The signer key: readable by the sidecar's group (fsGroup 65532), writable by
    // nobody, nothing for others.
    let signer_dir = mount("signer");
    let key_files: Vec<_> = fs::read_dir(in_container(pid, &signer_dir))
        .expect("the signer mount")
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
        .collect();
    assert_eq!(key_files.len(), 1, "one key file in {signer_dir}");
    let meta = fs::metadata(key_files[0].path()).expect("key file");
    let mode = meta.mode() & 0o777;
    eprintln!(
        "real node: key file mode {mode:o} uid {} gid {}",
        meta.uid(),
        meta.gid()
    );
    assert_eq!(
        mode & 0o007,
        0,
        "others have no access to the key ({mode:o})"
    );
    assert_eq!(mode & 0o222, 0, "nobody can write the key ({mode:o})");
    assert_eq!(meta.gid(), 65532, "the key's group is the pod's fsGroup");
    assert_ne!(mode & 0o440, 0, "the key is readable ({mode:o})");

    // The memory limit of the spec is the cgroup's.
    let limit = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .expect("a memory limit");
    assert_eq!(
        memory_limit(pid),
        parse_quantity(&limit.0),
        "the container's memory cgroup limit"
    );

    // Logs through the apiserver, which asks the kubelet with its client certificate.
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), stack.ns.name());
    let logs = pods
        .logs(
            &pod_name,
            &LogParams {
                container: Some(SIDECAR.into()),
                ..Default::default()
            },
        )
        .await
        .expect("kubectl logs path");
    assert!(
        logs.contains("serving"),
        "the sidecar's log through the kubelet:\n{logs}"
    );

    // A killed container is restarted by the kubelet; the pair is not deployed again.
    node.kill_container(&pod, SIDECAR);
    stack
        .wait_for(
            "the sidecar restarted and the service Ready again",
            Duration::from_secs(120),
            || async {
                let p = pods.get(&pod_name).await.ok()?;
                let restarted = p
                    .status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .iter()
                    .any(|c| c.name == SIDECAR && c.restart_count >= 1 && c.ready);
                let s = stack.services().get("shipping").await.ok()?;
                (restarted && is_ready(&s)).then_some(())
            },
        )
        .await;
    assert_eq!(
        nonce(&anvil.url, signer.address).await,
        TRANSACTIONS_PER_PAIR,
        "the restarted sidecar found its pair and sent nothing"
    );
}

#[tokio::test]
async fn a_crashing_sidecar_is_named_crash_loop_back_off_in_ready() {
    let node = RealNode::get();
    let anvil = node.anvil();
    let stack = stack("real-crash", &node).await;
    let signer = Signer::from_seed(&format!("{}/signer", stack.ns.name()));
    stack
        .create_secret("signer", "privateKey", &signer.key_hex)
        .await;
    // The sidecar exits when the RPC serves another chain than the spec names
    // (not a transient failure): the kubelet restarts it with a growing back-off.
    let mut scs = shipping("crashing", &anvil.url, "signer", 1);
    scs.spec.chain.chain_id = 1;
    stack
        .services()
        .create(&PostParams::default(), &scs)
        .await
        .expect("create the service");
    let (_, message) = stack
        .wait_for(
            "Ready=False CrashLoopBackOff",
            Duration::from_secs(180),
            || async {
                let s = stack.services().get("crashing").await.ok()?;
                let ready = s
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")?
                    .clone();
                (ready.status == "False" && ready.reason == "CrashLoopBackOff")
                    .then_some((ready.reason, ready.message))
            },
        )
        .await;
    assert!(
        message.contains("container sidecar"),
        "the condition names the container: {message}"
    );
    assert_eq!(
        condition(&stack.services().get("crashing").await.unwrap(), "Deployed").map(|c| c.0),
        Some("False".into())
    );
}

/// A sidecar image nobody can pull (a wrong name in the chart's values) is named
/// in the service's Ready condition with the kubelet's reason, not left as a
/// Deployment that silently never becomes available. The registry named is a
/// closed port on the host's loopback: the pull fails at once, and nothing leaves
/// the machine.
#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named_image_pull_back_off_in_ready() {
    let node = RealNode::get();
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node(
        "real-pull",
        &[("sidecarImage.repository", "127.0.0.1:9/kontrakt/missing")],
        &node,
    )
    .await;
    let signer = Signer::from_seed(&format!("{}/signer", stack.ns.name()));
    stack
        .create_secret("signer", "privateKey", &signer.key_hex)
        .await;
    stack
        .services()
        .create(
            &PostParams::default(),
            &shipping("unpullable", &anvil.url, "signer", 1),
        )
        .await
        .expect("create the service");
    let (reason, message) = stack
        .wait_for(
            "Ready=False ImagePullBackOff or ErrImagePull",
            Duration::from_secs(120),
            || async {
                let s = stack.services().get("unpullable").await.ok()?;
                let ready = s
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")?
                    .clone();
                (ready.status == "False"
                    && matches!(ready.reason.as_str(), "ImagePullBackOff" | "ErrImagePull"))
                .then_some((ready.reason, ready.message))
            },
        )
        .await;
    eprintln!("Ready=False {reason}: {message}");
    assert!(
        message.contains("container sidecar") && message.contains("127.0.0.1:9/kontrakt/missing"),
        "the condition names the container and the image ({reason}): {message}"
    );
    assert_eq!(
        nonce(&anvil.url, signer.address).await,
        0,
        "no sidecar ran, nothing was sent"
    );
}
