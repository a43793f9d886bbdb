//! `DataStream` (`dstream`): an IoT data product sold on the marketplace — the
//! seller's publisher ingests messages, anchors Merkle roots of batches on
//! chain and serves paying subscribers with proofs.

// Each `printcolumn(..)` in `#[kube(..)]` repeats `type_ = ..`; clippy reads the
// repeats as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data stream sold on the DataMarket contract.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kontrakt.dev",
    version = "v1alpha1",
    kind = "DataStream",
    plural = "datastreams",
    singular = "datastream",
    shortname = "dstream",
    category = "kontrakt",
    namespaced,
    status = "DataStreamStatus",
    doc = "An IoT data stream sold on the on-chain data marketplace: messages are batched into Merkle trees whose roots are anchored on chain, and served with proofs to paying subscribers.",
    printcolumn(
        name = "Seller",
        type_ = "string",
        json_path = ".spec.seller.name",
        description = "SmartContractService selling the stream"
    ),
    printcolumn(
        name = "Stream",
        type_ = "string",
        json_path = ".status.streamId",
        description = "Stream id on the market"
    ),
    printcolumn(
        name = "Batches",
        type_ = "integer",
        json_path = ".status.anchoredBatches",
        description = "Batches anchored on chain"
    ),
    printcolumn(
        name = "Subscribers",
        type_ = "integer",
        json_path = ".status.activeSubscribers",
        description = "Subscriptions paid and not expired"
    ),
    printcolumn(
        name = "Receiving",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Receiving\")].status",
        description = "Receiving condition: batches anchored as often as expected"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DataStreamSpec {
    /// The SmartContractService whose signer sells the stream. Immutable: the
    /// stream is registered on chain under the seller's address.
    #[x_kube(validation = Rule::new(IMMUTABLE_RULE).message("seller is immutable"))]
    pub seller: LocalObjectRef,
    /// Where the messages come from.
    pub source: StreamSource,
    /// What a subscription costs.
    pub pricing: Pricing,
    /// How messages are batched and anchored.
    #[serde(default)]
    pub integrity: Integrity,
    /// The AccessPolicy that must enroll a buyer as Subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy_ref: Option<LocalObjectRef>,
    /// Where the publisher keeps its message log. Without it, an emptyDir: the
    /// log survives restarts of the publisher's container but not a new pod
    /// (rescheduling, eviction, deletion), which loses the messages not yet
    /// anchored and can no longer serve the anchored ones. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(IMMUTABLE_RULE).message("storage is immutable: a new volume would start an empty log"))]
    pub storage: Option<LogStorage>,
}

/// A PersistentVolumeClaim for the publisher's message log (owned by the
/// DataStream: deleted with it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogStorage {
    /// Requested size, e.g. `1Gi` (a 200-byte message takes ~210 bytes).
    pub size: k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    /// StorageClass of the claim; absent: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// The source of a stream's messages: exactly one of `http` or `mqtt`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StreamSource {
    /// Poll an HTTP endpoint at an interval.
    Http(HttpSource),
    /// Subscribe to an MQTT topic.
    Mqtt(MqttSource),
}

/// A device or service polled over HTTP.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// URL polled with GET (http or https); each JSON response is one message.
    #[schemars(length(max = URL_MAX_LEN))]
    #[x_kube(validation = Rule::new(HTTP_URL_RULE).message(HTTP_URL_MESSAGE))]
    pub url: String,
    /// Seconds between polls.
    #[serde(default = "default_interval_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: i32,
}

fn default_interval_seconds() -> i32 {
    10
}

/// An MQTT topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttSource {
    /// Broker URL (`mqtt://host:port` or `mqtts://host:port`).
    #[schemars(length(max = URL_MAX_LEN))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['mqtt', 'mqtts'] && url(self).getHost() != ''").message("must be an mqtt:// or mqtts:// URL"))]
    pub broker_url: String,
    /// Topic filter to subscribe to.
    #[schemars(length(min = 1, max = 1024))]
    pub topic: String,
    /// MQTT quality of service (0, 1 or 2).
    #[serde(default = "default_qos")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: i32,
    /// Secret key holding `username:password` for the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

fn default_qos() -> i32 {
    1
}

/// Price of a subscription, paid in the chain's native token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// Price of one second of access, in wei. Must be positive.
    #[schemars(range(min = 1))]
    pub price_per_second_wei: i64,
    /// Shortest subscription that can be bought, in seconds. Must be positive.
    #[schemars(range(min = 1))]
    pub min_duration_seconds: i64,
}

/// Batching of messages into Merkle trees whose roots are anchored on chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integrity {
    /// Messages per batch (a root is anchored when a batch is full...).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: i32,
    /// ...or when its oldest message has waited this many seconds.
    #[serde(default = "default_max_delay_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_delay_seconds: i32,
}

fn default_batch_size() -> i32 {
    1000
}
fn default_max_delay_seconds() -> i32 {
    60
}

impl Default for Integrity {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            max_delay_seconds: default_max_delay_seconds(),
        }
    }
}

/// Observed state of a DataStream, read from the chain and the publisher.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataStreamStatus {
    /// Conditions: Registered, Receiving and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Id of the stream on the DataMarket contract (decimal uint256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// Number of batches whose root is anchored on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchored_batches: Option<i64>,
    /// Merkle root of the last anchored batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_root: Option<String>,
    /// When the last batch was anchored (its block's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_anchored_at: Option<Time>,
    /// Subscriptions paid and not expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_subscribers: Option<i64>,
    /// Total paid by subscribers, in wei (decimal uint256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_wei: Option<String>,
}
