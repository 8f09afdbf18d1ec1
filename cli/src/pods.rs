//! An app's running side, for `logs`, `exec` and `port-forward`: its compose services (from
//! the compose ConfigMap, mapped to container names as the renderer maps them), the one a
//! command acts on (`-S/--service`, else the ingress service, else the only one), and its
//! Pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kompox_core::api::KompoxApp;
use kompox_core::naming::{MAX_LABEL_LEN, k8s_names};
use kompox_core::well_known::APP_LABEL;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};

use crate::CliError;
use crate::kubectx;
use crate::target::get_in;

/// The compose services of `app` (compose name → container name) and the services its
/// ingress rules publish.
///
/// # Errors
///
/// [`CliError`] when the compose ConfigMap cannot be read or parsed.
pub async fn services(
    client: &Client,
    ns: &str,
    app: &KompoxApp,
) -> Result<(BTreeMap<String, String>, Vec<String>), CliError> {
    let r = &app.spec.compose.config_map_ref;
    let cm: ConfigMap = get_in(client, ns, &r.name).await?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| {
            CliError::Cluster(format!("ConfigMap {ns}/{}: no key {:?}", r.name, r.key))
        })?;
    // Variables are not needed to know the services and their ports; an unset one reads as
    // empty here (the controller has the real values).
    let parsed = kompox_core::compose::parse(text, &|_| Some(String::new())).map_err(|e| {
        CliError::Invalid(
            e.errors
                .iter()
                .map(|d| format!("ConfigMap {ns}/{} {:?}: {d}", r.name, r.key))
                .collect(),
        )
    })?;
    let names = k8s_names(
        parsed.project.services.keys().map(String::as_str),
        MAX_LABEL_LEN,
    );
    let mut ingress = Vec::new();
    for rule in app.spec.ingress.iter().flat_map(|i| &i.rules) {
        for (name, svc) in &parsed.project.services {
            if svc
                .ports
                .iter()
                .any(|p| p.published.map(i32::from) == Some(rule.port))
                && !ingress.contains(name)
            {
                ingress.push(name.clone());
            }
        }
    }
    Ok((names, ingress))
}

/// The service a command acts on: `chosen`, else the only service, else the one service the
/// ingress publishes. Returns (compose name, container name).
///
/// # Errors
///
/// [`CliError::Invalid`] naming the unknown service and the known ones, or asking for `-S`.
pub fn choose(
    app: &str,
    services: &BTreeMap<String, String>,
    ingress: &[String],
    chosen: Option<&str>,
) -> Result<(String, String), CliError> {
    let known = || services.keys().cloned().collect::<Vec<_>>().join(", ");
    let pick = |s: &str| {
        services
            .get(s)
            .map(|c| (s.to_owned(), c.clone()))
            .ok_or_else(|| {
                CliError::Invalid(vec![format!(
                    "-S {s}: KompoxApp {app} has no service {s:?} (its services: {})",
                    known()
                )])
            })
    };
    match (chosen, services.len(), ingress) {
        (Some(s), _, _) => pick(s),
        (None, 1, _) => pick(services.keys().next().map_or("", String::as_str)),
        (None, _, [one]) => pick(one),
        _ => Err(CliError::Invalid(vec![format!(
            "KompoxApp {app} has {} services ({}): choose one with -S/--service",
            services.len(),
            known()
        )])),
    }
}

/// The names of the containers a Pod runs a compose service in: its containers and its native
/// sidecars (init containers with `restartPolicy: Always`, as the renderer makes a service other
/// services wait for with `depends_on: service_healthy`). Plain init containers run no service.
pub fn service_containers(pod: &Pod) -> impl Iterator<Item = &str> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.into_iter()
        .flat_map(|s| &s.containers)
        .chain(sidecars)
        .map(|c| c.name.as_str())
}

/// The app's Pods (label `kompox.dev/app`), running ones first, newest first.
///
/// # Errors
///
/// [`CliError::NotFound`] when it has none yet.
pub async fn pods(client: &Client, ns: &str, app: &str) -> Result<Vec<Pod>, CliError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pods = api
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={app}")))
        .await
        .map_err(|e| kubectx::kube_error(&format!("listing the Pods of KompoxApp {ns}/{app}"), &e))?
        .items;
    if pods.is_empty() {
        return Err(CliError::NotFound(format!(
            "KompoxApp {ns}/{app} has no Pod yet (see `kubectl kompox status {app} -n {ns}`)"
        )));
    }
    let running = |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && p.metadata.deletion_timestamp.is_none()
    };
    pods.sort_by(|a, b| {
        running(b)
            .cmp(&running(a))
            .then_with(|| b.creation_timestamp().cmp(&a.creation_timestamp()))
    });
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn services(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), n.to_lowercase()))
            .collect()
    }

    #[test]
    fn a_native_sidecar_runs_a_service_a_plain_init_container_does_not() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "initContainers": [
                    {"name": "init-volume-subpaths"},
                    {"name": "postgres", "restartPolicy": "Always"},
                ],
                "containers": [{"name": "gitea"}],
            },
        }))
        .unwrap_or_default();
        assert_eq!(
            service_containers(&pod).collect::<Vec<_>>(),
            ["gitea", "postgres"]
        );
    }

    #[rstest]
    #[case::chosen(&["web", "db"], &[], Some("db"), Ok("db"))]
    #[case::the_only_one(&["web"], &[], None, Ok("web"))]
    #[case::the_ingress_one(&["web", "db"], &["web"], None, Ok("web"))]
    #[case::ambiguous(&["web", "db"], &[], None, Err("choose one with -S/--service"))]
    #[case::two_published(&["web", "api"], &["web", "api"], None, Err("choose one"))]
    #[case::unknown(&["web"], &[], Some("wbe"), Err("-S wbe: KompoxApp app has no service \"wbe\" (its services: web)"))]
    #[case::container_name(&["Web"], &[], None, Ok("web"))]
    fn which_service(
        #[case] names: &[&str],
        #[case] ingress: &[&str],
        #[case] chosen: Option<&str>,
        #[case] want: Result<&str, &str>,
    ) {
        let ingress: Vec<String> = ingress.iter().map(|s| (*s).to_owned()).collect();
        let got = choose("app", &services(names), &ingress, chosen);
        match (got, want) {
            (Ok((_, container)), Ok(c)) => assert_eq!(container, c),
            (Err(e), Err(m)) => assert!(e.to_string().contains(m), "{e}"),
            (got, want) => panic!("{got:?} != {want:?}"),
        }
    }
}
