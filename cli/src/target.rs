//! What a cluster command acts on, and reading it: an app ([`AppRef`]: its name, found
//! through `-n`, the state file or a cluster-wide search), a named object in a namespace
//! ([`Target`]), a namespace's objects ([`ListArgs`]); `--wait`/`--timeout` ([`WaitArgs`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kompox_cluster::is_conflict;
use kompox_core::api::KompoxApp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::CliError;
use crate::kubectx::{self, KubeArgs};
use crate::output::{Output, line};
use crate::state::{read_state, state_path};

/// The aggregated API's base path.
pub const SUBRESOURCES: &str = "/apis/subresources.k8s.kompox.dev/v1alpha1";

/// Which app: a name, found through `-n`, the state file or a cluster-wide search.
#[derive(Debug, Args)]
pub struct AppRef {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The KompoxApp's name.
    pub app: String,
    /// Its namespace (default: from .kompox/state.json next to -f or in this directory, else
    /// the context's namespace when the app is there, else searched).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The compose file whose .kompox/state.json records the namespace.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: Option<PathBuf>,
}

pub async fn connect(r: &AppRef) -> Result<(Client, String), CliError> {
    let (client, url) = kubectx::client(&r.kube).await?;
    kubectx::ping(&client, &url).await?;
    let context_ns = kubectx::context_namespace_of(&r.kube);
    let ns = locate(
        &client,
        &r.app,
        r.namespace.as_deref(),
        r.file.as_deref(),
        context_ns.as_deref(),
    )
    .await?;
    Ok((client, ns))
}

/// Object `name` of kind `K` in `ns`.
///
/// # Errors
///
/// [`CliError::NotFound`] naming it when absent; the API server's reason otherwise.
pub async fn get_in<K>(client: &Client, ns: &str, name: &str) -> Result<K, CliError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(CliError::NotFound(format!("{kind} {ns}/{name}: not found"))),
        Err(e) => Err(kubectx::kube_error(
            &format!("reading {kind} {ns}/{name}"),
            &e,
        )),
    }
}

/// Every object of kind `K` in `ns`.
pub async fn list_in<K>(client: &Client, ns: &str) -> Result<Vec<K>, CliError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| {
            kubectx::kube_error(
                &format!("listing {}s in {ns}", K::kind(&K::DynamicType::default())),
                &e,
            )
        })
}

/// GETs the `rendered` subresource through kube-apiserver (with the caller's identity).
///
/// # Errors
///
/// [`CliError`] with the server's reason (e.g. 403 Forbidden, 422 render errors).
pub async fn fetch_rendered(client: &Client, ns: &str, name: &str) -> Result<Value, CliError> {
    let req = http::Request::get(format!(
        "{SUBRESOURCES}/namespaces/{ns}/kompoxapps/{name}/rendered"
    ))
    .body(Vec::new())
    .map_err(|e| CliError::Io(format!("building the request: {e}")))?;
    let text = client.request_text(req).await.map_err(|e| {
        kubectx::kube_error(&format!("getting kompoxapps/{name}/rendered in {ns}"), &e)
    })?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Cluster(format!("rendered of {ns}/{name}: not JSON: {e}")))
}

/// The object a disk or snapshot command acts on.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Its name.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's namespace, else `default`, as
    /// kubectl).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl Target {
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    ///
    /// # Errors
    ///
    /// When the kubeconfig cannot be read.
    pub fn ns(&self) -> Result<String, CliError> {
        kubectx::namespace(&self.kube, self.namespace.as_deref())
    }
}

/// Arguments of the list commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The namespace (default: the kubeconfig context's namespace, else `default`, as
    /// kubectl).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List across all namespaces (a NAMESPACE column first).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format (default: a table): name, json, yaml, wide or jsonpath=TEMPLATE.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = Output::parse)]
    pub output: Option<Output>,
}

impl ListArgs {
    /// The objects of kind `K` the list shows: in the namespace (checked to exist), or in
    /// all of them with `-A`.
    ///
    /// # Errors
    ///
    /// [`CliError`] when the cluster cannot be reached, the namespace does not exist or the
    /// list is refused.
    pub async fn items<K>(&self) -> Result<Vec<K>, CliError>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        if self.all_namespaces {
            let (client, url) = kubectx::client(&self.kube).await?;
            kubectx::ping(&client, &url).await?;
            return Api::<K>::all(client)
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| {
                    kubectx::kube_error(
                        &format!(
                            "listing {}s in all namespaces",
                            K::kind(&K::DynamicType::default())
                        ),
                        &e,
                    )
                });
        }
        let ns = kubectx::namespace(&self.kube, self.namespace.as_deref())?;
        let client = ns_client(&self.kube, &ns).await?;
        list_in(&client, &ns).await
    }
}

/// `--wait` and `--timeout` of the commands that wait for the controller.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the controller is done.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: std::time::Duration,
}

pub async fn ns_client(kube: &KubeArgs, ns: &str) -> Result<Client, CliError> {
    let (client, url) = kubectx::client(kube).await?;
    kubectx::ping(&client, &url).await?;
    namespace_exists(&client, ns).await?;
    Ok(client)
}

/// Creates `obj`, printing `created`; an existing object of that name is reused when `reuse`.
pub async fn create<K>(
    api: &Api<K>,
    obj: &K,
    what: &str,
    created: &str,
    reuse: bool,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => line(out, created),
        Err(e) if reuse && is_conflict(&e) => line(out, &format!("{what} already exists (reused)")),
        Err(e) => Err(kubectx::kube_error(&format!("creating {what}"), &e)),
    }
}

/// Finds the namespace of `app`: `-n`, else the namespace `.kompox/state.json` records for it
/// (next to `compose`, else in the current directory: run from the compose project), else the
/// kubeconfig context's namespace when the app is there, else a cluster-wide search.
///
/// # Errors
///
/// [`CliError::NotFound`] when no KompoxApp of that name exists.
pub async fn locate(
    client: &Client,
    app: &str,
    namespace: Option<&str>,
    compose: Option<&Path>,
    context_ns: Option<&str>,
) -> Result<String, CliError> {
    if let Some(ns) = namespace {
        return Ok(ns.to_owned());
    }
    // The project's state file: next to --file, else this directory's.
    let here = Path::new("compose.yml");
    let st = read_state(&state_path(compose.unwrap_or(here)))?;
    let recorded: Vec<&String> = st
        .apps
        .values()
        .filter(|e| e.name == app)
        .map(|e| &e.namespace)
        .collect();
    if let [one] = recorded.as_slice() {
        return Ok((*one).clone());
    }
    if let Some(ns) = context_ns {
        let api: Api<KompoxApp> = Api::namespaced(client.clone(), ns);
        let found = api
            .get_opt(app)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading KompoxApp {ns}/{app}"), &e))?;
        if found.is_some() {
            return Ok(ns.to_owned());
        }
    }
    let api: Api<KompoxApp> = Api::all(client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error("listing KompoxApps", &e))?
        .items;
    let found: Vec<String> = all
        .iter()
        .filter(|a| a.name_any() == app)
        .filter_map(|a| a.namespace())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::NotFound(format!(
            "KompoxApp {app:?}: not found in any namespace (see `kubectl get kompoxapps -A`)"
        ))),
        many => Err(CliError::Invalid(vec![format!(
            "KompoxApp {app:?} exists in {} namespaces ({}): give -n",
            many.len(),
            many.join(", ")
        )])),
    }
}

/// Checks that a namespace exists (for a clear error instead of an empty answer).
///
/// # Errors
///
/// [`CliError::NotFound`].
pub async fn namespace_exists(client: &Client, ns: &str) -> Result<(), CliError> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CliError::NotFound(format!("namespace {ns:?} not found"))),
        Err(e) => Err(kubectx::kube_error(&format!("reading namespace {ns}"), &e)),
    }
}
