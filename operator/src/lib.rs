//! The kontrakt operator: CRD types ([`api`]) and one controller per kind.
//!
//! Each controller folder is a pipeline: dereference (reads) → validate (pure)
//! → build (pure) → apply (server-side apply of owned objects) → status (from
//! observation); what they share is the [`reconcile`] kit.

pub mod access_policy;
pub mod api;
pub mod config;
pub mod context;
pub mod data_stream;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod smart_contract_service;
pub mod telemetry;
pub mod workload;

/// Runs every controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run_controllers(
    ctx: std::sync::Arc<context::Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use futures::FutureExt;
    let shutdown = shutdown.shared();
    futures::join!(
        smart_contract_service::run(ctx.clone(), shutdown.clone()),
        access_policy::run(ctx.clone(), shutdown.clone()),
        data_stream::run(ctx, shutdown),
    );
}
