//! kompox-apiserver behind the real kube-apiserver: APIService availability, discovery,
//! `rendered` with Secrets redacted, RBAC through SubjectAccessReview, front-proxy
//! authentication, attach/detach conflicts, `?validate=true`, and Status codes for bad input.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_e2e::apiserver::{
    BASE, direct, expect_status, front_proxy_client, json_body, raw, shared,
};
use kompox_e2e::{TestNamespace, admin_client, cluster, user_client, wait_until};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Values that must never appear in any response.
const DB_PASSWORD: &str = "pg-Sup3r-Secret-Passw0rd";
const SECRET_KEY: &str = "gitea-secret-key-5f2c9a71";

const COMPOSE: &str = r#"
services:
  gitea:
    image: gitea/gitea:1.22
    env_file:
      - /etc/kompox/env/gitea.env
    environment:
      GITEA__database__DB_TYPE: postgres
      GITEA__database__HOST: db:5432
    ports:
      - "3000:3000"
    volumes:
      - data:/data
    depends_on:
      - db
  db:
    image: postgres:16
    env_file:
      - /etc/kompox/env/gitea.env
    volumes:
      - db:/var/lib/postgresql/data
volumes:
  data: {}
  db: {}
"#;

fn env_file() -> String {
    format!(
        "POSTGRES_USER=gitea\nPOSTGRES_PASSWORD={DB_PASSWORD}\nGITEA__database__PASSWD={DB_PASSWORD}\nGITEA__security__SECRET_KEY={SECRET_KEY}\n"
    )
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn assert_no_secret(what: &str, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        DB_PASSWORD.to_owned(),
        SECRET_KEY.to_owned(),
        b64.encode(DB_PASSWORD),
        b64.encode(SECRET_KEY),
        b64.encode(env_file()),
        // `echo -n VALUE | sha256sum`: redaction is keyed, so no plain digest appears.
        sha256_hex(DB_PASSWORD),
        sha256_hex(SECRET_KEY),
        sha256_hex(&env_file()),
    ] {
        assert!(
            !text.contains(&needle),
            "{what}: a secret value leaked: {text}"
        );
    }
}

async fn create<K>(api: &Api<K>, v: Value) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v)?;
    Ok(api.create(&PostParams::default(), &obj).await?)
}

/// The Gitea-like app: compose ConfigMap, env Secret, disks and the KompoxApp.
async fn gitea_app(ns: &TestNamespace, name: &str, compose: &str) -> Result<()> {
    create(
        &ns.api::<ConfigMap>(),
        json!({"metadata": {"name": format!("{name}-compose")}, "data": {"compose.yml": compose}}),
    )
    .await?;
    create(
        &ns.api::<Secret>(),
        json!({"metadata": {"name": format!("{name}-env")}, "stringData": {"gitea.env": env_file()}}),
    )
    .await?;
    for d in ["data", "db"] {
        create(
            &ns.api::<KompoxDisk>(),
            json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
                   "metadata": {"name": format!("{name}-{d}")},
                   "spec": {"size": "10Gi", "zone": "1"}}),
        )
        .await?;
        // What the controller would record once the disk is provisioned (no controller runs
        // in these tests).
        ns.api::<KompoxDisk>()
            .patch_status(
                &format!("{name}-{d}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"pvName": format!("kompox-{}-{name}-{d}", ns.name), "handle": format!("csi-{name}-{d}")}})),
            )
            .await?;
    }
    create(
        &ns.api::<KompoxApp>(),
        json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
               "metadata": {"name": name},
               "spec": {
                   "compose": {"configMapRef": {"name": format!("{name}-compose"), "key": "compose.yml"}},
                   "ingress": {"className": "traefik", "rules": [{"name": "main", "port": 3000, "hosts": ["gitea.example.com"]}]},
                   "deployment": {"zone": "1"},
                   "volumes": [
                       {"name": "data", "diskRef": {"name": format!("{name}-data")}},
                       {"name": "db", "diskRef": {"name": format!("{name}-db")}},
                   ],
                   "files": {"mounts": [{"path": "/etc/kompox/env/gitea.env",
                                         "secretRef": {"name": format!("{name}-env"), "key": "gitea.env"}}]},
               }}),
    )
    .await?;
    Ok(())
}

fn rendered_path(ns: &str, app: &str) -> String {
    format!("{BASE}/namespaces/{ns}/kompoxapps/{app}/rendered")
}

fn disk_path(ns: &str, disk: &str, sub: &str) -> String {
    format!("{BASE}/namespaces/{ns}/kompoxdisks/{disk}/{sub}")
}

/// `GET path` as `client` through kube-apiserver.
async fn get(client: &kube::Client, path: &str) -> Result<(StatusCode, Bytes)> {
    raw(client, Method::GET, path, &[], vec![]).await
}

/// `POST path` as `client` with a JSON `body`.
async fn post_json(client: &kube::Client, path: &str, body: &str) -> Result<(StatusCode, Bytes)> {
    raw(
        client,
        Method::POST,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes().to_vec(),
    )
    .await
}

/// Repeats `request` until it answers 200 (within 30 s: RBAC and controllers on the shared
/// cluster take a moment) and returns that body; a timeout quotes the last answer.
async fn until_ok<F, Fut>(what: &str, request: F) -> Result<Bytes>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Bytes)>>,
{
    let last = std::sync::Mutex::new(None::<(StatusCode, Bytes)>);
    let (seen, request) = (&last, &request);
    let done = wait_until(what, Duration::from_secs(30), move || async move {
        let (code, body) = request().await?;
        if let Ok(mut s) = seen.lock() {
            *s = Some((code, body));
        }
        Ok(code == StatusCode::OK)
    })
    .await;
    let last = last.into_inner().ok().flatten();
    done.with_context(|| match &last {
        Some((code, body)) => format!("last answer: {code}: {}", String::from_utf8_lossy(body)),
        None => "no answer".to_owned(),
    })?;
    last.map(|(_, body)| body).context("no answer")
}

#[tokio::test]
async fn apiservice_is_available_and_discovery_lists_the_subresources() -> Result<()> {
    shared().await?;
    let text =
        tokio::task::spawn_blocking(|| kompox_e2e::kubectl(&["get", "--raw", BASE])).await??;
    let list: Value = serde_json::from_str(&text)?;
    let mut entries: Vec<(String, String, Vec<String>)> = list["resources"]
        .as_array()
        .context("resources")?
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["kind"].as_str().unwrap_or("").to_owned(),
                r["verbs"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            (
                "kompoxapps/rendered".to_owned(),
                "List".to_owned(),
                vec!["get".to_owned()]
            ),
            (
                "kompoxdisks/attach".to_owned(),
                "KompoxApp".to_owned(),
                vec!["create".to_owned()]
            ),
            (
                "kompoxdisks/detach".to_owned(),
                "KompoxApp".to_owned(),
                vec!["create".to_owned()]
            ),
        ]
    );
    // kube-apiserver serves /apis itself and now lists the group.
    let groups = tokio::task::spawn_blocking(|| kompox_e2e::kubectl(&["api-versions"])).await??;
    assert!(
        groups
            .lines()
            .any(|l| l == "subresources.k8s.kompox.dev/v1alpha1"),
        "{groups}"
    );
    // kubectl api-resources knows the group (and, as for every aggregated subresource, prints
    // no row for names with a slash: client-go's ServerPreferredResources drops them).
    let out = tokio::task::spawn_blocking(|| {
        kompox_e2e::kubectl(&[
            "api-resources",
            "--api-group=subresources.k8s.kompox.dev",
            "-o",
            "name",
        ])
    })
    .await??;
    assert!(!out.contains("error"), "{out}");
    Ok(())
}

#[tokio::test]
async fn direct_requests_need_the_front_proxy_certificate() -> Result<()> {
    let agg = shared().await?;
    let path = rendered_path("default", "missing-app");
    let forged = [
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
    ];
    // No client certificate: forged headers are ignored.
    let (code, body) = direct(agg, None, Method::GET, &path, &forged, b"").await?;
    expect_status("no client cert", (code, &body), StatusCode::UNAUTHORIZED)?;
    let status = json_body(&body)?;
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");

    // A certificate from another CA with the proxy's CN: refused in the handshake or 401.
    let other = kompox_serve::generate_ca("not-the-front-proxy-ca")?;
    let fake = kompox_serve::issue_client_cert(&other, "front-proxy-client", &[] as &[&str], 1)?;
    match direct(
        agg,
        Some((&fake.cert_pem, &fake.key_pem)),
        Method::GET,
        &path,
        &forged,
        b"",
    )
    .await
    {
        Err(_) => {}
        Ok((code, body)) => expect_status(
            "cert from another CA",
            (code, &body),
            StatusCode::UNAUTHORIZED,
        )?,
    }

    // The real proxy certificate with the same headers gets through authentication
    // (system:masters may do anything): the app does not exist.
    let (cert, key) = front_proxy_client()?;
    let (code, body) = direct(agg, Some((&cert, &key)), Method::GET, &path, &forged, b"").await?;
    expect_status("real proxy cert", (code, &body), StatusCode::NOT_FOUND)?;
    assert!(String::from_utf8_lossy(&body).contains("missing-app"));

    // Discovery and probes are open.
    let (code, _) = direct(agg, None, Method::GET, BASE, &[], b"").await?;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = direct(agg, None, Method::GET, "/readyz", &[], b"").await?;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = direct(agg, None, Method::GET, "/openapi/v2", &[], b"").await?;
    expect_status("openapi", (code, &body), StatusCode::NOT_FOUND)?;
    Ok(())
}

/// `/metrics` answers a bearer token kube-apiserver authenticates whose user may `get
/// /metrics`; the server asks with its own ServiceAccount (`system:auth-delegator` from
/// manifests/apiserver/rbac.yaml). The front-proxy headers are no credential here.
#[tokio::test]
async fn metrics_need_a_token_with_the_right() -> Result<()> {
    let agg = shared().await?;
    let tokens = kompox_e2e::metrics_tokens().await?;
    let (nobody, reader) = (
        format!("Bearer {}", tokens.nobody),
        format!("Bearer {}", tokens.reader),
    );
    let (cert, key) = front_proxy_client()?;
    let masters = [
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
    ];
    type Case<'a> = (
        &'a str,
        Option<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        StatusCode,
    );
    let cases: [Case; 5] = [
        ("anonymous", None, vec![], StatusCode::UNAUTHORIZED),
        (
            "forged token",
            None,
            vec![("Authorization", "Bearer forged")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "front-proxy certificate and headers",
            Some((&cert, &key)),
            masters.to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "token without the right",
            None,
            vec![("Authorization", nobody.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "metrics reader",
            None,
            vec![("Authorization", reader.as_str())],
            StatusCode::OK,
        ),
    ];
    for (case, cert, headers, want) in cases {
        let (code, body) = direct(agg, cert, Method::GET, "/metrics", &headers, b"").await?;
        expect_status(case, (code, &body), want)?;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            text.contains("kompox_apiserver_http_requests"),
            want == StatusCode::OK,
            "{case}: {text}"
        );
        if want == StatusCode::OK {
            assert!(
                text.contains(r#"kompox_build_info{component="apiserver",version=""#),
                "{text}"
            );
            // The serving leaf and the front-proxy CA it loaded, as Unix seconds in the future.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs_f64();
            for certificate in ["serving", "client_ca"] {
                let key = format!(
                    r#"kompox_apiserver_certificate_expiry_timestamp_seconds{{certificate="{certificate}"}} "#
                );
                let at: f64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix(key.as_str()))
                    .with_context(|| format!("{key}in {text}"))?
                    .parse()?;
                assert!(at > now, "{certificate} expires at {at}, before now {now}");
            }
        }
        if want == StatusCode::FORBIDDEN {
            assert!(
                text.contains(r#"User \"system:serviceaccount:kompox-e2e-metrics:nobody\" cannot get path \"/metrics\""#),
                "{case}: {text}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn rendered_as_admin_redacts_secrets() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-render", &[]).await?;
    gitea_app(&ns, "gitea", COMPOSE).await?;

    let path = rendered_path(&ns.name, "gitea");
    let (code, body) = get(&admin, &path).await?;
    expect_status("rendered", (code, &body), StatusCode::OK)?;
    assert_no_secret("rendered JSON", &body);
    let list = json_body(&body)?;
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().context("items")?;
    let kinds: Vec<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
    assert!(kinds.contains(&"Secret"), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|k| *k == "Deployment" || *k == "StatefulSet"),
        "{kinds:?}"
    );
    for s in items.iter().filter(|i| i["kind"] == "Secret") {
        assert_eq!(
            s["metadata"]["annotations"]["kompox.dev/redacted"], "true",
            "{s}"
        );
    }
    let warnings = list["metadata"]["annotations"]["kompox.dev/warnings"]
        .as_str()
        .context("warnings annotation")?;
    serde_json::from_str::<Vec<String>>(warnings).context("warnings is a JSON array")?;

    // Same objects, same order, as YAML. A controller running against the shared cluster
    // may update the disks between two requests (status.pvName), so compare a JSON and a YAML
    // answer taken back to back once they agree, within a bound.
    let mut agreed = false;
    for _ in 0..20 {
        let (code, json_now) = get(&admin, &path).await?;
        expect_status("rendered", (code, &json_now), StatusCode::OK)?;
        let (code, yaml) = raw(
            &admin,
            Method::GET,
            &path,
            &[("Accept", "application/yaml")],
            vec![],
        )
        .await?;
        expect_status("rendered YAML", (code, &yaml), StatusCode::OK)?;
        assert_no_secret("rendered YAML", &yaml);
        let from_yaml: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&yaml))?;
        if from_yaml == json_body(&json_now)? {
            agreed = true;
            break;
        }
    }
    assert!(agreed, "the YAML answer never matched the JSON answer");

    // Missing app → 404 Status; invalid compose → 422 naming the field.
    let (code, body) = get(&admin, &rendered_path(&ns.name, "nope")).await?;
    expect_status("missing app", (code, &body), StatusCode::NOT_FOUND)?;
    assert_eq!(json_body(&body)?["reason"], "NotFound");
    gitea_app(
        &ns,
        "broken",
        "services:\n  web:\n    image: nginx\n    ports: [\"x\"]\n",
    )
    .await?;
    let (code, body) = get(&admin, &rendered_path(&ns.name, "broken")).await?;
    expect_status(
        "invalid compose",
        (code, &body),
        StatusCode::UNPROCESSABLE_ENTITY,
    )?;
    let st = json_body(&body)?;
    assert_eq!(st["reason"], "Invalid");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or("")
            .contains("services.web.ports[0]"),
        "{st}"
    );
    // The compose ConfigMap missing: 422 naming the field that points at it.
    create(
        &ns.api::<KompoxApp>(),
        json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp", "metadata": {"name": "nocompose"},
               "spec": {"compose": {"configMapRef": {"name": "absent", "key": "compose.yml"}}}}),
    )
    .await?;
    let (code, body) = get(&admin, &rendered_path(&ns.name, "nocompose")).await?;
    expect_status(
        "missing compose",
        (code, &body),
        StatusCode::UNPROCESSABLE_ENTITY,
    )?;
    let st = json_body(&body)?;
    assert_eq!(
        st["details"]["causes"][0]["field"], "spec.compose.configMapRef.name",
        "{st}"
    );
    ns.cleanup().await
}

#[tokio::test]
async fn user_needs_kompox_view_to_read_rendered() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let dev = user_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-rbac", &[]).await?;
    gitea_app(&ns, "gitea", COMPOSE).await?;
    let path = rendered_path(&ns.name, "gitea");

    let (code, body) = get(&dev, &path).await?;
    expect_status("dev without a role", (code, &body), StatusCode::FORBIDDEN)?;
    let st = json_body(&body)?;
    assert_eq!(st["reason"], "Forbidden");
    assert!(st["message"].as_str().unwrap_or("").contains("dev"), "{st}");

    create(
        &ns.api::<RoleBinding>(),
        json!({"metadata": {"name": "dev-kompox-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kompox-view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}]}),
    )
    .await?;
    let body = until_ok("dev to be allowed with kompox-view", || get(&dev, &path)).await?;
    assert_no_secret("rendered as dev", &body);

    // kompox-view does not allow attach.
    let (code, body) = post_json(
        &dev,
        &disk_path(&ns.name, "gitea-data", "attach"),
        r#"{"app":"gitea","volume":"data"}"#,
    )
    .await?;
    expect_status(
        "attach with view only",
        (code, &body),
        StatusCode::FORBIDDEN,
    )?;
    ns.cleanup().await
}

#[tokio::test]
async fn attach_records_intent_and_conflicts_are_409() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-attach", &[]).await?;
    for (app, zone) in [("a1", "1"), ("a2", "1"), ("a3", "2")] {
        create(
            &ns.api::<KompoxApp>(),
            json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp", "metadata": {"name": app},
                   "spec": {"compose": {"configMapRef": {"name": "c", "key": "compose.yml"}},
                            "deployment": {"zone": zone}}}),
        )
        .await?;
    }
    create(
        &ns.api::<KompoxDisk>(),
        json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
               "metadata": {"name": "d1"}, "spec": {"size": "1Gi", "zone": "1"}}),
    )
    .await?;
    let attach = disk_path(&ns.name, "d1", "attach");
    let detach = disk_path(&ns.name, "d1", "detach");

    // Zone mismatch while the disk is free: disk in zone 1, a3 runs in zone 2.
    let (code, body) = post_json(&admin, &attach, r#"{"app":"a3","volume":"data"}"#).await?;
    expect_status("zone mismatch", (code, &body), StatusCode::CONFLICT)?;
    let msg = json_body(&body)?["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(msg.contains("-1\"") && msg.contains("-2\""), "{msg}");
    // Through kubectl, as documented: kubectl create --raw … -f body.json.
    let body_file = std::env::temp_dir().join(format!("kompox-attach-{}.json", ns.name));
    std::fs::write(&body_file, r#"{"app":"a1","volume":"data"}"#)?;
    let (attach_c, file) = (attach.clone(), body_file.to_string_lossy().into_owned());
    let out = tokio::task::spawn_blocking(move || {
        kompox_e2e::kubectl(&["create", "--raw", &attach_c, "-f", &file])
    })
    .await??;
    let _ = std::fs::remove_file(&body_file);
    let app: Value = serde_json::from_str(&out)?;
    assert_eq!(app["kind"], "KompoxApp");
    assert_eq!(
        app["spec"]["volumes"],
        json!([{"name": "data", "diskRef": {"name": "d1"}}])
    );
    let disk = ns.api::<KompoxDisk>().get("d1").await?;
    assert_eq!(
        disk.metadata
            .annotations
            .unwrap_or_default()
            .get("kompox.dev/attach-intent")
            .map(String::as_str),
        Some("a1/data")
    );

    // Same again: idempotent.
    let (code, body) = post_json(&admin, &attach, r#"{"app":"a1","volume":"data"}"#).await?;
    expect_status("repeat attach", (code, &body), StatusCode::OK)?;
    // Another app: 409 naming the holder.
    let (code, body) = post_json(&admin, &attach, r#"{"app":"a2","volume":"data"}"#).await?;
    expect_status("second attach", (code, &body), StatusCode::CONFLICT)?;
    let st = json_body(&body)?;
    assert_eq!(st["reason"], "Conflict");
    assert!(
        st["message"].as_str().unwrap_or("").contains("a1/data"),
        "{st}"
    );
    // Detach from the wrong app: 409; from the holder: released.
    let (code, body) = post_json(&admin, &detach, r#"{"app":"a2","volume":"data"}"#).await?;
    expect_status("detach by non-holder", (code, &body), StatusCode::CONFLICT)?;
    let (code, body) = post_json(&admin, &detach, r#"{"app":"a1","volume":"data"}"#).await?;
    expect_status("detach", (code, &body), StatusCode::OK)?;
    assert!(
        json_body(&body)?["spec"].get("volumes").is_none(),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let disk = ns.api::<KompoxDisk>().get("d1").await?;
    assert!(
        !disk
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kompox.dev/attach-intent")
    );
    // Now free: a2 may take it (once a controller running on the shared cluster, if any, has
    // released status.attachedTo too).
    until_ok("a2 to attach d1 after the detach", || {
        post_json(&admin, &attach, r#"{"app":"a2","volume":"data"}"#)
    })
    .await?;
    // Missing disk / app: 404.
    let (code, body) = post_json(
        &admin,
        &disk_path(&ns.name, "nope", "attach"),
        r#"{"app":"a1","volume":"v"}"#,
    )
    .await?;
    expect_status("missing disk", (code, &body), StatusCode::NOT_FOUND)?;
    let (code, body) = post_json(&admin, &attach, r#"{"app":"ghost","volume":"v"}"#).await?;
    expect_status("missing app", (code, &body), StatusCode::NOT_FOUND)?;
    ns.cleanup().await
}

#[tokio::test]
async fn bad_requests_get_statuses_not_panics() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let ns = "default";
    let attach = disk_path(ns, "d", "attach");
    type Case<'a> = (
        &'a str,
        Method,
        String,
        Vec<(&'a str, &'a str)>,
        &'a [u8],
        StatusCode,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Method::POST,
            attach.clone(),
            vec![("Content-Type", "application/json")],
            b"{\"app\":",
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing volume",
            Method::POST,
            attach.clone(),
            vec![("Content-Type", "application/json")],
            b"{\"app\":\"a\"}",
            StatusCode::BAD_REQUEST,
        ),
        (
            "non-JSON type",
            Method::POST,
            attach.clone(),
            vec![("Content-Type", "text/plain")],
            b"app=a",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "wrong method on attach",
            Method::GET,
            attach.clone(),
            vec![],
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "wrong method on rendered",
            Method::DELETE,
            rendered_path(ns, "a"),
            vec![],
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "unknown subresource",
            Method::GET,
            format!("{BASE}/namespaces/{ns}/kompoxapps/a/logs"),
            vec![],
            b"",
            StatusCode::NOT_FOUND,
        ),
        (
            "bad validate",
            Method::GET,
            format!("{}?validate=perhaps", rendered_path(ns, "a")),
            vec![],
            b"",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, method, path, headers, body, want) in cases {
        let (code, resp) = raw(&admin, method, &path, &headers, body.to_vec()).await?;
        expect_status(name, (code, &resp), want)?;
        let st = json_body(&resp).with_context(|| name.to_owned())?;
        assert_eq!(st["kind"], "Status", "{name}: {st}");
        assert_eq!(st["code"], want.as_u16(), "{name}: {st}");
    }
    // Still serving.
    let (code, _) = get(&admin, BASE).await?;
    assert_eq!(code, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn validate_reports_a_server_side_rejection() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-validate", &[]).await?;
    gitea_app(&ns, "gitea", COMPOSE).await?;
    let path = format!("{}?validate=true", rendered_path(&ns.name, "gitea"));
    let verdicts = |body: &Bytes| -> Result<(String, Vec<Value>)> {
        let list = json_body(body)?;
        let ann = &list["metadata"]["annotations"];
        let valid = ann["kompox.dev/valid"].as_str().unwrap_or("").to_owned();
        let v: Vec<Value> = serde_json::from_str(
            ann["kompox.dev/validation"]
                .as_str()
                .context("validation annotation")?,
        )?;
        Ok((valid, v))
    };
    let (code, body) = get(&admin, &path).await?;
    expect_status("validate", (code, &body), StatusCode::OK)?;
    assert_no_secret("validate", &body);
    let (valid, v) = verdicts(&body)?;
    assert_eq!(valid, "true", "{v:?}");
    assert!(!v.is_empty());

    // Made invalid on purpose: a quota of zero Services in the namespace rejects the dry run.
    create(
        &ns.api::<k8s_openapi::api::core::v1::ResourceQuota>(),
        json!({"metadata": {"name": "no-services"}, "spec": {"hard": {"count/services": "0"}}}),
    )
    .await?;
    let last = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = last.clone();
    wait_until(
        "the dry run to report the Service rejected",
        Duration::from_secs(30),
        || {
            let (admin, path, seen) = (admin.clone(), path.clone(), seen.clone());
            async move {
                let (code, body) = get(&admin, &path).await?;
                if code != StatusCode::OK {
                    bail!("{code}: {}", String::from_utf8_lossy(&body));
                }
                let (valid, v) = verdicts(&body)?;
                let rejected = v.iter().any(|x| {
                    x["kind"] == "Service"
                        && x["allowed"] == false
                        && x["message"]
                            .as_str()
                            .unwrap_or("")
                            .contains("exceeded quota")
                });
                if let Ok(mut s) = seen.lock() {
                    *s = v;
                }
                Ok(valid == "false" && rejected)
            }
        },
    )
    .await
    .with_context(|| {
        format!(
            "last verdicts: {:?}",
            last.lock().map(|v| v.clone()).unwrap_or_default()
        )
    })?;
    let _ = cluster();
    ns.cleanup().await
}

/// `samples/gitea` as a user would apply it: the objects of app.yml, the compose ConfigMap
/// from compose.yml. `rendered` answers the same objects, in the same order, as the sample's
/// golden `rendered.yaml` (rendered offline by the CLI), and no value of the sample's Secret.
#[tokio::test]
async fn rendered_gitea_sample_matches_the_golden_objects() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-gitea", &[]).await?;
    let dir = kompox_e2e::repo_root().join("samples/gitea");
    let docs = |text: &str| -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for doc in text.split("\n---") {
            let v: Value = serde_saphyr::from_str(doc).unwrap_or(Value::Null);
            if v.is_object() {
                out.push(v);
            }
        }
        Ok(out)
    };
    let objects = docs(&std::fs::read_to_string(dir.join("app.yml"))?)?;
    let compose = std::fs::read_to_string(dir.join("compose.yml"))?;
    let mut secret_values = Vec::new();
    for o in &objects {
        match o["kind"].as_str() {
            Some("KompoxApp") => {
                let r = &o["spec"]["compose"]["configMapRef"];
                create(
                    &ns.api::<ConfigMap>(),
                    json!({"metadata": {"name": r["name"]}, "data": {r["key"].as_str().unwrap_or("compose.yml"): compose}}),
                )
                .await?;
                create(&ns.api::<KompoxApp>(), o.clone()).await?;
            }
            Some("KompoxDisk") => {
                let name = o["metadata"]["name"]
                    .as_str()
                    .context("disk name")?
                    .to_owned();
                create(&ns.api::<KompoxDisk>(), o.clone()).await?;
                ns.api::<KompoxDisk>()
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"pvName": format!("kompox-{name}")}})),
                    )
                    .await?;
            }
            Some("Secret") => {
                for file in o["stringData"].as_object().context("stringData")?.values() {
                    for line in file.as_str().unwrap_or("").lines() {
                        if let Some((_, v)) = line.split_once('=')
                            && v.len() >= 8
                        {
                            secret_values.push(v.to_owned());
                        }
                    }
                }
                create(&ns.api::<Secret>(), o.clone()).await?;
            }
            other => bail!("samples/gitea/app.yml: unexpected kind {other:?}"),
        }
    }
    assert!(!secret_values.is_empty(), "the sample has Secret values");

    let path = rendered_path(&ns.name, "gitea");
    let (code, body) = get(&admin, &path).await?;
    expect_status("rendered gitea sample", (code, &body), StatusCode::OK)?;
    let text = String::from_utf8_lossy(&body);
    for v in &secret_values {
        assert!(
            !text.contains(v.as_str()),
            "a Secret value of the sample leaked"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(v);
        assert!(
            !text.contains(&b64),
            "a Secret value of the sample leaked (base64)"
        );
    }
    let list = json_body(&body)?;
    let kinds_and_names = |objects: &[Value]| -> Vec<(String, String)> {
        objects
            .iter()
            .map(|o| {
                let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (field(&o["kind"]), field(&o["metadata"]["name"]))
            })
            .collect()
    };
    let golden = docs(&std::fs::read_to_string(dir.join("rendered.yaml"))?)?;
    assert_eq!(
        kinds_and_names(list["items"].as_array().context("items")?),
        kinds_and_names(&golden)
    );
    // The golden file's warning (published port 2222 without an ingress rule) is reported.
    let warnings: Vec<String> = serde_json::from_str(
        list["metadata"]["annotations"]["kompox.dev/warnings"]
            .as_str()
            .context("warnings annotation")?,
    )?;
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("services.gitea.ports:") && w.contains("2222")),
        "{warnings:?}"
    );
    // Deterministic: two answers back to back are byte-identical (retried a bounded number of
    // times in case a controller on the shared cluster updates the disks in between).
    let mut same = false;
    for _ in 0..20 {
        let (_, a) = get(&admin, &path).await?;
        let (_, b) = get(&admin, &path).await?;
        if a == b {
            same = true;
            break;
        }
    }
    assert!(same, "two rendered answers in a row always differed");
    ns.cleanup().await
}

/// `?validate=true` dry-runs as the caller: a user who may only read `rendered` (kompox-view)
/// gets a forbidden verdict for every object, naming them, not the server's own verdict; and
/// one user's validations are rate-limited.
/// The aggregated API server cannot reach beyond what it needs: it may impersonate only the
/// dry-run identity kompox-validator (never a user or a group such as system:masters), holds
/// no create right on the rendered kinds, and kompox-validator's requests are refused unless
/// they are dry runs (ValidatingAdmissionPolicy kompox-validator-dry-run-only). A caller whose
/// rights come from a group gets verdicts through the per-object SubjectAccessReview.
#[tokio::test]
async fn the_servers_identity_cannot_reach_beyond_its_rights() -> Result<()> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    shared().await?;
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-narrow", &[]).await?;
    let apiserver = "system:serviceaccount:k4x-system:kompox-apiserver";
    let can = |user: &'static str,
               verb: &'static str,
               group: &'static str,
               resource: &'static str,
               name: &'static str,
               namespace: String| {
        let admin = admin.clone();
        async move {
            let sar = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.into()),
                    groups: Some(vec![
                        "system:serviceaccounts".into(),
                        "system:authenticated".into(),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        name: (!name.is_empty()).then(|| name.into()),
                        namespace: (!namespace.is_empty()).then_some(namespace),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            let answer = Api::<SubjectAccessReview>::all(admin)
                .create(&PostParams::default(), &sar)
                .await?;
            Ok::<bool, anyhow::Error>(answer.status.is_some_and(|s| s.allowed))
        }
    };
    let sys = "k4x-system".to_owned();
    for (case, verb, group, resource, name, namespace, want) in [
        (
            "impersonate system:masters",
            "impersonate",
            "",
            "groups",
            "system:masters",
            String::new(),
            false,
        ),
        (
            "impersonate any group",
            "impersonate",
            "",
            "groups",
            "",
            String::new(),
            false,
        ),
        (
            "impersonate a user",
            "impersonate",
            "",
            "users",
            "system:admin",
            String::new(),
            false,
        ),
        (
            "impersonate another ServiceAccount",
            "impersonate",
            "",
            "serviceaccounts",
            "kompox-controller",
            sys.clone(),
            false,
        ),
        (
            "impersonate kompox-validator",
            "impersonate",
            "",
            "serviceaccounts",
            "kompox-validator",
            sys.clone(),
            true,
        ),
        (
            "create a Deployment",
            "create",
            "apps",
            "deployments",
            "",
            ns.name.clone(),
            false,
        ),
        (
            "create a Secret",
            "create",
            "",
            "secrets",
            "",
            ns.name.clone(),
            false,
        ),
        (
            "create a Pod",
            "create",
            "",
            "pods",
            "",
            ns.name.clone(),
            false,
        ),
    ] {
        let got = can(apiserver, verb, group, resource, name, namespace).await?;
        ensure!(
            got == want,
            "kompox-apiserver may {case}: {got}, want {want}"
        );
    }

    // kompox-validator (impersonated here by the admin): dry runs pass, real writes are refused.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "validator-probe", "namespace": ns.name}, "data": {"a": "b"}});
    for (case, dry, want) in [
        ("dry run", true, StatusCode::CREATED),
        ("real write", false, StatusCode::FORBIDDEN),
    ] {
        let mut url = format!("/api/v1/namespaces/{}/configmaps", ns.name);
        if dry {
            url.push_str("?dryRun=All");
        }
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .header(
                "impersonate-user",
                "system:serviceaccount:k4x-system:kompox-validator",
            )
            .body(serde_json::to_vec(&cm)?)?;
        let code = match admin.request_text(req).await {
            Ok(_) => StatusCode::CREATED,
            Err(kube::Error::Api(st)) => {
                if !dry {
                    ensure!(
                        st.message
                            .contains("kompox-validator may only send dry runs"),
                        "{case}: {st:?}"
                    );
                }
                StatusCode::from_u16(st.code)?
            }
            Err(e) => return Err(e.into()),
        };
        ensure!(
            code == want,
            "kompox-validator, {case}: {code}, want {want}"
        );
    }
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    ensure!(
        cms.get_opt("validator-probe").await?.is_none(),
        "the validator stored a ConfigMap"
    );

    // A caller allowed through a group: every object passes the per-object review and its dry
    // run (a user with only kompox-view gets 403 per object: the next test).
    gitea_app(&ns, "gitea", COMPOSE).await?;
    create(
        &ns.api::<RoleBinding>(),
        json!({"metadata": {"name": "team-edit"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kompox-e2e-team"}]}),
    )
    .await?;
    let agg = shared().await?;
    let (cert, key) = front_proxy_client()?;
    let path = format!("{}?validate=true", rendered_path(&ns.name, "gitea"));
    let headers = [
        ("X-Remote-User", "carol"),
        ("X-Remote-Group", "kompox-e2e-team"),
        ("X-Remote-Group", "system:authenticated"),
    ];
    let body = until_ok("carol (edit through a group) to validate", || {
        direct(agg, Some((&cert, &key)), Method::GET, &path, &headers, b"")
    })
    .await?;
    assert_no_secret("validate as carol", &body);
    let list = json_body(&body)?;
    let ann = &list["metadata"]["annotations"];
    ensure!(ann["kompox.dev/valid"] == "true", "{ann}");
    ns.cleanup().await
}

#[tokio::test]
async fn validate_judges_with_the_callers_rights() -> Result<()> {
    shared().await?;
    let admin = admin_client().await?;
    let dev = user_client().await?;
    let ns = TestNamespace::create(&admin, "apisrv-validate-as", &[]).await?;
    gitea_app(&ns, "gitea", COMPOSE).await?;
    create(
        &ns.api::<RoleBinding>(),
        json!({"metadata": {"name": "dev-kompox-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kompox-view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}]}),
    )
    .await?;
    let path = format!("{}?validate=true", rendered_path(&ns.name, "gitea"));
    let body = until_ok("dev to be allowed to read rendered", || get(&dev, &path)).await?;
    assert_no_secret("validate as dev", &body);
    let list = json_body(&body)?;
    let ann = &list["metadata"]["annotations"];
    assert_eq!(ann["kompox.dev/valid"], "false", "{ann}");
    let verdicts: Vec<Value> = serde_json::from_str(
        ann["kompox.dev/validation"]
            .as_str()
            .context("validation annotation")?,
    )?;
    assert!(!verdicts.is_empty());
    for v in &verdicts {
        assert_eq!(v["allowed"], false, "{v}");
        assert_eq!(v["code"], 403, "{v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains("User \"dev\""), "{v}");
    }
    // The same app validated by an admin passes (the apiserver suite's other test), so the
    // verdict is the caller's. A burst of validations by one user is limited.
    // Straight to the server with the front-proxy certificate: kube clients retry a 429 with
    // back-off, which would hide it.
    let agg = shared().await?;
    let (cert, key) = front_proxy_client()?;
    let as_dev = [
        ("X-Remote-User", "dev"),
        ("X-Remote-Group", "system:authenticated"),
    ];
    let burst = futures::future::join_all(
        (0..10).map(|_| direct(agg, Some((&cert, &key)), Method::GET, &path, &as_dev, b"")),
    )
    .await;
    let mut limited = None;
    for r in burst {
        let (code, body) = r?;
        if code == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(json_body(&body)?);
        }
    }
    let st = limited.context("no 429 among 10 validations at once")?;
    assert_eq!(st["reason"], "TooManyRequests", "{st}");
    // rendered without validate is not limited.
    let (code, body) = get(&dev, &rendered_path(&ns.name, "gitea")).await?;
    expect_status("rendered without validate", (code, &body), StatusCode::OK)?;
    ns.cleanup().await
}
