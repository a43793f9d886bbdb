//! Validate: a DataStream plus what it references (read by the caller) → the
//! publisher's [`Plan`], or why not. Pure.

use super::build::Plan;
use crate::api::{DataStream, SmartContractService, StreamSource};
use crate::reconcile::{Invalid, InvalidReason};
use alloy::primitives::{Address, U256};
use kontrakt_protocol::{
    config::{ChainConfig, SignerConfig},
    mounts::{MQTT_DIR, MQTT_FILE, SIDECAR_PORT, SIGNER_DIR, SIGNER_FILE, STREAM_DATA_DIR},
    stream_config::{
        HttpSource, IntegrityConfig, MqttSource, SourceConfig, StreamConfig, StreamTerms,
    },
};
use kube::ResourceExt;

/// What the reconciler read for a DataStream.
pub struct References<'a> {
    /// The seller SmartContractService, if it exists.
    pub seller: Option<&'a SmartContractService>,
    /// The seller's signer Secret value, if it exists.
    pub signer_key: Option<&'a [u8]>,
    /// The registry of `accessPolicyRef` (None: no policy), or why it is unknown.
    pub registry: Result<Option<Address>, Invalid>,
}

pub fn validate(ds: &DataStream, refs: References<'_>) -> Result<Plan, Invalid> {
    let seller_name = &ds.spec.seller.name;
    let seller = refs.seller.ok_or_else(|| {
        Invalid::new(
            InvalidReason::SellerNotFound,
            format!("the seller SmartContractService {seller_name:?} does not exist"),
        )
    })?;
    let key_ref = &seller.spec.signer.secret_key_ref;
    let key = refs.signer_key.ok_or_else(|| {
        Invalid::new(
            InvalidReason::SignerSecretNotFound,
            format!(
                "the seller's signer Secret {:?} with key {:?} not found",
                key_ref.name, key_ref.key
            ),
        )
    })?;
    std::str::from_utf8(key)
        .ok()
        .and_then(kontrakt_protocol::key::parse_signer)
        .ok_or_else(|| {
            Invalid::new(
                InvalidReason::SignerKeyInvalid,
                format!(
                    "the seller's signer Secret {:?} does not hold a private key",
                    key_ref.name
                ),
            )
        })?;
    let rpc_url = seller.spec.chain.rpc_url.clone().ok_or_else(|| {
        Invalid::new(
            InvalidReason::RpcUrlSecretNotSupported,
            "the seller uses chain.rpcUrlSecretRef, which is not supported yet",
        )
    })?;
    let registry = refs.registry?;
    let (source, mqtt_secret) = match &ds.spec.source {
        StreamSource::Http(h) => (
            SourceConfig::from_http(HttpSource {
                url: h.url.clone(),
                interval_seconds: u64::try_from(h.interval_seconds).unwrap_or(10),
            }),
            None,
        ),
        StreamSource::Mqtt(m) => (
            SourceConfig::from_mqtt(MqttSource {
                broker_url: m.broker_url.clone(),
                topic: m.topic.clone(),
                qos: u8::try_from(m.qos).unwrap_or(1),
                credentials_file: m
                    .credentials_secret_ref
                    .as_ref()
                    .map(|_| format!("{MQTT_DIR}/{MQTT_FILE}").into()),
            }),
            m.credentials_secret_ref
                .as_ref()
                .map(|r| (r.name.clone(), r.key.clone())),
        ),
    };
    let config = StreamConfig {
        chain: ChainConfig {
            rpc_url,
            chain_id: u64::try_from(seller.spec.chain.chain_id).unwrap_or_default(),
            retry: Default::default(),
        },
        signer: SignerConfig {
            key_file: format!("{SIGNER_DIR}/{SIGNER_FILE}").into(),
        },
        registry,
        stream: StreamTerms {
            namespace: ds.namespace().unwrap_or_default(),
            name: ds.name_any(),
            price_per_second_wei: U256::from(
                u64::try_from(ds.spec.pricing.price_per_second_wei).unwrap_or_default(),
            ),
            min_duration_seconds: u64::try_from(ds.spec.pricing.min_duration_seconds)
                .unwrap_or_default(),
        },
        source,
        integrity: IntegrityConfig {
            batch_size: u32::try_from(ds.spec.integrity.batch_size).unwrap_or(1),
            max_delay_seconds: u64::try_from(ds.spec.integrity.max_delay_seconds).unwrap_or(60),
        },
        data_dir: STREAM_DATA_DIR.into(),
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], SIDECAR_PORT)),
    };
    config
        .validate()
        .map_err(|e| Invalid::new(InvalidReason::StreamConfigInvalid, e.to_string()))?;
    let rendered = config.to_yaml();
    let hash = alloy::primitives::keccak256(
        [
            rendered.as_bytes(),
            key_ref.name.as_bytes(),
            key_ref.key.as_bytes(),
        ]
        .concat(),
    );
    Ok(Plan {
        config,
        signer_secret: (key_ref.name.clone(), key_ref.key.clone()),
        mqtt_secret,
        config_hash: format!("{hash:x}")[..16].to_owned(),
    })
}
