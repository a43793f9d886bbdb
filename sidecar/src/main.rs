//! `kontrakt-sidecar`: the contract sidecar binary (thin: parsing, logging, signals).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kontrakt_protocol::SidecarConfig;
use kontrakt_protocol::StreamConfig;
use kontrakt_sidecar::service::{deploy_once, serve};
use kontrakt_sidecar::stream::buyer::Buyer;

#[derive(Debug, Parser)]
#[command(name = "kontrakt-sidecar", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "KONTRAKT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy the pair if absent, print its addresses as JSON, exit.
    Deploy {
        /// The sidecar config file (see the `kontrakt_protocol::config` docs).
        #[arg(long, env = "KONTRAKT_CONFIG")]
        config: PathBuf,
    },
    /// Deploy if absent, then serve health, readiness, the contract view and its events.
    Serve {
        #[arg(long, env = "KONTRAKT_CONFIG")]
        config: PathBuf,
    },
    /// Publish a DataStream: deploy the market if absent, register the stream, ingest, anchor
    /// batch roots and serve subscribers (see the `kontrakt_protocol::stream_config` docs).
    Stream {
        #[arg(long, env = "KONTRAKT_STREAM_CONFIG")]
        config: PathBuf,
    },
    /// Buy a DataStream: subscribe and pay, fetch and verify, rate.
    Buy {
        #[command(flatten)]
        account: BuyerAccount,
        #[command(subcommand)]
        action: BuyAction,
    },
}

#[derive(Debug, clap::Args)]
struct BuyerAccount {
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "KONTRAKT_RPC_URL")]
    rpc_url: String,
    /// The chain id the RPC must report.
    #[arg(long, env = "KONTRAKT_CHAIN_ID")]
    chain_id: u64,
    /// File holding the buyer's hex private key.
    #[arg(long, env = "KONTRAKT_KEY_FILE")]
    key_file: PathBuf,
    /// The registry whose market sells the stream (absent: the market without a policy).
    #[arg(long)]
    registry: Option<alloy::primitives::Address>,
}

#[derive(Debug, Subcommand)]
enum BuyAction {
    /// Pay pricePerSecond × seconds for access (extends a running subscription).
    Subscribe {
        #[arg(long)]
        stream_id: alloy::primitives::U256,
        #[arg(long)]
        seconds: u64,
    },
    /// Fetch messages from the publisher and verify each against its anchored root; prints
    /// them as JSON lines; fails on the first message that does not verify.
    Fetch {
        #[arg(long)]
        stream_id: alloy::primitives::U256,
        /// The publisher's base URL (http://host:port).
        #[arg(long)]
        publisher: String,
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// Rate the other side of a finished subscription (1–5).
    Rate {
        #[arg(long)]
        stream_id: alloy::primitives::U256,
        #[arg(long)]
        counterparty: alloy::primitives::Address,
        #[arg(long)]
        score: u8,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line (the library's messages already name their causes), no backtrace.
            tracing::error!(error = %e, "failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Deploy { config } => {
            let config = SidecarConfig::load(&config)?;
            let report = deploy_once(&config).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Serve { config } => {
            let config = SidecarConfig::load(&config)?;
            serve(config, terminated()).await?;
        }
        Command::Stream { config } => {
            let config = StreamConfig::load(&config)?;
            kontrakt_sidecar::stream::publisher::run(config, terminated()).await?;
        }
        Command::Buy { account, action } => buy(account, action).await?,
    }
    Ok(())
}

async fn buy(account: BuyerAccount, action: BuyAction) -> anyhow::Result<()> {
    use kontrakt_protocol::config::{ChainConfig, RetryConfig};
    let key = kontrakt_protocol::key::load_signer(&account.key_file)?;
    let chain = kontrakt_sidecar::chain::Chain::connect(
        &ChainConfig {
            rpc_url: account.rpc_url,
            chain_id: account.chain_id,
            retry: RetryConfig::default(),
        },
        key.clone(),
    )
    .await?;
    let market = kontrakt_protocol::market_address(account.registry.unwrap_or_default());
    let buyer = Buyer::new(chain, key, market);
    match action {
        BuyAction::Subscribe { stream_id, seconds } => {
            let s = buyer.subscribe(stream_id, seconds).await?;
            println!("{}", serde_json::to_string(&s)?);
        }
        BuyAction::Fetch {
            stream_id,
            publisher,
            from,
        } => {
            let (messages, next) = buyer.fetch_verified(&publisher, stream_id, from).await?;
            for m in &messages {
                let line = serde_json::json!({
                    "index": m.index,
                    "batch": m.batch,
                    "root": m.root,
                    "data": String::from_utf8_lossy(&m.data),
                });
                println!("{line}");
            }
            tracing::info!(verified = messages.len(), next, "all messages verified");
        }
        BuyAction::Rate {
            stream_id,
            counterparty,
            score,
        } => buyer.rate(stream_id, counterparty, score).await?,
    }
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")
        {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
