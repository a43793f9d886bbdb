//! The e2e tests' view of the chain: funded signers of their own, an audit of
//! every deploy transaction ever mined, and an anvil that can be stopped and
//! started again on the same port with the same state.

use alloy::{
    consensus::Transaction as _,
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use kontrakt_protocol::{addresses::DETERMINISTIC_DEPLOYER, bindings::ContractDatabase};
use kontrakt_sidecar::devchain;
use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A signer of the test's own: a private key (hex with `0x`) and its address.
#[derive(Clone, Debug)]
pub struct Signer {
    pub key_hex: String,
    pub address: Address,
}

impl Signer {
    /// The key `keccak256(seed)`: distinct seeds give distinct, reproducible keys.
    pub fn from_seed(seed: &str) -> Signer {
        let key = keccak256(seed.as_bytes());
        let signer = PrivateKeySigner::from_bytes(&key).expect("a keccak digest is a valid key");
        Signer {
            key_hex: format!("{key}"),
            address: signer.address(),
        }
    }

    /// Gives the signer 1,000 ether on an anvil (`anvil_setBalance`: no transaction).
    pub async fn fund(&self, rpc_url: &str) {
        let provider = ProviderBuilder::new().connect_http(rpc_url.parse().expect("rpc url"));
        let ether = U256::from(10u64).pow(U256::from(21u64));
        provider
            .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (self.address, ether))
            .await
            .unwrap_or_else(|e| panic!("anvil_setBalance for {}: {e}", self.address));
    }
}

/// The nonce (number of transactions sent) of `address`.
pub async fn nonce(rpc_url: &str, address: Address) -> u64 {
    ProviderBuilder::new()
        .connect_http(rpc_url.parse().expect("rpc url"))
        .get_transaction_count(address)
        .await
        .unwrap_or_else(|e| panic!("eth_getTransactionCount {address}: {e}"))
}

/// The nonce counting transactions still in the mempool (`pending`).
pub async fn pending_nonce(rpc_url: &str, address: Address) -> u64 {
    ProviderBuilder::new()
        .connect_http(rpc_url.parse().expect("rpc url"))
        .get_transaction_count(address)
        .pending()
        .await
        .unwrap_or_else(|e| panic!("eth_getTransactionCount {address} pending: {e}"))
}

/// Turns anvil's automine on or off; off, transactions wait in the mempool
/// until [`mine`].
pub async fn set_automine(rpc_url: &str, on: bool) {
    ProviderBuilder::new()
        .connect_http(rpc_url.parse().expect("rpc url"))
        .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (on,))
        .await
        .unwrap_or_else(|e| panic!("evm_setAutomine {on}: {e}"));
}

/// Mines one block with every pending transaction.
pub async fn mine(rpc_url: &str) {
    ProviderBuilder::new()
        .connect_http(rpc_url.parse().expect("rpc url"))
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .unwrap_or_else(|e| panic!("evm_mine: {e}"));
}

/// A pair the operator reported in a status.
#[derive(Clone, Debug)]
pub struct ExpectedPair {
    pub service: String,
    pub database: Address,
    pub logic: Address,
}

/// Every deploy transaction on the chain, from block 0 to the latest.
///
/// Pairs are created through the deterministic-deployment proxy: a
/// transaction to it carries `salt ++ initcode` and aims at the CREATE2
/// address `keccak256(0xff ++ proxy ++ salt ++ keccak256(initcode))[12..]`.
/// The proxy does not revert when that address is already occupied, so a
/// repeated deploy shows up as a second transaction aimed at the same address
/// even though it creates nothing: counting transactions per target address
/// catches every duplicate attempt, successful or not.
#[derive(Debug, Default)]
pub struct DeployAudit {
    /// CREATE2 target -> transactions to the proxy aimed at it.
    pub creations: BTreeMap<Address, usize>,
    /// Database -> `setWriter` transactions sent to it.
    pub writer_switches: BTreeMap<Address, usize>,
    /// All transactions to the proxy.
    pub proxy_transactions: usize,
    /// The latest block looked at.
    pub latest_block: u64,
}

impl DeployAudit {
    /// Reads every block (with its transactions) of the chain at `rpc_url`.
    pub async fn read(rpc_url: &str) -> DeployAudit {
        let provider = ProviderBuilder::new().connect_http(rpc_url.parse().expect("rpc url"));
        let latest = provider.get_block_number().await.expect("eth_blockNumber");
        let set_writer = ContractDatabase::setWriterCall::SELECTOR;
        let mut audit = DeployAudit {
            latest_block: latest,
            ..DeployAudit::default()
        };
        for n in 0..=latest {
            let block = provider
                .get_block_by_number(BlockNumberOrTag::Number(n))
                .full()
                .await
                .unwrap_or_else(|e| panic!("eth_getBlockByNumber {n}: {e}"))
                .unwrap_or_else(|| panic!("block {n} is missing"));
            for tx in block.transactions.txns() {
                let Some(to) = tx.to() else { continue };
                let input = tx.input();
                if to == DETERMINISTIC_DEPLOYER {
                    audit.proxy_transactions += 1;
                    if input.len() >= 32 {
                        let salt = B256::from_slice(&input[..32]);
                        let target = DETERMINISTIC_DEPLOYER.create2_from_code(salt, &input[32..]);
                        *audit.creations.entry(target).or_default() += 1;
                    }
                } else if input.len() >= 4 && input[..4] == set_writer {
                    *audit.writer_switches.entry(to).or_default() += 1;
                }
            }
        }
        audit
    }

    /// Exactly one creation of each pair's database and logic, one writer
    /// switch per database, and no other creation at all. Describes every
    /// difference when there is one.
    pub fn check_one_pair_each(&self, pairs: &[ExpectedPair]) -> Result<(), String> {
        let mut problems = Vec::new();
        for p in pairs {
            for (what, address) in [("database", p.database), ("logic", p.logic)] {
                let n = self.creations.get(&address).copied().unwrap_or(0);
                if n != 1 {
                    problems.push(format!(
                        "{}: {n} deploy transactions for its {what} at {address}",
                        p.service
                    ));
                }
            }
            let n = self.writer_switches.get(&p.database).copied().unwrap_or(0);
            if n != 1 {
                problems.push(format!(
                    "{}: {n} setWriter transactions to its database {}",
                    p.service, p.database
                ));
            }
        }
        let expected: Vec<Address> = pairs.iter().flat_map(|p| [p.database, p.logic]).collect();
        for (address, n) in &self.creations {
            if !expected.contains(address) {
                problems.push(format!("{n} deploy transactions for unexpected {address}"));
            }
        }
        if self.proxy_transactions != 2 * pairs.len() {
            problems.push(format!(
                "{} transactions to the proxy for {} pairs (expected {})",
                self.proxy_transactions,
                pairs.len(),
                2 * pairs.len()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "deploy audit over blocks 0..={}:\n  {}",
                self.latest_block,
                problems.join("\n  ")
            ))
        }
    }
}

/// An anvil that can be stopped and started again on the same port with the
/// same chain state (anvil's `--state FILE`: loaded at start, written on a
/// clean exit). Killed with its process group on drop.
pub struct RestartableAnvil {
    pub port: u16,
    pub url: String,
    state: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RestartableAnvil {
    /// Starts anvil on a free loopback port.
    pub fn start() -> RestartableAnvil {
        let dir = tempfile::tempdir().expect("temp dir for the anvil state");
        let state = dir.path().join("state.json");
        let mut last = String::new();
        for _ in 0..5 {
            let port = devchain::free_port();
            match spawn_anvil(port, &state) {
                Ok(child) => {
                    return RestartableAnvil {
                        port,
                        url: format!("http://127.0.0.1:{port}"),
                        state,
                        child: Some(child),
                        _dir: dir,
                    };
                }
                Err(e) => last = e,
            }
        }
        panic!("anvil did not start on any of 5 free ports: {last}");
    }

    /// SIGTERM to anvil and its node wrapper; anvil writes its state and
    /// exits. Waits for every process of the group, not just the wrapper
    /// (which exits first): killing anvil mid-write would lose the state.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(&child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Reap the wrapper, so only live processes keep the group alive.
            let _ = child.try_wait();
            if !group_alive(&child) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(&child, "KILL");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            self.state.is_file(),
            "anvil wrote no state to {} on SIGTERM",
            self.state.display()
        );
    }

    /// Starts anvil again on the same port from the state written by [`Self::stop`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "anvil is still running");
        let child = spawn_anvil(self.port, &self.state)
            .unwrap_or_else(|e| panic!("restarting anvil with its state: {e}"));
        self.child = Some(child);
    }
}

/// anvil on `port` with `--state state`, once it listens.
fn spawn_anvil(port: u16, state: &std::path::Path) -> Result<Child, String> {
    let bin = devchain::anvil_binary()?;
    let mut child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--chain-id", &devchain::DEV_CHAIN_ID.to_string()])
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // npm's anvil is a node wrapper around the real binary: signal the group.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start anvil {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("anvil on port {port} exited ({status})"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(&child, "KILL");
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("anvil did not listen on 127.0.0.1:{port}"))
}

impl Drop for RestartableAnvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, "KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether any process of the child's group still exists (`kill -0`).
fn group_alive(child: &Child) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `kill -<signal> -- -<pgid>` for a child spawned as the leader of its own group.
fn signal_group(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
