//! Structured logs: human-readable text or one JSON object per line.

use tracing_subscriber::EnvFilter;

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already set: {0}")]
    AlreadySet(String),
}

/// Installs the global subscriber; `filter` takes `EnvFilter` directives (`info,kube=warn`).
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => logs.try_init(),
        // Flattened so `message` and the event's fields sit at the top level for log pipelines.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    installed.map_err(|e| TelemetryError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_an_invalid_filter() {
        let err = init(LogFormat::Json, "info,=[").unwrap_err();
        assert!(matches!(err, TelemetryError::Filter { .. }), "{err}");
    }
}
