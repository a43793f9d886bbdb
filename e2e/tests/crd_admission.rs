//! The CRDs against the real apiserver: they are accepted, the samples are
//! accepted and shown with their printer columns, and invalid objects are
//! refused at admission with a message naming the field.

use kontrakt_e2e::{TestNamespace, cluster};
use kontrakt_operator::api::{AccessPolicy, DataStream, SmartContractService};
use kube::{
    Api, Client, CustomResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const SHIPPING: &str = include_str!("../samples/shipping.yaml");
const POLICY: &str = include_str!("../samples/supply-chain-policy.yaml");
const STREAM: &str = include_str!("../samples/pump-telemetry-stream.yaml");

fn sample(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("sample parses")
}

/// Sets `pointer` in `v`, creating missing objects on the way.
fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let mut at = &mut v;
    for key in pointer.trim_start_matches('/').split('/') {
        at = match at {
            Value::Array(items) => &mut items[key.parse::<usize>().expect("array index")],
            other => other
                .as_object_mut()
                .expect("object on path")
                .entry(key)
                .or_insert(json!({})),
        };
    }
    *at = value;
    v
}

fn remove(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .remove(key);
    v
}

fn api_for(client: &Client, ns: &str, obj: &Value) -> Api<DynamicObject> {
    let resource = match obj["kind"].as_str() {
        Some("SmartContractService") => ApiResource::erase::<SmartContractService>(&()),
        Some("DataStream") => ApiResource::erase::<DataStream>(&()),
        Some("AccessPolicy") => ApiResource::erase::<AccessPolicy>(&()),
        other => panic!("not a kontrakt kind: {other:?}"),
    };
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn create(client: &Client, ns: &str, obj: &Value) -> Result<DynamicObject, kube::Error> {
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).expect("object shape");
    api_for(client, ns, obj)
        .create(&PostParams::default(), &dynamic)
        .await
}

fn kubectl_get(ns: &str, what: &str) -> String {
    let out = std::process::Command::new("kubectl")
        .args(["get", what, "-n", ns])
        .output()
        .expect("kubectl on PATH (make test puts the local control plane's bin dir first)");
    assert!(
        out.status.success(),
        "kubectl get {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn crds_are_installed_and_samples_are_accepted_with_printer_columns() {
    let client = cluster().await;
    for name in [
        SmartContractService::crd_name(),
        DataStream::crd_name(),
        AccessPolicy::crd_name(),
    ] {
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} installed: {e}"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is established");
    }

    let ns = TestNamespace::create(&client, "crd-samples").await;
    for yaml in [SHIPPING, POLICY, STREAM] {
        let obj = sample(yaml);
        create(&client, ns.name(), &obj)
            .await
            .unwrap_or_else(|e| panic!("sample {} accepted: {e}", obj["kind"]));
    }

    let scs = kubectl_get(ns.name(), "scs");
    let header: Vec<&str> = scs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "CONTRACT", "CHAIN", "READY", "AGE"],
        "{scs}"
    );
    assert!(
        scs.lines()
            .nth(1)
            .is_some_and(|row| row.starts_with("shipping") && row.contains("31337")),
        "{scs}"
    );

    let streams = kubectl_get(ns.name(), "dstream");
    let header: Vec<&str> = streams
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SELLER",
            "STREAM",
            "BATCHES",
            "SUBSCRIBERS",
            "RECEIVING",
            "READY",
            "AGE"
        ],
        "{streams}"
    );
    assert!(
        streams.contains("pump-telemetry") && streams.contains("shipping"),
        "{streams}"
    );

    let policies = kubectl_get(ns.name(), "ap");
    let header: Vec<&str> = policies
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "REGISTRY", "ENROLLED", "PENDING", "READY", "AGE"],
        "{policies}"
    );

    // The category groups all three kinds.
    let all = kubectl_get(ns.name(), "kontrakt");
    for name in [
        "smartcontractservice.kontrakt.dev/shipping",
        "datastream.kontrakt.dev/pump-telemetry",
        "accesspolicy.kontrakt.dev/supply-chain",
    ] {
        assert!(
            all.contains(name),
            "`kubectl get kontrakt` lists {name}:\n{all}"
        );
    }
}

/// An object the apiserver must refuse, and what its message must say.
struct Invalid {
    case: &'static str,
    object: Value,
    /// For update cases: the valid object created first; `object` then replaces it.
    before: Option<Value>,
    expect: &'static [&'static str],
}

fn invalid_objects() -> Vec<Invalid> {
    let scs = || sample(SHIPPING);
    let ap = || sample(POLICY);
    let ds = || sample(STREAM);
    let new = |case, object, expect| Invalid {
        case,
        object,
        before: None,
        expect,
    };
    let update = |case, before, object, expect| Invalid {
        case,
        object,
        before: Some(before),
        expect,
    };
    vec![
        new(
            "database address is not an address",
            set(
                set(scs(), "/spec/database/mode", json!("Existing")),
                "/spec/database/address",
                json!("0x1234"),
            ),
            &[
                "spec.database.address",
                "must be a 0x-prefixed 20-byte hex address",
            ],
        ),
        new(
            "existing database without an address",
            set(scs(), "/spec/database/mode", json!("Existing")),
            &["spec.database", "address is required when mode is Existing"],
        ),
        new(
            "rpc url is not http(s)",
            set(
                scs(),
                "/spec/chain/rpcUrl",
                json!("ftp://chain.example/rpc"),
            ),
            &[
                "spec.chain.rpcUrl",
                "must be an absolute http:// or https:// URL",
            ],
        ),
        new(
            "both rpcUrl and rpcUrlSecretRef",
            set(
                scs(),
                "/spec/chain/rpcUrlSecretRef",
                json!({"name": "rpc", "key": "url"}),
            ),
            &[
                "spec.chain",
                "exactly one of rpcUrl or rpcUrlSecretRef must be set",
            ],
        ),
        new(
            "chain id zero",
            set(scs(), "/spec/chain/chainId", json!(0)),
            &["spec.chain.chainId", "should be greater than or equal to 1"],
        ),
        new(
            "too many replicas",
            set(scs(), "/spec/replicas", json!(11)),
            &["spec.replicas", "should be less than or equal to 10"],
        ),
        new(
            "unknown contract template",
            set(scs(), "/spec/contract/template", json!("Casino")),
            &[
                "spec.contract.template",
                "Unsupported value: \"Casino\"",
                "\"Shipping\"",
                "\"AssetTracking\"",
            ],
        ),
        new(
            "template and artifactRef together",
            set(
                scs(),
                "/spec/contract/artifactRef",
                json!({"name": "artifacts", "key": "Shipping.json"}),
            ),
            &[
                "spec.contract",
                "exactly one of template or artifactRef must be set",
            ],
        ),
        new(
            "missing signer",
            remove(scs(), "/spec/signer"),
            &["spec.signer", "Required value"],
        ),
        new(
            "duplicate oracle endpoint names",
            set(
                scs(),
                "/spec/oracle/endpoints",
                json!([
                    {"name": "ShipmentCost", "url": "http://127.0.0.1:9090/a"},
                    {"name": "ShipmentCost", "url": "http://127.0.0.1:9090/b"}
                ]),
            ),
            &["spec.oracle.endpoints[1]", "Duplicate value"],
        ),
        new(
            "oracle endpoint url is not a URL",
            set(scs(), "/spec/oracle/endpoints/0/url", json!("not a url")),
            &[
                "spec.oracle.endpoints[0].url",
                "must be an absolute http:// or https:// URL",
            ],
        ),
        update(
            "chain id changed",
            scs(),
            set(scs(), "/spec/chain/chainId", json!(1)),
            &["spec.chain.chainId", "chainId is immutable"],
        ),
        update(
            "contract version lowered",
            set(scs(), "/spec/contract/version", json!(3)),
            set(scs(), "/spec/contract/version", json!(2)),
            &["spec.contract.version", "contract.version cannot decrease"],
        ),
        new(
            "negative price",
            set(ds(), "/spec/pricing/pricePerSecondWei", json!(-5)),
            &[
                "spec.pricing.pricePerSecondWei",
                "should be greater than or equal to 1",
            ],
        ),
        new(
            "zero batch size",
            set(ds(), "/spec/integrity/batchSize", json!(0)),
            &[
                "spec.integrity.batchSize",
                "should be greater than or equal to 1",
            ],
        ),
        new(
            "mqtt source with an http broker url",
            set(
                ds(),
                "/spec/source",
                json!({"mqtt": {"brokerUrl": "http://127.0.0.1:1883", "topic": "pumps/+/telemetry"}}),
            ),
            &[
                "spec.source.mqtt.brokerUrl",
                "must be an mqtt:// or mqtts:// URL",
            ],
        ),
        update(
            "stream seller changed",
            ds(),
            set(ds(), "/spec/seller/name", json!("another-service")),
            &["spec.seller", "seller is immutable"],
        ),
        new(
            "duplicate participant names",
            set(ap(), "/spec/participants/1/name", json!("supplier")),
            &["spec.participants[1]", "Duplicate value"],
        ),
        new(
            "duplicate participant addresses differing only in case",
            set(
                ap(),
                "/spec/participants/1/address",
                json!("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"),
            ),
            &[
                "spec.participants",
                "participant addresses must be unique (compared case-insensitively)",
            ],
        ),
        new(
            "unknown role",
            set(ap(), "/spec/participants/0/role", json!("Admin")),
            &["spec.participants[0].role", "Unsupported value: \"Admin\""],
        ),
        new(
            "participant address too short",
            set(
                ap(),
                "/spec/participants/2/address",
                json!("0x90F79bf6EB2c4f870365E785982E1f101E93b9"),
            ),
            &[
                "spec.participants[2].address",
                "must be a 0x-prefixed 20-byte hex address",
            ],
        ),
        new(
            "oracle approval without an identity endpoint",
            set(ap(), "/spec/approval/mode", json!("Oracle")),
            &[
                "spec.approval",
                "identityEndpoint is required when mode is Oracle",
            ],
        ),
        new(
            "missing registry",
            remove(ap(), "/spec/registry"),
            &["spec.registry", "Required value"],
        ),
    ]
}

#[tokio::test]
async fn invalid_objects_are_refused_with_a_message_naming_the_field() {
    let client = cluster().await;
    let ns = TestNamespace::create(&client, "crd-invalid").await;
    let cases = invalid_objects();
    assert!(
        cases.len() >= 12,
        "the issue asks for at least 12 invalid objects"
    );

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // Each case gets its own object name, so update cases start from a fresh object.
        let name = format!("case-{i}");
        let named = |v: &Value| set(v.clone(), "/metadata/name", json!(name));
        let refused = match &case.before {
            None => create(&client, ns.name(), &named(&case.object)).await,
            Some(before) => {
                create(&client, ns.name(), &named(before))
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "{}: the valid object before the update is accepted: {e}",
                            case.case
                        )
                    });
                let api = api_for(&client, ns.name(), &case.object);
                let patch = Patch::Merge(named(&case.object));
                api.patch(&name, &PatchParams::default(), &patch).await
            }
        };
        match refused {
            Ok(_) => failures.push(format!("{}: accepted, but must be refused", case.case)),
            Err(kube::Error::Api(status)) => {
                if status.code != 422 {
                    failures.push(format!(
                        "{}: HTTP {} (want 422): {}",
                        case.case, status.code, status.message
                    ));
                }
                for needle in case.expect {
                    if !status.message.contains(needle) {
                        failures.push(format!(
                            "{}: message lacks {needle:?}: {}",
                            case.case, status.message
                        ));
                    }
                }
            }
            Err(other) => failures.push(format!("{}: not an API refusal: {other}", case.case)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
