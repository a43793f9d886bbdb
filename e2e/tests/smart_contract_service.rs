//! The SmartContractService controller against the real local control plane
//! and a real anvil: owned objects with owner references, status from the
//! chain, no writes on a no-op pass, a version bump, invalid specs, and delete
//! (retire on chain, then garbage collection by kube-controller-manager).
//!
//! kwok runs no containers, so the test plays the pod's sidecar itself: it
//! reads the rendered config from the operator's ConfigMap and runs the
//! sidecar library's deploy-if-absent with it, as the sidecar's `serve` would.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event as CoreEvent, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kontrakt_e2e::{
    TestNamespace, cluster,
    contract_services::{
        condition, create_secret, delete_and_wait, service, start_controller, wait_for,
    },
    kubeconfig,
};
use kontrakt_operator::{
    api::{Phase, SmartContractService},
    smart_contract_service::build::config_map_name,
};
use kontrakt_protocol::SidecarConfig;
use kontrakt_sidecar::devchain::{Anvil, DEV_KEYS};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use std::{sync::Arc, time::Duration};

/// Write calls (anything but GET) a client made, as "METHOD path".
#[derive(Clone, Default)]
struct Writes(Arc<std::sync::Mutex<Vec<String>>>);

impl Writes {
    fn since(&self, start: usize) -> Vec<String> {
        self.0.lock().unwrap()[start..].to_vec()
    }
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A client that records its write calls.
async fn counting_client() -> (Client, Writes) {
    let writes = Writes::default();
    let log = writes.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        if req.method() != http::Method::GET {
            log.0
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
        }
        req
    });
    let config = kubeconfig().await;
    let client = kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build();
    (client, writes)
}

/// What the pod's sidecar would do: deploy-if-absent with the operator's rendered config.
async fn run_sidecar_deploy(
    client: &Client,
    ns: &str,
    name: &str,
    key_dir: &std::path::Path,
) -> kontrakt_sidecar::service::DeployReport {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&config_map_name(name))
        .await
        .expect("sidecar ConfigMap");
    let yaml = cm.data.expect("data")["config.yaml"].clone();
    let mut config: SidecarConfig =
        serde_yaml::from_str(&yaml).expect("the rendered config parses");
    let key_file = key_dir.join("key");
    std::fs::write(&key_file, DEV_KEYS[0]).expect("key file");
    config.signer.key_file = key_file; // the pod mounts the Secret here; the test uses a temp file
    kontrakt_sidecar::service::deploy_once(&config)
        .await
        .expect("sidecar deploys the pair")
}

#[tokio::test]
async fn reconciles_a_service_into_owned_objects_and_a_deployed_pair() {
    let anvil = Anvil::start(&[]).expect("anvil");
    let admin = cluster().await;
    let ns = TestNamespace::create(&admin, "scs").await;
    create_secret(&admin, ns.name(), "signer", DEV_KEYS[0]).await;
    let (client, writes) = counting_client().await;
    let _controller = start_controller(client, ns.name(), Duration::from_secs(2));
    let services: Api<SmartContractService> = Api::namespaced(admin.clone(), ns.name());
    services
        .create(&PostParams::default(), &service("shipping", &anvil.url, 1))
        .await
        .expect("create");

    // Owned objects, each controlled by the service.
    let uid = services.get("shipping").await.unwrap().uid().unwrap();
    let owned_by_service = |meta: &ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true))
    };
    let name = "shipping";
    wait_for("owned objects", Duration::from_secs(30), || async {
        let sa = Api::<ServiceAccount>::namespaced(admin.clone(), ns.name())
            .get_opt(name)
            .await
            .ok()??;
        let cm = Api::<ConfigMap>::namespaced(admin.clone(), ns.name())
            .get_opt(&config_map_name(name))
            .await
            .ok()??;
        let d = Api::<Deployment>::namespaced(admin.clone(), ns.name())
            .get_opt(name)
            .await
            .ok()??;
        let svc = Api::<Service>::namespaced(admin.clone(), ns.name())
            .get_opt(name)
            .await
            .ok()??;
        let np = Api::<NetworkPolicy>::namespaced(admin.clone(), ns.name())
            .get_opt(name)
            .await
            .ok()??;
        [
            &sa.metadata,
            &cm.metadata,
            &d.metadata,
            &svc.metadata,
            &np.metadata,
        ]
        .into_iter()
        .all(owned_by_service)
        .then_some(())
    })
    .await;

    // Before the sidecar ran: not deployed, not ready, the reason says why.
    let pending = wait_for(
        "Deployed=False PairNotDeployed",
        Duration::from_secs(30),
        || async {
            let s = services.get(name).await.ok()?;
            (condition(&s, "Deployed") == Some(("False".into(), "PairNotDeployed".into())))
                .then_some(s)
        },
    )
    .await;
    assert_eq!(
        pending.status.as_ref().unwrap().phase,
        Some(Phase::Deploying)
    );

    // The pod's sidecar deploys the pair; the operator sees it on chain.
    let keys = tempfile::tempdir().unwrap();
    let v1 = run_sidecar_deploy(&admin, ns.name(), name, keys.path()).await;
    let ready = wait_for("Ready=True", Duration::from_secs(60), || async {
        let s = services.get(name).await.ok()?;
        (condition(&s, "Ready").map(|c| c.0) == Some("True".into())).then_some(s)
    })
    .await;
    let status = ready.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(
        status.contract_address,
        Some(v1.addresses.logic.to_checksum(None))
    );
    assert_eq!(
        status.database_address,
        Some(v1.addresses.database.to_checksum(None))
    );
    assert_eq!(status.version, Some(1));
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert!(
        status
            .code_hash
            .is_some_and(|h| h.starts_with("0x") && h.len() == 66)
    );

    // A no-op pass writes nothing: several resyncs (every 2 s) with no change.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = writes.count();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        writes.since(before),
        Vec::<String>::new(),
        "write calls during no-op resyncs"
    );

    // A version bump rolls the pods (new config hash) and, once the sidecar ran, upgrades.
    let hash = |d: Deployment| {
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["kontrakt.dev/config-hash"]
            .clone()
    };
    let deployments = Api::<Deployment>::namespaced(admin.clone(), ns.name());
    let old_hash = hash(deployments.get(name).await.unwrap());
    services
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"contract": {"version": 2}}})),
        )
        .await
        .expect("bump version");
    wait_for("Phase Upgrading", Duration::from_secs(30), || async {
        let s = services.get(name).await.ok()?;
        (s.status?.phase == Some(Phase::Upgrading)).then_some(())
    })
    .await;
    assert_ne!(
        hash(deployments.get(name).await.unwrap()),
        old_hash,
        "the pod template changed"
    );
    let v2 = run_sidecar_deploy(&admin, ns.name(), name, keys.path()).await;
    assert_eq!(
        v2.addresses.database, v1.addresses.database,
        "same database"
    );
    let upgraded = wait_for("Ready with version 2", Duration::from_secs(60), || async {
        let s = services.get(name).await.ok()?;
        let st = s.status.clone()?;
        (st.version == Some(2) && condition(&s, "Ready").map(|c| c.0) == Some("True".into()))
            .then_some(st)
    })
    .await;
    assert_eq!(
        upgraded.contract_address,
        Some(v2.addresses.logic.to_checksum(None))
    );

    // Events with stable reasons were recorded.
    let events = Api::<CoreEvent>::namespaced(admin.clone(), ns.name())
        .list(&Default::default())
        .await
        .unwrap();
    let reasons: Vec<_> = events
        .items
        .iter()
        .filter_map(|e| e.reason.clone())
        .collect();
    for reason in ["Applied", "PairDeployed", "Ready"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "event {reason} in {reasons:?}"
        );
    }

    // Delete: the finalizer retires v2 on chain, then GC removes the children.
    services
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("service gone", Duration::from_secs(60), || async {
        services.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    let logic = kontrakt_protocol::bindings::KontraktContract::new(v2.addresses.logic, &provider);
    assert!(
        logic.retired().call().await.expect("retired()"),
        "v2 is retired on chain"
    );
    let db = kontrakt_protocol::bindings::ContractDatabase::new(v2.addresses.database, &provider);
    assert_eq!(
        db.writer().call().await.expect("database stays readable"),
        v2.addresses.logic
    );
    wait_for(
        "children garbage-collected",
        Duration::from_secs(90),
        || async {
            let d = deployments.get_opt(name).await.ok()?;
            let cm = Api::<ConfigMap>::namespaced(admin.clone(), ns.name())
                .get_opt(&config_map_name(name))
                .await
                .ok()?;
            (d.is_none() && cm.is_none()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_specs_get_a_reason_and_an_event_without_a_hot_loop() {
    let admin = cluster().await;
    let ns = TestNamespace::create(&admin, "scs-invalid").await;
    let (client, writes) = counting_client().await;
    let _controller = start_controller(client, ns.name(), Duration::from_secs(2));
    let services: Api<SmartContractService> = Api::namespaced(admin.clone(), ns.name());

    // The referenced Secret does not exist; the chain URL is never contacted.
    services
        .create(
            &PostParams::default(),
            &service("no-secret", "http://127.0.0.1:9", 1),
        )
        .await
        .unwrap();
    let refused = wait_for(
        "Ready=False SignerSecretNotFound",
        Duration::from_secs(30),
        || async {
            let s = services.get("no-secret").await.ok()?;
            (condition(&s, "Ready") == Some(("False".into(), "SignerSecretNotFound".into())))
                .then_some(s)
        },
    )
    .await;
    assert_eq!(refused.status.unwrap().phase, Some(Phase::Failed));
    let events = Api::<CoreEvent>::namespaced(admin.clone(), ns.name())
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SignerSecretNotFound")),
        "a Warning event says why"
    );

    // No hot loop: nothing more is written while nothing changes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = writes.count();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        writes.since(before),
        Vec::<String>::new(),
        "write calls while the spec stays invalid"
    );

    // A garbled key: refused without echoing the key.
    create_secret(&admin, ns.name(), "signer", "0xnot-a-private-key").await;
    services
        .create(
            &PostParams::default(),
            &service("garbled", "http://127.0.0.1:9", 1),
        )
        .await
        .unwrap();
    let garbled = wait_for(
        "Ready=False SignerKeyInvalid",
        Duration::from_secs(150),
        || async {
            let s = services.get("garbled").await.ok()?;
            (condition(&s, "Ready").map(|c| c.1) == Some("SignerKeyInvalid".into())).then_some(s)
        },
    )
    .await;
    let message = &garbled.status.unwrap().conditions[0].message;
    assert!(!message.contains("not-a-private-key"), "{message}");

    delete_and_wait(&services, "no-secret").await;

    // Deleting an invalid service (nothing deployed) is not blocked by the finalizer.
    services
        .delete("garbled", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "invalid service deleted",
        Duration::from_secs(30),
        || async {
            services
                .get_opt("garbled")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}
