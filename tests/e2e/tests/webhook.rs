//! The admission webhook through the real kube-apiserver: zone affinity from KompoxDisks
//! (Pods scheduled onto the disk's zone and Running), zone conflicts denied, system and
//! unmanaged namespaces untouched, the env hash rolling a Deployment when its Secret changes
//! (and only then), failurePolicy Fail with the webhook down, and the serving certificate
//! taken from a Secret and rotated without a restart.
//!
//! Every test registers its own MutatingWebhookConfiguration (from the manifest) narrowed to
//! its own namespaces, so tests run in parallel without seeing each other's webhooks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kompox_e2e::webhook::{
    E2E_WEBHOOK_LABEL, Registration, WebhookServer, assert_api_error, create_bound_claim,
    create_disk, delete_pv, dry_run_pod, env_hash, label_namespace, managed_namespace, pod,
    put_secret, required_zones, template_hash, test_id, wait_mutating,
};
use kompox_e2e::{TestNamespace, admin_client, ensure_crds, kubectl, wait_until};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

const REGION: &str = "japaneast";

fn zone(n: u8) -> String {
    format!("{REGION}-{n}")
}

async fn node_in_zone(client: &Client, zone: &str) -> Result<String> {
    Api::<Node>::all(client.clone())
        .list(
            &ListParams::default().labels(&format!("type=kwok,topology.kubernetes.io/zone={zone}")),
        )
        .await?
        .items
        .into_iter()
        .find_map(|n| n.metadata.name)
        .with_context(|| format!("no node in zone {zone}"))
}

/// A Deployment using PVC `data` in zone 2 gets its Pod pinned there by the webhook; the
/// Pod is scheduled to the zone-2 node and runs. Disks in two zones are denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_follow_their_disk_zone_and_conflicts_are_denied() -> Result<()> {
    ensure_crds().await?;
    let client = admin_client().await?;
    let id = test_id();
    let server = WebhookServer::start(&client).await?;
    let reg = Registration::create(&client, &id, &server.url(), Some(server.ca.cert_pem())).await?;
    let ns = managed_namespace(&client, "wh-zone", &id).await?;
    let n = ns.name.clone();

    create_disk(&client, &n, "main", "2").await?;
    create_disk(&client, &n, "logs", "1").await?;
    let pv_main = create_bound_claim(&client, &n, "data", "main").await?;
    let pv_logs = create_bound_claim(&client, &n, "logs", "logs").await?;
    let want2 = zone(2);
    // The registration is live and the webhook's caches hold both disks, PVs and PVCs (they
    // come from separate watches, so each claim is probed).
    wait_mutating(&client, &n, &pod("probe", &["data"], None)?, |p| {
        required_zones(p) == vec![vec![want2.clone()]]
    })
    .await?;
    wait_mutating(&client, &n, &pod("probe-logs", &["logs"], None)?, |p| {
        required_zones(p) == vec![vec![zone(1)]]
    })
    .await?;

    let deploy: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            },
        },
    }))?;
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deploy)
        .await?;
    let node2 = node_in_zone(&client, &zone(2)).await?;
    let pods: Api<Pod> = ns.api();
    wait_until(
        "the Deployment's Pod Running on the zone-2 node",
        Duration::from_secs(90),
        || {
            let (pods, node2) = (pods.clone(), node2.clone());
            async move {
                let list = pods.list(&ListParams::default().labels("app=web")).await?;
                Ok(list.items.iter().any(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node2.as_str())
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                }))
            }
        },
    )
    .await?;
    let running = pods.list(&ListParams::default().labels("app=web")).await?;
    for p in &running.items {
        assert_eq!(
            required_zones(p),
            vec![vec![zone(2)]],
            "{:?}",
            p.metadata.name
        );
    }

    // A user affinity with two ORed terms: each gets the zone requirement.
    let mut two_terms = pod("two-terms", &["data"], None)?;
    two_terms.spec.as_mut().context("spec")?.affinity = Some(serde_json::from_value(
        serde_json::json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
                {"matchExpressions": [{"key": "type", "operator": "In", "values": ["kwok"]}]},
            ]}},
        }),
    )?);
    let created = ns
        .api::<Pod>()
        .create(&PostParams::default(), &two_terms)
        .await?;
    assert_eq!(required_zones(&created), vec![vec![zone(2)], vec![zone(2)]]);

    // Disks in zones 1 and 2 cannot be attached by one node: denied, naming both.
    let err = ns
        .api::<Pod>()
        .create(
            &PostParams::default(),
            &pod("both", &["data", "logs"], None)?,
        )
        .await
        .err()
        .context("a Pod with disks in zones 1 and 2 was admitted")?;
    assert_api_error(
        &err,
        &[
            "pods.webhook.kompox.dev",
            "denied the request",
            &format!("KompoxDisk {n}/main (PVC data) is in zone {}", zone(2)),
            &format!("KompoxDisk {n}/logs (PVC logs) is in zone {}", zone(1)),
        ],
    )?;

    reg.delete().await?;
    server.stop().await?;
    ns.cleanup().await?;
    delete_pv(&client, &pv_main).await?;
    delete_pv(&client, &pv_logs).await
}

/// kube-system is excluded by the registration even when it carries the managed label; a
/// Pod there is not mutated, while the same Pod in a managed namespace is. A Pod with the
/// opt-out label is not mutated either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_namespaces_and_opted_out_pods_are_untouched() -> Result<()> {
    let client = admin_client().await?;
    let id = test_id();
    let server = WebhookServer::start(&client).await?;
    let reg = Registration::create(&client, &id, &server.url(), Some(server.ca.cert_pem())).await?;
    let ns = managed_namespace(&client, "wh-sys", &id).await?;
    let secret = format!("e2e-webhook-{id}");
    put_secret(&client, &ns.name, &secret, &[("A", "1")]).await?;
    put_secret(&client, "kube-system", &secret, &[("A", "1")]).await?;
    let probe = pod(&format!("e2e-{id}"), &[], Some(&secret))?;
    wait_mutating(&client, &ns.name, &probe, |p| env_hash(p).is_some()).await?;

    let mut opted_out = probe.clone();
    opted_out
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(kompox_core::naming::WEBHOOK_LABEL.into(), "disabled".into());
    let p = dry_run_pod(&client, &ns.name, &opted_out).await?;
    ensure!(env_hash(&p).is_none(), "opted-out Pod was mutated");

    // Label kube-system as managed and as this test's: only the name exclusion keeps the
    // webhook away. Labels are removed whatever happens.
    let labels = [
        ("app.kubernetes.io/managed-by", Some("kompox")),
        (E2E_WEBHOOK_LABEL, Some(id.as_str())),
    ];
    label_namespace(&client, "kube-system", &labels).await?;
    let result = async {
        // The same Pod in the managed namespace is mutated (the registration is live).
        let managed = dry_run_pod(&client, &ns.name, &probe).await?;
        ensure!(
            env_hash(&managed).is_some(),
            "managed namespace not mutated"
        );
        let sys = dry_run_pod(&client, "kube-system", &probe).await?;
        ensure!(env_hash(&sys).is_none(), "Pod in kube-system was mutated");
        Ok(())
    }
    .await;
    label_namespace(
        &client,
        "kube-system",
        &[
            ("app.kubernetes.io/managed-by", None),
            (E2E_WEBHOOK_LABEL, None),
        ],
    )
    .await?;
    Api::<Secret>::namespaced(client.clone(), "kube-system")
        .delete(&secret, &DeleteParams::default())
        .await?;
    result?;

    reg.delete().await?;
    server.stop().await?;
    ns.cleanup().await
}

fn web_manifest(secret: &str, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: {image}
          envFrom:
            - secretRef: {{name: {secret}}}
"#
    )
}

/// `kubectl apply --server-side` of a Deployment whose Secret changed rolls it (new template
/// hash, new Pods carrying it); re-applying with the Secret unchanged does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_rolls_the_deployment_and_nothing_else_does() -> Result<()> {
    let client = admin_client().await?;
    let id = test_id();
    let server = WebhookServer::start(&client).await?;
    let reg = Registration::create(&client, &id, &server.url(), Some(server.ca.cert_pem())).await?;
    let ns = managed_namespace(&client, "wh-env", &id).await?;
    let n = ns.name.clone();
    put_secret(&client, &n, "app-env", &[("PASSWORD", "first")]).await?;
    wait_mutating(&client, &n, &pod("probe", &[], Some("app-env"))?, |p| {
        env_hash(p).is_some()
    })
    .await?;

    let file = std::env::temp_dir().join(format!("kompox-e2e-web-{id}.yaml"));
    std::fs::write(&file, web_manifest("app-env", "registry.example/app:1"))?;
    let path = file.to_string_lossy().into_owned();
    // Server-side apply always sends the request, so admission runs even when the manifest
    // is unchanged (client-side apply skips the request then).
    let apply = || kubectl(&["apply", "--server-side", "-n", &n, "-f", &path]);
    apply()?;
    let deploys: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    let h1 = template_hash(&deploys.get("web").await?).context("template has no env hash")?;
    wait_pods_with_hash(&pods, &h1).await?;
    let gen1 = deploys.get("web").await?.metadata.generation;

    // Unchanged Secret: re-applying changes nothing (no new generation, no new ReplicaSet).
    apply()?;
    let d = deploys.get("web").await?;
    assert_eq!(template_hash(&d).as_deref(), Some(h1.as_str()));
    assert_eq!(
        d.metadata.generation, gen1,
        "re-apply without a Secret change rolled"
    );
    let rs = ns.api::<ReplicaSet>().list(&ListParams::default()).await?;
    assert_eq!(rs.items.len(), 1);

    // Rotate the Secret, wait until the webhook has seen it (a server-side dry run of the
    // apply shows a new hash), then apply for real.
    put_secret(&client, &n, "app-env", &[("PASSWORD", "second")]).await?;
    let h1c = h1.clone();
    wait_until(
        "the webhook to see the new Secret",
        Duration::from_secs(30),
        || {
            let (path, n, h1) = (path.clone(), n.clone(), h1c.clone());
            async move {
                let out = kubectl(&[
                    "apply",
                    "--server-side",
                    "-n",
                    &n,
                    "-f",
                    &path,
                    "--dry-run=server",
                    "-o",
                    "jsonpath={.spec.template.metadata.annotations.kompox\\.dev/env-hash}",
                ])?;
                Ok(!out.trim().is_empty() && out.trim() != h1)
            }
        },
    )
    .await?;
    apply()?;
    let d = deploys.get("web").await?;
    let h2 = template_hash(&d).context("no env hash after rotation")?;
    assert_ne!(h2, h1);
    assert!(d.metadata.generation > gen1);
    wait_pods_with_hash(&pods, &h2).await?;
    std::fs::remove_file(&file)?;

    reg.delete().await?;
    server.stop().await?;
    ns.cleanup().await
}

/// Waits until the Deployment's only Pods are 2 Running Pods carrying `hash`.
async fn wait_pods_with_hash(pods: &Api<Pod>, hash: &str) -> Result<()> {
    wait_until(
        &format!("2 Running Pods with env hash {hash}, and no others"),
        Duration::from_secs(120),
        || {
            let (pods, hash) = (pods.clone(), hash.to_owned());
            async move {
                let list = pods.list(&ListParams::default().labels("app=web")).await?;
                let live: Vec<&Pod> = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                Ok(live.len() == 2
                    && live.iter().all(|p| {
                        env_hash(p).as_deref() == Some(hash.as_str())
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    }))
            }
        },
    )
    .await
}

/// With the webhook down and failurePolicy Fail, Pods that need it cannot be created in
/// managed namespaces (with a clear error); unmanaged namespaces, opted-out Pods, Pods the
/// matchConditions skip (no PVC, no env reference; mirror Pods) are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_fails_closed_only_where_it_applies() -> Result<()> {
    let client = admin_client().await?;
    let id = test_id();
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        l.local_addr()?
    };
    let ca = kompox_serve::certs::generate_ca("kompox-e2e-unused")?;
    let reg = Registration::create(
        &client,
        &id,
        &format!("https://{dead}/mutate"),
        Some(ca.cert_pem()),
    )
    .await?;
    let managed = managed_namespace(&client, "wh-down", &id).await?;
    let unmanaged =
        TestNamespace::create(&client, "wh-down-u", &[(E2E_WEBHOOK_LABEL, id.as_str())]).await?;
    let with_env = pod("needs-webhook", &[], Some("some-secret"))?;
    wait_until(
        "the dead webhook to be registered",
        Duration::from_secs(60),
        || {
            let r = dry_run_pod(&client, &managed.name, &with_env);
            async move { Ok(r.await.is_err()) }
        },
    )
    .await?;

    let err = managed
        .api::<Pod>()
        .create(&PostParams::default(), &with_env)
        .await
        .err()
        .context("created although the webhook is down")?;
    assert_api_error(
        &err,
        &[
            "failed calling webhook",
            "pods.webhook.kompox.dev",
            &dead.to_string(),
        ],
    )?;
    let with_claim = pod("claim", &["data"], None)?;
    ensure!(
        dry_run_pod(&client, &managed.name, &with_claim)
            .await
            .is_err(),
        "a Pod with a PVC skipped the webhook"
    );

    // Unaffected: another namespace, an opted-out Pod, a Pod with nothing for the webhook
    // (its service-account volume projects kube-root-ca.crt, which does not count).
    unmanaged
        .api::<Pod>()
        .create(&PostParams::default(), &with_env)
        .await
        .context("unmanaged namespace")?;
    let mut opted_out = pod("opted-out", &[], Some("some-secret"))?;
    opted_out
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(kompox_core::naming::WEBHOOK_LABEL.into(), "disabled".into());
    managed
        .api::<Pod>()
        .create(&PostParams::default(), &opted_out)
        .await
        .context("opted-out Pod")?;
    let plain = managed
        .api::<Pod>()
        .create(&PostParams::default(), &pod("plain", &[], None)?)
        .await
        .context("Pod without PVCs or env references")?;
    ensure!(
        plain
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .is_some_and(|v| v.iter().any(|v| v.projected.is_some())),
        "expected the service-account projected volume on {:?}",
        plain.metadata.name
    );
    // A mirror Pod (as a kubelet would create it; the API server refuses mirror Pods that
    // reference Secrets itself, so this one uses a PVC) is skipped by its matchCondition.
    let node = node_in_zone(&client, &zone(1)).await?;
    let mut mirror = pod("mirror", &["data"], None)?;
    mirror
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("kubernetes.io/config.mirror".into(), "mirror".into());
    if let Some(spec) = mirror.spec.as_mut() {
        spec.node_name = Some(node);
    }
    dry_run_pod(&client, &managed.name, &mirror)
        .await
        .context("mirror Pod")?;

    reg.delete().await?;
    managed.cleanup().await?;
    unmanaged.cleanup().await
}

/// `--tls-secret` with `--tls-manage`: the webhook creates its certificate in a Secret, puts
/// the CA into its registration's caBundle, and kube-apiserver calls it. Rotating the Secret
/// (new CA + certificate, old CA kept in the bundle) swaps the served certificate without a
/// restart, and kube-apiserver keeps calling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_certificate_from_a_secret_rotates_without_restart() -> Result<()> {
    let client = admin_client().await?;
    let id = test_id();
    let ns = managed_namespace(&client, "wh-tls", &id).await?;
    let secret_name = "webhook-tls";
    let config_name = format!("kompox-e2e-{id}");
    let config = kompox_webhook::Config {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls: kompox_webhook::TlsSource::Secret(kompox_webhook::tls_secret::SecretTls {
            namespace: ns.name.clone(),
            name: secret_name.into(),
            manage: Some(kompox_webhook::tls_secret::Managed {
                dns_names: vec!["localhost".into()],
                ca_bundle_target: Some(
                    kompox_webhook::tls_secret::CaBundleTarget::MutatingWebhookConfiguration(
                        config_name.clone(),
                    ),
                ),
            }),
        }),
        region: None,
        hash_key: kompox_e2e::hash_key(),
        client_auth: None,
        serve: kompox_serve::ServeOptions::default(),
    };
    // The CA the test trusts is whatever the webhook puts in the Secret; read it back.
    let webhook = kompox_webhook::Webhook::bind(config, client.clone()).await?;
    let port = webhook.local_addr()?.port();
    let secrets: Api<Secret> = ns.api();
    let created = secrets
        .get(secret_name)
        .await
        .context("the webhook created no Secret")?;
    let data = created.data.clone().unwrap_or_default();
    for key in ["tls.crt", "tls.key", "ca.crt", "ca.key"] {
        ensure!(data.contains_key(key), "Secret lacks {key}");
    }
    let ca1 = String::from_utf8(data["ca.crt"].0.clone())?;
    let leaf1 = String::from_utf8(data["tls.crt"].0.clone())?;
    // Registered without a caBundle: the webhook fills it in.
    let reg = Registration::create(
        &client,
        &id,
        &format!("https://localhost:{port}/mutate"),
        None,
    )
    .await?;
    let health = webhook.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(webhook.run(async move {
        let _ = stopped.await;
    }));
    wait_until("webhook ready", Duration::from_secs(60), || {
        let r = health.is_ready();
        async move { Ok(r) }
    })
    .await?;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let bundle_is = |want: String| {
        let configs = configs.clone();
        let name = config_name.clone();
        move || {
            let (configs, name, want) = (configs.clone(), name.clone(), want.clone());
            async move {
                let cfg = configs.get(&name).await?;
                Ok(cfg.webhooks.unwrap_or_default().iter().all(|w| {
                    w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice())
                        == Some(want.as_bytes())
                }))
            }
        }
    };
    wait_until(
        "caBundle set from the Secret",
        Duration::from_secs(30),
        bundle_is(ca1.clone()),
    )
    .await?;
    put_secret(&client, &ns.name, "env", &[("K", "v")]).await?;
    let probe = pod("probe", &[], Some("env"))?;
    wait_mutating(&client, &ns.name, &probe, |p| env_hash(p).is_some()).await?;
    ensure!(
        served_leaf(port).await? == first_der(&leaf1)?,
        "not serving the Secret's certificate"
    );

    // Rotate as an installer would: new CA in front of the old one, a certificate from it.
    let ca2 = kompox_serve::certs::generate_ca("kompox-e2e-rotated-ca")?;
    let leaf2 = kompox_serve::certs::issue_serving_cert(&ca2, &["localhost"], &[], 365)?;
    let bundle2 = format!("{}{ca1}", ca2.cert_pem());
    let mut rotated = created.clone();
    rotated.metadata.managed_fields = None;
    rotated.data = Some(
        [
            ("tls.crt", leaf2.cert_pem.as_str()),
            ("tls.key", leaf2.key_pem.as_str()),
            ("ca.crt", bundle2.as_str()),
            ("ca.key", ca2.key_pem()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
        .collect(),
    );
    secrets
        .replace(secret_name, &PostParams::default(), &rotated)
        .await?;
    let want_leaf = first_der(&leaf2.cert_pem)?;
    wait_until(
        "the rotated certificate to be served",
        Duration::from_secs(30),
        || {
            let want = want_leaf.clone();
            async move { Ok(served_leaf(port).await? == want) }
        },
    )
    .await?;
    wait_until(
        "caBundle = new + old CA",
        Duration::from_secs(30),
        bundle_is(bundle2.clone()),
    )
    .await?;
    // kube-apiserver still calls the webhook, trusting the new CA through the bundle once its
    // view of the configuration has the new caBundle (its informer trails the object).
    wait_mutating(&client, &ns.name, &probe, |p| env_hash(p).is_some())
        .await
        .context("not mutated after rotation")?;
    // The webhook took the installer's material as is.
    let after = secrets.get(secret_name).await?;
    ensure!(
        after
            .data
            .unwrap_or_default()
            .get("tls.crt")
            .map(|b| b.0.clone())
            == Some(leaf2.cert_pem.into_bytes()),
        "the webhook replaced a valid rotated certificate"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task).await??;
    reg.delete().await?;
    ns.cleanup().await
}

fn first_der(pem: &str) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .context("no certificate in PEM")??;
    Ok(der.as_ref().to_vec())
}

/// The leaf certificate the webhook presents on a new connection (verification off: this
/// only reads what is served).
async fn served_leaf(port: u16) -> Result<Vec<u8>> {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls_pki_types::CertificateDer<'_>,
            _: &[rustls_pki_types::CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate served")?;
    Ok(leaf.as_ref().to_vec())
}

/// Over the real TLS server: malformed, huge and wrongly typed bodies get 4xx answers with a
/// message (400, 413, 415), and the server keeps answering valid reviews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_over_tls_get_clear_errors_and_no_crash() -> Result<()> {
    let client = admin_client().await?;
    let server = WebhookServer::start(&client).await?;
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "default", "operation": "CREATE",
            "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}},
    })
    .to_string();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{\"apiVersion\": oops".to_vec(),
            400,
            "malformed AdmissionReview: invalid JSON",
        ),
        (
            "application/json",
            b"{}".to_vec(),
            400,
            "unsupported review",
        ),
        (
            "application/json",
            b"[]".to_vec(),
            400,
            "malformed AdmissionReview",
        ),
        (
            "text/plain",
            review.clone().into_bytes(),
            415,
            "Content-Type must be application/json",
        ),
        (
            "application/json",
            review.clone().into_bytes(),
            200,
            "\"allowed\":true",
        ),
    ];
    for (content_type, body, want, needle) in cases {
        let (status, text) = post_over_tls(&server, content_type, body)
            .await
            .with_context(|| format!("{content_type} {want}"))?;
        ensure!(
            status == want,
            "{content_type}: got {status} {text:?}, want {want}"
        );
        ensure!(
            text.contains(needle),
            "{content_type}: {text:?} lacks {needle:?}"
        );
    }
    // A 9 MiB body is refused from its Content-Length, before it is read (only the headers
    // are sent here: the server answers without waiting for the rest).
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        9 * 1024 * 1024
    );
    let answer = raw_over_tls(&server, head.as_bytes()).await?;
    ensure!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    ensure!(answer.contains("exceeds 8388608 bytes"), "{answer:?}");
    // And the server still answers a valid review.
    let (status, text) = post_over_tls(&server, "application/json", review.into_bytes()).await?;
    ensure!(
        status == 200 && text.contains("\"uid\":\"u-1\""),
        "{status} {text}"
    );
    server.stop().await
}

/// One POST /mutate on a fresh TLS connection that verifies the server against its CA.
async fn post_over_tls(
    server: &WebhookServer,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, String)> {
    use http_body_util::{BodyExt as _, Full};
    let stream = tls_stream(server).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/mutate")
        .header("content-type", content_type)
        .header("host", "127.0.0.1")
        .body(Full::new(bytes::Bytes::from(body)))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let text = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

async fn tls_stream(
    server: &WebhookServer,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(first_der(
        server.ca.cert_pem(),
    )?))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(rustls_pki_types::ServerName::try_from("127.0.0.1")?, tcp)
        .await?)
}

/// Writes `request` (raw HTTP/1.1) and reads the answer: headers plus `content-length` bytes,
/// or until the server closes, or 10 s.
async fn raw_over_tls(server: &WebhookServer, request: &[u8]) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tls_stream(server).await?;
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head.lines().find_map(|l| {
                        let l = l.to_ascii_lowercase();
                        l.strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse::<usize>().ok())
                    });
                    if len.is_some_and(|l| body.len() >= l) {
                        break;
                    }
                }
            }
            // Closed, reset after answering, or out of time: what was read is the answer.
            _ => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
