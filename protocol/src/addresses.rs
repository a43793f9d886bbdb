//! The one place that computes the pair's deterministic addresses, without a chain.
//!
//! Both contracts are created with CREATE2 through the deterministic-deployment proxy
//! ([`DETERMINISTIC_DEPLOYER`]), so an address depends only on the salt and
//! the initcode (creation code + constructor arguments):
//!
//! - database salt = `keccak256("kontrakt/database/" ++ namespace ++ "/" ++ name)`,
//!   constructor `(admin)`;
//! - logic salt = `keccak256("kontrakt/logic/" ++ namespace ++ "/" ++ name ++ "/" ++ version)`
//!   (version in decimal), constructor `(database, registry, admin)`;
//! - enrollment registry salt = `keccak256("kontrakt/registry/" ++ namespace ++ "/" ++ name)`
//!   (the SmartContractService that hosts it), constructor `(admin)`.
//! - data market salt = `keccak256("kontrakt/market")`, constructor `(registry)` (zero: no
//!   policy): one `DataMarket` per registry, whoever deploys it;
//! - a stream's key on that market = `keccak256("kontrakt/stream/" ++ namespace ++ "/" ++ name)`
//!   (the DataStream), read back with `streamIdOf(seller, key)`.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, Bytes, address, keccak256};
use serde::{Deserialize, Serialize};

use crate::artifact::{Artifact, ArtifactError, ArtifactRole};
use crate::config::{DatabaseConfig, SidecarConfig};

/// Address of the deterministic-deployment proxy (Arachnid's CREATE2 factory, the same on
/// every chain); called with `salt ++ initcode`.
pub const DETERMINISTIC_DEPLOYER: Address = address!("4e59b44847b379578588920ca78fbf26c0b4956c");

/// `immutableReferences` key of the logic's database address (set by `KontraktContract`).
pub const IMMUTABLE_DATABASE: &str = "KontraktContract._database";
/// `immutableReferences` key of the logic's registry address.
pub const IMMUTABLE_REGISTRY: &str = "KontraktContract._registry";

/// Everything that determines the pair's addresses.
#[derive(Debug, Clone)]
pub struct PairSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub version: u64,
    /// Admin of both contracts (the sidecar's signer).
    pub admin: Address,
    /// `EnrollmentRegistry` address, or zero.
    pub registry: Address,
    pub database: DatabaseConfig,
    /// The logic contract's artifact.
    pub logic: &'a Artifact,
}

impl<'a> PairSpec<'a> {
    /// The spec a sidecar config describes, signed by `admin`.
    pub fn from_config(config: &'a SidecarConfig, admin: Address, logic: &'a Artifact) -> Self {
        Self {
            namespace: &config.contract.namespace,
            name: &config.contract.name,
            version: config.contract.version,
            admin,
            registry: config.registry.unwrap_or(Address::ZERO),
            database: config.database,
            logic,
        }
    }
}

/// Where the pair lives and what code it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairAddresses {
    pub database: Address,
    pub logic: Address,
    /// `EXTCODEHASH` of the database once deployed.
    pub database_code_hash: B256,
    /// `EXTCODEHASH` of the logic once deployed, with the base's immutables (database,
    /// registry) patched in at the artifact's `immutableReferences`. `None` when the logic
    /// declares immutables of its own (their values are only known to its constructor); then
    /// the sidecar verifies the code by a masked comparison instead.
    pub logic_code_hash: Option<B256>,
}

/// The pair's addresses plus what is needed to create it.
#[derive(Debug, Clone)]
pub struct PairPlan {
    pub addresses: PairAddresses,
    /// `None` when the database already exists (`mode: existing`).
    pub database_deployment: Option<Create2>,
    pub logic_deployment: Create2,
}

/// One CREATE2 deployment through the deterministic-deployment proxy.
#[derive(Debug, Clone)]
pub struct Create2 {
    pub salt: B256,
    pub initcode: Bytes,
    pub address: Address,
}

impl Create2 {
    pub fn new(salt: B256, initcode: Bytes) -> Self {
        let address = DETERMINISTIC_DEPLOYER.create2(salt, keccak256(&initcode));
        Self {
            salt,
            initcode,
            address,
        }
    }

    /// Calldata for the proxy: `salt ++ initcode`.
    pub fn calldata(&self) -> Bytes {
        [self.salt.as_slice(), self.initcode.as_ref()]
            .concat()
            .into()
    }
}

/// `keccak256("kontrakt/database/<namespace>/<name>")`
pub fn database_salt(namespace: &str, name: &str) -> B256 {
    keccak256(format!("kontrakt/database/{namespace}/{name}"))
}

/// `keccak256("kontrakt/logic/<namespace>/<name>/<version>")`
pub fn logic_salt(namespace: &str, name: &str, version: u64) -> B256 {
    keccak256(format!("kontrakt/logic/{namespace}/{name}/{version}"))
}

/// `keccak256("kontrakt/registry/<namespace>/<name>")`: its own label, so it never equals a
/// pair salt (and the initcode differs anyway).
pub fn registry_salt(namespace: &str, name: &str) -> B256 {
    keccak256(format!("kontrakt/registry/{namespace}/{name}"))
}

/// The `EnrollmentRegistry` hosted by the SmartContractService `namespace/name`, administered
/// by `admin` (that service's signer), as one CREATE2 deployment.
pub fn registry_deployment(namespace: &str, name: &str, admin: Address) -> Create2 {
    let artifact = Artifact::builtin_shared("EnrollmentRegistry")
        .expect("EnrollmentRegistry is a built-in artifact");
    Create2::new(registry_salt(namespace, name), artifact.initcode(&[admin]))
}

/// THE address of the `EnrollmentRegistry` hosted by `namespace/name` with `admin` (pure).
pub fn registry_address(namespace: &str, name: &str, admin: Address) -> Address {
    registry_deployment(namespace, name, admin).address
}

/// `keccak256("kontrakt/market")`: one label, so the market's address depends only on its
/// registry.
pub fn market_salt() -> B256 {
    keccak256("kontrakt/market")
}

/// The `DataMarket` checking enrollment in `registry` (zero: no policy), as one CREATE2
/// deployment.
pub fn market_deployment(registry: Address) -> Create2 {
    let artifact =
        Artifact::builtin_shared("DataMarket").expect("DataMarket is a built-in artifact");
    Create2::new(market_salt(), artifact.initcode(&[registry]))
}

/// THE address of the `DataMarket` of `registry` (zero: the market without a policy) (pure).
pub fn market_address(registry: Address) -> Address {
    market_deployment(registry).address
}

/// `keccak256("kontrakt/stream/<namespace>/<name>")`: the key the DataStream `namespace/name`
/// is registered under on the market (`streamIdOf(seller, key)`).
pub fn stream_key(namespace: &str, name: &str) -> B256 {
    keccak256(format!("kontrakt/stream/{namespace}/{name}"))
}

/// The pair's deterministic addresses and code hashes (pure: no chain, no I/O).
pub fn pair_addresses(spec: &PairSpec<'_>) -> Result<PairAddresses, ArtifactError> {
    plan_pair(spec).map(|p| p.addresses)
}

/// [`pair_addresses`] plus the deployments that create the pair.
pub fn plan_pair(spec: &PairSpec<'_>) -> Result<PairPlan, ArtifactError> {
    spec.logic.check(ArtifactRole::Logic)?;
    let database_artifact = Artifact::builtin_shared("ContractDatabase")
        .expect("ContractDatabase is a built-in artifact");
    let database_code_hash = keccak256(&database_artifact.deployed_bytecode);
    let database_deployment = match spec.database {
        DatabaseConfig::Create => Some(Create2::new(
            database_salt(spec.namespace, spec.name),
            database_artifact.initcode(&[spec.admin]),
        )),
        DatabaseConfig::Existing { .. } => None,
    };
    let database = match (&database_deployment, spec.database) {
        (Some(d), _) => d.address,
        (None, DatabaseConfig::Existing { address }) => address,
        (None, DatabaseConfig::Create) => unreachable!("create always plans a deployment"),
    };
    let logic_deployment = Create2::new(
        logic_salt(spec.namespace, spec.name, spec.version),
        spec.logic.initcode(&[database, spec.registry, spec.admin]),
    );
    let immutables = BTreeMap::from([
        (IMMUTABLE_DATABASE, database.into_word()),
        (IMMUTABLE_REGISTRY, spec.registry.into_word()),
    ]);
    Ok(PairPlan {
        addresses: PairAddresses {
            database,
            logic: logic_deployment.address,
            database_code_hash,
            logic_code_hash: spec.logic.runtime_code_hash(&immutables),
        },
        database_deployment,
        logic_deployment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logic_code_hash_is_computable_for_every_builtin_logic() {
        for name in ["Shipping", "AssetTracking", "RecordStore"] {
            let logic = Artifact::builtin(name).unwrap();
            let spec = PairSpec {
                namespace: "ns",
                name: "svc",
                version: 1,
                admin: Address::repeat_byte(1),
                registry: Address::ZERO,
                database: DatabaseConfig::Create,
                logic: &logic,
            };
            let a = pair_addresses(&spec).unwrap();
            assert!(a.logic_code_hash.is_some(), "{name}");
            assert_ne!(a.logic_code_hash, Some(keccak256(&logic.deployed_bytecode)));
            let v2 = pair_addresses(&PairSpec {
                version: 2,
                ..spec.clone()
            })
            .unwrap();
            assert_eq!(v2.database, a.database, "one database across versions");
            assert_ne!(v2.logic, a.logic);
            let other = pair_addresses(&PairSpec {
                admin: Address::repeat_byte(2),
                ..spec
            })
            .unwrap();
            assert_ne!(
                other.database, a.database,
                "the admin is a constructor argument"
            );
        }
    }

    #[test]
    fn salts_follow_the_documented_strings() {
        assert_eq!(
            database_salt("ns", "svc"),
            keccak256(b"kontrakt/database/ns/svc")
        );
        assert_eq!(
            logic_salt("ns", "svc", 12),
            keccak256(b"kontrakt/logic/ns/svc/12")
        );
    }

    #[test]
    fn registry_address_is_deterministic_and_never_a_pair_address() {
        let admin = Address::repeat_byte(1);
        let a = registry_address("ns", "svc", admin);
        assert_eq!(a, registry_address("ns", "svc", admin));
        assert_eq!(
            registry_salt("ns", "svc"),
            keccak256(b"kontrakt/registry/ns/svc")
        );
        assert_ne!(registry_salt("ns", "svc"), database_salt("ns", "svc"));
        assert_ne!(a, registry_address("ns", "other", admin));
        assert_ne!(a, registry_address("other", "svc", admin));
        assert_ne!(
            a,
            registry_address("ns", "svc", Address::repeat_byte(2)),
            "the admin is a constructor argument"
        );
        let logic = Artifact::builtin("Shipping").unwrap();
        let pair = pair_addresses(&PairSpec {
            namespace: "ns",
            name: "svc",
            version: 1,
            admin,
            registry: a,
            database: DatabaseConfig::Create,
            logic: &logic,
        })
        .unwrap();
        assert_ne!(a, pair.database);
        assert_ne!(a, pair.logic);
        let d = registry_deployment("ns", "svc", admin);
        assert_eq!(
            d.address,
            DETERMINISTIC_DEPLOYER.create2(d.salt, keccak256(&d.initcode))
        );
    }

    #[test]
    fn market_address_depends_only_on_the_registry() {
        let a = market_address(Address::ZERO);
        assert_eq!(a, market_address(Address::ZERO));
        assert_ne!(a, market_address(Address::repeat_byte(1)));
        assert_eq!(market_salt(), keccak256(b"kontrakt/market"));
        let d = market_deployment(Address::repeat_byte(1));
        assert_eq!(
            d.address,
            DETERMINISTIC_DEPLOYER.create2(d.salt, keccak256(&d.initcode))
        );
        assert_ne!(a, registry_address("ns", "svc", Address::ZERO));
        assert_eq!(
            stream_key("ns", "temp"),
            keccak256(b"kontrakt/stream/ns/temp")
        );
        assert_ne!(stream_key("ns", "temp"), stream_key("ns", "temp2"));
    }

    #[test]
    fn create2_address_and_proxy_calldata_follow_eip_1014() {
        // address = keccak256(0xff ++ proxy ++ salt ++ keccak256(initcode))[12..]
        let c = Create2::new(B256::repeat_byte(1), Bytes::from_static(&[0xde, 0xad]));
        assert_eq!(&c.calldata()[..32], B256::repeat_byte(1).as_slice());
        assert_eq!(&c.calldata()[32..], &[0xde, 0xad]);
        let expected = keccak256(
            [
                &[0xffu8][..],
                DETERMINISTIC_DEPLOYER.as_slice(),
                B256::repeat_byte(1).as_slice(),
                keccak256([0xde, 0xad]).as_slice(),
            ]
            .concat(),
        );
        assert_eq!(c.address, Address::from_slice(&expected[12..]));
    }
}
