//! Typed bindings generated from the committed artifacts.
#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    ContractDatabase,
    "contracts/out/ContractDatabase.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    KontraktContract,
    "contracts/out/KontraktContract.json"
);

// Each in its own module: their ABIs name types of other contracts (`RecordCodec`'s
// `ReadingStatus`, `KontraktOracle.OracleRequestStatus` in the examples), which could clash
// with the bindings above.
pub mod record_store {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RecordStore,
        "contracts/out/RecordStore.json"
    );
}
pub use record_store::RecordStore;

pub mod record_store_monolithic {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RecordStoreMonolithic,
        "contracts/out/RecordStoreMonolithic.json"
    );
}
pub use record_store_monolithic::RecordStoreMonolithic;
