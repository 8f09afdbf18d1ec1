//! Helpers for the storage e2e tests in `tests/storage_more.rs`: a `kompox-controller` run
//! in-process with any namespace scope (as the controller's ServiceAccount, so its RBAC is
//! exercised), disk objects, waits on a KompoxDisk's status.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kompox_controller::{Config, NamespaceScope};
use kompox_core::api::condition::{self, types};
use kompox_core::api::{KompoxDisk, KompoxDiskStatus};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{wait_for_condition, wait_until};

/// How long a disk gets to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A KompoxDisk `name` with `spec` (JSON, as a user writes it).
///
/// # Errors
///
/// `spec` is not a valid KompoxDisk spec.
pub fn disk(name: &str, spec: serde_json::Value) -> Result<KompoxDisk> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

/// Creates disk `name` with `spec` through `api`.
pub async fn create_disk(
    api: &Api<KompoxDisk>,
    name: &str,
    spec: serde_json::Value,
) -> Result<KompoxDisk> {
    Ok(api
        .create(&PostParams::default(), &disk(name, spec)?)
        .await?)
}

/// Watches disk `name` until its status satisfies `cond`, at most [`TIMEOUT`]; returns it.
pub async fn wait_disk(
    api: &Api<KompoxDisk>,
    name: &str,
    cond: impl Fn(&KompoxDiskStatus) -> bool + Send + 'static,
) -> Result<KompoxDisk> {
    wait_for_condition(
        api.clone(),
        name,
        move |d: Option<&KompoxDisk>| d.and_then(|d| d.status.as_ref()).is_some_and(&cond),
        TIMEOUT,
    )
    .await?
    .with_context(|| format!("KompoxDisk {name} gone"))
}

/// Waits until disk `name` is `Ready`.
pub async fn wait_disk_ready(api: &Api<KompoxDisk>, name: &str) -> Result<KompoxDisk> {
    wait_disk(api, name, |s| {
        condition::is_true(&s.conditions, types::READY)
    })
    .await
}

/// Waits until PVC `name` of `api` is Bound, at most [`TIMEOUT`].
pub async fn wait_pvc_bound(api: &Api<PersistentVolumeClaim>, name: &str) -> Result<()> {
    wait_until(&format!("PVC {name} Bound"), TIMEOUT, || async {
        let phase = api.get(name).await?.status.and_then(|s| s.phase);
        Ok(phase.as_deref() == Some("Bound"))
    })
    .await
}

/// A test body's result with its teardown's: the body's error wins, the teardown's is added.
///
/// # Errors
///
/// Whichever failed.
pub fn with_teardown(result: Result<()>, teardown: Result<()>) -> Result<()> {
    match (result, teardown) {
        (Err(e), Err(t)) => Err(e.context(format!("teardown failed too: {t:#}"))),
        (r, t) => r.and(t),
    }
}

/// Deletes every disk of `api` (one collection delete) and waits, at most 90 s, until they are
/// gone: their finalizers ran, so a `Delete` policy reached the CSI driver.
pub async fn delete_disks(api: &Api<KompoxDisk>) -> Result<()> {
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_until("every disk deleted", Duration::from_secs(90), || async {
        Ok(api.list(&ListParams::default()).await?.items.is_empty())
    })
    .await
}

/// `kompox-controller` running inside the test process (`kompox_controller::run`), for scopes
/// the process harness ([`crate::controller`]) does not start: a `--namespace-selector` scope
/// watches cluster-wide, so its selector must be unique to the test.
pub struct InProcessController {
    task: JoinHandle<kompox_controller::Result<()>>,
    stop: Option<oneshot::Sender<()>>,
    /// Address of its `/healthz` `/readyz` `/metrics`.
    pub addr: SocketAddr,
}

impl InProcessController {
    /// Starts a controller with `scope` (no leader election) as the controller's
    /// ServiceAccount, and waits until `/readyz` answers 200.
    pub async fn start(scope: NamespaceScope) -> Result<Self> {
        let kubeconfig = crate::controller::kubeconfig().await?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = Config {
            kubeconfig: Some(kubeconfig),
            metrics_listen: addr,
            metrics_tls: {
                let tls = crate::controller::metrics_tls()?;
                kompox_serve::TlsSource::Pem {
                    cert: tls.cert_pem.clone(),
                    key: tls.key_pem.clone(),
                }
            },
            namespaces: scope,
            leader_election: None,
            instance: format!("e2e-{:08x}", rand::random::<u32>()),
            hash_key: crate::hash_key(),
            render_timeout: std::time::Duration::from_secs(10),
            // The kwok cluster's Traefik never runs, so nothing reports Ingress status.
            ingress_admission: kompox_controller::IngressAdmission::Existence,
            serve: kompox_serve::ServeOptions::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kompox_controller::run(config, async {
            let _ = stopped.await;
        }));
        let c = Self {
            task,
            stop: Some(stop),
            addr,
        };
        wait_until("controller /readyz", TIMEOUT, || async {
            if c.task.is_finished() {
                bail!("the controller stopped");
            }
            Ok(c.get("/readyz").await.is_ok_and(|(code, _)| code == 200))
        })
        .await?;
        Ok(c)
    }

    /// GETs `path` from the controller's HTTP endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        self.get_as(path, None).await
    }

    /// [`Self::get`] with `Authorization: Bearer <token>`.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> Result<(u16, String)> {
        crate::controller::https_get(self.addr, path, token).await
    }

    /// The value of the unlabelled metric `name` (e.g. `kompox_controller_scope_namespaces`).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let token = crate::metrics_tokens().await?.reader;
        let (code, body) = self.get_as("/metrics", Some(&token)).await?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .with_context(|| format!("no metric {name}"))?
            .trim()
            .parse()
            .with_context(|| format!("metric {name}"))
    }

    /// Stops the controller gracefully and waits (at most 30 s) until it has.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .context("the controller did not stop within 30 s")??
            .context("the controller failed")
    }
}

impl Drop for InProcessController {
    fn drop(&mut self) {
        self.task.abort();
    }
}
