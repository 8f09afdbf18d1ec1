//! `kubectl kompox install` / `uninstall`: Kompox's CRDs, namespaces, RBAC, registrations,
//! the three servers (as Deployments, or with `--local` as processes on this machine) and,
//! unless `--ingress none`, Traefik — all by server-side apply, idempotently.
//!
//! What is applied is `manifests/` ([`objects`]), the same definition the kustomize base and
//! the Helm chart ([`chart`]) are made of; `install --dry-run=client -o yaml` prints it.

mod chart;
pub(crate) mod objects;

use std::io::Write;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Client;
use kube::api::Api;
use serde_json::Value;

use crate::CliError;
pub use crate::certs::{Certs, DNS_NAMES};
use crate::kubectx::{self, Format, KubeArgs};
use crate::local;
pub use chart::{CHART_DIR, chart_files};
pub use objects::{
    APISERVICE, CERTS_SECRET, DEFAULT_IMAGE, HASH_KEY_SECRET, Ingress, MANIFESTS, Manifest,
    PART_OF, Placement, SYSTEM_NS, Scheduling, TRAEFIK_IMAGE, TRAEFIK_NS,
    WEBHOOK_CLIENT_CA_CONFIG_MAP, WEBHOOK_CONFIG, certs_secret, is_ours, objects,
};

/// Key of the hash key in [`HASH_KEY_SECRET`].
pub const HASH_KEY_DATA: &str = kompox_cluster::hash_key::DATA_KEY;

/// `--ingress`: the ingress controller install brings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IngressFlag {
    /// Traefik in k4x-traefik, with the IngressClass `traefik` (unless one exists that
    /// Kompox did not create: that one is left alone).
    Traefik,
    /// None: the cluster has an ingress controller; apps name its class.
    None,
}

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
    /// The ingress controller to install: `traefik`, or `none` when the cluster has one.
    #[arg(long, value_enum, default_value_t = IngressFlag::Traefik)]
    pub ingress: IngressFlag,
    /// Let cert-manager (installed in the cluster) issue the servers' serving certificates
    /// and inject their CA into the APIService and the webhook configuration, instead of the
    /// servers managing their own. Not with --local.
    #[arg(long)]
    pub cert_manager: bool,
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

/// The certificates of `install --local`'s processes already in the cluster, else fresh ones
/// (so re-installing keeps them).
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
    Ok(s.as_ref().and_then(kompox_cluster::hash_key::material))
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

fn in_cluster(
    args: &InstallArgs,
    webhook_client_ca: Option<String>,
) -> Result<Placement, CliError> {
    Ok(Placement::InCluster {
        image: args.image.clone(),
        watch_namespaces: args.watch_namespaces.clone(),
        scheduling: Scheduling::parse(&args.node_selector, &args.tolerations)?,
        webhook_client_ca,
        cert_manager: args.cert_manager,
    })
}

fn ingress(args: &InstallArgs) -> Result<Ingress, CliError> {
    match (args.ingress, &args.acme_email) {
        (IngressFlag::Traefik, email) => Ok(Ingress::Traefik {
            acme_email: email.clone(),
        }),
        (IngressFlag::None, None) => Ok(Ingress::None),
        (IngressFlag::None, Some(_)) => Err(CliError::Invalid(vec![
            "--acme-email: configures Traefik's resolvers; --ingress none installs no Traefik"
                .into(),
        ])),
    }
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

fn check_flags(args: &InstallArgs) -> Result<(), CliError> {
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
    if args.local && args.cert_manager {
        return Err(CliError::Invalid(vec![
            "--cert-manager: issues the in-cluster servers' certificates; --local runs them on this machine with install's own".into(),
        ]));
    }
    if args.local && !(args.node_selector.is_empty() && args.tolerations.is_empty()) {
        return Err(CliError::Invalid(vec![
            "--node-selector/--toleration: they place in-cluster servers; --local runs them on this machine".into(),
        ]));
    }
    Ok(())
}

/// Whether a live object of `o`'s kind and name exists that the install did not create
/// (no [`PART_OF`] label): such an object is neither overwritten nor deleted.
async fn foreign(client: &Client, o: &Value) -> Result<bool, CliError> {
    let api = kubectx::api_for(client, o).await?;
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    match api.get_opt(name).await {
        Ok(Some(live)) => Ok(live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PART_OF.0))
            .is_none_or(|v| v != PART_OF.1)),
        Ok(None) => Ok(false),
        Err(e) => Err(kubectx::kube_error(
            &format!("reading {}", kubectx::describe(o)),
            &e,
        )),
    }
}

/// Kinds of cluster-wide objects another installation may own under the same name.
const SHARED_KINDS: [&str; 1] = ["IngressClass"];

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
    check_flags(args)?;
    let ingress = ingress(args)?;
    let client_ca = webhook_client_ca(args)?;
    if args.dry_run == DryRun::Client {
        // No cluster contact: for --local, fresh certificates and placeholder ports.
        let placement = if args.local {
            Placement::Local {
                apiserver_port: 0,
                webhook_port: 0,
                certs: Box::new(Certs::generate()?),
                hash_key: kompox_cluster::hash_key::generate(),
            }
        } else {
            in_cluster(args, client_ca)?
        };
        let objs = objects(&placement, &ingress)?;
        return kubectx::write_objects(out, &kubectx::redact(&objs), args.output);
    }
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;
    if args.acme_email.is_none() && args.ingress == IngressFlag::Traefik {
        let _ = writeln!(
            err,
            "warning: --acme-email not given: Traefik gets no ACME resolvers (staging/production)"
        );
    }
    let dry = args.dry_run == DryRun::Server;

    let mut servers = None;
    let placement = if args.local {
        let certs = certs(Some(&client)).await?;
        // Kept across re-installs: a new key would change every env hash and roll every app.
        let hash_key = match read_hash_key_material(&client).await? {
            Some(k) => k,
            None => kompox_cluster::hash_key::generate(),
        };
        let (apiserver_port, webhook_port) = if dry {
            (0, 0)
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
            let ports = (s.apiserver_port, s.webhook_port);
            servers = Some(s);
            ports
        };
        Placement::Local {
            apiserver_port,
            webhook_port,
            certs: Box::new(certs),
            hash_key,
        }
    } else {
        in_cluster(args, client_ca)?
    };
    let objs = objects(&placement, &ingress)?;

    let mut applied = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        if SHARED_KINDS.contains(&o["kind"].as_str().unwrap_or_default())
            && foreign(&client, o).await?
        {
            let _ = writeln!(
                err,
                "warning: {} exists and was not created by Kompox: left as it is",
                kubectx::describe(o)
            );
            continue;
        }
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
    if let Some(s) = &servers {
        local::start(&client, s, args.timeout, out).await?;
    }
    // In the cluster, Available means a kompox-apiserver Pod is ready behind its Service and
    // has put its CA into the APIService.
    wait_apiservice(&client, args.timeout, Some(&mut *out)).await?;
    let _ = writeln!(out, "APIService {APISERVICE} is Available");
    if let Some(s) = servers {
        let _ = writeln!(
            out,
            "Kompox runs locally: logs in {} (stop with `kubectl kompox uninstall --local`)",
            s.dir.display()
        );
    }
    Ok(())
}

/// What `uninstall` deletes, in order: the registrations first (so the API server stops
/// calling the servers), then the other cluster-wide objects and the kube-system binding,
/// the namespaces (and with them everything in them, the certificates and the hash key the
/// servers made included), the CRDs only with `crds`.
///
/// # Errors
///
/// [`CliError::Invalid`] if a compiled-in manifest does not parse.
pub fn uninstall_order(crds: bool) -> Result<Vec<Value>, CliError> {
    let all = objects(
        &Placement::InCluster {
            image: DEFAULT_IMAGE.into(),
            watch_namespaces: None,
            scheduling: Scheduling::default(),
            webhook_client_ca: None,
            cert_manager: false,
        },
        &Ingress::Traefik { acme_email: None },
    )?;
    let kind = |o: &Value| o["kind"].as_str().unwrap_or_default().to_owned();
    let first = ["APIService", "MutatingWebhookConfiguration"];
    let mut order: Vec<Value> = Vec::new();
    order.extend(
        all.iter()
            .filter(|o| first.contains(&kind(o).as_str()))
            .cloned(),
    );
    order.extend(
        all.iter()
            .filter(|o| {
                let k = kind(o);
                let ns = o["metadata"]["namespace"].as_str();
                !first.contains(&k.as_str())
                    && k != "CustomResourceDefinition"
                    && k != "Namespace"
                    && (ns.is_none() || ns == Some("kube-system"))
            })
            .cloned(),
    );
    order.extend(all.iter().filter(|o| o["kind"] == "Namespace").cloned());
    if crds {
        order.extend(
            all.iter()
                .filter(|o| o["kind"] == "CustomResourceDefinition")
                .cloned(),
        );
    }
    Ok(order)
}

/// Runs `uninstall`: [`uninstall_order`]; an object of a [`SHARED_KINDS`] kind that Kompox
/// did not create (a foreign IngressClass `traefik`) is kept.
///
/// # Errors
///
/// [`CliError`] naming the object that could not be deleted.
pub async fn run_uninstall(
    args: &UninstallArgs,
    out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<(), CliError> {
    let order = uninstall_order(args.crds)?;
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
        if SHARED_KINDS.contains(&o["kind"].as_str().unwrap_or_default())
            && foreign(&client, o).await?
        {
            let _ = writeln!(out, "{} kept: not created by Kompox", kubectx::describe(o));
            continue;
        }
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
