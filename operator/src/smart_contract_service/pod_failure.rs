//! Why a service's pods do not run, as the kubelet reports it: a container
//! waiting for a reason that does not clear by itself (a crash loop, an image
//! that cannot be pulled, a volume or env that cannot be set up). Named in
//! Ready=False, so the user sees `CrashLoopBackOff` on the SmartContractService
//! instead of a Deployment that silently never becomes available.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The kubelet's waiting reasons that mean "will not start without a fix".
/// (`ContainerCreating`, `PodInitializing` are progress, not failures.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFailure {
    CrashLoopBackOff,
    ImagePullBackOff,
    ErrImagePull,
    ErrImageNeverPull,
    InvalidImageName,
    CreateContainerConfigError,
    CreateContainerError,
    RunContainerError,
}

impl PodFailure {
    const ALL: [PodFailure; 8] = [
        PodFailure::CrashLoopBackOff,
        PodFailure::ImagePullBackOff,
        PodFailure::ErrImagePull,
        PodFailure::ErrImageNeverPull,
        PodFailure::InvalidImageName,
        PodFailure::CreateContainerConfigError,
        PodFailure::CreateContainerError,
        PodFailure::RunContainerError,
    ];

    /// The kubelet's word for it, used as the condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            PodFailure::CrashLoopBackOff => "CrashLoopBackOff",
            PodFailure::ImagePullBackOff => "ImagePullBackOff",
            PodFailure::ErrImagePull => "ErrImagePull",
            PodFailure::ErrImageNeverPull => "ErrImageNeverPull",
            PodFailure::InvalidImageName => "InvalidImageName",
            PodFailure::CreateContainerConfigError => "CreateContainerConfigError",
            PodFailure::CreateContainerError => "CreateContainerError",
            PodFailure::RunContainerError => "RunContainerError",
        }
    }

    fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.reason() == reason)
    }
}

/// One failing container of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTrouble {
    pub failure: PodFailure,
    pub pod: String,
    pub container: String,
    /// The kubelet's message (no secret values: names and back-off times).
    pub message: String,
}

impl PodTrouble {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "pod {} container {}: {}",
            self.pod,
            self.container,
            self.failure.reason()
        );
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

/// The first failing container of `pods`, by pod name (init containers first),
/// so the same pods always give the same answer. Pure.
pub fn find(pods: &[Pod]) -> Option<PodTrouble> {
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.into_iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        let statuses = status.init_container_statuses.iter().flatten();
        statuses
            .chain(status.container_statuses.iter().flatten())
            .find_map(|c| waiting(pod, c))
    })
}

fn waiting(pod: &Pod, c: &ContainerStatus) -> Option<PodTrouble> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let failure = PodFailure::from_reason(waiting.reason.as_deref()?)?;
    Some(PodTrouble {
        failure,
        pod: pod.metadata.name.clone().unwrap_or_default(),
        container: c.name.clone(),
        message: waiting.message.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "status": { "containerStatuses": statuses }
        }))
        .expect("a pod")
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!([{
            "name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
            "state": { "waiting": { "reason": reason, "message": message } }
        }])
    }

    #[test]
    fn names_a_crash_loop_with_the_kubelets_message() {
        let pods = [pod(
            "svc-1",
            waiting(
                "CrashLoopBackOff",
                "back-off 20s restarting failed container",
            ),
        )];
        let t = find(&pods).expect("a failure");
        assert_eq!(t.failure, PodFailure::CrashLoopBackOff);
        assert_eq!(
            t.describe(),
            "pod svc-1 container sidecar: CrashLoopBackOff: back-off 20s restarting failed container"
        );
    }

    #[test]
    fn progress_is_not_a_failure() {
        let pods = [
            pod("a", waiting("ContainerCreating", "")),
            pod("b", serde_json::json!([])),
        ];
        assert_eq!(find(&pods), None);
    }

    #[test]
    fn the_first_pod_by_name_decides() {
        let pods = [
            pod("b", waiting("ImagePullBackOff", "")),
            pod(
                "a",
                waiting("CreateContainerConfigError", "secret \"k\" not found"),
            ),
        ];
        assert_eq!(
            find(&pods).map(|t| t.failure),
            Some(PodFailure::CreateContainerConfigError)
        );
    }
}
