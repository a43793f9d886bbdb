//! Validate: the spec plus what it references (read by the caller) → a
//! [`Plan`] that `build` and `status` use, or an [`Invalid`] reason. Pure.

use crate::access_policy::render;
use crate::api::{AccessPolicy, ContractTemplate, DatabaseMode, HttpMethod, SmartContractService};
use crate::reconcile::{Invalid, InvalidReason};
use alloy::primitives::Address;
use kontrakt_protocol::mounts::{
    ARTIFACT_DIR, ARTIFACT_FILE, ORACLE_HEADER_FILE, ORACLE_HEADERS_DIR, SIDECAR_PORT, SIGNER_DIR,
    SIGNER_FILE,
};
use kontrakt_protocol::{
    PairAddresses, PairSpec, SidecarConfig,
    artifact::Artifact,
    config::{
        ChainConfig, ContractConfig, DatabaseConfig, InteropConfig, OracleConfig, OracleEndpoint,
        SignerConfig,
    },
    pair_addresses,
};
use kube::ResourceExt;

/// What the referenced objects hold, as read by the reconciler.
#[derive(Default)]
pub struct References<'a> {
    /// The signer Secret's value at `signer.secretKeyRef.key`, if the Secret and key exist.
    pub signer_key: Option<&'a [u8]>,
    /// The artifact ConfigMap's value at `artifactRef.key`, if `artifactRef` is set and it exists.
    pub artifact_json: Option<&'a str>,
    /// The AccessPolicy named by `accessPolicyRef`, as found.
    pub access_policy: PolicyLookup<'a>,
    /// The AccessPolicies (live or being deleted) naming this service as their registry.
    pub hosted_policies: Vec<&'a AccessPolicy>,
}

/// What the reconciler found for `accessPolicyRef`.
#[derive(Debug, Clone, Default)]
pub enum PolicyLookup<'a> {
    /// No `accessPolicyRef`: the contract is open to every account.
    #[default]
    NotReferenced,
    /// The AccessPolicy does not exist.
    PolicyNotFound,
    /// The policy's registry service does not exist.
    RegistryNotFound { registry: String },
    /// The registry service's signer Secret is missing or holds no key.
    RegistrySignerNotFound { registry: String },
    /// The policy and the admin of its registry (`None`: this service hosts it itself).
    Found {
        policy: &'a AccessPolicy,
        registry_admin: Option<Address>,
    },
}

/// Everything the later steps need, derived from a valid spec.
#[derive(Debug, Clone)]
pub struct Plan {
    pub namespace: String,
    pub name: String,
    /// The rendered sidecar config (the ConfigMap's content).
    pub sidecar_config: SidecarConfig,
    /// The signer's address: the admin of both contracts.
    pub admin: Address,
    /// Where the pair must be, and the code it must hold.
    pub addresses: PairAddresses,
    /// Hash of everything the pod reads: a change rolls the Deployment.
    pub config_hash: String,
    /// The EnrollmentRegistry this service hosts (its sidecar deploys it and
    /// keeps its membership), when AccessPolicies name it.
    pub hosted_registry: Option<Address>,
}

pub fn validate(scs: &SmartContractService, refs: &References<'_>) -> Result<Plan, Invalid> {
    let spec = &scs.spec;
    let namespace = scs.namespace().unwrap_or_default();
    let name = scs.name_any();

    let key_ref = &spec.signer.secret_key_ref;
    let key = refs.signer_key.ok_or_else(|| {
        Invalid::new(
            InvalidReason::SignerSecretNotFound,
            format!(
                "Secret {:?} with key {:?} not found",
                key_ref.name, key_ref.key
            ),
        )
    })?;
    let signer = std::str::from_utf8(key).ok().and_then(kontrakt_protocol::key::parse_signer).ok_or_else(|| {
        Invalid::new(
            InvalidReason::SignerKeyInvalid,
            format!(
                "Secret {:?} key {:?} does not hold a private key (64 hex digits, optionally 0x-prefixed)",
                key_ref.name, key_ref.key
            ),
        )
    })?;
    let admin = signer.address();

    let rpc_url = match (&spec.chain.rpc_url, &spec.chain.rpc_url_secret_ref) {
        (Some(url), _) => url.clone(),
        // The sidecar config holds the URL in clear text; a URL kept in a Secret
        // (it may carry credentials) must not be copied into a ConfigMap.
        (None, _) => {
            return Err(Invalid::new(
                InvalidReason::RpcUrlSecretNotSupported,
                "chain.rpcUrlSecretRef is not supported by this sidecar version yet; use chain.rpcUrl",
            ));
        }
    };

    let (template, artifact_file, artifact) =
        match (&spec.contract.template, &spec.contract.artifact_ref) {
            (Some(template), _) => {
                let name = template_name(*template);
                let artifact = Artifact::builtin_shared(name)
                    .map_err(|e| Invalid::new(InvalidReason::ArtifactInvalid, e.to_string()))?;
                (Some(name.to_owned()), None, artifact)
            }
            (None, Some(r)) => {
                let json = refs.artifact_json.ok_or_else(|| {
                    Invalid::new(
                        InvalidReason::ArtifactNotFound,
                        format!("ConfigMap {:?} with key {:?} not found", r.name, r.key),
                    )
                })?;
                let artifact = Artifact::from_json(&r.key, json)
                    .map(std::sync::Arc::new)
                    .map_err(|e| {
                        Invalid::new(
                            InvalidReason::ArtifactInvalid,
                            format!("ConfigMap {:?} key {:?}: {e}", r.name, r.key),
                        )
                    })?;
                (
                    None,
                    Some(format!("{ARTIFACT_DIR}/{ARTIFACT_FILE}").into()),
                    artifact,
                )
            }
            (None, None) => {
                return Err(Invalid::new(
                    InvalidReason::ArtifactMissing,
                    "one of contract.template or contract.artifactRef is required",
                ));
            }
        };

    let database = match (spec.database.mode, &spec.database.address) {
        (DatabaseMode::Create, _) => DatabaseConfig::Create,
        (DatabaseMode::Existing, Some(address)) => DatabaseConfig::Existing {
            address: address.parse().map_err(|_| {
                Invalid::new(
                    InvalidReason::DatabaseAddressInvalid,
                    format!("{address:?} is not an address"),
                )
            })?,
        },
        (DatabaseMode::Existing, None) => {
            return Err(Invalid::new(
                InvalidReason::DatabaseAddressMissing,
                "database.address is required with mode Existing",
            ));
        }
    };
    // The registry is an immutable of the logic contract: the policy must be
    // resolvable before anything is deployed.
    let (registry, access) = match &refs.access_policy {
        PolicyLookup::NotReferenced => (None, None),
        PolicyLookup::PolicyNotFound => {
            let policy = spec
                .access_policy_ref
                .as_ref()
                .map(|r| r.name.as_str())
                .unwrap_or_default();
            return Err(Invalid::new(
                InvalidReason::AccessPolicyNotFound,
                format!("AccessPolicy {policy:?} not found"),
            ));
        }
        PolicyLookup::RegistryNotFound { registry } => {
            return Err(Invalid::new(
                InvalidReason::RegistryNotFound,
                format!("the AccessPolicy's registry SmartContractService {registry:?} not found"),
            ));
        }
        PolicyLookup::RegistrySignerNotFound { registry } => {
            return Err(Invalid::new(
                InvalidReason::RegistrySignerNotFound,
                format!(
                    "the signer Secret of the registry SmartContractService {registry:?} is missing or holds no key"
                ),
            ));
        }
        PolicyLookup::Found {
            policy,
            registry_admin,
        } => (
            Some(kontrakt_protocol::addresses::registry_address(
                &namespace,
                &policy.spec.registry.name,
                registry_admin.unwrap_or(admin),
            )),
            Some(render::access(policy)),
        ),
    };
    let endpoint_names: Vec<&str> = spec
        .oracle
        .iter()
        .flat_map(|o| &o.endpoints)
        .map(|e| e.name.as_str())
        .collect();
    let enrollment = render::enrollment(&refs.hosted_policies, admin, &endpoint_names);
    let hosted_registry = enrollment
        .is_some()
        .then(|| kontrakt_protocol::addresses::registry_address(&namespace, &name, admin));

    let version = u64::try_from(spec.contract.version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            Invalid::new(
                InvalidReason::VersionInvalid,
                "contract.version must be >= 1",
            )
        })?;
    let chain_id = u64::try_from(spec.chain.chain_id)
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| Invalid::new(InvalidReason::ChainIdInvalid, "chain.chainId must be >= 1"))?;

    let mut sidecar_config = SidecarConfig {
        chain: ChainConfig {
            rpc_url,
            chain_id,
            retry: Default::default(),
        },
        signer: SignerConfig {
            key_file: format!("{SIGNER_DIR}/{SIGNER_FILE}").into(),
        },
        contract: ContractConfig {
            namespace: namespace.clone(),
            name: name.clone(),
            template,
            artifact_file,
            version,
        },
        database,
        registry,
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], SIDECAR_PORT)),
        interop: InteropConfig {
            events: spec
                .interop
                .as_ref()
                .map(|i| i.events.clone())
                .unwrap_or_default(),
        },
        oracle: OracleConfig {
            endpoints: spec
                .oracle
                .iter()
                .flat_map(|o| &o.endpoints)
                .map(|e| OracleEndpoint {
                    name: e.name.clone(),
                    url: e.url.clone(),
                    method: match e.method {
                        HttpMethod::Get => "GET".into(),
                        HttpMethod::Post => "POST".into(),
                    },
                    timeout_seconds: u64::try_from(e.timeout_seconds).unwrap_or(10),
                    retries: u32::try_from(e.retries).unwrap_or(0),
                    result_path: e.result_path.clone(),
                    headers: Vec::new(),
                })
                .collect(),
            ..Default::default()
        },
        enrollment,
        access,
    };
    // Header values stay in their Secrets: each is mounted as a file (see
    // `build::pod_spec`) and the config names only the file.
    for (i, (endpoint, header)) in oracle_headers(scs).enumerate() {
        if let Some(e) = sidecar_config
            .oracle
            .endpoints
            .iter_mut()
            .find(|e| e.name == endpoint.name)
        {
            e.headers.push(kontrakt_protocol::config::OracleHeader {
                name: header.name.clone(),
                value_file: format!("{ORACLE_HEADERS_DIR}/{i}/{ORACLE_HEADER_FILE}").into(),
            });
        }
    }
    sidecar_config
        .validate()
        .map_err(|e| Invalid::new(InvalidReason::SidecarConfigInvalid, e.to_string()))?;

    let addresses = pair_addresses(&PairSpec::from_config(&sidecar_config, admin, &artifact))
        .map_err(|e| Invalid::new(InvalidReason::ArtifactInvalid, e.to_string()))?;

    let rendered = sidecar_config.to_yaml();
    let config_hash = alloy::primitives::keccak256(
        [
            rendered.as_bytes(),
            refs.artifact_json.unwrap_or_default().as_bytes(),
            key_ref.name.as_bytes(),
            key_ref.key.as_bytes(),
        ]
        .concat(),
    );

    Ok(Plan {
        namespace,
        name,
        sidecar_config,
        admin,
        addresses,
        config_hash: format!("{config_hash:x}")[..16].to_owned(),
        hosted_registry,
    })
}

/// Every oracle header of the spec, in order (the order numbers their mounts).
pub fn oracle_headers(
    scs: &SmartContractService,
) -> impl Iterator<Item = (&crate::api::OracleEndpoint, &crate::api::SecretHeader)> {
    scs.spec
        .oracle
        .iter()
        .flat_map(|o| &o.endpoints)
        .flat_map(|e| e.headers.iter().map(move |h| (e, h)))
}

/// The built-in artifact of a template.
pub fn template_name(template: ContractTemplate) -> &'static str {
    match template {
        ContractTemplate::Shipping => "Shipping",
        ContractTemplate::AssetTracking => "AssetTracking",
    }
}
