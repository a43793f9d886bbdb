//! Unit tests of the pure steps, from the Shipping sample.

use super::{
    build::{CONFIG_HASH_ANNOTATION, build},
    status::{ChainState, PairState, compute},
    validate::{References, validate},
};
use crate::api::{Phase, SmartContractService};
use crate::reconcile::conditions::merge_conditions;
use alloy::primitives::Address;
use k8s_openapi::{
    api::apps::v1::{Deployment, DeploymentStatus},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kontrakt_protocol::views::registry::MemberStatus;

/// anvil's first development key: public test material.
pub(super) const DEV_KEY: &[u8] =
    b"0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const DEV_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

pub(super) fn sample() -> SmartContractService {
    let mut scs: SmartContractService =
        serde_yaml::from_str(include_str!("../../../e2e/samples/shipping.yaml"))
            .expect("sample parses");
    scs.metadata.namespace = Some("supply".into());
    scs.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    scs.metadata.generation = Some(1);
    scs
}

fn refs() -> References<'static> {
    References {
        signer_key: Some(DEV_KEY),
        artifact_json: None,
        ..Default::default()
    }
}

#[test]
fn a_valid_spec_renders_the_sidecar_config_and_the_admin() {
    let plan = validate(&sample(), &refs()).expect("valid");
    assert_eq!(plan.admin, DEV_ADDRESS.parse::<Address>().unwrap());
    let config = &plan.sidecar_config;
    assert_eq!(config.chain.chain_id, 31337);
    assert_eq!(config.contract.namespace, "supply");
    assert_eq!(config.contract.template.as_deref(), Some("Shipping"));
    assert_eq!(config.oracle.endpoints[0].name, "ShipmentCost");
    // The key is referenced by path; its value is nowhere in the rendered config.
    let yaml = config.to_yaml();
    assert!(yaml.contains("/var/run/kontrakt/signer/key"));
    assert!(!yaml.contains("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"));
}

#[test]
fn missing_or_garbled_references_are_reported_with_a_reason_and_no_key_material() {
    let scs = sample();
    let missing = validate(
        &scs,
        &References {
            signer_key: None,
            artifact_json: None,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(missing.reason, "SignerSecretNotFound");
    assert!(missing.message.contains("anvil-dev-key"));
    let garbled = validate(
        &scs,
        &References {
            signer_key: Some(b"0xnot-a-key"),
            artifact_json: None,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(garbled.reason, "SignerKeyInvalid");
    assert!(
        !garbled.message.contains("not-a-key"),
        "the message never echoes key material"
    );

    let mut custom = sample();
    custom.spec.contract.template = None;
    custom.spec.contract.artifact_ref = Some(crate::api::ConfigMapKeyRef {
        name: "artifacts".into(),
        key: "Custom.json".into(),
    });
    let not_found = validate(&custom, &refs()).unwrap_err();
    assert_eq!(not_found.reason, "ArtifactNotFound");
    let unparsable = validate(
        &custom,
        &References {
            signer_key: Some(DEV_KEY),
            artifact_json: Some("{not json"),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(unparsable.reason, "ArtifactInvalid");
}

#[test]
fn a_version_bump_moves_the_logic_but_not_the_database_and_rolls_the_pods() {
    let v1 = validate(&sample(), &refs()).unwrap();
    let mut bumped = sample();
    bumped.spec.contract.version = 2;
    let v2 = validate(&bumped, &refs()).unwrap();
    assert_eq!(v1.addresses.database, v2.addresses.database);
    assert_ne!(v1.addresses.logic, v2.addresses.logic);
    assert_ne!(v1.config_hash, v2.config_hash);

    let hash = |scs: &SmartContractService, plan| {
        let d = build(scs, plan, "sidecar:test").deployment;
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(hash(&sample(), &v1), hash(&bumped, &v2));
}

#[test]
fn children_are_owned_restricted_and_reference_the_secret() {
    let scs = sample();
    let plan = validate(&scs, &refs()).unwrap();
    let children = build(&scs, &plan, "sidecar:test");

    for (kind, owners) in [
        (
            "ServiceAccount",
            &children.service_account.metadata.owner_references,
        ),
        ("ConfigMap", &children.config_map.metadata.owner_references),
        ("Deployment", &children.deployment.metadata.owner_references),
        ("Service", &children.service.metadata.owner_references),
        (
            "NetworkPolicy",
            &children.network_policy.metadata.owner_references,
        ),
    ] {
        let owner = &owners
            .as_ref()
            .unwrap_or_else(|| panic!("{kind} has an owner"))[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("SmartContractService", Some(true)),
            "{kind}"
        );
    }
    assert_eq!(
        children.service_account.automount_service_account_token,
        Some(false)
    );

    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let pod_sc = pod.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let sidecar = &pod.containers[0];
    let sc = sidecar.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(
        sidecar
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        sidecar
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    let signer = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "signer")
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(signer.secret_name.as_deref(), Some("anvil-dev-key"));

    // The ConfigMap holds the rendered config only, never the key.
    let data = children.config_map.data.unwrap();
    assert!(
        data.values().all(
            |v| !v.contains("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
        )
    );

    // Egress: DNS, the chain (by IP: exact /32) and the oracle endpoint.
    let egress = children.network_policy.spec.unwrap().egress.unwrap();
    let cidrs: Vec<_> = egress
        .iter()
        .flat_map(|r| r.to.iter().flatten())
        .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect();
    assert_eq!(cidrs, ["127.0.0.1/32", "127.0.0.1/32"]);
    let ports: Vec<_> = egress
        .iter()
        .flat_map(|r| r.ports.iter().flatten())
        .filter_map(|p| p.port.clone())
        .collect();
    for port in [53, 8545, 9090] {
        assert!(
            ports.contains(&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port)),
            "port {port}"
        );
    }
}

fn available(n: i32) -> Deployment {
    Deployment {
        status: Some(DeploymentStatus {
            available_replicas: Some(n),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn status_follows_the_chain_and_the_deployment() {
    let scs = sample();
    let plan = validate(&scs, &refs()).unwrap();
    let deployed = PairState {
        database_code: Some(plan.addresses.database_code_hash),
        logic_code: plan.addresses.logic_code_hash,
        writer: plan.addresses.logic,
        writer_version: 1,
        retired: false,
        enrollment: None,
        oracle: None,
    };

    let ready = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::Observed(deployed.clone()),
    );
    assert!(ready.ready);
    assert_eq!(ready.status.phase, Some(Phase::Ready));
    assert_eq!(ready.status.version, Some(1));
    assert_eq!(
        ready.status.contract_address,
        Some(plan.addresses.logic.to_checksum(None))
    );

    let no_pods = compute(
        &scs,
        &plan,
        Some(&available(0)),
        &ChainState::Observed(deployed.clone()),
    );
    assert!(!no_pods.ready);
    assert_eq!(ready_of(&no_pods).reason, "SidecarNotAvailable");
    let oracle = no_pods
        .conditions
        .iter()
        .find(|c| c.type_ == "OracleReady")
        .expect("an OracleReady condition: the sample names oracle endpoints");
    assert_eq!(
        oracle.reason, "NotAnOracleContract",
        "no counters were read"
    );

    let nothing = PairState {
        database_code: None,
        logic_code: None,
        writer: Address::ZERO,
        writer_version: 0,
        retired: false,
        enrollment: None,
        oracle: None,
    };
    let deploying = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::Observed(nothing),
    );
    assert_eq!(
        (deploying.status.phase, deploying.conditions[0].reason),
        (Some(Phase::Deploying), "PairNotDeployed")
    );

    let wrong = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::WrongChain { actual: 1 },
    );
    assert_eq!(
        (wrong.status.phase, ready_of(&wrong).reason),
        (Some(Phase::Failed), "ChainIdMismatch")
    );

    let down = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::Unreachable("connection refused".into()),
    );
    assert!(down.chain_unreachable);
    assert_eq!(down.conditions[0].reason, "ChainUnreachable");

    // v2 wanted, the chain still runs v1: upgrading.
    let mut bumped = sample();
    bumped.spec.contract.version = 2;
    let plan2 = validate(&bumped, &refs()).unwrap();
    let v1_on_chain = PairState {
        logic_code: None,
        ..deployed
    };
    let upgrading = compute(
        &bumped,
        &plan2,
        Some(&available(1)),
        &ChainState::Observed(v1_on_chain),
    );
    assert_eq!(
        (upgrading.status.phase, upgrading.conditions[0].reason),
        (Some(Phase::Upgrading), "Upgrading")
    );
}

#[test]
fn unchanged_conditions_keep_their_transition_time() {
    let scs = sample();
    let plan = validate(&scs, &refs()).unwrap();
    let outcome = compute(&scs, &plan, None, &ChainState::Unreachable("down".into()));
    let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
    let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
    let first = merge_conditions(&[], &outcome.conditions, Some(1), t0.clone());
    let again = merge_conditions(&first, &outcome.conditions, Some(1), t1);
    assert_eq!(
        first, again,
        "a pass that changes nothing produces the same conditions"
    );
    assert!(again.iter().all(|c| c.last_transition_time == t0));
}

fn ready_of(outcome: &super::status::Outcome) -> &crate::reconcile::Computed {
    outcome
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition")
}

#[test]
fn the_signer_must_be_enrolled_in_its_registry_to_be_ready() {
    use super::status::SignerEnrollment;
    let scs = sample();
    let plan = validate(&scs, &refs()).unwrap();
    let member = |status, active, admin| PairState {
        database_code: Some(plan.addresses.database_code_hash),
        logic_code: plan.addresses.logic_code_hash,
        writer: plan.addresses.logic,
        writer_version: 1,
        retired: false,
        enrollment: Some(SignerEnrollment::Member {
            status,
            active,
            admin,
            oracle: admin,
        }),
        oracle: Some(Default::default()),
    };
    let revoked = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::Observed(member(MemberStatus::Revoked, false, false)),
    );
    assert!(!revoked.ready);
    assert_eq!(ready_of(&revoked).reason, "SignerNotEnrolled");
    assert!(ready_of(&revoked).message.contains("revoked"));
    let oracle = revoked
        .conditions
        .iter()
        .find(|c| c.type_ == "OracleReady")
        .unwrap();
    assert_eq!(oracle.reason, "OracleNotEnrolled");

    let admin = compute(
        &scs,
        &plan,
        Some(&available(1)),
        &ChainState::Observed(member(MemberStatus::None, false, true)),
    );
    assert!(admin.ready, "{:?}", admin.conditions);
    let enrolled = admin
        .conditions
        .iter()
        .find(|c| c.type_ == "Enrolled")
        .unwrap();
    assert_eq!(enrolled.reason, "RegistryAdmin");
    assert_eq!(admin.status.oracle.as_ref().map(|o| o.pending), Some(0));
}
