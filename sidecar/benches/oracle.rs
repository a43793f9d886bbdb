//! Oracle benchmark on a real anvil with a local HTTP endpoint: the sidecar's oracle loop
//! (`serve`, in this process) answering `Shipping.requestShipmentCost` requests, the way a pod
//! runs it, with an EnrollmentRegistry in which the sidecar key is an enrolled Oracle.
//!
//! 1. floor: plain value transfers from one key through the same `Chain::send`, as many in
//!    flight as the burst below: what one key gets through this anvil at best;
//! 2. sustained: requests at `--rate` per second for `--seconds`; latency from sending the
//!    request transaction to seeing its `OracleFulfilled` log (polled every 10 ms), p50/p99,
//!    and the fulfilments per second over the phase;
//! 3. burst: `--concurrent` requests made while the sidecar is stopped, then the sidecar
//!    started: it finds them all pending at once and answers them concurrently. All must end
//!    Fulfilled, and the sidecar key's nonce must equal the transactions it sent (no gaps,
//!    nothing stuck); its fulfilments per second against the floor are the ratio;
//! 4. gas: `fulfil` minus its callback, from a call trace of a real fulfilment.
//!
//! `make bench-oracle` (= `cargo bench -p kontrakt-sidecar --bench oracle -- --rate 50
//! --seconds 60`) prints a table, PASS/FAIL per target, and exits non-zero on a FAIL.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use common::{Anvil, DEV_KEYS, config, free_port, key_file};
use kontrakt_protocol::addresses::Create2;
use kontrakt_protocol::addresses::DETERMINISTIC_DEPLOYER;
use kontrakt_protocol::artifact::Artifact;
use kontrakt_protocol::bindings::KontraktOracle;
use kontrakt_protocol::config::OracleEndpoint;
use kontrakt_protocol::key::load_signer;
use kontrakt_sidecar::chain::Chain;
use kontrakt_sidecar::deploy::Pair;
use serde_json::{Value, json};
use tokio::sync::Mutex;

mod shipping {
    alloy::sol!(
        #[sol(rpc)]
        Shipping,
        "contracts/out/Shipping.json"
    );
}
mod registry {
    alloy::sol!(
        #[sol(rpc)]
        EnrollmentRegistry,
        "contracts/out/EnrollmentRegistry.json"
    );
}
use registry::EnrollmentRegistry;
use shipping::Shipping;

const P50_LIMIT: Duration = Duration::from_millis(500);
const P99_LIMIT: Duration = Duration::from_secs(2);
const GAS_LIMIT: u64 = 100_000;
const FULFILLED: u8 = 2;
const NODE_ROLE: u8 = 1;
const ORACLE_ROLE: u8 = 4;
/// Requests of the sustained phase in flight at most (see there).
const IN_FLIGHT: usize = 256;
/// Transactions the sidecar key sends before any answer: database, logic, setWriter.
const DEPLOY_TXS: u64 = 3;

struct Args {
    rate: u64,
    seconds: u64,
    concurrent: usize,
}

fn args() -> Args {
    let mut a = Args {
        rate: 50,
        seconds: 60,
        concurrent: 1_000,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--rate" => a.rate = value(),
            "--seconds" => a.seconds = value(),
            "--concurrent" => a.concurrent = value() as usize,
            // `cargo bench` passes --bench; anything else is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

type Serving = tokio::task::JoinHandle<Result<(), kontrakt_sidecar::service::ServeError>>;

/// `serve` in this process, as a pod runs it; stops when the sender is used or dropped.
fn start_sidecar(
    cfg: kontrakt_protocol::SidecarConfig,
) -> (tokio::sync::oneshot::Sender<()>, Serving) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kontrakt_sidecar::service::serve(cfg, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// The device: answers every cost question at once.
async fn start_device() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"cost": 1234})) });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}/shipment-cost")
}

async fn connect(url: &str, key: &str) -> Chain {
    let cfg = config(url, std::path::Path::new("unused"), "Shipping", 1).chain;
    Chain::connect(&cfg, key.parse::<PrivateKeySigner>().unwrap())
        .await
        .expect("anvil reachable")
}

/// anvil's block interval (interval mining) in this benchmark, in seconds.
const BLOCK_TIME: &str = "0.2";

/// Watches `OracleFulfilled` logs; records when each id was first seen.
async fn watch_fulfilments(chain: Chain, logic: Address, seen: Arc<Mutex<HashMap<B256, Instant>>>) {
    let p = chain.provider().clone();
    let mut next = p.get_block_number().await.unwrap();
    loop {
        let head = p.get_block_number().await.unwrap();
        if head >= next {
            let filter = Filter::new()
                .address(logic)
                .event_signature(KontraktOracle::OracleFulfilled::SIGNATURE_HASH)
                .from_block(next)
                .to_block(head);
            let logs = p.get_logs(&filter).await.unwrap();
            let now = Instant::now();
            let mut seen = seen.lock().await;
            for log in logs {
                seen.entry(log.topics()[1]).or_insert(now);
            }
            next = head + 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends one `requestShipmentCost`; returns its request id and when it was sent.
async fn request(user: &Chain, logic: Address, shipment: B256) -> (B256, Instant) {
    let sent = Instant::now();
    let tx = Shipping::new(logic, user.provider())
        .requestShipmentCost(shipment)
        .into_transaction_request();
    let receipt = user
        .send("requestShipmentCost", tx, &[])
        .await
        .expect("request sent");
    let id = receipt
        .inner
        .logs()
        .iter()
        .find(|l| l.topic0() == Some(&KontraktOracle::OracleRequest::SIGNATURE_HASH))
        .map(|l| l.topics()[1])
        .expect("an OracleRequest log");
    (id, sent)
}

/// Waits until every id in `ids` was seen fulfilled (or `limit` passes).
async fn wait_all(seen: &Mutex<HashMap<B256, Instant>>, ids: &[B256], limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        {
            let seen = seen.lock().await;
            if ids.iter().all(|id| seen.contains_key(id)) {
                return true;
            }
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    // Warnings (retries, replaced transactions) on stderr; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // A block every 200 ms, like a fast production chain (an L2), not one block per
    // transaction: anvil keeps every block, its receipts and traces in memory (measured:
    // ~40 KB per block of one storage write, ~300 KB per block of this workload; no flag
    // bounds it), so automine at ~100 blocks/s grew anvil to 4 GB within the 60 s and its
    // stalls (p99 15-29 s, the user's own request transactions included) were measured
    // instead of the oracle. Only recent states are kept in memory, none on disk.
    let anvil = Anvil::spawn_with(&["--block-time", BLOCK_TIME, "--prune-history", "64"]);
    let (_dir, key) = key_file(DEV_KEYS[0]);
    let oracle_key = load_signer(&key).unwrap().address();
    let user = connect(&anvil.url, DEV_KEYS[1]).await;
    let other = connect(&anvil.url, DEV_KEYS[2]).await;

    // ---- 1. floor: plain transfers from one key, as many in flight as the burst.
    let floor_txs = args.concurrent;
    let started = Instant::now();
    let sends = (0..floor_txs).map(|i| {
        let other = other.clone();
        async move {
            let tx = TransactionRequest::default()
                .to(Address::left_padding_from(
                    &(0xf000 + i as u64).to_be_bytes(),
                ))
                .value(U256::from(1));
            other.send("transfer", tx, &[]).await.expect("transfer")
        }
    });
    futures::future::join_all(sends).await;
    let floor_tps = floor_txs as f64 / started.elapsed().as_secs_f64();

    // ---- the service: a registry (admin: another key) with the sidecar key as Oracle.
    let registry_artifact = Artifact::builtin("EnrollmentRegistry").unwrap();
    let deployment = Create2::new(
        keccak256("bench/oracle/registry"),
        registry_artifact.initcode(&[other.signer()]),
    );
    let tx = TransactionRequest::default()
        .to(DETERMINISTIC_DEPLOYER)
        .input(deployment.calldata().into());
    other.send("registry", tx, &[]).await.expect("registry");
    let registry = deployment.address;
    for (account, role) in [(oracle_key, ORACLE_ROLE), (user.signer(), NODE_ROLE)] {
        let tx = EnrollmentRegistry::new(registry, other.provider())
            .enroll(account, role, 0)
            .into_transaction_request();
        other.send("enroll", tx, &[]).await.expect("enroll");
    }

    let device = start_device().await;
    let mut cfg = config(&anvil.url, &key, "Shipping", 1);
    cfg.contract.name = "bench".into();
    cfg.registry = Some(registry);
    cfg.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    cfg.oracle.endpoints = vec![OracleEndpoint {
        name: "ShipmentCost".into(),
        url: device,
        method: "GET".into(),
        timeout_seconds: 5,
        retries: 3,
        result_path: Some("$.cost".into()),
        headers: vec![],
    }];
    let logic = Pair::from_config(&cfg, oracle_key)
        .unwrap()
        .plan
        .addresses
        .logic;
    let (stop, sidecar) = start_sidecar(cfg.clone());
    let started = Instant::now();
    while user.code_at(logic).await.unwrap().is_empty()
        || started.elapsed() < Duration::from_secs(1)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sidecar never deployed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shipping = Shipping::new(logic, user.provider());
    let shipment = B256::repeat_byte(1);
    let tx = shipping
        .createShipment(
            shipment,
            Address::repeat_byte(0xaa),
            "VerticalPump".into(),
            U256::from(3),
        )
        .into_transaction_request();
    // The writer switch may still be on its way.
    let mut attempts = 0;
    while let Err(e) = user.send("createShipment", tx.clone(), &[]).await {
        attempts += 1;
        assert!(attempts < 50, "createShipment: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let watcher = tokio::spawn(watch_fulfilments(user.clone(), logic, seen.clone()));

    // ---- 2. sustained rate.
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let phase = Instant::now();
    let mut requests = Vec::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // At most this many requests in flight: when the node falls behind, the offered rate drops
    // (and shows as missed throughput) instead of piling up thousands of polling clients.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    for _ in 0..total {
        let scheduled = ticker.tick().await.into_std();
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let user = user.clone();
        requests.push(tokio::spawn(async move {
            let (id, _) = request(&user, logic, shipment).await;
            let mined = Instant::now();
            drop(permit);
            // Latency counts from the scheduled time, so waiting for a slot is not hidden.
            (id, scheduled, mined)
        }));
    }
    let mut sent = Vec::new();
    let mut request_mined = Vec::new();
    for r in requests {
        let (id, scheduled, mined) = r.await.unwrap();
        request_mined.push((id, mined));
        sent.push((id, scheduled));
    }
    let ids: Vec<B256> = sent.iter().map(|(id, _)| *id).collect();
    let sustained_all = wait_all(&seen, &ids, Duration::from_secs(120)).await;
    let phase_time = phase.elapsed();
    let mut latencies: Vec<Duration> = {
        let seen = seen.lock().await;
        sent.iter()
            .filter_map(|(id, at)| seen.get(id).map(|done| done.duration_since(*at)))
            .collect()
    };
    latencies.sort();
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    // Where the time goes: the user's request until it is mined (the chain and the bench's
    // own sender), then the oracle from the mined request to the mined fulfilment.
    let (mut to_mined, mut oracle_side): (Vec<Duration>, Vec<Duration>) = {
        let seen = seen.lock().await;
        sent.iter()
            .zip(&request_mined)
            .filter_map(|((id, at), (_, mined))| {
                seen.get(id).map(|done| {
                    (
                        mined.duration_since(*at),
                        done.saturating_duration_since(*mined),
                    )
                })
            })
            .unzip()
    };
    to_mined.sort();
    oracle_side.sort();
    let sustained_tps = latencies.len() as f64 / phase_time.as_secs_f64();

    // ---- 3. burst: with the sidecar stopped, the requests pile up; the restarted sidecar
    // finds them all pending at once (its resume scan) and answers them concurrently.
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), sidecar).await;
    let sends = (0..args.concurrent).map(|_| {
        let user = user.clone();
        async move { request(&user, logic, shipment).await }
    });
    let burst_sent = futures::future::join_all(sends).await;
    let burst_ids: Vec<B256> = burst_sent.iter().map(|(id, _)| *id).collect();
    let burst = Instant::now();
    let (stop, sidecar) = start_sidecar(cfg);
    let burst_all = wait_all(&seen, &burst_ids, Duration::from_secs(300)).await;
    let burst_time = burst.elapsed();
    let burst_tps = burst_ids.len() as f64 / burst_time.as_secs_f64();
    let ratio = burst_tps / floor_tps;

    // Every request Fulfilled on chain; the sidecar key sent exactly deploy + one per answer.
    let oracle = KontraktOracle::new(logic, user.provider());
    let mut not_fulfilled = 0;
    for id in ids.iter().chain(&burst_ids) {
        if oracle.oracleRequestOf(*id).call().await.unwrap().status != FULFILLED {
            not_fulfilled += 1;
        }
    }
    let stats = oracle.oracleStats().call().await.unwrap();
    let p = user.provider();
    // Give the sidecar a moment to see its last receipts, then compare nonces.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mined_nonce = p.get_transaction_count(oracle_key).await.unwrap();
    let pending_nonce = p.get_transaction_count(oracle_key).pending().await.unwrap();
    let answered = ids.len() as u64 + burst_ids.len() as u64;
    let no_gaps = mined_nonce == pending_nonce && mined_nonce == DEPLOY_TXS + answered;
    let burst_ok = burst_all && not_fulfilled == 0 && no_gaps && stats.fulfilled == answered;

    // ---- 4. gas of a real fulfilment (a recent one: older states are pruned), minus its
    // callback (from the call trace).
    let head = p.get_block_number().await.unwrap();
    let filter = Filter::new()
        .address(logic)
        .event_signature(KontraktOracle::OracleFulfilled::SIGNATURE_HASH)
        .from_block(head.saturating_sub(100));
    let log = p
        .get_logs(&filter)
        .await
        .unwrap()
        .pop()
        .expect("a recent fulfilment");
    let tx_hash = log.transaction_hash.unwrap();
    let receipt = p.get_transaction_receipt(tx_hash).await.unwrap().unwrap();
    let trace: Value = p
        .raw_request(
            "debug_traceTransaction".into(),
            (tx_hash, json!({"tracer": "callTracer"})),
        )
        .await
        .expect("debug_traceTransaction with callTracer");
    let callback_gas = trace["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["to"]
                .as_str()
                .map(|t| t.eq_ignore_ascii_case(&logic.to_string()))
                == Some(true)
        })
        .map(|c| {
            u64::from_str_radix(c["gasUsed"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap()
        })
        .sum::<u64>();
    assert!(callback_gas > 0, "no callback frame in the trace: {trace}");
    let fulfil_gas = receipt.gas_used - callback_gas;

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), sidecar).await;
    watcher.abort();

    let p50_ok = sustained_all && p50 <= P50_LIMIT;
    let p99_ok = sustained_all && p99 <= P99_LIMIT;
    let gas_ok = fulfil_gas <= GAS_LIMIT;
    println!(
        "## Oracle benchmark (anvil, local HTTP endpoint, registry with an enrolled oracle)\n"
    );
    println!("| measure | value | target | |");
    println!("|---|---:|---|---|");
    println!(
        "| floor: plain transfers from one key ({floor_txs} in flight) | {floor_tps:.0} tx/s | | |"
    );
    println!(
        "| sustained: requests sent | {} at {}/s for {} s | | |",
        ids.len(),
        args.rate,
        args.seconds
    );
    println!(
        "| sustained: fulfilled | {} of {} ({sustained_tps:.1}/s) | all | {} |",
        latencies.len(),
        ids.len(),
        verdict(sustained_all)
    );
    println!(
        "| request → fulfil latency p50 | {} | ≤ 500 ms | {} |",
        ms(p50),
        verdict(p50_ok)
    );
    println!(
        "| request → fulfil latency p99 | {} | ≤ 2000 ms | {} |",
        ms(p99),
        verdict(p99_ok)
    );
    println!(
        "| latency max | {} | | |",
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| of which: request sent → request mined, p50 / p99 | {} / {} | | |",
        ms(percentile(&to_mined, 50.0)),
        ms(percentile(&to_mined, 99.0))
    );
    println!(
        "| of which: request mined → fulfilment mined (the oracle), p50 / p99 | {} / {} | | |",
        ms(percentile(&oracle_side, 50.0)),
        ms(percentile(&oracle_side, 99.0))
    );
    println!(
        "| burst: {} requests pending at once, all fulfilled (sidecar start → last fulfil) | {} s ({burst_tps:.0}/s) | all, no nonce gaps | {} |",
        burst_ids.len(),
        format_args!("{:.1}", burst_time.as_secs_f64()),
        verdict(burst_ok)
    );
    println!("| burst fulfilments/s ÷ floor tx/s | {ratio:.2} | | |");
    println!(
        "| oracle key nonce (mined / pending / expected) | {mined_nonce} / {pending_nonce} / {} | equal | {} |",
        DEPLOY_TXS + answered,
        verdict(no_gaps)
    );
    println!(
        "| oracleStats (requested / fulfilled / failed / expired) | {} / {} / {} / {} | | |",
        stats.requested, stats.fulfilled, stats.failed, stats.expired
    );
    println!(
        "| fulfil gas excl. callback (tx {} − callback {}) | {fulfil_gas} | ≤ 100,000 | {} |",
        receipt.gas_used,
        callback_gas,
        verdict(gas_ok)
    );
    drop(anvil);
    if !(p50_ok && p99_ok && burst_ok && gas_ok) {
        eprintln!("oracle benchmark: a target was missed");
        std::process::exit(1);
    }
}
