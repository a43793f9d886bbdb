//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! Readiness: ready once the apiserver has answered and this replica either leads or stands
//! by behind a healthy leader. A standby is ready on purpose: it is doing its job (waiting to
//! take over), and an unready standby would block rolling updates of the Deployment.

use crate::leader::Role;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The content type of the OpenMetrics text format `prometheus-client` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Probe {
    metrics: Arc<Metrics>,
    role: watch::Receiver<Role>,
}

/// The routes, reading `metrics` and this replica's `role` (see the module docs for readiness).
pub fn router(metrics: Arc<Metrics>, role: watch::Receiver<Role>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Probe { metrics, role })
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(p): State<Probe>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, p.metrics.registry()) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn readyz(State(p): State<Probe>) -> Response {
    let role = p.role.borrow().clone();
    match role {
        Role::Leader => (StatusCode::OK, "leader").into_response(),
        Role::Standby {
            holder: Some(holder),
        } => (StatusCode::OK, format!("standby (leader: {holder})")).into_response(),
        Role::Standby { holder: None } => (StatusCode::OK, "standby").into_response(),
        Role::Unknown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the apiserver has not answered",
        )
            .into_response(),
        Role::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn app(role: Role) -> (Router, Arc<Metrics>, watch::Sender<Role>) {
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = watch::channel(role);
        (router(metrics.clone(), rx), metrics, tx)
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let (router, metrics, _role) = app(Role::Leader);
        drop(metrics.reconcile("SmartContractService"));
        metrics.failure("SmartContractService", "InvalidSpec");
        let (status, content_type, body) = get(router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains("kontrakt_reconciles_total{kind=\"SmartContractService\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("kontrakt_reconcile_failures_total{"),
            "{body}"
        );
        assert!(body.contains("reason=\"InvalidSpec\""), "{body}");
        assert!(
            body.contains("kontrakt_reconcile_duration_seconds_bucket{"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn healthz_is_ok_whatever_the_role() {
        for role in [Role::Unknown, Role::Stopped, Role::Leader] {
            let (router, _, _role) = app(role);
            assert_eq!(get(router, "/healthz").await.0, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_role() {
        let (router, _, role) = app(Role::Unknown);
        assert_eq!(
            get(router.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );

        role.send_replace(Role::Standby {
            holder: Some("operator-0".into()),
        });
        let (status, _, body) = get(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("operator-0"), "{body}");

        role.send_replace(Role::Leader);
        assert_eq!(get(router.clone(), "/readyz").await.0, StatusCode::OK);

        role.send_replace(Role::Stopped);
        assert_eq!(
            get(router.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let (router, _, _role) = app(Role::Leader);
        assert_eq!(get(router, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
