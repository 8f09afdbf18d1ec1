//! What the benchmarks share: a bearer token for the servers' `/metrics`.

use anyhow::{Context as _, Result};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
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
