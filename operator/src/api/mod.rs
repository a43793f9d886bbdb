//! The kontrakt API: custom resource types of group `kontrakt.dev`, version `v1alpha1`.
//!
//! Pure types, no I/O. Everything that can be checked without I/O is checked at
//! admission by the schema and its CEL rules, so a bad object never reaches the
//! controller; what needs I/O (a Secret exists, the chain answers) is reported by
//! the controllers as `Ready=False` with a reason.

mod access_policy;
mod common;
mod data_stream;
mod smart_contract_service;

pub use access_policy::*;
pub use common::*;
pub use data_stream::*;
pub use smart_contract_service::*;

/// API group of every kontrakt resource.
pub const GROUP: &str = "kontrakt.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every CRD kontrakt defines, in the order `crdgen` writes them.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        SmartContractService::crd(),
        DataStream::crd(),
        AccessPolicy::crd(),
    ]
}

#[cfg(test)]
mod schema_tests;
