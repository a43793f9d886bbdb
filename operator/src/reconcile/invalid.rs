//! A spec that cannot work as written, and why: the reason is a type, and its variant
//! decides the Event and condition reason and when the object is looked at again.

use std::fmt;

/// Why a spec cannot work as written. [`InvalidReason::as_str`] is the stable Event and
/// condition reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    SignerSecretNotFound,
    SignerKeyInvalid,
    RpcUrlSecretNotSupported,
    ArtifactNotFound,
    ArtifactInvalid,
    ArtifactMissing,
    DatabaseAddressInvalid,
    DatabaseAddressMissing,
    AccessPolicyNotFound,
    RegistryNotFound,
    RegistrySignerNotFound,
    VersionInvalid,
    ChainIdInvalid,
    SidecarConfigInvalid,
    SellerNotFound,
    StreamConfigInvalid,
}

impl InvalidReason {
    /// The Event and condition reason.
    pub fn as_str(self) -> &'static str {
        use InvalidReason::*;
        match self {
            SignerSecretNotFound => "SignerSecretNotFound",
            SignerKeyInvalid => "SignerKeyInvalid",
            RpcUrlSecretNotSupported => "RpcUrlSecretNotSupported",
            ArtifactNotFound => "ArtifactNotFound",
            ArtifactInvalid => "ArtifactInvalid",
            ArtifactMissing => "ArtifactMissing",
            DatabaseAddressInvalid => "DatabaseAddressInvalid",
            DatabaseAddressMissing => "DatabaseAddressMissing",
            AccessPolicyNotFound => "AccessPolicyNotFound",
            RegistryNotFound => "RegistryNotFound",
            RegistrySignerNotFound => "RegistrySignerNotFound",
            VersionInvalid => "VersionInvalid",
            ChainIdInvalid => "ChainIdInvalid",
            SidecarConfigInvalid => "SidecarConfigInvalid",
            SellerNotFound => "SellerNotFound",
            StreamConfigInvalid => "StreamConfigInvalid",
        }
    }

    /// A referenced object is missing. Secrets, ConfigMaps and the objects a controller
    /// does not watch can appear without a watch event, so such a spec is looked at
    /// again after a while; any other invalid spec waits for its own change.
    pub fn is_missing_reference(self) -> bool {
        use InvalidReason::*;
        matches!(
            self,
            SignerSecretNotFound
                | ArtifactNotFound
                | AccessPolicyNotFound
                | RegistryNotFound
                | RegistrySignerNotFound
                | SellerNotFound
        )
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reasons compare with their text, as tests and conditions spell them.
impl PartialEq<&str> for InvalidReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A spec that cannot work as written: reported as `Ready=False` with the reason and an
/// Event, never retried in a hot loop. The message says what to fix and never holds a
/// secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Invalid {
    pub reason: InvalidReason,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: InvalidReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_references_are_looked_at_again_and_other_reasons_wait() {
        assert!(InvalidReason::SignerSecretNotFound.is_missing_reference());
        assert!(InvalidReason::SellerNotFound.is_missing_reference());
        assert!(!InvalidReason::SignerKeyInvalid.is_missing_reference());
        assert!(!InvalidReason::VersionInvalid.is_missing_reference());
        assert_eq!(
            Invalid::new(InvalidReason::ChainIdInvalid, "must be >= 1").to_string(),
            "ChainIdInvalid: must be >= 1"
        );
    }
}
