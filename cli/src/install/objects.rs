//! What `install` applies: the YAML of `manifests/` — the one definition the kustomize base
//! (`kubectl apply -k manifests/`) and the Helm chart (`charts/kompox`, generated from it by
//! [`super::chart`]) are made of — plus the install's options (image, ingress, placement of
//! the servers, the webhook's client CA) and, for `--local`, the wiring to processes on this
//! machine.
//!
//! In the cluster nothing here is generated: the servers create their serving certificates
//! and the hash key themselves (`--tls-manage`, `--hash-key-secret`), so the same objects
//! come out of every install path and a drift test compares them.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::CliError;
use crate::certs::Certs;

/// Namespace of the Kompox servers.
pub const SYSTEM_NS: &str = "k4x-system";
/// Namespace of Traefik.
pub const TRAEFIK_NS: &str = "k4x-traefik";
/// Secret holding the CA and serving certificate of `install --local`'s processes.
pub const CERTS_SECRET: &str = "kompox-certs";
/// Secret holding the install's hash key (the servers create it: [`kompox_cluster::hash_key`]).
pub const HASH_KEY_SECRET: &str = "kompox-hash-key";
/// Name of the APIService.
pub const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
/// Name of the MutatingWebhookConfiguration.
pub const WEBHOOK_CONFIG: &str = "kompox-webhook";
/// The image with the three binaries (see `Containerfile`): the one image reference of
/// `manifests/`, the chart's default and `--image`'s.
pub const DEFAULT_IMAGE: &str = "ghcr.io/kompox/kompox:dev";
/// Traefik's image.
pub const TRAEFIK_IMAGE: &str = "docker.io/library/traefik:v3.6.12";
/// The label every object of the install carries: what uninstall may delete, and how a
/// foreign object (an IngressClass `traefik` of someone else) is told apart.
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "kompox");
/// ConfigMap with the CA of kube-apiserver's webhook client certificate (`ca.crt`).
pub const WEBHOOK_CLIENT_CA_CONFIG_MAP: &str = "kompox-webhook-client-ca";

/// One file of `manifests/`, compiled in.
#[derive(Debug, Clone, Copy)]
pub struct Manifest {
    /// Path under `manifests/`.
    pub path: &'static str,
    /// Its text.
    pub text: &'static str,
    /// What it belongs to.
    pub part: Part,
}

/// The parts of the install a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Always installed.
    Core,
    /// Traefik (left out with `--ingress none`).
    Traefik,
    /// cert-manager's Issuers and Certificates (only with `--cert-manager`; not in the
    /// kustomize base).
    CertManager,
}

macro_rules! manifest {
    ($path:literal, $part:ident) => {
        Manifest {
            path: $path,
            text: include_str!(concat!("../../../manifests/", $path)),
            part: Part::$part,
        }
    };
}

/// Every file of `manifests/`, in the order `install` applies them (CRDs and namespaces first,
/// the registrations after the servers). The kustomizations list the same files (tested).
pub const MANIFESTS: [Manifest; 16] = [
    manifest!("crds/kompox.yaml", Core),
    manifest!("system/namespace.yaml", Core),
    manifest!("traefik/namespace.yaml", Traefik),
    manifest!("system/hash-key.yaml", Core),
    manifest!("apiserver/rbac.yaml", Core),
    manifest!("webhook/rbac.yaml", Core),
    manifest!("controller/rbac.yaml", Core),
    manifest!("policy/podsecurity.yaml", Core),
    manifest!("system/networkpolicies.yaml", Core),
    manifest!("cert-manager/certificates.yaml", CertManager),
    manifest!("apiserver/deployment.yaml", Core),
    manifest!("webhook/deployment.yaml", Core),
    manifest!("controller/deployment.yaml", Core),
    manifest!("apiserver/apiservice.yaml", Core),
    manifest!("webhook/mutatingwebhookconfiguration.yaml", Core),
    manifest!("traefik/traefik.yaml", Traefik),
];

/// cert-manager's annotation that copies a Certificate's CA into a `caBundle`.
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

/// The server arguments that make a server manage its own certificate; left out when
/// cert-manager issues it.
const SELF_MANAGED_TLS_ARGS: [&str; 4] = [
    "--tls-manage",
    "--tls-dns-name=",
    "--apiservice=",
    "--webhook-configuration=",
];

/// Parses one compiled-in YAML stream.
///
/// # Errors
///
/// [`CliError::Invalid`] naming the file.
pub fn docs(m: &Manifest) -> Result<Vec<Value>, CliError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(m.text)
        .map_err(|e| CliError::Invalid(vec![format!("manifests/{}: {e}", m.path)]))?;
    Ok(docs.into_iter().filter(Value::is_object).collect())
}

/// The ingress controller install brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    /// Traefik in `k4x-traefik`, with Let's Encrypt resolvers when an e-mail is given.
    Traefik { acme_email: Option<String> },
    /// None: the cluster has one (ingress-nginx, a cloud's), apps name its class.
    None,
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
        /// cert-manager issues the serving certificates (else the servers do).
        cert_manager: bool,
    },
    /// Local processes: the aggregated API server on `apiserver_port`, the webhook on
    /// `webhook_port` (both on 127.0.0.1), serving `certs`; `hash_key` is the material
    /// install keeps in [`HASH_KEY_SECRET`] for them.
    Local {
        apiserver_port: u16,
        webhook_port: u16,
        certs: Box<Certs>,
        hash_key: String,
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

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn labels() -> Value {
    json!({PART_OF.0: PART_OF.1, "app.kubernetes.io/component": "system"})
}

/// The Secret `name` holding `certs` (`kubernetes.io/tls` plus the CA) — `--local` only.
#[must_use]
pub fn certs_secret(certs: &Certs, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": SYSTEM_NS, "labels": labels()},
        "data": {
            "ca.crt": b64(&certs.ca_crt), "ca.key": b64(&certs.ca_key),
            "tls.crt": b64(&certs.tls_crt), "tls.key": b64(&certs.tls_key),
        },
    })
}

/// Whether `o` is one of the install's own objects (it carries [`PART_OF`]).
#[must_use]
pub fn is_ours(o: &Value) -> bool {
    o["metadata"]["labels"][PART_OF.0] == PART_OF.1
}

/// The server binary a Deployment of `manifests/` runs (its container's `command`).
fn server_of(d: &Value) -> Option<&str> {
    d.pointer("/spec/template/spec/containers/0/command/0")
        .and_then(Value::as_str)
        .filter(|c| c.starts_with("kompox-"))
}

/// Every object `install` applies, in order (CRDs and namespaces first).
///
/// # Errors
///
/// [`CliError::Invalid`] if a compiled-in manifest does not parse.
pub fn objects(placement: &Placement, ingress: &Ingress) -> Result<Vec<Value>, CliError> {
    Ok(objects_by_file(placement, ingress)?
        .into_iter()
        .map(|(_, o)| o)
        .collect())
}

/// [`objects`], each with the path under `manifests/` of the file it comes from (an object the
/// options add, such as the webhook's client CA ConfigMap, goes with the file it serves).
///
/// # Errors
///
/// As [`objects`].
pub fn objects_by_file(
    placement: &Placement,
    ingress: &Ingress,
) -> Result<Vec<(&'static str, Value)>, CliError> {
    let mut out = Vec::new();
    let cert_manager = matches!(
        placement,
        Placement::InCluster {
            cert_manager: true,
            ..
        }
    );
    for m in MANIFESTS {
        if (m.part == Part::Traefik && *ingress == Ingress::None)
            || (m.part == Part::CertManager && !cert_manager)
        {
            continue;
        }
        for mut o in docs(&m)? {
            match placement {
                Placement::InCluster { .. } => in_cluster(&mut o, placement),
                Placement::Local {
                    apiserver_port,
                    webhook_port,
                    certs,
                    ..
                } => {
                    if !local(&mut o, *apiserver_port, *webhook_port, certs) {
                        continue;
                    }
                }
            }
            if let (
                Ingress::Traefik {
                    acme_email: Some(email),
                },
                "Deployment",
                Some(TRAEFIK_NS),
            ) = (
                ingress,
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str(),
            ) && let Some(args) = o
                .pointer_mut("/spec/template/spec/containers/0/args")
                .and_then(Value::as_array_mut)
            {
                args.extend(acme_args(email).into_iter().map(Value::String));
            }
            // The webhook's client CA comes before its Deployment, which mounts it.
            if let Placement::InCluster {
                webhook_client_ca: Some(ca),
                ..
            } = placement
                && server_of(&o) == Some("kompox-webhook")
            {
                out.push((m.path, json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": WEBHOOK_CLIENT_CA_CONFIG_MAP, "namespace": SYSTEM_NS, "labels": labels()},
                    "data": {"ca.crt": ca},
                })));
                require_client_certs(&mut o);
            }
            out.push((m.path, o));
        }
        if let (
            Placement::Local {
                certs, hash_key, ..
            },
            "system/hash-key.yaml",
        ) = (placement, m.path)
        {
            out.push((m.path, certs_secret(certs, CERTS_SECRET)));
            out.push((
                m.path,
                serde_json::to_value(kompox_cluster::hash_key::secret(
                    SYSTEM_NS,
                    HASH_KEY_SECRET,
                    hash_key,
                ))
                .map_err(|e| CliError::Io(format!("encoding the hash key Secret: {e}")))?,
            ));
        }
    }
    Ok(out)
}

/// The in-cluster options on one object of `manifests/`.
fn in_cluster(o: &mut Value, placement: &Placement) {
    let Placement::InCluster {
        image,
        watch_namespaces,
        scheduling,
        cert_manager,
        ..
    } = placement
    else {
        return;
    };
    if *cert_manager {
        let secret = match o["kind"].as_str() {
            Some("APIService") => Some("kompox-apiserver-tls"),
            Some("MutatingWebhookConfiguration") => Some("kompox-webhook-tls"),
            _ => None,
        };
        if let Some(secret) = secret {
            o["metadata"]["annotations"][INJECT_CA_FROM] = json!(format!("{SYSTEM_NS}/{secret}"));
        }
        if let Some(args) = o
            .pointer_mut("/spec/template/spec/containers/0/args")
            .and_then(Value::as_array_mut)
        {
            args.retain(|a| {
                !a.as_str()
                    .is_some_and(|a| SELF_MANAGED_TLS_ARGS.iter().any(|p| a.starts_with(p)))
            });
        }
    }
    if o["kind"] != "Deployment" {
        return;
    }
    let server = server_of(o).map(str::to_owned);
    if let Some(c) = o.pointer_mut("/spec/template/spec/containers/0") {
        if server.is_some() {
            c["image"] = json!(image);
        }
        if let (Some("kompox-controller"), Some(sel), Some(args)) = (
            server.as_deref(),
            watch_namespaces.as_deref(),
            c["args"].as_array_mut(),
        ) {
            args.push(json!(format!("--namespace-selector={sel}")));
        }
    }
    if let Some(spec) = o.pointer_mut("/spec/template/spec") {
        scheduling.apply(spec);
    }
}

/// Traefik's Let's Encrypt resolvers `staging` and `production` for `email`.
#[must_use]
pub fn acme_args(email: &str) -> Vec<String> {
    let mut args = Vec::new();
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
    args
}

/// `--local` on one object: the servers' Deployments, PDBs and Services go (they run on this
/// machine), kube-apiserver reaches them through an ExternalName Service → `localhost` (the
/// APIService) and a URL (the webhook), trusting `certs`' CA. `false`: leave `o` out.
fn local(o: &mut Value, apiserver_port: u16, webhook_port: u16, certs: &Certs) -> bool {
    let kind = o["kind"].as_str().unwrap_or_default();
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    let in_system = o["metadata"]["namespace"] == SYSTEM_NS;
    match kind {
        "Deployment" | "PodDisruptionBudget" if in_system => false,
        "Service" if in_system && name == "kompox-apiserver" => {
            o["spec"] = json!({"type": "ExternalName", "externalName": "localhost",
                "ports": [{"name": "https", "port": apiserver_port, "protocol": "TCP"}]});
            true
        }
        "Service" if in_system => false,
        "APIService" => {
            o["spec"]["caBundle"] = json!(certs.ca_bundle());
            o["spec"]["service"]["port"] = json!(apiserver_port);
            true
        }
        "MutatingWebhookConfiguration" => {
            for h in o["webhooks"].as_array_mut().into_iter().flatten() {
                h["clientConfig"] = json!({
                    "url": format!("https://127.0.0.1:{webhook_port}/mutate"),
                    "caBundle": certs.ca_bundle(),
                });
            }
            true
        }
        _ => true,
    }
}

/// Mounts [`WEBHOOK_CLIENT_CA_CONFIG_MAP`] into the webhook's Deployment `d` and makes the
/// webhook require client certificates from it.
fn require_client_certs(d: &mut Value) {
    let mount = "/etc/kompox/webhook-client-ca";
    if let Some(c) = d.pointer_mut("/spec/template/spec/containers/0") {
        if let Some(a) = c["args"].as_array_mut() {
            a.push(json!(format!("--client-ca-file={mount}/ca.crt")));
        }
        let m = json!({"name": "webhook-client-ca", "mountPath": mount, "readOnly": true});
        match c["volumeMounts"].as_array_mut() {
            Some(ms) => ms.push(m),
            None => c["volumeMounts"] = json!([m]),
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

#[cfg(test)]
mod tests;
