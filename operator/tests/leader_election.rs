//! Leader election against a real apiserver (`KUBECONFIG`): each test runs in a fresh
//! random namespace, deleted at the end.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kontrakt_operator::leader::{LeaderElection, Leadership, LeaseConfig, Role};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::time::{Duration, Instant, SystemTime};

const LEASE: &str = "kontrakt-operator";
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(500);

async fn client() -> Client {
    let path = std::env::var_os("KUBECONFIG")
        .expect("KUBECONFIG must point at a running cluster for the leader-election tests");
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading KUBECONFIG {}: {e}", path.to_string_lossy()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading KUBECONFIG {}: {e}", path.to_string_lossy()));
    let client = Client::try_from(config).expect("building the Kubernetes client");
    tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .expect("the apiserver did not answer within 10 s")
        .expect("the apiserver did not answer /version");
    client
}

/// A namespace for one test; deleted by [`TestNamespace::delete`].
#[derive(Clone)]
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(client: &Client, test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "kontrakt-le-{test}-{:x}",
            (nanos ^ u128::from(std::process::id())) & 0xff_ffff_ffff
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self {
            client: client.clone(),
            name,
        }
    }

    async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::background())
            .await;
    }

    fn election(&self, identity: &str) -> LeaderElection {
        LeaderElection::new(
            self.client.clone(),
            LeaseConfig {
                namespace: self.name.clone(),
                name: LEASE.into(),
                identity: identity.into(),
                lease_duration: LEASE_DURATION,
                renew: RENEW,
            },
        )
    }

    async fn lease(&self) -> Lease {
        Api::<Lease>::namespaced(self.client.clone(), &self.name)
            .get(LEASE)
            .await
            .expect("reading the lease")
    }
}

/// Runs the body, then deletes the namespace whether or not the body panicked.
async fn in_namespace<F, Fut>(test: &str, body: F)
where
    F: FnOnce(TestNamespace) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = client().await;
    let ns = TestNamespace::create(&client, test).await;
    let outcome = tokio::spawn(body(ns.clone())).await;
    ns.delete().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Both candidates race; returns the winner's leadership and which one won (0 or 1).
async fn race(a: &LeaderElection, b: &LeaderElection) -> (Leadership, usize) {
    tokio::select! {
        l = a.acquire() => (l, 0),
        l = b.acquire() => (l, 1),
    }
}

/// The holder recorded in the Lease.
fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

fn transitions(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

/// Over `period`, never both candidates leading, and the Lease names the leader.
async fn assert_single_leader(
    ns: &TestNamespace,
    candidates: [&LeaderElection; 2],
    leader: usize,
    period: Duration,
) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        let roles = candidates.map(|c| c.role().borrow().clone());
        let leaders = roles.iter().filter(|r| **r == Role::Leader).count();
        assert_eq!(leaders, 1, "exactly one leader expected: {roles:?}");
        assert_eq!(roles[leader], Role::Leader, "{roles:?}");
        assert_eq!(
            holder(&ns.lease().await).as_deref(),
            Some(candidates[leader].identity())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_leader_and_release_hands_over_at_once() {
    in_namespace("release", |ns| async move {
        let a = ns.election("candidate-a");
        let b = ns.election("candidate-b");
        let (leadership, winner) = race(&a, &b).await;
        let candidates = [&a, &b];
        let (leader, standby) = (candidates[winner], candidates[1 - winner]);

        // The loser keeps trying in the background, as a standby would.
        let standby_task = {
            let standby = standby.clone();
            tokio::spawn(async move { standby.acquire().await })
        };
        tokio::time::sleep(RENEW).await;
        assert_single_leader(&ns, candidates, winner, Duration::from_secs(3)).await;
        assert_eq!(
            *standby.role().borrow(),
            Role::Standby {
                holder: Some(leader.identity().into())
            }
        );
        let before = transitions(&ns.lease().await);

        let released = Instant::now();
        leadership.release().await.expect("releasing");
        assert_eq!(*leader.role().borrow(), Role::Stopped);
        let next = tokio::time::timeout(Duration::from_secs(2), standby_task)
            .await
            .expect("the standby takes over within 2 s of a release")
            .unwrap();
        assert!(
            released.elapsed() < LEASE_DURATION,
            "took over before the lease could expire"
        );
        assert_eq!(*standby.role().borrow(), Role::Leader);
        let lease = ns.lease().await;
        assert_eq!(holder(&lease).as_deref(), Some(standby.identity()));
        assert_eq!(transitions(&lease), before + 1);
        next.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_leader_that_stops_renewing_is_replaced_after_the_lease_duration() {
    in_namespace("expiry", |ns| async move {
        let a = ns.election("candidate-a");
        let b = ns.election("candidate-b");
        let leadership = a.acquire().await;
        let standby_task = {
            let b = b.clone();
            tokio::spawn(async move { b.acquire().await })
        };
        // Renewals keep the standby waiting well past the lease duration.
        assert_single_leader(&ns, [&a, &b], 0, Duration::from_secs(3)).await;
        assert_eq!(
            *b.role().borrow(),
            Role::Standby {
                holder: Some("candidate-a".into())
            }
        );

        // Stop renewing without releasing, like a crashed or partitioned leader.
        let stopped = Instant::now();
        drop(leadership);
        let next = tokio::time::timeout(LEASE_DURATION + Duration::from_secs(3), standby_task)
            .await
            .expect("the standby takes over once the lease expires")
            .unwrap();
        let waited = stopped.elapsed();
        assert!(
            waited >= LEASE_DURATION - RENEW,
            "took over after {waited:?}, before the lease expired"
        );
        assert_eq!(*b.role().borrow(), Role::Leader);
        assert_eq!(holder(&ns.lease().await).as_deref(), Some("candidate-b"));

        // The old leader, coming back, is a standby now.
        let again = tokio::time::timeout(Duration::from_secs(1), a.acquire()).await;
        assert!(
            again.is_err(),
            "the old leader must not take the lease back while it is renewed"
        );
        assert_eq!(
            *a.role().borrow(),
            Role::Standby {
                holder: Some("candidate-b".into())
            }
        );
        next.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_learns_it_lost() {
    in_namespace("lost", |ns| async move {
        let a = ns.election("candidate-a");
        let leadership = a.acquire().await;

        // Someone (an admin, or a split-brain) rewrites the holder behind the leader's back.
        let api = Api::<Lease>::namespaced(ns.client.clone(), &ns.name);
        loop {
            let mut lease = ns.lease().await;
            lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
            match api.replace(LEASE, &PostParams::default(), &lease).await {
                Ok(_) => break,
                // The leader renewed between our read and write.
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => panic!("rewriting the lease: {e}"),
            }
        }

        let role = tokio::time::timeout(RENEW * 3, leadership.lost())
            .await
            .expect("the leader notices at its next renew");
        assert_eq!(
            role,
            Role::Standby {
                holder: Some("intruder".into())
            }
        );
        assert_eq!(
            holder(&ns.lease().await).as_deref(),
            Some("intruder"),
            "the loser must not write back"
        );
    })
    .await;
}
