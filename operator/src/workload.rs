//! Pieces of the pods every controller runs (contract sidecars, stream
//! publishers): Pod Security "restricted", probes, key files from Secrets.

use k8s_openapi::{
    api::core::v1::{
        Capabilities, HTTPGetAction, KeyToPath, PodSecurityContext, Probe, SeccompProfile,
        SecretVolumeSource, SecurityContext, Volume,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

/// The non-root user the sidecar runs as (distroless "nonroot").
pub const RUN_AS: i64 = 65532;

/// Pod Security "restricted" for every container.
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pod Security "restricted" for the pod.
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An HTTP GET probe on the container's `http` port.
pub fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// One key of a Secret as the file `file` of volume `name`, readable by the
/// owner only; the value is mounted, never copied.
pub fn secret_file(name: &str, secret: &str, key: &str, file: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: file.into(),
                mode: None,
            }]),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..Default::default()
    }
}
