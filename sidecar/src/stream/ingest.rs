//! The stream's sources: HTTP polling (each JSON response body is one message) and an MQTT
//! topic (each JSON payload is one message). A failing source never stops the publisher: the
//! failure is counted and shown in the status (`source.online: false`, `offlineSince`,
//! `lastError`) until the source answers again.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::log::MAX_MESSAGE_BYTES;
use super::publisher::{Rejected, Stream};
use kontrakt_protocol::stream_config::{HttpSource, MqttSource, Source, SourceConfig};

/// Runs the configured source until `shutdown`.
pub async fn run_source(
    source: SourceConfig,
    stream: Arc<Stream>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    match source.kind() {
        Ok(Source::Http(h)) => poll_http(h.clone(), stream, shutdown).await,
        Ok(Source::Mqtt(m)) => subscribe_mqtt(m.clone(), stream, shutdown).await,
        Err(e) => stream.source_failed(e.to_string()),
    }
}

/// Offers one message to the stream; true when it is settled (logged, or rejected for good).
fn accept(stream: &Stream, bytes: &[u8], from: &str) -> bool {
    match stream.accept(bytes) {
        Ok(_) => true,
        Err(Rejected::Malformed(reason)) => {
            tracing::warn!(%from, %reason, bytes = bytes.len(), "malformed message rejected");
            true
        }
        Err(Rejected::Log(e)) => {
            // The log is the publisher's memory: failing to write it must be loud.
            tracing::error!(%from, error = %e, "cannot append to the message log");
            false
        }
    }
}

/// Polls `source.url` every `intervalSeconds`.
pub async fn poll_http(
    source: HttpSource,
    stream: Arc<Stream>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let interval = Duration::from_secs(source.interval_seconds);
    let client = reqwest::Client::builder()
        .timeout(interval.clamp(Duration::from_secs(1), Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a static client configuration");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match fetch(&client, &source.url).await {
            Ok(body) => {
                stream.source_ok();
                accept(&stream, &body, &source.url);
            }
            Err(e) => stream.source_failed(format!("GET {}: {e}", source.url)),
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_MESSAGE_BYTES as u64)
    {
        return Err(format!("response larger than {MAX_MESSAGE_BYTES} bytes"));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok(body.to_vec())
}

/// Subscribes to `source.topic`, reconnecting with backoff while the broker is unreachable.
pub async fn subscribe_mqtt(
    source: MqttSource,
    stream: Arc<Stream>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (host, port) = match source.broker() {
        Ok(b) => b,
        Err(e) => {
            stream.source_failed(e.to_string());
            return;
        }
    };
    // A stable id and a persistent session: with QoS ≥ 1 the broker keeps what arrives while
    // the publisher is down and redelivers every message not acknowledged. Acks are manual
    // and sent only after the message is in the log (or rejected), so a crash between
    // receiving and appending loses nothing: the broker sends it again.
    let client_id = format!("kontrakt-stream-{}", stream.stream_id);
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(10));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_max_packet_size(MAX_MESSAGE_BYTES + 1024, MAX_MESSAGE_BYTES + 1024);
    if let Some(file) = &source.credentials_file {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let text = text.trim();
                let (user, password) = text.split_once(':').unwrap_or((text, ""));
                options.set_credentials(user, password);
            }
            Err(e) => stream.source_failed(format!(
                "cannot read MQTT credentials file {}: {e}",
                file.display()
            )),
        }
    }
    let qos = match source.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let (client, mut events) = AsyncClient::new(options, 1024);
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => {
                let _ = client.disconnect().await;
                return;
            }
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // (Re)subscribe on every connection: a clean session forgets subscriptions.
                if let Err(e) = client.subscribe(&source.topic, qos).await {
                    stream.source_failed(format!("subscribe {}: {e}", source.topic));
                }
                backoff = Duration::from_millis(100);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => stream.source_ok(),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !accept(&stream, &p.payload, &source.topic) {
                    continue; // unacknowledged: redelivered after a reconnect
                }
                // Non-blocking: the request queue is drained by this same loop.
                if let Err(e) = client.try_ack(&p) {
                    tracing::warn!(topic = %source.topic, error = %e, "cannot acknowledge an MQTT message; the broker will redeliver it");
                }
            }
            Ok(_) => {}
            Err(e) => {
                stream.source_failed(format!("MQTT broker {}: {e}", source.broker_url));
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
