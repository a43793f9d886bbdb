//! From an endpoint's JSON response to the bytes `fulfil` passes to the contract's callback:
//! the value at the endpoint's `resultPath`, converted to the callback's ABI parameter types.

use std::str::FromStr;

use alloy::dyn_abi::{DynSolType, DynSolValue, Specifier};
use alloy::json_abi::{Function, JsonAbi, Param};
use alloy::primitives::{Address, B256, Bytes, FixedBytes, I256, U256};
use serde_json::Value;

/// The callback a request names, as the contract's ABI declares it.
#[derive(Debug, Clone)]
pub struct Callback {
    pub function: Function,
    /// The parameters after the request id.
    results: Vec<Param>,
    types: Vec<DynSolType>,
}

/// Why a callback selector cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("no function with selector {0} in the contract's ABI")]
    Unknown(String),
    #[error("callback {0} must take (bytes32 requestId, ...) with at least one result parameter")]
    Shape(String),
}

impl Callback {
    /// Looks up `selector` in `abi`: a function `(bytes32 requestId, T1, ...)`.
    pub fn find(abi: &JsonAbi, selector: [u8; 4]) -> Result<Self, CallbackError> {
        let function = abi
            .functions()
            .find(|f| f.selector() == selector)
            .ok_or_else(|| CallbackError::Unknown(alloy::hex::encode_prefixed(selector)))?;
        let shape = || CallbackError::Shape(function.signature());
        let (first, results) = function.inputs.split_first().ok_or_else(shape)?;
        if first.ty != "bytes32" || results.is_empty() {
            return Err(shape());
        }
        let types = results
            .iter()
            .map(|p| p.resolve())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| shape())?;
        Ok(Self {
            function: function.clone(),
            results: results.to_vec(),
            types,
        })
    }

    /// Converts the selected JSON value to the callback's result parameters: one parameter
    /// takes the value itself; several take a JSON array (in order) or an object (by name).
    pub fn convert(&self, value: &Value) -> Result<Vec<DynSolValue>, WrongType> {
        if let [param] = self.results.as_slice() {
            return Ok(vec![convert(
                &self.types[0],
                &param.components,
                value,
                &param.name,
            )?]);
        }
        let items: Vec<&Value> = match value {
            Value::Array(items) if items.len() == self.results.len() => items.iter().collect(),
            Value::Object(map) => self
                .results
                .iter()
                .map(|p| {
                    map.get(&p.name)
                        .ok_or_else(|| WrongType(format!("no member {:?} in the object", p.name)))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(WrongType(format!(
                    "expected an array of {} values or an object with members {:?}",
                    self.results.len(),
                    self.results.iter().map(|p| &p.name).collect::<Vec<_>>()
                )));
            }
        };
        self.results
            .iter()
            .zip(&self.types)
            .zip(items)
            .map(|((p, ty), v)| convert(ty, &p.components, v, &p.name))
            .collect()
    }
}

/// `fulfil`'s `result`: `abi.encode(id, values...)` without its first word, so that
/// `abi.encodePacked(selector, id, result)` is exactly the callback's calldata.
pub fn encode_result(id: B256, values: Vec<DynSolValue>) -> Bytes {
    let mut all = Vec::with_capacity(values.len() + 1);
    all.push(DynSolValue::FixedBytes(id, 32));
    all.extend(values);
    let encoded = DynSolValue::Tuple(all).abi_encode_params();
    Bytes::copy_from_slice(&encoded[32..])
}

/// The JSON value does not convert to the callback's parameter type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WrongType(pub String);

fn convert(
    ty: &DynSolType,
    components: &[Param],
    v: &Value,
    what: &str,
) -> Result<DynSolValue, WrongType> {
    let wrong = || {
        let mut shown = v.to_string();
        if shown.len() > 64 {
            shown.truncate(64);
            shown.push('…');
        }
        WrongType(format!("{what}: {shown} is not a valid {ty}"))
    };
    Ok(match ty {
        DynSolType::Bool => DynSolValue::Bool(v.as_bool().ok_or_else(wrong)?),
        DynSolType::String => DynSolValue::String(v.as_str().ok_or_else(wrong)?.to_owned()),
        DynSolType::Uint(bits) => {
            let n = match v {
                Value::Number(n) => n.as_u64().map(U256::from),
                Value::String(s) => parse_uint(s),
                _ => None,
            }
            .ok_or_else(wrong)?;
            if *bits < 256 && n >> *bits != U256::ZERO {
                return Err(wrong());
            }
            DynSolValue::Uint(n, *bits)
        }
        DynSolType::Int(bits) => {
            let n = match v {
                Value::Number(n) => n
                    .as_i64()
                    .map(I256::try_from)
                    .and_then(Result::ok)
                    .or_else(|| n.as_u64().and_then(|u| I256::try_from(u).ok())),
                Value::String(s) => I256::from_dec_str(s.trim()).ok(),
                _ => None,
            }
            .ok_or_else(wrong)?;
            if *bits < 256 {
                let limit = I256::ONE << (*bits - 1);
                if n >= limit || n < -limit {
                    return Err(wrong());
                }
            }
            DynSolValue::Int(n, *bits)
        }
        DynSolType::Address => {
            let s = v.as_str().ok_or_else(wrong)?;
            DynSolValue::Address(Address::from_str(s.trim()).map_err(|_| wrong())?)
        }
        DynSolType::FixedBytes(n) => {
            let bytes = hex_bytes(v).ok_or_else(wrong)?;
            if bytes.len() != *n {
                return Err(wrong());
            }
            let mut word = FixedBytes::<32>::ZERO;
            word[..*n].copy_from_slice(&bytes);
            DynSolValue::FixedBytes(word, *n)
        }
        DynSolType::Bytes => DynSolValue::Bytes(hex_bytes(v).ok_or_else(wrong)?),
        DynSolType::Array(inner) => DynSolValue::Array(
            v.as_array()
                .ok_or_else(wrong)?
                .iter()
                .map(|item| convert(inner, components, item, what))
                .collect::<Result<_, _>>()?,
        ),
        DynSolType::FixedArray(inner, n) => {
            let items = v.as_array().filter(|a| a.len() == *n).ok_or_else(wrong)?;
            DynSolValue::FixedArray(
                items
                    .iter()
                    .map(|item| convert(inner, components, item, what))
                    .collect::<Result<_, _>>()?,
            )
        }
        DynSolType::Tuple(types) => {
            let items: Vec<&Value> = match v {
                Value::Array(items) if items.len() == types.len() => items.iter().collect(),
                Value::Object(map) if components.len() == types.len() => components
                    .iter()
                    .map(|c| map.get(&c.name).ok_or_else(wrong))
                    .collect::<Result<_, _>>()?,
                _ => return Err(wrong()),
            };
            DynSolValue::Tuple(
                types
                    .iter()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (t, item))| {
                        let (sub, name) = components
                            .get(i)
                            .map(|c| (c.components.as_slice(), c.name.as_str()))
                            .unwrap_or((&[], what));
                        convert(t, sub, item, name)
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => return Err(WrongType(format!("{what}: type {ty} is not supported"))),
    })
}

/// A decimal or `0x` hexadecimal unsigned integer.
fn parse_uint(s: &str) -> Option<U256> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => U256::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            U256::from_str_radix(s, 10).ok()
        }
        None => None,
    }
}

/// A `0x`-prefixed hex string's bytes.
fn hex_bytes(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?.trim();
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    alloy::hex::decode(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn abi(signature: &str) -> JsonAbi {
        JsonAbi::parse([signature]).unwrap()
    }

    fn callback(signature: &str) -> Callback {
        let abi = abi(signature);
        let selector = abi.functions().next().unwrap().selector();
        Callback::find(&abi, selector.0).unwrap()
    }

    #[test]
    fn numbers_become_uints_within_their_width() {
        let c = callback("function f(bytes32 id, uint256 cost)");
        assert_eq!(
            c.convert(&json!(42)).unwrap(),
            vec![DynSolValue::Uint(U256::from(42), 256)]
        );
        let big = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(
            c.convert(&json!(big)).unwrap(),
            vec![DynSolValue::Uint(U256::MAX, 256)]
        );
        assert_eq!(
            c.convert(&json!("0xff")).unwrap(),
            vec![DynSolValue::Uint(U256::from(255), 256)]
        );
        for bad in [
            json!(-1),
            json!(1.5),
            json!("12a"),
            json!(true),
            json!(null),
        ] {
            assert!(c.convert(&bad).is_err(), "{bad}");
        }
        let small = callback("function f(bytes32 id, uint8 v)");
        assert!(small.convert(&json!(255)).is_ok());
        assert!(small.convert(&json!(256)).is_err());
        let signed = callback("function f(bytes32 id, int8 v)");
        assert!(signed.convert(&json!(-128)).is_ok());
        assert!(signed.convert(&json!("-129")).is_err());
        assert!(signed.convert(&json!(128)).is_err());
    }

    #[test]
    fn other_types_are_strict() {
        let b = callback("function f(bytes32 id, bool ok)");
        assert_eq!(
            b.convert(&json!(true)).unwrap(),
            vec![DynSolValue::Bool(true)]
        );
        assert!(b.convert(&json!("true")).is_err());
        let a = callback("function f(bytes32 id, address who)");
        assert!(
            a.convert(&json!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
                .is_ok()
        );
        assert!(a.convert(&json!("0x1234")).is_err());
        let w = callback("function f(bytes32 id, bytes32 word)");
        assert!(w.convert(&json!(format!("0x{}", "ab".repeat(32)))).is_ok());
        assert!(w.convert(&json!("0xabcd")).is_err());
        let s = callback("function f(bytes32 id, string name)");
        assert!(s.convert(&json!(7)).is_err());
    }

    #[test]
    fn several_parameters_take_an_array_or_an_object() {
        let c = callback("function f(bytes32 id, bool colocated, string site)");
        let want = vec![
            DynSolValue::Bool(true),
            DynSolValue::String("dock 4".into()),
        ];
        assert_eq!(c.convert(&json!([true, "dock 4"])).unwrap(), want);
        assert_eq!(
            c.convert(&json!({"site": "dock 4", "colocated": true}))
                .unwrap(),
            want
        );
        assert!(c.convert(&json!([true])).is_err());
        assert!(c.convert(&json!({"colocated": true})).is_err());
    }

    #[test]
    fn the_result_is_the_callback_calldata_after_the_id() {
        let id = B256::repeat_byte(7);
        let values = vec![DynSolValue::String("VerticalPump".into())];
        let result = encode_result(id, values.clone());
        let mut all = vec![DynSolValue::FixedBytes(id, 32)];
        all.extend(values);
        let full = DynSolValue::Tuple(all).abi_encode_params();
        assert_eq!(&full[..32], id.as_slice());
        assert_eq!(&full[32..], result.as_ref());
        // The string's offset counts from the start of the arguments (id included).
        assert_eq!(U256::from_be_slice(&result[..32]), U256::from(64));
    }

    #[test]
    fn callbacks_must_take_the_request_id_first() {
        let abi = abi("function f(uint256 cost)");
        let selector = abi.functions().next().unwrap().selector();
        assert!(matches!(
            Callback::find(&abi, selector.0),
            Err(CallbackError::Shape(_))
        ));
        assert!(matches!(
            Callback::find(&abi, [0, 0, 0, 0]),
            Err(CallbackError::Unknown(_))
        ));
    }
}
