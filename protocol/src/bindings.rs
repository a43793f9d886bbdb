//! Typed bindings generated from the committed artifacts (`sidecar/contracts/out/`): one per
//! artifact, used by the sidecar to send and by both binaries to read.
#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    ContractDatabase,
    "../sidecar/contracts/out/ContractDatabase.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    KontraktContract,
    "../sidecar/contracts/out/KontraktContract.json"
);

// Each of the following in its own module: their ABIs name types of other contracts
// (`RecordCodec`'s `ReadingStatus`, `KontraktOracle.OracleRequestStatus`, the registry's
// `Status` and `MemberRecord`), which could clash with the bindings above.

/// The registry (`EnrollmentRegistry.sol`).
pub mod registry {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        EnrollmentRegistry,
        "../sidecar/contracts/out/EnrollmentRegistry.json"
    );
}
pub use registry::EnrollmentRegistry;

/// The oracle request bookkeeping (`OracleRequests`: the same functions and events in every
/// contract that uses the oracle) and the logic contracts' oracle base.
pub mod oracle {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        OracleRequests,
        "../sidecar/contracts/out/OracleRequests.json"
    );
    pub mod logic {
        alloy::sol!(
            #[sol(rpc)]
            #[derive(Debug)]
            KontraktOracle,
            "../sidecar/contracts/out/KontraktOracle.json"
        );
    }
    pub use logic::KontraktOracle;
}
pub use oracle::{KontraktOracle, OracleRequests};

/// The data marketplace (`DataMarket.sol`).
pub mod market {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        DataMarket,
        "../sidecar/contracts/out/DataMarket.json"
    );
}
pub use market::DataMarket;

pub mod record_store {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RecordStore,
        "../sidecar/contracts/out/RecordStore.json"
    );
}
pub use record_store::RecordStore;

pub mod record_store_monolithic {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RecordStoreMonolithic,
        "../sidecar/contracts/out/RecordStoreMonolithic.json"
    );
}
pub use record_store_monolithic::RecordStoreMonolithic;
