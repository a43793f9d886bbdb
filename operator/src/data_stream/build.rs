//! A DataStream's publisher: the rendered config, its Deployment (the sidecar
//! in `stream` mode) and its Service. Pure.

use crate::api::DataStream;
use crate::context::FIELD_MANAGER;
use crate::workload::{http_probe, restricted, restricted_pod, secret_file};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
            PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
            VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kontrakt_protocol::StreamConfig;
use kontrakt_protocol::mounts::{
    CONFIG_DIR, MQTT_DIR, MQTT_FILE, SIDECAR_PORT, SIGNER_DIR, SIGNER_FILE, STREAM_CONFIG_FILE,
    STREAM_DATA_DIR,
};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Label naming the DataStream a child belongs to.
pub const STREAM_LABEL: &str = "kontrakt.dev/stream";
/// Pod template annotation: a new config rolls the publisher.
pub const CONFIG_HASH_ANNOTATION: &str = "kontrakt.dev/config-hash";

/// What the controller derived from a valid spec.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: StreamConfig,
    /// The seller service's signer Secret (name, key): mounted, never copied.
    pub signer_secret: (String, String),
    /// The broker credentials Secret (name, key), for an MQTT source that names one.
    pub mqtt_secret: Option<(String, String)>,
    pub config_hash: String,
}

/// The objects one DataStream owns.
pub struct Children {
    pub config_map: ConfigMap,
    /// The message log's claim, when `spec.storage` asks for one.
    pub log_claim: Option<PersistentVolumeClaim>,
    pub deployment: Deployment,
    pub service: Service,
}

pub fn publisher_name(stream: &str) -> String {
    format!("{stream}-publisher")
}

/// The PersistentVolumeClaim holding a stream's message log.
pub fn log_claim_name(stream: &str) -> String {
    format!("{stream}-log")
}

pub fn build(ds: &DataStream, plan: &Plan, image: &str) -> Children {
    let name = publisher_name(&ds.name_any());
    let selector = BTreeMap::from([(STREAM_LABEL.to_owned(), ds.name_any())]);
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/name".into(), "kontrakt-sidecar".into());
    labels.insert(
        "app.kubernetes.io/component".into(),
        "stream-publisher".into(),
    );
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    let meta = |n: String| ObjectMeta {
        name: Some(n),
        namespace: ds.namespace(),
        labels: Some(labels.clone()),
        owner_references: ds.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    let config_map = ConfigMap {
        metadata: meta(name.clone()),
        data: Some(BTreeMap::from([(
            STREAM_CONFIG_FILE.into(),
            plan.config.to_yaml(),
        )])),
        ..Default::default()
    };
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        secret_file(
            "signer",
            &plan.signer_secret.0,
            &plan.signer_secret.1,
            SIGNER_FILE,
        ),
        // The message log: on the claim of `spec.storage` it outlives the
        // pod; in an emptyDir only restarts of the container (the kubelet
        // keeps an emptyDir for the pod's life).
        match &ds.spec.storage {
            Some(_) => Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: log_claim_name(&ds.name_any()),
                    read_only: Some(false),
                }),
                ..Default::default()
            },
            None => Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        },
    ];
    let log_claim = ds
        .spec
        .storage
        .as_ref()
        .map(|storage| PersistentVolumeClaim {
            metadata: meta(log_claim_name(&ds.name_any())),
            spec: Some(PersistentVolumeClaimSpec {
                // One publisher writes the log (Recreate: the old pod lets go first).
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), storage.size.clone())])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    let mut mounts = vec![
        mount("config", CONFIG_DIR),
        mount("signer", SIGNER_DIR),
        VolumeMount {
            read_only: Some(false),
            ..mount("data", STREAM_DATA_DIR)
        },
    ];
    if let Some((secret, key)) = &plan.mqtt_secret {
        volumes.push(secret_file("mqtt", secret, key, MQTT_FILE));
        mounts.push(mount("mqtt", MQTT_DIR));
    }
    let container = Container {
        // The contract sidecar binary in `stream` mode.
        name: "sidecar".into(),
        image: Some(image.into()),
        args: Some(vec![
            "stream".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{STREAM_CONFIG_FILE}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(SIDECAR_PORT),
            ..Default::default()
        }]),
        volume_mounts: Some(mounts),
        liveness_probe: Some(http_probe("/healthz", 10)),
        readiness_probe: Some(http_probe("/readyz", 5)),
        security_context: Some(restricted()),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta(name.clone()),
        spec: Some(DeploymentSpec {
            // One publisher: it numbers and anchors the batches (a single writer).
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        plan.config_hash.clone(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(restricted_pod()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = Service {
        metadata: meta(name),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(SIDECAR_PORT),
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Children {
        config_map,
        log_claim,
        deployment,
        service,
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}
