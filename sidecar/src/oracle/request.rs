//! An on-chain `OracleRequest`: decoded from its log, checked against the commitment the
//! contract stored, and its parameters as name/value pairs.

use alloy::primitives::{B256, Bytes, FixedBytes, keccak256};
use alloy::rpc::types::Log;
use alloy::sol_types::{SolEvent, SolValue};

use kontrakt_protocol::bindings::OracleRequests;

/// One request as its event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleRequest {
    pub id: B256,
    pub endpoint: String,
    pub params: Bytes,
    pub callback: FixedBytes<4>,
    pub deadline: u64,
    /// The gas `fulfil` gives the callback, committed by the request.
    pub callback_gas: u32,
    pub block: u64,
}

impl OracleRequest {
    /// The request in an `OracleRequest` log, if it is one.
    pub fn from_log(log: &Log) -> Option<Self> {
        if log.topic0() != Some(&OracleRequests::OracleRequest::SIGNATURE_HASH) {
            return None;
        }
        let decoded = log.log_decode::<OracleRequests::OracleRequest>().ok()?;
        let e = decoded.inner.data;
        Some(Self {
            id: e.id,
            endpoint: e.endpoint,
            params: e.params,
            callback: e.callback,
            deadline: e.deadline,
            callback_gas: e.callbackGas,
            block: log.block_number.unwrap_or_default(),
        })
    }

    /// The contract's `oracleCommitment(endpoint, params, callback, deadline, callbackGas)`.
    pub fn commitment(&self) -> B256 {
        keccak256(
            (
                self.endpoint.clone(),
                self.params.clone(),
                self.callback,
                self.deadline,
                self.callback_gas,
            )
                .abi_encode_params(),
        )
    }

    /// The parameters: `abi.encode(string[] names, string[] values)`, or none when empty.
    pub fn named_params(&self) -> Result<Vec<(String, String)>, String> {
        if self.params.is_empty() {
            return Ok(Vec::new());
        }
        let (names, values) = <(Vec<String>, Vec<String>)>::abi_decode_params(&self.params)
            .map_err(|e| {
                format!("params are not abi.encode(string[] names, string[] values): {e}")
            })?;
        if names.len() != values.len() {
            return Err(format!(
                "params have {} names but {} values",
                names.len(),
                values.len()
            ));
        }
        if names.iter().any(String::is_empty) {
            return Err("params have an empty name".into());
        }
        Ok(names.into_iter().zip(values).collect())
    }
}

/// Whether a log of the contract answers (or cancels) a request, and which.
pub fn answered_id(log: &Log) -> Option<B256> {
    let topic0 = *log.topic0()?;
    let answers = [
        OracleRequests::OracleFulfilled::SIGNATURE_HASH,
        OracleRequests::OracleCallbackFailed::SIGNATURE_HASH,
        OracleRequests::OracleFailed::SIGNATURE_HASH,
        OracleRequests::OracleCancelled::SIGNATURE_HASH,
    ];
    if answers.contains(&topic0) {
        log.topics().get(1).copied()
    } else {
        None
    }
}

/// The topics the oracle loop reads: requests, and (when resuming) their answers.
pub fn request_topic() -> B256 {
    OracleRequests::OracleRequest::SIGNATURE_HASH
}

pub fn request_and_answer_topics() -> Vec<B256> {
    vec![
        OracleRequests::OracleRequest::SIGNATURE_HASH,
        OracleRequests::OracleFulfilled::SIGNATURE_HASH,
        OracleRequests::OracleCallbackFailed::SIGNATURE_HASH,
        OracleRequests::OracleFailed::SIGNATURE_HASH,
        OracleRequests::OracleCancelled::SIGNATURE_HASH,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(params: Bytes) -> OracleRequest {
        OracleRequest {
            id: B256::ZERO,
            endpoint: "ShipmentCost".into(),
            params,
            callback: FixedBytes([1, 2, 3, 4]),
            deadline: 10,
            callback_gas: 200_000,
            block: 1,
        }
    }

    #[test]
    fn params_are_name_value_pairs() {
        let params =
            (vec!["device".to_owned()], vec!["VerticalPump".to_owned()]).abi_encode_params();
        assert_eq!(
            request(params.into()).named_params().unwrap(),
            vec![("device".to_owned(), "VerticalPump".to_owned())]
        );
        assert_eq!(request(Bytes::new()).named_params().unwrap(), vec![]);
        let uneven = (vec!["a".to_owned()], Vec::<String>::new()).abi_encode_params();
        assert!(request(uneven.into()).named_params().is_err());
        assert!(request(Bytes::from_static(b"junk")).named_params().is_err());
    }
}
