//! A local development chain: anvil (from the workspace's pinned npm package) on
//! a loopback port, stopped when the guard drops. Used by the tests, the e2e
//! harness and `make demo`; never by the sidecar in a pod.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// anvil's default development keys (mnemonic "test test … junk"): public test material.
pub const DEV_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];

/// anvil's default chain id.
pub const DEV_CHAIN_ID: u64 = 31337;

/// The anvil binary: `KONTRAKT_ANVIL`, else the native binary of the workspace's
/// npm package for this platform, else npm's `node_modules/.bin/anvil` link.
///
/// The native binary comes first: npm's `.bin/anvil` is a node wrapper that some
/// npm 10 releases do not link at all (the platform package declares the same bin
/// name), and a wrapper's child outlives a SIGKILL of the wrapper.
pub fn anvil_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("KONTRAKT_ANVIL") {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "KONTRAKT_ANVIL names {}, which does not exist",
                path.display()
            ))
        };
    }
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules");
    let native =
        native_platform().map(|p| modules.join(format!("@foundry-rs/anvil-{p}/bin/anvil")));
    let candidates: Vec<PathBuf> = native
        .into_iter()
        .chain([modules.join(".bin/anvil")])
        .collect();
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "anvil not found at {}: run `npm ci` in the workspace root (make does) or set KONTRAKT_ANVIL",
            candidates[0].display()
        )
    })
}

/// The suffix of anvil's per-platform npm package for this machine.
fn native_platform() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("linux-amd64"),
        ("linux", "aarch64") => Some("linux-arm64"),
        ("macos", "x86_64") => Some("darwin-amd64"),
        ("macos", "aarch64") => Some("darwin-arm64"),
        _ => None,
    }
}

/// A running anvil; killed on drop.
pub struct Anvil {
    child: Child,
    host: std::net::IpAddr,
    pub port: u16,
    pub url: String,
}

impl Anvil {
    /// Starts anvil on a free loopback port with `extra` arguments.
    pub fn start(extra: &[&str]) -> Result<Self, String> {
        Self::start_at(std::net::Ipv4Addr::LOCALHOST.into(), extra)
    }

    /// Starts anvil on a free port of `host`: a local address other than
    /// loopback when pods on a real node must reach it (their bridge's address).
    pub fn start_at(host: std::net::IpAddr, extra: &[&str]) -> Result<Self, String> {
        for _ in 0..5 {
            let port = free_port_at(host);
            match Self::spawn(host, port, extra) {
                Ok(anvil) => return Ok(anvil),
                // Lost the port to someone else: try another.
                Err(_) => continue,
            }
        }
        Err("anvil did not start listening on any of 5 free ports".into())
    }

    /// Starts anvil on `port` (for tests that start the chain after its clients).
    pub fn start_on(port: u16, extra: &[&str]) -> Result<Self, String> {
        Self::spawn(std::net::Ipv4Addr::LOCALHOST.into(), port, extra)
    }

    /// Starts anvil on `host:port` (e.g. a real node's bridge address, where pods reach it).
    pub fn start_on_host(
        host: std::net::IpAddr,
        port: u16,
        extra: &[&str],
    ) -> Result<Self, String> {
        Self::spawn(host, port, extra)
    }

    fn spawn(host: std::net::IpAddr, port: u16, extra: &[&str]) -> Result<Self, String> {
        let bin = anvil_binary()?;
        let child = Command::new(&bin)
            .args(["--host", &host.to_string(), "--port", &port.to_string()])
            .args(["--chain-id", &DEV_CHAIN_ID.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // The fallback `.bin/anvil` is a node wrapper that starts the real binary as its
            // child: a group of their own lets Drop stop both.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start anvil {}: {e}", bin.display()))?;
        let addr = std::net::SocketAddr::new(host, port);
        let mut anvil = Self {
            child,
            host,
            port,
            url: format!("http://{addr}"),
        };
        if anvil.wait_listening(Duration::from_secs(15)) {
            Ok(anvil)
        } else {
            Err(format!("anvil did not listen on {addr}"))
        }
    }

    fn wait_listening(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect((self.host, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // The whole group: killing only the wrapper would leave anvil running.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: killpg only sends a signal; the group is the one spawned above.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; bind promptly).
pub fn free_port() -> u16 {
    free_port_at(std::net::Ipv4Addr::LOCALHOST.into())
}

/// A free TCP port on the local address `host`.
pub fn free_port_at(host: std::net::IpAddr) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {host}: {e}"))
}
