//! Fetching one named endpoint: the configured method, headers from mounted Secret files,
//! the configured timeout, no redirects, a capped response size, and the JSON value at the
//! result path. Retrying is the caller's decision ([`FetchError::is_retryable`]).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::OracleErrorCode;
use kontrakt_protocol::config::OracleEndpoint;
use kontrakt_protocol::json_path::{JsonPath, JsonPathError};

/// Why one attempt at an endpoint gave no value.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {0}s")]
    Timeout(u64),
    #[error("answered HTTP {0} (redirects are not followed)")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response has no value at {0}")]
    ResultMissing(String),
    #[error("header {header}: cannot read its value file {file}: {reason}")]
    SecretUnreadable {
        header: String,
        file: String,
        reason: String,
    },
}

impl FetchError {
    /// Worth another attempt: the device may be back (or the Secret mounted) soon.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout(_) | Self::SecretUnreadable { .. } => true,
            Self::Status(s) => *s >= 500 || *s == StatusCode::TOO_MANY_REQUESTS.as_u16(),
            _ => false,
        }
    }

    /// The code the request is answered with when this is the final outcome.
    pub fn code(&self) -> OracleErrorCode {
        match self {
            Self::Unreachable(_) => OracleErrorCode::Unreachable,
            Self::Timeout(_) => OracleErrorCode::Timeout,
            Self::Status(_) => OracleErrorCode::HttpStatus,
            Self::TooLarge(_) => OracleErrorCode::ResponseTooLarge,
            Self::NotJson(_) => OracleErrorCode::NotJson,
            Self::ResultMissing(_) => OracleErrorCode::ResultMissing,
            Self::SecretUnreadable { .. } => OracleErrorCode::SecretUnreadable,
        }
    }
}

/// One configured endpoint with its HTTP client.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub config: OracleEndpoint,
    client: reqwest::Client,
    method: Method,
    url: reqwest::Url,
    path: JsonPath,
}

/// Why an endpoint's config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("oracle endpoint {name:?}: resultPath: {source}")]
    Path { name: String, source: JsonPathError },
    #[error("oracle endpoint {name:?}: method {method:?} is not GET or POST")]
    Method { name: String, method: String },
    #[error("oracle endpoint {name:?}: url is not a valid URL")]
    Url { name: String },
    #[error("oracle endpoint {name:?}: cannot build its HTTP client: {reason}")]
    Client { name: String, reason: String },
}

impl Endpoint {
    pub fn new(config: &OracleEndpoint) -> Result<Self, EndpointError> {
        let name = config.name.clone();
        let path =
            JsonPath::parse(config.result_path.as_deref().unwrap_or("$")).map_err(|source| {
                EndpointError::Path {
                    name: name.clone(),
                    source,
                }
            })?;
        let method = match config.method.as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            other => {
                return Err(EndpointError::Method {
                    name,
                    method: other.to_owned(),
                });
            }
        };
        let url = reqwest::Url::parse(&config.url)
            .map_err(|_| EndpointError::Url { name: name.clone() })?;
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let client = reqwest::Client::builder()
            // A redirect could lead anywhere (another host, the cluster's inside): never follow.
            .redirect(reqwest::redirect::Policy::none())
            // Only the configured URL: no proxy from the environment in between.
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| EndpointError::Client {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            config: config.clone(),
            client,
            method,
            url,
            path,
        })
    }

    /// One attempt: `params` as query parameters (GET) or a JSON object (POST); the JSON value
    /// at the result path of a 2xx response of at most `max_bytes`.
    pub async fn fetch(
        &self,
        params: &[(String, String)],
        max_bytes: u64,
    ) -> Result<Value, FetchError> {
        let mut url = self.url.clone();
        if self.method == Method::GET && !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let mut request = self.client.request(self.method.clone(), url);
        request = if self.method == Method::GET {
            request
        } else {
            let body: serde_json::Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            request.json(&body)
        };
        request = request.header(reqwest::header::ACCEPT, "application/json");
        for h in &self.config.headers {
            // Read at each request, so a rotated Secret is picked up; the value is never logged.
            let value = std::fs::read_to_string(&h.value_file).map_err(|e| {
                FetchError::SecretUnreadable {
                    header: h.name.clone(),
                    file: h.value_file.display().to_string(),
                    reason: e.kind().to_string(),
                }
            })?;
            let mut value = reqwest::header::HeaderValue::from_str(value.trim()).map_err(|_| {
                FetchError::SecretUnreadable {
                    header: h.name.clone(),
                    file: h.value_file.display().to_string(),
                    reason: "not a valid header value".into(),
                }
            })?;
            value.set_sensitive(true);
            request = request.header(h.name.as_str(), value);
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(FetchError::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
        self.path
            .select(&doc)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| FetchError::ResultMissing(self.path.to_string()))
    }

    fn transport(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.config.timeout_seconds)
        } else {
            // Without the URL: it is in the config, and errors end up in logs and on /oracle.
            FetchError::Unreachable(e.without_url().to_string())
        }
    }
}
