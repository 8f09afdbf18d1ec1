//! OpenTelemetry traces reach a real OTLP receiver (an OpenTelemetry Collector built from its
//! Go module, `hack/tools/otelcol`, writing what it receives to a file):
//!
//! - the controller, a process started with `OTEL_EXPORTER_OTLP_ENDPOINT`, sends a
//!   `reconcile disk` span for the disk it reconciled, with kube's client requests (`HTTP`,
//!   kind client) nested in the same trace;
//! - the webhook, in this process with the traces URL given, answers a review carrying a W3C
//!   `traceparent` with a server span in the caller's trace (`http.route`, the status);
//! - probes and `/metrics` scrapes make no spans.
//!
//! Its own test binary: the tracing subscriber is global to a process.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use http::{Method, StatusCode};
use kompox_core::api::KompoxDisk;
use kompox_e2e::apiserver::https_request;
use kompox_e2e::controller::{ControllerProcess, Options};
use kompox_e2e::otel::{Collector, Span};
use kompox_e2e::storage::wait_disk_ready;
use kompox_e2e::webhook::WebhookServer;
use kompox_e2e::{TestNamespace, admin_client, cluster, delete_and_wait, ensure_crds};
use kompox_serve::otlp::Destination;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const SPANS_WITHIN: Duration = Duration::from_secs(60);

fn review() -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "someone"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "x"}]}},
        },
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_reconciles_and_requests_reach_an_otlp_collector() -> Result<()> {
    cluster();
    ensure_crds().await?;
    let collector = Collector::start("tracing").await?;
    let telemetry = kompox_serve::init_logging_to(
        "kompox-e2e-webhook",
        "info",
        false,
        &Destination::Url(format!("{}/v1/traces", collector.endpoint)),
    );
    ensure!(telemetry.exports_traces(), "tracing did not start");
    let client = admin_client().await?;

    // The webhook continues the caller's trace.
    let webhook = WebhookServer::start(&client).await?;
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let caller_span = format!("{:016x}", rand::random::<u64>() | 1);
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let target = (webhook.addr, webhook.ca.cert_pem(), "localhost");
    let headers = [
        ("content-type", "application/json"),
        ("traceparent", traceparent.as_str()),
    ];
    let (code, body) =
        https_request(target, None, Method::POST, "/mutate", &headers, &review()).await?;
    ensure!(
        code == StatusCode::OK,
        "/mutate: {code} {}",
        String::from_utf8_lossy(&body)
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        https_request(target, None, Method::GET, path, &[], b"").await?;
    }
    let server_span = collector
        .wait_for(
            "the webhook's span in the caller's trace",
            SPANS_WITHIN,
            |spans| {
                spans
                    .iter()
                    .find(|s| s.trace_id == trace_id && s.kind == 2)
                    .cloned()
            },
        )
        .await?;
    println!("webhook span: {server_span:?}");
    ensure!(server_span.parent_span_id == caller_span, "{server_span:?}");
    ensure!(server_span.name == "POST", "{server_span:?}");
    ensure!(
        server_span.service == "kompox-e2e-webhook",
        "{server_span:?}"
    );
    ensure!(
        server_span.attributes.get("http.response.status_code") == Some(&"200".to_owned()),
        "{server_span:?}"
    );
    ensure!(
        server_span.attributes.get("http.route") == Some(&"/mutate".to_owned()),
        "{server_span:?}"
    );

    // The controller, a process configured by the environment only.
    let ns = TestNamespace::create(&client, "tracing", &[]).await?;
    let controller = ControllerProcess::start(Options {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                collector.endpoint.clone(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ],
        ..Options::namespace(&ns.name)
    })
    .await?;
    let disks: Api<KompoxDisk> = ns.api();
    let disk: KompoxDisk = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": "traced"},
        "spec": {"size": "1Gi", "deletionPolicy": "Delete"},
    }))?;
    disks.create(&PostParams::default(), &disk).await?;
    let body = async {
        wait_disk_ready(&disks, "traced").await?;
        let is_reconcile = |s: &Span| {
            s.service == "kompox-controller"
                && s.name == "reconcile disk"
                && s.attributes.get("k8s.object.name") == Some(&"traced".to_owned())
                && s.attributes.get("k8s.namespace.name") == Some(&ns.name)
        };
        // A reconcile whose trace holds kube's client requests.
        let (reconcile, requests) = collector
            .wait_for(
                "a reconcile of the disk with its API requests",
                SPANS_WITHIN,
                |spans| {
                    spans.iter().filter(|s| is_reconcile(s)).find_map(|r| {
                        let requests: Vec<Span> = spans
                            .iter()
                            .filter(|s| s.trace_id == r.trace_id && s.kind == 3)
                            .cloned()
                            .collect();
                        (!requests.is_empty()).then(|| (r.clone(), requests))
                    })
                },
            )
            .await?;
        println!(
            "reconcile span {} with {} client spans: {:?}",
            reconcile.span_id,
            requests.len(),
            requests.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        ensure!(
            requests
                .iter()
                .all(|s| s.attributes.contains_key("http.method")),
            "{requests:?}"
        );
        // Every client span descends from the reconcile span.
        let trace = collector.spans()?;
        for r in &requests {
            let mut at = r.parent_span_id.clone();
            let mut hops = 0;
            while at != reconcile.span_id {
                let parent = trace
                    .iter()
                    .find(|s| s.span_id == at)
                    .with_context(|| format!("{r:?}: parent {at} not received"))?;
                at = parent.parent_span_id.clone();
                hops += 1;
                ensure!(
                    hops < 16 && !at.is_empty(),
                    "{r:?} is not under the reconcile"
                );
            }
        }
        // Probes and scrapes are not traced.
        ensure!(
            !trace.iter().any(|s| s.name.contains("/healthz")
                || s.name.contains("/metrics")
                || s.name.contains("/readyz")),
            "a probe or scrape span"
        );
        delete_and_wait(&disks, "traced").await
    }
    .await;
    let stop = controller.stop(Duration::from_secs(20)).await;
    webhook.stop().await?;
    telemetry.shutdown().await;
    let cleanup = ns.cleanup().await;
    body?;
    stop?;
    cleanup
}
