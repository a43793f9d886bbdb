//! The enrollment reconciler: keeps the `EnrollmentRegistry` this sidecar hosts equal to the
//! `enrollment.participants` of its config.
//!
//! Why the sidecar and not the operator sends these transactions: the registry's admin is the
//! hosting SmartContractService's signer. Its key is mounted into that pod; the operator reads
//! the Secret to learn the admin's address (and, on delete, to retire the logic contract: the
//! one transaction it still sends). Every transaction of a key must go through the one nonce
//! manager of that key ([`Chain`]): an operator sending with the same key would race this
//! sidecar's deploys and oracle fulfilments for nonces. So the operator renders the desired
//! membership (the union of the AccessPolicies naming this service) into the config, this
//! sidecar writes the chain, and the operator reads the chain back (read-only) for
//! AccessPolicy status.
//!
//! A pass: deploy-if-absent the registry at [`registry_address`](kontrakt_protocol::addresses::registry_address),
//! set its oracle approval to the config's `enrollment.approval` (`setOracleApproval`), read
//! every member record with the paged `members` view (and `enrolledByOracle`), [`plan`] the
//! difference (pure), send it in batches (`enrollMany`, `suspendMany`, `revokeMany`), read
//! back. No transaction when the chain already matches. Passes repeat every
//! [`RESYNC_INTERVAL`], so a pass that failed midway (a reverted batch, an unreachable node) is
//! finished by a later one.
//!
//! With oracle approval on, the registry sends each join request to the identity endpoint and
//! the oracle loop of this sidecar ([`crate::oracle`], following the registry too) answers it:
//! a verified account is enrolled by the oracle, unlisted. Such accounts are members by the
//! policy's approval rule, so [`plan`] leaves them enrolled while approval is on (a listing
//! still governs them); once approval is off, unlisted ones are revoked like any other.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use serde::Serialize;
use tokio::sync::{RwLock, watch};

use kontrakt_protocol::addresses::{Create2, DETERMINISTIC_DEPLOYER, registry_deployment};
use kontrakt_protocol::artifact::Artifact;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::{OracleApproval, Participant, ParticipantState, Role};
use kontrakt_protocol::views::ViewError;
use kontrakt_protocol::views::oracle::OracleStats;
use kontrakt_protocol::views::registry::{MemberRecord, MemberStatus, read_approval, read_members};

use crate::chain::{Chain, ChainError};
use crate::factory::{FactoryError, ensure_factory};

/// How often a pass runs when the previous one succeeded.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(15);
/// Accounts per batch transaction (a new member costs ~27,000 gas in a batch, so 200 stay
/// far below a 30M block gas limit).
pub const MAX_BATCH: usize = 200;
/// An expiry must lie at least this far ahead of chain time to be sent (the transaction is
/// mined in a later block, and the registry refuses expiries not in the future).
pub const EXPIRY_MARGIN_SECS: u64 = 60;

/// What failed in a pass.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("registry at {address}: CREATE2 through the proxy did not leave code there")]
    NotCreated { address: Address },
    #[error(
        "registry at {address} has code hash {actual}, expected the EnrollmentRegistry artifact's"
    )]
    WrongCode {
        address: Address,
        actual: alloy::primitives::B256,
    },
    #[error("registry {registry}: {what} failed: {reason}")]
    Read {
        registry: Address,
        what: &'static str,
        reason: String,
    },
    #[error("registry {registry}: the signer {signer} is not its admin ({admin})")]
    NotAdmin {
        registry: Address,
        admin: Address,
        signer: Address,
    },
}

/// What the reconciler does about one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// `enroll` (approves, reinstates, re-enrolls, or changes role or expiry).
    Enroll,
    /// `suspend` an enrolled account.
    Suspend,
    /// `enroll`, then `suspend`: the account must exist in its role before it can be suspended.
    EnrollThenSuspend,
    /// `revoke`.
    Revoke,
    /// Nothing can be sent; `problem` says why.
    None,
}

/// One account whose on-chain record differs from the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub address: Address,
    /// The listed participant (`None`: not listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<Participant>,
    pub on_chain: MemberRecord,
    pub action: Action,
    /// Why the difference cannot be resolved by a transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The transactions one pass sends, and what it cannot fix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Every account not in sync (including those with a `problem`).
    pub differences: Vec<Difference>,
    /// `(account, role, expiresAt)` for `enrollMany`.
    pub enroll: Vec<(Address, Role, u64)>,
    /// For `suspendMany` (after `enroll`).
    pub suspend: Vec<Address>,
    /// For `revokeMany`.
    pub revoke: Vec<Address>,
    /// Join requests of accounts that are not listed: they stay pending.
    pub pending_requests: Vec<Address>,
    /// Unlisted accounts the oracle enrolled: they stay while oracle approval is on.
    pub oracle_enrolled: Vec<Address>,
}

impl Plan {
    /// Whether the chain matches the config.
    pub fn in_sync(&self) -> bool {
        self.differences.is_empty()
    }

    /// Whether the plan sends anything.
    pub fn has_transactions(&self) -> bool {
        !(self.enroll.is_empty() && self.suspend.is_empty() && self.revoke.is_empty())
    }
}

/// The difference between the desired participants and the registry's records (pure).
///
/// `records` are all records the registry lists (accounts without one have status `None`);
/// `admin` is never suspended or revoked; `now` is the chain's time (unix seconds), for
/// expiries; `oracle_approval`: the config turns oracle approval of join requests on. Per
/// listed account (whoever enrolled it):
/// - `Enrolled`: in sync when enrolled with the same role and expiry (an expiry that has passed
///   since is what was asked for); otherwise `enroll`;
/// - `Suspended`: in sync when suspended with the same role and expiry; an enrolled one with
///   them is suspended; anything else is enrolled, then suspended;
/// - `Pending`: the account's own join request is awaited or stays pending (or rejected); an
///   enrolled or suspended account is revoked.
///
/// Unlisted accounts that are enrolled or suspended are revoked, except, while oracle approval
/// is on, enrolled ones the oracle approved (listed in `oracle_enrolled`); unlisted pending
/// requests stay pending (listed in `pending_requests`), rejected ones stay rejected.
pub fn plan(
    desired: &[Participant],
    records: &[MemberRecord],
    admin: Address,
    now: u64,
    oracle_approval: bool,
) -> Plan {
    use std::collections::{BTreeMap, HashSet};
    let on_chain: BTreeMap<Address, MemberRecord> =
        records.iter().map(|r| (r.address, *r)).collect();
    let mut plan = Plan::default();
    let mut listed = HashSet::new();
    for p in desired {
        listed.insert(p.address);
        let current = on_chain
            .get(&p.address)
            .copied()
            .unwrap_or_else(|| MemberRecord::none(p.address));
        let expires_at = p.expires_at.unwrap_or(0);
        let same_terms = current.role == p.role && current.expires_at == expires_at;
        let action = match p.state {
            ParticipantState::Enrolled => {
                if current.status == MemberStatus::Enrolled && same_terms {
                    continue;
                }
                Action::Enroll
            }
            ParticipantState::Suspended => match current.status {
                MemberStatus::Suspended if same_terms => continue,
                MemberStatus::Enrolled if same_terms => Action::Suspend,
                _ => Action::EnrollThenSuspend,
            },
            ParticipantState::Pending => match current.status {
                MemberStatus::None
                | MemberStatus::Pending
                | MemberStatus::Revoked
                | MemberStatus::Rejected => continue,
                MemberStatus::Enrolled | MemberStatus::Suspended => Action::Revoke,
            },
        };
        let mut problem = None;
        let enrolls = matches!(action, Action::Enroll | Action::EnrollThenSuspend);
        if enrolls && expires_at != 0 && expires_at <= now + EXPIRY_MARGIN_SECS {
            problem = Some(format!(
                "expiresAt {expires_at} is not at least {EXPIRY_MARGIN_SECS}s after the chain's time {now}: the registry refuses it"
            ));
        } else if p.address == admin
            && matches!(
                action,
                Action::Suspend | Action::EnrollThenSuspend | Action::Revoke
            )
        {
            problem = Some(format!(
                "{admin} is the registry's admin: it is always enrolled and cannot be suspended or revoked"
            ));
        }
        if problem.is_none() {
            if enrolls {
                plan.enroll.push((p.address, p.role, expires_at));
            }
            match action {
                Action::Suspend | Action::EnrollThenSuspend => plan.suspend.push(p.address),
                Action::Revoke => plan.revoke.push(p.address),
                _ => {}
            }
        }
        plan.differences.push(Difference {
            address: p.address,
            desired: Some(p.clone()),
            on_chain: current,
            action: if problem.is_some() {
                Action::None
            } else {
                action
            },
            problem,
        });
    }
    for r in on_chain.values().filter(|r| !listed.contains(&r.address)) {
        match r.status {
            MemberStatus::Pending => plan.pending_requests.push(r.address),
            // Approved by the policy's own rule; a suspension came from a listing, so an
            // unlisted suspended account is revoked below like any other.
            MemberStatus::Enrolled if oracle_approval && r.via_oracle => {
                plan.oracle_enrolled.push(r.address)
            }
            // Never the admin: it controls the list (the registry refuses it anyway).
            MemberStatus::Enrolled | MemberStatus::Suspended if r.address != admin => {
                plan.revoke.push(r.address);
                plan.differences.push(Difference {
                    address: r.address,
                    desired: None,
                    on_chain: *r,
                    action: Action::Revoke,
                    problem: None,
                });
            }
            _ => {}
        }
    }
    plan
}

/// What `GET /enrollment` shows: the last pass's view of the registry.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentStatus {
    pub registry: Address,
    /// The registry's code is in place.
    pub deployed: bool,
    /// The chain matched the config after the last pass.
    pub in_sync: bool,
    /// Accounts not in sync after the last pass (what the next pass will send, or why not).
    pub differences: Vec<Difference>,
    /// Unlisted join requests (they stay pending until a policy lists them, or the oracle
    /// approves them).
    pub pending_requests: Vec<Address>,
    /// Unlisted accounts the oracle enrolled (kept while oracle approval is on).
    pub oracle_enrolled: Vec<Address>,
    /// Records on chain per status, after the last pass.
    pub enrolled: usize,
    pub pending: usize,
    pub suspended: usize,
    pub revoked: usize,
    pub rejected: usize,
    /// The registry's oracle approval, after the last pass (`None`: off, the admin approves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_approval: Option<OracleApproval>,
    /// The registry's oracle counters (`oracleStats()`: join verification requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_requests: Option<OracleStats>,
    /// Passes run, and transactions sent by them, since the sidecar started.
    pub passes: u64,
    pub transactions: u64,
    /// The last pass's error (cleared by a successful pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    pub registry_created: bool,
    /// Transactions sent (and mined successfully).
    pub transactions: u64,
    pub gas_used: u64,
    /// The plan read back after the transactions (empty differences: in sync).
    pub after: Plan,
}

/// Deploys the registry if absent and keeps its membership equal to `participants`.
#[derive(Debug, Clone)]
pub struct EnrollmentReconciler {
    chain: Chain,
    deployment: Create2,
    participants: Vec<Participant>,
    /// `None`: the registry's oracle approval is turned off.
    approval: Option<OracleApproval>,
    abi: alloy::json_abi::JsonAbi,
    /// Accounts per batch transaction.
    pub max_batch: usize,
    status: Arc<RwLock<EnrollmentStatus>>,
}

impl EnrollmentReconciler {
    /// The reconciler of the registry hosted by `namespace/name`, administered by the chain's
    /// signer.
    pub fn new(chain: Chain, namespace: &str, name: &str, participants: Vec<Participant>) -> Self {
        let deployment = registry_deployment(namespace, name, chain.signer());
        let status = EnrollmentStatus {
            registry: deployment.address,
            ..Default::default()
        };
        Self {
            chain,
            deployment,
            participants,
            approval: None,
            abi: registry_artifact().abi,
            max_batch: MAX_BATCH,
            status: Arc::new(RwLock::new(status)),
        }
    }

    /// Join requests verified through the oracle (`enrollment.approval`); `None` turns the
    /// registry's oracle approval off.
    pub fn with_approval(mut self, approval: Option<OracleApproval>) -> Self {
        self.approval = approval;
        self
    }

    /// The registry's address.
    pub fn registry(&self) -> Address {
        self.deployment.address
    }

    /// The shared status (for the HTTP API).
    pub fn status(&self) -> Arc<RwLock<EnrollmentStatus>> {
        self.status.clone()
    }

    /// Runs passes until `shutdown` turns true: every [`RESYNC_INTERVAL`] after a pass that
    /// left the chain in sync, sooner (with the chain's backoff) after a failed one.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let retry = self.chain.retry_config();
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(report) if report.after.in_sync() => {
                    failures = 0;
                    RESYNC_INTERVAL
                }
                Ok(_) => RESYNC_INTERVAL,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(registry = %self.registry(), error = %e, "enrollment pass failed");
                    retry.backoff(failures.min(30)).min(RESYNC_INTERVAL)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass: deploy-if-absent, read, send the difference, read back. The status is
    /// updated whatever the outcome; a failed batch leaves the rest for the next pass.
    pub async fn pass(&self) -> Result<PassReport, EnrollmentError> {
        let result = self.pass_inner().await;
        let mut status = self.status.write().await;
        status.passes += 1;
        match &result {
            Ok(report) => {
                status.transactions += report.transactions;
                status.last_error = None;
            }
            Err((e, sent)) => {
                status.transactions += sent;
                status.last_error = Some(e.to_string());
            }
        }
        result.map_err(|(e, _)| e)
    }

    async fn pass_inner(&self) -> Result<PassReport, (EnrollmentError, u64)> {
        let mut report = PassReport {
            registry_created: self.ensure_registry().await.map_err(|e| (e, 0))?,
            ..Default::default()
        };
        self.ensure_approval(&mut report)
            .await
            .map_err(|e| (e, report.transactions))?;
        let sent_before = report.transactions;
        let before = self.observe().await.map_err(|e| (e, report.transactions))?;
        let sent = self.send(&before, &mut report).await;
        let after = match &sent {
            Ok(()) if report.transactions == sent_before => before,
            // Read back also after a failure: the status then names what is still not in sync.
            _ => self.observe().await.map_err(|e| (e, report.transactions))?,
        };
        report.after = after;
        sent.map_err(|e| (e, report.transactions))?;
        if report.transactions > 0 {
            tracing::info!(registry = %self.registry(), transactions = report.transactions, gas = report.gas_used, in_sync = report.after.in_sync(), "enrollment reconciled");
        }
        Ok(report)
    }

    /// Reads the registry, plans, and records the view in the status.
    async fn observe(&self) -> Result<Plan, EnrollmentError> {
        let registry = self.registry();
        let contract = EnrollmentRegistry::new(registry, self.chain.provider());
        let admin = contract
            .admin()
            .call()
            .await
            .map_err(read_error(registry, "admin()"))?;
        if admin != self.chain.signer() {
            return Err(EnrollmentError::NotAdmin {
                registry,
                admin,
                signer: self.chain.signer(),
            });
        }
        // Members, approval and counters at one block, so they describe one state.
        let p = self.chain.provider();
        let head = self
            .chain
            .with_retry("eth_blockNumber", || p.get_block_number().into_future())
            .await?;
        let at = BlockId::number(head);
        let records = read_members(p, registry, at).await?;
        let now = chain_time(&self.chain).await?;
        let approval = read_approval(p, registry, at).await?;
        let oracle_requests = OracleStats::read(p, registry, at).await?;
        let plan = plan(
            &self.participants,
            &records,
            admin,
            now,
            self.approval.is_some(),
        );
        let mut status = self.status.write().await;
        status.deployed = true;
        status.in_sync = plan.in_sync();
        status.differences = plan.differences.clone();
        status.pending_requests = plan.pending_requests.clone();
        status.oracle_enrolled = plan.oracle_enrolled.clone();
        let count = |s| records.iter().filter(|r| r.status == s).count();
        status.enrolled = count(MemberStatus::Enrolled);
        status.pending = count(MemberStatus::Pending);
        status.suspended = count(MemberStatus::Suspended);
        status.revoked = count(MemberStatus::Revoked);
        status.rejected = count(MemberStatus::Rejected);
        status.oracle_approval = approval;
        status.oracle_requests = Some(oracle_requests);
        Ok(plan)
    }

    /// Sets the registry's oracle approval to the config's, with one transaction only when
    /// it differs.
    async fn ensure_approval(&self, report: &mut PassReport) -> Result<(), EnrollmentError> {
        let registry = self.registry();
        let on_chain = read_approval(self.chain.provider(), registry, BlockId::latest()).await?;
        if on_chain == self.approval {
            return Ok(());
        }
        let (endpoint, window) = self.approval.as_ref().map_or((String::new(), 0), |a| {
            (a.endpoint.clone(), a.window_seconds)
        });
        tracing::info!(%registry, endpoint = %endpoint, window_seconds = window, "setting the registry's oracle approval");
        let tx = EnrollmentRegistry::new(registry, self.chain.provider())
            .setOracleApproval(endpoint, window)
            .into_transaction_request();
        let receipt = self
            .chain
            .send("setOracleApproval", tx, &[&self.abi])
            .await?;
        report.transactions += 1;
        report.gas_used += receipt.gas_used;
        Ok(())
    }

    /// Sends the plan's batches in order (enroll, suspend, revoke), stopping at the first
    /// failure.
    async fn send(&self, plan: &Plan, report: &mut PassReport) -> Result<(), EnrollmentError> {
        let contract = EnrollmentRegistry::new(self.registry(), self.chain.provider());
        let batch = self.max_batch.max(1);
        let mut txs: Vec<(String, TransactionRequest)> = Vec::new();
        for chunk in plan.enroll.chunks(batch) {
            let accounts = chunk.iter().map(|e| e.0).collect();
            let roles = chunk.iter().map(|e| e.1.number()).collect();
            let expiries = chunk.iter().map(|e| e.2).collect();
            let tx = contract
                .enrollMany(accounts, roles, expiries)
                .into_transaction_request();
            txs.push((format!("enrollMany({} accounts)", chunk.len()), tx));
        }
        for chunk in plan.suspend.chunks(batch) {
            let tx = contract
                .suspendMany(chunk.to_vec())
                .into_transaction_request();
            txs.push((format!("suspendMany({} accounts)", chunk.len()), tx));
        }
        for chunk in plan.revoke.chunks(batch) {
            let tx = contract
                .revokeMany(chunk.to_vec())
                .into_transaction_request();
            txs.push((format!("revokeMany({} accounts)", chunk.len()), tx));
        }
        for (what, tx) in txs {
            let receipt = self.chain.send(&what, tx, &[&self.abi]).await?;
            report.transactions += 1;
            report.gas_used += receipt.gas_used;
        }
        Ok(())
    }

    /// Deploy-if-absent through the CREATE2 proxy; true when this call created it.
    async fn ensure_registry(&self) -> Result<bool, EnrollmentError> {
        let d = &self.deployment;
        let code = self.chain.code_at(d.address).await?;
        if !code.is_empty() {
            return check_code(d.address, &code).map(|()| false);
        }
        ensure_factory(&self.chain).await?;
        tracing::info!(registry = %d.address, "creating the EnrollmentRegistry through the deterministic-deployment proxy");
        let tx = TransactionRequest::default()
            .to(DETERMINISTIC_DEPLOYER)
            .input(d.calldata().into());
        let sent = self.chain.send("EnrollmentRegistry", tx, &[]).await;
        let code = self.chain.code_at(d.address).await?;
        match (sent, code.is_empty()) {
            (_, false) => check_code(d.address, &code).map(|()| true),
            // The proxy does not revert on a failed CREATE2; no code means it failed.
            (Ok(_), true) => Err(EnrollmentError::NotCreated { address: d.address }),
            (Err(e), true) => Err(e.into()),
        }
    }
}

/// The built-in `EnrollmentRegistry` artifact.
pub fn registry_artifact() -> Artifact {
    Artifact::builtin("EnrollmentRegistry").expect("EnrollmentRegistry is a built-in artifact")
}

fn check_code(address: Address, code: &[u8]) -> Result<(), EnrollmentError> {
    // No immutables: the runtime code is the artifact's deployed bytecode.
    let actual = keccak256(code);
    if actual == keccak256(&registry_artifact().deployed_bytecode) {
        Ok(())
    } else {
        Err(EnrollmentError::WrongCode { address, actual })
    }
}

fn read_error(
    registry: Address,
    what: &'static str,
) -> impl Fn(alloy::contract::Error) -> EnrollmentError {
    move |e| EnrollmentError::Read {
        registry,
        what,
        reason: e.to_string(),
    }
}

/// The latest block's timestamp.
async fn chain_time(chain: &Chain) -> Result<u64, EnrollmentError> {
    let p = chain.provider();
    let block = chain
        .with_retry("eth_getBlockByNumber", || {
            p.get_block_by_number(BlockNumberOrTag::Latest)
                .into_future()
        })
        .await?;
    Ok(block.map(|b| b.header.timestamp).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn want(n: u8, role: Role, state: ParticipantState) -> Participant {
        Participant {
            address: addr(n),
            role,
            state,
            expires_at: None,
        }
    }

    fn rec(n: u8, status: MemberStatus, role: Role) -> MemberRecord {
        MemberRecord {
            address: addr(n),
            status,
            role,
            expires_at: 0,
            via_oracle: false,
        }
    }

    const ADMIN: u8 = 0xad;
    const NOW: u64 = 1_000_000;
    use MemberStatus as S;
    use ParticipantState as P;

    #[test]
    fn nothing_to_do_when_the_chain_matches() {
        let desired = [
            want(1, Role::Node, P::Enrolled),
            want(2, Role::Subscriber, P::Suspended),
            want(3, Role::Node, P::Pending),
        ];
        let records = [
            rec(1, S::Enrolled, Role::Node),
            rec(2, S::Suspended, Role::Subscriber),
            rec(3, S::Pending, Role::Oracle),
            rec(4, S::Revoked, Role::Node),
        ];
        let p = plan(&desired, &records, addr(ADMIN), NOW, false);
        assert!(p.in_sync(), "{p:?}");
        assert!(!p.has_transactions());
        assert!(p.pending_requests.is_empty());
    }

    #[test]
    fn listed_accounts_are_enrolled_whatever_their_status() {
        let desired: Vec<_> = (1..=5).map(|n| want(n, Role::Node, P::Enrolled)).collect();
        let records = [
            rec(2, S::Pending, Role::Node),
            rec(3, S::Suspended, Role::Node),
            rec(4, S::Revoked, Role::Node),
            rec(5, S::Enrolled, Role::Publisher), // wrong role
        ];
        let p = plan(&desired, &records, addr(ADMIN), NOW, false);
        let enrolled: Vec<_> = p.enroll.iter().map(|e| e.0).collect();
        assert_eq!(enrolled, [addr(1), addr(2), addr(3), addr(4), addr(5)]);
        assert!(p.suspend.is_empty() && p.revoke.is_empty());
        assert_eq!(p.differences.len(), 5);
    }

    #[test]
    fn a_changed_expiry_is_re_enrolled_and_a_lapsed_one_is_in_sync() {
        let mut w = want(1, Role::Node, P::Enrolled);
        w.expires_at = Some(NOW + 3600);
        let p = plan(
            std::slice::from_ref(&w),
            &[rec(1, S::Enrolled, Role::Node)],
            addr(ADMIN),
            NOW,
            false,
        );
        assert_eq!(p.enroll, [(addr(1), Role::Node, NOW + 3600)]);
        // The chain holds the asked-for expiry, which has passed: nothing to send.
        w.expires_at = Some(NOW - 10);
        let mut r = rec(1, S::Enrolled, Role::Node);
        r.expires_at = NOW - 10;
        assert!(plan(std::slice::from_ref(&w), &[r], addr(ADMIN), NOW, false).in_sync());
        // A past expiry the chain does not hold cannot be sent: a problem, no transaction.
        let p = plan(&[w], &[], addr(ADMIN), NOW, false);
        assert!(!p.in_sync() && !p.has_transactions());
        assert!(
            p.differences[0]
                .problem
                .as_ref()
                .unwrap()
                .contains("expiresAt")
        );
    }

    #[test]
    fn suspension_enrolls_first_when_needed() {
        let desired = [
            want(1, Role::Node, P::Suspended),
            want(2, Role::Node, P::Suspended),
        ];
        let records = [rec(1, S::Enrolled, Role::Node)];
        let p = plan(&desired, &records, addr(ADMIN), NOW, false);
        assert_eq!(p.enroll, [(addr(2), Role::Node, 0)]);
        assert_eq!(p.suspend, [addr(1), addr(2)]);
        assert_eq!(p.differences[0].action, Action::Suspend);
        assert_eq!(p.differences[1].action, Action::EnrollThenSuspend);
    }

    #[test]
    fn unlisted_members_are_revoked_but_pending_requests_and_the_admin_stay() {
        let records = [
            rec(1, S::Enrolled, Role::Node),
            rec(2, S::Suspended, Role::Node),
            rec(3, S::Pending, Role::Node),
            rec(4, S::Revoked, Role::Node),
            rec(ADMIN, S::Enrolled, Role::Oracle),
        ];
        let p = plan(&[], &records, addr(ADMIN), NOW, false);
        assert_eq!(p.revoke, [addr(1), addr(2)]);
        assert_eq!(p.pending_requests, [addr(3)]);
        assert!(p.enroll.is_empty() && p.suspend.is_empty());
    }

    fn by_oracle(n: u8, status: MemberStatus, role: Role) -> MemberRecord {
        MemberRecord {
            via_oracle: true,
            ..rec(n, status, role)
        }
    }

    #[test]
    fn unlisted_oracle_enrollments_stay_while_oracle_approval_is_on() {
        let records = [
            by_oracle(1, S::Enrolled, Role::Publisher),
            by_oracle(2, S::Suspended, Role::Node),
            rec(3, S::Enrolled, Role::Node),
            rec(4, S::Rejected, Role::Node),
            rec(5, S::Pending, Role::Node),
        ];
        let p = plan(&[], &records, addr(ADMIN), NOW, true);
        assert_eq!(p.oracle_enrolled, [addr(1)]);
        // A suspension came from a listing; an admin enrollment from a listing.
        assert_eq!(p.revoke, [addr(2), addr(3)]);
        assert_eq!(p.pending_requests, [addr(5)]);
        assert!(p.enroll.is_empty() && p.suspend.is_empty());
        assert_eq!(p.differences.len(), 2, "kept and rejected ones are in sync");

        // Oracle approval off: the oracle's enrollments are unlisted members like any other.
        let p = plan(&[], &records, addr(ADMIN), NOW, false);
        assert!(p.oracle_enrolled.is_empty());
        assert_eq!(p.revoke, [addr(1), addr(2), addr(3)]);
    }

    #[test]
    fn a_listing_governs_an_oracle_enrollment_like_any_other() {
        let records = [
            by_oracle(1, S::Enrolled, Role::Node),
            by_oracle(2, S::Enrolled, Role::Node),
            by_oracle(3, S::Enrolled, Role::Node),
            by_oracle(4, S::Enrolled, Role::Node),
        ];
        let desired = [
            want(1, Role::Node, P::Enrolled),
            want(2, Role::Node, P::Suspended),
            want(3, Role::Node, P::Pending),
            want(4, Role::Subscriber, P::Enrolled),
        ];
        let p = plan(&desired, &records, addr(ADMIN), NOW, true);
        assert_eq!(p.suspend, [addr(2)]);
        assert_eq!(p.revoke, [addr(3)]);
        assert_eq!(p.enroll, [(addr(4), Role::Subscriber, 0)]);
        assert!(p.oracle_enrolled.is_empty(), "all four are listed");
        assert_eq!(p.differences.len(), 3, "the first is in sync as listed");
    }

    #[test]
    fn a_rejected_request_is_in_sync_when_listed_pending_and_enrolled_when_listed_enrolled() {
        let records = [
            rec(1, S::Rejected, Role::Node),
            rec(2, S::Rejected, Role::Node),
        ];
        let desired = [
            want(1, Role::Node, P::Pending),
            want(2, Role::Node, P::Enrolled),
        ];
        let p = plan(&desired, &records, addr(ADMIN), NOW, true);
        assert_eq!(p.enroll, [(addr(2), Role::Node, 0)]);
        assert_eq!(p.differences.len(), 1);
        assert_eq!(MemberStatus::from_number(5), S::Rejected);
    }

    #[test]
    fn pending_state_revokes_an_enrollment() {
        let p = plan(
            &[want(1, Role::Node, P::Pending)],
            &[rec(1, S::Enrolled, Role::Node)],
            addr(ADMIN),
            NOW,
            false,
        );
        assert_eq!(p.revoke, [addr(1)]);
    }

    #[test]
    fn the_admin_is_never_suspended_or_revoked() {
        let desired = [want(ADMIN, Role::Node, P::Suspended)];
        let p = plan(
            &desired,
            &[rec(ADMIN, S::Enrolled, Role::Node)],
            addr(ADMIN),
            NOW,
            false,
        );
        assert!(!p.has_transactions());
        assert!(!p.in_sync());
        assert!(p.differences[0].problem.as_ref().unwrap().contains("admin"));
        // Listing the admin as enrolled is fine.
        let p = plan(
            &[want(ADMIN, Role::Oracle, P::Enrolled)],
            &[],
            addr(ADMIN),
            NOW,
            false,
        );
        assert_eq!(p.enroll, [(addr(ADMIN), Role::Oracle, 0)]);
    }
}
