//! `kubectl kompox secret env set|unset|list` and `secret pull set|unset`: an app's secrets
//! that do not belong in the compose file.
//!
//! - **env**: per-service environment overrides, kept in one Secret per service
//!   (`<app>-<service>-env-override`) that KompoxApp `spec.envOverrides` names. The controller
//!   sets each key in the service's container over compose `environment` and `env_file`; the
//!   Secret's values count in the pod template's env hash, so a change rolls the app. Values
//!   are never printed: the commands name keys only.
//! - **pull**: a `kubernetes.io/dockerconfigjson` Secret (`<app>-pull`) from a Docker
//!   `config.json`, named in `spec.imagePullSecrets` (the Pod's `imagePullSecrets`).
//!
//! Every input is read and checked before the cluster is touched; the Secret is written
//! before the app names it, and the app stops naming it before it is deleted, so the
//! controller never renders a reference to a missing Secret. The app's lists are changed by
//! a merge patch guarded by the resourceVersion read (re-read on a conflict), so `apply`'s
//! field manager never owns them and a concurrent change is not lost. The Secrets carry an owner
//! reference to the KompoxApp: deleting the app deletes them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kompox_core::api::{EnvOverride, KompoxApp, LocalRef};
use kompox_core::naming::{MANAGED_BY, MANAGED_BY_LABEL, MAX_LABEL_LEN, truncate_with_hash};
use kompox_core::well_known::APP_LABEL;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use crate::CliError;
use crate::kubectx::{self, FIELD_MANAGER, KubeArgs};
use crate::output::{line, table};
use crate::pods::{choose, services};
use crate::target::{AppRef, connect, get_in};

/// Largest env file or Docker config read (a Secret holds at most 1 MiB).
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Per-service environment overrides kept in a Secret (values never printed).
    #[command(subcommand)]
    Env(EnvCmd),
    /// Registry credentials the app's Pod pulls its images with (imagePullSecrets).
    #[command(subcommand)]
    Pull(PullCmd),
}

/// `secret env` subcommands.
#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// Set variables of a service over its compose `environment` (-f FILE and/or
    /// --from-literal KEY=VALUE); the app rolls its Pods.
    #[command(after_long_help = "Examples:
  kubectl kompox secret env set gitea -S db -f db.secret.env
  kubectl kompox secret env set gitea -S web --from-literal GITEA__mailer__PASSWD=s3cret")]
    Set(EnvSetArgs),
    /// Remove variables (KEY…) of a service, or all of its overrides when no KEY is given.
    Unset(EnvUnsetArgs),
    /// List the overridden variable names per service (never the values).
    List(SecretApp),
}

/// `secret pull` subcommands.
#[derive(Debug, Subcommand)]
pub enum PullCmd {
    /// Store a Docker config.json as the app's image pull Secret and use it.
    #[command(after_long_help = "Example:
  kubectl kompox secret pull set gitea --docker-config ~/.docker/config.json")]
    Set(PullSetArgs),
    /// Stop using the app's image pull Secret and delete it.
    Unset(SecretApp),
}

/// Which app (no `-f` here: that is the env file of `secret env set`).
#[derive(Debug, Args)]
pub struct SecretApp {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The KompoxApp's name.
    pub app: String,
    /// Its namespace (default: from .kompox/state.json next to --file or in this directory,
    /// else the context's namespace, else searched).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The compose file whose .kompox/state.json records the namespace.
    #[arg(long = "file", value_name = "COMPOSE")]
    pub file: Option<PathBuf>,
}

impl SecretApp {
    fn app_ref(&self) -> AppRef {
        AppRef {
            kube: self.kube.clone(),
            app: self.app.clone(),
            namespace: self.namespace.clone(),
            file: self.file.clone(),
        }
    }
}

/// Arguments of `secret env set`.
#[derive(Debug, Args)]
pub struct EnvSetArgs {
    #[command(flatten)]
    pub target: SecretApp,
    /// The compose service (default: the ingress service, or the only one).
    #[arg(short = 'S', long = "service", value_name = "SERVICE")]
    pub service: Option<String>,
    /// An env file (KEY=VALUE lines, as compose's env_file).
    #[arg(short = 'f', long = "env-file", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// A variable (repeatable; wins over the file).
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub literals: Vec<String>,
    /// Replace the service's overrides with these instead of adding to them.
    #[arg(long)]
    pub replace: bool,
}

/// Arguments of `secret env unset`.
#[derive(Debug, Args)]
pub struct EnvUnsetArgs {
    #[command(flatten)]
    pub target: SecretApp,
    /// The compose service (default: the ingress service, or the only one).
    #[arg(short = 'S', long = "service", value_name = "SERVICE")]
    pub service: Option<String>,
    /// The variables to remove (none: every override of the service).
    pub keys: Vec<String>,
}

/// Arguments of `secret pull set`.
#[derive(Debug, Args)]
pub struct PullSetArgs {
    #[command(flatten)]
    pub target: SecretApp,
    /// A Docker config.json holding the registries' credentials (`auths`).
    #[arg(long = "docker-config", value_name = "FILE")]
    pub docker_config: PathBuf,
}

/// Runs a `secret` subcommand.
///
/// # Errors
///
/// [`CliError`] naming the bad input (file, line, key — never a value), the unknown app or
/// service, or what the cluster refused; nothing is changed when an input is bad.
pub async fn run(cmd: &SecretCmd, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        SecretCmd::Env(EnvCmd::Set(a)) => env_set(a, out).await,
        SecretCmd::Env(EnvCmd::Unset(a)) => env_unset(a, out).await,
        SecretCmd::Env(EnvCmd::List(a)) => env_list(a, out).await,
        SecretCmd::Pull(PullCmd::Set(a)) => pull_set(a, out).await,
        SecretCmd::Pull(PullCmd::Unset(a)) => pull_unset(a, out).await,
    }
}

/// Reads a local input file, bounded.
fn read_input(path: &Path) -> Result<String, CliError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    if meta.len() > MAX_INPUT_BYTES {
        return Err(CliError::Invalid(vec![format!(
            "{shown}: larger than {MAX_INPUT_BYTES} bytes (a Secret holds at most 1 MiB)"
        )]));
    }
    std::fs::read_to_string(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))
}

/// The variables `set` writes: the env file's, then each `--from-literal` (later wins).
/// Errors name the file and line or the literal's key, never a value.
///
/// # Errors
///
/// [`CliError::Invalid`] listing every problem.
pub fn variables(
    file: Option<(&str, &str)>,
    literals: &[String],
) -> Result<BTreeMap<String, String>, CliError> {
    let mut vars = BTreeMap::new();
    let mut errs = Vec::new();
    if let Some((shown, text)) = file {
        // A bare `KEY` inherits nothing here: no process environment leaks into a Secret.
        match kompox_core::dotenv::parse_dotenv(text, &|_| None) {
            Ok(v) => vars.extend(v),
            Err(e) => errs.push(format!("{shown}: {e}")),
        }
    }
    for (i, l) in literals.iter().enumerate() {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                vars.insert(k.to_owned(), v.to_owned());
            }
            _ => errs.push(format!(
                "--from-literal[{i}]: expected KEY=VALUE (the value is not shown)"
            )),
        }
    }
    for k in vars.keys() {
        if !kompox_core::naming::is_env_var_name(k) {
            errs.push(format!("variable {k:?}: not an environment variable name"));
        }
    }
    if errs.is_empty() && vars.is_empty() {
        errs.push("nothing to set: give -f FILE or --from-literal KEY=VALUE".into());
    }
    if errs.is_empty() {
        Ok(vars)
    } else {
        Err(CliError::Invalid(errs))
    }
}

/// The override Secret's name for a service (its container name).
#[must_use]
pub fn override_name(app: &str, container: &str) -> String {
    truncate_with_hash(&format!("{app}-{container}-env-override"), MAX_LABEL_LEN)
}

/// The image pull Secret's name.
#[must_use]
pub fn pull_name(app: &str) -> String {
    truncate_with_hash(&format!("{app}-pull"), MAX_LABEL_LEN)
}

/// A Secret of `app` (labels, owner reference) for server-side apply.
fn secret_object(
    app: &KompoxApp,
    name: &str,
    type_: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(b64.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": app.namespace(),
            "labels": {APP_LABEL: app.name_any(), MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{
                "apiVersion": KompoxApp::api_version(&()),
                "kind": KompoxApp::kind(&()),
                "name": app.name_any(),
                "uid": app.uid(),
            }],
        },
        "type": type_,
        "data": data,
    })
}

/// How often [`update_spec`] re-reads the app after a conflict (the controller's status
/// writes change its resourceVersion too).
const UPDATE_TRIES: usize = 5;

/// Writes the `spec` fields `change` computes from the app as read (`None`: nothing to
/// change), with a merge patch guarded by that read's resourceVersion: a concurrent write
/// makes it read again and recompute, so nobody's change is overwritten.
async fn update_spec(
    api: &Api<KompoxApp>,
    name: &str,
    change: impl Fn(&KompoxApp) -> Option<Value>,
) -> Result<(), CliError> {
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let what = || format!("KompoxApp {}/{name}", api.namespace().unwrap_or_default());
    let done = kompox_cluster::retry_on_conflict(UPDATE_TRIES, || async {
        let app = api
            .get(name)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading {}", what()), &e))?;
        let Some(spec) = change(&app) else {
            return Ok(Ok(()));
        };
        let body = json!({
            "metadata": {"resourceVersion": app.resource_version()},
            "spec": spec,
        });
        match api.patch(name, &pp, &Patch::Merge(body)).await {
            Ok(_) => Ok(Ok(())),
            Err(e) if kompox_cluster::is_conflict(&e) => Ok(Err(())),
            Err(e) => Err(kubectx::kube_error(&format!("updating {}", what()), &e)),
        }
    })
    .await?;
    done.map_err(|()| {
        CliError::Cluster(format!(
            "{} kept changing while this command ran ({UPDATE_TRIES} tries): run it again",
            what()
        ))
    })
}

/// The app, its API and its namespace.
async fn open(t: &SecretApp) -> Result<(Client, Api<KompoxApp>, KompoxApp), CliError> {
    let (client, ns) = connect(&t.app_ref()).await?;
    let app: KompoxApp = get_in(&client, &ns, &t.app).await?;
    let api = Api::namespaced(client.clone(), &ns);
    Ok((client, api, app))
}

/// The Secret's data as bytes, if it exists.
async fn existing(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, CliError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get_opt(name)
        .await
        .map_err(|e| kubectx::kube_error(&format!("reading Secret {ns}/{name}"), &e))?;
    Ok(s.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}

async fn env_set(a: &EnvSetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let text = a.env_file.as_deref().map(read_input).transpose()?;
    let shown = a.env_file.as_ref().map(|p| p.display().to_string());
    let file = shown.as_deref().zip(text.as_deref());
    let vars = variables(file, &a.literals)?;

    let (client, api, app) = open(&a.target).await?;
    let ns = app.namespace().unwrap_or_default();
    let (svcs, ingress) = services(&client, &ns, &app).await?;
    let (service, container) = choose(&a.target.app, &svcs, &ingress, a.service.as_deref())?;
    let name = override_name(&a.target.app, &container);
    let mut data = if a.replace {
        BTreeMap::new()
    } else {
        existing(&client, &ns, &name).await?.unwrap_or_default()
    };
    for (k, v) in &vars {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    kubectx::apply(&client, &secret_object(&app, &name, "Opaque", &data), false).await?;
    let entry = EnvOverride {
        service: service.clone(),
        secret_ref: LocalRef { name: name.clone() },
    };
    update_spec(&api, &a.target.app, |app| {
        let mut overrides = app.spec.env_overrides.clone();
        match overrides.iter_mut().find(|o| o.service == service) {
            Some(o) if *o == entry => return None,
            Some(o) => *o = entry.clone(),
            None => overrides.push(entry.clone()),
        }
        Some(json!({"envOverrides": overrides}))
    })
    .await?;
    let keys: Vec<&str> = vars.keys().map(String::as_str).collect();
    line(
        out,
        &format!(
            "secret/{name}: {service}: set {} (values not shown); the app rolls its Pods",
            keys.join(", ")
        ),
    )
}

async fn env_unset(a: &EnvUnsetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, api, app) = open(&a.target).await?;
    let ns = app.namespace().unwrap_or_default();
    let (svcs, ingress) = services(&client, &ns, &app).await?;
    let (service, _) = choose(&a.target.app, &svcs, &ingress, a.service.as_deref())?;
    let Some(entry) = app
        .spec
        .env_overrides
        .iter()
        .find(|o| o.service == service)
        .cloned()
    else {
        return Err(CliError::NotFound(format!(
            "KompoxApp {ns}/{}: service {service:?} has no environment overrides",
            a.target.app
        )));
    };
    let name = entry.secret_ref.name.clone();
    let mut data = existing(&client, &ns, &name).await?.unwrap_or_default();
    let missing: Vec<&String> = a.keys.iter().filter(|k| !data.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(CliError::NotFound(format!(
            "service {service:?}: {} not overridden (nothing changed)",
            missing
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for k in &a.keys {
        data.remove(k);
    }
    if a.keys.is_empty() || data.is_empty() {
        // The app stops naming the Secret first, so no render references a missing one.
        update_spec(&api, &a.target.app, |app| {
            let rest: Vec<EnvOverride> = app
                .spec
                .env_overrides
                .iter()
                .filter(|o| o.service != service)
                .cloned()
                .collect();
            (rest != app.spec.env_overrides).then(|| json!({"envOverrides": rest}))
        })
        .await?;
        delete_secret(&client, &ns, &name).await?;
        return line(
            out,
            &format!("secret/{name} deleted: {service} has no overrides; the app rolls its Pods"),
        );
    }
    kubectx::apply(&client, &secret_object(&app, &name, "Opaque", &data), false).await?;
    line(
        out,
        &format!(
            "secret/{name}: {service}: unset {}; the app rolls its Pods",
            a.keys.join(", ")
        ),
    )
}

async fn delete_secret(client: &Client, ns: &str, name: &str) -> Result<(), CliError> {
    kubectx::delete(
        client,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}}),
    )
    .await
    .map(|_| ())
}

async fn env_list(a: &SecretApp, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, _, app) = open(a).await?;
    let ns = app.namespace().unwrap_or_default();
    let mut rows = vec![vec![
        "SERVICE".to_owned(),
        "SECRET".to_owned(),
        "KEYS".to_owned(),
    ]];
    for o in &app.spec.env_overrides {
        let keys = match existing(&client, &ns, &o.secret_ref.name).await? {
            Some(d) => d.keys().cloned().collect::<Vec<_>>().join(","),
            None => "<Secret not found>".to_owned(),
        };
        rows.push(vec![o.service.clone(), o.secret_ref.name.clone(), keys]);
    }
    if rows.len() == 1 {
        return line(
            out,
            &format!("KompoxApp {ns}/{} has no environment overrides", a.app),
        );
    }
    out.write_all(table(&rows).as_bytes())
        .map_err(|e| CliError::Io(format!("writing: {e}")))
}

/// Checks a Docker config.json: a JSON object whose `auths` is an object of registries.
/// Returns the registries (never a credential).
///
/// # Errors
///
/// [`CliError::Invalid`] naming the file and what is wrong (serde's position, no content).
pub fn docker_config_registries(shown: &str, text: &str) -> Result<Vec<String>, CliError> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        CliError::Invalid(vec![format!(
            "{shown}: not a Docker config.json: JSON error at line {} column {}",
            e.line(),
            e.column()
        )])
    })?;
    let auths = v
        .get("auths")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            let helper = v.get("credsStore").is_some() || v.get("credHelpers").is_some();
            CliError::Invalid(vec![format!(
                "{shown}: no registry in \"auths\"{}",
                if helper {
                    " (it uses a credential helper, which the cluster cannot run: log in with `docker login` into a separate config, e.g. DOCKER_CONFIG=./pull docker login REGISTRY)"
                } else {
                    ""
                }
            )])
        })?;
    let mut bad = Vec::new();
    for (reg, entry) in auths {
        let has_auth = entry.get("auth").and_then(Value::as_str).is_some()
            || (entry.get("username").is_some() && entry.get("password").is_some())
            || entry.get("identitytoken").is_some();
        if !has_auth {
            bad.push(format!(
                "{shown}: auths.{reg:?}: no credentials (auth, username/password or identitytoken)"
            ));
        }
    }
    if bad.is_empty() {
        Ok(auths.keys().cloned().collect())
    } else {
        Err(CliError::Invalid(bad))
    }
}

async fn pull_set(a: &PullSetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let text = read_input(&a.docker_config)?;
    let shown = a.docker_config.display().to_string();
    let registries = docker_config_registries(&shown, &text)?;
    let (client, api, app) = open(&a.target).await?;
    let name = pull_name(&a.target.app);
    let data = BTreeMap::from([(".dockerconfigjson".to_owned(), text.into_bytes())]);
    kubectx::apply(
        &client,
        &secret_object(&app, &name, "kubernetes.io/dockerconfigjson", &data),
        false,
    )
    .await?;
    update_spec(&api, &a.target.app, |app| {
        if app.spec.image_pull_secrets.iter().any(|r| r.name == name) {
            return None;
        }
        let mut refs = app.spec.image_pull_secrets.clone();
        refs.push(LocalRef { name: name.clone() });
        Some(json!({"imagePullSecrets": refs}))
    })
    .await?;
    line(
        out,
        &format!(
            "secret/{name}: image pull credentials for {}; the app's Pod uses them",
            registries.join(", ")
        ),
    )
}

async fn pull_unset(a: &SecretApp, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, api, app) = open(a).await?;
    let ns = app.namespace().unwrap_or_default();
    let name = pull_name(&a.app);
    if !app.spec.image_pull_secrets.iter().any(|r| r.name == name) {
        return Err(CliError::NotFound(format!(
            "KompoxApp {ns}/{}: no image pull Secret set by `secret pull set`",
            a.app
        )));
    }
    update_spec(&api, &a.app, |app| {
        let rest: Vec<LocalRef> = app
            .spec
            .image_pull_secrets
            .iter()
            .filter(|r| r.name != name)
            .cloned()
            .collect();
        (rest != app.spec.image_pull_secrets).then(|| json!({"imagePullSecrets": rest}))
    })
    .await?;
    delete_secret(&client, &ns, &name).await?;
    line(
        out,
        &format!("secret/{name} deleted; the app's Pod no longer uses it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn msg(r: Result<impl std::fmt::Debug, CliError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[rstest]
    #[case::file_and_literals(Some("A=1\nB=2\n"), &["B=3", "C=x=y"], &[("A", "1"), ("B", "3"), ("C", "x=y")])]
    #[case::literal_empty_value(None, &["EMPTY="], &[("EMPTY", "")])]
    #[case::bare_key_inherits_nothing(Some("HOME\nA=1\n"), &[], &[("A", "1")])]
    fn variables_merge(
        #[case] file: Option<&str>,
        #[case] literals: &[&str],
        #[case] want: &[(&str, &str)],
    ) {
        let lits: Vec<String> = literals.iter().map(|s| (*s).to_owned()).collect();
        let got = variables(file.map(|t| ("x.env", t)), &lits).unwrap_or_default();
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[rstest]
    #[case::file_does_not_parse(Some("GOOD=1\nBAD KEY=hunter2\n"), &[], "x.env: line 2: a variable name cannot contain a space")]
    #[case::literal_without_equals(None, &["hunter2"], "--from-literal[0]: expected KEY=VALUE")]
    #[case::literal_empty_key(None, &["=hunter2"], "--from-literal[0]: expected KEY=VALUE")]
    #[case::nothing(None, &[], "nothing to set")]
    #[case::unterminated_quote(Some("A=\"hunter2\n"), &[], "x.env: line 1: unterminated quoted value")]
    fn variables_refused_without_values(
        #[case] file: Option<&str>,
        #[case] literals: &[&str],
        #[case] want: &str,
    ) {
        let lits: Vec<String> = literals.iter().map(|s| (*s).to_owned()).collect();
        let m = msg(variables(file.map(|t| ("x.env", t)), &lits));
        assert!(m.contains(want), "{m}");
        assert!(!m.contains("hunter2"), "a value leaked: {m}");
    }

    #[rstest]
    #[case::not_json(
        "{\"auths\": {",
        "x.json: not a Docker config.json: JSON error at line 1"
    )]
    #[case::no_auths("{}", "x.json: no registry in \"auths\"")]
    #[case::helper_only(r#"{"credsStore": "desktop"}"#, "credential helper")]
    #[case::entry_without_credentials(
        r#"{"auths": {"ghcr.io": {}}}"#,
        "auths.\"ghcr.io\": no credentials"
    )]
    fn docker_config_refused(#[case] text: &str, #[case] want: &str) {
        let m = msg(docker_config_registries("x.json", text));
        assert!(m.contains(want), "{m}");
    }

    #[test]
    fn docker_config_registries_named_never_credentials() {
        let text = r#"{"auths": {"ghcr.io": {"auth": "dXNlcjpodW50ZXIy"}, "registry.example.com": {"username": "u", "password": "hunter2"}}}"#;
        assert_eq!(
            docker_config_registries("x.json", text).unwrap_or_default(),
            ["ghcr.io", "registry.example.com"]
        );
    }

    #[test]
    fn names_fit_a_label() {
        assert_eq!(override_name("gitea", "db"), "gitea-db-env-override");
        assert_eq!(pull_name("gitea"), "gitea-pull");
        assert!(override_name(&"a".repeat(60), "web").len() <= MAX_LABEL_LEN);
    }
}
