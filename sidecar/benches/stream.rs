//! Stream anchoring benchmark on a real anvil: 200-byte JSON messages through the
//! publisher's own path — `Stream::accept` (JSON check, append to the on-disk log, leaf
//! hash) and the batcher (seal every 1,000 messages, Merkle root, `anchorBatch` through the
//! key's `Chain`) — timed from the first message to the last batch's receipt.
//!
//! In the same run, the floor: raw keccak256 of the same bytes, one hash per message (what
//! integrity costs at the very least); the ratio says how far the whole pipeline is from it.
//! Gas per message is the `anchorBatch` receipts' gas over the messages they anchored.
//!
//! `make bench-stream` (= `cargo bench -p kontrakt-sidecar --bench stream -- --messages
//! 100000`) prints a table, PASS/FAIL per target, and exits non-zero on a FAIL.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use common::{Anvil, CHAIN_ID, DEV_KEYS, fast_retry};
use kontrakt_protocol::bindings::DataMarket;
use kontrakt_protocol::config::ChainConfig;
use kontrakt_protocol::stream_key;
use kontrakt_sidecar::chain::Chain;
use kontrakt_sidecar::stream::log::MessageLog;
use kontrakt_sidecar::stream::market::{ensure_market, ensure_stream};
use kontrakt_sidecar::stream::publisher::{Stream, run_batcher};

const MESSAGE_BYTES: usize = 200;
const BATCH_SIZE: u32 = 1_000;
const RATE_TARGET: f64 = 50_000.0;
const GAS_TARGET: f64 = 100.0;

fn messages_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--messages")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--messages takes a count"))
        .unwrap_or(100_000)
}

/// `{"seq":N,"pad":"xxx…"}` of exactly 200 bytes.
fn message(seq: usize) -> Vec<u8> {
    let head = format!("{{\"seq\":{seq},\"pad\":\"");
    let pad = MESSAGE_BYTES - head.len() - 2;
    let m = format!("{head}{}\"}}", "x".repeat(pad)).into_bytes();
    assert_eq!(m.len(), MESSAGE_BYTES);
    m
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count = messages_arg();
    assert!(
        count >= BATCH_SIZE as usize && count.is_multiple_of(BATCH_SIZE as usize),
        "--messages must be a multiple of {BATCH_SIZE}"
    );
    let messages: Vec<Vec<u8>> = (0..count).map(message).collect();

    // Floor: one keccak256 per message, nothing else.
    let start = Instant::now();
    let mut acc = [0u8; 32];
    for m in &messages {
        let h = keccak256(m);
        acc[0] ^= h[0];
    }
    std::hint::black_box(acc);
    let floor = count as f64 / start.elapsed().as_secs_f64();

    let anvil = Anvil::spawn();
    let key: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let chain = Chain::connect(
        &ChainConfig {
            rpc_url: anvil.url.clone(),
            chain_id: CHAIN_ID,
            retry: fast_retry(),
        },
        key,
    )
    .await
    .unwrap();
    let (market, _) = ensure_market(&chain, Address::ZERO).await.unwrap();
    let stream_id = ensure_stream(
        &chain,
        market,
        stream_key("bench", "stream"),
        alloy::primitives::U256::from(1),
        1,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = MessageLog::open(dir.path()).unwrap();
    let stream = Arc::new(Stream::new(market, stream_id, None, log));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let from_block = chain.provider().get_block_number().await.unwrap() + 1;

    let start = Instant::now();
    let batcher = tokio::spawn(run_batcher(
        stream.clone(),
        chain.clone(),
        BATCH_SIZE,
        Duration::from_secs(60),
        async move {
            let _ = stop_rx.await;
        },
    ));
    for m in &messages {
        stream.accept(m).unwrap();
    }
    let ingest_time = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = stream.status();
        if s.anchored_messages == count as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all anchored within 300 s: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = start.elapsed();
    let _ = stop_tx.send(());
    batcher.await.unwrap();

    // Gas: every anchorBatch receipt of this run.
    let filter = Filter::new()
        .address(market)
        .event_signature(DataMarket::BatchAnchored::SIGNATURE_HASH)
        .from_block(from_block);
    let logs = chain.provider().get_logs(&filter).await.unwrap();
    let mut gas = 0u64;
    let mut anchored = 0u64;
    for l in &logs {
        let event = DataMarket::BatchAnchored::decode_log_data(l.data()).unwrap();
        anchored += u64::from(event.messageCount);
        let receipt = chain
            .provider()
            .get_transaction_receipt(l.transaction_hash.unwrap())
            .await
            .unwrap()
            .unwrap();
        gas += receipt.gas_used;
    }
    assert_eq!(anchored, count as u64, "the chain holds every message once");
    let batches = logs.len() as u64;
    let gas_per_message = gas as f64 / count as f64;
    let pipeline = count as f64 / total.as_secs_f64();
    let ingest = count as f64 / ingest_time.as_secs_f64();
    let rate_ok = pipeline >= RATE_TARGET;
    let gas_ok = gas_per_message <= GAS_TARGET;

    println!(
        "## Stream anchoring benchmark (anvil, {count} messages of {MESSAGE_BYTES} bytes, batch size {BATCH_SIZE})\n"
    );
    println!("| measure | value | target | |");
    println!("|---|---:|---|---|");
    println!("| floor: raw keccak256 of the same bytes | {floor:.0} msg/s | | |");
    println!("| ingest only: JSON check + log append + leaf hash | {ingest:.0} msg/s | | |");
    println!(
        "| ingested, hashed, batched and anchored ({batches} batches, {:.2} s) | {pipeline:.0} msg/s | ≥ 50,000 | {} |",
        total.as_secs_f64(),
        verdict(rate_ok)
    );
    println!("| pipeline ÷ floor | {:.3} | | |", pipeline / floor);
    println!(
        "| anchorBatch gas per batch (mean) | {} | | |",
        gas / batches.max(1)
    );
    println!(
        "| gas per message, amortized | {gas_per_message:.1} | ≤ 100 | {} |",
        verdict(gas_ok)
    );
    drop(anvil);
    if !(rate_ok && gas_ok) {
        eprintln!("stream benchmark: a target was missed");
        std::process::exit(1);
    }
}
