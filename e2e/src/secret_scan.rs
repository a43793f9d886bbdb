//! Looks for Secret values where they must never be: every ConfigMap, every
//! object the operator owns or writes status to, and every Event of a namespace.

use crate::KONTRAKT_KINDS;
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ConfigMap, Event, Pod, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use serde::de::DeserializeOwned;

/// The forms a secret value may take once copied somewhere: as is, without a
/// `0x` prefix, and base64-encoded (a ConfigMap's binaryData, a Secret-like
/// copy). Hex values are compared case-insensitively.
pub fn leak_forms(secret: &str) -> Vec<String> {
    let mut plain = vec![secret.to_owned()];
    if let Some(bare) = secret.strip_prefix("0x") {
        plain.push(bare.to_owned());
    }
    let mut forms: Vec<String> = plain.iter().map(|s| s.to_ascii_lowercase()).collect();
    forms.extend(plain.iter().map(|s| base64(s.as_bytes())));
    forms
}

/// Every place in namespace `ns` where one of `secrets` (named by the caller,
/// e.g. "signer key") appears in any of its [`leak_forms`]. Each finding
/// names the object and the secret, never the value.
pub async fn find_leaks(client: &Client, ns: &str, secrets: &[(&str, &str)]) -> Vec<String> {
    let mut documents: Vec<(String, String)> = Vec::new();
    documents.extend(listed::<ConfigMap>(client, ns, "ConfigMap").await);
    documents.extend(listed::<Event>(client, ns, "Event").await);
    documents.extend(listed::<Deployment>(client, ns, "Deployment").await);
    documents.extend(listed::<ReplicaSet>(client, ns, "ReplicaSet").await);
    documents.extend(listed::<Pod>(client, ns, "Pod").await);
    documents.extend(listed::<Service>(client, ns, "Service").await);
    documents.extend(listed::<ServiceAccount>(client, ns, "ServiceAccount").await);
    documents.extend(listed::<NetworkPolicy>(client, ns, "NetworkPolicy").await);
    for (kind, plural) in KONTRAKT_KINDS {
        let gvk = GroupVersionKind::gvk("kontrakt.dev", "v1alpha1", kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let list = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind} in {ns}: {e}"));
        documents.extend(list.items.into_iter().map(|o| {
            let name = format!("{kind} {}", o.metadata.name.clone().unwrap_or_default());
            (
                name,
                serde_json::to_string(&o)
                    .expect("json")
                    .to_ascii_lowercase(),
            )
        }));
    }
    let mut findings = Vec::new();
    for (what, secret) in secrets {
        let forms = leak_forms(secret);
        for (object, text) in &documents {
            // Documents are lowercased, so compare lowercased forms (for base64
            // this can only add matches, never lose one).
            if forms.iter().any(|f| text.contains(&f.to_ascii_lowercase())) {
                findings.push(format!("{object} contains the {what}"));
            }
        }
    }
    findings
}

/// (kind name, the object as lowercase JSON) for every object of a kind in `ns`.
async fn listed<K>(client: &Client, ns: &str, kind: &str) -> Vec<(String, String)>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list {kind} in {ns}: {e}"))
        .items
        .into_iter()
        .map(|o| {
            let name = format!("{kind} {}", o.meta().name.clone().unwrap_or_default());
            (
                name,
                serde_json::to_string(&o)
                    .expect("json")
                    .to_ascii_lowercase(),
            )
        })
        .collect()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_key_leaks_with_or_without_its_prefix_and_in_base64() {
        let forms = leak_forms("0xAB12");
        assert!(forms.contains(&"0xab12".to_owned()));
        assert!(forms.contains(&"ab12".to_owned()));
        assert!(forms.contains(&base64(b"0xAB12")));
        assert!(forms.contains(&base64(b"AB12")));
    }
}
