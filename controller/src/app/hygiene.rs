//! Namespace hygiene: the objects the controller adds next to an app's rendered set when the
//! app's namespace is a Kompox app namespace (label `app.kubernetes.io/managed-by=kompox`, as
//! `kubectl kompox` creates `k4x-<workspace>-app-<compact-id>`). Pure: the caller reads the
//! Namespace and applies the result with the rendered objects (same owner, labels, prune).
//!
//! | object | name | what |
//! |---|---|---|
//! | NetworkPolicy | `kompox-<app>` | the app's Pods accept ingress only from Pods of the same namespace and of namespace `k4x-traefik` (the ingress controller) |
//! | Role | `kompox-<app>-operators` | the app's operators: read the app's workload objects, edit its KompoxApp/Disks/Snapshots and the ConfigMaps/Secrets it reads |
//! | RoleBinding | `kompox-<app>-operators` | binds that Role to the operators group (below); not created when there is no group |
//! | ResourceQuota | `kompox-<app>` | only when the KompoxApp has annotation `kompox.dev/resource-quota` (a JSON `ResourceQuotaSpec`) |
//! | LimitRange | `kompox-<app>` | only when the KompoxApp has annotation `kompox.dev/limit-range` (a JSON `LimitRangeSpec`) |
//!
//! And on the Namespace itself, before anything is applied: the PodSecurity admission labels
//! `pod-security.kubernetes.io/enforce` and `…/warn` = the most permissive `spec.podSecurity`
//! of the namespace's KompoxApps ([`namespace_level`]; `baseline` by default), applied by
//! server-side apply with the field manager [`POD_SECURITY_MANAGER`], forced: Kompox owns
//! these labels on the namespaces it manages. kube-apiserver then refuses a Pod that breaks
//! the level whoever creates it; the renderer refuses it earlier, naming the compose field.
//!
//! # The operators group
//!
//! The Namespace decides, never the KompoxApp: annotation [`OPERATORS_GROUP_ANNOTATION`] on the
//! Namespace names the group; otherwise the namespace label `kompox.dev/tenant=<t>` gives group
//! `kompox:tenant:<t>`; with neither there is no RoleBinding. An App annotation is deliberately
//! not accepted: anyone allowed to edit the KompoxApp could then bind themselves (or
//! `system:authenticated`) to the operator Role, which grants more than editing the App does.
//! Whoever creates app namespaces (cluster-level `kubectl kompox`) sets the tenant label.
//!
//! The Role only lists what the controller's own ClusterRole holds
//! (`manifests/controller/rbac.yaml`): the API server refuses to let it grant more (no
//! `escalate`/`bind` verbs), so `pods/log` and `pods/exec` are not granted here.
//!
//! # Quota and limits from annotations
//!
//! The KompoxApp CRD has no fields for them yet, so they are annotations whose value is the
//! JSON of the Kubernetes spec, e.g.
//! `kompox.dev/resource-quota: '{"hard":{"requests.cpu":"2","pods":"4"}}'`. A value that is
//! not a valid spec makes the app `Degraded` (`InvalidSpec`, naming the annotation) and nothing
//! is applied. They constrain the app's own namespace only, so an App author can only limit
//! themselves; removing the annotation prunes the object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRangeSpec, ResourceQuotaSpec};
use kompox_core::api::{KompoxApp, PodSecurityLevel};
use kompox_core::naming::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL, truncate_with_hash};
use kompox_core::render::{APP_LABEL, Diagnostic, INSTANCE_LABEL, NAME_LABEL};
use kompox_core::well_known::SOURCE_ANNOTATION;
use serde_json::{Value, json};

pub use kompox_core::well_known::{
    LIMIT_RANGE_ANNOTATION, OPERATORS_GROUP_ANNOTATION, RESOURCE_QUOTA_ANNOTATION,
};

/// The namespace of the ingress controller allowed by the NetworkPolicy.
pub const TRAEFIK_NAMESPACE: &str = "k4x-traefik";
/// Prefix of the operators group derived from the tenant label.
pub const TENANT_GROUP_PREFIX: &str = "kompox:tenant:";

/// The PodSecurity admission label that decides.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The PodSecurity admission label that warns the client (kubectl shows the warning).
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// Field manager of the Namespace's PodSecurity labels.
pub const POD_SECURITY_MANAGER: &str = "kompox-pod-security";

/// What the Namespace says about hygiene.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// Labelled `app.kubernetes.io/managed-by=kompox`.
    pub managed: bool,
    /// The operators group, if any (see the module docs).
    pub operators_group: Option<String>,
    /// The `pod-security.kubernetes.io/enforce` and `…/warn` labels, as they are.
    pub pod_security: (Option<String>, Option<String>),
}

/// The level a Kompox app namespace is labelled with: the most permissive `spec.podSecurity`
/// of its apps (each app's own Pod is still checked against its own level by the renderer);
/// `baseline` without apps.
pub fn namespace_level<'a>(apps: impl IntoIterator<Item = &'a KompoxApp>) -> PodSecurityLevel {
    apps.into_iter()
        .map(|a| a.spec.pod_security)
        .max()
        .unwrap_or_default()
}

/// The server-side apply body that sets the PodSecurity labels of namespace `ns` to `level`;
/// `None` when they already say so.
#[must_use]
pub fn pod_security_labels(
    ns: &str,
    level: PodSecurityLevel,
    facts: &NamespaceFacts,
) -> Option<Value> {
    let want = Some(level.as_str().to_owned());
    if facts.pod_security == (want.clone(), want) {
        return None;
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns, "labels": {
            ENFORCE_LABEL: level.as_str(),
            WARN_LABEL: level.as_str(),
        }},
    }))
}

impl NamespaceFacts {
    /// Reads the facts from a Namespace's labels and annotations.
    #[must_use]
    pub fn from_meta(
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        let managed = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
        let operators_group = annotations
            .get(OPERATORS_GROUP_ANNOTATION)
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .or_else(|| {
                labels
                    .get(TENANT_LABEL)
                    .filter(|t| !t.is_empty())
                    .map(|t| format!("{TENANT_GROUP_PREFIX}{t}"))
            });
        NamespaceFacts {
            managed,
            operators_group,
            pod_security: (
                labels.get(ENFORCE_LABEL).cloned(),
                labels.get(WARN_LABEL).cloned(),
            ),
        }
    }
}

/// The object name `kompox-<app><suffix>`, shortened with a hash to a DNS label.
fn object_name(app: &str, suffix: &str) -> String {
    truncate_with_hash(&format!("kompox-{app}{suffix}"), 63)
}

/// The hygiene objects of `app` (complete objects with apiVersion, kind, name, namespace and
/// the app's labels), or the problems with its annotations. Empty when the namespace is not
/// managed by Kompox.
///
/// # Errors
///
/// One [`Diagnostic`] per invalid annotation, its path naming the annotation.
pub fn objects(
    app: &KompoxApp,
    namespace: &str,
    app_label: &str,
    facts: &NamespaceFacts,
) -> Result<Vec<Value>, Vec<Diagnostic>> {
    if !facts.managed {
        return Ok(Vec::new());
    }
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let labels = json!({
        NAME_LABEL: app_label,
        INSTANCE_LABEL: app_label,
        MANAGED_BY_LABEL: MANAGED_BY,
        APP_LABEL: app_label,
    });
    let meta = |n: &str| {
        json!({
            "name": n,
            "namespace": namespace,
            "labels": labels,
            "annotations": {SOURCE_ANNOTATION: "namespace hygiene"},
        })
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();

    out.push(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(&object_name(name, "")),
        "spec": {
            "podSelector": {"matchLabels": {APP_LABEL: app_label}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAEFIK_NAMESPACE}}},
            ]}],
        },
    }));

    out.extend(operator_objects(app, namespace, app_label, facts));

    let annotations = app.metadata.annotations.clone().unwrap_or_default();
    if let Some(raw) = annotations.get(RESOURCE_QUOTA_ANNOTATION) {
        match serde_json::from_str::<ResourceQuotaSpec>(raw) {
            Ok(spec) => out.push(json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": meta(&object_name(name, "")),
                "spec": spec,
            })),
            Err(e) => errors.push(annotation_error(
                RESOURCE_QUOTA_ANNOTATION,
                "ResourceQuotaSpec",
                &e,
            )),
        }
    }
    if let Some(raw) = annotations.get(LIMIT_RANGE_ANNOTATION) {
        match serde_json::from_str::<LimitRangeSpec>(raw) {
            Ok(spec) => out.push(json!({
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": meta(&object_name(name, "")),
                "spec": spec,
            })),
            Err(e) => errors.push(annotation_error(
                LIMIT_RANGE_ANNOTATION,
                "LimitRangeSpec",
                &e,
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The operator Role `kompox-<app>-operators` and, with an operators group, its RoleBinding
/// (part of [`objects`]; also applied before the app's first render, so the operators can fix
/// an app whose render fails). Empty outside a managed namespace.
pub fn operator_objects(
    app: &KompoxApp,
    namespace: &str,
    app_label: &str,
    facts: &NamespaceFacts,
) -> Vec<Value> {
    if !facts.managed {
        return Vec::new();
    }
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let role = object_name(name, "-operators");
    let meta = json!({
        "name": role,
        "namespace": namespace,
        "labels": {
            NAME_LABEL: app_label,
            INSTANCE_LABEL: app_label,
            MANAGED_BY_LABEL: MANAGED_BY,
            APP_LABEL: app_label,
        },
        "annotations": {SOURCE_ANNOTATION: "namespace hygiene"},
    });
    let mut out = vec![json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta,
        "rules": operator_rules(),
    })];
    if let Some(group) = &facts.operators_group {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }));
    }
    out
}

fn annotation_error(key: &str, what: &str, e: &serde_json::Error) -> Diagnostic {
    Diagnostic {
        path: format!("metadata.annotations[{key:?}]"),
        message: format!("not a JSON {what}: {e}"),
    }
}

/// The operator Role's rules (a subset of the controller's ClusterRole).
fn operator_rules() -> Value {
    let read = ["get", "list", "watch"];
    json!([
        {"apiGroups": [kompox_core::api::GROUP],
         "resources": ["kompoxapps", "kompoxdisks", "kompoxsnapshots"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "services", "persistentvolumeclaims"], "verbs": read},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": read},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompox_core::api::KompoxAppSpec;
    use rstest::rstest;

    fn app(annotations: &[(&str, &str)]) -> KompoxApp {
        let mut a = KompoxApp::new("gitea", KompoxAppSpec::default());
        a.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        a
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[rstest]
    #[case::unmanaged(map(&[]), map(&[]), false, None)]
    #[case::tenant(
        map(&[(MANAGED_BY_LABEL, "kompox"), (TENANT_LABEL, "team-a")]),
        map(&[]),
        true,
        Some("kompox:tenant:team-a")
    )]
    #[case::annotation_wins(
        map(&[(MANAGED_BY_LABEL, "kompox"), (TENANT_LABEL, "team-a")]),
        map(&[(OPERATORS_GROUP_ANNOTATION, "ops@example.com")]),
        true,
        Some("ops@example.com")
    )]
    #[case::managed_no_tenant(
        map(&[(MANAGED_BY_LABEL, "kompox")]),
        map(&[(OPERATORS_GROUP_ANNOTATION, "  ")]),
        true,
        None
    )]
    #[case::other_manager(
        map(&[(MANAGED_BY_LABEL, "helm"), (TENANT_LABEL, "t")]),
        map(&[]),
        false,
        Some("kompox:tenant:t")
    )]
    fn namespace_facts(
        #[case] labels: BTreeMap<String, String>,
        #[case] annotations: BTreeMap<String, String>,
        #[case] managed: bool,
        #[case] group: Option<&str>,
    ) {
        let f = NamespaceFacts::from_meta(&labels, &annotations);
        assert_eq!(f.managed, managed);
        assert_eq!(f.operators_group.as_deref(), group);
    }

    fn with(level: PodSecurityLevel) -> KompoxApp {
        let mut a = app(&[]);
        a.spec.pod_security = level;
        a
    }

    #[rstest]
    #[case::no_apps(vec![], PodSecurityLevel::Baseline)]
    #[case::one_default_app(vec![app(&[])], PodSecurityLevel::Baseline)]
    #[case::restricted_only(vec![with(PodSecurityLevel::Restricted)], PodSecurityLevel::Restricted)]
    #[case::the_most_permissive_wins(
        vec![with(PodSecurityLevel::Restricted), with(PodSecurityLevel::Baseline)],
        PodSecurityLevel::Baseline
    )]
    #[case::a_privileged_app(
        vec![
            with(PodSecurityLevel::Baseline),
            with(PodSecurityLevel::Privileged),
            with(PodSecurityLevel::Restricted),
        ],
        PodSecurityLevel::Privileged
    )]
    fn namespace_pod_security_level(#[case] apps: Vec<KompoxApp>, #[case] want: PodSecurityLevel) {
        assert_eq!(namespace_level(&apps), want);
    }

    #[test]
    fn pod_security_labels_only_when_they_differ() {
        let facts = NamespaceFacts::from_meta(
            &map(&[(MANAGED_BY_LABEL, "kompox"), (ENFORCE_LABEL, "baseline")]),
            &map(&[]),
        );
        let body = pod_security_labels("ns", PodSecurityLevel::Baseline, &facts);
        assert_eq!(
            body.map(|b| b["metadata"]["labels"].clone()),
            Some(json!({ENFORCE_LABEL: "baseline", WARN_LABEL: "baseline"}))
        );
        let facts = NamespaceFacts::from_meta(
            &map(&[(ENFORCE_LABEL, "baseline"), (WARN_LABEL, "baseline")]),
            &map(&[]),
        );
        assert_eq!(
            pod_security_labels("ns", PodSecurityLevel::Baseline, &facts),
            None
        );
        let raised = pod_security_labels("ns", PodSecurityLevel::Privileged, &facts);
        assert_eq!(
            raised.map(|b| b["metadata"]["labels"][ENFORCE_LABEL].clone()),
            Some(json!("privileged"))
        );
    }

    fn kinds(objs: &[Value]) -> Vec<&str> {
        objs.iter().filter_map(|o| o["kind"].as_str()).collect()
    }

    #[test]
    fn unmanaged_namespace_gets_nothing() {
        let objs = objects(&app(&[]), "ns", "gitea", &NamespaceFacts::default());
        assert_eq!(objs, Ok(Vec::new()));
    }

    #[test]
    fn managed_namespace_objects() {
        let facts = NamespaceFacts {
            managed: true,
            operators_group: Some("kompox:tenant:t".into()),
            ..NamespaceFacts::default()
        };
        let objs = objects(&app(&[]), "ns", "gitea", &facts).unwrap_or_default();
        assert_eq!(kinds(&objs), ["NetworkPolicy", "Role", "RoleBinding"]);
        let np = &objs[0];
        assert_eq!(np["metadata"]["name"], "kompox-gitea");
        assert_eq!(np["metadata"]["namespace"], "ns");
        assert_eq!(np["metadata"]["labels"][APP_LABEL], "gitea");
        assert_eq!(np["spec"]["podSelector"]["matchLabels"][APP_LABEL], "gitea");
        let from = &np["spec"]["ingress"][0]["from"];
        assert_eq!(from[0]["podSelector"], json!({}));
        assert_eq!(
            from[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "k4x-traefik"
        );
        let rb = &objs[2];
        assert_eq!(rb["roleRef"]["name"], "kompox-gitea-operators");
        assert_eq!(rb["subjects"][0]["kind"], "Group");
        assert_eq!(rb["subjects"][0]["name"], "kompox:tenant:t");
        // Nothing in the Role may exceed the controller's own ClusterRole.
        for rule in objs[1]["rules"].as_array().into_iter().flatten() {
            for v in rule["verbs"].as_array().into_iter().flatten() {
                assert_ne!(v, "*");
            }
            for r in rule["resources"].as_array().into_iter().flatten() {
                assert!(!r.as_str().unwrap_or_default().contains('/'), "{r}");
            }
        }
        let no_group = NamespaceFacts {
            managed: true,
            operators_group: None,
            ..NamespaceFacts::default()
        };
        let objs = objects(&app(&[]), "ns", "gitea", &no_group).unwrap_or_default();
        assert_eq!(kinds(&objs), ["NetworkPolicy", "Role"]);
    }

    #[test]
    fn quota_and_limits_from_annotations() {
        let facts = NamespaceFacts {
            managed: true,
            operators_group: None,
            ..NamespaceFacts::default()
        };
        let a = app(&[
            (
                RESOURCE_QUOTA_ANNOTATION,
                r#"{"hard":{"pods":"4","requests.cpu":"2"}}"#,
            ),
            (
                LIMIT_RANGE_ANNOTATION,
                r#"{"limits":[{"type":"Container","default":{"memory":"256Mi"}}]}"#,
            ),
        ]);
        let objs = objects(&a, "ns", "gitea", &facts).unwrap_or_default();
        assert_eq!(
            kinds(&objs),
            ["NetworkPolicy", "Role", "ResourceQuota", "LimitRange"]
        );
        assert_eq!(objs[2]["spec"]["hard"]["pods"], "4");
        assert_eq!(objs[3]["spec"]["limits"][0]["type"], "Container");

        let bad = app(&[
            (RESOURCE_QUOTA_ANNOTATION, "{not json"),
            (LIMIT_RANGE_ANNOTATION, r#"{"limits":"x"}"#),
        ]);
        let errs = objects(&bad, "ns", "gitea", &facts)
            .err()
            .unwrap_or_default();
        let paths: Vec<&str> = errs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.annotations[\"kompox.dev/resource-quota\"]",
                "metadata.annotations[\"kompox.dev/limit-range\"]"
            ]
        );
    }

    #[test]
    fn long_app_names_are_shortened() {
        let long = "a".repeat(200);
        let n = object_name(&long, "-operators");
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("kompox-aaa"));
    }
}
