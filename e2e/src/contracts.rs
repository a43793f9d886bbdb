//! Bindings of the example contracts that the black-box tests and the demo
//! call as a user's application would: one `sol!` per committed artifact.

mod shipping {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        Shipping,
        "../sidecar/contracts/out/Shipping.json"
    );
}
pub use shipping::Shipping;
