//! Unit tests on the generated CRD schemas: what `kubectl` shows and what the
//! apiserver enforces is decided here, so each CRD's schema is pinned down.

use super::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::Value;

fn schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let props: &JSONSchemaProps = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(props).expect("schema is JSON")
}

fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, key| {
        let next = if key == "[]" {
            &node["items"]
        } else {
            &node["properties"][key]
        };
        assert!(!next.is_null(), "schema has no {path} (stuck at {key})");
        next
    })
}

fn rules(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["rule"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every field under `spec` and `status` carries a description, so `kubectl explain` documents the API.
fn assert_every_field_described(node: &Value, path: &str) {
    if let Some(props) = node["properties"].as_object() {
        for (name, prop) in props {
            let here = format!("{path}.{name}");
            if path.is_empty() && (name == "apiVersion" || name == "kind" || name == "metadata") {
                continue;
            }
            let described = prop["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty());
            assert!(described, "{here} has no description");
            assert_every_field_described(prop, &here);
        }
    }
    if node["items"].is_object() {
        assert_every_field_described(&node["items"], &format!("{path}[]"));
    }
}

fn common_shape(crd: &CustomResourceDefinition, kind: &str, short: &str) -> Value {
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.names.kind, kind);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&[short.to_owned()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["kontrakt".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, VERSION);
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );

    let s = schema(crd);
    assert_every_field_described(&s, "");
    let conditions = at(&s, "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    assert_eq!(at(&s, "status.observedGeneration")["type"], "integer");
    s
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect()
}

#[test]
fn smart_contract_service_schema() {
    let crd = SmartContractService::crd();
    let s = common_shape(&crd, "SmartContractService", "scs");
    let names: Vec<_> = columns(&crd).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Phase", "Contract", "Chain", "Ready", "Age"]);

    assert_eq!(rules(at(&s, "spec.chain.chainId")), [IMMUTABLE_RULE]);
    assert_eq!(rules(at(&s, "spec.chain.rpcUrl")), [HTTP_URL_RULE]);
    assert_eq!(rules(at(&s, "spec.database.address")), [ADDRESS_RULE]);
    assert_eq!(at(&s, "spec.database.address")["maxLength"], 42);
    assert_eq!(
        rules(at(&s, "spec.oracle.endpoints.[].url")),
        [HTTP_URL_RULE]
    );
    assert_eq!(
        at(&s, "spec.oracle.endpoints")["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(at(&s, "spec.replicas")["maximum"], 10.0);
    assert_eq!(
        at(&s, "spec.contract.template")["enum"],
        serde_json::json!(["Shipping", "AssetTracking"])
    );
    let required: Vec<_> = at(&s, "spec")["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        required.contains(&"chain")
            && required.contains(&"signer")
            && required.contains(&"contract")
    );
}

#[test]
fn data_stream_schema() {
    let crd = DataStream::crd();
    let s = common_shape(&crd, "DataStream", "dstream");
    let names: Vec<_> = columns(&crd).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Seller",
            "Stream",
            "Batches",
            "Subscribers",
            "Receiving",
            "Ready",
            "Age"
        ]
    );

    assert_eq!(rules(at(&s, "spec.seller")), [IMMUTABLE_RULE]);
    assert_eq!(at(&s, "spec.pricing.pricePerSecondWei")["minimum"], 1.0);
    assert_eq!(at(&s, "spec.pricing.minDurationSeconds")["minimum"], 1.0);
    assert_eq!(at(&s, "spec.integrity.batchSize")["minimum"], 1.0);
    assert_eq!(rules(at(&s, "spec.source.http.url")), [HTTP_URL_RULE]);
    assert!(rules(at(&s, "spec.source.mqtt.brokerUrl"))[0].contains("'mqtt', 'mqtts'"));
}

#[test]
fn access_policy_schema() {
    let crd = AccessPolicy::crd();
    let s = common_shape(&crd, "AccessPolicy", "ap");
    let names: Vec<_> = columns(&crd).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Registry", "Enrolled", "Pending", "Ready", "Age"]);

    let participants = at(&s, "spec.participants");
    assert_eq!(
        participants["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(participants["maxItems"], MAX_PARTICIPANTS);
    assert!(
        rules(participants)[0].contains("lowerAscii()"),
        "addresses unique case-insensitively"
    );
    assert_eq!(
        rules(at(&s, "spec.participants.[].address")),
        [ADDRESS_RULE]
    );
    assert_eq!(
        at(&s, "spec.participants.[].role")["enum"],
        serde_json::json!(["Validator", "Node", "Publisher", "Subscriber", "Oracle"])
    );
    assert_eq!(
        at(&s, "spec.approval.mode")["enum"],
        serde_json::json!(["Manual", "Oracle"])
    );
}

#[test]
fn crdgen_writes_one_file_per_kind_named_after_the_crd() {
    let names: Vec<_> = crds().into_iter().filter_map(|c| c.metadata.name).collect();
    assert_eq!(
        names,
        [
            "smartcontractservices.kontrakt.dev",
            "datastreams.kontrakt.dev",
            "accesspolicies.kontrakt.dev"
        ]
    );
}

/// Every field checked as an address or a URL is bounded by the one length its CEL cost
/// estimate assumes.
#[test]
fn address_and_url_fields_share_one_maximum_length() {
    fn walk(node: &Value, path: String, found: &mut Vec<(String, Value, Value)>) {
        let rules = rules(node);
        for (rule, max) in [
            (ADDRESS_RULE, ADDRESS_MAX_LEN),
            (HTTP_URL_RULE, URL_MAX_LEN),
        ] {
            if rules.iter().any(|r| r == rule) {
                found.push((path.clone(), node["maxLength"].clone(), max.into()));
            }
        }
        if let Some(props) = node["properties"].as_object() {
            for (k, v) in props {
                walk(v, format!("{path}.{k}"), found);
            }
        }
        if node["items"].is_object() {
            walk(&node["items"], format!("{path}.[]"), found);
        }
    }
    let mut found = Vec::new();
    for crd in [
        SmartContractService::crd(),
        DataStream::crd(),
        AccessPolicy::crd(),
    ] {
        walk(&schema(&crd), crd.spec.names.kind.clone(), &mut found);
    }
    assert!(found.len() >= 5, "{found:?}");
    let unbounded: Vec<_> = found.iter().filter(|(_, got, want)| got != want).collect();
    assert!(unbounded.is_empty(), "{unbounded:?}");
}
