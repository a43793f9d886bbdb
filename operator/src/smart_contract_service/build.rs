//! Build: the objects a SmartContractService owns, from its [`Plan`]. Pure.

use super::validate::{self, Plan};
use crate::api::SmartContractService;
use crate::workload::{http_probe, restricted, restricted_pod, secret_file};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, KeyToPath, PodSpec,
            PodTemplateSpec, ResourceRequirements, Service, ServiceAccount, ServicePort,
            ServiceSpec, Volume, VolumeMount,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kontrakt_protocol::mounts::{
    ARTIFACT_DIR, ARTIFACT_FILE, CONFIG_DIR, ORACLE_HEADER_FILE, ORACLE_HEADERS_DIR,
    SERVICE_CONFIG_FILE, SIDECAR_PORT, SIGNER_DIR, SIGNER_FILE,
};
use kube::Resource;
use std::collections::BTreeMap;

/// Pod template annotation holding [`Plan::config_hash`]: a new value rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "kontrakt.dev/config-hash";
/// Label naming the SmartContractService a child belongs to.
pub const SERVICE_LABEL: &str = "kontrakt.dev/service";

/// The objects one SmartContractService owns.
#[derive(Debug, Clone)]
pub struct Children {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
}

pub fn config_map_name(scs: &str) -> String {
    format!("{scs}-sidecar")
}

pub fn build(scs: &SmartContractService, plan: &Plan, sidecar_image: &str) -> Children {
    let labels = labels(&plan.name);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels.clone()),
        owner_references: scs.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };

    let service_account = ServiceAccount {
        metadata: meta(plan.name.clone()),
        // The sidecar never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        ..Default::default()
    };

    let config_map = ConfigMap {
        metadata: meta(config_map_name(&plan.name)),
        data: Some(BTreeMap::from([(
            SERVICE_CONFIG_FILE.to_owned(),
            plan.sidecar_config.to_yaml(),
        )])),
        ..Default::default()
    };

    let deployment = Deployment {
        metadata: meta(plan.name.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(scs.spec.replicas),
            // A rollout stops the old sidecars before starting new ones: the
            // transactions of a key (deploys, enrollment, fulfilments) are
            // never sent by two config versions at once.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector(&plan.name)),
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
                spec: Some(pod_spec(scs, plan, sidecar_image)),
            },
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut ports = vec![ServicePort {
        name: Some("http".into()),
        port: SIDECAR_PORT.into(),
        target_port: Some(IntOrString::String("http".into())),
        ..Default::default()
    }];
    if let Some(port) = scs.spec.app.as_ref().and_then(|a| a.port) {
        ports.push(ServicePort {
            name: Some("app".into()),
            port,
            target_port: Some(IntOrString::String("app".into())),
            ..Default::default()
        });
    }
    let service = Service {
        metadata: meta(plan.name.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector(&plan.name)),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    };

    let network_policy = NetworkPolicy {
        metadata: meta(plan.name.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(&plan.name)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(egress_rules(plan)),
            ..Default::default()
        }),
    };

    Children {
        service_account,
        config_map,
        deployment,
        service,
        network_policy,
    }
}

fn labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector(name);
    labels.insert("app.kubernetes.io/name".into(), "kontrakt-sidecar".into());
    labels.insert(
        "app.kubernetes.io/component".into(),
        "contract-service".into(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        crate::context::FIELD_MANAGER.into(),
    );
    labels
}

fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(SERVICE_LABEL.to_owned(), name.to_owned())])
}

fn pod_spec(scs: &SmartContractService, plan: &Plan, sidecar_image: &str) -> PodSpec {
    let key_ref = &scs.spec.signer.secret_key_ref;
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&plan.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        // The signer key is mounted from the user's Secret, read-only to the owner; never copied.
        secret_file("signer", &key_ref.name, &key_ref.key, SIGNER_FILE),
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "signer".into(),
            mount_path: SIGNER_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    for (i, (_, header)) in validate::oracle_headers(scs).enumerate() {
        let name = format!("oracle-header-{i}");
        volumes.push(secret_file(
            &name,
            &header.secret_key_ref.name,
            &header.secret_key_ref.key,
            ORACLE_HEADER_FILE,
        ));
        mounts.push(VolumeMount {
            name,
            mount_path: format!("{ORACLE_HEADERS_DIR}/{i}"),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if let Some(artifact) = &scs.spec.contract.artifact_ref {
        volumes.push(Volume {
            name: "artifact".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: artifact.name.clone(),
                items: Some(vec![KeyToPath {
                    key: artifact.key.clone(),
                    path: ARTIFACT_FILE.into(),
                    mode: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "artifact".into(),
            mount_path: ARTIFACT_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }

    let sidecar = Container {
        name: "sidecar".into(),
        image: Some(sidecar_image.into()),
        args: Some(vec![
            "serve".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{SERVICE_CONFIG_FILE}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: SIDECAR_PORT.into(),
            ..Default::default()
        }]),
        volume_mounts: Some(mounts),
        liveness_probe: Some(http_probe("/healthz", 10)),
        readiness_probe: Some(http_probe("/readyz", 5)),
        security_context: Some(restricted()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("50m".into())),
                ("memory".into(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity("256Mi".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut containers = vec![sidecar];
    if let Some(app) = &scs.spec.app {
        containers.push(Container {
            name: "app".into(),
            image: Some(app.image.clone()),
            command: (!app.command.is_empty()).then(|| app.command.clone()),
            args: (!app.args.is_empty()).then(|| app.args.clone()),
            ports: app.port.map(|p| {
                vec![ContainerPort {
                    name: Some("app".into()),
                    container_port: p,
                    ..Default::default()
                }]
            }),
            security_context: Some(restricted()),
            ..Default::default()
        });
    }

    PodSpec {
        service_account_name: Some(plan.name.clone()),
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod()),
        containers,
        volumes: Some(volumes),
        ..Default::default()
    }
}

/// Egress only to DNS, the chain and the named oracle endpoints. NetworkPolicy
/// selects peers by IP, not by DNS name: an endpoint given by IP gets an exact
/// /32 (or /128) peer; one given by name is allowed on its port only.
fn egress_rules(plan: &Plan) -> Vec<NetworkPolicyEgressRule> {
    let dns = NetworkPolicyEgressRule {
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|protocol| NetworkPolicyPort {
                    protocol: Some(protocol.into()),
                    port: Some(IntOrString::Int(53)),
                    ..Default::default()
                })
                .collect(),
        ),
        to: None,
    };
    let urls = std::iter::once(plan.sidecar_config.chain.rpc_url.as_str()).chain(
        plan.sidecar_config
            .oracle
            .endpoints
            .iter()
            .map(|e| e.url.as_str()),
    );
    let mut rules = vec![dns];
    for url in urls {
        let Some((host, port)) = host_and_port(url) else {
            continue;
        };
        let to = host.parse::<std::net::IpAddr>().ok().map(|ip| {
            let cidr = if ip.is_ipv4() {
                format!("{ip}/32")
            } else {
                format!("{ip}/128")
            };
            vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr, except: None }),
                ..Default::default()
            }]
        });
        let rule = NetworkPolicyEgressRule {
            ports: Some(vec![NetworkPolicyPort {
                protocol: Some("TCP".into()),
                port: Some(IntOrString::Int(port.into())),
                ..Default::default()
            }]),
            to,
        };
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    rules
}

/// Host (brackets removed from IPv6) and port (scheme default) of an http(s) URL.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (
            host.to_owned(),
            after.strip_prefix(':').map(str::parse).transpose().ok()?,
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
            None => (authority.to_owned(), None),
        }
    };
    Some((host, port.unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_urls() {
        assert_eq!(
            host_and_port("http://127.0.0.1:8545"),
            Some(("127.0.0.1".into(), 8545))
        );
        assert_eq!(
            host_and_port("https://rpc.example.org/v1?x=1"),
            Some(("rpc.example.org".into(), 443))
        );
        assert_eq!(
            host_and_port("http://user:pw@devices.iot.svc/cost"),
            Some(("devices.iot.svc".into(), 80))
        );
        assert_eq!(
            host_and_port("http://[::1]:9090/x"),
            Some(("::1".into(), 9090))
        );
        assert_eq!(host_and_port("not a url"), None);
    }
}
