//! The one tracing setup of Kompox's binaries: the filter from `RUST_LOG`, else the binary's
//! default directives; plain text, or JSON lines with `json`.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. `default_directives` apply when `RUST_LOG` is unset
/// or invalid (e.g. `"info"`, `"info,kube_lease_manager=warn"`). A second call changes nothing.
pub fn init_logging(default_directives: &str, json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directives));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_set = if json {
        fmt.json().try_init()
    } else {
        fmt.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_a_second_call_is_harmless() {
        init_logging("info", true);
        assert!(tracing::dispatcher::has_been_set());
        init_logging("debug", false);
        assert!(tracing::dispatcher::has_been_set());
    }
}
