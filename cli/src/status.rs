//! `kubectl kompox status APP`: an app's conditions, pods, zone, disks and ingress hosts.

use std::io::Write;

use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kube::ResourceExt as _;
use serde_json::json;

use crate::CliError;
use crate::output::{Format, ready_of, write_objects};
use crate::target::{AppRef, connect, get_in, list_in};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format (default: a human summary).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// Runs `status`: conditions, pods, zone, disks, ingress hosts.
///
/// # Errors
///
/// [`CliError`] when the app cannot be read.
pub async fn run(args: &StatusArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let name = &args.app.app;
    let app: KompoxApp = get_in(&client, &ns, name).await?;
    let disks: Vec<KompoxDisk> = list_in(&client, &ns).await?;
    let pods: Vec<Pod> = list_in(&client, &ns).await?;
    if let Some(f) = args.output {
        let v = json!({"app": app, "disks": disks, "pods": pods.iter().map(|p| json!({"name": p.name_any(), "phase": p.status.as_ref().and_then(|s| s.phase.clone()), "node": p.spec.as_ref().and_then(|s| s.node_name.clone())})).collect::<Vec<_>>()});
        return write_objects(out, &[v], f);
    }
    let st = app.status.clone().unwrap_or_default();
    let w = |out: &mut dyn Write, s: String| {
        writeln!(out, "{s}").map_err(|e| CliError::Io(e.to_string()))
    };
    w(out, format!("KompoxApp {ns}/{name}: ready={}", st.ready))?;
    if let Some(z) = app.spec.deployment.as_ref().and_then(|d| d.zone.clone()) {
        w(out, format!("Zone:        {z}"))?;
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
    w(
        out,
        format!(
            "Ingress:     {}",
            if hosts.is_empty() {
                "-".to_owned()
            } else {
                hosts.join(", ")
            }
        ),
    )?;
    w(out, "Conditions:".into())?;
    if st.conditions.is_empty() {
        w(
            out,
            "  (none reported: no KompoxApp controller has observed the app yet)".into(),
        )?;
    }
    for c in &st.conditions {
        w(
            out,
            format!(
                "  {:<12} {}  {}  {}",
                c.type_, c.status, c.reason, c.message
            ),
        )?;
    }
    w(out, "Disks:".into())?;
    for d in &disks {
        let s = d.status.clone().unwrap_or_default();
        let ready = ready_of(&s.conditions);
        let att = s
            .attached_to
            .map(|a| format!("{}/{}", a.app, a.volume))
            .unwrap_or_else(|| "-".into());
        w(
            out,
            format!(
                "  {:<16} size={} zone={} ready={ready} pv={} attachedTo={att}",
                d.name_any(),
                d.spec.size.0,
                s.zone.or(d.spec.zone.clone()).unwrap_or_else(|| "-".into()),
                s.pv_name.unwrap_or_else(|| "-".into())
            ),
        )?;
    }
    let deps: Vec<Deployment> = list_in(&client, &ns).await?;
    w(out, "Workloads:".into())?;
    for d in &deps {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let avail = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        w(
            out,
            format!("  Deployment {:<30} {avail}/{want} available", d.name_any()),
        )?;
    }
    w(out, "Pods:".into())?;
    for p in &pods {
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
        w(
            out,
            format!("  {:<40} {phase:<9} node={node}", p.name_any()),
        )?;
    }
    Ok(())
}
