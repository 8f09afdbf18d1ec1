//! Abuse: what someone who reaches the servers directly, or a tenant, could try, and that it
//! gets nothing (docs/security.md).
//!
//! - The webhook answers only kube-apiserver (client certificate through kube-apiserver's
//!   AdmissionConfiguration `kubeConfigFile`, wired by hack/cluster.sh): a direct review or
//!   `/metrics` is refused, while Pods created through kube-apiserver are mutated.
//! - The env hash on those Pods is keyed: it is the HMAC under the install's key, differs under
//!   any other key, and holds no plain sha256 of the value.
//! - Metric labels stay bounded when a caller sends 3,000 reviews of distinct 1 KiB kinds.
//! - A nested merge-key compose file is refused by `rendered` within 100 ms of parsing.
//!
//! `rendered` holding no `sha256sum` of a Secret value is asserted by the apiserver suite
//! (`assert_no_secret`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use http::{Method, StatusCode};
use kompox_core::hash::{HashInput, HashKey, SourceKind, env_hash as keyed_env_hash};
use kompox_e2e::TestNamespace;
use kompox_e2e::apiserver::{BASE, https_request, raw};
use kompox_e2e::apps::{apply, put_compose, small_app};
use kompox_e2e::webhook::{
    Registration, WebhookServer, env_hash, managed_namespace, pod, put_secret, test_id,
    wait_mutating,
};
use kompox_e2e::{admin_client, cluster, hash_key};
use kompox_serve::certs::{generate_ca, issue_serving_cert};
use serde_json::json;

/// The subject CN of kube-apiserver's webhook client certificate (hack/cluster.sh).
const KUBE_APISERVER_CN: &str = "kube-apiserver-webhook-client";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// A webhook in this process with a fresh serving certificate and `client_auth`.
async fn webhook(
    client: &kube::Client,
    client_auth: Option<kompox_webhook::ClientAuth>,
) -> Result<WebhookServer> {
    let ca = generate_ca("kompox-e2e-abuse-ca")?;
    let leaf = issue_serving_cert(&ca, &["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 1)?;
    let config = kompox_webhook::Config {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls: kompox_webhook::TlsSource::Pem {
            cert: leaf.cert_pem,
            key: leaf.key_pem,
        },
        region: None,
        hash_key: hash_key(),
        client_auth,
    };
    WebhookServer::start_with(client, config, ca).await
}

/// An AdmissionReview for a Pod in `ns` of `kind` (any text) taking `envFrom` Secret `secret`.
fn review(ns: &str, kind: &str, secret: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "attacker"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "x",
                    "envFrom": [{"secretRef": {"name": secret}}]}]}},
        },
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_only_kube_apiserver_and_its_hash_is_keyed() -> Result<()> {
    let ca_file = cluster().webhook_client_ca.clone();
    ensure!(
        ca_file.is_file(),
        "{} is missing: this local cluster was started before kube-apiserver got a webhook client \
         certificate; restart it (hack/cluster.sh down && hack/cluster.sh up)",
        ca_file.display()
    );
    let client = admin_client().await?;
    let id = test_id();
    let auth = kompox_webhook::ClientAuth {
        ca_file,
        allowed_names: vec![KUBE_APISERVER_CN.to_owned()],
    };
    let server = webhook(&client, Some(auth)).await?;
    let reg = Registration::create(&client, &id, &server.url(), Some(server.ca.cert_pem())).await?;
    let ns = managed_namespace(&client, "abuse-wh", &id).await?;
    put_secret(&client, &ns.name, "db", &[("PASSWORD", "hunter2")]).await?;

    // Through kube-apiserver, which presents its webhook client certificate: mutated.
    let probe = pod(&format!("e2e-{id}"), &[], Some("db"))?;
    wait_mutating(&client, &ns.name, &probe, |p| env_hash(p).is_some()).await?;
    let p = kompox_e2e::webhook::dry_run_pod(&client, &ns.name, &probe).await?;
    let got = env_hash(&p).context("env hash")?;
    let input = [HashInput::present(
        SourceKind::Secret,
        &ns.name,
        "db",
        "PASSWORD",
        "hunter2",
    )];
    ensure!(
        got == keyed_env_hash(&hash_key(), &input),
        "not the keyed hash: {got}"
    );
    let other = HashKey::new(&[b'o'; 32])?;
    ensure!(got != keyed_env_hash(&other, &input), "not keyed: {got}");
    ensure!(
        got.starts_with("hmac-sha256:") && !got.contains(&sha256_hex(b"hunter2")),
        "{got}"
    );

    // Straight to the webhook, without kube-apiserver's certificate: refused, nothing computed.
    let target = (server.addr, server.ca.cert_pem(), "localhost");
    let json = [("content-type", "application/json")];
    let body = review(&ns.name, "Pod", "db");
    let (code, text) = https_request(target, None, Method::POST, "/mutate", &json, &body).await?;
    ensure!(
        code == StatusCode::UNAUTHORIZED && !String::from_utf8_lossy(&text).contains("hmac"),
        "direct review: {code} {}",
        String::from_utf8_lossy(&text)
    );
    let (code, _) = https_request(target, None, Method::GET, "/metrics", &[], b"").await?;
    ensure!(code == StatusCode::UNAUTHORIZED, "direct /metrics: {code}");
    // Probes stay open.
    let (code, _) = https_request(target, None, Method::GET, "/readyz", &[], b"").await?;
    ensure!(code == StatusCode::OK, "/readyz: {code}");

    reg.delete().await?;
    server.stop().await?;
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_bounded_under_distinct_kinds() -> Result<()> {
    let client = admin_client().await?;
    // No client authentication: the worst case, anyone reaching the port.
    let server = webhook(&client, None).await?;
    let target = (server.addr, server.ca.cert_pem(), "localhost");
    let json = [("content-type", "application/json")];
    let (_, before) = https_request(target, None, Method::GET, "/metrics", &[], b"").await?;
    let start = Instant::now();
    for i in 0..3000 {
        let kind = format!("K{i}{}", "x".repeat(1024));
        let (code, _) = https_request(
            target,
            None,
            Method::POST,
            "/mutate",
            &json,
            &review("default", &kind, "nope"),
        )
        .await?;
        ensure!(code == StatusCode::OK, "review {i}: {code}");
    }
    let took = start.elapsed();
    let (_, after) = https_request(target, None, Method::GET, "/metrics", &[], b"").await?;
    println!(
        "3000 reviews with distinct 1 KiB kinds in {took:?}: /metrics {} -> {} bytes",
        before.len(),
        after.len()
    );
    ensure!(
        after.len() < before.len() + 16 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    // Extension methods count as "other", not one series each.
    let (code, _) = https_request(
        target,
        None,
        Method::from_bytes(b"BREW")?,
        "/mutate",
        &[],
        b"",
    )
    .await?;
    ensure!(code == StatusCode::METHOD_NOT_ALLOWED, "BREW: {code}");
    let (_, text) = https_request(target, None, Method::GET, "/metrics", &[], b"").await?;
    let text = String::from_utf8_lossy(&text);
    ensure!(
        text.contains(r#"method="other""#) && !text.contains("BREW"),
        "{text}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_key_bomb_is_refused_quickly_by_rendered() -> Result<()> {
    kompox_e2e::apiserver::shared().await?;
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "abuse-bomb", &[]).await?;
    // Four levels of mappings each merging the one below eight times: 355 bytes that took
    // seconds of CPU to parse before the merge budget.
    let mut lines =
        vec!["x-l0: &l0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7}".to_owned()];
    for l in 1..=4 {
        let refs = vec![format!("*l{}", l - 1); 8].join(", ");
        lines.push(format!("x-l{l}: &l{l} {{<<: [{refs}], z{l}: 1}}"));
    }
    lines.push("services: {web: {image: nginx}}".into());
    let compose = lines.join("\n");

    // The parser alone.
    let start = Instant::now();
    let err = kompox_core::compose::parse(&compose, &|_| None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let took = start.elapsed();
    ensure!(err.contains("merge keys bring in more than"), "{err}");
    ensure!(
        took < Duration::from_millis(100),
        "parser refused after {took:?}"
    );

    // Through kube-apiserver and the aggregated API server: 422 naming the limit, fast.
    put_compose(&client, &ns.name, "bomb-compose", &compose).await?;
    apply(&client, &ns.name, &small_app("bomb", "bomb-compose")).await?;
    let path = format!("{BASE}/namespaces/{}/kompoxapps/bomb/rendered", ns.name);
    let start = Instant::now();
    let (code, body) = raw(&client, Method::GET, &path, &[], vec![]).await?;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    ensure!(
        code == StatusCode::UNPROCESSABLE_ENTITY && text.contains("merge keys bring in more than"),
        "{code} {text}"
    );
    println!("rendered refused the merge-key bomb in {took:?} (round trip through kube-apiserver)");
    ensure!(
        took < Duration::from_secs(2),
        "rendered answered after {took:?}"
    );
    ns.cleanup().await
}
