//! Cleanup on delete: retire the logic contract on chain (the database stays
//! readable), then let the finalizer go so garbage collection removes the
//! owned objects.

use super::{
    SKIP_RETIRE_ANNOTATION,
    error::{Error, RetireError},
};
use crate::reconcile::publish;
use crate::{api::SmartContractService, context::Context};
use alloy::{
    primitives::Address,
    providers::{Provider, ProviderBuilder},
};
use k8s_openapi::api::core::v1::Secret;
use kontrakt_protocol::bindings::KontraktContract;
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
        .and_then(|text| kontrakt_protocol::key::parse_signer(&text));
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

    let url = rpc_url
        .parse()
        .map_err(|_| RetireError::InvalidUrl(rpc_url.clone()))?;
    let provider = ProviderBuilder::new().wallet(signer).connect_http(url);
    let limit = ctx.settings.chain_timeout;
    let unanswered = |call| {
        move |_| RetireError::Unanswered {
            call,
            secs: limit.as_secs(),
        }
    };
    let failed = |call| {
        move |e: &dyn std::fmt::Display| RetireError::Rpc {
            call,
            reason: e.to_string(),
        }
    };
    let expected = u64::try_from(scs.spec.chain.chain_id).unwrap_or_default();
    let actual = tokio::time::timeout(limit, provider.get_chain_id())
        .await
        .map_err(unanswered("eth_chainId"))?
        .map_err(|e| failed("eth_chainId")(&e))?;
    if actual != expected {
        return Err(RetireError::WrongChain { expected, actual }.into());
    }
    let code = tokio::time::timeout(limit, provider.get_code_at(logic).into_future())
        .await
        .map_err(unanswered("eth_getCode"))?
        .map_err(|e| failed("eth_getCode")(&e))?;
    if code.is_empty() {
        return skip(
            "RetireSkipped",
            format!("no contract code at {logic}: nothing to retire"),
        )
        .await;
    }
    let contract = KontraktContract::new(logic, &provider);
    let retired = tokio::time::timeout(limit, contract.retired().call().into_future())
        .await
        .map_err(unanswered("retired()"))?
        .map_err(|e| failed("retired()")(&e))?;
    if !retired {
        let receipt = contract
            .retire()
            .send()
            .await
            .map_err(|e| failed("retire()")(&e))?
            .with_timeout(Some(limit * 6))
            .get_receipt()
            .await
            .map_err(|e| failed("retire()")(&e))?;
        if !receipt.status() {
            return Err(RetireError::Reverted(receipt.transaction_hash).into());
        }
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
