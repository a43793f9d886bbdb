//! Permissioned enrollment end to end: an AccessPolicy on the local control
//! plane → the registry service's sidecar (a real container on the real node,
//! from the config the chart-installed operator pod rendered) keeps the
//! on-chain EnrollmentRegistry equal to the policy → the operator reports the
//! chain back. Join requests, approval by editing the policy, revocation (the
//! revoked account's contract calls revert), a service whose signer is not
//! enrolled, RBAC on the policy, and the finalizer.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, FixedBytes, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kontrakt_e2e::{
    chain::Signer,
    contract_services::condition,
    kubeconfig,
    real_node::RealNode,
    stack::{Stack, assert_not_refused, assert_operator_restarts},
};
use kontrakt_operator::api::{AccessPolicy, SmartContractService};
use kontrakt_protocol::{bindings::EnrollmentRegistry, views::registry::MemberStatus};
use kontrakt_sidecar::devchain::DEV_KEYS;
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use std::time::Duration;

alloy::sol! {
    #[sol(rpc)]
    interface Joining {
        function requestJoin(uint8 role) external;
    }
    #[sol(rpc)]
    interface ShippingCalls {
        function createShipment(bytes32 id, address receiver, string device, uint256 quantity) external;
    }
}

const NODE: u8 = 1;
const LIMIT: Duration = Duration::from_secs(120);

/// Account 0 is anvil's first dev account (the registry's admin); the others
/// are keys of this test's own, funded at the start.
fn signer(i: usize) -> PrivateKeySigner {
    if i == 0 {
        return DEV_KEYS[0].parse().expect("a dev key");
    }
    key(i).key_hex.parse().expect("a key")
}

fn key(i: usize) -> Signer {
    Signer::from_seed(&format!("kontrakt-e2e/access-policy/{i}"))
}

fn service(name: &str, rpc_url: &str, secret: &str) -> SmartContractService {
    serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": name },
        "spec": {
            "chain": { "rpcUrl": rpc_url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": secret, "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": 1 },
            "accessPolicyRef": { "name": "supply-chain" },
        }
    }))
    .expect("service")
}

fn participants(list: &[(&str, usize)]) -> serde_json::Value {
    list.iter()
        .map(|(name, i)| {
            json!({ "name": name, "address": signer(*i).address().to_checksum(None), "role": "Node" })
        })
        .collect()
}

fn names(list: &[kontrakt_operator::api::ParticipantState]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().filter_map(|p| p.name.clone()).collect();
    v.sort();
    v
}

async fn chain_status(rpc: &str, registry: Address, account: Address) -> MemberStatus {
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    EnrollmentRegistry::new(registry, &provider)
        .statusOf(account)
        .call()
        .await
        .map(|s| MemberStatus::from_number(s.status))
        .unwrap_or(MemberStatus::None)
}

#[tokio::test]
async fn an_access_policy_is_enrolled_on_chain_and_enforced() {
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain listens there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("access", &[("resyncSeconds", "2")], &node).await;
    let admin_client = stack.client.clone();
    let namespace = stack.ns.name().to_owned();
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    for i in 1..=6 {
        key(i).fund(&anvil.url).await;
    }
    stack
        .create_secret("outsider", "privateKey", &key(6).key_hex)
        .await;
    let diagnostics = || stack.diagnostics();

    let services: Api<SmartContractService> = Api::namespaced(admin_client.clone(), &namespace);
    let policies: Api<AccessPolicy> = Api::namespaced(admin_client.clone(), &namespace);
    // `shipping` hosts the registry (its signer administers it) and is governed by it.
    services
        .create(
            &PostParams::default(),
            &service("shipping", &anvil.url, "signer"),
        )
        .await
        .expect("create shipping");
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": "supply-chain" },
        "spec": {
            "registry": { "name": "shipping" },
            "participants": participants(&[("supplier", 1), ("maker", 2)]),
            "rules": [{ "operation": "events", "roles": ["Subscriber", "Node"] }],
        }
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");

    let registry =
        kontrakt_protocol::addresses::registry_address(&namespace, "shipping", signer(0).address());
    // Both participants enrolled on chain and listed in status.
    stack
        .wait_for("both participants enrolled", LIMIT, || async {
            let p = policies.get("supply-chain").await.ok()?;
            let s = p.status?;
            (names(&s.enrolled) == ["maker", "supplier"]).then_some(())
        })
        .await;
    for i in [1, 2] {
        assert_eq!(
            chain_status(&anvil.url, registry, signer(i).address()).await,
            MemberStatus::Enrolled,
            "account {i} on chain"
        );
    }
    let shipping = stack
        .wait_for("shipping Ready and Enrolled", LIMIT, || async {
            let s = services.get("shipping").await.ok()?;
            (condition(&s, "Ready").map(|c| c.0) == Some("True".into())).then_some(s)
        })
        .await;
    assert_eq!(
        condition(&shipping, "Enrolled"),
        Some(("True".into(), "RegistryAdmin".into()))
    );
    let logic: Address = shipping
        .status
        .and_then(|s| s.contract_address)
        .expect("contract address")
        .parse()
        .unwrap();

    // A third account asks to join: pending in status until the policy lists it.
    let newcomer = signer(3);
    let wallet = |s: PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s))
            .connect_http(anvil.url.parse().unwrap())
    };
    Joining::new(registry, wallet(newcomer.clone()))
        .requestJoin(NODE)
        .send()
        .await
        .expect("requestJoin")
        .get_receipt()
        .await
        .expect("mined");
    stack
        .wait_for("the join request pending in status", LIMIT, || async {
            let s = policies.get("supply-chain").await.ok()?.status?;
            s.pending
                .iter()
                .any(|p| p.address.parse::<Address>().ok() == Some(newcomer.address()))
                .then_some(())
        })
        .await;
    // Approved by editing the policy; `maker` removed in the same edit.
    policies
        .patch(
            "supply-chain",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"participants": participants(&[("supplier", 1), ("newcomer", 3)])}})),
        )
        .await
        .expect("edit policy");
    stack
        .wait_for("newcomer enrolled, maker revoked", LIMIT, || async {
            let s = policies.get("supply-chain").await.ok()?.status?;
            let revoked = s
                .revoked
                .iter()
                .any(|p| p.address.parse::<Address>().ok() == Some(signer(2).address()));
            (names(&s.enrolled) == ["newcomer", "supplier"] && revoked).then_some(())
        })
        .await;
    assert_eq!(
        chain_status(&anvil.url, registry, signer(2).address()).await,
        MemberStatus::Revoked
    );
    // Enforced by the contract: the enrolled supplier may create a shipment, the revoked maker may not.
    let create = |who: PrivateKeySigner, id: u8| {
        let provider = wallet(who);
        async move {
            ShippingCalls::new(logic, provider)
                .createShipment(
                    FixedBytes::repeat_byte(id),
                    signer(4).address(),
                    "VerticalPump".into(),
                    U256::from(2),
                )
                .call()
                .await
        }
    };
    create(signer(1), 1)
        .await
        .unwrap_or_else(|e| panic!("the enrolled supplier is refused: {e}"));
    let refused = create(signer(2), 2)
        .await
        .map(|_| ())
        .expect_err("the revoked maker is refused");
    assert!(
        refused.to_string().contains("revert"),
        "a revert, not a transport error: {refused}"
    );

    // A service whose own signer is not enrolled in its policy is not Ready.
    services
        .create(
            &PostParams::default(),
            &service("outsider", &anvil.url, "outsider"),
        )
        .await
        .expect("create outsider");
    let outsider = stack
        .wait_for("outsider Enrolled=False", LIMIT, || async {
            let s = services.get("outsider").await.ok()?;
            (condition(&s, "Enrolled").map(|c| c.1) == Some("SignerNotEnrolled".into()))
                .then_some(s)
        })
        .await;
    assert_eq!(
        condition(&outsider, "Ready").map(|c| c.0),
        Some("False".into()),
        "{:?}\n{}",
        outsider.status,
        diagnostics()
    );

    // A user with rights on services but only read rights on policies cannot change who is enrolled.
    let user = "ops-without-policy-rights";
    grant(&admin_client, &namespace, user).await;
    let mut config = kubeconfig().await;
    config.auth_info.impersonate = Some(user.into());
    let as_user: Api<AccessPolicy> =
        Api::namespaced(Client::try_from(config).expect("client"), &namespace);
    // The authorizer picks new grants up asynchronously: wait until the read is allowed.
    stack
        .wait_for(
            "the user's read grant in effect",
            Duration::from_secs(30),
            || async { as_user.get("supply-chain").await.ok().map(|_| ()) },
        )
        .await;
    let denied = as_user
        .patch(
            "supply-chain",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"participants": participants(&[("supplier", 1), ("newcomer", 3), ("intruder", 5)])}})),
        )
        .await
        .expect_err("the user must not edit the policy");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "403 Forbidden, got {denied}"
    );
    assert_eq!(
        chain_status(&anvil.url, registry, signer(5).address()).await,
        MemberStatus::None
    );

    // Deleting the policy revokes what it enrolled before the object goes.
    services
        .delete("outsider", &Default::default())
        .await
        .expect("delete outsider");
    policies
        .delete("supply-chain", &Default::default())
        .await
        .expect("delete policy");
    stack
        .wait_for("the policy is gone after revoking", LIMIT, || async {
            policies
                .get_opt("supply-chain")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
    for i in [1, 3] {
        assert_eq!(
            chain_status(&anvil.url, registry, signer(i).address()).await,
            MemberStatus::Revoked,
            "account {i} revoked by the finalizer\n{}",
            diagnostics()
        );
    }
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}

/// Full rights on SmartContractServices, read-only on AccessPolicies.
async fn grant(client: &Client, namespace: &str, user: &str) {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(user.into()),
            ..Default::default()
        },
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["kontrakt.dev".into()]),
                resources: Some(vec!["smartcontractservices".into()]),
                verbs: vec!["*".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec!["kontrakt.dev".into()]),
                resources: Some(vec!["accesspolicies".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            },
        ]),
    };
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(user.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: user.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
}

/// An identity-verification endpoint on `host`: `GET /verify?account=0x…&role=R` answers
/// `{"verified": true}` for the accounts in `verified`; records every query.
async fn identity_server(
    host: std::net::IpAddr,
    verified: Vec<Address>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let verified = verified.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let query = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.split_once('?'))
                    .map(|(_, q)| q.to_owned())
                    .unwrap_or_default();
                log.lock().unwrap().push(query.clone());
                let ok = verified
                    .iter()
                    .any(|a| query.contains(&format!("account={a:#x}")));
                let body = json!({ "verified": ok }).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

/// `approval: Oracle`: a join request goes from the registry through the
/// registry service's oracle to the identity endpoint; a verified account is
/// enrolled (and stays, though no policy lists it), a refused one rejected;
/// deleting the policy revokes what its endpoint enrolled.
#[tokio::test]
async fn join_requests_are_verified_through_the_identity_endpoint() {
    const PUBLISHER: u8 = 2;
    let node = RealNode::get();
    // Pods reach the host only at the node's address: the chain and the endpoint listen there.
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("identity", &[("resyncSeconds", "2")], &node).await;
    let client = stack.client.clone();
    let namespace = stack.ns.name().to_owned();
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    let (trusted, stranger) = (key(11), key(12));
    trusted.fund(&anvil.url).await;
    stranger.fund(&anvil.url).await;
    let trusted: PrivateKeySigner = trusted.key_hex.parse().unwrap();
    let stranger: PrivateKeySigner = stranger.key_hex.parse().unwrap();
    let (port, queries) = identity_server(node.address, vec![trusted.address()]).await;

    let registry_service: SmartContractService = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "SmartContractService",
        "metadata": { "name": "registry" },
        "spec": {
            "chain": { "rpcUrl": anvil.url, "chainId": 31337 },
            "signer": { "secretKeyRef": { "name": "signer", "key": "privateKey" } },
            "contract": { "template": "Shipping", "version": 1 },
            "oracle": { "endpoints": [{
                "name": "IdentityCheck",
                "url": format!("http://{}:{port}/verify", node.address),
                "timeoutSeconds": 2,
                "resultPath": "$.verified",
            }]},
        }
    }))
    .unwrap();
    Api::<SmartContractService>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &registry_service)
        .await
        .expect("registry service");
    let policies: Api<AccessPolicy> = Api::namespaced(client.clone(), &namespace);
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": "publishers" },
        "spec": {
            "registry": { "name": "registry" },
            "approval": { "mode": "Oracle", "identityEndpoint": "IdentityCheck", "windowSeconds": 300 },
        }
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");
    let oracle_approval = |p: &AccessPolicy| {
        p.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "OracleApproval")
                .map(|c| (c.status.clone(), c.reason.clone()))
        })
    };
    stack
        .wait_for("OracleApproval=True", LIMIT, || async {
            let p = policies.get("publishers").await.ok()?;
            (oracle_approval(&p) == Some(("True".into(), "IdentityEndpointVerifies".into())))
                .then_some(())
        })
        .await;

    let registry =
        kontrakt_protocol::addresses::registry_address(&namespace, "registry", signer(0).address());
    let wallet = |s: PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(s))
            .connect_http(anvil.url.parse().unwrap())
    };
    for (who, role) in [(&trusted, PUBLISHER), (&stranger, NODE)] {
        Joining::new(registry, wallet(who.clone()))
            .requestJoin(role)
            .send()
            .await
            .expect("requestJoin")
            .get_receipt()
            .await
            .expect("mined");
    }
    let status = stack
        .wait_for(
            "the verified account enrolled, the other rejected",
            LIMIT,
            || async {
                let s = policies.get("publishers").await.ok()?.status?;
                let has = |list: &[kontrakt_operator::api::ParticipantState], a: Address| {
                    list.iter()
                        .any(|p| p.address.parse::<Address>().ok() == Some(a))
                };
                (has(&s.enrolled, trusted.address()) && has(&s.rejected, stranger.address()))
                    .then_some(s)
            },
        )
        .await;
    let entry = status
        .enrolled
        .iter()
        .find(|p| p.address.parse::<Address>().ok() == Some(trusted.address()))
        .unwrap();
    assert_eq!(entry.name, None, "enrolled by the endpoint, not listed");
    assert_eq!(entry.role, Some(kontrakt_operator::api::Role::Publisher));
    assert_eq!(
        chain_status(&anvil.url, registry, stranger.address()).await,
        MemberStatus::Rejected
    );
    let asked = queries.lock().unwrap().clone();
    assert!(
        asked.contains(&format!("account={:#x}&role=Publisher", trusted.address())),
        "the endpoint is asked with the account and its role: {asked:?}"
    );
    assert_eq!(asked.len(), 2, "one question per join request: {asked:?}");

    // The registry's sidecar passes again (every 15 s) and keeps the account
    // the endpoint enrolled, though the policy does not list it.
    tokio::time::sleep(kontrakt_sidecar::enrollment::RESYNC_INTERVAL + Duration::from_secs(3))
        .await;
    assert_eq!(
        chain_status(&anvil.url, registry, trusted.address()).await,
        MemberStatus::Enrolled,
        "{}",
        stack.diagnostics()
    );

    // Deleting the Oracle policy turns the approval off; its finalizer holds
    // the policy until the sidecar has revoked what the endpoint enrolled.
    policies
        .delete("publishers", &Default::default())
        .await
        .expect("delete policy");
    stack
        .wait_for("the policy gone", LIMIT, || async {
            policies
                .get_opt("publishers")
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        })
        .await;
    assert_eq!(
        chain_status(&anvil.url, registry, trusted.address()).await,
        MemberStatus::Revoked
    );
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}

/// Expiry is judged by the chain's clock, as the registry judges it: an enrollment past
/// its `expiresAt` in chain time is no longer active, though this machine's clock says it
/// has an hour left (the dev chain's clock is moved two hours ahead).
#[tokio::test]
async fn an_enrollment_expired_in_chain_time_is_reported_not_enrolled() {
    let node = RealNode::get();
    let anvil = node.anvil();
    let stack = Stack::start_on_real_node("expiry", &[("resyncSeconds", "2")], &node).await;
    stack
        .create_secret("signer", "privateKey", DEV_KEYS[0])
        .await;
    let member = key(8);
    member.fund(&anvil.url).await;
    stack
        .create_secret("member", "privateKey", &member.key_hex)
        .await;
    let services = stack.services();
    let policies: Api<AccessPolicy> = Api::namespaced(stack.client.clone(), stack.ns.name());
    services
        .create(
            &PostParams::default(),
            &service("shipping", &anvil.url, "signer"),
        )
        .await
        .expect("create the registry service");
    let in_an_hour = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
        .expect("a time")
        .round(k8s_openapi::jiff::Unit::Second)
        .expect("rounded");
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "kontrakt.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": "supply-chain" },
        "spec": {
            "registry": { "name": "shipping" },
            "participants": [{
                "name": "member",
                "address": signer(8).address().to_checksum(None),
                "role": "Node",
                "expiresAt": in_an_hour.to_string(),
            }],
        }
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create the policy");
    services
        .create(
            &PostParams::default(),
            &service("member", &anvil.url, "member"),
        )
        .await
        .expect("create the member service");
    stack
        .wait_for("member Ready and Enrolled", LIMIT, || async {
            let s = services.get("member").await.ok()?;
            (kontrakt_e2e::stack::is_ready(&s)
                && condition(&s, "Enrolled").map(|c| c.0) == Some("True".into()))
            .then_some(())
        })
        .await;

    let provider = ProviderBuilder::new().connect_http(anvil.url.parse().unwrap());
    provider
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (7_200u64,))
        .await
        .expect("evm_increaseTime");
    provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
    let message = stack
        .wait_for(
            "member Enrolled=False after its chain-time expiry",
            LIMIT,
            || async {
                let s = services.get("member").await.ok()?;
                let c = s
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Enrolled")?;
                (c.status == "False" && c.reason == "SignerNotEnrolled").then_some(c.message)
            },
        )
        .await;
    assert!(
        message.contains("expired"),
        "the condition says why: {message}"
    );
    assert_not_refused(&stack);
    assert_operator_restarts(&stack, 0);
}
