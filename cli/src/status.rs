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
use crate::output::{Output, age, name_of, or_dash, print_list, ready_of, table, write_as};
use crate::target::{AppRef, ListArgs, connect, get_in, list_in};

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

/// Runs `list`: the KompoxApps of a namespace (`-A`: of all), as kubectl lists.
///
/// # Errors
///
/// [`CliError`] when the cluster cannot be reached, the namespace does not exist or the list
/// is refused.
pub async fn list(args: &ListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let apps: Vec<KompoxApp> = args.items().await?;
    let now = k8s_openapi::jiff::Timestamp::now();
    print_list(
        out,
        &apps,
        args.output.as_ref(),
        args.all_namespaces,
        (
            &["NAME", "READY", "SUSPENDED", "HOSTS", "AGE"],
            &["ZONE", "DISKS", "GENERATION", "OBSERVED"],
        ),
        |a| {
            let st = a.status.clone().unwrap_or_default();
            let hosts = if st.ingress_hosts.is_empty() {
                "-".to_owned()
            } else {
                st.ingress_hosts.join(",")
            };
            let disks: Vec<&str> = a
                .spec
                .volumes
                .iter()
                .map(|v| v.disk_ref.name.as_str())
                .collect();
            (
                vec![
                    a.name_any(),
                    st.ready.to_string(),
                    a.spec.suspend.to_string(),
                    hosts,
                    age(a.metadata.creation_timestamp.as_ref(), now),
                ],
                vec![
                    or_dash(a.spec.deployment.as_ref().and_then(|d| d.zone.clone())),
                    if disks.is_empty() {
                        "-".to_owned()
                    } else {
                        disks.join(",")
                    },
                    or_dash(a.metadata.generation.map(|g| g.to_string())),
                    or_dash(st.observed_generation.map(|g| g.to_string())),
                ],
            )
        },
    )
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
    // Each section a table (columns padded to their widest cell), indented under its title.
    let mut section = |title: &str, header: &[&str], rows: Vec<Vec<String>>, none: &str| {
        w(format!("{title}:"));
        if rows.is_empty() {
            if !none.is_empty() {
                w(format!("  {none}"));
            }
            return;
        }
        let mut all = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
        all.extend(rows);
        for l in table(&all).lines() {
            w(format!("  {}", l.trim_end()));
        }
    };
    section(
        "Conditions",
        &["TYPE", "STATUS", "REASON", "MESSAGE"],
        st.conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect(),
        "(none reported: no KompoxApp controller has observed the app yet)",
    );
    section(
        "Disks",
        &["NAME", "SIZE", "ZONE", "READY", "PV", "ATTACHED-TO"],
        disks
            .iter()
            .map(|d| {
                let s = d.status.clone().unwrap_or_default();
                vec![
                    d.name_any(),
                    d.spec.size.0.clone(),
                    or_dash(s.zone.or(d.spec.zone.clone())),
                    ready_of(&s.conditions),
                    or_dash(s.pv_name),
                    or_dash(s.attached_to.map(|a| format!("{}/{}", a.app, a.volume))),
                ]
            })
            .collect(),
        "",
    );
    section(
        "Workloads",
        &["DEPLOYMENT", "AVAILABLE"],
        deps.iter()
            .map(|d| {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let avail = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                vec![d.name_any(), format!("{avail}/{want}")]
            })
            .collect(),
        "",
    );
    section(
        "Pods",
        &["NAME", "PHASE", "NODE"],
        pods.iter()
            .map(|p| {
                vec![
                    p.name_any(),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_default(),
                    or_dash(p.spec.as_ref().and_then(|s| s.node_name.clone())),
                ]
            })
            .collect(),
        "",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    /// Every row of the condition table starts its columns where the header's do, whatever
    /// the widths of the type, status and reason.
    #[test]
    fn conditions_are_aligned_columns() {
        let mut app = KompoxApp::new("web", kompox_core::api::KompoxAppSpec::default());
        app.status = Some(kompox_core::api::KompoxAppStatus {
            conditions: vec![
                cond("Ready", "False", "Progressing", "waiting for 1 Pod"),
                cond("DisksReady", "True", "AllBound", "1 disk"),
                cond("Suspended", "Unknown", "X", "-"),
            ],
            ..Default::default()
        });
        let text = summary("ns", &app, &[], &[], &[]);
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "Conditions:")
            .skip(1)
            .take(4)
            .collect();
        assert!(lines[0].starts_with("  TYPE "), "{text}");
        let starts = |l: &str, word: &str| l.find(word);
        let col = |w: &str| starts(lines[0], w);
        for (l, status, reason) in [
            (lines[1], "False", "Progressing"),
            (lines[2], "True", "AllBound"),
            (lines[3], "Unknown", "X"),
        ] {
            assert_eq!(starts(l, status), col("STATUS"), "{text}");
            assert_eq!(starts(l, reason), col("REASON"), "{text}");
        }
        let none = summary(
            "ns",
            &KompoxApp::new("web", Default::default()),
            &[],
            &[],
            &[],
        );
        assert!(none.contains("Conditions:\n  (none reported"), "{none}");
    }
}
