//! Pure tests of the DataStream pipeline from small fixtures.

use super::{build, status, validate};
use crate::api::{DataStream, SmartContractService};
use crate::reconcile::{Invalid, InvalidReason};
use alloy::primitives::{Address, B256, U256};

const DEV_KEY: &[u8] = b"0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// YAML fixtures read the way the apiserver's JSON is (externally tagged enums as maps).
fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::from_value(value).unwrap()
}

fn stream() -> DataStream {
    let mut ds: DataStream = from_yaml(
        r#"
apiVersion: kontrakt.dev/v1alpha1
kind: DataStream
metadata: { name: pump-telemetry, namespace: supply, uid: "u-1", generation: 1 }
spec:
  seller: { name: shipping }
  source:
    mqtt: { brokerUrl: "mqtt://127.0.0.1:1883", topic: pumps/+/telemetry, qos: 1,
            credentialsSecretRef: { name: broker, key: credentials } }
  pricing: { pricePerSecondWei: 1000, minDurationSeconds: 60 }
  integrity: { batchSize: 100, maxDelaySeconds: 30 }
"#,
    );
    ds.metadata.namespace = Some("supply".into());
    ds
}

fn seller() -> SmartContractService {
    from_yaml(
        r#"
apiVersion: kontrakt.dev/v1alpha1
kind: SmartContractService
metadata: { name: shipping, namespace: supply }
spec:
  chain: { rpcUrl: "http://127.0.0.1:8545", chainId: 31337 }
  signer: { secretKeyRef: { name: anvil-dev-key, key: privateKey } }
  contract: { template: Shipping, version: 1 }
"#,
    )
}

#[test]
fn the_publisher_config_names_files_never_secret_values() {
    let seller = seller();
    let plan = validate::validate(
        &stream(),
        validate::References {
            seller: Some(&seller),
            signer_key: Some(DEV_KEY),
            registry: Ok(None),
        },
    )
    .unwrap();
    let yaml = plan.config.to_yaml();
    assert!(
        yaml.contains("keyFile: /var/run/kontrakt/signer/key"),
        "{yaml}"
    );
    assert!(
        yaml.contains("credentialsFile: /var/run/kontrakt/mqtt/credentials"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("ac0974bec39a17e36ba4a6b4d238ff944bacb478"),
        "no key in the config"
    );
    assert_eq!(plan.config.stream.price_per_second_wei, U256::from(1000));
    assert_eq!(plan.config.integrity.batch_size, 100);

    let children = build::build(&stream(), &plan, "sidecar:test");
    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.args.as_deref().unwrap()[0], "stream");
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let volumes = pod.volumes.unwrap();
    let secrets: Vec<_> = volumes
        .iter()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    assert_eq!(secrets, ["anvil-dev-key", "broker"], "mounted by reference");
    assert!(
        volumes.iter().any(|v| v.empty_dir.is_some()),
        "a data volume for the log"
    );
    assert!(
        children.log_claim.is_none(),
        "no claim without spec.storage"
    );
}

#[test]
fn with_storage_the_log_lives_on_the_streams_own_claim() {
    let seller = seller();
    let mut ds = stream();
    ds.spec.storage = Some(from_yaml("{ size: 2Gi, storageClassName: fast }"));
    let plan = validate::validate(
        &ds,
        validate::References {
            seller: Some(&seller),
            signer_key: Some(DEV_KEY),
            registry: Ok(None),
        },
    )
    .unwrap();
    let children = build::build(&ds, &plan, "sidecar:test");
    let claim = children.log_claim.expect("a claim");
    assert_eq!(claim.metadata.name.as_deref(), Some("pump-telemetry-log"));
    assert_eq!(
        claim.metadata.owner_references.as_ref().unwrap()[0].uid,
        "u-1",
        "owned by the stream"
    );
    let spec = claim.spec.unwrap();
    assert_eq!(spec.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );
    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    let data = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "data")
        .unwrap();
    assert_eq!(
        data.persistent_volume_claim.unwrap().claim_name,
        "pump-telemetry-log"
    );
    assert!(data.empty_dir.is_none());
}

#[test]
fn a_missing_seller_or_policy_is_a_reason_not_an_error() {
    let missing = validate::validate(
        &stream(),
        validate::References {
            seller: None,
            signer_key: None,
            registry: Ok(None),
        },
    )
    .unwrap_err();
    assert_eq!(missing.reason, "SellerNotFound");
    let seller = seller();
    let no_policy = validate::validate(
        &stream(),
        validate::References {
            seller: Some(&seller),
            signer_key: Some(DEV_KEY),
            registry: Err(Invalid::new(
                InvalidReason::AccessPolicyNotFound,
                "AccessPolicy \"x\" not found",
            )),
        },
    )
    .unwrap_err();
    assert_eq!(no_policy.reason, "AccessPolicyNotFound");
}

#[test]
fn status_reports_the_stream_as_the_chain_has_it() {
    let ds = stream();
    let waiting = status::compute(
        &ds,
        None,
        &status::Observation::NotRegistered {
            market: Address::repeat_byte(1),
        },
    );
    assert!(!waiting.ready);
    assert_eq!(waiting.conditions[0].reason, "StreamNotRegistered");
    let live = status::compute(
        &ds,
        None,
        &status::Observation::Registered {
            stream_id: U256::from(3),
            anchored_batches: 2,
            last_root: Some(B256::repeat_byte(7)),
            last_anchored_at: Some(1_800_000_000),
            chain_time: 1_800_000_005,
            active_subscribers: 1,
            revenue: U256::from(60_000),
        },
    );
    assert_eq!(live.status.stream_id.as_deref(), Some("3"));
    assert_eq!(live.status.revenue_wei.as_deref(), Some("60000"));
    assert_eq!(live.status.anchored_batches, Some(2));
    assert_eq!(
        live.status
            .last_anchored_at
            .as_ref()
            .map(|t| t.0.as_second()),
        Some(1_800_000_000)
    );
    let reasons: Vec<(&str, bool, &str)> = live
        .conditions
        .iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("Registered", true, "StreamRegistered"),
            ("Receiving", true, "BatchesAnchored"),
            ("Ready", false, "PublisherNotAvailable"),
        ],
        "no pod yet"
    );
}

#[test]
fn a_silent_source_is_reported_from_the_anchor_times() {
    let mut ds = stream();
    // MQTT: only maxDelay (30 s) bounds the gap; silent after 2 x 30 + 10 s.
    assert_eq!(status::expected_gap(&ds), 30);
    assert_eq!(status::silence_after(&ds), 70);
    let at = |last: Option<u64>, now: u64| {
        let o = status::Observation::Registered {
            stream_id: U256::from(3),
            anchored_batches: 2,
            last_root: None,
            last_anchored_at: last,
            chain_time: now,
            active_subscribers: 0,
            revenue: U256::ZERO,
        };
        let c = status::compute(&ds, None, &o)
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Receiving")
            .unwrap();
        (c.status, c.reason, c.message)
    };
    assert_eq!(at(Some(1_000), 1_070).1, "BatchesAnchored");
    let (ok, reason, message) = at(Some(1_000), 1_071);
    assert_eq!((ok, reason), (false, "SourceSilent"));
    assert!(message.contains("no batch anchored for 71s"), "{message}");
    assert!(message.contains("pumps/+/telemetry"), "{message}");
    assert_eq!(at(None, 1_000).1, "NoBatchYet");

    // HTTP every 2 s, 100 per batch, 30 s delay: a batch is sealed 30 s
    // after its first message at the latest (32 s), before it fills (200 s).
    ds.spec.source = from_yaml(r#"{ http: { url: "http://pump.local/t", intervalSeconds: 2 } }"#);
    assert_eq!(status::expected_gap(&ds), 32);
    ds.spec.integrity.batch_size = 5;
    assert_eq!(status::expected_gap(&ds), 10, "five polls fill a batch");
}
