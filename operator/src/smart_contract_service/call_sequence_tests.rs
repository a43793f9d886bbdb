//! Call-sequence tests with a mocked API server (tower-test): which requests a
//! reconcile makes, in which order, and that it makes no others.

use super::{apply, build, reconcile_service, validate};
use crate::{
    api::SmartContractService,
    context::{Context, ObjectKey, Settings},
    metrics::Metrics,
    reconcile::apply::{APPLIED_HASH_ANNOTATION, AppliedVersions, applied_hash},
};
use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body, runtime::controller::Action};
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use tower_test::mock::{self, Handle};

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "supply"), handle)
}

/// The unit tests' sample with the finalizer already on: a later pass (the first pass adds
/// the finalizer alongside its first apply, not before it).
fn sample() -> SmartContractService {
    let mut scs = super::tests::sample();
    scs.metadata.finalizers = Some(vec![super::FINALIZER.into()]);
    scs
}

/// The objects a pass applies for `scs` (its signer key found, no artifact).
fn children_of(scs: &SmartContractService) -> build::Children {
    let refs = validate::References {
        signer_key: Some(super::tests::DEV_KEY),
        artifact_json: None,
        ..Default::default()
    };
    let plan = validate::validate(scs, &refs).unwrap();
    build::build(scs, &plan, "sidecar:test")
}

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn not_found(kind: &str, name: &str) -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
               "message": format!("{kind} {name:?} not found"), "code": 404}),
    )
}

/// Takes the next request, checks its method and path, answers it.
async fn expect(
    server: &mut ApiServer,
    method: Method,
    path: &str,
    answer: impl FnOnce(Value) -> Response<Body>,
) {
    let (request, send) = server
        .next_request()
        .await
        .unwrap_or_else(|| panic!("expected {method} {path}, got none"));
    assert_eq!(
        (request.method(), request.uri().path()),
        (&method, path),
        "request order"
    );
    let body = request.into_body().collect_bytes().await.unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    send.send_response(answer(body));
}

fn context(client: Client) -> Arc<Context> {
    Context::new(client, Arc::new(Metrics::default()), Settings::default())
}

#[tokio::test]
async fn a_missing_signer_secret_writes_ready_false_once_and_records_why() {
    let (client, mut server) = mock_client();
    let ctx = context(client);
    let scs = sample();
    let apiserver = tokio::spawn(async move {
        expect(
            &mut server,
            Method::GET,
            "/api/v1/namespaces/supply/secrets/anvil-dev-key",
            |_| not_found("secrets", "anvil-dev-key"),
        )
        .await;
        // Without watch caches the namespace's AccessPolicies are listed.
        expect(
            &mut server,
            Method::GET,
            "/apis/kontrakt.dev/v1alpha1/namespaces/supply/accesspolicies",
            |_| {
                respond(
                    StatusCode::OK,
                    json!({"apiVersion": "kontrakt.dev/v1alpha1", "kind": "AccessPolicyList",
                           "metadata": {}, "items": []}),
                )
            },
        )
        .await;
        expect(
            &mut server,
            Method::PATCH,
            "/apis/kontrakt.dev/v1alpha1/namespaces/supply/smartcontractservices/shipping/status",
            |body| {
                let ready = &body["status"]["conditions"][0];
                assert_eq!(
                    (ready["type"].as_str(), ready["status"].as_str()),
                    (Some("Ready"), Some("False"))
                );
                assert_eq!(ready["reason"], "SignerSecretNotFound");
                assert_eq!(body["status"]["phase"], "Failed");
                respond(StatusCode::OK, serde_json::to_value(sample()).unwrap())
            },
        )
        .await;
        expect(
            &mut server,
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/supply/events",
            |body| {
                assert_eq!(body["reason"], "SignerSecretNotFound");
                assert_eq!(body["type"], "Warning");
                respond(StatusCode::CREATED, body)
            },
        )
        .await;
        server
    });
    let action = reconcile_service(&scs, &ctx, None)
        .await
        .expect("an invalid spec is not an error");
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(120)),
        "a missing reference is looked at again slowly"
    );
    let mut server = apiserver.await.unwrap();
    drop(ctx);
    assert!(server.next_request().await.is_none(), "no further calls");
}

#[tokio::test]
async fn owned_objects_already_applied_are_read_not_written() {
    let scs = sample();
    let children = children_of(&scs);
    // What the cluster holds: each child stamped with the hash of exactly this content.
    let stamped: Vec<(String, String)> = vec![
        (
            "/api/v1/namespaces/supply/serviceaccounts/shipping".into(),
            crate::reconcile::apply::applied_hash(&children.service_account),
        ),
        (
            "/api/v1/namespaces/supply/configmaps/shipping-sidecar".into(),
            crate::reconcile::apply::applied_hash(&children.config_map),
        ),
        (
            "/apis/apps/v1/namespaces/supply/deployments/shipping".into(),
            crate::reconcile::apply::applied_hash(&children.deployment),
        ),
        (
            "/api/v1/namespaces/supply/services/shipping".into(),
            crate::reconcile::apply::applied_hash(&children.service),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/supply/networkpolicies/shipping".into(),
            crate::reconcile::apply::applied_hash(&children.network_policy),
        ),
    ];
    let (client, mut server) = mock_client();
    let metadata = |hash: &str| {
        respond(
            StatusCode::OK,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "shipping", "namespace": "supply",
                                "annotations": {crate::reconcile::apply::APPLIED_HASH_ANNOTATION: hash}}}),
        )
    };
    let apiserver = tokio::spawn(async move {
        // Four independent objects are read in any order, the Deployment last.
        let (deployment, mut others): (Vec<_>, Vec<_>) = stamped
            .into_iter()
            .partition(|(path, _)| path.contains("/deployments/"));
        for _ in 0..others.len() {
            let (request, send) = server.next_request().await.expect("a metadata GET");
            assert_eq!(request.method(), Method::GET);
            let at = others
                .iter()
                .position(|(path, _)| path == request.uri().path())
                .unwrap_or_else(|| panic!("unexpected {}", request.uri().path()));
            let (_, hash) = others.remove(at);
            send.send_response(metadata(&hash));
        }
        let (path, hash) = &deployment[0];
        expect(&mut server, Method::GET, path, |_| metadata(hash)).await;
        server
    });
    let applied = AppliedVersions::default();
    let owner = ObjectKey::of(&scs);
    let written = apply::apply(&client, "supply", children, None, (&applied, &owner))
        .await
        .unwrap();
    assert_eq!(written, 0);
    let mut server = apiserver.await.unwrap();
    drop(client);
    assert!(
        server.next_request().await.is_none(),
        "no PATCH followed the reads"
    );
}

/// A hand edit of an owned object is reverted at the next pass: the object keeps the
/// applied hash, but its resourceVersion is no longer the one the last apply returned.
#[tokio::test]
async fn a_hand_edited_deployment_is_applied_again_and_then_left_alone() {
    let scs = sample();
    let children = || children_of(&scs);
    let hashes: Vec<(String, String)> = {
        let c = children();
        vec![
            ("serviceaccounts".into(), applied_hash(&c.service_account)),
            ("configmaps".into(), applied_hash(&c.config_map)),
            ("services".into(), applied_hash(&c.service)),
            ("networkpolicies".into(), applied_hash(&c.network_policy)),
            ("deployments".into(), applied_hash(&c.deployment)),
        ]
    };
    let stamped = |hash: &str, version: &str| {
        respond(
            StatusCode::OK,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "shipping", "namespace": "supply", "resourceVersion": version,
                                "annotations": {APPLIED_HASH_ANNOTATION: hash}}}),
        )
    };
    let kind_of = |path: &str| path.split('/').rev().nth(1).unwrap_or_default().to_owned();
    // One pass: every object's metadata is read (answered with `versions`), and
    // `patches` objects are applied (answered with resourceVersion 8).
    async fn pass(
        server: &mut ApiServer,
        hashes: &[(String, String)],
        versions: &dyn Fn(&str) -> String,
        patches: usize,
        stamped: &dyn Fn(&str, &str) -> Response<Body>,
        kind_of: &dyn Fn(&str) -> String,
    ) -> Vec<String> {
        let mut patched = Vec::new();
        let mut reads = 0;
        while reads < hashes.len() || patched.len() < patches {
            let (request, send) = server.next_request().await.expect("a request");
            let kind = kind_of(request.uri().path());
            let hash = &hashes
                .iter()
                .find(|(k, _)| *k == kind)
                .expect("an owned kind")
                .1;
            match *request.method() {
                Method::GET => {
                    reads += 1;
                    send.send_response(stamped(hash, &versions(&kind)));
                }
                Method::PATCH => {
                    patched.push(kind.clone());
                    let body = request.into_body().collect_bytes().await.unwrap();
                    let mut obj: Value = serde_json::from_slice(&body).unwrap();
                    obj["metadata"]["resourceVersion"] = json!("8");
                    send.send_response(respond(StatusCode::OK, obj));
                }
                ref m => panic!("unexpected {m} {}", request.uri().path()),
            }
        }
        patched
    }
    let (client, mut server) = mock_client();
    let applied = AppliedVersions::default();
    let owner = ObjectKey::of(&scs);
    let run = |client: Client| {
        let applied = &applied;
        let owner = &owner;
        let children = children();
        async move { apply::apply(&client, "supply", children, None, (applied, owner)).await }
    };

    let limit = Duration::from_secs(10);
    let hung =
        |what: &str| format!("{what}: the pass did not finish (a PATCH expected, none sent?)");
    // The first pass after a start trusts the hashes and records the versions.
    let (written, patched) = tokio::time::timeout(
        limit,
        futures::future::join(run(client.clone()), async {
            pass(&mut server, &hashes, &|_| "1".into(), 0, &stamped, &kind_of).await
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{}", hung("first pass")));
    assert_eq!((written.unwrap(), patched.len()), (0, 0));
    // `kubectl scale`: the Deployment's resourceVersion moved on; its hash did not.
    let edited = |kind: &str| if kind == "deployments" { "7" } else { "1" }.to_owned();
    let (written, patched) = tokio::time::timeout(
        limit,
        futures::future::join(run(client.clone()), async {
            pass(&mut server, &hashes, &edited, 1, &stamped, &kind_of).await
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{}", hung("the pass after the edit")));
    assert_eq!(
        patched,
        ["deployments"],
        "only the edited object is applied"
    );
    assert_eq!(written.unwrap(), 1);
    // Restored: the version its apply returned is the one the cluster holds.
    let restored = |kind: &str| if kind == "deployments" { "8" } else { "1" }.to_owned();
    let (written, patched) = tokio::time::timeout(
        limit,
        futures::future::join(run(client.clone()), async {
            pass(&mut server, &hashes, &restored, 0, &stamped, &kind_of).await
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{}", hung("the pass after the repair")));
    assert_eq!((written.unwrap(), patched.len()), (0, 0));
    drop(client);
    assert!(server.next_request().await.is_none(), "no further calls");
}

/// Right after a start the Deployment cache (fed by the controller's own stream) may not
/// hold its first list yet, while the other caches do. An empty cache read as "no
/// Deployment" re-sent every Deployment and reported Ready services `SidecarNotAvailable`
/// for a moment. Until it is synced, the pass asks the apiserver; once it is, nothing.
#[tokio::test]
async fn an_unsynced_deployment_cache_is_not_read_as_no_deployment() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::{
        Resource,
        api::{ObjectMeta, PartialObjectMeta, PartialObjectMetaExt},
        runtime::{reflector, watcher},
    };
    let scs = sample();
    let children = children_of(&scs);
    let stamped = |of: &ObjectMeta, hash: String| ObjectMeta {
        name: of.name.clone(),
        namespace: Some("supply".into()),
        annotations: Some([(APPLIED_HASH_ANNOTATION.to_owned(), hash)].into()),
        ..Default::default()
    };
    // A synced metadata cache holding `meta`.
    fn synced<K>(meta: ObjectMeta) -> reflector::Store<PartialObjectMeta<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(meta.into_response_partial()));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        store
    }
    let deployment_hash = applied_hash(&children.deployment);
    let (deployments, mut deployment_writer) = reflector::store::<Deployment>();
    let owned = apply::Owned::from_stores(
        synced(stamped(
            &children.service_account.metadata,
            applied_hash(&children.service_account),
        )),
        synced(stamped(
            &children.config_map.metadata,
            applied_hash(&children.config_map),
        )),
        synced(stamped(
            &children.service.metadata,
            applied_hash(&children.service),
        )),
        synced(stamped(
            &children.network_policy.metadata,
            applied_hash(&children.network_policy),
        )),
        deployments,
    );
    assert!(
        owned.deployment("supply", "shipping").is_none(),
        "an unsynced cache does not say the Deployment is missing"
    );

    let (client, mut server) = mock_client();
    let path = "/apis/apps/v1/namespaces/supply/deployments/shipping";
    let read = stamped(&children.deployment.metadata, deployment_hash.clone());
    let apiserver = tokio::spawn(async move {
        expect(&mut server, Method::GET, path, |_| {
            respond(
                StatusCode::OK,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": read}),
            )
        })
        .await;
        server
    });
    let applied = AppliedVersions::default();
    let owner = ObjectKey::of(&scs);
    let written = apply::apply(
        &client,
        "supply",
        children_of(&scs),
        Some(&owned),
        (&applied, &owner),
    )
    .await
    .unwrap();
    assert_eq!(
        written, 0,
        "the Deployment in the cluster is what would be sent"
    );
    let mut server = apiserver.await.unwrap();

    // The cache's first list arrives: the pass reads only caches.
    let mut cached = children_of(&scs).deployment;
    cached.metadata = stamped(&cached.metadata, deployment_hash);
    deployment_writer.apply_watcher_event(&watcher::Event::Init);
    deployment_writer.apply_watcher_event(&watcher::Event::InitApply(cached));
    deployment_writer.apply_watcher_event(&watcher::Event::InitDone);
    assert!(matches!(
        owned.deployment("supply", "shipping"),
        Some(Some(_))
    ));
    let written = apply::apply(
        &client,
        "supply",
        children_of(&scs),
        Some(&owned),
        (&applied, &owner),
    )
    .await
    .unwrap();
    assert_eq!(written, 0);
    drop(client);
    assert!(
        server.next_request().await.is_none(),
        "no request once every cache is synced"
    );
}
