//! Abuse: what someone who reaches the servers directly, or a tenant, could try, and that it
//! gets nothing (docs/security.md).
//!
//! - The webhook answers only kube-apiserver (client certificate through kube-apiserver's
//!   AdmissionConfiguration `kubeConfigFile`, wired by hack/cluster.sh): a direct review is
//!   refused, while Pods created through kube-apiserver are mutated. `/metrics` answers only a
//!   bearer token whose user may `get /metrics` (401 anonymous or forged, 403 without the
//!   right, 200 with the install's `kompox-metrics-reader`).
//! - The env hash on those Pods is keyed: it is the HMAC under the install's key, differs under
//!   any other key, and holds no plain sha256 of the value.
//! - Metric labels stay bounded when a caller sends 3,000 reviews of distinct 1 KiB kinds.
//! - A nested merge-key compose file is refused by `rendered` within 100 ms of parsing.
//!
//! - A tenant cannot get a privileged Pod through the controller: a compose file with
//!   `privileged: true` makes the app Degraded (PodSecurityViolation, naming the field) and no
//!   Pod is created; the tenant's operators group cannot set `spec.podSecurity: privileged`
//!   (the ValidatingAdmissionPolicy of manifests/policy/podsecurity.yaml); a cluster admin can,
//!   and the app then runs, its namespace labelled for PodSecurity admission accordingly.
//!
//! - A new app whose first render fails still gets its operator Role: its operators read it
//!   and fix the compose file.
//!
//! - Connections have deadlines: a body sent one byte per second to `/mutate` gets 408 and a
//!   closed connection within the body read timeout; an idle HTTP/2 connection is closed.
//!
//! - `/metrics` under a flood of 200 distinct junk tokens: 401 or 429 only, a 17 KiB token
//!   refused unread, the scraper served from the cache meanwhile; the controller's endpoint
//!   answers only TLS.
//! - HEAD over HTTP/2 is answered; a UTF-8 user name (a client certificate with CN
//!   `ユーザー`) is served by the aggregated API server through kube-apiserver.
//!
//! Elsewhere: `rendered` holding no `sha256sum` of a Secret value and `?validate=true` sent
//! only for objects the caller may write are asserted by the apiserver suite
//! (`assert_no_secret`, `the_servers_identity_cannot_reach_beyond_its_rights`); `render --var`
//! errors quoting no value by the core unit tests (`var_values_are_never_quoted_in_errors`);
//! the local servers running as their own ServiceAccounts by every `with_local_install` e2e.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use http::{Method, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kompox_core::api::condition::reasons;
use kompox_core::api::{KompoxApp, PodSecurityLevel};
use kompox_core::hash::{HashInput, HashKey, SourceKind, env_hash as keyed_env_hash};
use kompox_e2e::TestNamespace;
use kompox_e2e::apiserver::{BASE, https_request, raw, tls_connect};
use kompox_e2e::apps::{apply, put_compose, small_app, wait_degraded, wait_ready};
use kompox_e2e::wait_until;
use kompox_e2e::webhook::{
    Registration, WebhookServer, env_hash, managed_namespace, pod, put_secret, test_id,
    wait_mutating,
};
use kompox_e2e::{admin_client, cluster, hash_key, metrics_tokens};
use kompox_serve::certs::{generate_ca, issue_serving_cert};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// The subject CN of kube-apiserver's webhook client certificate (hack/cluster.sh).
const KUBE_APISERVER_CN: &str = "kube-apiserver-webhook-client";

/// The suite's tests run one at a time: run together, two of them saw their webhook's caches
/// not sync within a minute (each passes alone and in any pair; the shared cause is not found
/// yet), so the suite does not share the cluster between its tests.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// A webhook in this process with a fresh serving certificate and `client_auth`.
async fn webhook(
    client: &kube::Client,
    client_auth: Option<kompox_webhook::ClientAuth>,
) -> Result<WebhookServer> {
    webhook_with(client, client_auth, kompox_serve::ServeOptions::default()).await
}

/// [`webhook`] with serving limits `serve`.
async fn webhook_with(
    client: &kube::Client,
    client_auth: Option<kompox_webhook::ClientAuth>,
    serve: kompox_serve::ServeOptions,
) -> Result<WebhookServer> {
    // The webhook's caches include KompoxDisks: on a fresh cluster their CRD must exist first.
    kompox_e2e::ensure_crds().await?;
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
        serve,
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
    let _serial = SERIAL.lock().await;
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
    // /metrics: a bearer token kube-apiserver authenticates, whose user may get /metrics.
    let tokens = metrics_tokens().await?;
    let bearer = |t: &str| format!("Bearer {t}");
    let (nobody, reader) = (bearer(&tokens.nobody), bearer(&tokens.reader));
    for (case, headers, want) in [
        ("anonymous", vec![], StatusCode::UNAUTHORIZED),
        (
            "unknown token",
            vec![("authorization", "Bearer forged")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "token without the right",
            vec![("authorization", nobody.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "metrics reader",
            vec![("authorization", reader.as_str())],
            StatusCode::OK,
        ),
    ] {
        let (code, text) =
            https_request(target, None, Method::GET, "/metrics", &headers, b"").await?;
        let text = String::from_utf8_lossy(&text);
        ensure!(code == want, "/metrics, {case}: {code} {text}");
        ensure!(
            text.contains("kompox_webhook_") == (want == StatusCode::OK),
            "/metrics, {case}: {text}"
        );
    }
    // Probes stay open.
    let (code, _) = https_request(target, None, Method::GET, "/readyz", &[], b"").await?;
    ensure!(code == StatusCode::OK, "/readyz: {code}");

    reg.delete().await?;
    server.stop().await?;
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_bounded_under_distinct_kinds() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let client = admin_client().await?;
    // No client authentication: the worst case, anyone reaching the port.
    let server = webhook(&client, None).await?;
    let target = (server.addr, server.ca.cert_pem(), "localhost");
    let json = [("content-type", "application/json")];
    let reader = format!("Bearer {}", metrics_tokens().await?.reader);
    let auth = [("authorization", reader.as_str())];
    let (code, before) = https_request(target, None, Method::GET, "/metrics", &auth, b"").await?;
    ensure!(code == StatusCode::OK, "/metrics: {code}");
    // The build, and the serving certificate's expiry (no client CA: no client_ca series).
    let text = String::from_utf8_lossy(&before);
    ensure!(
        text.contains(r#"kompox_build_info{component="webhook",version=""#),
        "{text}"
    );
    let serving: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"kompox_webhook_certificate_expiry_timestamp_seconds{certificate="serving"} "#,
            )
        })
        .context("no serving certificate expiry")?
        .parse()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    ensure!(
        serving > now,
        "serving certificate expires at {serving}, now {now}"
    );
    ensure!(!text.contains(r#"certificate="client_ca""#), "{text}");
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
    let (code, after) = https_request(target, None, Method::GET, "/metrics", &auth, b"").await?;
    ensure!(code == StatusCode::OK, "/metrics: {code}");
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
    let (_, text) = https_request(target, None, Method::GET, "/metrics", &auth, b"").await?;
    let text = String::from_utf8_lossy(&text);
    ensure!(
        text.contains(r#"method="other""#) && !text.contains("BREW"),
        "{text}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_key_bomb_is_refused_quickly_by_rendered() -> Result<()> {
    let _serial = SERIAL.lock().await;
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

/// The PodSecurity admission label of namespace `ns`.
async fn enforce_label(client: &kube::Client, ns: &str) -> Result<Option<String>> {
    let n = kube::Api::<Namespace>::all(client.clone()).get(ns).await?;
    Ok(n.metadata
        .labels
        .unwrap_or_default()
        .get("pod-security.kubernetes.io/enforce")
        .cloned())
}

/// A client acting as `user` in `groups` (the admin impersonating them).
async fn impersonating(user: &str, groups: &[&str]) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&cluster().admin_kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| (*g).to_owned()).collect());
    Ok(kube::Client::try_from(config)?)
}

const PRIVILEGED_COMPOSE: &str = "services:
  web:
    image: nginx:1.27
    privileged: true
    cap_add: [SYS_ADMIN]
    user: root
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_get_no_privileged_pods_through_the_controller() -> Result<()> {
    let _serial = SERIAL.lock().await;
    const TIMEOUT: Duration = Duration::from_secs(90);
    kompox_e2e::ensure_crds().await?;
    let policy = kompox_e2e::repo_root().join("manifests/policy/podsecurity.yaml");
    let policy = policy.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || {
        kompox_e2e::kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &policy])
    })
    .await??;
    let (client, ns, controller) = kompox_e2e::controller::scoped(
        "abuse-priv",
        &[
            ("app.kubernetes.io/managed-by", "kompox"),
            ("kompox.dev/tenant", "team-p"),
        ],
    )
    .await?;
    let body = async {
        let apps: kube::Api<KompoxApp> = ns.api();
        // The tenant's operators group (bound by the controller's namespace hygiene).
        let tenant = impersonating("alice", &["kompox:tenant:team-p"]).await?;
        let tenant_apps: kube::Api<KompoxApp> = kube::Api::namespaced(tenant.clone(), &ns.name);

        // A plain app: its namespace hygiene binds the tenant's operators group.
        put_compose(
            &client,
            &ns.name,
            "ok-compose",
            "services: {plain: {image: nginx:1.27}}\n",
        )
        .await?;
        apply(&client, &ns.name, &small_app("ok", "ok-compose")).await?;
        wait_ready(&apps, "ok", TIMEOUT).await?;
        ensure!(
            enforce_label(&client, &ns.name).await?.as_deref() == Some("baseline"),
            "namespace not labelled baseline"
        );
        let rbs: kube::Api<RoleBinding> = ns.api();
        rbs.get("kompox-ok-operators").await?;

        // The tenant writes a privileged compose file (its Role allows ConfigMaps) for an app
        // an admin created: refused before anything is applied, naming each field; no
        // Deployment, no Pod.
        put_compose(&tenant, &ns.name, "priv-compose", PRIVILEGED_COMPOSE).await?;
        apply(&client, &ns.name, &small_app("priv", "priv-compose")).await?;
        let msg = wait_degraded(&apps, "priv", reasons::POD_SECURITY_VIOLATION, TIMEOUT).await?;
        for field in ["services.web.privileged", "services.web.cap_add[0]"] {
            ensure!(msg.contains(field), "{field} not named in: {msg}");
        }
        let deployments: kube::Api<Deployment> = ns.api();
        ensure!(
            deployments.get_opt("priv-app").await?.is_none(),
            "a Deployment was applied"
        );
        let pods: kube::Api<Pod> = ns.api();
        let priv_pods = ListParams::default().labels("kompox.dev/app=priv");
        ensure!(
            pods.list(&priv_pods).await?.items.is_empty(),
            "a Pod exists"
        );

        // The tenant may edit the app (the operator Role), but not opt it into privileged.
        tenant_apps
            .patch(
                "priv",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"note": "tenant edit"}}})),
            )
            .await
            .context("the tenant edits its app")?;
        let opt_in = Patch::Merge(json!({"spec": {"podSecurity": "privileged"}}));
        // The policy takes a moment to load after it is applied: until the tenant's server-side
        // dry run is refused.
        let dry = PatchParams {
            dry_run: true,
            ..PatchParams::default()
        };
        wait_until(
            "the privileged opt-in refused to the tenant",
            TIMEOUT,
            || {
                let tenant_apps = tenant_apps.clone();
                let opt_in = opt_in.clone();
                let dry = dry.clone();
                async move { Ok(tenant_apps.patch("priv", &dry, &opt_in).await.is_err()) }
            },
        )
        .await?;
        let refused = tenant_apps
            .patch("priv", &PatchParams::default(), &opt_in)
            .await;
        match refused {
            Err(kube::Error::Api(s)) => ensure!(
                s.code == 403 && s.message.contains("kompoxapps/privileged"),
                "{s:?}"
            ),
            other => anyhow::bail!("the tenant set the privileged opt-in: {other:?}"),
        }
        ensure!(
            apps.get("priv").await?.spec.pod_security == PodSecurityLevel::Baseline,
            "the opt-in was stored"
        );

        // A cluster admin opts the app in: the namespace is labelled privileged, the app runs.
        apps.patch("priv", &PatchParams::default(), &opt_in).await?;
        wait_ready(&apps, "priv", TIMEOUT).await?;
        ensure!(
            enforce_label(&client, &ns.name).await?.as_deref() == Some("privileged"),
            "namespace not labelled privileged"
        );
        let pod = pods
            .list(&priv_pods)
            .await?
            .items
            .into_iter()
            .next()
            .context("no Pod of the opted-in app")?;
        let sc = pod
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.security_context)
            .context("no securityContext")?;
        ensure!(sc.privileged == Some(true), "{sc:?}");
        // Once opted in, the tenant still edits the app.
        tenant_apps
            .patch(
                "priv",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"note": "after opt-in"}}})),
            )
            .await
            .context("the tenant edits the opted-in app")?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let log = controller.log.clone();
    let teardown = kompox_e2e::controller::finish(ns, controller).await;
    body.with_context(|| format!("controller log: {}", log.display()))?;
    teardown
}

/// A new app whose first render fails still gets its operator Role and RoleBinding, so its
/// operators (alone in their namespace: no other app's Role to lean on) can read it and fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_fix_an_app_that_never_rendered() -> Result<()> {
    let _serial = SERIAL.lock().await;
    const TIMEOUT: Duration = Duration::from_secs(90);
    let (client, ns, controller) = kompox_e2e::controller::scoped(
        "abuse-first",
        &[
            ("app.kubernetes.io/managed-by", "kompox"),
            ("kompox.dev/tenant", "team-f"),
        ],
    )
    .await?;
    let body = async {
        let apps: kube::Api<KompoxApp> = ns.api();
        put_compose(&client, &ns.name, "first-compose", PRIVILEGED_COMPOSE).await?;
        apply(&client, &ns.name, &small_app("first", "first-compose")).await?;
        wait_degraded(&apps, "first", reasons::POD_SECURITY_VIOLATION, TIMEOUT).await?;
        let tenant = impersonating("bob", &["kompox:tenant:team-f"]).await?;
        let tenant_apps: kube::Api<KompoxApp> = kube::Api::namespaced(tenant.clone(), &ns.name);
        let degraded = tenant_apps
            .get("first")
            .await
            .context("the operators read the app that never rendered")?;
        ensure!(
            degraded.status.is_some_and(|s| !s.ready),
            "the app is not shown Degraded to its operators"
        );
        put_compose(
            &tenant,
            &ns.name,
            "first-compose",
            "services: {web: {image: nginx:1.27}}\n",
        )
        .await
        .context("the operators fix the compose file")?;
        wait_ready(&apps, "first", TIMEOUT).await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let log = controller.log.clone();
    let teardown = kompox_e2e::controller::finish(ns, controller).await;
    body.with_context(|| format!("controller log: {}", log.display()))?;
    teardown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_idle_connections_are_cut_off() -> Result<()> {
    let _serial = SERIAL.lock().await;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const DEADLINE: Duration = Duration::from_secs(2);
    let client = admin_client().await?;
    let server = webhook_with(
        &client,
        None,
        kompox_serve::ServeOptions::default()
            .body_read_timeout(DEADLINE)
            .idle_timeout(DEADLINE),
    )
    .await?;
    let target = (server.addr, server.ca.cert_pem(), "localhost");

    // A review body trickled one byte per second: 408 and the connection closed at the
    // deadline.
    let tls = tls_connect(target, None, b"http/1.1").await?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let start = Instant::now();
    wr.write_all(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{",
    )
    .await?;
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut answer))
        .await
        .context("the slow body was never cut off")??;
    let took = start.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    println!("a body trickled at 1 B/s was answered and closed after {took:?}");
    ensure!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    ensure!(
        took >= DEADLINE && took < DEADLINE + Duration::from_secs(2),
        "closed after {took:?}"
    );

    // An HTTP/2 connection left idle after a request: GOAWAY and closed after the idle timeout.
    let tls = tls_connect(target, None, b"h2").await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await?;
    let conn = tokio::spawn(conn);
    let req = http::Request::get("https://localhost/readyz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    ensure!(
        resp.status() == StatusCode::OK,
        "/readyz over h2: {}",
        resp.status()
    );
    drop(resp);
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .context("the idle HTTP/2 connection was never closed")??
        .ok();
    let took = start.elapsed();
    println!("an idle HTTP/2 connection was closed after {took:?}");
    ensure!(
        took < DEADLINE + Duration::from_secs(2),
        "closed after {took:?}"
    );
    server.stop().await
}

/// `/metrics` is reachable by anyone who reaches the port, so what a stranger's tokens cost is
/// bounded: a flood of distinct junk tokens gets 401 (reviewed, not authenticated) or 429 (no
/// turn for a TokenReview within a second), a token over 16 KiB is refused unread, and the
/// scraper, whose token's answer is cached, is served throughout. The controller's endpoint
/// speaks only TLS: a plain-HTTP request carrying a token gets no HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_token_floods_are_bounded_and_metrics_travel_over_tls_only() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let client = admin_client().await?;
    let server = webhook(&client, None).await?;
    let ca = server.ca.cert_pem().to_owned();
    let target = (server.addr, ca.as_str(), "localhost");
    let reader = format!("Bearer {}", metrics_tokens().await?.reader);
    let scrape = [("authorization", reader.as_str())];
    let (code, _) = https_request(target, None, Method::GET, "/metrics", &scrape, b"").await?;
    ensure!(code == StatusCode::OK, "/metrics before the flood: {code}");

    let flood: Vec<_> = (0..200)
        .map(|i| {
            let ca = ca.clone();
            let addr = server.addr;
            tokio::spawn(async move {
                let junk = format!("Bearer junk-{i}-{}", rand::random::<u64>());
                let auth = [("authorization", junk.as_str())];
                https_request(
                    (addr, ca.as_str(), "localhost"),
                    None,
                    Method::GET,
                    "/metrics",
                    &auth,
                    b"",
                )
                .await
                .map(|(code, _)| code)
            })
        })
        .collect();
    // The scraper, while the flood is in flight: answered from the cache, at once.
    let start = Instant::now();
    let (code, _) = https_request(target, None, Method::GET, "/metrics", &scrape, b"").await?;
    let took = start.elapsed();
    ensure!(code == StatusCode::OK, "/metrics during the flood: {code}");
    ensure!(took < Duration::from_secs(2), "the scraper waited {took:?}");
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    for f in flood {
        *counts.entry(f.await??.as_u16()).or_default() += 1;
    }
    println!("200 distinct junk tokens: {counts:?}; the scraper answered in {took:?}");
    ensure!(
        counts.keys().all(|c| [401, 429].contains(c)),
        "junk tokens got {counts:?}"
    );
    let huge = format!("Bearer {}", "x".repeat(17 * 1024));
    let (code, _) = https_request(
        target,
        None,
        Method::GET,
        "/metrics",
        &[("authorization", huge.as_str())],
        b"",
    )
    .await?;
    ensure!(code == StatusCode::UNAUTHORIZED, "a 17 KiB token: {code}");
    server.stop().await?;

    // The controller: HTTPS only.
    let ns = TestNamespace::create(&client, "abuse-ctl-tls", &[]).await?;
    let ctl = kompox_e2e::storage::InProcessController::start(
        kompox_controller::NamespaceScope::One(ns.name.clone()),
    )
    .await?;
    let (code, _) = ctl.get("/readyz").await?;
    ensure!(code == 200, "controller /readyz over TLS: {code}");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut plain = tokio::net::TcpStream::connect(ctl.addr).await?;
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut out)).await;
    ensure!(
        !String::from_utf8_lossy(&out).contains("HTTP/1.1"),
        "plain HTTP got an answer: {}",
        String::from_utf8_lossy(&out)
    );
    ctl.stop().await?;
    ns.cleanup().await
}

/// HEAD over HTTP/2 is answered like GET without a body (it used to be a PROTOCOL_ERROR), and a
/// user whose name is not ASCII (kube-apiserver allows UTF-8 names and forwards them in
/// `X-Remote-User`) is served by the aggregated API server like anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_over_http2_and_utf8_user_names_are_served() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let client = admin_client().await?;
    let server = webhook(&client, None).await?;
    let tls = tls_connect(
        (server.addr, server.ca.cert_pem(), "localhost"),
        None,
        b"h2",
    )
    .await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await?;
    tokio::spawn(conn);
    for path in ["/healthz", "/readyz"] {
        let req = http::Request::builder()
            .method(Method::HEAD)
            .uri(format!("https://localhost{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        ensure!(
            resp.status() == StatusCode::OK && resp.version() == http::Version::HTTP_2,
            "HEAD {path} over h2: {:?} {}",
            resp.version(),
            resp.status()
        );
    }
    server.stop().await?;

    // A user "ユーザー" (client certificate of the cluster's CA) allowed to read `rendered`.
    kompox_e2e::apiserver::shared().await?;
    let ns = TestNamespace::create(&client, "abuse-utf8", &[]).await?;
    put_compose(
        &client,
        &ns.name,
        "u-compose",
        "services: {web: {image: nginx}}\n",
    )
    .await?;
    apply(&client, &ns.name, &small_app("u", "u-compose")).await?;
    let user = "ユーザー";
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "utf8-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "utf8-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))?;
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "utf8-reader"},
        "rules": [{"apiGroups": ["subresources.k8s.kompox.dev"], "resources": ["kompoxapps/rendered"], "verbs": ["get"]}],
    }))?;
    let pp = kube::api::PostParams::default();
    kube::Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), &ns.name)
        .create(&pp, &role)
        .await?;
    kube::Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .create(&pp, &binding)
        .await?;
    let as_user = client_with_cert_cn(user).await?;
    let path = format!("{BASE}/namespaces/{}/kompoxapps/u/rendered", ns.name);
    wait_until(
        "rendered as the UTF-8 user",
        Duration::from_secs(30),
        || async {
            let (code, _) = raw(&as_user, Method::GET, &path, &[], vec![]).await?;
            Ok(code == StatusCode::OK)
        },
    )
    .await?;
    let (code, body) = raw(&as_user, Method::GET, &path, &[], vec![]).await?;
    ensure!(
        code == StatusCode::OK && String::from_utf8_lossy(&body).contains("Deployment"),
        "{code} {}",
        String::from_utf8_lossy(&body)
    );
    ns.cleanup().await
}

/// A client of the local cluster authenticated by a client certificate with CN `cn`, issued by
/// the cluster's CA (kube-apiserver's `--client-ca-file`).
async fn client_with_cert_cn(cn: &str) -> Result<kube::Client> {
    use base64::Engine as _;
    let pki = cluster()
        .admin_kubeconfig
        .parent()
        .context("admin kubeconfig without a directory")?
        .join("pki");
    let ca = kompox_serve::CertifiedCa::from_pem(
        &std::fs::read_to_string(pki.join("ca.crt"))?,
        &std::fs::read_to_string(pki.join("ca.key"))?,
    )?;
    let leaf = kompox_serve::issue_client_cert(&ca, cn, &[] as &[&str], 1)?;
    let mut kc = kube::config::Kubeconfig::read_from(&cluster().admin_kubeconfig)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for named in &mut kc.auth_infos {
        if let Some(info) = named.auth_info.as_mut() {
            *info = kube::config::AuthInfo {
                client_certificate_data: Some(b64.encode(&leaf.cert_pem)),
                client_key_data: Some(b64.encode(&leaf.key_pem).into()),
                ..kube::config::AuthInfo::default()
            };
        }
    }
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}
