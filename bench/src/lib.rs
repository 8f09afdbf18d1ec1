//! What the benchmarks share: a bearer token for the servers' `/metrics`, the CRDs applied and
//! established, a free port, a poll with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;

/// Namespace and name of the benchmarks' metrics ServiceAccount.
const SA: (&str, &str) = ("default", "kompox-bench-metrics");

/// A token (valid 1 h) of ServiceAccount `default/kompox-bench-metrics`, bound to a
/// ClusterRole like the install's `kompox-metrics-reader` (`get /metrics`): the servers answer
/// `/metrics` only to such a token.
///
/// # Errors
///
/// When `client` may not create the objects or the token.
pub async fn metrics_token(client: &Client) -> Result<String> {
    let pp = PatchParams::apply("kompox-bench").force();
    let (ns, name) = SA;
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
    });
    Api::<ClusterRole>::all(client.clone())
        .patch(name, &pp, &Patch::Apply(&role))
        .await
        .context("applying the metrics ClusterRole")?;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    });
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(name, &pp, &Patch::Apply(&binding))
        .await
        .context("applying the metrics ClusterRoleBinding")?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns}});
    sas.patch(name, &pp, &Patch::Apply(&sa))
        .await
        .context("applying the metrics ServiceAccount")?;
    let tr = sas
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .context("requesting the metrics token")?;
    tr.status
        .map(|s| s.token)
        .context("TokenRequest without a token")
}

/// Applies Kompox's CRDs (server-side, as `manager`) and waits until each is Established.
///
/// # Errors
///
/// When `client` may not apply them or one is not Established within a minute.
pub async fn apply_crds(client: &Client, manager: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in kompox_core::api::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        names.push(name);
    }
    for name in names {
        wait_for(
            Duration::from_secs(60),
            &format!("CRD {name} Established"),
            || {
                let (api, name) = (api.clone(), name.clone());
                async move {
                    let crd = api.get(&name).await?;
                    Ok(crd
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True"))
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// A TCP port free on 127.0.0.1 at the time of the call.
///
/// # Errors
///
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    Ok(
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port(),
    )
}

/// Polls `check` every 100 ms until it returns true; fails after `timeout` with the last error.
///
/// # Errors
///
/// On the timeout, naming `what` and the last error `check` returned.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
