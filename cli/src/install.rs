//! `kubectl kompox install` / `uninstall`: Kompox's CRDs, namespaces, RBAC, registrations,
//! certificates, the three servers (as Deployments, or with `--local` as processes on this
//! machine) and Traefik — all by server-side apply, idempotently.
//!
//! The objects come from `manifests/` (compiled in), adjusted here: the image, the
//! certificates' CA in `caBundle`, and for `--local` the URL-based webhook and the
//! ExternalName Service in front of the local aggregated API server.

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

use crate::CliError;
pub use crate::certs::{Certs, DNS_NAMES};
use crate::kubectx::{self, Format, KubeArgs};
use crate::local;

/// Namespace of the Kompox servers.
pub const SYSTEM_NS: &str = "k4x-system";
/// Namespace of Traefik.
pub const TRAEFIK_NS: &str = "k4x-traefik";
/// Secret holding the CA and the serving certificates `install` generated.
pub const CERTS_SECRET: &str = "kompox-certs";
/// Secret holding the install's hash key (`key`): every digest the servers publish is keyed
/// with it ([`kompox_core::hash`]). Only the servers read it (mounted into their Pods).
pub const HASH_KEY_SECRET: &str = "kompox-hash-key";
/// Key of the hash key in [`HASH_KEY_SECRET`].
pub const HASH_KEY_DATA: &str = "key";
/// Where the Deployments mount [`HASH_KEY_SECRET`].
pub const HASH_KEY_MOUNT: &str = "/etc/kompox/hash-key";
/// Name of the APIService.
pub const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
/// Name of the MutatingWebhookConfiguration.
pub const WEBHOOK_CONFIG: &str = "kompox-webhook";
/// The image with the three binaries (see `Containerfile`).
pub const DEFAULT_IMAGE: &str = "ghcr.io/kompox/kompox:dev";
/// Traefik's image.
pub const TRAEFIK_IMAGE: &str = "docker.io/library/traefik:v3.6.12";

const CRDS: &str = include_str!("../../manifests/crds/kompox.yaml");
const APISERVER_RBAC: &str = include_str!("../../manifests/apiserver/rbac.yaml");
const APISERVER_DEPLOY: &str = include_str!("../../manifests/apiserver/deployment.yaml");
const APISERVICE_YAML: &str = include_str!("../../manifests/apiserver/apiservice.yaml");
const WEBHOOK_RBAC: &str = include_str!("../../manifests/webhook/rbac.yaml");
const WEBHOOK_DEPLOY: &str = include_str!("../../manifests/webhook/deployment.yaml");
const WEBHOOK_CONFIG_YAML: &str =
    include_str!("../../manifests/webhook/mutatingwebhookconfiguration.yaml");
const CONTROLLER_RBAC: &str = include_str!("../../manifests/controller/rbac.yaml");
const CONTROLLER_DEPLOY: &str = include_str!("../../manifests/controller/deployment.yaml");
const POD_SECURITY_POLICY: &str = include_str!("../../manifests/policy/podsecurity.yaml");

/// Dry-run modes, as kubectl spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    /// Apply for real.
    None,
    /// Print what would be applied; do not contact the cluster for writes.
    Client,
    /// Send every object with dryRun=All and print what the server would store.
    Server,
}

/// Arguments of `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The image holding kompox-apiserver, kompox-webhook and kompox-controller.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// E-mail for Let's Encrypt; enables Traefik's ACME resolvers `staging` and `production`.
    #[arg(long, value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// Run the three servers as processes on this machine instead of Deployments.
    #[arg(long)]
    pub local: bool,
    /// Reconcile only the namespaces matching this label selector (e.g.
    /// `kompox.dev/tenant=team-a`), for a controller that shares the cluster; default: all.
    #[arg(long, value_name = "SELECTOR")]
    pub watch_namespaces: Option<String>,
    /// Run the servers only on nodes with this label (`KEY=VALUE`; repeatable), e.g. a system
    /// node pool. Not with --local.
    #[arg(long = "node-selector", value_name = "KEY=VALUE")]
    pub node_selector: Vec<String>,
    /// Let the servers run on nodes with this taint (`KEY[=VALUE]:EFFECT`, or `KEY:EFFECT` for
    /// any value; repeatable). Not with --local.
    #[arg(long = "toleration", value_name = "KEY[=VALUE]:EFFECT")]
    pub tolerations: Vec<String>,
    /// CA bundle (PEM) of the client certificate kube-apiserver presents to admission webhooks
    /// (its AdmissionConfiguration `kubeConfigFile`): the webhook then answers only
    /// kube-apiserver (docs/security.md).
    #[arg(long, env = "KOMPOX_WEBHOOK_CLIENT_CA_FILE", value_name = "FILE")]
    pub webhook_client_ca: Option<std::path::PathBuf>,
    /// Directory of the server binaries for --local (default: next to this binary, then PATH).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<std::path::PathBuf>,
    /// Print what would be applied (client) or what the server would store (server).
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// Output format of --dry-run.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// How long to wait for the servers and the APIService.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: Duration,
}

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Also stop the local servers `install --local` started.
    #[arg(long)]
    pub local: bool,
    /// Also delete the CRDs — and with them every KompoxApp, KompoxDisk and KompoxSnapshot.
    #[arg(long)]
    pub crds: bool,
    /// Print what would be deleted.
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// How long to wait for the namespaces to go.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: Duration,
}

/// Parses a compiled-in YAML stream.
fn docs(name: &str, text: &str) -> Result<Vec<Value>, CliError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| CliError::Invalid(vec![format!("manifests/{name}: {e}")]))?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

fn managed_labels() -> Value {
    json!({
        "app.kubernetes.io/managed-by": "kompox",
        "app.kubernetes.io/part-of": "kompox",
    })
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": managed_labels()},
    })
}

/// Where the servers are and how they are reached.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Deployments of `image` behind ClusterIP Services; the controller reconciles the
    /// namespaces matching `watch_namespaces` (all when `None`).
    InCluster {
        image: String,
        watch_namespaces: Option<String>,
        scheduling: Scheduling,
        /// PEM of the CA of kube-apiserver's webhook client certificate, if it has one.
        webhook_client_ca: Option<String>,
    },
    /// Local processes: the aggregated API server on `apiserver_port`, the webhook on
    /// `webhook_port` (both on 127.0.0.1).
    Local {
        apiserver_port: u16,
        webhook_port: u16,
    },
}

/// Where the in-cluster servers may run: `nodeSelector` and `tolerations` of their Pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scheduling {
    pub node_selector: serde_json::Map<String, Value>,
    pub tolerations: Vec<Value>,
}

/// The taint effects a toleration may name.
const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

impl Scheduling {
    /// Parses `--node-selector KEY=VALUE` and `--toleration KEY[=VALUE]:EFFECT` values; every
    /// bad one is reported, naming the flag and the value.
    ///
    /// # Errors
    ///
    /// [`CliError::Invalid`] with one line per bad value.
    pub fn parse(node_selector: &[String], tolerations: &[String]) -> Result<Self, CliError> {
        let mut problems = Vec::new();
        let mut out = Scheduling::default();
        for (i, s) in node_selector.iter().enumerate() {
            match s.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.contains('=') => {
                    out.node_selector.insert(k.trim().into(), json!(v.trim()));
                }
                _ => problems.push(format!("--node-selector[{i}] {s:?}: want KEY=VALUE")),
            }
        }
        for (i, t) in tolerations.iter().enumerate() {
            let Some((kv, effect)) = t.rsplit_once(':') else {
                problems.push(format!("--toleration[{i}] {t:?}: want KEY[=VALUE]:EFFECT"));
                continue;
            };
            if !EFFECTS.contains(&effect) {
                problems.push(format!(
                    "--toleration[{i}] {t:?}: effect {effect:?} is not one of {}",
                    EFFECTS.join(", ")
                ));
                continue;
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (kv, None),
            };
            if key.trim().is_empty() {
                problems.push(format!("--toleration[{i}] {t:?}: empty key"));
                continue;
            }
            out.tolerations.push(match value {
                Some(v) => json!({"key": key, "operator": "Equal", "value": v, "effect": effect}),
                None => json!({"key": key, "operator": "Exists", "effect": effect}),
            });
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(CliError::Invalid(problems))
        }
    }

    fn apply(&self, pod_spec: &mut Value) {
        if !self.node_selector.is_empty() {
            pod_spec["nodeSelector"] = Value::Object(self.node_selector.clone());
        }
        if !self.tolerations.is_empty() {
            pod_spec["tolerations"] = Value::Array(self.tolerations.clone());
        }
    }
}

/// The Secret `name` holding `certs` (`kubernetes.io/tls` plus the CA).
#[must_use]
pub fn certs_secret(certs: &Certs, name: &str) -> Value {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": SYSTEM_NS, "labels": managed_labels()},
        "data": {
            "ca.crt": b(&certs.ca_crt), "ca.key": b(&certs.ca_key),
            "tls.crt": b(&certs.tls_crt), "tls.key": b(&certs.tls_key),
        },
    })
}

/// The certificates already in the cluster, else fresh ones (so re-installing keeps them).
///
/// # Errors
///
/// [`CliError::Cluster`] when the Secret cannot be read (other than absent).
pub async fn certs(client: Option<&Client>) -> Result<Certs, CliError> {
    if let Some(client) = client {
        let api: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NS);
        match api.get_opt(CERTS_SECRET).await {
            Ok(Some(s)) => {
                if let Some(c) = Certs::from_secret(&s) {
                    return Ok(c);
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Err(kubectx::kube_error(
                    &format!("reading Secret {SYSTEM_NS}/{CERTS_SECRET}"),
                    &e,
                ));
            }
        }
    }
    Certs::generate()
}

/// A fresh hash key: 32 random bytes as 64 hex characters (text, so the mounted file and
/// `kubectl get secret` show it plainly to whoever may read it).
#[must_use]
pub fn generate_hash_key() -> String {
    hex_encode(&rand::random::<[u8; 32]>())
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The hash key material in [`HASH_KEY_SECRET`], `None` when there is none (or it is unusable).
///
/// # Errors
///
/// [`CliError::Cluster`] when the Secret cannot be read (other than absent).
pub async fn read_hash_key_material(client: &Client) -> Result<Option<String>, CliError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NS);
    let s = api.get_opt(HASH_KEY_SECRET).await.map_err(|e| {
        kubectx::kube_error(&format!("reading Secret {SYSTEM_NS}/{HASH_KEY_SECRET}"), &e)
    })?;
    Ok(s.and_then(|s| s.data)
        .and_then(|mut d| d.remove(HASH_KEY_DATA))
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|m| kompox_core::hash::HashKey::from_file_contents(m.as_bytes()).is_ok()))
}

/// The install's hash key, if this client may read it.
///
/// # Errors
///
/// As [`read_hash_key_material`].
pub async fn read_hash_key(
    client: &Client,
) -> Result<Option<kompox_core::hash::HashKey>, CliError> {
    Ok(read_hash_key_material(client)
        .await?
        .and_then(|m| kompox_core::hash::HashKey::from_file_contents(m.as_bytes()).ok()))
}

fn hash_key_secret(material: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": HASH_KEY_SECRET, "namespace": SYSTEM_NS, "labels": managed_labels()},
        "data": {HASH_KEY_DATA: base64::engine::general_purpose::STANDARD.encode(material)},
    })
}

/// Every object `install` applies, in order (CRDs and namespaces first).
///
/// # Errors
///
/// [`CliError::Invalid`] if a compiled-in manifest does not parse.
pub fn objects(
    placement: &Placement,
    certs: &Certs,
    hash_key: &str,
    acme_email: Option<&str>,
) -> Result<Vec<Value>, CliError> {
    let mut out = docs("crds/kompox.yaml", CRDS)?;
    out.push(namespace(SYSTEM_NS));
    out.push(namespace(TRAEFIK_NS));
    for (name, text) in [
        ("apiserver/rbac.yaml", APISERVER_RBAC),
        ("webhook/rbac.yaml", WEBHOOK_RBAC),
        ("controller/rbac.yaml", CONTROLLER_RBAC),
        ("policy/podsecurity.yaml", POD_SECURITY_POLICY),
    ] {
        out.extend(docs(name, text)?);
    }
    out.push(certs_secret(certs, CERTS_SECRET));
    out.push(hash_key_secret(hash_key));
    // The apiserver's Deployment mounts kompox-apiserver-tls; the webhook reads kompox-webhook-tls.
    if matches!(placement, Placement::InCluster { .. }) {
        out.push(certs_secret(certs, "kompox-apiserver-tls"));
        out.push(certs_secret(certs, "kompox-webhook-tls"));
    }
    out.extend(network_policies());

    // The servers and how the API server reaches them.
    match placement {
        Placement::InCluster {
            image,
            watch_namespaces,
            webhook_client_ca,
            ..
        } => {
            if let Some(ca) = webhook_client_ca {
                out.push(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": WEBHOOK_CLIENT_CA_CONFIG_MAP, "namespace": SYSTEM_NS, "labels": managed_labels()},
                    "data": {"ca.crt": ca},
                }));
            }
            for (name, text, bin) in [
                (
                    "apiserver/deployment.yaml",
                    APISERVER_DEPLOY,
                    "kompox-apiserver",
                ),
                ("webhook/deployment.yaml", WEBHOOK_DEPLOY, "kompox-webhook"),
                (
                    "controller/deployment.yaml",
                    CONTROLLER_DEPLOY,
                    "kompox-controller",
                ),
            ] {
                for mut d in docs(name, text)? {
                    if let (true, Some(c)) = (
                        d["kind"] == "Deployment",
                        d.pointer_mut("/spec/template/spec/containers/0"),
                    ) {
                        c["image"] = json!(image);
                        c["command"] = json!([bin]);
                        if let (Some(sel), Some(a)) = (
                            watch_namespaces
                                .as_deref()
                                .filter(|_| bin == "kompox-controller"),
                            c["args"].as_array_mut(),
                        ) {
                            a.push(json!(format!("--namespace-selector={sel}")));
                        }
                    }
                    if d["kind"] == "Deployment"
                        && bin == "kompox-webhook"
                        && webhook_client_ca.is_some()
                    {
                        require_client_certs(&mut d);
                    }
                    out.push(d);
                }
            }
        }
        Placement::Local { apiserver_port, .. } => {
            out.push(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kompox-apiserver", "namespace": SYSTEM_NS, "labels": managed_labels()},
                "spec": {"type": "ExternalName", "externalName": "localhost",
                         "ports": [{"name": "https", "port": apiserver_port, "protocol": "TCP"}]},
            }));
        }
    }
    for mut a in docs("apiserver/apiservice.yaml", APISERVICE_YAML)? {
        a["spec"]["caBundle"] = json!(certs.ca_bundle());
        if let Placement::Local { apiserver_port, .. } = placement {
            a["spec"]["service"]["port"] = json!(apiserver_port);
        }
        out.push(a);
    }
    for mut w in docs(
        "webhook/mutatingwebhookconfiguration.yaml",
        WEBHOOK_CONFIG_YAML,
    )? {
        if let Some(hooks) = w["webhooks"].as_array_mut() {
            for h in hooks {
                let cc = match placement {
                    Placement::Local { webhook_port, .. } => json!({
                        "url": format!("https://127.0.0.1:{webhook_port}/mutate"),
                        "caBundle": certs.ca_bundle(),
                    }),
                    Placement::InCluster { .. } => {
                        let mut cc = h["clientConfig"].clone();
                        cc["caBundle"] = json!(certs.ca_bundle());
                        cc
                    }
                };
                h["clientConfig"] = cc;
            }
        }
        out.push(w);
    }
    out.extend(traefik(acme_email));
    // In the cluster, the servers and Traefik run where --node-selector/--toleration say.
    if let Placement::InCluster { scheduling, .. } = placement {
        for d in out.iter_mut().filter(|o| o["kind"] == "Deployment") {
            if let Some(spec) = d.pointer_mut("/spec/template/spec") {
                scheduling.apply(spec);
            }
        }
    }
    Ok(out)
}

/// ConfigMap with the CA of kube-apiserver's webhook client certificate (`ca.crt`).
pub const WEBHOOK_CLIENT_CA_CONFIG_MAP: &str = "kompox-webhook-client-ca";

/// Mounts [`WEBHOOK_CLIENT_CA_CONFIG_MAP`] into the webhook's Deployment `d` and makes the
/// webhook require client certificates from it.
fn require_client_certs(d: &mut Value) {
    let mount = "/etc/kompox/webhook-client-ca";
    if let Some(c) = d.pointer_mut("/spec/template/spec/containers/0") {
        if let Some(a) = c["args"].as_array_mut() {
            a.push(json!(format!("--client-ca-file={mount}/ca.crt")));
        }
        match c["volumeMounts"].as_array_mut() {
            Some(m) => {
                m.push(json!({"name": "webhook-client-ca", "mountPath": mount, "readOnly": true}))
            }
            None => {
                c["volumeMounts"] =
                    json!([{"name": "webhook-client-ca", "mountPath": mount, "readOnly": true}])
            }
        }
    }
    if let Some(spec) = d.pointer_mut("/spec/template/spec") {
        let vol = json!({"name": "webhook-client-ca", "configMap": {"name": WEBHOOK_CLIENT_CA_CONFIG_MAP}});
        match spec["volumes"].as_array_mut() {
            Some(v) => v.push(vol),
            None => spec["volumes"] = json!([vol]),
        }
    }
}

/// Default-deny ingress in both namespaces, then what must reach the servers and Traefik.
fn network_policies() -> Vec<Value> {
    let np = |ns: &str, name: &str, spec: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": managed_labels()},
            "spec": spec,
        })
    };
    vec![
        np(
            SYSTEM_NS,
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        // kube-apiserver (outside the pod network) calls the aggregated API server and the webhook.
        np(
            SYSTEM_NS,
            "allow-kube-apiserver",
            json!({
                "podSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In",
                    "values": ["kompox-apiserver", "kompox-webhook"]}]},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": 8443, "protocol": "TCP"}]}],
            }),
        ),
        np(
            TRAEFIK_NS,
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        np(
            TRAEFIK_NS,
            "allow-web",
            json!({
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": 8000, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}]}],
            }),
        ),
    ]
}

/// Traefik: ServiceAccount, RBAC for the Kubernetes Ingress provider, the Deployment with the
/// ACME resolvers, its LoadBalancer Service and the IngressClass `traefik`.
fn traefik(acme_email: Option<&str>) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": "traefik", "app.kubernetes.io/managed-by": "kompox", "app.kubernetes.io/part-of": "kompox"});
    let mut args = vec![
        "--providers.kubernetesingress".to_owned(),
        "--providers.kubernetesingress.ingressclass=traefik".to_owned(),
        // Traefik copies its Service's load-balancer address into the status of every Ingress it
        // serves: that status is what shows an Ingress admitted.
        format!(
            "--providers.kubernetesingress.ingressendpoint.publishedservice={TRAEFIK_NS}/traefik"
        ),
        "--entrypoints.web.address=:8000".to_owned(),
        "--entrypoints.websecure.address=:8443".to_owned(),
        "--ping".to_owned(),
    ];
    if let Some(email) = acme_email {
        for (name, server) in [
            (
                "staging",
                "https://acme-staging-v02.api.letsencrypt.org/directory",
            ),
            (
                "production",
                "https://acme-v02.api.letsencrypt.org/directory",
            ),
        ] {
            args.push(format!("--certificatesresolvers.{name}.acme.email={email}"));
            args.push(format!(
                "--certificatesresolvers.{name}.acme.caserver={server}"
            ));
            args.push(format!(
                "--certificatesresolvers.{name}.acme.storage=/data/acme-{name}.json"
            ));
            args.push(format!(
                "--certificatesresolvers.{name}.acme.httpchallenge.entrypoint=web"
            ));
        }
    }
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "traefik", "namespace": TRAEFIK_NS, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "kompox-traefik", "labels": labels},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "endpoints", "secrets", "nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "kompox-traefik", "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kompox-traefik"},
               "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": TRAEFIK_NS}]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "traefik", "namespace": TRAEFIK_NS, "labels": labels},
               "spec": {"replicas": 1,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"serviceAccountName": "traefik",
                                              "containers": [{"name": "traefik", "image": TRAEFIK_IMAGE, "args": args,
                                                  "ports": [{"name": "web", "containerPort": 8000}, {"name": "websecure", "containerPort": 8443}],
                                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                              "volumes": [{"name": "data", "emptyDir": {}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "traefik", "namespace": TRAEFIK_NS, "labels": labels},
               "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "traefik"},
                        "ports": [{"name": "web", "port": 80, "targetPort": "web"},
                                  {"name": "websecure", "port": 443, "targetPort": "websecure"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "traefik", "labels": labels},
               "spec": {"controller": "traefik.io/ingress-controller"}}),
    ]
}

/// Waits (watching) until every CRD in `objs` is Established.
async fn wait_crds(client: &Client, objs: &[Value], timeout: Duration) -> Result<(), CliError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in objs
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("CRD {name} Established");
        kubectx::wait_for(api.clone(), name, &what, timeout, None, |c| {
            let established = c
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            Ok(if established {
                Ok(())
            } else {
                Err("not Established".into())
            })
        })
        .await?;
    }
    Ok(())
}

/// Waits (watching) until the APIService reports `Available=True`, printing its condition as
/// it changes to `out` when given.
///
/// # Errors
///
/// [`CliError::Timeout`] with the APIService's last message.
pub async fn wait_apiservice(
    client: &Client,
    timeout: Duration,
    out: Option<&mut dyn Write>,
) -> Result<(), CliError> {
    let api: Api<APIService> = Api::all(client.clone());
    let what = format!("APIService {APISERVICE} Available");
    kubectx::wait_for(api, APISERVICE, &what, timeout, out, |a| {
        let conds = a
            .and_then(|a| a.status.as_ref())
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        Ok(match conds.iter().find(|c| c.type_ == "Available") {
            Some(c) if c.status == "True" => Ok(()),
            Some(c) => Err(format!(
                "Available={} {}: {}",
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )),
            None if a.is_none() => Err("not registered yet".into()),
            None => Err("no Available condition yet".into()),
        })
    })
    .await
}

/// Server-side apply merges `spec.ports` by port number, so a Service left by someone else
/// (e.g. another port of a previous `--local` run) would keep its old ports next to ours:
/// such a Service is deleted first (it is recreated at once; nothing else selects it).
async fn replace_if_ports_differ(client: &Client, svc: &Value) -> Result<(), CliError> {
    let api = kubectx::api_for(client, svc).await?;
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let live = match api.get_opt(name).await {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(kubectx::kube_error(
                &format!("reading {}", kubectx::describe(svc)),
                &e,
            ));
        }
    };
    let ports = |v: &Value| -> Vec<(i64, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["port"].as_i64().unwrap_or(0),
                            p["name"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let same_type = live.data["spec"]["type"] == svc["spec"]["type"];
    if same_type && ports(&live.data["spec"]["ports"]) == ports(&svc["spec"]["ports"]) {
        return Ok(());
    }
    kubectx::delete(client, svc).await?;
    kubectx::wait_deleted(
        api,
        name,
        &format!("{} replaced", kubectx::describe(svc)),
        Duration::from_secs(30),
        None,
        |_| "still there".to_owned(),
    )
    .await
}

fn in_cluster(
    args: &InstallArgs,
    webhook_client_ca: Option<String>,
) -> Result<Placement, CliError> {
    Ok(Placement::InCluster {
        image: args.image.clone(),
        watch_namespaces: args.watch_namespaces.clone(),
        scheduling: Scheduling::parse(&args.node_selector, &args.tolerations)?,
        webhook_client_ca,
    })
}

/// The PEM of `--webhook-client-ca`, checked to hold a certificate.
fn webhook_client_ca(args: &InstallArgs) -> Result<Option<String>, CliError> {
    let Some(path) = &args.webhook_client_ca else {
        return Ok(None);
    };
    let flag = format!("--webhook-client-ca {}", path.display());
    let pem = std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(vec![format!("{flag}: {e}")]))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(CliError::Invalid(vec![format!(
            "{flag}: no PEM certificate"
        )]));
    }
    Ok(Some(pem))
}

/// Runs `install`.
///
/// # Errors
///
/// [`CliError`] naming the failing object or step.
pub async fn run_install(
    args: &InstallArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    if args
        .watch_namespaces
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        return Err(CliError::Invalid(vec![
            "--watch-namespaces: empty label selector (leave the flag out to watch all namespaces)"
                .into(),
        ]));
    }
    if args.local && !(args.node_selector.is_empty() && args.tolerations.is_empty()) {
        return Err(CliError::Invalid(vec![
            "--node-selector/--toleration: they place in-cluster servers; --local runs them on this machine".into(),
        ]));
    }
    let client_ca = webhook_client_ca(args)?;
    if args.dry_run == DryRun::Client {
        // No cluster contact: fresh certificates and placeholder ports.
        let certs = Certs::generate()?;
        let placement = if args.local {
            Placement::Local {
                apiserver_port: 0,
                webhook_port: 0,
            }
        } else {
            in_cluster(args, client_ca)?
        };
        let objs = objects(
            &placement,
            &certs,
            &generate_hash_key(),
            args.acme_email.as_deref(),
        )?;
        return kubectx::write_objects(out, &kubectx::redact(&objs), args.output);
    }
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;
    if args.acme_email.is_none() {
        let _ = writeln!(
            err,
            "warning: --acme-email not given: Traefik gets no ACME resolvers (staging/production)"
        );
    }
    let certs = certs(Some(&client)).await?;
    // Kept across re-installs: a new key would change every env hash and roll every app.
    let hash_key = match read_hash_key_material(&client).await? {
        Some(k) => k,
        None => generate_hash_key(),
    };
    let dry = args.dry_run == DryRun::Server;

    let mut servers = None;
    let placement = if args.local {
        if dry {
            Placement::Local {
                apiserver_port: 0,
                webhook_port: 0,
            }
        } else {
            let s = local::prepare(
                &args.kube,
                args.bin_dir.as_deref(),
                &certs,
                &hash_key,
                client_ca.as_deref(),
                args.watch_namespaces.as_deref(),
                out,
            )
            .await?;
            let p = Placement::Local {
                apiserver_port: s.apiserver_port,
                webhook_port: s.webhook_port,
            };
            servers = Some(s);
            p
        }
    } else {
        in_cluster(args, client_ca)?
    };
    let objs = objects(&placement, &certs, &hash_key, args.acme_email.as_deref())?;

    let mut applied = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        if !dry && o["kind"] == "Service" {
            replace_if_ports_differ(&client, o).await?;
        }
        let got = kubectx::apply(&client, o, dry).await?;
        if !dry {
            let _ = writeln!(out, "{} applied", kubectx::describe(o));
        }
        applied.push(got);
        // Later objects (the KompoxDisk RBAC, the APIService) need the CRDs served.
        if !dry
            && o["kind"] == "CustomResourceDefinition"
            && objs
                .get(i + 1)
                .is_none_or(|n| n["kind"] != "CustomResourceDefinition")
        {
            wait_crds(&client, &objs, args.timeout).await?;
        }
    }
    if dry {
        return kubectx::write_objects(out, &kubectx::redact(&applied), args.output);
    }
    if let Some(s) = servers {
        local::start(&client, &s, args.timeout, out).await?;
        wait_apiservice(&client, args.timeout, Some(&mut *out)).await?;
        let _ = writeln!(out, "APIService {APISERVICE} is Available");
        let _ = writeln!(
            out,
            "Kompox runs locally: logs in {} (stop with `kubectl kompox uninstall --local`)",
            s.dir.display()
        );
    } else {
        // The production path: the servers are Pods; Available means a kompox-apiserver Pod
        // is ready behind its Service.
        wait_apiservice(&client, args.timeout, Some(&mut *out)).await?;
        let _ = writeln!(out, "APIService {APISERVICE} is Available");
    }
    Ok(())
}

/// Runs `uninstall`: deletes the registrations first (so the API server stops calling the
/// servers), then the servers, the namespaces and the cluster-wide RBAC; the CRDs only with
/// `--crds`.
///
/// # Errors
///
/// [`CliError`] naming the object that could not be deleted.
pub async fn run_uninstall(
    args: &UninstallArgs,
    out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<(), CliError> {
    let certs = Certs::generate()?;
    let placement = Placement::Local {
        apiserver_port: 0,
        webhook_port: 0,
    };
    let all = objects(&placement, &certs, &generate_hash_key(), None)?;
    let mut order: Vec<&Value> = Vec::new();
    let first = ["APIService", "MutatingWebhookConfiguration"];
    order.extend(
        all.iter()
            .filter(|o| first.contains(&o["kind"].as_str().unwrap_or(""))),
    );
    order.extend(all.iter().filter(|o| {
        let k = o["kind"].as_str().unwrap_or("");
        let ns = o["metadata"]["namespace"].as_str();
        !first.contains(&k)
            && k != "CustomResourceDefinition"
            && k != "Namespace"
            && (ns.is_none() || ns == Some("kube-system"))
    }));
    order.extend(all.iter().filter(|o| o["kind"] == "Namespace"));
    if args.crds {
        order.extend(
            all.iter()
                .filter(|o| o["kind"] == "CustomResourceDefinition"),
        );
    }
    if args.dry_run != DryRun::None {
        for o in &order {
            let _ = writeln!(out, "{} would be deleted", kubectx::describe(o));
        }
        if args.local {
            let _ = writeln!(
                out,
                "the local servers in {} would be stopped",
                local::state_dir().display()
            );
        }
        return Ok(());
    }
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;
    for o in &order {
        if kubectx::delete(&client, o).await? {
            let _ = writeln!(out, "{} deleted", kubectx::describe(o));
        }
    }
    if args.local {
        local::stop(out).await?;
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in [SYSTEM_NS, TRAEFIK_NS] {
        kubectx::wait_deleted(
            ns_api.clone(),
            ns,
            &format!("namespace {ns} deleted"),
            args.timeout,
            None,
            |n| {
                format!(
                    "phase {}",
                    n.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or_default()
                )
            },
        )
        .await?;
    }
    let _ = writeln!(
        out,
        "Kompox uninstalled{}",
        if args.crds {
            ""
        } else {
            " (CRDs and your apps' objects kept; --crds removes them)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_placement_wires_url_and_externalname() -> Result<(), CliError> {
        let certs = Certs::generate()?;
        let objs = objects(
            &Placement::Local {
                apiserver_port: 4443,
                webhook_port: 5443,
            },
            &certs,
            &generate_hash_key(),
            Some("a@example.com"),
        )?;
        let find = |kind: &str| {
            objs.iter()
                .find(|o| o["kind"] == kind)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(find("APIService")["spec"]["service"]["port"], 4443);
        assert_eq!(
            find("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["url"],
            "https://127.0.0.1:5443/mutate"
        );
        let svc = objs
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "kompox-apiserver")
            .cloned()
            .unwrap_or_default();
        assert_eq!(svc["spec"]["externalName"], "localhost");
        assert!(
            !objs
                .iter()
                .any(|o| o["kind"] == "Deployment" && o["metadata"]["namespace"] == SYSTEM_NS)
        );
        Ok(())
    }

    #[test]
    fn watch_namespaces_scopes_only_the_controller() -> Result<(), CliError> {
        let certs = Certs::generate()?;
        let objs = objects(
            &Placement::InCluster {
                image: "img".into(),
                watch_namespaces: Some("kompox.dev/tenant=a".into()),
                scheduling: Scheduling::default(),
                webhook_client_ca: Some("-----BEGIN CERTIFICATE-----".into()),
            },
            &certs,
            &generate_hash_key(),
            None,
        )?;
        let args = |name: &str| {
            objs.iter()
                .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
                .map(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].clone())
                .unwrap_or_default()
        };
        let selector = json!("--namespace-selector=kompox.dev/tenant=a");
        let has = |name: &str| args(name).as_array().is_some_and(|a| a.contains(&selector));
        assert!(has("kompox-controller"), "{}", args("kompox-controller"));
        assert!(!has("kompox-apiserver") && !has("kompox-webhook"));
        let webhook_args = args("kompox-webhook");
        assert!(
            webhook_args.as_array().is_some_and(|a| a.iter().any(|x| x
                .as_str()
                .is_some_and(|s| s.starts_with("--client-ca-file=")))),
            "{webhook_args}"
        );
        assert!(
            objs.iter().any(|o| o["kind"] == "ConfigMap"
                && o["metadata"]["name"] == WEBHOOK_CLIENT_CA_CONFIG_MAP)
        );
        assert!(
            objs.iter()
                .any(|o| o["kind"] == "Secret" && o["metadata"]["name"] == HASH_KEY_SECRET)
        );
        Ok(())
    }

    #[test]
    fn scheduling_flags_place_the_servers_and_traefik() -> Result<(), CliError> {
        let scheduling = Scheduling::parse(
            &["kompox.dev/node=real".into()],
            &[
                "kompox.dev/real-node:NoSchedule".into(),
                "pool=system:NoExecute".into(),
            ],
        )?;
        let objs = objects(
            &Placement::InCluster {
                image: "img".into(),
                watch_namespaces: None,
                scheduling,
                webhook_client_ca: None,
            },
            &Certs::generate()?,
            &generate_hash_key(),
            None,
        )?;
        let deployments: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "Deployment").collect();
        assert_eq!(deployments.len(), 4, "three servers and Traefik");
        for d in deployments {
            let spec = &d["spec"]["template"]["spec"];
            assert_eq!(
                spec["nodeSelector"],
                json!({"kompox.dev/node": "real"}),
                "{}",
                d["metadata"]["name"]
            );
            assert_eq!(
                spec["tolerations"],
                json!([
                    {"key": "kompox.dev/real-node", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "pool", "operator": "Equal", "value": "system", "effect": "NoExecute"},
                ])
            );
        }
        Ok(())
    }

    #[test]
    fn bad_scheduling_flags_are_named() {
        struct Case {
            name: &'static str,
            selector: &'static [&'static str],
            toleration: &'static [&'static str],
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "selector without =",
                selector: &["zone"],
                toleration: &[],
                want: &["--node-selector[0] \"zone\": want KEY=VALUE"],
            },
            Case {
                name: "selector with empty key",
                selector: &["a=b", "=x"],
                toleration: &[],
                want: &["--node-selector[1] \"=x\""],
            },
            Case {
                name: "toleration without effect",
                selector: &[],
                toleration: &["dedicated"],
                want: &["--toleration[0] \"dedicated\": want KEY[=VALUE]:EFFECT"],
            },
            Case {
                name: "unknown effect",
                selector: &[],
                toleration: &["k:Never"],
                want: &["effect \"Never\" is not one of NoSchedule, PreferNoSchedule, NoExecute"],
            },
            Case {
                name: "empty key",
                selector: &[],
                toleration: &["=v:NoSchedule"],
                want: &["--toleration[0] \"=v:NoSchedule\": empty key"],
            },
            Case {
                name: "all reported",
                selector: &["x"],
                toleration: &["y"],
                want: &["--node-selector[0]", "--toleration[0]"],
            },
        ];
        for c in cases {
            let sel: Vec<String> = c.selector.iter().map(|s| (*s).into()).collect();
            let tol: Vec<String> = c.toleration.iter().map(|s| (*s).into()).collect();
            match Scheduling::parse(&sel, &tol) {
                Err(CliError::Invalid(lines)) => {
                    let text = lines.join("\n");
                    for w in c.want {
                        assert!(text.contains(w), "{}: {text:?} lacks {w:?}", c.name);
                    }
                }
                other => panic!("{}: {other:?}", c.name),
            }
        }
    }
}
