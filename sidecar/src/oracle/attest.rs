//! Attestations: the oracle key's EIP-191 signatures that `KontraktOracle.fulfil` and
//! `fulfilError` check on chain. The digests are the contract's `oracleResultDigest` and
//! `oracleErrorDigest`, computed here without a chain (a test compares both).

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;

/// `KontraktOracle.ORACLE_ERROR_DOMAIN`: keeps error attestations apart from result ones.
pub fn error_domain() -> B256 {
    keccak256("KontraktOracle.fulfilError")
}

/// keccak256(abi.encode(chainid, contract, id, keccak256(result))).
pub fn result_digest(chain_id: u64, contract: Address, id: B256, result: &[u8]) -> B256 {
    keccak256((U256::from(chain_id), contract, id, keccak256(result)).abi_encode())
}

/// keccak256(abi.encode(chainid, contract, id, ORACLE_ERROR_DOMAIN, uint256(code))).
pub fn error_digest(chain_id: u64, contract: Address, id: B256, code: u16) -> B256 {
    keccak256(
        (
            U256::from(chain_id),
            contract,
            id,
            error_domain(),
            U256::from(code),
        )
            .abi_encode(),
    )
}

/// The 65-byte `r ‖ s ‖ v` (v 27/28) EIP-191 signature of `digest`, as the contract expects.
pub fn sign(key: &PrivateKeySigner, digest: B256) -> Result<Bytes, alloy::signers::Error> {
    let signature = key.sign_message_sync(digest.as_slice())?;
    Ok(Bytes::copy_from_slice(&signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_recover_to_the_oracle_key() {
        let key = PrivateKeySigner::random();
        let digest = result_digest(1, Address::repeat_byte(1), B256::repeat_byte(2), b"r");
        let sig = sign(&key, digest).unwrap();
        assert_eq!(sig.len(), 65);
        assert!(sig[64] == 27 || sig[64] == 28);
        let parsed = alloy::primitives::Signature::from_raw(&sig).unwrap();
        assert_eq!(
            parsed.recover_address_from_msg(digest.as_slice()).unwrap(),
            key.address()
        );
    }

    #[test]
    fn result_and_error_digests_never_coincide() {
        let (c, id) = (Address::repeat_byte(1), B256::repeat_byte(2));
        assert_ne!(result_digest(1, c, id, b""), error_digest(1, c, id, 0));
        assert_ne!(error_digest(1, c, id, 1), error_digest(1, c, id, 2));
        assert_ne!(error_digest(1, c, id, 1), error_digest(2, c, id, 1));
    }
}
