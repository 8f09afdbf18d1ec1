//! `kubectl kompox exec APP [-S SERVICE] [-i] [-t] -- CMD…`: a command in a service's
//! container of the app's newest running Pod (the API server's exec, over WebSocket); the
//! exit status is the command's.

use std::io::{IsTerminal as _, Write};

use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kompox_core::api::KompoxApp;
use kube::ResourceExt as _;
use kube::api::{Api, AttachParams};

use crate::CliError;
use crate::kubectx;
use crate::pods::{choose, pods, service_containers, services};
use crate::target::{AppRef, connect, get_in};

/// Arguments of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// The compose service (default: the only one, else the one the ingress publishes).
    #[arg(short = 'S', long = "service", value_name = "SERVICE")]
    pub service: Option<String>,
    /// Pass this terminal's standard input to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal for the command (with -i: an interactive shell).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The Pod and container `exec` and `port-forward` act on: the service's container in the
/// app's newest running Pod.
///
/// # Errors
///
/// [`CliError`] naming the unknown service or the app without a Pod.
pub async fn target(
    client: &kube::Client,
    ns: &str,
    name: &str,
    service: Option<&str>,
) -> Result<(String, String, String), CliError> {
    let app: KompoxApp = get_in(client, ns, name).await?;
    let (svcs, ingress) = services(client, ns, &app).await?;
    let (svc, container) = choose(name, &svcs, &ingress, service)?;
    let pods: Vec<Pod> = pods(client, ns, name).await?;
    let pod = pods
        .iter()
        .find(|p| service_containers(p).any(|c| c == container))
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "KompoxApp {ns}/{name}: no Pod runs service {svc} (container {container})"
            ))
        })?;
    Ok((pod.name_any(), svc, container))
}

/// Runs `exec`.
///
/// # Errors
///
/// [`CliError::Exited`] with the command's exit status when it fails; [`CliError`] naming
/// the service, the Pod or the API server's reason otherwise.
pub async fn run(
    args: &ExecArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let (pod, _, container) = target(&client, &ns, &args.app.app, args.service.as_deref()).await?;
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let ap = AttachParams {
        container: Some(container.clone()),
        stdin: args.stdin,
        stdout: true,
        stderr: !args.tty,
        tty: args.tty,
        ..AttachParams::default()
    };
    let raw = args.tty && args.stdin && std::io::stdin().is_terminal();
    let saved = if raw { stty(&["-g"]) } else { None };
    if raw {
        let _ = stty(&["raw", "-echo"]);
    }
    let result = attached(&api, (&pod, &container, &ns), args, &ap, (out, err)).await;
    if let Some(mode) = saved {
        let _ = stty(&[mode.trim()]);
    }
    result
}

async fn attached(
    api: &Api<Pod>,
    (pod, container, ns): (&str, &str, &str),
    args: &ExecArgs,
    ap: &AttachParams,
    (out, err): (&mut dyn Write, &mut dyn Write),
) -> Result<(), CliError> {
    let mut proc = api.exec(pod, args.command.clone(), ap).await.map_err(|e| {
        kubectx::kube_error(&format!("exec in Pod {ns}/{pod} container {container}"), &e)
    })?;
    let status = proc.take_status();
    if let Some(mut stdin) = proc.stdin() {
        // Not awaited: the command may end before the terminal does.
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut stdin).await;
        });
    }
    // The command's output goes through `out` and `err` (the caller holds this process's
    // stdout and stderr), as it comes.
    let (stdout, stderr) = (proc.stdout(), proc.stderr());
    let (o, e, status) = tokio::join!(pump(stdout, out), pump(stderr, err), async {
        match status {
            Some(s) => s.await,
            None => None,
        }
    });
    o?;
    e?;
    let _ = proc.join().await;
    outcome(
        status,
        &format!("exec in Pod {ns}/{pod} container {container}"),
    )
}

/// The end of an exec as the API server reported it: success, the command's exit status (a
/// kubelet's `ExitCode` cause), or the server's message.
fn outcome(status: Option<Status>, what: &str) -> Result<(), CliError> {
    match status {
        Some(s) if s.status.as_deref() == Some("Failure") => {
            let code = s
                .details
                .iter()
                .flat_map(|d| d.causes.iter().flatten())
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse::<u8>().ok());
            match code {
                Some(code) => Err(CliError::Exited(code)),
                None => Err(CliError::Cluster(format!(
                    "{what}: {}",
                    s.message.unwrap_or_default()
                ))),
            }
        }
        _ => Ok(()),
    }
}

/// Copies `from` to `to` until it ends, flushing each chunk.
async fn pump(
    from: Option<impl tokio::io::AsyncRead + Unpin>,
    to: &mut dyn Write,
) -> Result<(), CliError> {
    use tokio::io::AsyncReadExt as _;
    let Some(mut from) = from else {
        return Ok(());
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| CliError::Cluster(format!("reading the command's output: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])
            .and_then(|()| to.flush())
            .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
    }
}

/// Runs `stty ARGS` on this terminal; its output.
fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = std::process::Command::new("stty")
        .args(args)
        .stdin(tty)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::success(Some(json!({"status": "Success"})), "ok")]
    #[case::no_status(None, "ok")]
    #[case::the_commands_status(Some(json!({"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})), "exit 3")]
    #[case::the_servers_message(Some(json!({"status": "Failure", "message": "container not found"})), "x: container not found")]
    fn ends(#[case] status: Option<serde_json::Value>, #[case] want: &str) {
        let status = status.map(|v| serde_json::from_value(v).unwrap_or_default());
        let got = match outcome(status, "x") {
            Ok(()) => "ok".to_owned(),
            Err(CliError::Exited(n)) => format!("exit {n}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, want);
    }
}
