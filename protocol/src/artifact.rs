//! Compiled contract artifacts (`sidecar/contracts/out/<Name>.json`): the built-in templates
//! and mounted files, and the checks that an artifact is deployable as what it claims to be.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, B256, Bytes, keccak256};
use serde::Deserialize;

/// Why an artifact cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("unknown contract template {0:?} (built-in: {list})", list = BUILTIN_NAMES.join(", "))]
    UnknownTemplate(String),
    #[error("cannot read artifact file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("artifact {name} is not valid JSON of the expected shape: {source}")]
    Parse {
        name: String,
        source: serde_json::Error,
    },
    #[error(
        "artifact {0} has no bytecode (an abstract contract or an interface cannot be deployed)"
    )]
    NotDeployable(String),
    #[error(
        "artifact {name}: the bytecode does not match the ABI, selectors of {functions:?} are absent from deployedBytecode"
    )]
    BytecodeAbiMismatch {
        name: String,
        functions: Vec<String>,
    },
    #[error("artifact {name}: constructor must take ({expected}), the ABI declares ({found})")]
    Constructor {
        name: String,
        expected: &'static str,
        found: String,
    },
}

/// One contract's ABI and code, as written by `sidecar/contracts/build.mjs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub contract_name: String,
    pub abi: JsonAbi,
    /// Creation code (constructor arguments are appended ABI-encoded).
    pub bytecode: Bytes,
    /// Runtime code, with zero placeholders where `immutable` variables go.
    pub deployed_bytecode: Bytes,
    /// Byte ranges of each `immutable` variable in `deployedBytecode`, keyed by
    /// `Contract.variable` (`KontraktContract._database`). Optional: without it the runtime
    /// code hash of a contract with immutables cannot be computed off chain.
    #[serde(default)]
    pub immutable_references: BTreeMap<String, Vec<ImmutableRange>>,
}

/// Where one immutable value sits in the runtime code.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct ImmutableRange {
    pub start: usize,
    pub length: usize,
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        /// Names accepted as `contract.template`.
        pub const BUILTIN_NAMES: &[&str] = &[$($name),*];
        fn builtin_json(name: &str) -> Option<&'static str> {
            match name {
                $($name => Some(include_str!(concat!("../../sidecar/contracts/out/", $name, ".json"))),)*
                _ => None,
            }
        }
    };
}

builtins![
    "ContractDatabase",
    "KontraktContract",
    "KontraktOracle",
    "Shipping",
    "AssetTracking",
    "EnrollmentRegistry",
    "DataMarket",
    "RecordStore",
    "RecordStoreMonolithic",
];

/// What an artifact is deployed as; each role fixes the constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactRole {
    /// `constructor(address admin_)`
    Database,
    /// `constructor(address database_, address registry_, address admin_)`
    Logic,
}

impl Artifact {
    /// A built-in template (the committed artifacts compiled into the sidecar).
    pub fn builtin(name: &str) -> Result<Self, ArtifactError> {
        Self::builtin_shared(name).map(|a| (*a).clone())
    }

    /// A built-in template, parsed once per process and shared: the operator computes
    /// addresses and code hashes on every pass, and parsing the JSON (ABI included) each
    /// time made those passes its largest source of short-lived memory.
    pub fn builtin_shared(name: &str) -> Result<Arc<Self>, ArtifactError> {
        static PARSED: OnceLock<Mutex<HashMap<String, Arc<Artifact>>>> = OnceLock::new();
        let parsed = PARSED.get_or_init(Default::default);
        if let Some(a) = parsed.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(a.clone());
        }
        let json = builtin_json(name).ok_or_else(|| ArtifactError::UnknownTemplate(name.into()))?;
        let artifact = Arc::new(Self::from_json(name, json)?);
        parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), artifact.clone());
        Ok(artifact)
    }

    /// The `ContractDatabase` artifact every pair uses.
    pub fn contract_database() -> Self {
        Self::builtin("ContractDatabase").expect("ContractDatabase is a built-in artifact")
    }

    /// The logic artifact a config names (`template` or `artifactFile`).
    pub fn for_contract(contract: &crate::config::ContractConfig) -> Result<Self, ArtifactError> {
        match (&contract.template, &contract.artifact_file) {
            (Some(name), _) => Self::builtin(name),
            (None, Some(path)) => Self::from_file(path),
            (None, None) => Err(ArtifactError::UnknownTemplate(String::new())),
        }
    }

    /// Parses artifact JSON; `name` only labels errors.
    pub fn from_json(name: &str, json: &str) -> Result<Self, ArtifactError> {
        serde_json::from_str(json).map_err(|source| ArtifactError::Parse {
            name: name.into(),
            source,
        })
    }

    /// Reads a mounted artifact file.
    pub fn from_file(path: &Path) -> Result<Self, ArtifactError> {
        let json = std::fs::read_to_string(path).map_err(|source| ArtifactError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&path.display().to_string(), &json)
    }

    /// Checks, before anything is sent to a chain, that the artifact is deployable in `role`:
    /// it has code, every ABI function's selector is dispatched by the runtime code, and the
    /// constructor has the role's arguments.
    pub fn check(&self, role: ArtifactRole) -> Result<(), ArtifactError> {
        let name = &self.contract_name;
        if self.bytecode.is_empty() || self.deployed_bytecode.is_empty() {
            return Err(ArtifactError::NotDeployable(name.clone()));
        }
        let missing: Vec<String> = self
            .abi
            .functions()
            .filter(|f| !dispatches_selector(&self.deployed_bytecode, f.selector().0))
            .map(|f| f.signature())
            .collect();
        if !missing.is_empty() {
            return Err(ArtifactError::BytecodeAbiMismatch {
                name: name.clone(),
                functions: missing,
            });
        }
        let expected = match role {
            ArtifactRole::Database => "address",
            ArtifactRole::Logic => "address,address,address",
        };
        let found = self
            .abi
            .constructor()
            .map(|c| {
                c.inputs
                    .iter()
                    .map(|p| p.ty.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if found != expected {
            return Err(ArtifactError::Constructor {
                name: name.clone(),
                expected,
                found,
            });
        }
        Ok(())
    }

    /// Creation code followed by the ABI-encoded constructor arguments (all addresses).
    pub fn initcode(&self, args: &[Address]) -> Bytes {
        let mut code = self.bytecode.to_vec();
        for a in args {
            code.extend_from_slice(B256::left_padding_from(a.as_slice()).as_slice());
        }
        code.into()
    }

    /// The runtime code after the constructor stored `immutables` (`Contract.variable` →
    /// 32-byte word).
    /// `None` when the code has immutable placeholders this artifact has no references for.
    pub fn runtime_code(&self, immutables: &BTreeMap<&str, B256>) -> Option<Bytes> {
        if self.immutable_references.is_empty() {
            return immutable_placeholders(&self.deployed_bytecode)
                .is_empty()
                .then(|| self.deployed_bytecode.clone());
        }
        let mut code = self.deployed_bytecode.to_vec();
        for (name, ranges) in &self.immutable_references {
            let word = immutables.get(name.as_str())?;
            for r in ranges {
                let slot = code.get_mut(r.start..r.start + r.length)?;
                slot.copy_from_slice(&word[32 - r.length..]);
            }
        }
        Some(code.into())
    }

    /// `keccak256` of [`Self::runtime_code`], what `EXTCODEHASH` returns once deployed.
    pub fn runtime_code_hash(&self, immutables: &BTreeMap<&str, B256>) -> Option<B256> {
        self.runtime_code(immutables).map(keccak256)
    }

    /// Whether `onchain` is this artifact's runtime code with only the immutable placeholders
    /// filled, each with one of `allowed` words. Used when the exact hash is not computable.
    pub fn matches_runtime(&self, onchain: &[u8], allowed: &[B256]) -> bool {
        let expected = &self.deployed_bytecode;
        if onchain.len() != expected.len() {
            return false;
        }
        let placeholders = immutable_placeholders(expected);
        let mut i = 0;
        let mut next = placeholders.iter().peekable();
        while i < expected.len() {
            if next.peek() == Some(&&i) {
                next.next();
                let word = &onchain[i..i + 32];
                if !(word.iter().all(|b| *b == 0) || allowed.iter().any(|w| w.as_slice() == word)) {
                    return false;
                }
                i += 32;
                continue;
            }
            if onchain[i] != expected[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// Whether the runtime code pushes `selector` (solc's dispatcher compares the calldata
/// selector with a `PUSHn` of it; leading zero bytes shorten the push).
fn dispatches_selector(code: &[u8], selector: [u8; 4]) -> bool {
    let significant: Vec<u8> = selector.iter().copied().skip_while(|b| *b == 0).collect();
    if significant.is_empty() {
        return true;
    }
    let mut needle = vec![0x5f + significant.len() as u8];
    needle.extend_from_slice(&significant);
    code.windows(needle.len()).any(|w| w == needle.as_slice())
}

/// Offsets of the data of `PUSH32 0x00..00` instructions: how solc leaves room for immutables
/// (the optimizer never emits a literal zero as PUSH32).
pub fn immutable_placeholders(code: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        if (0x60..=0x7f).contains(&op) {
            let n = (op - 0x5f) as usize;
            let data = code.get(i + 1..i + 1 + n).unwrap_or(&[]);
            if n == 32 && data.len() == 32 && data.iter().all(|b| *b == 0) {
                found.push(i + 1);
            }
            i += 1 + n;
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_database_is_deployable() {
        let db = Artifact::contract_database();
        db.check(ArtifactRole::Database).unwrap();
        assert!(db.check(ArtifactRole::Logic).is_err());
    }

    #[test]
    fn builtin_logic_templates_are_deployable() {
        for name in ["Shipping", "AssetTracking", "RecordStore"] {
            Artifact::builtin(name)
                .unwrap()
                .check(ArtifactRole::Logic)
                .unwrap();
        }
    }

    #[test]
    fn abstract_contract_is_not_deployable() {
        for name in ["KontraktContract", "KontraktOracle"] {
            let base = Artifact::builtin(name).unwrap();
            assert!(matches!(
                base.check(ArtifactRole::Logic),
                Err(ArtifactError::NotDeployable(_))
            ));
        }
    }

    #[test]
    fn unknown_template_lists_builtins() {
        let err = Artifact::builtin("Nope").unwrap_err().to_string();
        assert!(err.contains("ContractDatabase"), "{err}");
    }

    #[test]
    fn foreign_bytecode_is_rejected() {
        let mut db = Artifact::contract_database();
        // Code that dispatches nothing: every ABI function is missing.
        db.deployed_bytecode = Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xfd]);
        let err = db.check(ArtifactRole::Database).unwrap_err();
        assert!(
            matches!(err, ArtifactError::BytecodeAbiMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn placeholders_skip_push_data() {
        // PUSH2 0x7f00 must not be read as PUSH32.
        let mut code = vec![0x61, 0x7f, 0x00, 0x7f];
        code.extend([0u8; 32]);
        code.push(0x00);
        assert_eq!(immutable_placeholders(&code), vec![4]);
    }
}
