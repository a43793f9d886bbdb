//! `kontrakt-operator`: the operator binary (thin: flags, logging, signals, leadership).

use anyhow::Context as _;
use clap::Parser;
use kontrakt_operator::config::OperatorConfig;
use kontrakt_operator::context::Context;
use kontrakt_operator::leader::{LeaderElection, Leadership, Role};
use kontrakt_operator::metrics::Metrics;
use kontrakt_operator::{http, telemetry};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// How long to wait between attempts to reach the apiserver without leader election.
const APISERVER_RETRY: Duration = Duration::from_secs(2);

/// Why the operator stopped.
enum Exit {
    /// SIGTERM/SIGINT: everything stopped in order.
    Terminated,
    /// The Lease was lost: exit non-zero so the pod restarts as a standby.
    LeaseLost,
    /// The controller stopped on its own (a bug).
    ControllerStopped,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = OperatorConfig::parse();
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = telemetry::init(config.log_format, &config.log_filter) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(Exit::Terminated) => ExitCode::SUCCESS,
        Ok(Exit::LeaseLost | Exit::ControllerStopped) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: OperatorConfig) -> anyhow::Result<Exit> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), listen = %config.listen, leader_election = config.leader_election, identity = %config.identity, "starting");
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let metrics = Arc::new(Metrics::default());
    let ctx = Context::new(client.clone(), metrics.clone(), config.settings());

    let (terminate, mut terminated) = watch::channel(false);
    tokio::spawn(async move {
        signalled().await;
        let _ = terminate.send(true);
    });

    let election = config
        .lease()
        .map(|lease| LeaderElection::new(client.clone(), lease));
    // Without leader election this replica's role is ours to set.
    let (standalone_role, _) = watch::channel(Role::Unknown);
    let role = election
        .as_ref()
        .map_or_else(|| standalone_role.subscribe(), LeaderElection::role);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        http::router(metrics, role),
        async move {
            let _ = http_stopped.await;
        },
    ));

    let leadership = tokio::select! {
        l = lead(election.as_ref(), &client, &standalone_role) => l,
        _ = terminated.wait_for(|t| *t) => {
            tracing::info!("terminated before leading");
            return stop_server(stop_http, server, Exit::Terminated).await;
        }
    };

    tracing::info!("starting the controllers");
    let (stop_controller, controller_stopped) = oneshot::channel::<()>();
    let mut controller = tokio::spawn(kontrakt_operator::run_controllers(ctx, async move {
        let _ = controller_stopped.await;
    }));

    let exit = tokio::select! {
        _ = terminated.wait_for(|t| *t) => {
            tracing::info!("terminating: stopping the controllers");
            let _ = stop_controller.send(());
            // Keep renewing while in-flight reconciles finish, but never write without the Lease.
            tokio::select! {
                r = &mut controller => log_controller_end(r),
                role = lost(leadership.as_ref()) => {
                    tracing::error!(?role, "lease lost while stopping; aborting the controllers");
                    controller.abort();
                    log_controller_end(controller.await);
                }
            }
            Exit::Terminated
        }
        role = lost(leadership.as_ref()) => {
            tracing::error!(?role, "lease lost; stopping the controllers and exiting to restart as a standby");
            controller.abort();
            // Wait for the abort to take effect: no write may follow the loss.
            log_controller_end(controller.await);
            Exit::LeaseLost
        }
        r = &mut controller => {
            log_controller_end(r);
            tracing::error!("the controllers stopped on their own");
            Exit::ControllerStopped
        }
    };

    match leadership {
        Some(leadership) if !matches!(exit, Exit::LeaseLost) => {
            if let Err(e) = leadership.release().await {
                tracing::warn!(error = %e, "could not release the lease; a standby takes over when it expires");
            }
        }
        _ => {}
    }
    standalone_role.send_replace(Role::Stopped);
    stop_server(stop_http, server, exit).await
}

/// Waits until this replica may run the controllers: holds the Lease, or (without leader
/// election) has reached the apiserver.
async fn lead(
    election: Option<&LeaderElection>,
    client: &kube::Client,
    role: &watch::Sender<Role>,
) -> Option<Leadership> {
    if let Some(election) = election {
        tracing::info!(identity = election.identity(), "waiting for the lease");
        return Some(election.acquire().await);
    }
    loop {
        match client.apiserver_version().await {
            Ok(v) => {
                tracing::info!(apiserver = %v.git_version, "connected to the apiserver");
                role.send_replace(Role::Leader);
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the apiserver does not answer; retrying");
                tokio::time::sleep(APISERVER_RETRY).await;
            }
        }
    }
}

/// Resolves when `leadership` is lost; never without leader election.
async fn lost(leadership: Option<&Leadership>) -> Role {
    match leadership {
        Some(l) => l.lost().await,
        None => std::future::pending().await,
    }
}

fn log_controller_end(r: Result<(), tokio::task::JoinError>) {
    match r {
        Ok(()) => tracing::info!("the controllers stopped"),
        Err(e) if e.is_panic() => tracing::error!(error = %e, "the controllers panicked"),
        Err(e) => tracing::info!(error = %e, "the controllers were aborted"),
    }
}

async fn stop_server(
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    exit: Exit,
) -> anyhow::Result<Exit> {
    let _ = stop.send(());
    server
        .await
        .context("the HTTP server task")?
        .context("the HTTP server")?;
    tracing::info!("stopped");
    Ok(exit)
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
        _ = ctrl_c => tracing::info!("SIGINT"),
        _ = term => tracing::info!("SIGTERM"),
    }
}
