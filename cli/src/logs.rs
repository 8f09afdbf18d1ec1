//! `kubectl kompox logs APP [-S SERVICE] [-f] [--tail N] [--since 5m] [--previous]`: the logs
//! of an app's containers through the API server (the kubelet's log endpoint), every line
//! prefixed `[service]` (`[pod/service]` with several Pods) when more than one stream is shown.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kompox_core::api::KompoxApp;
use kube::ResourceExt as _;
use kube::api::{Api, LogParams};

use crate::CliError;
use crate::kubectx;
use crate::pods::{choose, pods, service_containers, services};
use crate::target::{AppRef, connect, get_in};

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub kube: crate::kubectx::KubeArgs,
    /// The KompoxApp's name.
    pub app: String,
    /// Its namespace (default: from .kompox/state.json next to --file or in this directory,
    /// else the context's namespace when the app is there, else searched).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The compose file whose .kompox/state.json records the namespace (no -f here: that is
    /// --follow, as kubectl logs).
    #[arg(long = "file", value_name = "COMPOSE")]
    pub file: Option<std::path::PathBuf>,
    /// The compose service (default: every service, each line prefixed).
    #[arg(short = 'S', long = "service", value_name = "SERVICE")]
    pub service: Option<String>,
    /// Keep streaming new lines (until Ctrl-C or the containers end).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    /// Only lines newer than this (e.g. 10s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = kubectx::parse_duration)]
    pub since: Option<Duration>,
    /// The logs of the previous instance of each container (after a restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
}

/// Runs `logs`.
///
/// # Errors
///
/// [`CliError`] naming the unknown service, an app without a Pod, or the API server's reason.
pub async fn run(args: &LogsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let target = AppRef {
        kube: args.kube.clone(),
        app: args.app.clone(),
        namespace: args.namespace.clone(),
        file: args.file.clone(),
    };
    let (client, ns) = connect(&target).await?;
    let name = &args.app;
    let app: KompoxApp = get_in(&client, &ns, name).await?;
    let (svcs, ingress) = services(&client, &ns, &app).await?;
    let chosen: Vec<(String, String)> = match &args.service {
        Some(s) => vec![choose(name, &svcs, &ingress, Some(s))?],
        None => svcs.iter().map(|(s, c)| (s.clone(), c.clone())).collect(),
    };
    let mut pods: Vec<Pod> = pods(&client, &ns, name).await?;
    if !args.previous {
        // The newest Pods only when some run: a rollout's old Pod has only old lines.
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    }
    let many_pods = pods.len() > 1;
    let mut streams = Vec::new();
    for p in &pods {
        let containers: Vec<&str> = service_containers(p).collect();
        for (svc, container) in &chosen {
            if !containers.contains(&container.as_str()) {
                continue;
            }
            let prefix = match (many_pods, chosen.len() > 1) {
                (true, _) => format!("[{}/{svc}] ", p.name_any()),
                (false, true) => format!("[{svc}] "),
                (false, false) => String::new(),
            };
            streams.push((p.name_any(), container.clone(), prefix));
        }
    }
    if streams.is_empty() {
        return Err(CliError::NotFound(format!(
            "KompoxApp {ns}/{name}: no Pod runs a container of {}",
            chosen
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let params = |container: &str| LogParams {
        container: Some(container.to_owned()),
        follow: args.follow,
        previous: args.previous,
        since_seconds: args
            .since
            .map(|d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)),
        tail_lines: args.tail,
        timestamps: args.timestamps,
        ..LogParams::default()
    };
    if !args.follow {
        for (pod, container, prefix) in &streams {
            let text = api.logs(pod, &params(container)).await.map_err(|e| {
                kubectx::kube_error(&format!("logs of Pod {ns}/{pod} container {container}"), &e)
            })?;
            for l in text.lines() {
                writeln!(out, "{prefix}{l}")
                    .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
            }
        }
        return Ok(());
    }
    // -f: every stream at once, lines as they come.
    let mut lines = futures::stream::select_all(Vec::<
        futures::stream::BoxStream<'static, Result<String, String>>,
    >::new());
    for (pod, container, prefix) in streams {
        let reader = api
            .log_stream(&pod, &params(&container))
            .await
            .map_err(|e| {
                kubectx::kube_error(&format!("logs of Pod {ns}/{pod} container {container}"), &e)
            })?;
        let what = format!("Pod {ns}/{pod} container {container}");
        lines.push(
            reader
                .lines()
                .map(move |l| {
                    l.map(|l| format!("{prefix}{l}"))
                        .map_err(|e| format!("{what}: {e}"))
                })
                .boxed(),
        );
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = lines.next() => match next {
                None => return Ok(()),
                Some(Ok(l)) => {
                    writeln!(out, "{l}")
                        .and_then(|()| out.flush())
                        .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
                }
                Some(Err(e)) => return Err(CliError::Cluster(format!("streaming logs: {e}"))),
            },
        }
    }
}
