//! `kubectl kompox version` (the client's build; the cluster's API server when it can be
//! reached) and `kubectl kompox completion SHELL` (clap_complete's scripts from the command
//! tree).

use std::io::Write;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;
use serde_json::{Value, json};

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
        doc["serverVersion"] = s.clone();
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
                let text = format!(
                    "Server Version: {} (kube-apiserver at {})\n",
                    s["gitVersion"].as_str().unwrap_or_default(),
                    s["url"].as_str().unwrap_or_default()
                );
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

/// The API server's `/version` and URL.
async fn server_info(kube: &kubectx::KubeArgs) -> Result<Value, CliError> {
    let (client, url) = kubectx::client(kube).await?;
    kubectx::ping(&client, &url).await?;
    let v = client
        .apiserver_version()
        .await
        .map_err(|e| kubectx::kube_error(&format!("cluster {url}: /version"), &e))?;
    Ok(json!({
        "gitVersion": v.git_version,
        "platform": v.platform,
        "url": url,
    }))
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
