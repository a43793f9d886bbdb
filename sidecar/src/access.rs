//! Enrollment enforced on the sidecar API: with `registry` and `access` in the config, every
//! API request (all routes but `/healthz` and `/readyz`) must be signed by an account that is
//! enrolled in the registry in a role the request's operation allows.
//!
//! The scheme (stateless, so any replica checks any request):
//! - `X-Kontrakt-Account`: the account (`0x…`);
//! - `X-Kontrakt-Timestamp`: unix seconds; more than [`MAX_SKEW_SECS`] away from the sidecar's
//!   clock is refused, which bounds how long a captured request can be replayed;
//! - `X-Kontrakt-Signature`: the account's EIP-191 (`personal_sign`) signature of
//!   `kontrakt:<METHOD>:<path and query>:<timestamp>` (see [`signing_message`]), so a
//!   signature is bound to one request line.
//!
//! Missing headers or a bad signature: 401. A valid signature from an account that is not
//! enrolled in an allowed role: 403 with a JSON reason. Enrollment answers are cached for
//! [`CACHE_TTL`], so the API does not ask the chain on every request.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::chain::Chain;
use kontrakt_protocol::bindings::EnrollmentRegistry;
use kontrakt_protocol::config::{AccessConfig, ApiOperation, Role};
use kontrakt_protocol::views::registry::MemberStatus;

pub const HEADER_ACCOUNT: &str = "x-kontrakt-account";
pub const HEADER_TIMESTAMP: &str = "x-kontrakt-timestamp";
pub const HEADER_SIGNATURE: &str = "x-kontrakt-signature";
/// Largest accepted distance between a request's timestamp and the sidecar's clock.
pub const MAX_SKEW_SECS: u64 = 60;
/// How long an enrollment answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// The text an account signs (EIP-191) for one request.
pub fn signing_message(method: &str, path_and_query: &str, timestamp: u64) -> String {
    format!(
        "kontrakt:{}:{path_and_query}:{timestamp}",
        method.to_ascii_uppercase()
    )
}

/// The three headers that sign one request (for tests and API clients).
pub fn sign_request(
    signer: &PrivateKeySigner,
    method: &str,
    path_and_query: &str,
    timestamp: u64,
) -> Result<[(&'static str, String); 3], alloy::signers::Error> {
    let message = signing_message(method, path_and_query, timestamp);
    let signature = signer.sign_message_sync(message.as_bytes())?;
    Ok([
        (HEADER_ACCOUNT, signer.address().to_checksum(None)),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (
            HEADER_SIGNATURE,
            format!("0x{}", alloy::hex::encode(signature.as_bytes())),
        ),
    ])
}

/// The API operation of a request: `GET /events` is `events`, other reads are `read`,
/// anything else is `call`.
pub fn operation_of(method: &Method, path: &str) -> ApiOperation {
    match *method {
        Method::GET | Method::HEAD if path == "/events" || path.starts_with("/events/") => {
            ApiOperation::Events
        }
        Method::GET | Method::HEAD => ApiOperation::Read,
        _ => ApiOperation::Call,
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "error", rename_all_fields = "camelCase")]
pub enum Denied {
    /// 401: a header is missing or malformed.
    Unsigned { reason: String },
    /// 401: the signature is not the account's, or the timestamp is out of range.
    BadSignature { reason: String },
    /// 403: the account holds none of the allowed roles.
    NotEnrolled {
        account: Address,
        operation: ApiOperation,
        allowed_roles: Vec<Role>,
        /// The account's record in the registry.
        status: MemberStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    /// 503: the registry cannot be asked right now.
    RegistryUnavailable { reason: String },
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let code = match self {
            Denied::Unsigned { .. } | Denied::BadSignature { .. } => StatusCode::UNAUTHORIZED,
            Denied::NotEnrolled { .. } => StatusCode::FORBIDDEN,
            Denied::RegistryUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(self)).into_response()
    }
}

/// The signed account of a request, if the signature checks out (no chain access).
pub fn verify_signature(
    headers: &HeaderMap,
    method: &Method,
    path_and_query: &str,
    now: u64,
) -> Result<Address, Denied> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Denied::Unsigned {
                reason: format!(
                    "the request must be signed: headers {HEADER_ACCOUNT}, {HEADER_TIMESTAMP}, {HEADER_SIGNATURE}"
                ),
            })
    };
    let (account, timestamp, signature) = (
        header(HEADER_ACCOUNT)?,
        header(HEADER_TIMESTAMP)?,
        header(HEADER_SIGNATURE)?,
    );
    let account: Address = account.parse().map_err(|_| Denied::Unsigned {
        reason: format!("{HEADER_ACCOUNT} {account:?} is not an address"),
    })?;
    let timestamp: u64 = timestamp.parse().map_err(|_| Denied::Unsigned {
        reason: format!("{HEADER_TIMESTAMP} {timestamp:?} is not unix seconds"),
    })?;
    if timestamp.abs_diff(now) > MAX_SKEW_SECS {
        return Err(Denied::BadSignature {
            reason: format!(
                "timestamp {timestamp} is more than {MAX_SKEW_SECS}s from the sidecar's time {now}"
            ),
        });
    }
    let signature: Signature = signature.parse().map_err(|_| Denied::Unsigned {
        reason: format!("{HEADER_SIGNATURE} is not a 65-byte hex signature"),
    })?;
    let message = signing_message(method.as_str(), path_and_query, timestamp);
    let signer = signature
        .recover_address_from_msg(message.as_bytes())
        .map_err(|_| Denied::BadSignature {
            reason: "the signature cannot be recovered".into(),
        })?;
    if signer != account {
        return Err(Denied::BadSignature {
            reason: format!(
                "the signature is not {account}'s for {} {path_and_query} at {timestamp}",
                method.as_str()
            ),
        });
    }
    Ok(account)
}

/// The sidecar API's access check against one registry.
#[derive(Debug)]
pub struct AccessGuard {
    registry: Address,
    config: AccessConfig,
    cache: Mutex<HashMap<(Address, ApiOperation), CachedVerdict>>,
}

/// When the registry was asked, and its answer.
type CachedVerdict = (Instant, Result<(), Denied>);

impl AccessGuard {
    pub fn new(registry: Address, config: AccessConfig) -> Self {
        Self {
            registry,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The roles allowed to use `operation`: the union of its rules, or every role (any
    /// enrolled account) when no rule names it.
    pub fn allowed_roles(&self, operation: ApiOperation) -> Vec<Role> {
        let mut roles: Vec<Role> = self
            .config
            .rules
            .iter()
            .filter(|r| r.operation == operation)
            .flat_map(|r| r.roles.iter().copied())
            .collect();
        if roles.is_empty() {
            roles = Role::ALL.to_vec();
        }
        roles.sort();
        roles.dedup();
        roles
    }

    /// Checks one request: a valid signature, then enrollment in an allowed role (cached).
    pub async fn check(
        &self,
        chain: &Chain,
        headers: &HeaderMap,
        method: &Method,
        path_and_query: &str,
    ) -> Result<Address, Denied> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let account = verify_signature(headers, method, path_and_query, now)?;
        let path = path_and_query.split('?').next().unwrap_or_default();
        let operation = operation_of(method, path);
        let key = (account, operation);
        if let Some((at, verdict)) = self.cache.lock().await.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return verdict.clone().map(|()| account);
        }
        let verdict = self.ask_registry(chain, account, operation).await;
        if !matches!(verdict, Err(Denied::RegistryUnavailable { .. })) {
            let mut cache = self.cache.lock().await;
            // Bounded: stale entries go first, and signatures are needed to add any.
            if cache.len() >= 10_000 {
                cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            }
            cache.insert(key, (Instant::now(), verdict.clone()));
        }
        verdict.map(|()| account)
    }

    async fn ask_registry(
        &self,
        chain: &Chain,
        account: Address,
        operation: ApiOperation,
    ) -> Result<(), Denied> {
        let registry = EnrollmentRegistry::new(self.registry, chain.provider());
        let unavailable = |e: alloy::contract::Error| Denied::RegistryUnavailable {
            reason: format!("registry {}: {e}", self.registry),
        };
        let allowed_roles = self.allowed_roles(operation);
        for role in &allowed_roles {
            if registry
                .isEnrolled(account, role.number())
                .call()
                .await
                .map_err(unavailable)?
            {
                return Ok(());
            }
        }
        // Refused: say what the registry holds for the account.
        let record = registry
            .statusOf(account)
            .call()
            .await
            .map_err(unavailable)?;
        let status = MemberStatus::from_number(record.status);
        Err(Denied::NotEnrolled {
            account,
            operation,
            allowed_roles,
            status,
            role: (status != MemberStatus::None)
                .then(|| Role::from_number(record.role))
                .flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontrakt_protocol::config::AccessRule;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_signed_request_verifies_and_binds_method_path_and_time() {
        let signer = PrivateKeySigner::random();
        let signed = sign_request(&signer, "GET", "/events?from_block=1", 1000).unwrap();
        let h = headers(&signed);
        let get = Method::GET;
        assert_eq!(
            verify_signature(&h, &get, "/events?from_block=1", 1030),
            Ok(signer.address())
        );
        // Another path, method or timestamp: not this signature.
        assert!(matches!(
            verify_signature(&h, &get, "/events?from_block=2", 1000),
            Err(Denied::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(&h, &Method::POST, "/events?from_block=1", 1000),
            Err(Denied::BadSignature { .. })
        ));
        // Too old or too far ahead.
        assert!(matches!(
            verify_signature(&h, &get, "/events?from_block=1", 1000 + MAX_SKEW_SECS + 1),
            Err(Denied::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(&h, &get, "/events?from_block=1", 1000 - MAX_SKEW_SECS - 1),
            Err(Denied::BadSignature { .. })
        ));
        // Someone else's account header.
        let mut forged = signed.clone();
        forged[0].1 = Address::repeat_byte(7).to_string();
        assert!(matches!(
            verify_signature(&headers(&forged), &get, "/events?from_block=1", 1000),
            Err(Denied::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(&HeaderMap::new(), &get, "/contract", 1000),
            Err(Denied::Unsigned { .. })
        ));
    }

    #[test]
    fn operations_and_allowed_roles() {
        assert_eq!(operation_of(&Method::GET, "/events"), ApiOperation::Events);
        assert_eq!(operation_of(&Method::GET, "/contract"), ApiOperation::Read);
        assert_eq!(operation_of(&Method::POST, "/contract"), ApiOperation::Call);
        let guard = AccessGuard::new(
            Address::ZERO,
            AccessConfig {
                rules: vec![
                    AccessRule {
                        operation: ApiOperation::Events,
                        roles: vec![Role::Subscriber],
                    },
                    AccessRule {
                        operation: ApiOperation::Events,
                        roles: vec![Role::Publisher, Role::Subscriber],
                    },
                ],
            },
        );
        assert_eq!(
            guard.allowed_roles(ApiOperation::Events),
            [Role::Publisher, Role::Subscriber]
        );
        assert_eq!(guard.allowed_roles(ApiOperation::Read), Role::ALL);
    }

    #[test]
    fn refusals_map_to_401_and_403_with_a_reason() {
        let denied = Denied::NotEnrolled {
            account: Address::repeat_byte(1),
            operation: ApiOperation::Events,
            allowed_roles: vec![Role::Subscriber],
            status: MemberStatus::Enrolled,
            role: Some(Role::Node),
        };
        let body = serde_json::to_value(&denied).unwrap();
        assert_eq!(body["error"], "NotEnrolled");
        assert_eq!(body["operation"], "events");
        assert_eq!(body["allowedRoles"], serde_json::json!(["Subscriber"]));
        assert_eq!(body["role"], "Node");
        assert_eq!(denied.into_response().status(), StatusCode::FORBIDDEN);
        let unsigned = Denied::Unsigned { reason: "x".into() };
        assert_eq!(unsigned.into_response().status(), StatusCode::UNAUTHORIZED);
    }
}
