//! HTTP: routes, status codes, metrics and logs around the pure decision in
//! [`crate::mutate`].
//!
//! | route | answer |
//! |---|---|
//! | `POST /mutate` | an AdmissionReview v1 (`200`), or `400` malformed review, `405` not POST, `413` body over [`MAX_BODY_BYTES`], `415` not `application/json`, `503` caches not synced yet |
//! | `GET /healthz`, `/livez`, `/readyz` | [`Health`]: ready once the caches are synced |
//! | `GET /metrics` | Prometheus text (the server lets through only a bearer token whose user may `get /metrics`) |
//!
//! A review of a kind the webhook does not handle is allowed unchanged. A review whose
//! object is refused gets `200` with `allowed: false` and a message; transport-level
//! problems get plain-text `4xx` bodies that never quote the input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kompox_core::hash::HashKey;
use kompox_serve::{BoxError, Health, Metrics, json, read_body_limited, text};
use kube::core::admission::Operation;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::mutate::{self, Lookup, Mutation};
use crate::review::{self, DecodeError, Object, Response as ReviewResponse};

/// Largest AdmissionReview accepted. kube-apiserver caps request bodies at 3 MiB and etcd
/// objects at 1.5 MiB; an UPDATE review carries the object twice, plus JSON overhead.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Route of the mutating endpoint.
pub const MUTATE_PATH: &str = "/mutate";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// A review's `kind` as a metric label: the kinds the webhook decides on, else `"other"` (the
/// kind is whatever the caller sent; each distinct label value is a series kept until restart).
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "Pod" => "Pod",
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        _ => "other",
    }
}

/// The webhook's own metrics, registered in the shared [`Metrics`] registry.
#[derive(Clone)]
struct WebhookMetrics {
    reviews: Family<ReviewLabels, Counter>,
    patches: Family<ChangeLabels, Counter>,
    denials: Family<ReasonLabels, Counter>,
    latency: Family<KindLabels, Histogram, fn() -> Histogram>,
}

fn review_histogram() -> Histogram {
    // 50 µs … ~0.8 s: reviews take well under a millisecond.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
}

impl WebhookMetrics {
    fn register(metrics: &Metrics) -> Self {
        let m = WebhookMetrics {
            reviews: Family::default(),
            patches: Family::default(),
            denials: Family::default(),
            latency: Family::new_with_constructor(review_histogram),
        };
        metrics.register(
            "admission_reviews",
            "AdmissionReviews answered, by object kind and result (unchanged, patched, denied, invalid)",
            m.reviews.clone(),
        );
        metrics.register(
            "admission_patches",
            "Patches returned, by change (zone_affinity, env_hash)",
            m.patches.clone(),
        );
        metrics.register(
            "admission_denials",
            "Objects refused, by reason",
            m.denials.clone(),
        );
        metrics.register(
            "admission_review_duration_seconds",
            "Time to decode, decide and encode one AdmissionReview, by object kind",
            m.latency.clone(),
        );
        m
    }
}

/// Handles every HTTP request of the webhook. Cheap to clone.
#[derive(Clone)]
pub struct Handler {
    lookup: Arc<dyn Lookup>,
    key: HashKey,
    health: Health,
    metrics: Metrics,
    webhook: WebhookMetrics,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}

/// The outcome of one review, for the response, metrics and logs.
struct Outcome {
    response: ReviewResponse,
    result: &'static str,
    mutation: Option<Mutation>,
    denial_reason: Option<&'static str>,
}

impl Handler {
    /// A handler deciding on `lookup`, env hashes under the install's `key`; `/readyz` and
    /// `/mutate` follow `health`; webhook metrics are registered in `metrics`.
    #[must_use]
    pub fn new(lookup: Arc<dyn Lookup>, key: HashKey, health: Health, metrics: Metrics) -> Self {
        let webhook = WebhookMetrics::register(&metrics);
        Handler {
            lookup,
            key,
            health,
            metrics,
            webhook,
        }
    }

    /// Answers one HTTP request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let start = Instant::now();
        let method = req.method().clone();
        let (route, resp) = match req.uri().path() {
            MUTATE_PATH => (MUTATE_PATH, self.mutate(req).await),
            crate::METRICS_PATH => (crate::METRICS_PATH, self.metrics.response()),
            path => match self.health.respond_path(path) {
                Some(r) => ("health", r),
                None => ("other", text(StatusCode::NOT_FOUND, "not found\n")),
            },
        };
        self.metrics
            .observe(route, &method, resp.status(), start.elapsed());
        resp
    }

    async fn mutate<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        if req.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "mutate: use POST with an AdmissionReview\n",
            );
        }
        // The body is read (bounded) before the content type is judged, so a client that is
        // still sending gets the answer rather than a closed connection.
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        let body = match read_body_limited(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                self.count_invalid();
                return text(e.status(), &format!("mutate: {e}\n"));
            }
        };
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "mutate: Content-Type must be application/json\n",
            );
        }
        if !self.health.is_ready() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "mutate: caches are not synced yet\n",
            );
        }
        match self.review(&body) {
            Ok(review) => json(StatusCode::OK, &review),
            Err(e) => {
                self.count_invalid();
                text(StatusCode::BAD_REQUEST, &format!("mutate: {e}\n"))
            }
        }
    }

    fn count_invalid(&self) {
        self.webhook
            .reviews
            .get_or_create(&ReviewLabels {
                kind: "other",
                result: "invalid",
            })
            .inc();
    }

    /// Decodes, decides and encodes one review (no HTTP).
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the body is not a review this webhook can answer.
    pub fn review(&self, body: &[u8]) -> Result<review::Review, DecodeError> {
        let start = Instant::now();
        let req = review::decode(body)?;
        let ns = req.namespace.as_deref().unwrap_or_default();
        let lookup = self.lookup.as_ref();
        let key = &self.key;
        let outcome = match (&req.object, req.operation.clone()) {
            (Some(Object::Pod(pod)), Operation::Create) => {
                finish(&req.uid, mutate::mutate_pod(ns, &pod.0, lookup, key))
            }
            (Some(Object::Deployment(d)), op @ (Operation::Create | Operation::Update)) => {
                let old = match (&req.old_object, op) {
                    (Some(Object::Deployment(o)), Operation::Update) => o.template.as_ref(),
                    _ => None,
                };
                template(&req.uid, ns, d.template.as_ref(), old, lookup, key)
            }
            (Some(Object::StatefulSet(s)), op @ (Operation::Create | Operation::Update)) => {
                let old = match (&req.old_object, op) {
                    (Some(Object::StatefulSet(o)), Operation::Update) => o.template.as_ref(),
                    _ => None,
                };
                template(&req.uid, ns, s.template.as_ref(), old, lookup, key)
            }
            // Registered for something we do not handle: let it through unchanged.
            _ => unchanged(&req.uid),
        };
        log_review(&req, &outcome);
        self.record(&req.kind.kind, &outcome, start.elapsed());
        Ok(outcome.response.into_review())
    }

    fn record(&self, kind: &str, o: &Outcome, elapsed: Duration) {
        self.webhook
            .reviews
            .get_or_create(&ReviewLabels {
                kind: kind_label(kind),
                result: o.result,
            })
            .inc();
        if let Some(m) = &o.mutation {
            if m.zone.is_some() {
                self.webhook
                    .patches
                    .get_or_create(&ChangeLabels {
                        change: "zone_affinity",
                    })
                    .inc();
            }
            if m.env_hash.is_some() {
                self.webhook
                    .patches
                    .get_or_create(&ChangeLabels { change: "env_hash" })
                    .inc();
            }
        }
        if let Some(reason) = o.denial_reason {
            self.webhook
                .denials
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        self.webhook
            .latency
            .get_or_create(&KindLabels {
                kind: kind_label(kind),
            })
            .observe(elapsed.as_secs_f64());
    }
}

fn template(
    uid: &str,
    namespace: &str,
    template: Option<&PodTemplateSpec>,
    old: Option<&PodTemplateSpec>,
    lookup: &dyn Lookup,
    key: &HashKey,
) -> Outcome {
    match template {
        Some(t) => finish(
            uid,
            Ok(mutate::mutate_template(namespace, t, old, lookup, key)),
        ),
        None => unchanged(uid),
    }
}

fn unchanged(uid: &str) -> Outcome {
    Outcome {
        response: ReviewResponse::allow(uid),
        result: "unchanged",
        mutation: None,
        denial_reason: None,
    }
}

fn finish(uid: &str, decision: Result<Mutation, mutate::Denial>) -> Outcome {
    match decision {
        Ok(m) => match ReviewResponse::patched(uid, &m.patch, m.warnings.clone()) {
            Ok(response) => Outcome {
                response,
                result: if m.is_empty() { "unchanged" } else { "patched" },
                mutation: Some(m),
                denial_reason: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "serializing a patch failed");
                Outcome {
                    response: ReviewResponse::deny(
                        uid,
                        500,
                        "InternalError",
                        "kompox: internal error building the patch".to_owned(),
                    ),
                    result: "invalid",
                    mutation: None,
                    denial_reason: Some("InternalError"),
                }
            }
        },
        Err(d) => Outcome {
            response: ReviewResponse::deny(uid, 403, d.reason(), d.to_string()),
            result: "denied",
            mutation: None,
            denial_reason: Some(d.reason()),
        },
    }
}

fn log_review(req: &review::Request, o: &Outcome) {
    let meta = match &req.object {
        Some(Object::Pod(p)) => Some(&p.0.metadata),
        Some(Object::Deployment(d)) => Some(&d.metadata),
        Some(Object::StatefulSet(s)) => Some(&s.metadata),
        Some(Object::Other) | None => None,
    };
    let name = req
        .name
        .as_deref()
        .or_else(|| meta.and_then(|m| m.name.as_deref().or(m.generate_name.as_deref())))
        .unwrap_or_default();
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let m = o.mutation.as_ref();
    tracing::debug!(
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace,
        name,
        operation = ?req.operation,
        dry_run = req.dry_run,
        result = o.result,
        ops = m.map_or(0, |m| m.patch.len()),
        zone = m.and_then(|m| m.zone.as_deref()).unwrap_or_default(),
        env_hash = m.and_then(|m| m.env_hash.as_deref()).unwrap_or_default(),
        warnings = m.map_or(0, |m| m.warnings.len()),
        "admission review"
    );
    if let Some(status) = &o.response.status {
        tracing::info!(uid = %req.uid, kind = %req.kind.kind, namespace, name,
            reason = %status.reason, message = %status.message, "denied");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
