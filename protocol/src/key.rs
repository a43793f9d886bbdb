//! The signing key, read from a mounted file. The key itself never appears in an error or log.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signer key file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read signer key file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "signer key file {0} does not hold a private key (expected 64 hex digits, optionally 0x-prefixed)"
    )]
    Garbled(PathBuf),
}

/// Loads the hex private key in `path` (surrounding whitespace and a `0x` prefix allowed).
pub fn load_signer(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing(path.to_owned()),
        // Binary garbage is garbled, not unreadable.
        std::io::ErrorKind::InvalidData => KeyError::Garbled(path.to_owned()),
        _ => KeyError::Unreadable {
            path: path.to_owned(),
            source,
        },
    })?;
    parse_signer(&text).ok_or_else(|| KeyError::Garbled(path.to_owned()))
}

/// Parses a hex private key (surrounding whitespace and a `0x` prefix allowed). The one
/// parser of key material: the sidecar reads it from its mounted file, the operator from
/// the referenced Secret's bytes. `None` says only that it is not a key, never why.
pub fn parse_signer(text: &str) -> Option<PrivateKeySigner> {
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    hex.parse::<PrivateKeySigner>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn loads_a_hex_key_with_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let signer = load_signer(&path).unwrap();
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn errors_name_the_file_and_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let err = load_signer(&missing).unwrap_err().to_string();
        assert!(
            err.contains("absent") && err.contains("does not exist"),
            "{err}"
        );

        let garbled = dir.path().join("garbled");
        let almost = format!("{}zz", &KEY[..64]);
        std::fs::write(&garbled, &almost).unwrap();
        let err = load_signer(&garbled).unwrap_err().to_string();
        assert!(
            err.contains("garbled") && !err.contains(&KEY[2..20]),
            "{err}"
        );

        std::fs::write(&garbled, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(load_signer(&garbled), Err(KeyError::Garbled(_))));
    }
}
