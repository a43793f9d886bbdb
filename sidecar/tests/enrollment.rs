//! Permissioned enrollment on a real anvil: the EnrollmentRegistry's lifecycle, the logic's
//! `onlyEnrolled` check, the sidecar's reconciler (idempotent, finishing a failed pass), and
//! the signed, enrollment-checked API.

mod common;

use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use common::{Anvil, DEV_KEYS, config, free_port, key_file};
use kontrakt_protocol::addresses::registry_address;
use kontrakt_protocol::artifact::Artifact;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::{
    AccessConfig, AccessRule, ApiOperation, EnrollmentConfig, Participant, ParticipantState, Role,
};
use kontrakt_protocol::key::load_signer;
use kontrakt_protocol::views::registry::{MemberStatus, read_members};
use kontrakt_sidecar::access::sign_request;
use kontrakt_sidecar::chain::{Chain, ChainError};
use kontrakt_sidecar::deploy::Pair;
use kontrakt_sidecar::enrollment::{EnrollmentReconciler, registry_artifact};

alloy::sol! {
    #[sol(rpc)]
    interface IShipping {
        function createShipment(bytes32 id, address receiver, string device, uint256 quantity) external;
    }
}

const NS: &str = "default";
const NAME: &str = "registry-host";

async fn chain_for(anvil: &Anvil, key: &str) -> Chain {
    let (_dir, path) = key_file(key);
    let cfg = config(&anvil.url, &path, "Shipping", 1);
    Chain::connect(&cfg.chain, load_signer(&path).unwrap())
        .await
        .unwrap()
}

/// A fresh account with ether (dev keys 1 and 2 are used elsewhere).
async fn funded(admin: &Chain) -> (PrivateKeySigner, String) {
    let signer = PrivateKeySigner::random();
    let key = format!("0x{}", alloy::hex::encode(signer.to_bytes()));
    let tx = alloy::rpc::types::TransactionRequest::default()
        .to(signer.address())
        .value(U256::from(10u128.pow(18)));
    admin.send("fund", tx, &[]).await.unwrap();
    (signer, key)
}

async fn nonce(chain: &Chain) -> u64 {
    chain
        .provider()
        .get_transaction_count(chain.signer())
        .await
        .unwrap()
}

fn participant(address: Address, role: Role) -> Participant {
    Participant {
        address,
        role,
        state: ParticipantState::Enrolled,
        expires_at: None,
    }
}

async fn status_of(chain: &Chain, registry: Address, account: Address) -> MemberStatus {
    let r = EnrollmentRegistry::new(registry, chain.provider())
        .statusOf(account)
        .call()
        .await
        .unwrap();
    MemberStatus::from_number(r.status)
}

async fn is_enrolled(chain: &Chain, registry: Address, account: Address, role: Role) -> bool {
    EnrollmentRegistry::new(registry, chain.provider())
        .isEnrolled(account, role.number())
        .call()
        .await
        .unwrap()
}

/// Sends a registry call from `chain`'s key; the error names the revert.
async fn registry_tx(
    chain: &Chain,
    what: &str,
    tx: alloy::rpc::types::TransactionRequest,
) -> Result<(), ChainError> {
    chain
        .send(what, tx, &[&registry_artifact().abi])
        .await
        .map(|_| ())
}

/// Deploys (if absent) the registry hosted by NS/NAME through the reconciler, empty.
async fn deploy_registry(admin: &Chain) -> Address {
    let r = EnrollmentReconciler::new(admin.clone(), NS, NAME, vec![]);
    let report = r.pass().await.unwrap();
    assert!(report.registry_created);
    assert_eq!(r.registry(), registry_address(NS, NAME, admin.signer()));
    r.registry()
}

async fn create_shipment(chain: &Chain, logic: Address, n: u8) -> Result<(), ChainError> {
    let tx = IShipping::new(logic, chain.provider())
        .createShipment(
            B256::repeat_byte(n),
            Address::repeat_byte(0xee),
            "VerticalPump".into(),
            U256::from(3),
        )
        .into_transaction_request();
    let abi = Artifact::builtin("Shipping").unwrap().abi;
    chain.send("createShipment", tx, &[&abi]).await.map(|_| ())
}

/// The Shipping pair of the service NS/shipping, checking `registry`.
async fn deploy_shipping(anvil: &Anvil, admin_key: &str, registry: Address) -> Address {
    let (_dir, path) = key_file(admin_key);
    let mut cfg = config(&anvil.url, &path, "Shipping", 1);
    cfg.contract.name = "shipping".into();
    cfg.registry = Some(registry);
    let chain = chain_for(anvil, admin_key).await;
    let pair = Pair::from_config(&cfg, chain.signer()).unwrap();
    pair.ensure(&chain).await.unwrap();
    pair.plan.addresses.logic
}

#[tokio::test]
async fn registry_lifecycle_join_approve_suspend_revoke_expire_transfer() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, DEV_KEYS[0]).await;
    let registry = deploy_registry(&admin).await;
    let contract = EnrollmentRegistry::new(registry, admin.provider());
    let member = chain_for(&anvil, DEV_KEYS[1]).await;
    let m = member.signer();
    let as_member = EnrollmentRegistry::new(registry, member.provider());

    // join request → pending → approved → enrolled (in its role only)
    registry_tx(
        &member,
        "requestJoin",
        as_member
            .requestJoin(Role::Node.number())
            .into_transaction_request(),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&admin, registry, m).await, MemberStatus::Pending);
    assert!(!is_enrolled(&admin, registry, m, Role::Node).await);
    let err = registry_tx(
        &member,
        "approve",
        as_member.approve(m).into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("NotAdmin"), "{err}");
    registry_tx(
        &admin,
        "approve",
        contract.approve(m).into_transaction_request(),
    )
    .await
    .unwrap();
    assert!(is_enrolled(&admin, registry, m, Role::Node).await);
    assert!(!is_enrolled(&admin, registry, m, Role::Subscriber).await);

    // suspend → reinstate → revoke
    registry_tx(
        &admin,
        "suspend",
        contract.suspend(m).into_transaction_request(),
    )
    .await
    .unwrap();
    assert!(!is_enrolled(&admin, registry, m, Role::Node).await);
    registry_tx(
        &admin,
        "reinstate",
        contract.reinstate(m).into_transaction_request(),
    )
    .await
    .unwrap();
    assert!(is_enrolled(&admin, registry, m, Role::Node).await);
    registry_tx(
        &admin,
        "revoke",
        contract.revoke(m).into_transaction_request(),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&admin, registry, m).await, MemberStatus::Revoked);
    assert!(!is_enrolled(&admin, registry, m, Role::Node).await);
    let err = registry_tx(
        &member,
        "requestJoin",
        as_member
            .requestJoin(Role::Node.number())
            .into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("InvalidStatus"), "{err}");

    // expiry
    let now = admin
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let err = registry_tx(
        &admin,
        "enroll",
        contract
            .enroll(m, Role::Node.number(), now - 1)
            .into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("ExpiryNotInFuture"), "{err}");
    registry_tx(
        &admin,
        "enroll",
        contract
            .enroll(m, Role::Node.number(), now + 100)
            .into_transaction_request(),
    )
    .await
    .unwrap();
    assert!(is_enrolled(&admin, registry, m, Role::Node).await);
    let p = admin.provider();
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (200,))
        .await
        .unwrap();
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
    assert!(
        !is_enrolled(&admin, registry, m, Role::Node).await,
        "expired"
    );
    assert_eq!(status_of(&admin, registry, m).await, MemberStatus::Enrolled);

    // The admin: enrolled in every role, never suspended or revoked.
    for role in Role::ALL {
        assert!(is_enrolled(&admin, registry, admin.signer(), role).await);
    }
    let err = registry_tx(
        &admin,
        "revoke admin",
        contract.revoke(admin.signer()).into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("CannotRevokeAdmin({})", admin.signer())),
        "{err}"
    );
    let err = registry_tx(
        &admin,
        "suspend admin",
        contract
            .suspendMany(vec![admin.signer()])
            .into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("CannotSuspendAdmin"), "{err}");

    // Two-step admin transfer: nothing changes until the successor accepts.
    registry_tx(
        &admin,
        "transferAdmin",
        contract.transferAdmin(m).into_transaction_request(),
    )
    .await
    .unwrap();
    assert_eq!(contract.admin().call().await.unwrap(), admin.signer());
    assert_eq!(contract.pendingAdmin().call().await.unwrap(), m);
    registry_tx(
        &member,
        "acceptAdmin",
        as_member.acceptAdmin().into_transaction_request(),
    )
    .await
    .unwrap();
    assert_eq!(contract.admin().call().await.unwrap(), m);
    let err = registry_tx(
        &admin,
        "enroll by the former admin",
        contract
            .enroll(admin.signer(), Role::Node.number(), 0)
            .into_transaction_request(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("NotAdmin"), "{err}");
    assert!(!is_enrolled(&admin, registry, admin.signer(), Role::Node).await);
    assert!(is_enrolled(&admin, registry, m, Role::Oracle).await);
}

#[tokio::test]
async fn members_are_listed_page_by_page_newest_first() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, DEV_KEYS[0]).await;
    let registry = deploy_registry(&admin).await;
    let contract = EnrollmentRegistry::new(registry, admin.provider());
    let accounts: Vec<Address> = (1..=7u8).map(Address::repeat_byte).collect();
    registry_tx(
        &admin,
        "enrollMany",
        contract
            .enrollMany(accounts[..5].to_vec(), vec![1; 5], vec![0; 5])
            .into_transaction_request(),
    )
    .await
    .unwrap();
    for a in &accounts[5..] {
        registry_tx(
            &admin,
            "enroll",
            contract.enroll(*a, 3, 0).into_transaction_request(),
        )
        .await
        .unwrap();
    }
    // Re-enrolling an existing member does not list it twice.
    registry_tx(
        &admin,
        "enrollMany",
        contract
            .enrollMany(vec![accounts[0]], vec![2], vec![0])
            .into_transaction_request(),
    )
    .await
    .unwrap();
    assert_eq!(contract.memberCount().call().await.unwrap(), U256::from(7));
    let mut listed = Vec::new();
    let mut cursor = Address::ZERO;
    loop {
        let page = contract
            .members(cursor, U256::from(3))
            .call()
            .await
            .unwrap();
        assert!(page.page.len() <= 3);
        listed.extend(page.page.iter().map(|r| r.account));
        if page.next.is_zero() {
            break;
        }
        cursor = page.next;
    }
    let mut expected = accounts.clone();
    expected.reverse();
    assert_eq!(listed, expected);
    let all = read_members(admin.provider(), registry, BlockId::latest())
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[6].role, Role::Publisher, "re-enrolled with role 2");
    let err = contract
        .members(Address::repeat_byte(0x99), U256::from(3))
        .call()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("revert"), "{err}");
}

#[tokio::test]
async fn logic_calls_need_the_right_enrolled_role() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, DEV_KEYS[0]).await;
    let registry = deploy_registry(&admin).await;
    let logic = deploy_shipping(&anvil, DEV_KEYS[0], registry).await;
    let node = chain_for(&anvil, DEV_KEYS[1]).await;
    let subscriber = chain_for(&anvil, DEV_KEYS[2]).await;
    let (_, stranger_key) = funded(&admin).await;
    let stranger = chain_for(&anvil, &stranger_key).await;
    let contract = EnrollmentRegistry::new(registry, admin.provider());
    registry_tx(
        &admin,
        "enrollMany",
        contract
            .enrollMany(
                vec![node.signer(), subscriber.signer()],
                vec![Role::Node.number(), Role::Subscriber.number()],
                vec![0, 0],
            )
            .into_transaction_request(),
    )
    .await
    .unwrap();

    create_shipment(&node, logic, 1).await.unwrap();
    let err = create_shipment(&subscriber, logic, 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("NotEnrolled({}, 1)", subscriber.signer())),
        "wrong role: {err}"
    );
    let err = create_shipment(&stranger, logic, 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NotEnrolled"), "not enrolled: {err}");
    // The admin counts as enrolled.
    create_shipment(&admin, logic, 4).await.unwrap();
}

#[tokio::test]
async fn reconciler_enrolls_the_list_idempotently_and_revokes_removed_participants() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, DEV_KEYS[0]).await;
    let a = chain_for(&anvil, DEV_KEYS[1]).await;
    let b = chain_for(&anvil, DEV_KEYS[2]).await;
    let (_, c_key) = funded(&admin).await;
    let c = chain_for(&anvil, &c_key).await;
    let registry = registry_address(NS, NAME, admin.signer());
    let logic = deploy_shipping(&anvil, DEV_KEYS[0], registry).await;
    let reconciler =
        |participants| EnrollmentReconciler::new(admin.clone(), NS, NAME, participants);
    let two = vec![
        participant(a.signer(), Role::Node),
        participant(b.signer(), Role::Subscriber),
    ];

    // Two participants → the registry is created and both are enrolled.
    let r = reconciler(two.clone());
    let report = r.pass().await.unwrap();
    assert!(report.registry_created);
    assert!(report.after.in_sync(), "{:?}", report.after);
    assert_eq!(
        report.transactions, 1,
        "one enrollMany for both (after the deploy)"
    );
    assert!(is_enrolled(&admin, registry, a.signer(), Role::Node).await);
    assert!(is_enrolled(&admin, registry, b.signer(), Role::Subscriber).await);
    create_shipment(&a, logic, 1).await.unwrap();

    // Again (a restarted sidecar): not one transaction.
    let before = nonce(&admin).await;
    let report = reconciler(two.clone()).pass().await.unwrap();
    assert_eq!(report.transactions, 0);
    assert!(!report.registry_created && report.after.in_sync());
    assert_eq!(nonce(&admin).await, before, "no transaction when in sync");

    // A third account asks to join: it stays pending while unlisted.
    let as_c = EnrollmentRegistry::new(registry, c.provider());
    registry_tx(
        &c,
        "requestJoin",
        as_c.requestJoin(Role::Node.number())
            .into_transaction_request(),
    )
    .await
    .unwrap();
    let r = reconciler(two.clone());
    let report = r.pass().await.unwrap();
    assert_eq!(report.transactions, 0);
    assert_eq!(report.after.pending_requests, [c.signer()]);
    assert_eq!(r.status().read().await.pending, 1);
    assert_eq!(
        status_of(&admin, registry, c.signer()).await,
        MemberStatus::Pending
    );

    // Listed: approved.
    let mut three = two.clone();
    three.push(participant(c.signer(), Role::Node));
    let report = reconciler(three.clone()).pass().await.unwrap();
    assert_eq!(report.transactions, 1);
    assert!(is_enrolled(&admin, registry, c.signer(), Role::Node).await);
    create_shipment(&c, logic, 2).await.unwrap();

    // One removed: revoked on chain, and its calls revert.
    let without_a = three[1..].to_vec();
    let r = reconciler(without_a);
    let report = r.pass().await.unwrap();
    assert_eq!(report.transactions, 1, "one revokeMany");
    assert!(report.after.in_sync());
    assert_eq!(
        status_of(&admin, registry, a.signer()).await,
        MemberStatus::Revoked
    );
    let err = create_shipment(&a, logic, 3).await.unwrap_err().to_string();
    assert!(err.contains("NotEnrolled"), "{err}");
    let status = r.status().read().await.clone();
    assert!(status.in_sync && status.deployed);
    assert_eq!((status.enrolled, status.revoked), (2, 1));
}

#[tokio::test]
async fn a_pass_that_fails_midway_is_finished_by_the_next_one() {
    let anvil = Anvil::spawn();
    let admin = chain_for(&anvil, DEV_KEYS[0]).await;
    let registry = deploy_registry(&admin).await;
    let good: Vec<Participant> = (1..=4u8)
        .map(|n| participant(Address::repeat_byte(n), Role::Node))
        .collect();
    // The zero address (which config validation refuses) makes the second batch revert.
    let mut bad = good.clone();
    bad.insert(2, participant(Address::ZERO, Role::Node));
    let mut r = EnrollmentReconciler::new(admin.clone(), NS, NAME, bad);
    r.max_batch = 2;
    let err = r.pass().await.unwrap_err().to_string();
    assert!(err.contains("ZeroAddress"), "{err}");
    let status = r.status().read().await.clone();
    assert!(!status.in_sync);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("ZeroAddress")
    );
    assert_eq!(status.transactions, 1, "the first batch went through");
    assert_eq!(status.enrolled, 2);
    // The status names exactly what is not in sync yet.
    let missing: Vec<Address> = status.differences.iter().map(|d| d.address).collect();
    assert_eq!(
        missing,
        [
            Address::ZERO,
            Address::repeat_byte(3),
            Address::repeat_byte(4)
        ]
    );

    // The next pass (the list fixed) finishes the job, sending only what is missing.
    let mut r = EnrollmentReconciler::new(admin.clone(), NS, NAME, good);
    r.max_batch = 2;
    let report = r.pass().await.unwrap();
    assert_eq!(
        report.transactions, 1,
        "one batch of the two missing accounts"
    );
    assert!(report.after.in_sync());
    for n in 1..=4u8 {
        assert!(is_enrolled(&admin, registry, Address::repeat_byte(n), Role::Node).await);
    }
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    signer: Option<&PrivateKeySigner>,
) -> (u16, serde_json::Value) {
    let mut req = http.get(format!("{base}{path}"));
    if let Some(signer) = signer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for (k, v) in sign_request(signer, "GET", path, now).unwrap() {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    if path.starts_with("/events") {
        // A stream: the status is the answer.
        return (code, serde_json::Value::Null);
    }
    let text = resp.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test]
async fn the_api_needs_a_signed_request_from_an_enrolled_account_in_an_allowed_role() {
    let anvil = Anvil::spawn();
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let admin = load_signer(&key).unwrap().address();
    let node = PrivateKeySigner::from_slice(&alloy::hex::decode(DEV_KEYS[1]).unwrap()).unwrap();
    let subscriber =
        PrivateKeySigner::from_slice(&alloy::hex::decode(DEV_KEYS[2]).unwrap()).unwrap();
    let stranger = PrivateKeySigner::random();
    let mut cfg = config(&anvil.url, &key, "Shipping", 1);
    cfg.contract.name = NAME.into();
    let port = free_port();
    cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
    // The service hosts the registry its own logic checks.
    cfg.registry = Some(registry_address(NS, NAME, admin));
    cfg.enrollment = Some(EnrollmentConfig {
        participants: vec![
            participant(node.address(), Role::Node),
            participant(subscriber.address(), Role::Subscriber),
        ],
        approval: None,
    });
    cfg.access = Some(AccessConfig {
        rules: vec![AccessRule {
            operation: ApiOperation::Events,
            roles: vec![Role::Subscriber],
        }],
    });
    cfg.validate().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kontrakt_sidecar::service::serve(cfg, async {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Until the reconciler has enrolled both (the admin itself always passes).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve not listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let (code, body) = get(&http, &base, "/enrollment", Some(&node)).await;
        if code == 200 && body["inSync"] == true {
            assert_eq!(body["enrolled"], 2, "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in sync: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (code, _) = get(&http, &base, "/healthz", None).await;
    assert_eq!(code, 200, "probes stay open");
    let (code, body) = get(&http, &base, "/contract", None).await;
    assert_eq!(code, 401, "unsigned: {body}");
    assert_eq!(body["error"], "Unsigned");

    let (code, body) = get(&http, &base, "/contract", Some(&stranger)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "NotEnrolled");
    assert_eq!(
        body["account"],
        stranger.address().to_string().to_lowercase()
    );
    assert_eq!(body["operation"], "read");
    assert_eq!(body["status"], "None");

    let (code, body) = get(&http, &base, "/contract", Some(&node)).await;
    assert_eq!(code, 200, "read has no rule: any enrolled role: {body}");
    let (code, body) = get(&http, &base, "/events", Some(&node)).await;
    assert_eq!(code, 403, "events need Subscriber");
    let _ = body;
    let (code, body) = get(&http, &base, "/events?from_block=0", Some(&subscriber)).await;
    assert_eq!(code, 200, "{body}");

    // The refusal's reason names the role the account holds.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut req = http.get(format!("{base}/events"));
    for (k, v) in sign_request(&node, "GET", "/events", now).unwrap() {
        req = req.header(k, v);
    }
    let body: serde_json::Value =
        serde_json::from_str(&req.send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(body["allowedRoles"], serde_json::json!(["Subscriber"]));
    assert_eq!(body["role"], "Node");
    assert_eq!(body["status"], "Enrolled");

    // A signature for another path does not open this one.
    let mut req = http.get(format!("{base}/contract"));
    for (k, v) in sign_request(&node, "GET", "/enrollment", now).unwrap() {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();
}
