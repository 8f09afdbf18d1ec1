//! The one way Kompox's servers, benchmarks and tests build a Kubernetes client.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Error, Result};

/// The client configuration of the kubeconfig file `kubeconfig` (its current context), or,
/// without one, the in-cluster configuration, then `$KUBECONFIG` / `~/.kube/config`.
///
/// # Errors
///
/// [`Error::Kubeconfig`] naming the file that cannot be read or used, or saying that there is
/// neither an in-cluster configuration nor a kubeconfig.
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config> {
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("reading {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Kubeconfig(format!("using {}: {e}", path.display())))
        }
        None => Config::infer().await.map_err(|e| {
            Error::Kubeconfig(format!("no in-cluster configuration or kubeconfig: {e}"))
        }),
    }
}

/// A client for [`config`].
///
/// # Errors
///
/// As [`config`]; [`Error::Kubeconfig`] when the client cannot be built from it.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client> {
    // Requests made inside a traced span carry its trace context to kube-apiserver.
    Ok(
        kube::client::ClientBuilder::try_from(config(kubeconfig).await?)
            .map_err(|e| Error::Kubeconfig(format!("building the Kubernetes client: {e}")))?
            .with_layer(&kompox_serve::otlp::PropagateLayer)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_kubeconfig_is_named() {
        let missing = Path::new("/nonexistent/kompox/kubeconfig");
        let Err(e) = client(Some(missing)).await else {
            panic!("a client from a missing file");
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("kubeconfig: reading /nonexistent/kompox/kubeconfig: "),
            "{msg}"
        );

        let dir = std::env::temp_dir().join(format!("kompox-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("config");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Err(e) = client(Some(&file)).await else {
            panic!("a client without a context");
        };
        assert!(
            e.to_string()
                .starts_with(&format!("kubeconfig: using {}: ", file.display())),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_kubeconfig_gives_its_server() {
        let dir = std::env::temp_dir().join(format!("kompox-client-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("config");
        std::fs::write(
            &file,
            "apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
users: [{name: u, user: {token: t}}]
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = config(Some(&file)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert!(client(Some(&file)).await.is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
