//! `kubectl kompox port-forward APP [-S SERVICE] [LOCAL]:REMOTE…`: local TCP ports forwarded to
//! a service's container of the app's newest running Pod (the API server's port-forward, over
//! WebSocket), one forwarding connection per accepted connection, until Ctrl-C. `:REMOTE`
//! picks a free local port and prints it.

use std::io::Write;

use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::net::TcpListener;

use crate::CliError;
use crate::exec::target;
use crate::target::{AppRef, connect};

/// Arguments of `port-forward`.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// The compose service (default: the only one, else the one the ingress publishes).
    #[arg(short = 'S', long = "service", value_name = "SERVICE")]
    pub service: Option<String>,
    /// `LOCAL:REMOTE`, `:REMOTE` (a free local port) or `PORT` (the same on both sides); the
    /// remote port is the container's.
    #[arg(required = true, value_name = "[LOCAL]:REMOTE", value_parser = parse_ports)]
    pub ports: Vec<(u16, u16)>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub address: std::net::IpAddr,
}

/// `8080:80`, `:80` (local 0: a free port), `80`.
///
/// # Errors
///
/// A message for clap.
pub fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str, zero: bool| match p.parse::<u16>() {
        Ok(0) if !zero => Err(format!("{s:?}: port 0")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?}: expected [LOCAL]:REMOTE with ports 1-65535")),
    };
    match s.split_once(':') {
        Some(("", r)) => Ok((0, port(r, false)?)),
        Some((l, r)) => Ok((port(l, false)?, port(r, false)?)),
        None => {
            let p = port(s, false)?;
            Ok((p, p))
        }
    }
}

/// Runs `port-forward`.
///
/// # Errors
///
/// [`CliError`] naming a local port in use, the service or the Pod.
pub async fn run(args: &PortForwardArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let (pod, svc, _) = target(&client, &ns, &args.app.app, args.service.as_deref()).await?;
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let mut listeners = Vec::new();
    for (local, remote) in &args.ports {
        let l = TcpListener::bind((args.address, *local))
            .await
            .map_err(|e| {
                CliError::Io(format!(
                    "local port {}:{local}: {e}{}",
                    args.address,
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        " (in use: choose another, or :REMOTE for a free one)"
                    } else {
                        ""
                    }
                ))
            })?;
        let bound = l
            .local_addr()
            .map_err(|e| CliError::Io(format!("local port {local}: {e}")))?;
        writeln!(
            out,
            "Forwarding from {bound} -> {remote} (Pod {ns}/{pod}, service {svc})"
        )
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
        listeners.push((l, *remote));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, remote) in listeners {
        let (api, pod) = (api.clone(), pod.clone());
        tasks.spawn(async move {
            loop {
                let (mut conn, _) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => return format!("accepting on the local port: {e}"),
                };
                let (api, pod) = (api.clone(), pod.clone());
                tokio::spawn(async move {
                    let Ok(mut pf) = api.portforward(&pod, &[remote]).await else {
                        return;
                    };
                    if let Some(mut upstream) = pf.take_stream(remote) {
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                    }
                    pf.abort();
                });
            }
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(e) => Err(CliError::Io(e)),
            Err(e) => Err(CliError::Io(format!("forwarding: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::both("8080:80", Ok((8080, 80)))]
    #[case::free_local(":80", Ok((0, 80)))]
    #[case::same("5432", Ok((5432, 5432)))]
    #[case::zero_remote("8080:0", Err("port 0"))]
    #[case::not_a_port("web:80", Err("expected [LOCAL]:REMOTE"))]
    #[case::too_big("70000", Err("expected [LOCAL]:REMOTE"))]
    fn ports(#[case] s: &str, #[case] want: Result<(u16, u16), &str>) {
        match (parse_ports(s), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w),
            (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
            (got, want) => panic!("{s}: {got:?} != {want:?}"),
        }
    }
}
