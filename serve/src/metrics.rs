//! Prometheus metrics shared by the servers: the build, request count and latency, the
//! expiry of the certificates served with, plus whatever each server registers in the same
//! registry, served at `/metrics`.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::TypedMetric as _;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

use crate::error::Result;
use crate::respond::{text, with_type};

/// `Content-Type` of [`Metrics::response`] (prometheus-client encodes OpenMetrics text).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    component: String,
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    certificate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// A Prometheus registry with what every server records:
///
/// - `kompox_build_info{component,version}` (1; `component` is the prefix without `kompox_`)
/// - `<prefix>_http_requests_total{route,method,code}` (counter)
/// - `<prefix>_http_request_duration_seconds{route,method}` (histogram)
/// - `<prefix>_certificate_expiry_timestamp_seconds{certificate}` (gauge, once
///   [`Metrics::watch_certificates`] is called): `serving` and `client_ca`
///
/// Cheap to clone; clones share the registry. Servers add their own metrics with
/// [`Metrics::register`].
#[derive(Clone)]
pub struct Metrics {
    prefix: Arc<str>,
    registry: Arc<RwLock<Registry>>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry whose metric names all start with `prefix` (e.g. `kompox_webhook`).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        // No registry-wide prefix: `kompox_build_info` is the same name in every server.
        let mut registry = Registry::default();
        registry.register(
            "kompox_build",
            "The running build: component and version",
            Info::new(BuildLabels {
                component: prefix.strip_prefix("kompox_").unwrap_or(prefix).to_owned(),
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            format!("{prefix}_http_requests"),
            "HTTP requests handled, by route, method and status code",
            requests.clone(),
        );
        registry.register(
            format!("{prefix}_http_request_duration_seconds"),
            "HTTP request handling latency in seconds, by route and method",
            duration.clone(),
        );
        Self {
            prefix: prefix.into(),
            registry: Arc::new(RwLock::new(registry)),
            requests,
            duration,
        }
    }

    /// Registers a server-specific metric under the same prefix. Keep a clone of `metric`
    /// to update it (prometheus-client metrics are shared handles).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .register(format!("{}_{name}", self.prefix), help, metric);
    }

    /// Exports `<prefix>_certificate_expiry_timestamp_seconds{certificate}`, read from `tls`
    /// at every scrape (so a renewed or rotated certificate shows at once): `serving` (the
    /// leaf) and `client_ca` (the earliest in the bundle), each only while it is loaded.
    /// Alert on `… - time() < 7 * 86400`.
    pub fn watch_certificates(&self, tls: &crate::ReloadableTls) {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(CertificateExpiryCollector {
                name: format!("{}_certificate_expiry_timestamp_seconds", self.prefix),
                tls: tls.clone(),
            }));
    }

    /// Records one handled request. `route` must be a fixed route name or template
    /// (`"/apis/{group}/{version}"`, `"mutate"`), never the raw path, to bound cardinality;
    /// the method is recorded as [`method_label`] (a closed set). Called inside a request's
    /// span, it also records the route there (`http.route`).
    pub fn observe(&self, route: &str, method: &Method, code: StatusCode, elapsed: Duration) {
        let method = method_label(method);
        // The request's span (crate::server) gets the route as `http.route`.
        tracing::Span::current().record("http.route", route);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                code: code.as_u16(),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The registry in OpenMetrics text format.
    ///
    /// # Errors
    ///
    /// [`crate::Error::MetricsEncode`] if a metric fails to encode.
    pub fn encode(&self) -> Result<String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(
            &mut out,
            &self.registry.read().unwrap_or_else(PoisonError::into_inner),
        )?;
        Ok(out)
    }

    /// The `/metrics` response: `200` with [`Metrics::encode`], or `500` if encoding fails.
    #[must_use]
    pub fn response(&self) -> Response<Full<Bytes>> {
        match self.encode() {
            Ok(body) => with_type(StatusCode::OK, Bytes::from(body), METRICS_CONTENT_TYPE),
            Err(e) => {
                tracing::error!(error = %e, "encoding metrics failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding metrics failed\n",
                )
            }
        }
    }
}

/// `<prefix>_certificate_expiry_timestamp_seconds`, read at scrape time.
#[derive(Debug)]
struct CertificateExpiryCollector {
    name: String,
    tls: crate::ReloadableTls,
}

impl Collector for CertificateExpiryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), fmt::Error> {
        let expiry = self.tls.expiry();
        let series = [("serving", expiry.serving), ("client_ca", expiry.client_ca)];
        if series.iter().all(|(_, t)| t.is_none()) {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            &self.name,
            "When a certificate this server uses expires (notAfter), in seconds since the Unix epoch",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for (certificate, at) in series {
            if let Some(at) = at {
                ConstGauge::new(at)
                    .encode(metric.encode_family(&CertificateLabel { certificate })?)?;
            }
        }
        Ok(())
    }
}

/// A request method as a metric label: one of the standard methods, else `"other"` — the
/// method is whatever the client sent, and every distinct label value is a series kept until
/// restart.
#[must_use]
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn methods_are_a_closed_set() {
        let m = Metrics::new("t");
        for i in 0..200 {
            let Ok(method) = Method::from_bytes(format!("X{i:0>1000}").as_bytes()) else {
                panic!("extension method {i}")
            };
            m.observe("r", &method, StatusCode::METHOD_NOT_ALLOWED, Duration::ZERO);
        }
        m.observe("r", &Method::GET, StatusCode::OK, Duration::ZERO);
        let out = m.encode().unwrap();
        assert!(
            out.contains(r#"t_http_requests_total{route="r",method="other",code="405"} 200"#),
            "{out}"
        );
        assert!(out.contains(r#"method="GET""#), "{out}");
        assert!(out.len() < 4096, "{} bytes", out.len());
    }

    #[test]
    fn encodes_request_metrics_and_extra_metrics() {
        let m = Metrics::new("kompox_webhook");
        let extra = Gauge::<i64>::default();
        m.register("certificate_reloads", "Certificate reloads", extra.clone());
        extra.set(3);
        m.observe(
            "mutate",
            &Method::POST,
            StatusCode::OK,
            Duration::from_millis(3),
        );
        m.clone().observe(
            "mutate",
            &Method::POST,
            StatusCode::OK,
            Duration::from_millis(5),
        );
        m.observe(
            "mutate",
            &Method::POST,
            StatusCode::BAD_REQUEST,
            Duration::from_millis(1),
        );

        let out = m.encode().unwrap();
        assert!(
            out.contains(
                r#"kompox_webhook_http_requests_total{route="mutate",method="POST",code="200"} 2"#
            ),
            "{out}"
        );
        assert!(out.contains(r#"code="400"} 1"#), "{out}");
        assert!(
            out.contains(
                r#"kompox_webhook_http_request_duration_seconds_count{route="mutate",method="POST"} 3"#
            ),
            "{out}"
        );
        assert!(
            out.contains("kompox_webhook_certificate_reloads 3"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                r#"kompox_build_info{{component="webhook",version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            )),
            "{out}"
        );
        assert!(!out.contains("certificate_expiry"), "not watched: {out}");
        assert!(out.ends_with("# EOF\n"), "{out}");

        let resp = m.response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[http::header::CONTENT_TYPE],
            METRICS_CONTENT_TYPE
        );
    }

    #[test]
    fn certificate_expiry_follows_the_served_certificates() {
        let ca = crate::generate_ca("ca").unwrap();
        let leaf = crate::issue_serving_cert(&ca, &["localhost"], &[], 2).unwrap();
        let tls =
            crate::ReloadableTls::new(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes(), None)
                .unwrap();
        let m = Metrics::new("kompox_apiserver");
        m.watch_certificates(&tls);
        let value = |out: &str, label: &str| -> Option<i64> {
            let key = format!(
                r#"kompox_apiserver_certificate_expiry_timestamp_seconds{{certificate="{label}"}} "#
            );
            out.lines()
                .find_map(|l| l.strip_prefix(key.as_str()))
                .and_then(|v| v.parse().ok())
        };
        let out = m.encode().unwrap();
        assert!(
            out.contains("# TYPE kompox_apiserver_certificate_expiry_timestamp_seconds gauge"),
            "{out}"
        );
        assert_eq!(value(&out, "serving"), tls.expiry().serving, "{out}");
        assert_eq!(value(&out, "client_ca"), None, "no bundle yet: {out}");

        // A renewal shows at the next scrape, and the client CA once it is loaded.
        let renewed = crate::issue_serving_cert(&ca, &["localhost"], &[], 30).unwrap();
        tls.update(
            renewed.cert_pem.as_bytes(),
            renewed.key_pem.as_bytes(),
            Some(ca.cert_pem().as_bytes()),
        )
        .unwrap();
        let before = value(&out, "serving").unwrap();
        let out = m.encode().unwrap();
        let after = value(&out, "serving").unwrap();
        assert!(
            (after - before - 28 * 86_400).abs() < 60,
            "{before} → {after}"
        );
        assert_eq!(value(&out, "client_ca"), tls.expiry().client_ca, "{out}");
        assert!(value(&out, "client_ca").is_some(), "{out}");
    }
}
