//! The publisher of a DataStream (`kontrakt-sidecar stream`): ingests messages from an HTTP
//! or MQTT source into an append-only log, batches them into Merkle trees, anchors each
//! root on the `DataMarket`, and serves subscribers the messages with their proofs. Raw data
//! never goes on chain. [`buyer`] is the other side: subscribe, fetch, verify, rate.

pub mod buyer;
pub mod ingest;
pub mod log;
pub mod market;
pub mod merkle;
pub mod publisher;
pub mod server;
