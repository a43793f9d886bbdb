//! The operator binary's flags, each with a `KONTRAKT_*` (or downward-API) env fallback.

use crate::context::Settings;
use crate::leader::LeaseConfig;
use crate::telemetry::LogFormat;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a set of flags cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--renew-seconds ({renew}) must be less than --lease-duration-seconds ({duration}): \
         the leader gives up after (duration - renew) without a successful renew"
    )]
    RenewNotShorterThanLease { renew: u32, duration: u32 },
}

/// Flags of `kontrakt-operator`.
#[derive(Clone, Debug, Parser)]
#[command(name = "kontrakt-operator", version, about)]
pub struct OperatorConfig {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "KONTRAKT_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Log format.
    #[arg(long, env = "KONTRAKT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing-subscriber `EnvFilter` directives).
    #[arg(long, env = "KONTRAKT_LOG_FILTER", default_value = "info")]
    pub log_filter: String,

    /// Image of the contract sidecar container.
    #[arg(long, env = "KONTRAKT_SIDECAR_IMAGE", default_value_t = Settings::default().sidecar_image)]
    pub sidecar_image: String,

    /// How often a Ready object is reconciled again without a watch event.
    #[arg(long, env = "KONTRAKT_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,

    /// Timeout of one read-only chain call made while computing status.
    #[arg(long, env = "KONTRAKT_CHAIN_TIMEOUT_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub chain_timeout_seconds: u64,

    /// Reconcile objects in this namespace only (default: all namespaces).
    #[arg(long, env = "KONTRAKT_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Run the controllers only while holding the Lease (`--leader-election=false` for a single replica).
    #[arg(
        long,
        env = "KONTRAKT_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kontrakt-system")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, env = "KONTRAKT_LEASE_NAME", default_value = "kontrakt-operator")]
    pub lease_name: String,

    /// This replica's identity in the Lease (defaults to hostname_pid).
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    pub identity: String,

    /// How long a Lease stays held without a renew before a standby takes it over.
    #[arg(long, env = "KONTRAKT_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub lease_duration_seconds: u32,

    /// How often the leader renews the Lease (and a standby looks at it).
    #[arg(long, env = "KONTRAKT_RENEW_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub renew_seconds: u32,
}

impl OperatorConfig {
    /// Checks what clap cannot: relations between flags.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.leader_election && self.renew_seconds >= self.lease_duration_seconds {
            return Err(ConfigError::RenewNotShorterThanLease {
                renew: self.renew_seconds,
                duration: self.lease_duration_seconds,
            });
        }
        Ok(())
    }

    /// The settings the controllers read from their [`crate::context::Context`].
    pub fn settings(&self) -> Settings {
        Settings {
            sidecar_image: self.sidecar_image.clone(),
            resync: Duration::from_secs(self.resync_seconds),
            chain_timeout: Duration::from_secs(self.chain_timeout_seconds),
            watch_namespace: self.watch_namespace.clone(),
        }
    }

    /// The Lease to hold, or `None` when leader election is off.
    pub fn lease(&self) -> Option<LeaseConfig> {
        self.leader_election.then(|| LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity: self.identity.clone(),
            lease_duration: Duration::from_secs(self.lease_duration_seconds.into()),
            renew: Duration::from_secs(self.renew_seconds.into()),
        })
    }
}

/// Outside Kubernetes (no `POD_NAME`): unique per process, readable in `kubectl get lease`.
fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "kontrakt-operator".into());
    format!("{host}_{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    // clap reads env fallbacks from the process environment, so these tests set the real
    // variables, serialised by this lock (cargo runs one binary's tests on several threads).
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    const VARS: &[&str] = &[
        "KONTRAKT_LISTEN",
        "KONTRAKT_LOG_FORMAT",
        "KONTRAKT_LOG_FILTER",
        "KONTRAKT_SIDECAR_IMAGE",
        "KONTRAKT_RESYNC_SECONDS",
        "KONTRAKT_CHAIN_TIMEOUT_SECONDS",
        "KONTRAKT_LEADER_ELECTION",
        "POD_NAMESPACE",
        "KONTRAKT_LEASE_NAME",
        "POD_NAME",
        "KONTRAKT_LEASE_DURATION_SECONDS",
        "KONTRAKT_RENEW_SECONDS",
    ];

    /// Runs `f` with exactly `vars` set among the variables the config reads.
    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every test that touches the environment holds `ENV`, and nothing else in
        // this test binary reads these variables.
        unsafe {
            for v in VARS {
                std::env::remove_var(v);
            }
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let out = f();
        unsafe {
            for (k, _) in vars {
                std::env::remove_var(k);
            }
        }
        out
    }

    fn parse(args: &[&str]) -> Result<OperatorConfig, clap::Error> {
        OperatorConfig::try_parse_from(
            std::iter::once("kontrakt-operator").chain(args.iter().copied()),
        )
    }

    #[test]
    fn clap_definition_is_consistent() {
        OperatorConfig::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let c = with_env(&[], || parse(&[])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.sidecar_image, Settings::default().sidecar_image);
        assert!(c.leader_election);
        assert_eq!(c.lease_namespace, "kontrakt-system");
        assert_eq!(c.lease_name, "kontrakt-operator");
        assert!(
            c.identity.ends_with(&format!("_{}", std::process::id())),
            "{}",
            c.identity
        );
        c.validate().unwrap();

        let s = c.settings();
        assert_eq!(s.resync, Duration::from_secs(300));
        assert_eq!(s.chain_timeout, Duration::from_secs(5));
        let lease = c.lease().unwrap();
        assert_eq!(lease.lease_duration, Duration::from_secs(15));
        assert_eq!(lease.renew, Duration::from_secs(5));
    }

    #[test]
    fn env_fallbacks() {
        let env = [
            ("KONTRAKT_LISTEN", "127.0.0.1:9090"),
            ("KONTRAKT_LOG_FORMAT", "json"),
            ("KONTRAKT_LOG_FILTER", "debug"),
            ("KONTRAKT_SIDECAR_IMAGE", "registry.local/sidecar:1"),
            ("KONTRAKT_RESYNC_SECONDS", "60"),
            ("KONTRAKT_CHAIN_TIMEOUT_SECONDS", "2"),
            ("KONTRAKT_LEADER_ELECTION", "false"),
            ("POD_NAMESPACE", "ops"),
            ("KONTRAKT_LEASE_NAME", "kontrakt-lease"),
            ("POD_NAME", "kontrakt-operator-7f9c-abcde"),
            ("KONTRAKT_LEASE_DURATION_SECONDS", "30"),
            ("KONTRAKT_RENEW_SECONDS", "10"),
        ];
        let c = with_env(&env, || parse(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_filter, "debug");
        assert_eq!(c.settings().sidecar_image, "registry.local/sidecar:1");
        assert_eq!(c.settings().resync, Duration::from_secs(60));
        assert_eq!(c.settings().chain_timeout, Duration::from_secs(2));
        assert!(!c.leader_election);
        assert!(c.lease().is_none());
        assert_eq!(c.lease_namespace, "ops");
        assert_eq!(c.lease_name, "kontrakt-lease");
        assert_eq!(c.identity, "kontrakt-operator-7f9c-abcde");
        assert_eq!(c.lease_duration_seconds, 30);
        assert_eq!(c.renew_seconds, 10);
    }

    #[test]
    fn flags_win_over_env() {
        let c = with_env(
            &[("KONTRAKT_LOG_FORMAT", "json"), ("POD_NAME", "from-env")],
            || {
                parse(&[
                    "--log-format",
                    "text",
                    "--identity",
                    "from-flag",
                    "--leader-election=false",
                ])
            },
        )
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.identity, "from-flag");
        assert!(!c.leader_election);
    }

    #[test]
    fn leader_election_flag_forms() {
        let bare = with_env(&[("KONTRAKT_LEADER_ELECTION", "false")], || {
            parse(&["--leader-election"])
        })
        .unwrap();
        assert!(bare.leader_election, "a bare flag turns it on");
        let yes = with_env(&[("KONTRAKT_LEADER_ELECTION", "yes")], || parse(&[])).unwrap();
        assert!(yes.leader_election);
        let off = with_env(&[("KONTRAKT_LEADER_ELECTION", "0")], || parse(&[])).unwrap();
        assert!(!off.leader_election);
    }

    #[test]
    fn rejects_bad_values() {
        let kind = |args: &[&str]| with_env(&[], || parse(args)).unwrap_err().kind();
        assert_eq!(kind(&["--log-format", "yaml"]), ErrorKind::InvalidValue);
        assert_eq!(
            kind(&["--listen", "not-an-address"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["--resync-seconds", "0"]), ErrorKind::ValueValidation);
        let bad_env = with_env(&[("KONTRAKT_RENEW_SECONDS", "soon")], || parse(&[])).unwrap_err();
        assert_eq!(bad_env.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn renew_must_be_shorter_than_the_lease() {
        let c = with_env(&[], || {
            parse(&["--lease-duration-seconds", "5", "--renew-seconds", "5"])
        })
        .unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RenewNotShorterThanLease {
                renew: 5,
                duration: 5
            })
        ));
        let off = with_env(&[], || {
            parse(&[
                "--leader-election=false",
                "--lease-duration-seconds",
                "5",
                "--renew-seconds",
                "5",
            ])
        })
        .unwrap();
        off.validate().unwrap();
    }
}
