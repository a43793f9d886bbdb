//! A real anvil per test, on a free loopback port, killed when the guard drops.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kontrakt_sidecar::config::{
    ChainConfig, ContractConfig, DatabaseConfig, InteropConfig, OracleConfig, RetryConfig,
    SidecarConfig, SignerConfig,
};

/// anvil's default dev accounts (mnemonic "test test … junk").
pub const DEV_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];

pub const CHAIN_ID: u64 = 31337;

/// The anvil binary: `KONTRAKT_ANVIL`, else `<workspace>/node_modules/.bin/anvil`.
/// A missing binary fails the test (never a silent skip).
pub fn anvil_binary() -> PathBuf {
    let path = std::env::var_os("KONTRAKT_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/anvil")
        });
    assert!(
        path.exists(),
        "anvil not found at {} — run `npm ci` in the workspace root or set KONTRAKT_ANVIL",
        path.display()
    );
    path
}

pub struct Anvil {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl Anvil {
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    pub fn spawn_with(extra: &[&str]) -> Self {
        let bin = anvil_binary();
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--chain-id", &CHAIN_ID.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start anvil {}: {e}", bin.display()));
            let mut anvil = Self {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
            };
            if anvil.wait_listening(Duration::from_secs(15)) {
                return anvil;
            }
            // Lost the port to someone else: the guard kills this one, try another port.
        }
        panic!("anvil did not start listening");
    }

    /// On a given port (for tests that start the chain after the sidecar).
    pub fn spawn_on(port: u16) -> Self {
        let bin = anvil_binary();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &CHAIN_ID.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil {}: {e}", bin.display()));
        let mut anvil = Self {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        assert!(
            anvil.wait_listening(Duration::from_secs(15)),
            "anvil did not listen on {port}"
        );
        anvil
    }

    fn wait_listening(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key file in a fresh temp dir (kept alive by the returned guard).
pub fn key_file(key: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    (dir, path)
}

pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        initial_backoff_millis: 20,
        max_backoff_millis: 50,
    }
}

pub fn config(url: &str, key_file: &Path, template: &str, version: u64) -> SidecarConfig {
    SidecarConfig {
        chain: ChainConfig {
            rpc_url: url.to_owned(),
            chain_id: CHAIN_ID,
            retry: fast_retry(),
        },
        signer: SignerConfig {
            key_file: key_file.to_owned(),
        },
        contract: ContractConfig {
            namespace: "default".into(),
            name: "records".into(),
            template: Some(template.into()),
            artifact_file: None,
            version,
        },
        database: DatabaseConfig::Create,
        registry: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        interop: InteropConfig::default(),
        oracle: OracleConfig::default(),
    }
}
