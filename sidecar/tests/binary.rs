//! The `kontrakt-sidecar` binary: `deploy` and `serve` as the pod runs them.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::transports::http::reqwest;
use common::{Anvil, DEV_KEYS, config, free_port, key_file};
use kontrakt_protocol::SidecarConfig;
use kontrakt_protocol::bindings::RecordStore;
use kontrakt_protocol::key::load_signer;
use kontrakt_sidecar::chain::Chain;
use kontrakt_sidecar::events::CloudEvent;

const BIN: &str = env!("CARGO_BIN_EXE_kontrakt-sidecar");

fn write_config(dir: &Path, cfg: &SidecarConfig) -> std::path::PathBuf {
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, cfg.to_yaml()).unwrap();
    path
}

fn deploy(config: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["deploy", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn deploy_prints_the_addresses_and_is_idempotent() {
    let anvil = Anvil::spawn();
    let (dir, key) = key_file(DEV_KEYS[0]);
    let path = write_config(dir.path(), &config(&anvil.url, &key, "Shipping", 1));
    let first = deploy(&path);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["outcome"]["logicCreated"], true);
    let second = deploy(&path);
    assert!(second.status.success());
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(first["database"], second["database"]);
    assert_eq!(first["logic"], second["logic"]);
    assert_eq!(second["outcome"]["logicCreated"], false);
    assert_eq!(second["outcome"]["writerSwitched"], false);
}

#[test]
fn missing_or_garbled_key_file_is_named_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-key");
    let path = write_config(
        dir.path(),
        &config("http://127.0.0.1:1", &missing, "Shipping", 1),
    );
    let out = deploy(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-key") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let garbled = dir.path().join("garbled-key");
    let secret = &DEV_KEYS[0][2..62];
    std::fs::write(&garbled, format!("{secret}!!")).unwrap();
    let path = write_config(
        dir.path(),
        &config("http://127.0.0.1:1", &garbled, "Shipping", 1),
    );
    let out = deploy(&path);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("garbled-key") && all.contains("does not hold a private key"),
        "{all}"
    );
    assert!(!all.contains(&secret[..16]), "the key leaked: {all}");
}

#[test]
fn deploy_against_the_wrong_chain_names_both_ids() {
    let anvil = Anvil::spawn();
    let (dir, key) = key_file(DEV_KEYS[0]);
    let mut cfg = config(&anvil.url, &key, "Shipping", 1);
    cfg.chain.chain_id = 11155111;
    let out = deploy(&write_config(dir.path(), &cfg));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("11155111") && stderr.contains("31337"),
        "{stderr}"
    );
}

struct Sidecar(std::process::Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_status(http: &reqwest::Client, url: &str, want: u16, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == want
        {
            return;
        }
        assert!(started.elapsed() < limit, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_waits_for_an_unreachable_chain_and_is_unready_meanwhile() {
    let chain_port = free_port();
    let (dir, key) = key_file(DEV_KEYS[0]);
    let port = free_port();
    let mut cfg = config(
        &format!("http://127.0.0.1:{chain_port}"),
        &key,
        "Shipping",
        1,
    );
    cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let path = write_config(dir.path(), &cfg);
    let _sidecar = Sidecar(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_status(
        &http,
        &format!("{base}/healthz"),
        200,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        http.get(format!("{base}/contract"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    // The chain comes up later; the sidecar's backoff finds it and deploys.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _anvil = Anvil::spawn_on(chain_port);
    wait_status(
        &http,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test]
async fn serve_becomes_ready_and_streams_cloudevents() {
    let anvil = Anvil::spawn();
    let (dir, key) = key_file(DEV_KEYS[0]);
    let port = free_port();
    let mut cfg = config(&anvil.url, &key, "RecordStore", 1);
    cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let path = write_config(dir.path(), &cfg);
    let mut sidecar = Sidecar(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz never turned 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let view: serde_json::Value = http
        .get(format!("{base}/contract"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["chainId"], 31337);
    assert_eq!(view["version"], 1);
    assert_eq!(view["writer"], view["addresses"]["logic"]);
    assert_eq!(view["retired"], false);
    let logic: Address = view["addresses"]["logic"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A write through the logic contract...
    let chain = Chain::connect(&cfg.chain, load_signer(&key).unwrap())
        .await
        .unwrap();
    let tx = RecordStore::new(logic, chain.provider())
        .put(U256::from(7), Address::repeat_byte(0xd1), U256::from(42), 1)
        .into_transaction_request();
    chain.send("put", tx, &[]).await.unwrap();

    // ... shows up on the feed as a CloudEvent.
    let mut feed = http
        .get(format!("{base}/events?from_block=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let mut buf = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let chunk = feed.chunk().await.unwrap().expect("feed ended early");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let event: CloudEvent = serde_json::from_str(line.trim()).unwrap();
                if event.kind == "dev.kontrakt.RecordStore.RecordPut" {
                    return event;
                }
            }
        }
    })
    .await
    .expect("a RecordPut CloudEvent within 20s");
    assert_eq!(found.specversion, "1.0");
    assert_eq!(found.source, format!("kontrakt://31337/{logic}"));
    assert_eq!(found.data["id"], "7");
    assert_eq!(found.data["value"], "42");
    assert!(found.time.is_some());
    drop(feed);

    // SIGTERM: a graceful, successful exit.
    let pid = sidecar.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
