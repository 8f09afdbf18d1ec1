//! `kubectl kompox version` (the client's build; the cluster's API server and the Kompox
//! servers installed in it — their Deployments' `app.kubernetes.io/version`, image and ready
//! replicas — when it can be reached) and `kubectl kompox completion SHELL` (clap_complete's scripts from the command
//! tree).

use std::io::Write;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::install::{PART_OF, SYSTEM_NS};
use crate::output::{Output, write_as};
use crate::{Cli, CliError, kubectx};

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    #[command(flatten)]
    pub kube: kubectx::KubeArgs,
    /// Only the client's version (no cluster contacted).
    #[arg(long)]
    pub client: bool,
    /// Output format (default: lines): json, yaml or jsonpath=TEMPLATE.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = Output::parse)]
    pub output: Option<Output>,
}

/// The client's build: version, target and profile, as recorded by cargo.
#[must_use]
pub fn client_info() -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "debug": cfg!(debug_assertions),
    })
}

/// Runs `version`. An unreachable cluster is said on the server line, not an error: the
/// client's version is still worth printing (as kubectl does, but exit status 0 only when
/// `--client` or the server answered).
///
/// # Errors
///
/// [`CliError::Cluster`] when the cluster cannot be reached (after printing the client's
/// version).
pub async fn run(args: &VersionArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let client = client_info();
    let server = if args.client {
        None
    } else {
        Some(server_info(&args.kube).await)
    };
    let mut doc = json!({"clientVersion": client});
    if let Some(Ok(s)) = &server {
        doc["serverVersion"] = s["kubernetes"].clone();
        doc["kompoxServers"] = s["kompox"].clone();
    }
    match &args.output {
        Some(f) => write_as(out, &[doc], f, false)?,
        None => {
            let text = format!(
                "Client Version: kubectl-kompox {} ({})\n",
                client["version"].as_str().unwrap_or_default(),
                client["platform"].as_str().unwrap_or_default()
            );
            out.write_all(text.as_bytes())
                .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
            if let Some(Ok(s)) = &server {
                let k = &s["kubernetes"];
                let mut text = format!(
                    "Server Version: {} (kube-apiserver at {})\n",
                    k["gitVersion"].as_str().unwrap_or_default(),
                    k["url"].as_str().unwrap_or_default()
                );
                text.push_str(&servers_text(&s["kompox"]));
                out.write_all(text.as_bytes())
                    .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
            }
        }
    }
    match server {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The API server's `/version` and URL (`kubernetes`) and the Kompox servers (`kompox`:
/// [`kompox_servers`]).
async fn server_info(kube: &kubectx::KubeArgs) -> Result<Value, CliError> {
    let (client, url) = kubectx::client(kube).await?;
    kubectx::ping(&client, &url).await?;
    let v = client
        .apiserver_version()
        .await
        .map_err(|e| kubectx::kube_error(&format!("cluster {url}: /version"), &e))?;
    Ok(json!({
        "kubernetes": {"gitVersion": v.git_version, "platform": v.platform, "url": url},
        "kompox": kompox_servers(&client).await,
    }))
}

/// The Kompox servers installed in the cluster: the Deployments of `k4x-system` that belong to
/// Kompox and run one of its servers, each with its `app.kubernetes.io/version` label, image
/// and replicas. A caller who may not list them gets `{"error": …}` instead: the rest of
/// `version` is still worth printing.
async fn kompox_servers(client: &kube::Client) -> Value {
    let api: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NS);
    let lp = ListParams::default().labels(&format!("{}={}", PART_OF.0, PART_OF.1));
    match api.list(&lp).await {
        Ok(list) => Value::Array(
            list.items
                .iter()
                .filter_map(|d| server_of(&serde_json::to_value(d).ok()?))
                .collect(),
        ),
        Err(e) => {
            json!({"error": kubectx::kube_error(&format!("listing Deployments in {SYSTEM_NS}"), &e).to_string()})
        }
    }
}

/// One server's line of `version` from its Deployment `d`; `None` when `d` runs no Kompox
/// server (Traefik's, or one without a container).
fn server_of(d: &Value) -> Option<Value> {
    let c = d.pointer("/spec/template/spec/containers/0")?;
    let command = c.pointer("/command/0").and_then(Value::as_str)?;
    if !command.starts_with("kompox-") {
        return None;
    }
    Some(json!({
        "name": d["metadata"]["name"],
        "version": d["metadata"]["labels"][VERSION_LABEL],
        "image": c["image"],
        "replicas": d["spec"]["replicas"],
        "readyReplicas": d["status"]["readyReplicas"].as_i64().unwrap_or(0),
    }))
}

/// The label of the Deployments that says which version of Kompox they run.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// The `Kompox Servers:` lines of `version` for [`kompox_servers`]' value.
fn servers_text(servers: &Value) -> String {
    if let Some(e) = servers["error"].as_str() {
        return format!("Kompox Servers: unknown ({e})\n");
    }
    let list = servers.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        return format!(
            "Kompox Servers: none in {SYSTEM_NS} (not installed, or `install --local`: processes of the machine that installed)\n"
        );
    }
    let mut text = String::from("Kompox Servers:\n");
    for s in list {
        text.push_str(&format!(
            "  {} {} ({}, {}/{} ready)\n",
            s["name"].as_str().unwrap_or_default(),
            s["version"].as_str().unwrap_or("(no version label)"),
            s["image"].as_str().unwrap_or_default(),
            s["readyReplicas"].as_i64().unwrap_or(0),
            s["replicas"].as_i64().unwrap_or(1),
        ));
    }
    text
}

/// Shown by `completion --help`.
pub const COMPLETION_HELP: &str = "\
Examples:
  # bash, for this shell:
  source <(kubectl-kompox completion bash)
  # zsh, installed:
  kubectl-kompox completion zsh > \"${fpath[1]}/_kubectl-kompox\"
  # fish:
  kubectl-kompox completion fish > ~/.config/fish/completions/kubectl-kompox.fish

The scripts complete `kubectl-kompox …`; kubectl (1.26 and later) completes `kubectl kompox …`
through an executable `kubectl_complete-kompox` on PATH that prints the candidates.";

/// Arguments of `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell`.
///
/// # Errors
///
/// Not expected: clap writes into `out`.
pub fn completion(args: &CompletionArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kubectl-kompox", &mut buf);
    out.write_all(&buf)
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(command: &str, version: Option<&str>, ready: Option<i64>) -> Value {
        json!({
            "metadata": {"name": command, "labels": {VERSION_LABEL: version}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"image": "registry.example/kompox:1.2.3", "command": [command]}
            ]}}},
            "status": {"readyReplicas": ready},
        })
    }

    #[rstest::rstest]
    #[case::a_server(
        deployment("kompox-webhook", Some("0.1.0"), Some(2)),
        Some("  kompox-webhook 0.1.0 (registry.example/kompox:1.2.3, 2/2 ready)\n")
    )]
    #[case::none_ready_no_label(
        deployment("kompox-controller", None, None),
        Some(
            "  kompox-controller (no version label) (registry.example/kompox:1.2.3, 0/2 ready)\n"
        )
    )]
    #[case::traefik_is_not_a_server(deployment("traefik", Some("v3"), Some(1)), None)]
    #[case::no_containers(json!({"metadata": {"name": "x"}}), None)]
    fn server_lines(#[case] d: Value, #[case] want: Option<&str>) {
        let got = server_of(&d).map(|s| servers_text(&json!([s])));
        assert_eq!(
            got.as_deref(),
            want.map(|w| format!("Kompox Servers:\n{w}")).as_deref()
        );
    }

    #[test]
    fn no_servers_and_errors_are_said() {
        assert!(servers_text(&json!([])).starts_with("Kompox Servers: none in k4x-system"));
        assert_eq!(
            servers_text(&json!({"error": "forbidden"})),
            "Kompox Servers: unknown (forbidden)\n"
        );
    }
}
