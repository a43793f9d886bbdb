//! `kontrakt-sidecar`: the contract sidecar binary (thin: parsing, logging, signals).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kontrakt_sidecar::SidecarConfig;
use kontrakt_sidecar::service::{deploy_once, serve};

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
        /// The sidecar config file (see the `kontrakt_sidecar::config` docs).
        #[arg(long, env = "KONTRAKT_CONFIG")]
        config: PathBuf,
    },
    /// Deploy if absent, then serve health, readiness, the contract view and its events.
    Serve {
        #[arg(long, env = "KONTRAKT_CONFIG")]
        config: PathBuf,
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
