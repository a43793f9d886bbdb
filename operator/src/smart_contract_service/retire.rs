//! Cleanup on delete: retire the logic contract on chain (the database stays
//! readable), then let the finalizer go so garbage collection removes the
//! owned objects.

use super::{SKIP_RETIRE_ANNOTATION, error::Error, publish};
use crate::{api::SmartContractService, context::Context};
use alloy::{
    primitives::Address, providers::Provider, rpc::types::TransactionRequest, sol_types::SolCall,
};
use k8s_openapi::api::core::v1::Secret;
use kontrakt_sidecar::{
    artifact::Artifact,
    bindings::KontraktContract,
    chain::Chain,
    config::{ChainConfig, RetryConfig},
};
use kube::{Api, Resource, ResourceExt, runtime::controller::Action, runtime::events::EventType};
use tracing::info;

pub async fn cleanup(scs: &SmartContractService, ctx: &Context) -> Result<Action, Error> {
    let reference = scs.object_ref(&());
    let skip = |reason: &'static str, note: String| async move {
        publish(ctx, &scs.object_ref(&()), EventType::Warning, reason, &note).await;
        Ok(Action::await_change())
    };
    if scs
        .annotations()
        .get(SKIP_RETIRE_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        return skip(
            "RetireSkipped",
            format!("{SKIP_RETIRE_ANNOTATION} is set; the contract is left as it is"),
        )
        .await;
    }
    let Some(logic) = scs
        .status
        .as_ref()
        .and_then(|s| s.contract_address.as_deref())
        .and_then(|a| a.parse::<Address>().ok())
    else {
        return skip(
            "RetireSkipped",
            "no contract was deployed for this service".into(),
        )
        .await;
    };
    let Some(rpc_url) = scs.spec.chain.rpc_url.clone() else {
        return skip(
            "RetireSkipped",
            "no chain.rpcUrl to retire the contract through".into(),
        )
        .await;
    };

    let namespace = scs.namespace().unwrap_or_default();
    let key_ref = &scs.spec.signer.secret_key_ref;
    let key = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&key_ref.name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&key_ref.key))
        .and_then(|b| String::from_utf8(b.0).ok())
        .and_then(|text| kontrakt_sidecar::key::parse_signer(&text));
    let Some(signer) = key else {
        // Deleting a namespace removes the Secret too; holding the object forever would block that.
        return skip(
            "RetireSkipped",
            format!(
                "signer Secret {:?} is gone; the contract at {logic} stays active",
                key_ref.name
            ),
        )
        .await;
    };

    let config = ChainConfig {
        rpc_url,
        chain_id: u64::try_from(scs.spec.chain.chain_id).unwrap_or_default(),
        retry: RetryConfig {
            max_attempts: 2,
            ..Default::default()
        },
    };
    let chain = Chain::connect(&config, signer)
        .await
        .map_err(|e| Error::Retire(e.to_string()))?;
    let provider = chain.provider();
    let code = provider
        .get_code_at(logic)
        .await
        .map_err(|e| Error::Retire(e.to_string()))?;
    if code.is_empty() {
        return skip(
            "RetireSkipped",
            format!("no contract code at {logic}: nothing to retire"),
        )
        .await;
    }
    let retired = KontraktContract::new(logic, provider)
        .retired()
        .call()
        .await
        .map_err(|e| Error::Retire(e.to_string()))?;
    if !retired {
        let abi = Artifact::builtin("KontraktContract").map(|a| a.abi).ok();
        let abis: Vec<_> = abi.iter().collect();
        let tx = TransactionRequest::default()
            .to(logic)
            .input(KontraktContract::retireCall {}.abi_encode().into());
        let receipt = chain
            .send("retire", tx, &abis)
            .await
            .map_err(|e| Error::Retire(e.to_string()))?;
        info!(object = %reference.name.clone().unwrap_or_default(), %logic, tx = %receipt.transaction_hash, "retired contract");
    }
    publish(
        ctx,
        &reference,
        EventType::Normal,
        "Retired",
        &format!("contract at {logic} retired; its database stays readable"),
    )
    .await;
    Ok(Action::await_change())
}
