//! Status: computed from what the operator observes — the Deployment it owns
//! and the chain itself (read-only RPC: code at the deterministic addresses,
//! the database's writer). Written only when it changes.

use super::{pod_failure::PodTrouble, validate::Plan};
use crate::api::{
    OracleCounters, Phase, SmartContractService, SmartContractServiceStatus, condition,
};
use crate::context::ChainReaders;
use crate::reconcile::{Computed, Invalid};
use alloy::{
    primitives::{Address, B256, keccak256},
    providers::{DynProvider, Provider},
};
use k8s_openapi::api::apps::v1::Deployment;
use kontrakt_protocol::bindings::{ContractDatabase, EnrollmentRegistry, KontraktContract};
use kontrakt_protocol::config::Role;
use kontrakt_protocol::views::oracle::OracleStats;
use kontrakt_protocol::views::registry::MemberStatus;
use std::time::Duration;

/// What the chain says about the pair.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainState {
    /// The RPC did not answer (or not in time).
    Unreachable(String),
    /// The RPC serves another chain than the spec names.
    WrongChain { actual: u64 },
    /// What is deployed at the expected addresses.
    Observed(PairState),
}

/// The pair as found on chain.
#[derive(Debug, Clone, PartialEq)]
pub struct PairState {
    /// keccak256 of the runtime code at the database address (None: no code).
    pub database_code: Option<B256>,
    /// keccak256 of the runtime code at the logic address (None: no code).
    pub logic_code: Option<B256>,
    /// The database's current writer and its version (zero before the first switch).
    pub writer: Address,
    pub writer_version: u64,
    /// Whether the current logic has been retired.
    pub retired: bool,
    /// The signer in the service's registry (None: no accessPolicyRef).
    pub enrollment: Option<SignerEnrollment>,
    /// The logic's oracle counters (None: not an oracle contract, or not deployed).
    pub oracle: Option<OracleStats>,
}

/// What the registry says about the service's own signer.
#[derive(Debug, Clone, PartialEq)]
pub enum SignerEnrollment {
    /// No registry code at the expected address yet.
    RegistryNotDeployed,
    /// `statusOf(signer)`; `admin`: the signer administers the registry (holds every role).
    Member {
        status: MemberStatus,
        /// Enrolled now (not pending, suspended, revoked or expired).
        active: bool,
        admin: bool,
        oracle: bool,
    },
}

/// Reads the pair's state from the chain; every call bounded by `timeout`.
pub async fn observe_chain(plan: &Plan, chains: &ChainReaders, timeout: Duration) -> ChainState {
    let provider = match chains.get(&plan.sidecar_config.chain.rpc_url) {
        Ok(p) => p,
        Err(e) => return ChainState::Unreachable(e),
    };
    match tokio::time::timeout(timeout, read_chain(plan, &provider)).await {
        Ok(Ok(state)) => state,
        Ok(Err(e)) => ChainState::Unreachable(e),
        Err(_) => ChainState::Unreachable(format!("no answer within {}s", timeout.as_secs())),
    }
}

async fn read_chain(plan: &Plan, provider: &DynProvider) -> Result<ChainState, String> {
    let (actual, block) = tokio::join!(
        provider.get_chain_id(),
        provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
    );
    let actual = actual.map_err(|e| e.to_string())?;
    if actual != plan.sidecar_config.chain.chain_id {
        return Ok(ChainState::WrongChain { actual });
    }
    // Every read at one block, so they describe one state of the chain.
    let block = block
        .map_err(|e| e.to_string())?
        .ok_or("the node has no latest block")?;
    let at = alloy::eips::BlockId::number(block.header.number);
    // Expiry is judged by the chain's clock, as the registry judges it (not this
    // machine's: a dev chain's time can be moved, a real one's lags a little).
    let chain_time = block.header.timestamp;
    let code_hash = |code: alloy::primitives::Bytes| (!code.is_empty()).then(|| keccak256(&code));
    let db = ContractDatabase::new(plan.addresses.database, provider);
    let logic = KontraktContract::new(plan.addresses.logic, provider);
    // Independent reads, together. Before the pair exists the calls fail: the
    // code reads decide which answers count.
    let registry = plan.sidecar_config.registry;
    let signer = plan.admin;
    let read_registry = async {
        let Some(registry) = registry else {
            return Ok(None);
        };
        let view = EnrollmentRegistry::new(registry, provider);
        let (code, member, admin, oracle) = tokio::join!(
            provider.get_code_at(registry).block_id(at).into_future(),
            async { view.statusOf(signer).call().block(at).await },
            async { view.admin().call().block(at).await },
            async {
                view.isEnrolled(signer, Role::Oracle.number())
                    .call()
                    .block(at)
                    .await
            },
        );
        if code.map_err(|e| e.to_string())?.is_empty() {
            return Ok(Some(SignerEnrollment::RegistryNotDeployed));
        }
        let member = member.map_err(|e| e.to_string())?;
        Ok::<_, String>(Some(SignerEnrollment::Member {
            status: MemberStatus::from_number(member.status),
            active: MemberStatus::from_number(member.status) == MemberStatus::Enrolled
                && (member.expiresAt == 0 || member.expiresAt > chain_time),
            admin: admin.map_err(|e| e.to_string())? == signer,
            oracle: oracle.map_err(|e| e.to_string())?,
        }))
    };
    let read_oracle = async {
        // A logic contract without the oracle part answers with a revert: no counters.
        OracleStats::read(provider, plan.addresses.logic, at)
            .await
            .ok()
    };
    let (database_code, logic_code, writer, writer_version, retired, enrollment, oracle) = tokio::join!(
        provider
            .get_code_at(plan.addresses.database)
            .block_id(at)
            .into_future(),
        provider
            .get_code_at(plan.addresses.logic)
            .block_id(at)
            .into_future(),
        async { db.writer().call().block(at).await },
        async { db.writerVersion().call().block(at).await },
        async { logic.retired().call().block(at).await },
        read_registry,
        read_oracle,
    );
    let enrollment = enrollment?;
    let database_code = code_hash(database_code.map_err(|e| e.to_string())?);
    let logic_code = code_hash(logic_code.map_err(|e| e.to_string())?);
    let (mut writer_out, mut version_out, mut retired_out) = (Address::ZERO, 0, false);
    if database_code.is_some() {
        writer_out = writer.map_err(|e| e.to_string())?;
        version_out = writer_version.map_err(|e| e.to_string())?;
    }
    if logic_code.is_some() {
        retired_out = retired.map_err(|e| e.to_string())?;
    }
    let (writer, writer_version, retired) = (writer_out, version_out, retired_out);
    Ok(ChainState::Observed(PairState {
        database_code,
        logic_code,
        writer,
        writer_version,
        retired,
        enrollment,
        oracle: if logic_code.is_some() { oracle } else { None },
    }))
}

/// The outcome of one pass: the status to write and how soon to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: SmartContractServiceStatus,
    pub conditions: Vec<Computed>,
    pub ready: bool,
    /// The chain could not be asked: retry with backoff.
    pub chain_unreachable: bool,
}

impl Outcome {
    /// Names why the pods do not run in Ready=False (the kubelet's reason, e.g.
    /// `CrashLoopBackOff`, rather than `SidecarNotAvailable` or "not deployed
    /// yet": the pod is what the user must fix). No-op when Ready.
    pub fn name_pod_failure(&mut self, trouble: &PodTrouble) {
        if self.ready {
            return;
        }
        if let Some(ready) = self
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition::READY)
        {
            ready.reason = trouble.failure.reason();
            ready.message = trouble.describe();
        }
    }
}

/// Computes the status from a valid plan and what was observed. Pure.
pub fn compute(
    scs: &SmartContractService,
    plan: &Plan,
    deployment: Option<&Deployment>,
    chain: &ChainState,
) -> Outcome {
    let wanted = plan.sidecar_config.contract.version;
    let replicas = scs.spec.replicas;
    let available = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let hex = |a: Address| a.to_checksum(None);

    let mut status = SmartContractServiceStatus {
        observed_generation: scs.metadata.generation,
        chain_id: Some(scs.spec.chain.chain_id),
        contract_address: Some(hex(plan.addresses.logic)),
        database_address: Some(hex(plan.addresses.database)),
        ..Default::default()
    };
    let mut chain_unreachable = false;
    let deployed = match chain {
        ChainState::Unreachable(e) => {
            chain_unreachable = true;
            Computed {
                type_: condition::DEPLOYED,
                status: false,
                reason: "ChainUnreachable",
                message: format!("chain RPC unreachable: {e}"),
            }
        }
        ChainState::WrongChain { actual } => Computed {
            type_: condition::DEPLOYED,
            status: false,
            reason: "ChainIdMismatch",
            message: format!(
                "spec.chain.chainId is {} but the RPC serves chain {actual}",
                scs.spec.chain.chain_id
            ),
        },
        ChainState::Observed(pair) => {
            status.code_hash = pair.logic_code.map(|h| format!("{h}"));
            status.version = (pair.writer_version > 0).then_some(pair.writer_version as i64);
            deployed_condition(plan, pair, wanted)
        }
    };
    let workload = if replicas == 0 {
        Computed {
            type_: condition::READY,
            status: false,
            reason: "ScaledToZero",
            message: "spec.replicas is 0".into(),
        }
    } else if available < 1 {
        Computed {
            type_: condition::READY,
            status: false,
            reason: "SidecarNotAvailable",
            message: format!("Deployment has {available} of {replicas} replicas available"),
        }
    } else {
        Computed {
            type_: condition::READY,
            status: true,
            reason: "Ready",
            message: format!("pair deployed; {available} of {replicas} sidecars available"),
        }
    };
    let (enrolled, oracle_ready) = match chain {
        ChainState::Observed(pair) => {
            status.oracle = pair.oracle.map(|o| OracleCounters {
                pending: o
                    .requested
                    .saturating_sub(o.fulfilled + o.failed + o.expired)
                    as i64,
                fulfilled: o.fulfilled as i64,
                failed: o.failed as i64,
                expired: o.expired as i64,
            });
            (
                pair.enrollment.as_ref().map(enrolled_condition),
                (!plan.sidecar_config.oracle.endpoints.is_empty())
                    .then(|| oracle_condition(plan, pair, deployed.status)),
            )
        }
        _ => (None, None),
    };
    let ready = if !deployed.status {
        Computed {
            type_: condition::READY,
            status: false,
            reason: deployed.reason,
            message: deployed.message.clone(),
        }
    } else if let Some(e) = enrolled.as_ref().filter(|e| !e.status) {
        Computed {
            type_: condition::READY,
            status: false,
            reason: e.reason,
            message: e.message.clone(),
        }
    } else {
        workload
    };
    let is_ready = ready.status;
    status.phase = Some(match (&deployed, is_ready) {
        (_, true) => Phase::Ready,
        (d, false) if d.reason == "Upgrading" => Phase::Upgrading,
        (d, false) if matches!(d.reason, "ChainIdMismatch" | "CodeHashMismatch" | "Retired") => {
            Phase::Failed
        }
        _ => Phase::Deploying,
    });
    let mut conditions = vec![deployed];
    conditions.extend(enrolled);
    conditions.extend(oracle_ready);
    conditions.push(ready);
    Outcome {
        status,
        conditions,
        ready: is_ready,
        chain_unreachable,
    }
}

fn enrolled_condition(e: &SignerEnrollment) -> Computed {
    let (status, reason, message) = match e {
        SignerEnrollment::RegistryNotDeployed => (
            false,
            "RegistryNotDeployed",
            "the AccessPolicy's EnrollmentRegistry is not deployed yet (its registry service's sidecar deploys it)".to_owned(),
        ),
        SignerEnrollment::Member { admin: true, .. } => (
            true,
            "RegistryAdmin",
            "the signer administers the registry (it holds every role)".to_owned(),
        ),
        SignerEnrollment::Member { active: true, .. } => {
            (true, "SignerEnrolled", "the signer is enrolled in the registry".to_owned())
        }
        SignerEnrollment::Member { status, .. } => (
            false,
            "SignerNotEnrolled",
            format!(
                "the signer is not enrolled in the AccessPolicy's registry (status: {})",
                match status {
                    MemberStatus::None => "never requested",
                    MemberStatus::Pending => "join request pending",
                    MemberStatus::Suspended => "suspended",
                    MemberStatus::Revoked => "revoked",
                    MemberStatus::Rejected => "join request rejected",
                    MemberStatus::Enrolled => "enrollment expired (chain time)",
                }
            ),
        ),
    };
    Computed {
        type_: condition::ENROLLED,
        status,
        reason,
        message,
    }
}

fn oracle_condition(plan: &Plan, pair: &PairState, deployed: bool) -> Computed {
    let oracle = |status, reason, message: String| Computed {
        type_: condition::ORACLE_READY,
        status,
        reason,
        message,
    };
    let endpoints = plan.sidecar_config.oracle.endpoints.len();
    if !deployed {
        return oracle(
            false,
            "PairNotDeployed",
            "the contract is not deployed yet".into(),
        );
    }
    let Some(stats) = pair.oracle else {
        return oracle(
            false,
            "NotAnOracleContract",
            "the logic contract has no oracle (oracleStats() is missing); spec.oracle is unused"
                .into(),
        );
    };
    // The sidecar attests with the signer key: the registry must accept it as an oracle.
    if let Some(SignerEnrollment::Member { oracle: false, .. }) = &pair.enrollment {
        return oracle(
            false,
            "OracleNotEnrolled",
            "the signer is not enrolled as Oracle in the registry: fulfilments would revert".into(),
        );
    }
    oracle(
        true,
        "OracleServing",
        format!(
            "{endpoints} endpoint(s); {} fulfilled, {} failed, {} expired of {} requests",
            stats.fulfilled, stats.failed, stats.expired, stats.requested
        ),
    )
}

fn deployed_condition(plan: &Plan, pair: &PairState, wanted: u64) -> Computed {
    let deployed = |status, reason, message: String| Computed {
        type_: condition::DEPLOYED,
        status,
        reason,
        message,
    };
    let a = &plan.addresses;
    match (pair.database_code, pair.logic_code) {
        (None, _) => {
            return deployed(
                false,
                "PairNotDeployed",
                format!("no database contract at {} yet", a.database),
            );
        }
        (Some(h), _) if h != a.database_code_hash => {
            return deployed(
                false,
                "CodeHashMismatch",
                format!(
                    "code at {} is not the expected ContractDatabase (hash {h})",
                    a.database
                ),
            );
        }
        (_, None) if pair.writer_version > 0 && pair.writer_version < wanted => {
            return deployed(
                false,
                "Upgrading",
                format!(
                    "version {wanted} not deployed yet; the database writes for version {}",
                    pair.writer_version
                ),
            );
        }
        (_, None) => {
            return deployed(
                false,
                "PairNotDeployed",
                format!("no logic contract at {} yet", a.logic),
            );
        }
        (_, Some(h)) if a.logic_code_hash.is_some_and(|want| want != h) => {
            return deployed(
                false,
                "CodeHashMismatch",
                format!(
                    "code at {} is not the expected logic contract (hash {h})",
                    a.logic
                ),
            );
        }
        _ => {}
    }
    if pair.retired {
        return deployed(
            false,
            "Retired",
            format!("the logic contract at {} is retired", a.logic),
        );
    }
    if pair.writer != a.logic {
        let reason = if pair.writer_version == 0 {
            // A first deploy between creating the logic and making it the writer.
            "WriterNotSet"
        } else if pair.writer_version < wanted {
            "Upgrading"
        } else {
            "WriterNotSwitched"
        };
        return deployed(
            false,
            reason,
            format!(
                "the database's writer is {}, not version {wanted} at {}",
                pair.writer, a.logic
            ),
        );
    }
    deployed(
        true,
        "PairDeployed",
        format!(
            "version {wanted}: logic {} writes database {}",
            a.logic, a.database
        ),
    )
}

/// Status for a spec that cannot work: Ready=False with the reason.
pub fn invalid(
    scs: &SmartContractService,
    invalid: &Invalid,
) -> (SmartContractServiceStatus, Vec<Computed>) {
    let status = SmartContractServiceStatus {
        phase: Some(Phase::Failed),
        observed_generation: scs.metadata.generation,
        chain_id: Some(scs.spec.chain.chain_id),
        ..scs.status.clone().unwrap_or_default()
    };
    let ready = Computed {
        type_: condition::READY,
        status: false,
        reason: invalid.reason.as_str(),
        message: invalid.message.clone(),
    };
    (status, vec![ready])
}
