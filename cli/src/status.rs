//! `kubectl kompox status APP`: an app's conditions, pods, zone, disks and ingress hosts.

use std::io::Write;

use clap::Args;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::CliError;
use crate::kubectx;
use crate::output::{Output, name_of, ready_of, write_as};
use crate::target::{AppRef, connect, get_in, list_in};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format (default: a human summary): yaml, json, name or jsonpath=TEMPLATE (of
    /// an object with the app, its disks and pods).
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = Output::parse)]
    pub output: Option<Output>,
    /// After the first output, print it again whenever the app, its disks, Deployments or
    /// Pods change (by watching; until Ctrl-C).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// Runs `status`: conditions, pods, zone, disks, ingress hosts; with `--watch`, again after
/// every change of the app, its disks, Deployments or Pods, until interrupted.
///
/// # Errors
///
/// [`CliError`] when the app cannot be read.
pub async fn run(args: &StatusArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let name = &args.app.app;
    let text = once(&client, &ns, name, args.output.as_ref()).await?;
    write_text(out, &text)?;
    if !args.watch {
        return Ok(());
    }
    let config = watcher::Config::default;
    // Only that something changed matters: each change re-reads the four lists.
    let mut changes = futures::stream::select_all([
        watcher::watch_object(Api::<KompoxApp>::namespaced(client.clone(), &ns), name)
            .map_ok(|_| ())
            .default_backoff()
            .boxed(),
        watcher(Api::<KompoxDisk>::namespaced(client.clone(), &ns), config())
            .map_ok(|_| ())
            .default_backoff()
            .boxed(),
        watcher(Api::<Deployment>::namespaced(client.clone(), &ns), config())
            .map_ok(|_| ())
            .default_backoff()
            .boxed(),
        watcher(Api::<Pod>::namespaced(client.clone(), &ns), config())
            .map_ok(|_| ())
            .default_backoff()
            .boxed(),
    ]);
    let what = format!("KompoxApp {ns}/{name}, its disks, Deployments and Pods");
    let mut last = text;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            change = changes.next() => match change {
                None => return Err(CliError::Cluster(format!("watching {what}: the watch ended"))),
                Some(Err(e)) => {
                    if let Some(fatal) = kubectx::watch_error(&what, &e) {
                        return Err(fatal);
                    }
                }
                Some(Ok(())) => {
                    let text = match once(&client, &ns, name, args.output.as_ref()).await {
                        Err(CliError::NotFound(m)) => {
                            write_text(out, &format!("{m}\n"))?;
                            return Ok(());
                        }
                        r => r?,
                    };
                    if text != last {
                        let now = k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S");
                        write_text(out, &format!("--- {now}\n{text}"))?;
                        last = text;
                    }
                }
            },
        }
    }
}

fn write_text(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// The app's status as `-o` says, or the human summary.
async fn once(
    client: &Client,
    ns: &str,
    name: &str,
    output: Option<&Output>,
) -> Result<String, CliError> {
    let app: KompoxApp = get_in(client, ns, name).await?;
    let disks: Vec<KompoxDisk> = list_in(client, ns).await?;
    let pods: Vec<Pod> = list_in(client, ns).await?;
    let mut buf: Vec<u8> = Vec::new();
    if let Some(f) = output {
        if *f == Output::Name {
            let v = serde_json::to_value(&app).map_err(|e| CliError::Io(e.to_string()))?;
            return Ok(name_of(&v) + "\n");
        }
        let v = json!({"app": app, "disks": disks, "pods": pods.iter().map(|p| json!({"name": p.name_any(), "phase": p.status.as_ref().and_then(|s| s.phase.clone()), "node": p.spec.as_ref().and_then(|s| s.node_name.clone())})).collect::<Vec<_>>()});
        write_as(&mut buf, &[v], f, false)?;
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    let deps: Vec<Deployment> = list_in(client, ns).await?;
    Ok(summary(ns, &app, &disks, &deps, &pods))
}

/// The human summary of an app.
fn summary(
    ns: &str,
    app: &KompoxApp,
    disks: &[KompoxDisk],
    deps: &[Deployment],
    pods: &[Pod],
) -> String {
    let name = app.name_any();
    let mut s = String::new();
    let mut w = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    let st = app.status.clone().unwrap_or_default();
    w(format!("KompoxApp {ns}/{name}: ready={}", st.ready));
    if let Some(z) = app.spec.deployment.as_ref().and_then(|d| d.zone.clone()) {
        w(format!("Zone:        {z}"));
    }
    let hosts: Vec<String> = if st.ingress_hosts.is_empty() {
        app.spec
            .ingress
            .iter()
            .flat_map(|i| i.rules.iter().flat_map(|r| r.hosts.clone()))
            .collect()
    } else {
        st.ingress_hosts.clone()
    };
    w(format!(
        "Ingress:     {}",
        if hosts.is_empty() {
            "-".to_owned()
        } else {
            hosts.join(", ")
        }
    ));
    w("Conditions:".into());
    if st.conditions.is_empty() {
        w("  (none reported: no KompoxApp controller has observed the app yet)".into());
    }
    for c in &st.conditions {
        w(format!(
            "  {:<12} {}  {}  {}",
            c.type_, c.status, c.reason, c.message
        ));
    }
    w("Disks:".into());
    for d in disks {
        let s = d.status.clone().unwrap_or_default();
        let ready = ready_of(&s.conditions);
        let att = s
            .attached_to
            .map(|a| format!("{}/{}", a.app, a.volume))
            .unwrap_or_else(|| "-".into());
        w(format!(
            "  {:<16} size={} zone={} ready={ready} pv={} attachedTo={att}",
            d.name_any(),
            d.spec.size.0,
            s.zone.or(d.spec.zone.clone()).unwrap_or_else(|| "-".into()),
            s.pv_name.unwrap_or_else(|| "-".into())
        ));
    }
    w("Workloads:".into());
    for d in deps {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let avail = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        w(format!(
            "  Deployment {:<30} {avail}/{want} available",
            d.name_any()
        ));
    }
    w("Pods:".into());
    for p in pods {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "-".into());
        w(format!("  {:<40} {phase:<9} node={node}", p.name_any()));
    }
    s
}
