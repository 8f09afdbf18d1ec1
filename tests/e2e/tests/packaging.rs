//! The three install paths — `kubectl kompox install`, the Helm chart `charts/kompox`, the
//! kustomize base `manifests/` — install the same objects, and each brings Kompox up.
//!
//! - [`install_paths_render_the_same_objects`]: `install --dry-run=client -o yaml` ≡ `helm
//!   template --include-crds` ≡ `kubectl kustomize`, for the defaults and with every option
//!   (named cases). Nothing is generated in any of them (the servers make their certificates
//!   and the hash key), so the comparison is exact.
//! - [`helm_install_comes_up_and_uninstalls_cleanly`] and
//!   [`kustomize_apply_comes_up_and_deletes_cleanly`]: the objects go into the cluster by
//!   `helm install` / `kubectl apply -k`; the local control plane has no node that runs
//!   Kompox's image, so — as `install --local` does — the three servers run as processes of
//!   this machine with exactly the arguments of the Deployments that were applied and as their
//!   ServiceAccounts (so the chart's RBAC is what they get), and the two Services are pointed at
//!   them (ExternalName → localhost). They create their TLS Secrets and the hash key, put their
//!   CAs into the APIService and the webhook configuration; the APIService turns Available and
//!   kube-apiserver calls the webhook for a Pod. Then `helm uninstall` / `kubectl delete -k`
//!   (the CRDs kept) leaves no object of the install behind, and a foreign IngressClass `traefik` (created
//!   before the Helm install) is neither taken over nor deleted.
//! - [`install_keeps_a_foreign_ingress_class`]: the same for `kubectl kompox install --local`
//!   and `uninstall --local`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::IngressClass;
use kompox_e2e::cli::{kompox, kompox_async, temp_dir};
use kompox_e2e::{
    TestNamespace, admin_client, cluster, repo_root, service_account_kubeconfig, wait_until,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const SYSTEM_NS: &str = "k4x-system";
const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
/// In a drift case's flags: the path of the cluster's webhook client CA.
const CLIENT_CA: &str = "CLIENT_CA";

/// The install paths share k4x-system and the cluster-wide registrations: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn helm() -> PathBuf {
    cluster().bin_dir.join("helm")
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} exited {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The objects of a YAML stream by `kind namespace/name` (empty documents skipped).
fn by_name(yaml: &str, what: &str) -> Result<BTreeMap<String, Value>> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).with_context(|| format!("parsing {what}"))?;
    let mut out = BTreeMap::new();
    for d in docs.into_iter().filter(Value::is_object) {
        let key = format!(
            "{} {}/{}",
            d["kind"].as_str().unwrap_or_default(),
            d["metadata"]["namespace"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        );
        ensure!(
            out.insert(key.clone(), numbers(d)).is_none(),
            "{what}: {key} twice"
        );
    }
    Ok(out)
}

/// `v` with integral floats as integers: `511.0` (the CRD generator's) and `511` (kustomize's)
/// are the same number to the API server.
fn numbers(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(numbers).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, numbers(v))).collect()),
        other => other,
    }
}

/// The first path where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            first_difference(
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
                &format!("{path}/{k}"),
            )
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn same(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>, what: &str) -> Result<()> {
    let (ka, kb): (Vec<&String>, Vec<&String>) = (a.keys().collect(), b.keys().collect());
    ensure!(ka == kb, "{what}: different objects:\n{ka:?}\n{kb:?}");
    for (k, v) in a {
        let other = b.get(k).unwrap_or(&Value::Null);
        if let Some(d) = first_difference(v, other, "") {
            bail!("{what}: {k} differs at {d}");
        }
    }
    Ok(())
}

#[rstest::rstest]
#[case::defaults(&[], &[], Some("manifests"))]
#[case::without_traefik(&["--ingress", "none"], &["--set", "ingress=none"], Some("manifests/without-traefik"))]
#[case::every_option(
    &["--image", "registry.example/kompox:1.2.3", "--watch-namespaces", "kompox.dev/tenant=a",
      "--node-selector", "pool=system", "--toleration", "dedicated=kompox:NoSchedule",
      "--toleration", "spot:NoExecute", "--acme-email", "ops@example.com"],
    &["--set", "image=registry.example/kompox:1.2.3", "--set", "watchNamespaces=kompox.dev/tenant=a",
      "--set-json", r#"nodeSelector={"pool":"system"}"#,
      "--set-json", r#"tolerations=[{"key":"dedicated","operator":"Equal","value":"kompox","effect":"NoSchedule"},{"key":"spot","operator":"Exists","effect":"NoExecute"}]"#,
      "--set", "acmeEmail=ops@example.com"],
    None,
)]
#[case::cert_manager(&["--cert-manager"], &["--set", "certManager=true"], None)]
#[case::webhook_client_ca(
    &["--webhook-client-ca", CLIENT_CA],
    &["--set-file", "webhookClientCA=CLIENT_CA"],
    None,
)]
#[case::cert_manager_and_client_ca_without_traefik(
    &["--cert-manager", "--webhook-client-ca", CLIENT_CA, "--ingress", "none"],
    &["--set", "certManager=true", "--set-file", "webhookClientCA=CLIENT_CA", "--set", "ingress=none"],
    None,
)]
fn install_paths_render_the_same_objects(
    #[case] install_flags: &[&str],
    #[case] helm_flags: &[&str],
    #[case] kustomization: Option<&str>,
) -> Result<()> {
    let dir = temp_dir("packaging-drift")?;
    // CLIENT_CA in a flag: the cluster's webhook client CA file.
    let ca = cluster().webhook_client_ca.to_string_lossy().into_owned();
    let with_ca = |flags: &[&str]| -> Vec<String> {
        flags.iter().map(|f| f.replace(CLIENT_CA, &ca)).collect()
    };
    let (install_flags, helm_flags) = (with_ca(install_flags), with_ca(helm_flags));
    let mut args = vec!["install", "--dry-run=client", "-o", "yaml"];
    args.extend(install_flags.iter().map(String::as_str));
    let install = kompox(&dir, &args)?.ok()?;
    let install = by_name(&install.stdout, "install --dry-run=client")?;
    let chart = repo_root().join("charts/kompox");
    let helm_out = run(Command::new(helm())
        .args(["template", "kompox"])
        .arg(&chart)
        .arg("--include-crds")
        .args(helm_flags))?;
    same(
        &install,
        &by_name(&helm_out, "helm template")?,
        "install vs helm template",
    )?;
    if let Some(k) = kustomization {
        let kustomized = run(Command::new(cluster().bin_dir.join("kubectl"))
            .arg("kustomize")
            .arg(repo_root().join(k)))?;
        same(
            &install,
            &by_name(&kustomized, "kubectl kustomize")?,
            "install vs kustomize",
        )?;
    }
    // Nothing secret in any of them: the servers make it.
    ensure!(
        !install.keys().any(|k| k.starts_with("Secret ")),
        "{:?}",
        install.keys()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A local server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the three servers as processes with the arguments of the Deployments in the cluster
/// (listening on 127.0.0.1), each as its Deployment's ServiceAccount; points the Services,
/// the APIService and the webhook configuration at them. Returns the processes.
async fn run_servers_locally(client: &kube::Client, work: &Path) -> Result<Vec<Server>> {
    let bin_dir = kompox_e2e::cli::binary()?
        .parent()
        .map(Path::to_path_buf)
        .context("no target dir")?;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), SYSTEM_NS);
    let mut servers = Vec::new();
    let mut ports = BTreeMap::new();
    for name in ["kompox-apiserver", "kompox-webhook", "kompox-controller"] {
        let d = deployments
            .get(name)
            .await
            .with_context(|| format!("Deployment {name}"))?;
        let spec = d
            .spec
            .and_then(|s| s.template.spec)
            .with_context(|| format!("Deployment {name} without a pod spec"))?;
        let c = spec
            .containers
            .first()
            .with_context(|| format!("{name}: no container"))?;
        let bin = c
            .command
            .as_ref()
            .and_then(|c| c.first())
            .context("no command")?;
        ensure!(bin == name, "Deployment {name} runs {bin}");
        let sa = spec
            .service_account_name
            .clone()
            .context("no serviceAccountName")?;
        let kc = service_account_kubeconfig(client, SYSTEM_NS, &sa).await?;
        let kc_path = work.join(format!("{sa}.kubeconfig"));
        std::fs::write(&kc_path, serde_json::to_vec(&kc)?)?;
        let port = free_port()?;
        ports.insert(name, port);
        let mut args: Vec<String> = Vec::new();
        for a in c.args.iter().flatten() {
            if a.starts_with("--listen=") {
                args.push(format!("--listen=127.0.0.1:{port}"));
            } else if a.starts_with("--metrics-listen=") {
                args.push(format!("--metrics-listen=127.0.0.1:{port}"));
            } else {
                args.push(a.clone());
            }
        }
        args.push(format!("--kubeconfig={}", kc_path.display()));
        args.push("--exit-on-stdin-close".into());
        let log = std::fs::File::create(work.join(format!("{name}.log")))?;
        let child = Command::new(bin_dir.join(name))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} {args:?}"))?;
        servers.push(Server(child));
    }
    // kube-apiserver reaches the processes as install --local wires them: ExternalName
    // Services → localhost, on the processes' ports.
    let services: Api<Service> = Api::namespaced(client.clone(), SYSTEM_NS);
    for name in ["kompox-apiserver", "kompox-webhook"] {
        let old = services.get(name).await?;
        let mut new = serde_json::to_value(&old)?;
        kubectx_strip(&mut new);
        new["spec"] = json!({"type": "ExternalName", "externalName": "localhost",
            "ports": [{"name": "https", "port": ports[name], "protocol": "TCP"}]});
        services.delete(name, &DeleteParams::default()).await?;
        kompox_e2e::wait_until(
            &format!("Service {name} gone"),
            Duration::from_secs(30),
            || {
                let services = services.clone();
                async move { Ok(services.get_opt(name).await?.is_none()) }
            },
        )
        .await?;
        services
            .create(&PostParams::default(), &serde_json::from_value(new)?)
            .await?;
    }
    let apiservices: Api<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService> =
        Api::all(client.clone());
    apiservices
        .patch(
            APISERVICE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"service": {"port": ports["kompox-apiserver"]}}})),
        )
        .await?;
    let configs: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    let cfg = configs.get("kompox-webhook").await?;
    let ops: Vec<Value> = (0..cfg.webhooks.as_ref().map_or(0, Vec::len))
        .map(|i| json!({"op": "replace", "path": format!("/webhooks/{i}/clientConfig/service/port"), "value": ports["kompox-webhook"]}))
        .collect();
    configs
        .patch(
            "kompox-webhook",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(Value::Array(ops))?),
        )
        .await?;
    Ok(servers)
}

fn kubectx_strip(v: &mut Value) {
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
}

/// APIService Available, the servers' Secrets made by the servers, and kube-apiserver calling
/// the webhook for a Pod in a Kompox app namespace.
async fn kompox_is_up(client: &kube::Client, work: &Path) -> Result<()> {
    kompox_e2e::kubectl(&[
        "wait",
        "--for=condition=Available",
        &format!("apiservice/{APISERVICE}"),
        "--timeout=120s",
    ])
    .with_context(|| logs(work))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NS);
    for (name, keys) in [
        (
            "kompox-apiserver-tls",
            &["tls.crt", "tls.key", "ca.crt", "ca.key"][..],
        ),
        (
            "kompox-webhook-tls",
            &["tls.crt", "tls.key", "ca.crt", "ca.key"][..],
        ),
        ("kompox-hash-key", &["key"][..]),
    ] {
        let s = secrets
            .get(name)
            .await
            .with_context(|| format!("Secret {name}"))?;
        let data = s.data.unwrap_or_default();
        for k in keys {
            ensure!(data.contains_key(*k), "Secret {name} lacks {k}");
        }
    }
    // The webhook, through the registration: a Pod using a ConfigMap gets its env-hash.
    let ns =
        TestNamespace::create(client, "pkg", &[("app.kubernetes.io/managed-by", "kompox")]).await?;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "conf"}, "data": {"a": "1"}}))?,
    )
    .await?;
    let pods: Api<Pod> = ns.api();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "envFrom": [{"configMapRef": {"name": "conf"}}]}]},
    }))?;
    // The webhook turns ready once its caches synced; failurePolicy Fail refuses until then.
    wait_until("the webhook admits a Pod", Duration::from_secs(60), || {
        let (pods, pod) = (pods.clone(), pod.clone());
        async move {
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code >= 500 => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await
    .with_context(|| logs(work))?;
    let annotations = pods
        .get("p")
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    ensure!(
        annotations.contains_key("kompox.dev/env-hash"),
        "the webhook did not mutate the Pod: {annotations:?}"
    );
    ns.cleanup().await?;
    // `version` names the servers this install path put in: their Deployments' version and
    // image (how many are ready depends on the nodes; the processes here are not Pods).
    let v = kompox_async(work, &["version"]).await?.ok()?;
    for s in ["kompox-apiserver", "kompox-webhook", "kompox-controller"] {
        let want = format!(
            "\n  {s} {} (ghcr.io/kompox/kompox:dev, ",
            env!("CARGO_PKG_VERSION")
        );
        ensure!(v.stdout.contains(&want), "no {want:?} in {}", v.stdout);
    }
    Ok(())
}

fn logs(work: &Path) -> String {
    ["kompox-apiserver", "kompox-webhook", "kompox-controller"]
        .iter()
        .map(|s| {
            let text = std::fs::read_to_string(work.join(format!("{s}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {s}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// No object labelled as the install's is left in the cluster (CRDs aside when `crds_kept`),
/// and both namespaces are gone.
async fn nothing_left(crds_kept: bool) -> Result<()> {
    let admin = admin_client().await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    for ns in [SYSTEM_NS, "k4x-traefik"] {
        wait_until(
            &format!("namespace {ns} deleted"),
            Duration::from_secs(120),
            || {
                let namespaces = namespaces.clone();
                async move { Ok(namespaces.get_opt(ns).await?.is_none()) }
            },
        )
        .await?;
    }
    let kinds = "clusterroles,clusterrolebindings,apiservices,mutatingwebhookconfigurations,\
                 validatingadmissionpolicies,validatingadmissionpolicybindings,ingressclasses,\
                 customresourcedefinitions";
    let left = kompox_e2e::kubectl(&[
        "get",
        kinds,
        "-A",
        "-l",
        "app.kubernetes.io/part-of=kompox",
        "-o",
        "name",
    ])?;
    let left: Vec<&str> = left
        .lines()
        .filter(|l| !(crds_kept && l.starts_with("customresourcedefinition")))
        .collect();
    ensure!(left.is_empty(), "left behind: {left:?}");
    let bindings = kompox_e2e::kubectl(&[
        "get",
        "rolebindings",
        "-n",
        "kube-system",
        "-l",
        "app.kubernetes.io/part-of=kompox",
        "-o",
        "name",
    ])?;
    ensure!(
        bindings.trim().is_empty(),
        "left behind in kube-system: {bindings}"
    );
    Ok(())
}

/// A foreign IngressClass `traefik` (some other install's).
async fn foreign_ingress_class(client: &kube::Client) -> Result<Api<IngressClass>> {
    let api: Api<IngressClass> = Api::all(client.clone());
    ensure!(
        api.get_opt("traefik").await?.is_none(),
        "an IngressClass traefik exists before the test"
    );
    api.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "traefik", "labels": {"owner": "someone-else"}},
            "spec": {"controller": "example.com/foreign-ingress"}}),
        )?,
    )
    .await?;
    Ok(api)
}

async fn still_foreign(api: &Api<IngressClass>) -> Result<()> {
    let ic = api
        .get("traefik")
        .await
        .context("the foreign IngressClass was deleted")?;
    let controller = ic.spec.and_then(|s| s.controller).unwrap_or_default();
    ensure!(
        controller == "example.com/foreign-ingress",
        "taken over: controller {controller}"
    );
    let labels = ic.metadata.labels.unwrap_or_default();
    ensure!(
        !labels.contains_key("app.kubernetes.io/part-of"),
        "relabelled: {labels:?}"
    );
    Ok(())
}

#[tokio::test]
async fn helm_install_comes_up_and_uninstalls_cleanly() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = admin_client().await?;
    let work = temp_dir("packaging-helm")?;
    let classes = foreign_ingress_class(&client).await?;
    let kubeconfig = cluster().admin_kubeconfig.to_string_lossy().into_owned();
    let helm_cmd = |args: &[&str]| {
        let mut c = Command::new(helm());
        c.args(args)
            .args(["--kubeconfig", &kubeconfig, "--namespace", "default"]);
        c
    };
    let result = async {
        // The CRDs may be there already (the plugin or an earlier test applied them): the
        // chart takes them over, as the README says.
        run(helm_cmd(&["install", "kompox", "--force-conflicts"])
            .arg(repo_root().join("charts/kompox")))?;
        still_foreign(&classes).await?;
        let servers = run_servers_locally(&client, &work).await?;
        let up = kompox_is_up(&client, &work).await;
        drop(servers);
        up
    }
    .await;
    let un = run(&mut helm_cmd(&["uninstall", "kompox", "--wait"]));
    // Helm keeps CRDs (crds/), as `uninstall` without --crds does.
    let checked = match (result, un) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => match nothing_left(true).await {
            Ok(()) => still_foreign(&classes).await,
            Err(e) => Err(e),
        },
    };
    // Whatever happened, the foreign class goes, so the next test starts clean.
    let _ = classes.delete("traefik", &DeleteParams::default()).await;
    checked?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[tokio::test]
async fn kustomize_apply_comes_up_and_deletes_cleanly() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = admin_client().await?;
    let work = temp_dir("packaging-kustomize")?;
    let base = repo_root().join("manifests").to_string_lossy().into_owned();
    let result = async {
        kompox_e2e::kubectl(&["apply", "-k", &base])?;
        let servers = run_servers_locally(&client, &work).await?;
        let up = kompox_is_up(&client, &work).await;
        drop(servers);
        up
    }
    .await;
    // As the README says: everything but the CRDs (deleting them deletes every app).
    let deleted = kompox_e2e::kubectl(&[
        "delete",
        "-k",
        &base,
        "-l",
        "app.kubernetes.io/component!=crds",
        "--ignore-not-found",
    ]);
    result?;
    deleted?;
    nothing_left(true).await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[tokio::test]
async fn install_keeps_a_foreign_ingress_class() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = admin_client().await?;
    let cache = temp_dir("packaging-local-cache")?;
    let classes = foreign_ingress_class(&client).await?;
    let install = kompox_async(&cache, &["install", "--local"]).await;
    let kept = still_foreign(&classes).await;
    let un = kompox_async(&cache, &["uninstall", "--local"]).await;
    let after = still_foreign(&classes).await;
    let _ = classes.delete("traefik", &DeleteParams::default()).await;
    let install = install?.ok()?;
    ensure!(
        install
            .stderr
            .contains("IngressClass traefik exists and was not created by Kompox"),
        "{install:?}"
    );
    kept?;
    let un = un?.ok()?;
    ensure!(un.stdout.contains("IngressClass traefik kept"), "{un:?}");
    after?;
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
