//! The one tracing setup of Kompox's binaries: logs filtered by `RUST_LOG`, else the binary's
//! default directives, as plain text or JSON lines; and, when an OTLP endpoint is configured
//! ([`crate::otlp`]), the same spans exported as OpenTelemetry traces.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What [`init_logging`] set up; call [`Telemetry::shutdown`] before exiting so the last spans
/// are sent.
#[derive(Debug)]
#[must_use = "dropping it stops the export of traces"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    #[must_use]
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter (waits at most the exporter's
    /// timeout).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "flushing the last traces failed");
            }
        }
    }
}

/// Installs the global tracing subscriber for the binary `service` (the OpenTelemetry
/// `service.name` unless `OTEL_SERVICE_NAME` says otherwise). `default_directives` apply when
/// `RUST_LOG` is unset or invalid (e.g. `"info"`, `"info,kube_lease_manager=warn"`). Traces
/// are exported when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; a configuration that cannot work
/// is logged and tracing stays off. Call it inside the tokio runtime. A second call changes
/// nothing.
pub fn init_logging(service: &str, default_directives: &str, json: bool) -> Telemetry {
    init_logging_to(
        service,
        default_directives,
        json,
        &crate::otlp::Destination::FromEnv,
    )
}

/// As [`init_logging`], exporting traces to `destination` (e.g. a process that embeds a
/// server and knows its collector's URL).
pub fn init_logging_to(
    service: &str,
    default_directives: &str,
    json: bool,
    destination: &crate::otlp::Destination,
) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directives));
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let (provider, problem) = match crate::otlp::provider(service, destination) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let otel = provider
        .as_ref()
        .map(|p| crate::otlp::layer(p).with_filter(filter_fn(exported)));
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(problem) = problem {
        tracing::error!(error = %problem, "OpenTelemetry tracing is off");
    }
    if !installed {
        return Telemetry { provider: None };
    }
    if provider.is_some() {
        tracing::info!(
            endpoint = destination.endpoint().as_deref().unwrap_or_default(),
            "exporting traces over OTLP (http/protobuf)"
        );
    }
    Telemetry { provider }
}

/// What goes into traces: spans of Kompox and kube (its client's `HTTP` spans are at debug)
/// at debug and above, and events at info and above (attached to their span). Not the
/// internals of hyper, h2 or tower.
fn exported(meta: &Metadata<'_>) -> bool {
    exported_kind(meta.is_span(), *meta.level(), meta.target())
}

fn exported_kind(span: bool, level: Level, target: &str) -> bool {
    if span {
        level <= Level::DEBUG && (target.starts_with("kompox") || target.starts_with("kube"))
    } else {
        level <= Level::INFO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn installs_once_and_a_second_call_is_harmless() {
        let t = init_logging("test", "info", true);
        assert!(tracing::dispatcher::has_been_set());
        assert!(!t.exports_traces(), "no endpoint configured");
        let again = init_logging("test", "debug", false);
        assert!(tracing::dispatcher::has_been_set());
        assert!(!again.exports_traces());
        t.shutdown().await;
    }

    #[rstest::rstest]
    #[case::kube_client_span(true, Level::DEBUG, "kube_client::client::builder", true)]
    #[case::kube_runtime_span(true, Level::INFO, "kube_runtime::controller", true)]
    #[case::kompox_span(true, Level::INFO, "kompox_controller::runtime", true)]
    #[case::kompox_trace_span(true, Level::TRACE, "kompox_serve::server", false)]
    #[case::h2_span(true, Level::DEBUG, "h2::proto::connection", false)]
    #[case::info_event(false, Level::INFO, "hyper_util::client", true)]
    #[case::debug_event(false, Level::DEBUG, "kompox_controller", false)]
    fn traces_take_kompox_and_kube_spans_and_info_events(
        #[case] span: bool,
        #[case] level: Level,
        #[case] target: &str,
        #[case] want: bool,
    ) {
        assert_eq!(exported_kind(span, level, target), want);
    }
}
