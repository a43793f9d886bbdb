//! Simulated IoT devices on loopback HTTP: what the demo's oracle endpoint and
//! DataStream source point at. Plain HTTP/1.1, one answer per connection, so
//! that the sidecar's real HTTP client is what talks to them.

use serde_json::json;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

/// A running device; stops when dropped.
pub struct Device {
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Device {
    /// Answers served so far (requests for the device's own path only).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// A device-cost service on `addr` (port 0: any free one): `GET <path>?device=<name>`
    /// answers `{"device": name, "cost": cost}`; anything else 404.
    pub async fn shipment_cost(
        addr: SocketAddr,
        path: &'static str,
        cost: u64,
    ) -> std::io::Result<Device> {
        Self::serve(addr, move |target, _| {
            let device = target.strip_prefix(path)?.strip_prefix("?device=")?;
            Some(json!({ "device": device, "cost": cost }))
        })
        .await
    }

    /// A pump's telemetry on `addr`: each `GET <path>` answers the next reading.
    pub async fn pump_sensor(addr: SocketAddr, path: &'static str) -> std::io::Result<Device> {
        Self::serve(addr, move |target, n| {
            (target == path)
                .then(|| json!({ "pump": "VerticalPump-7", "reading": n, "bar": 3 + n % 4 }))
        })
        .await
    }

    /// Serves `answer(request target, answers so far)`; `None` is a 404.
    async fn serve(
        addr: SocketAddr,
        answer: impl Fn(&str, u64) -> Option<serde_json::Value> + Send + Sync + 'static,
    ) -> std::io::Result<Device> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let answer = Arc::new(answer);
        let count = served.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (answer, count) = (answer.clone(), count.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let target = request
                        .strip_prefix("GET ")
                        .and_then(|r| r.split(' ').next())
                        .unwrap_or_default();
                    let body = answer(target, count.load(Ordering::SeqCst));
                    if body.is_some() {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let (status, body) = match body {
                        Some(b) => ("200 OK", b.to_string()),
                        None => ("404 Not Found", "{}".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Ok(Device { addr, served, task })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}
