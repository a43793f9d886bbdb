//! Deploy-if-absent of the pair, and the version switch (upgrade) on its database.
//!
//! Every step is idempotent and safe to run from several replicas at once: a CREATE2 that
//! lost a race fails inside the proxy, and "the expected code is now at the expected address"
//! counts as success; a writer switch that lost a race is re-read and accepted when the
//! database ends with our logic as its writer.

use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use serde::Serialize;

use crate::chain::{Chain, ChainError};
use crate::factory::{FactoryError, ensure_factory};
use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;
use kontrakt_protocol::addresses::{Create2, PairPlan, PairSpec, plan_pair};
use kontrakt_protocol::artifact::{Artifact, ArtifactError};
use kontrakt_protocol::bindings::{ContractDatabase, KontraktContract};
use kontrakt_protocol::config::SidecarConfig;

/// Why the pair could not be deployed or switched.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error("{what} at {address}: CREATE2 through the proxy did not leave code there")]
    NotCreated {
        what: &'static str,
        address: Address,
    },
    #[error("existing database {0} has no code")]
    DatabaseMissing(Address),
    #[error("{what} at {address} has code hash {actual}, expected {expected}")]
    WrongCode {
        what: &'static str,
        address: Address,
        expected: String,
        actual: B256,
    },
    #[error("the signer {signer} is not the admin ({admin}) of the database {database}")]
    NotAdmin {
        database: Address,
        admin: Address,
        signer: Address,
    },
    #[error(
        "database {database} is written by {writer} at version {current}; version {ours} is not newer, so it stays (raise contract.version to upgrade)"
    )]
    NewerWriter {
        database: Address,
        writer: Address,
        current: u64,
        ours: u64,
    },
    #[error(
        "the current logic {writer} (version {current}) of database {database} holds {wei} wei; version {ours} could not pay it out, so the upgrade waits: settle it, or have that version move it into the database's custody (ContractDatabase.depositValue), then the switch proceeds"
    )]
    OldLogicHoldsValue {
        database: Address,
        writer: Address,
        current: u64,
        ours: u64,
        wei: alloy::primitives::U256,
    },
}

/// What a deploy-if-absent run did (all `false`: everything was already in place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployOutcome {
    pub factory_installed: bool,
    pub database_created: bool,
    pub logic_created: bool,
    /// The database's writer was switched to this logic (first set or upgrade).
    pub writer_switched: bool,
}

/// The pair as observed on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairState {
    pub database_code_hash: B256,
    pub logic_code_hash: B256,
    /// Both contracts carry the code the artifacts predict.
    pub code_matches: bool,
    pub writer: Address,
    pub writer_version: u64,
    pub read_only: bool,
    pub database_admin: Address,
    pub logic_admin: Address,
    pub retired: bool,
}

impl PairState {
    /// Ready: the expected code at both addresses, and our logic is the active writer.
    pub fn is_ready(&self, plan: &PairPlan) -> bool {
        self.code_matches && self.writer == plan.addresses.logic && !self.read_only
    }
}

/// The pair's plan, its artifacts, and the chain to put it on.
#[derive(Debug, Clone)]
pub struct Pair {
    pub plan: PairPlan,
    pub logic_artifact: Artifact,
    pub database_artifact: Artifact,
    pub version: u64,
    pub registry: Address,
}

impl Pair {
    /// Plans the pair (pure; checks the logic artifact before anything touches a chain).
    pub fn new(spec: &PairSpec<'_>) -> Result<Self, DeployError> {
        Ok(Self {
            plan: plan_pair(spec)?,
            logic_artifact: spec.logic.clone(),
            database_artifact: Artifact::contract_database(),
            version: spec.version,
            registry: spec.registry,
        })
    }

    /// The pair a sidecar config describes, administered by `admin` (the signer).
    pub fn from_config(config: &SidecarConfig, admin: Address) -> Result<Self, DeployError> {
        let logic = Artifact::for_contract(&config.contract)?;
        Self::new(&PairSpec::from_config(config, admin, &logic))
    }

    /// Deploy-if-absent of the proxy, the database and the logic, then the writer switch.
    pub async fn ensure(&self, chain: &Chain) -> Result<DeployOutcome, DeployError> {
        let mut outcome = DeployOutcome {
            factory_installed: ensure_factory(chain).await?,
            ..DeployOutcome::default()
        };
        let database = self.plan.addresses.database;
        match &self.plan.database_deployment {
            Some(d) => outcome.database_created = create_if_absent(chain, "database", d).await?,
            None => {
                if chain.code_at(database).await?.is_empty() {
                    return Err(DeployError::DatabaseMissing(database));
                }
            }
        }
        outcome.logic_created =
            create_if_absent(chain, "logic", &self.plan.logic_deployment).await?;
        self.check_code(chain).await?;
        outcome.writer_switched = self.switch_writer(chain).await?;
        Ok(outcome)
    }

    async fn check_code(&self, chain: &Chain) -> Result<(), DeployError> {
        let a = &self.plan.addresses;
        let db_code = chain.code_at(a.database).await?;
        let logic_code = chain.code_at(a.logic).await?;
        self.code_matches(&db_code, &logic_code)
    }

    /// Whether the code found on chain is the code the artifacts predict.
    pub fn code_matches(&self, db_code: &[u8], logic_code: &[u8]) -> Result<(), DeployError> {
        let a = &self.plan.addresses;
        let (db_hash, logic_hash) = (keccak256(db_code), keccak256(logic_code));
        if db_hash != a.database_code_hash {
            return Err(DeployError::WrongCode {
                what: "database",
                address: a.database,
                expected: a.database_code_hash.to_string(),
                actual: db_hash,
            });
        }
        let logic_ok = match a.logic_code_hash {
            Some(h) => h == logic_hash,
            None => self.logic_artifact.matches_runtime(
                logic_code,
                &[a.database.into_word(), self.registry.into_word()],
            ),
        };
        if !logic_ok {
            return Err(DeployError::WrongCode {
                what: "logic",
                address: a.logic,
                expected: a
                    .logic_code_hash
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "the artifact's runtime code".into()),
                actual: logic_hash,
            });
        }
        Ok(())
    }

    /// Makes the logic the database's writer with one atomic `setWriter` (also for an upgrade
    /// from an older version). A database left read-only (an interrupted manual or older
    /// switch) is unfrozen once the logic is its writer.
    async fn switch_writer(&self, chain: &Chain) -> Result<bool, DeployError> {
        let database = self.plan.addresses.database;
        let logic = self.plan.addresses.logic;
        let db = ContractDatabase::new(database, chain.provider());
        let abis = [&self.database_artifact.abi];
        let (writer, current, read_only) = read_writer(chain, database).await?;
        if writer == logic {
            if read_only {
                // A switch was interrupted after setWriter: finish it.
                let tx = db.setReadOnly(false).into_transaction_request();
                chain.send("setReadOnly(false)", tx, &abis).await?;
            }
            return Ok(false);
        }
        if writer != Address::ZERO && current >= self.version {
            return Err(DeployError::NewerWriter {
                database,
                writer,
                current,
                ours: self.version,
            });
        }
        let admin = db.admin().call().await.map_err(|e| ChainError::Rpc {
            what: "database admin()".into(),
            source: contract_err(e),
        })?;
        if admin != chain.signer() {
            return Err(DeployError::NotAdmin {
                database,
                admin,
                signer: chain.signer(),
            });
        }
        if writer != Address::ZERO {
            // Value a logic holds itself would be stranded by the switch: the new version
            // cannot move it. (Logic built on the library keeps it in the database instead.)
            let wei = chain
                .provider()
                .get_balance(writer)
                .await
                .map_err(|e| ChainError::Rpc {
                    what: format!("eth_getBalance({writer})"),
                    source: e,
                })?;
            if !wei.is_zero() {
                return Err(DeployError::OldLogicHoldsValue {
                    database,
                    writer,
                    current,
                    ours: self.version,
                    wei,
                });
            }
            tracing::info!(%database, from = current, to = self.version, "upgrading the pair's logic");
        }
        // The new logic is already deployed, so one `setWriter` is the whole switch: it is
        // atomic (a write of the old version lands before it, or reverts with `NotWriter`
        // after it), and no read-only window is needed.
        let tx = db.setWriter(logic, self.version).into_transaction_request();
        if let Err(e) = chain.send("setWriter", tx, &abis).await {
            // A concurrent replica may be doing the same switch: its transaction can
            // be pending (our estimate already saw it and reverted) but not yet
            // mined. Give it a few blocks' time, then accept its result.
            for _ in 0..SWITCH_SETTLE_POLLS {
                let (writer, _, read_only) = read_writer(chain, database).await?;
                if writer == logic {
                    if read_only {
                        let tx = db.setReadOnly(false).into_transaction_request();
                        let _ = chain.send("setReadOnly(false)", tx, &abis).await;
                    }
                    return Ok(false);
                }
                tokio::time::sleep(SWITCH_SETTLE_INTERVAL).await;
            }
            return Err(e.into());
        }
        Ok(true)
    }

    /// The pair as it is on chain now (for readiness and the `/contract` view).
    pub async fn state(&self, chain: &Chain) -> Result<PairState, DeployError> {
        let a = &self.plan.addresses;
        let db_code = chain.code_at(a.database).await?;
        let logic_code = chain.code_at(a.logic).await?;
        let code_matches = self.code_matches(&db_code, &logic_code).is_ok();
        let mut state = PairState {
            database_code_hash: keccak256(&db_code),
            logic_code_hash: keccak256(&logic_code),
            code_matches,
            writer: Address::ZERO,
            writer_version: 0,
            read_only: false,
            database_admin: Address::ZERO,
            logic_admin: Address::ZERO,
            retired: false,
        };
        if !db_code.is_empty() {
            let (w, v, r) = read_writer(chain, a.database).await?;
            state.writer = w;
            state.writer_version = v;
            state.read_only = r;
            let db = ContractDatabase::new(a.database, chain.provider());
            state.database_admin = db.admin().call().await.map_err(rpc("admin()"))?;
        }
        if !logic_code.is_empty() {
            let logic = KontraktContract::new(a.logic, chain.provider());
            state.logic_admin = logic.admin().call().await.map_err(rpc("admin()"))?;
            state.retired = logic.retired().call().await.map_err(rpc("retired()"))?;
        }
        Ok(state)
    }
}

async fn read_writer(
    chain: &Chain,
    database: Address,
) -> Result<(Address, u64, bool), DeployError> {
    let db = ContractDatabase::new(database, chain.provider());
    let writer = db.writer().call().await.map_err(rpc("writer()"))?;
    let version = db
        .writerVersion()
        .call()
        .await
        .map_err(rpc("writerVersion()"))?;
    let read_only = db.readOnly().call().await.map_err(rpc("readOnly()"))?;
    Ok((writer, version, read_only))
}

fn contract_err(e: alloy::contract::Error) -> alloy::transports::TransportError {
    match e {
        alloy::contract::Error::TransportError(t) => t,
        other => alloy::transports::TransportError::local_usage_str(&other.to_string()),
    }
}

fn rpc(what: &'static str) -> impl Fn(alloy::contract::Error) -> ChainError {
    move |e| ChainError::Rpc {
        what: what.to_owned(),
        source: contract_err(e),
    }
}

/// Sends `salt ++ initcode` to the proxy unless code already sits at the CREATE2 address.
/// Returns whether this call created it.
/// How long a failed writer switch waits for a concurrent replica's switch to be mined.
const SWITCH_SETTLE_POLLS: u32 = 20;
const SWITCH_SETTLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

async fn create_if_absent(
    chain: &Chain,
    what: &'static str,
    d: &Create2,
) -> Result<bool, DeployError> {
    if !chain.code_at(d.address).await?.is_empty() {
        return Ok(false);
    }
    tracing::info!(%what, address = %d.address, "creating through the deterministic-deployment proxy");
    let tx = TransactionRequest::default()
        .to(DETERMINISTIC_DEPLOYER)
        .input(d.calldata().into());
    let sent = chain.send(what, tx, &[]).await;
    let present = !chain.code_at(d.address).await?.is_empty();
    match (sent, present) {
        // The proxy does not revert when CREATE2 meets an occupied address, so a
        // successful transaction proves nothing: ours created the code only if the
        // new contract's constructor logged in it (every pair contract emits
        // `AdminTransferred` from its constructor).
        (Ok(receipt), true) => Ok(receipt
            .inner
            .logs()
            .iter()
            .any(|log| log.address() == d.address)),
        // Lost a race with another deployer: the code is there, which is all we need.
        (Err(e), true) => {
            tracing::debug!(%what, error = %e, "CREATE2 failed but the code is present");
            Ok(false)
        }
        (Err(e), false) => Err(e.into()),
        (Ok(_), false) => Err(DeployError::NotCreated {
            what,
            address: d.address,
        }),
    }
}
