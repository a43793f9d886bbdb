//! The publisher's configuration file (`kontrakt-sidecar stream --config F`): THE format the
//! operator renders from a DataStream into a ConfigMap.
//!
//! One YAML (or JSON) document, `camelCase` keys, unknown keys rejected:
//!
//! ```yaml
//! chain:
//!   rpcUrl: http://anvil.chains.svc:8545   # as in the sidecar config
//!   chainId: 31337
//! signer:
//!   keyFile: /var/run/kontrakt/signer/key  # the seller's key (mounted Secret)
//! registry: "0x00000000000000000000000000000000000000e1"   # optional EnrollmentRegistry: the
//!                                          # market is market_address(registry), else market_address(0)
//! stream:
//!   namespace: default                     # with `name`: the stream key on the market
//!   name: temperature
//!   pricePerSecondWei: "1000000000"        # decimal string (or integer), >= 1
//!   minDurationSeconds: 60                 # >= 1
//! source:                                  # exactly one of http / mqtt
//!   http:
//!     url: http://sensor.iot.svc/reading   # each JSON response is one message
//!     intervalSeconds: 5                   # >= 1
//!   # mqtt:
//!   #   brokerUrl: mqtt://mosquitto.iot.svc:1883
//!   #   topic: sensors/temperature
//!   #   qos: 1                             # 0 | 1 | 2
//!   #   credentialsFile: /var/run/kontrakt/mqtt/credentials   # optional, "user:password"
//! integrity:
//!   batchSize: 1000                        # a root is anchored after this many messages ...
//!   maxDelaySeconds: 30                    # ... or this long after a batch's first message
//! dataDir: /var/lib/kontrakt/stream        # the append-only message log (a persistent volume)
//! listen: 0.0.0.0:8080                     # optional, this is the default
//! ```
//!
//! Addresses must be quoted (YAML reads an unquoted `0x…` as an integer).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ChainConfig, ConfigError, SignerConfig, default_listen};

/// The whole publisher configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamConfig {
    pub chain: ChainConfig,
    pub signer: SignerConfig,
    /// The `EnrollmentRegistry` the market checks (absent: the market without a policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Address>,
    pub stream: StreamTerms,
    pub source: SourceConfig,
    pub integrity: IntegrityConfig,
    /// Directory of the append-only message log; must survive a restart.
    pub data_dir: PathBuf,
    /// Where the subscriber API, health and metrics listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

/// What the stream is and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamTerms {
    /// Namespace of the DataStream (part of the stream key).
    pub namespace: String,
    /// Name of the DataStream (part of the stream key).
    pub name: String,
    /// Price of one second of access in wei (a decimal string; an integer up to u64 is accepted).
    #[serde(
        serialize_with = "wei_to_string",
        deserialize_with = "wei_from_string_or_number"
    )]
    pub price_per_second_wei: U256,
    /// Shortest subscription in seconds.
    pub min_duration_seconds: u64,
}

impl StreamTerms {
    /// The key this stream is registered under on the market.
    pub fn key(&self) -> B256 {
        crate::addresses::stream_key(&self.namespace, &self.name)
    }
}

fn wei_to_string<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn wei_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wei {
        Text(String),
        Number(u64),
    }
    match Wei::deserialize(d)? {
        Wei::Number(n) => Ok(U256::from(n)),
        Wei::Text(t) => U256::from_str_radix(t.trim(), 10).map_err(|_| {
            serde::de::Error::custom(format!("pricePerSecondWei {t:?} is not a decimal integer"))
        }),
    }
}

/// Where the messages come from: exactly one of `http` and `mqtt` (a map with one key, not
/// a YAML tag, so the operator can render it as plain YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    /// Poll a URL; each JSON response body is one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// Subscribe to an MQTT topic; each JSON payload is one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSource>,
}

/// The one configured source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Http(&'a HttpSource),
    Mqtt(&'a MqttSource),
}

impl SourceConfig {
    pub fn from_http(source: HttpSource) -> Self {
        Self {
            http: Some(source),
            mqtt: None,
        }
    }

    pub fn from_mqtt(source: MqttSource) -> Self {
        Self {
            http: None,
            mqtt: Some(source),
        }
    }

    /// The source, when exactly one is set.
    pub fn kind(&self) -> Result<Source<'_>, ConfigError> {
        match (&self.http, &self.mqtt) {
            (Some(h), None) => Ok(Source::Http(h)),
            (None, Some(m)) => Ok(Source::Mqtt(m)),
            _ => Err(ConfigError::Invalid(
                "source: set exactly one of http and mqtt".into(),
            )),
        }
    }
}

/// An HTTP endpoint polled at an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSource {
    pub url: String,
    pub interval_seconds: u64,
}

/// An MQTT topic on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MqttSource {
    /// `mqtt://host:port` (plain TCP; port 1883 when absent).
    pub broker_url: String,
    pub topic: String,
    #[serde(default)]
    pub qos: u8,
    /// A mounted file holding `user:password` (never inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

impl MqttSource {
    /// Host and port of `brokerUrl`.
    pub fn broker(&self) -> Result<(String, u16), ConfigError> {
        let bad = || {
            ConfigError::Invalid(format!(
                "source.mqtt.brokerUrl {:?} must be mqtt://host[:port]",
                self.broker_url
            ))
        };
        let url = url::Url::parse(&self.broker_url).map_err(|_| bad())?;
        if url.scheme() != "mqtt" {
            return Err(bad());
        }
        let host = url.host_str().ok_or_else(bad)?.to_owned();
        Ok((host, url.port().unwrap_or(1883)))
    }
}

/// When a batch is closed and its root anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrityConfig {
    /// Messages per batch (1..=4,294,967,295: the contract counts them in a uint32).
    pub batch_size: u32,
    /// Longest wait between a batch's first message and its anchoring.
    pub max_delay_seconds: u64,
}

impl IntegrityConfig {
    pub fn max_delay(&self) -> Duration {
        Duration::from_secs(self.max_delay_seconds)
    }
}

impl StreamConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = crate::config::read_yaml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the config as YAML (what the operator writes into the ConfigMap).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("the config is always serialisable")
    }

    /// The market this publisher sells on.
    pub fn market(&self) -> Address {
        crate::addresses::market_address(self.registry.unwrap_or(Address::ZERO))
    }

    /// Checks what serde cannot: positive amounts, URL forms, names usable in the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let s = &self.stream;
        if s.namespace.is_empty() || s.name.is_empty() {
            return invalid("stream.namespace and stream.name must not be empty".into());
        }
        if s.namespace.contains('/') || s.name.contains('/') {
            return invalid("stream.namespace and stream.name must not contain '/'".into());
        }
        if s.price_per_second_wei.is_zero() {
            return invalid("stream.pricePerSecondWei must be >= 1".into());
        }
        if s.min_duration_seconds == 0 {
            return invalid("stream.minDurationSeconds must be >= 1".into());
        }
        if self.integrity.batch_size == 0 {
            return invalid("integrity.batchSize must be >= 1".into());
        }
        if self.integrity.max_delay_seconds == 0 {
            return invalid("integrity.maxDelaySeconds must be >= 1".into());
        }
        if !(self.chain.rpc_url.starts_with("http://")
            || self.chain.rpc_url.starts_with("https://"))
        {
            return invalid("chain.rpcUrl must be an http:// or https:// URL".into());
        }
        if self.chain.retry.max_attempts == 0 {
            return invalid("chain.retry.maxAttempts must be >= 1".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("dataDir must not be empty".into());
        }
        match self.source.kind()? {
            Source::Http(h) => {
                match url::Url::parse(&h.url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => {
                        return invalid(format!(
                            "source.http.url {:?} must be an http(s) URL",
                            h.url
                        ));
                    }
                }
                if h.interval_seconds == 0 {
                    return invalid("source.http.intervalSeconds must be >= 1".into());
                }
            }
            Source::Mqtt(m) => {
                m.broker()?;
                if m.topic.is_empty() {
                    return invalid("source.mqtt.topic must not be empty".into());
                }
                if m.qos > 2 {
                    return invalid(format!("source.mqtt.qos {} must be 0, 1 or 2", m.qos));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &str = r#"
chain:
  rpcUrl: http://127.0.0.1:8545
  chainId: 31337
signer:
  keyFile: /var/run/key
registry: "0x00000000000000000000000000000000000000bb"
stream:
  namespace: default
  name: temperature
  pricePerSecondWei: "340282366920938463463374607431768211456"
  minDurationSeconds: 60
source:
  http:
    url: http://sensor/reading
    intervalSeconds: 5
integrity:
  batchSize: 1000
  maxDelaySeconds: 30
dataDir: /var/lib/kontrakt/stream
listen: 127.0.0.1:9000
"#;

    #[test]
    fn config_round_trips_and_validates() {
        let c: StreamConfig = serde_yaml::from_str(HTTP).unwrap();
        c.validate().unwrap();
        // Larger than u128: the decimal string keeps every digit.
        assert_eq!(
            c.stream.price_per_second_wei,
            U256::from(u128::MAX) + U256::from(1)
        );
        let back: StreamConfig = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            c.market(),
            crate::addresses::market_address(
                "0x00000000000000000000000000000000000000bb"
                    .parse()
                    .unwrap()
            )
        );
        assert_eq!(
            c.stream.key(),
            alloy::primitives::keccak256(b"kontrakt/stream/default/temperature")
        );
        let mqtt = HTTP.replace(
            "  http:\n    url: http://sensor/reading\n    intervalSeconds: 5",
            "  mqtt:\n    brokerUrl: mqtt://broker:1884\n    topic: t\n    qos: 1",
        );
        let m: StreamConfig = serde_yaml::from_str(&mqtt).unwrap();
        m.validate().unwrap();
        let Ok(Source::Mqtt(src)) = m.source.kind() else {
            panic!("mqtt")
        };
        assert_eq!(src.broker().unwrap(), ("broker".to_owned(), 1884));
        let numeric = HTTP.replace("\"340282366920938463463374607431768211456\"", "1000");
        let n: StreamConfig = serde_yaml::from_str(&numeric).unwrap();
        assert_eq!(n.stream.price_per_second_wei, U256::from(1000));
    }

    #[test]
    fn bad_values_are_refused_with_the_field_name() {
        let refuse = |from: &str, to: &str, field: &str| {
            let c: StreamConfig = serde_yaml::from_str(&HTTP.replace(from, to)).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        };
        refuse(
            "\"340282366920938463463374607431768211456\"",
            "\"0\"",
            "pricePerSecondWei",
        );
        refuse("batchSize: 1000", "batchSize: 0", "batchSize");
        refuse(
            "maxDelaySeconds: 30",
            "maxDelaySeconds: 0",
            "maxDelaySeconds",
        );
        refuse(
            "minDurationSeconds: 60",
            "minDurationSeconds: 0",
            "minDurationSeconds",
        );
        refuse(
            "intervalSeconds: 5",
            "intervalSeconds: 0",
            "intervalSeconds",
        );
        refuse(
            "url: http://sensor/reading",
            "url: ftp://sensor",
            "source.http.url",
        );
        assert!(
            serde_yaml::from_str::<StreamConfig>(&HTTP.replace("listen:", "surprise: 1\nlisten:"))
                .is_err()
        );
        let both = HTTP.replace(
            "    intervalSeconds: 5",
            "    intervalSeconds: 5\n  mqtt:\n    brokerUrl: mqtt://b\n    topic: t",
        );
        let c: StreamConfig = serde_yaml::from_str(&both).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        assert!(
            serde_yaml::from_str::<StreamConfig>(
                &HTTP.replace("\"340282366920938463463374607431768211456\"", "\"12abc\"")
            )
            .is_err()
        );
    }
}
