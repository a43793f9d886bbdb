//! A real anvil per test, on a free loopback port, killed when the guard drops.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kontrakt_protocol::config::{
    ChainConfig, ContractConfig, DatabaseConfig, InteropConfig, OracleConfig, RetryConfig,
    SidecarConfig, SignerConfig,
};

#[allow(unused_imports)] // not every test binary uses every helper
pub use kontrakt_sidecar::devchain::{DEV_CHAIN_ID as CHAIN_ID, DEV_KEYS, free_port};

/// A real anvil; a test fails (never skips) when it cannot start.
pub struct Anvil(kontrakt_sidecar::devchain::Anvil);

impl std::ops::Deref for Anvil {
    type Target = kontrakt_sidecar::devchain::Anvil;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Anvil {
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    pub fn spawn_with(extra: &[&str]) -> Self {
        Self(kontrakt_sidecar::devchain::Anvil::start(extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// On a given port (for tests that start the chain after the sidecar).
    pub fn spawn_on(port: u16) -> Self {
        Self(
            kontrakt_sidecar::devchain::Anvil::start_on(port, &[])
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }
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
        enrollment: None,
        access: None,
    }
}

/// `serve` running in this process on a free loopback port; stopped (gracefully) by `stop`
/// or when dropped.
pub struct Sidecar {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub base: String,
}

impl Sidecar {
    /// Starts `serve` with `cfg` (its `listen` replaced); does not wait for anything.
    pub fn spawn(mut cfg: SidecarConfig) -> Self {
        let port = free_port();
        cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            kontrakt_sidecar::service::serve(cfg, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve failed");
        });
        Self {
            stop: Some(stop),
            task,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET <path>` as JSON, None unless it answers 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let r = reqwest::get(format!("{}{path}", self.base)).await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    /// Waits up to `limit` until `GET <path>` answers JSON that satisfies `ok`; returns it.
    pub async fn wait_json(
        &self,
        path: &str,
        what: &str,
        limit: std::time::Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let view = self.get_json(path).await;
            if let Some(v) = &view
                && ok(v)
            {
                return v.clone();
            }
            assert!(
                started.elapsed() < limit,
                "{what}: never; last {path}: {view:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops `serve` and waits (at most 15 s) for it to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(std::time::Duration::from_secs(15), &mut self.task)
            .await
            .expect("serve stops within 15s")
            .unwrap();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
