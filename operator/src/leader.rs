//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both write.
//!
//! Every write is a create or a `replace` carrying the `resourceVersion` that was read, so
//! of two candidates racing for the same Lease the apiserver lets exactly one through (the
//! other gets `409 Conflict` and stays a standby).
//!
//! Expiry is judged the way client-go does it: a standby takes the Lease over once it has
//! seen the same Lease record (same `resourceVersion`) for `leaseDurationSeconds` on its own
//! monotonic clock, so clock skew between nodes cannot make it take over early. A Lease with
//! no `holderIdentity` (released) is taken at once. The leader, for its part, gives up when
//! it has not renewed for `lease_duration - renew`, before any standby can take over.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which Lease to hold, as whom, and how often.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's `holderIdentity`; unique among the candidates (the pod name).
    pub identity: String,
    /// How long the Lease stays held without a renew (whole seconds in the Lease, at least 1).
    pub lease_duration: Duration,
    /// How often the leader renews and a standby looks at the Lease; less than `lease_duration`.
    pub renew: Duration,
}

impl LeaseConfig {
    fn lease_duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }

    /// The leader stops leading when it has not renewed for this long.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration
            .saturating_sub(self.renew)
            .max(self.lease_duration / 2)
    }
}

/// Where this candidate stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Lease could not be read (yet): the apiserver has not answered.
    Unknown,
    /// Another candidate holds the Lease (`None`: it is free and about to be taken).
    Standby { holder: Option<String> },
    /// This candidate holds the Lease.
    Leader,
    /// This candidate released the Lease or stopped renewing it.
    Stopped,
}

/// A failed Lease read or write.
#[derive(Debug, thiserror::Error)]
#[error("{action} Lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    action: &'static str,
    namespace: String,
    name: String,
    source: kube::Error,
}

/// One candidate for one Lease.
#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    config: LeaseConfig,
    role: watch::Sender<Role>,
}

/// The outcome of one look at the Lease.
enum Attempt {
    /// This candidate holds the Lease (just created, taken over or renewed).
    Held,
    /// Someone else holds it.
    HeldBy(Option<String>),
}

/// The Lease record a standby last saw, and when it first saw it.
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

impl LeaderElection {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        let (role, _) = watch::channel(Role::Unknown);
        Self { api, config, role }
    }

    /// Follows this candidate's [`Role`] (for `/readyz` and logs).
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Waits until this candidate holds the Lease; API errors are logged and retried.
    ///
    /// The returned [`Leadership`] renews the Lease in the background until it is released,
    /// dropped, or lost.
    pub async fn acquire(&self) -> Leadership {
        let mut observed: Option<Observed> = None;
        loop {
            // Before the write: the leader's renew deadline must not start later than a standby's wait.
            let attempted = Instant::now();
            match self.try_acquire(&mut observed).await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.lease_ref(), identity = %self.config.identity, "acquired the lease; leading");
                    self.role.send_replace(Role::Leader);
                    let renewing = tokio::spawn(self.clone().renew_while_held(attempted));
                    return Leadership {
                        election: self.clone(),
                        renewing: Some(renewing),
                    };
                }
                Ok(Attempt::HeldBy(holder)) => {
                    let role = Role::Standby { holder };
                    self.role.send_if_modified(|current| {
                        if *current == role {
                            return false;
                        }
                        tracing::info!(lease = %self.lease_ref(), holder = role_holder(&role).unwrap_or("none"), "standing by");
                        *current = role;
                        true
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read or take the lease; retrying");
                    self.role.send_replace(Role::Unknown);
                }
            }
            tokio::time::sleep(self.config.renew).await;
        }
    }

    /// Creates the Lease, takes it over once expired or free, or renews it if already ours.
    async fn try_acquire(&self, observed: &mut Option<Observed>) -> Result<Attempt, LeaseError> {
        let Some(lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error("reading", e))?
        else {
            let now = now();
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                // Another candidate created it first.
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                    Ok(Attempt::HeldBy(None))
                }
                Err(e) => Err(self.error("creating", e)),
            };
        };

        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() == Some(self.config.identity.as_str()) {
            // Ours already (a restart within the lease duration under the same pod name).
            return self.write_renewal(lease).await;
        }

        let rv = lease.metadata.resource_version.clone();
        let unchanged_since = match observed {
            Some(o) if o.resource_version == rv => o.since,
            _ => {
                *observed = Some(Observed {
                    resource_version: rv,
                    since: Instant::now(),
                });
                Instant::now()
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        if holder.is_some() && unchanged_since.elapsed() < duration {
            return Ok(Attempt::HeldBy(holder));
        }

        if let Some(previous) = &holder {
            tracing::info!(lease = %self.lease_ref(), %previous, "lease expired; taking it over");
        }
        let now = now();
        let mut taken = lease;
        taken.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
            ..spec
        });
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &taken)
            .await
        {
            Ok(_) => Ok(Attempt::Held),
            // Another standby took it between our read and write.
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Attempt::HeldBy(None)),
            Err(e) => Err(self.error("taking over", e)),
        }
    }

    /// Writes a new `renewTime` on a Lease this candidate holds (`lease` as just read).
    async fn write_renewal(&self, mut lease: Lease) -> Result<Attempt, LeaseError> {
        let mut conflicts = 0;
        loop {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
            if holder.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(Attempt::HeldBy(holder));
            }
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(self.config.lease_duration_seconds());
            let pp = PostParams::default();
            match self.api.replace(&self.config.name, &pp, &lease).await {
                Ok(_) => return Ok(Attempt::Held),
                // Written by someone else since we read it: look again.
                Err(kube::Error::Api(s)) if s.is_conflict() && conflicts < 3 => {
                    conflicts += 1;
                    match self.api.get_opt(&self.config.name).await {
                        Ok(Some(current)) => lease = current,
                        Ok(None) => return Ok(Attempt::HeldBy(None)),
                        Err(e) => return Err(self.error("reading", e)),
                    }
                }
                Err(e) => return Err(self.error("renewing", e)),
            }
        }
    }

    /// Renews every `renew` until the Lease is lost; then publishes the new [`Role`].
    async fn renew_while_held(self, acquired: Instant) {
        let deadline = self.config.renew_deadline();
        // At least two attempts fit in the deadline, whatever `renew` is.
        let period = self.config.renew.min(deadline / 2);
        let retry = period / 4;
        let mut last_renewed = acquired;
        let mut wait = period;
        let lost = loop {
            tokio::time::sleep(wait).await;
            let sent = Instant::now();
            let give_up = last_renewed + deadline;
            let attempt = async {
                let lease = self.api.get(&self.config.name).await;
                self.write_renewal(lease.map_err(|e| self.error("reading", e))?)
                    .await
            };
            match tokio::time::timeout_at(give_up.into(), attempt).await {
                Ok(Ok(Attempt::Held)) => {
                    last_renewed = sent;
                    wait = period;
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    tracing::warn!(lease = %self.lease_ref(), holder = holder.as_deref().unwrap_or("none"), "the lease was taken by another candidate");
                    break Role::Standby { holder };
                }
                Ok(Err(e)) if Instant::now() < give_up => {
                    tracing::warn!(error = %e, "renewing the lease failed; retrying");
                    wait = retry;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "could not renew the lease in time");
                    break Role::Unknown;
                }
                Err(_) => {
                    tracing::error!(lease = %self.lease_ref(), deadline_ms = deadline.as_millis() as u64, "could not renew the lease in time");
                    break Role::Unknown;
                }
            }
        };
        self.role.send_replace(lost);
    }

    /// Clears `holderIdentity` if this candidate holds the Lease, so a standby takes over at once.
    async fn clear_holder(&self) -> Result<(), LeaseError> {
        for _ in 0..3 {
            let Some(mut lease) = self
                .api
                .get_opt(&self.config.name)
                .await
                .map_err(|e| self.error("reading", e))?
            else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.renew_time = Some(now());
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => return Err(self.error("releasing", e)),
            }
        }
        Ok(())
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    fn error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        LeaseError {
            action,
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }
}

fn role_holder(role: &Role) -> Option<&str> {
    match role {
        Role::Standby { holder } => holder.as_deref(),
        _ => None,
    }
}

/// Holding the Lease. Dropping it stops renewing without releasing (the Lease then expires).
pub struct Leadership {
    election: LeaderElection,
    renewing: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Resolves once the Lease is lost (taken over, or not renewed in time); returns the new role.
    ///
    /// Whoever leads must stop writing at once when this resolves.
    pub async fn lost(&self) -> Role {
        let mut role = self.election.role();
        match role.wait_for(|r| *r != Role::Leader).await {
            Ok(r) => r.clone(),
            Err(_) => Role::Unknown,
        }
    }

    /// Stops renewing and hands the Lease back so a standby takes over without waiting.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
            let _ = renewing.await;
        }
        let result = self.election.clear_holder().await;
        self.election.role.send_replace(Role::Stopped);
        if result.is_ok() {
            tracing::info!(lease = %self.election.lease_ref(), "released the lease");
        }
        result
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
            self.election.role.send_if_modified(|r| {
                let leading = *r == Role::Leader;
                if leading {
                    *r = Role::Stopped;
                }
                leading
            });
        }
    }
}

fn now() -> MicroTime {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lease_ms: u64, renew_ms: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: Duration::from_millis(lease_ms),
            renew: Duration::from_millis(renew_ms),
        }
    }

    #[test]
    fn lease_duration_rounds_up_to_whole_seconds() {
        assert_eq!(config(15_000, 5_000).lease_duration_seconds(), 15);
        assert_eq!(config(1_500, 500).lease_duration_seconds(), 2);
        assert_eq!(config(200, 100).lease_duration_seconds(), 1);
    }

    #[test]
    fn the_leader_gives_up_before_a_standby_may_take_over() {
        assert_eq!(
            config(15_000, 5_000).renew_deadline(),
            Duration::from_secs(10)
        );
        assert_eq!(
            config(2_000, 500).renew_deadline(),
            Duration::from_millis(1_500)
        );
        for (lease, renew) in [
            (15_000, 5_000),
            (2_000, 500),
            (2_000, 1_900),
            (1_000, 1_000),
        ] {
            let deadline = config(lease, renew).renew_deadline();
            assert!(deadline < Duration::from_millis(lease));
            assert!(deadline >= Duration::from_millis(lease) / 2);
        }
    }

    #[test]
    fn micro_time_is_now() {
        let t = now().0;
        let sys = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!((sys.as_micros() as i64 - t.as_microsecond()).abs() < 5_000_000);
    }
}
