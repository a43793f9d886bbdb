//! Interoperability: the pair's logs decoded by ABI into one general form, CloudEvents 1.0
//! (JSON format), whatever contract emitted them.

use std::collections::HashMap;

use alloy::dyn_abi::{DynSolValue, EventExt};
use alloy::json_abi::{Event, JsonAbi};
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One CloudEvent (structured JSON mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// `<transaction hash>:<log index>`: unique per log.
    pub id: String,
    /// `kontrakt://<chain id>/<emitting contract>`
    pub source: String,
    /// `dev.kontrakt.<Contract>.<Event>`
    #[serde(rename = "type")]
    pub kind: String,
    /// Block time (RFC 3339), when the node reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub datacontenttype: String,
    /// Extension attribute: the block that holds the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocknumber: Option<u64>,
    /// The event's parameters by name (integers as decimal strings, bytes as 0x-hex;
    /// indexed dynamic values are their topic hash).
    pub data: Value,
}

/// Decodes the logs of a set of contracts by their ABIs.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    chain_id: u64,
    /// emitting address → (contract name, events by topic0)
    contracts: HashMap<Address, (String, HashMap<B256, Event>)>,
}

impl EventDecoder {
    /// `only`: event names to publish; empty publishes all.
    pub fn new<'a>(
        chain_id: u64,
        contracts: impl IntoIterator<Item = (Address, &'a str, &'a JsonAbi)>,
        only: &[String],
    ) -> Self {
        let contracts = contracts
            .into_iter()
            .map(|(address, name, abi)| {
                let events = abi
                    .events()
                    .filter(|e| !e.anonymous)
                    .filter(|e| only.is_empty() || only.contains(&e.name))
                    .map(|e| (e.selector(), e.clone()))
                    .collect();
                (address, (name.to_owned(), events))
            })
            .collect();
        Self {
            chain_id,
            contracts,
        }
    }

    /// The addresses whose logs this decoder understands.
    pub fn addresses(&self) -> Vec<Address> {
        let mut a: Vec<Address> = self.contracts.keys().copied().collect();
        a.sort();
        a
    }

    /// The CloudEvent for `log`, or `None` when it is not a (published) event of a known contract.
    pub fn decode(&self, log: &Log) -> Option<CloudEvent> {
        let (contract, events) = self.contracts.get(&log.address())?;
        let topic0 = log.topics().first()?;
        let event = events.get(topic0)?;
        let decoded = event
            .decode_log_parts(log.topics().iter().copied(), &log.data().data)
            .ok()?;
        let (mut indexed, mut body) = (decoded.indexed.into_iter(), decoded.body.into_iter());
        let mut data = Map::new();
        for (i, param) in event.inputs.iter().enumerate() {
            let value = if param.indexed {
                indexed.next()
            } else {
                body.next()
            }?;
            let key = if param.name.is_empty() {
                format!("arg{i}")
            } else {
                param.name.clone()
            };
            data.insert(key, to_json(&value));
        }
        Some(CloudEvent {
            specversion: "1.0".into(),
            id: format!(
                "{}:{}",
                log.transaction_hash.unwrap_or_default(),
                log.log_index.unwrap_or_default()
            ),
            source: format!("kontrakt://{}/{}", self.chain_id, log.address()),
            kind: format!("dev.kontrakt.{contract}.{}", event.name),
            time: log.block_timestamp.map(rfc3339),
            datacontenttype: "application/json".into(),
            blocknumber: log.block_number,
            data: Value::Object(data),
        })
    }
}

fn to_json(v: &DynSolValue) -> Value {
    match v {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, _) => Value::String(i.to_string()),
        DynSolValue::Uint(u, _) => Value::String(u.to_string()),
        DynSolValue::Address(a) => Value::String(a.to_checksum(None)),
        DynSolValue::Function(f) => Value::String(f.to_string()),
        DynSolValue::FixedBytes(w, n) => {
            Value::String(format!("0x{}", alloy::hex::encode(&w[..*n])))
        }
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", alloy::hex::encode(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) | DynSolValue::Tuple(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        #[allow(unreachable_patterns)]
        other => Value::String(format!("{other:?}")),
    }
}

/// Unix seconds → `YYYY-MM-DDThh:mm:ssZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{LogData, U256, address};
    use kontrakt_protocol::artifact::Artifact;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_763_790_000), "2025-11-22T05:40:00Z");
    }

    #[test]
    fn decodes_a_record_put_into_a_cloudevent() {
        let store = Artifact::builtin("RecordStore").unwrap();
        let at = address!("00000000000000000000000000000000000000cc");
        let decoder = EventDecoder::new(31337, [(at, "RecordStore", &store.abi)], &[]);
        let event = store.abi.event("RecordPut").unwrap()[0].clone();
        let log = Log {
            inner: alloy::primitives::Log {
                address: at,
                data: LogData::new_unchecked(
                    vec![
                        event.selector(),
                        U256::from(7).into(),
                        Address::repeat_byte(0xd1).into_word(),
                    ],
                    [U256::from(42), U256::from(1_700_000_000u64), U256::from(1)]
                        .iter()
                        .flat_map(|w| w.to_be_bytes_vec())
                        .collect::<Vec<u8>>()
                        .into(),
                ),
            },
            transaction_hash: Some(B256::repeat_byte(0xab)),
            log_index: Some(3),
            block_number: Some(9),
            block_timestamp: Some(0),
            ..Log::default()
        };
        let ce = decoder.decode(&log).unwrap();
        assert_eq!(ce.kind, "dev.kontrakt.RecordStore.RecordPut");
        assert_eq!(ce.source, format!("kontrakt://31337/{at}"));
        assert!(ce.id.ends_with(":3"));
        assert_eq!(ce.data["id"], "7");
        assert_eq!(ce.data["value"], "42");
        assert_eq!(ce.data["timestamp"], "1700000000");
        assert_eq!(ce.time.as_deref(), Some("1970-01-01T00:00:00Z"));

        let filtered = EventDecoder::new(
            31337,
            [(at, "RecordStore", &store.abi)],
            &["Retired".into()],
        );
        assert!(filtered.decode(&log).is_none());
    }
}
