//! The direct phase: the webhook binary answering AdmissionReviews over TLS keep-alive, and the
//! decision alone in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kompox_bench::wait_for;
use kube::Client;
use serde_json::{Value, json};

use crate::through_apiserver::bench_pod;
use crate::{Samples, bench_key};

/// The decision alone (decode, decide, encode; no TLS, no HTTP) on one thread, over the same
/// reflector caches the server uses: the webhook's own CPU cost per review.
pub(crate) async fn decision_only(client: &Client, body: &Bytes) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (state, task) = kompox_webhook::ClusterState::start(client, None, async move {
        let _ = stop_rx.await;
    });
    state.wait_synced().await?;
    let health = kompox_serve::Health::new();
    health.set_ready(true);
    let handler = kompox_webhook::Handler::new(
        Arc::new(state),
        bench_key()?,
        health,
        kompox_serve::Metrics::new("bench"),
    );
    let review = handler.review(body)?;
    ensure!(
        review.response.as_ref().is_some_and(|r| r.patch.is_some()),
        "decision made no patch"
    );
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            std::hint::black_box(handler.review(std::hint::black_box(body))?);
        }
        n += 100;
    }
    let per = start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX);
    println!(
        "\n## Decision only (decode + decide + encode, one thread, no TLS/HTTP)\n\n{} µs per review = {:.0} reviews/s per core",
        per.as_micros(),
        1.0 / per.as_secs_f64()
    );
    let _ = stop_tx.send(());
    let _ = task.await;
    Ok(())
}

pub(crate) fn client_tls(ca_pem: &str, http2: bool) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(cfg))
}

/// One keep-alive HTTP/1.1 connection over TLS.
pub(crate) struct Conn {
    send: Sender,
}

pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub(crate) async fn open(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
            .await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let send = if h2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(send)
        };
        Ok(Conn { send })
    }

    pub(crate) async fn request(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::StatusCode, Bytes)> {
        let resp = match &mut self.send {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub(crate) async fn post(&mut self, body: Bytes) -> Result<(http::StatusCode, Bytes)> {
        let req = http::Request::post("/mutate?timeout=5s")
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let (status, body) = self.request(req).await?;
        ensure!(
            status == http::StatusCode::OK,
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok((status, body))
    }
}

/// `(count, sum seconds)` of kube-apiserver's admission duration for the Pod webhook.
pub(crate) async fn apiserver_webhook_time(client: &Client) -> Result<(f64, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(histogram_totals(
        &text,
        "apiserver_admission_webhook_admission_duration_seconds",
        &["name=\"pods.webhook.kompox.dev\"", "operation=\"CREATE\""],
    ))
}

/// `(count, sum seconds)` of the webhook's `/mutate` request-duration histogram.
pub(crate) async fn server_mutate_time(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    token: &str,
) -> Result<(f64, f64)> {
    let mut c = Conn::open(tls, addr).await?;
    let req = http::Request::get("/metrics")
        .header(http::header::HOST, "localhost")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())?;
    let (status, body) = c.request(req).await?;
    ensure!(status == http::StatusCode::OK, "/metrics: {status}");
    Ok(histogram_totals(
        &String::from_utf8_lossy(&body),
        "kompox_webhook_http_request_duration_seconds",
        &["route=\"/mutate\""],
    ))
}

/// `(count, sum)` of the histogram `name` in Prometheus text, over the series whose labels
/// contain all of `labels`.
pub(crate) fn histogram_totals(text: &str, name: &str, labels: &[&str]) -> (f64, f64) {
    let total = |suffix: &str| {
        let prefix = format!("{name}_{suffix}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (total("count"), total("sum"))
}

pub(crate) async fn wait_ready(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Result<()> {
    wait_for(Duration::from_secs(60), "the webhook's /readyz", || async {
        let mut c = Conn::open(tls, addr).await?;
        let req = http::Request::get("/readyz")
            .header(http::header::HOST, "localhost")
            .body(Full::default())?;
        Ok(c.request(req).await?.0 == http::StatusCode::OK)
    })
    .await
}

/// The response must allow the Pod with a base64 JSON Patch holding both changes.
pub(crate) fn check_patched(body: &[u8]) -> Result<()> {
    use base64::Engine as _;
    let v: Value = serde_json::from_slice(body)?;
    ensure!(v["response"]["allowed"] == true, "not allowed: {v}");
    let patch = v["response"]["patch"].as_str().context("no patch")?;
    let ops: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch)?)?;
    let paths: Vec<&str> = ops
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["path"].as_str())
        .collect();
    ensure!(
        paths.contains(&"/spec/affinity")
            && paths.iter().any(|p| p.starts_with("/metadata/annotations")),
        "patch {ops}"
    );
    Ok(())
}

pub(crate) async fn direct(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    body: &Bytes,
    clients: usize,
    duration: Duration,
    max: usize,
    rate: Option<f64>,
) -> Result<Samples> {
    let per_client = max.div_ceil(clients);
    // Paced: each client sends every `clients / rate` seconds, the clients staggered evenly.
    let period = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(tls, addr).await?);
    }
    // Warm up each connection once.
    for c in &mut conns {
        c.post(body.clone()).await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let body = body.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_client.min(1 << 20));
            let mut checked = false;
            let mut next = period.map(|p| start + p.mul_f64(i as f64 / clients as f64));
            while lat.len() < per_client && Instant::now() < deadline {
                if let (Some(at), Some(p)) = (next, period) {
                    tokio::time::sleep_until(at.into()).await;
                    next = Some(at + p);
                }
                let t = Instant::now();
                let (_, resp) = c.post(body.clone()).await?;
                lat.push(t.elapsed());
                if !checked {
                    check_patched(&resp)?;
                    checked = true;
                }
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Samples::default();
    while let Some(r) = tasks.join_next().await {
        all.add(r??);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

/// A Pod CREATE review shaped like kube-apiserver's (defaults, service-account volume,
/// managedFields), using the fixture's PVC and Secret.
pub(crate) fn review_body(ns: &str) -> Result<Value> {
    let mut pod = serde_json::to_value(bench_pod("web-7d9c6b5f4-x2k8q")?)?;
    pod["metadata"]["namespace"] = json!(ns);
    pod["metadata"]["uid"] = json!("0d7f3c52-6a0e-4b8e-9f55-1c2b3a4d5e6f");
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "web-7d9c6b5f4", "uid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "controller": true, "blockOwnerDeletion": true}]);
    pod["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager", "operation": "Update",
        "apiVersion": "v1", "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}, "f:ownerReferences": {}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:envFrom": {}, "f:image": {}, "f:name": {}}},
                "f:volumes": {"k:{\"name\":\"data\"}": {".": {}, "f:name": {}, "f:persistentVolumeClaim": {}}}}}}]);
    let spec = &mut pod["spec"];
    spec["volumes"].as_array_mut().context("volumes")?.push(json!({"name": "kube-api-access-abcde", "projected": {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}));
    spec["containers"][0]["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/data"},
        {"name": "kube-api-access-abcde", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
    spec["containers"][0]["ports"] = json!([{"containerPort": 3000, "protocol": "TCP"}]);
    spec["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    spec["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    spec["restartPolicy"] = json!("Always");
    spec["dnsPolicy"] = json!("ClusterFirst");
    spec["serviceAccountName"] = json!("default");
    spec["tolerations"] = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    spec["priority"] = json!(0);
    spec["enableServiceLinks"] = json!(true);
    pod["status"] = json!({});
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "7e3f5a1c-2b4d-4e6f-8a9b-0c1d2e3f4a5b",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "1b2c3d4e", "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }))
}
