//! `KompoxApp`: a Docker Compose application run on the cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalKeyRef, LocalRef, OptionalRef, ProviderSpec, conditions_schema};
use super::validate::{
    Errors, check_key_ref, check_keys, check_label, check_not_blank, check_provider,
    check_subdomain,
};

kompox_resource! {
    /// Desired state of a Compose application.
    #[derive(Default)]
    #[kube(
        kind = "KompoxApp",
        plural = "kompoxapps",
        singular = "kompoxapp",
        shortname = "kapp",
        doc = "A Docker Compose application run by Kompox in this namespace.",
        status = "KompoxAppStatus",
        derive = "Default",
        printcolumn = r#"{"name":"READY","type":"boolean","jsonPath":".status.ready"}"#,
        printcolumn = r#"{"name":"HOSTS","type":"string","jsonPath":".status.ingressHosts"}"#,
        printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    )]
    #[serde(rename_all = "camelCase")]
    pub struct KompoxAppSpec {
        /// Storage/cloud provider used for the app's disks.
        #[serde(default)]
        pub provider: ProviderSpec,
        /// Where the compose file lives.
        pub compose: ComposeSource,
        /// Ingress exposure through the cluster's ingress controller (Traefik).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ingress: Option<IngressSpec>,
        /// Placement of the app's workloads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deployment: Option<DeploymentSpec>,
        /// Compose volumes bound to KompoxDisks in the same namespace.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = 64))]
        pub volumes: Vec<AppVolume>,
        /// Files projected into the containers from ConfigMaps/Secrets (env_file, configs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub files: Option<FilesSpec>,
        /// Pod Security Standards level the app's Pod must meet: `baseline` (the default),
        /// `restricted`, or `privileged`. Kompox checks the rendered Pod against it before
        /// applying anything, and labels a Kompox app namespace with it (PodSecurity admission).
        /// Setting `privileged` needs the `use` verb on `kompoxapps/privileged`, which the
        /// tenant's operator role does not hold (docs/security.md).
        #[serde(default, skip_serializing_if = "PodSecurityLevel::is_baseline")]
        pub pod_security: PodSecurityLevel,
        /// `true` scales the app to zero and holds it there: the controller applies its
        /// Deployment with no replica whatever else changes, and the `Suspended` condition turns
        /// True once no Pod of the app runs any more (its disks are then free to snapshot,
        /// detach or move). `false` (the default) runs it again. The app's other objects
        /// (Services, Ingress, PVCs, Secrets) stay.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub suspend: bool,
        /// Per-service environment overrides kept in Secrets (what `kubectl kompox secret env
        /// set` writes): every key of the entry's Secret is set in the service's container
        /// over the compose file's `environment` and `env_file` for that key. The Secret's
        /// values count in the pod template's env hash, so changing one rolls the app.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = 64))]
        #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["service"]))]
        pub env_overrides: Vec<EnvOverride>,
        /// Secrets of type `kubernetes.io/dockerconfigjson` the app's Pod pulls its images with
        /// (the Pod's `imagePullSecrets`; `kubectl kompox secret pull set` writes one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = 16))]
        pub image_pull_secrets: Vec<LocalRef>,
    }
}

/// `spec.envOverrides[]`: one compose service's environment overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvOverride {
    /// The compose service, as the compose file names it.
    #[schemars(length(min = 1, max = 253))]
    pub service: String,
    /// A Secret in the app's namespace whose keys are the variables.
    pub secret_ref: LocalRef,
}

/// `spec.podSecurity`: a level of the Kubernetes Pod Security Standards.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    // The hardened profile: non-root, no privilege escalation, RuntimeDefault seccomp, all
    // capabilities dropped (Kompox sets these on the Pod).
    Restricted,
    // Known privilege escalations refused: no privileged containers, host namespaces, host
    // paths or ports, added capabilities beyond the default set.
    #[default]
    Baseline,
    // Unrestricted; only with the `use` verb on `kompoxapps/privileged`.
    Privileged,
}

impl PodSecurityLevel {
    /// The default level (left out when serializing, so an apply that does not mention
    /// `spec.podSecurity` does not take it over).
    #[must_use]
    pub fn is_baseline(&self) -> bool {
        *self == PodSecurityLevel::Baseline
    }

    /// The value of the `pod-security.kubernetes.io/enforce` label (`"baseline"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Privileged => "privileged",
        }
    }
}

impl std::fmt::Display for PodSecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.compose`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComposeSource {
    /// ConfigMap key holding compose.yml.
    pub config_map_ref: LocalKeyRef,
    /// Variables for ${VAR} interpolation in the compose file (what `.env` holds for Docker
    /// Compose), like a container's envFrom: every key of each Secret or ConfigMap is a
    /// variable, later entries win. A value from a Secret never appears in plain text in a
    /// rendered object: environment entries that use one read it from a derived Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub env_from: Vec<ComposeEnvFrom>,
}

/// `spec.compose.envFrom[]`: one Secret or ConfigMap of interpolation variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) != has(self.configMapRef)",
    "message": "exactly one of secretRef or configMapRef must be set",
}]))]
pub struct ComposeEnvFrom {
    /// Prepended to every key of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A Secret whose keys are variables (secret-held: never rendered in plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<OptionalRef>,
    /// A ConfigMap whose keys are variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<OptionalRef>,
}

/// `spec.ingress`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// IngressClass name (e.g. traefik).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Extra annotations put on every generated Ingress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Traefik certificate resolver (e.g. staging, production).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_resolver: Option<String>,
    /// TLS for every host of the rules in the Ingress's `spec.tls`, for any ingress controller
    /// (ingress-nginx, a cloud's): the certificate in a Secret of the app's namespace, written
    /// by you or by cert-manager from an issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// One rule per exposed port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<IngressRule>,
}

/// `spec.ingress.tls`: where the Ingress's certificate comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Secret (`kubernetes.io/tls`) holding the certificate; default `<app>-app-tls` when an
    /// issuer is named (cert-manager writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// cert-manager ClusterIssuer that issues the certificate (annotation
    /// `cert-manager.io/cluster-issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_issuer: Option<String>,
    /// cert-manager Issuer of the app's namespace that issues the certificate (annotation
    /// `cert-manager.io/issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// `spec.ingress.rules[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Rule name (DNS label), used in generated object names.
    pub name: String,
    /// Published port of a compose service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Host names routed to the port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub hosts: Vec<String>,
}

/// `spec.deployment`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Zone the workloads must run in ("1" or a full zone name); must match the disks' zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `spec.volumes[]`: binds a compose volume to a disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppVolume {
    /// Compose volume name, as the compose file writes it (`db_data`); Kubernetes names are
    /// derived from it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// KompoxDisk in the same namespace.
    pub disk_ref: LocalRef,
}

/// `spec.files`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesSpec {
    /// Files mounted into the containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub mounts: Vec<FileMount>,
}

/// `spec.files.mounts[]`: one file taken from exactly one of a Secret or a ConfigMap key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) != has(self.configMapRef)",
    "message": "exactly one of secretRef or configMapRef must be set",
}]))]
pub struct FileMount {
    /// Absolute path of the file inside the containers.
    pub path: String,
    /// Secret key providing the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalKeyRef>,
    /// ConfigMap key providing the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalKeyRef>,
    /// File mode bits (0-0777, decimal in JSON: 420 = 0644).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 511))]
    pub mode: Option<i32>,
}

/// Observed state of a KompoxApp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KompoxAppStatus {
    /// True when the app is applied and its workloads are available.
    #[serde(default)]
    pub ready: bool,
    /// Hosts served by the app's Ingresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_hosts: Vec<String>,
    /// Standard conditions: Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Keyed digest of the rendered manifests last applied (`hmac-sha256:<hex>`, under the install's hash key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_hash: Option<String>,
    /// Objects applied for this app, used to prune what is no longer rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// Progress of a switch of an RWO volume to another disk, while one is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_switch: Option<VolumeSwitch>,
}

/// `status.inventory[]`: one applied object (always in the app's namespace).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// apiVersion of the object, e.g. apps/v1.
    pub api_version: String,
    /// Kind of the object, e.g. Deployment.
    pub kind: String,
    /// Name of the object.
    pub name: String,
}

/// `status.volumeSwitch`: ScaleDown → Rebind → ScaleUp.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSwitch {
    /// The app volume being switched.
    pub volume: String,
    /// Disk the volume was bound to.
    pub from_disk: String,
    /// Disk the volume is being bound to.
    pub to_disk: String,
    /// Current phase.
    pub phase: VolumeSwitchPhase,
}

/// Phases of an RWO disk switch, in order.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum VolumeSwitchPhase {
    // Workloads using the volume are being scaled to zero.
    #[default]
    ScaleDown,
    // The PVC is being rebound to the new disk's PV.
    Rebind,
    // Workloads are being scaled back up.
    ScaleUp,
}

impl KompoxAppSpec {
    /// Checks what the schema cannot: names, uniqueness, paths, exactly-one refs.
    ///
    /// # Errors
    ///
    /// [`super::Error::Invalid`] listing every problem, each naming its field
    /// (`spec.volumes[1].name: ...`).
    pub fn validate(&self) -> Result<(), super::Error> {
        let mut errs = Errors::default();
        check_provider(&mut errs, &self.provider);
        check_key_ref(
            &mut errs,
            "spec.compose.configMapRef",
            &self.compose.config_map_ref,
        );
        for (i, e) in self.compose.env_from.iter().enumerate() {
            let f = format!("spec.compose.envFrom[{i}]");
            match (&e.secret_ref, &e.config_map_ref) {
                (Some(r), None) => {
                    check_subdomain(&mut errs, &format!("{f}.secretRef.name"), &r.name)
                }
                (None, Some(r)) => {
                    check_subdomain(&mut errs, &format!("{f}.configMapRef.name"), &r.name);
                }
                _ => errs.push(
                    f.clone(),
                    "exactly one of secretRef or configMapRef must be set",
                ),
            }
        }

        if let Some(ing) = &self.ingress {
            check_keys(
                &mut errs,
                "spec.ingress.annotations",
                "annotation",
                ing.annotations.keys(),
            );
            if let Some(c) = &ing.class_name {
                check_subdomain(&mut errs, "spec.ingress.className", c);
            }
            if let Some(tls) = &ing.tls {
                for (field, v) in [
                    ("secretName", &tls.secret_name),
                    ("clusterIssuer", &tls.cluster_issuer),
                    ("issuer", &tls.issuer),
                ] {
                    if let Some(v) = v {
                        check_subdomain(&mut errs, &format!("spec.ingress.tls.{field}"), v);
                    }
                }
                match (&tls.secret_name, &tls.cluster_issuer, &tls.issuer) {
                    (_, Some(_), Some(_)) => errs.push(
                        "spec.ingress.tls.issuer",
                        "give clusterIssuer or issuer, not both",
                    ),
                    (None, None, None) => errs.push(
                        "spec.ingress.tls",
                        "give secretName, clusterIssuer or issuer",
                    ),
                    _ => {}
                }
                if ing.cert_resolver.is_some() {
                    errs.push(
                        "spec.ingress.tls",
                        "give certResolver (Traefik's ACME) or tls (spec.tls, cert-manager), not both",
                    );
                }
            }
            let mut names = BTreeSet::new();
            let mut hosts = BTreeSet::new();
            for (i, rule) in ing.rules.iter().enumerate() {
                let f = format!("spec.ingress.rules[{i}]");
                check_label(&mut errs, &format!("{f}.name"), &rule.name);
                if !names.insert(rule.name.as_str()) {
                    errs.push(
                        format!("{f}.name"),
                        format!("duplicate rule name {:?}", rule.name),
                    );
                }
                if !(1..=65535).contains(&rule.port) {
                    errs.push(
                        format!("{f}.port"),
                        format!("port {} is not in 1..65535", rule.port),
                    );
                }
                if rule.hosts.is_empty() {
                    errs.push(format!("{f}.hosts"), "at least one host is required");
                }
                for (j, h) in rule.hosts.iter().enumerate() {
                    let hf = format!("{f}.hosts[{j}]");
                    let bare = h.strip_prefix("*.").unwrap_or(h);
                    check_subdomain(&mut errs, &hf, bare);
                    if !hosts.insert(h.as_str()) {
                        errs.push(hf, format!("host {h:?} is used by more than one rule"));
                    }
                }
            }
        }

        check_not_blank(
            &mut errs,
            "spec.deployment.zone",
            self.deployment.as_ref().and_then(|d| d.zone.as_ref()),
        );

        let mut vols = BTreeSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let f = format!("spec.volumes[{i}]");
            check_compose_name(&mut errs, &format!("{f}.name"), &v.name);
            if !vols.insert(v.name.as_str()) {
                errs.push(
                    format!("{f}.name"),
                    format!("duplicate volume name {:?}", v.name),
                );
            }
            check_subdomain(&mut errs, &format!("{f}.diskRef.name"), &v.disk_ref.name);
        }

        let mut overridden = BTreeSet::new();
        for (i, o) in self.env_overrides.iter().enumerate() {
            let f = format!("spec.envOverrides[{i}]");
            if !crate::naming::is_compose_name(&o.service) {
                errs.push(
                    format!("{f}.service"),
                    format!("{:?} is not a compose service name", o.service),
                );
            }
            if !overridden.insert(o.service.as_str()) {
                errs.push(
                    format!("{f}.service"),
                    format!("duplicate service {:?}", o.service),
                );
            }
            check_subdomain(
                &mut errs,
                &format!("{f}.secretRef.name"),
                &o.secret_ref.name,
            );
        }
        for (i, r) in self.image_pull_secrets.iter().enumerate() {
            check_subdomain(
                &mut errs,
                &format!("spec.imagePullSecrets[{i}].name"),
                &r.name,
            );
        }

        if let Some(files) = &self.files {
            let mut paths = BTreeSet::new();
            for (i, m) in files.mounts.iter().enumerate() {
                let f = format!("spec.files.mounts[{i}]");
                check_mount_path(&mut errs, &format!("{f}.path"), &m.path);
                if !paths.insert(m.path.as_str()) {
                    errs.push(format!("{f}.path"), format!("duplicate path {:?}", m.path));
                }
                match (&m.secret_ref, &m.config_map_ref) {
                    (Some(r), None) => check_key_ref(&mut errs, &format!("{f}.secretRef"), r),
                    (None, Some(r)) => check_key_ref(&mut errs, &format!("{f}.configMapRef"), r),
                    _ => errs.push(
                        f.clone(),
                        "exactly one of secretRef or configMapRef must be set",
                    ),
                }
                if let Some(mode) = m.mode
                    && !(0..=0o777).contains(&mode)
                {
                    errs.push(
                        format!("{f}.mode"),
                        format!("mode {mode} is not in 0..=0777 (511)"),
                    );
                }
            }
        }
        errs.finish()
    }
}

/// A compose volume name as written (`db_data`): `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 253
/// characters. The renderer derives Kubernetes names from it ([`crate::naming::k8s_names`]).
fn check_compose_name(errs: &mut Errors, field: &str, name: &str) {
    if !crate::naming::is_compose_name(name) {
        errs.push(
            field,
            format!("{name:?} is not a compose volume name (a letter or digit, then letters, digits, '_', '.' or '-')"),
        );
    } else if name.len() > crate::naming::MAX_SUBDOMAIN_LEN {
        errs.push(field, "must be at most 253 characters");
    }
}

fn check_mount_path(errs: &mut Errors, field: &str, path: &str) {
    if !path.starts_with('/') {
        errs.push(field, format!("path {path:?} must be absolute"));
    } else if path.ends_with('/') {
        errs.push(
            field,
            format!("path {path:?} must name a file, not a directory"),
        );
    } else if path.split('/').any(|seg| seg == "..") {
        errs.push(field, format!("path {path:?} must not contain '..'"));
    } else if path.contains('\0') {
        errs.push(field, "path must not contain NUL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> KompoxAppSpec {
        KompoxAppSpec {
            compose: ComposeSource {
                config_map_ref: LocalKeyRef {
                    name: "app1-compose".into(),
                    key: "compose.yml".into(),
                },
                env_from: Vec::new(),
            },
            ingress: Some(IngressSpec {
                class_name: Some("traefik".into()),
                rules: vec![IngressRule {
                    name: "main".into(),
                    port: 3000,
                    hosts: vec!["gitea.example.com".into()],
                }],
                ..Default::default()
            }),
            volumes: vec![AppVolume {
                name: "default".into(),
                disk_ref: LocalRef {
                    name: "default".into(),
                },
            }],
            files: Some(FilesSpec {
                mounts: vec![FileMount {
                    path: "/etc/kompox/env/app1.env".into(),
                    secret_ref: Some(LocalKeyRef {
                        name: "app1-env".into(),
                        key: "app1.env".into(),
                    }),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn roadmap_example_parses_and_validates() {
        let yaml = r#"
provider:
  type: auto
compose:
  configMapRef:
    name: app1-compose
    key: compose.yml
ingress:
  className: traefik
  annotations: {}
  certResolver: staging
  rules:
    - name: main
      port: 3000
      hosts: ["gitea.example.com"]
deployment:
  zone: "1"
volumes:
  - name: default
    diskRef:
      name: default
"#;
        let spec: KompoxAppSpec = serde_saphyr::from_str(yaml).unwrap_or_default();
        assert_eq!(spec.compose.config_map_ref.key, "compose.yml");
        assert_eq!(spec.ingress.as_ref().map(|i| i.rules.len()), Some(1));
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn validate_names_fields() {
        let mut s = valid();
        s.volumes.push(s.volumes[0].clone());
        s.files = Some(FilesSpec {
            mounts: vec![FileMount {
                path: "etc/x".into(),
                mode: Some(4096),
                ..Default::default()
            }],
        });
        if let Some(i) = s.ingress.as_mut() {
            i.rules[0].port = 0;
            i.rules[0].hosts.push("Bad_Host".into());
        }
        let ov = |service: &str, secret: &str| EnvOverride {
            service: service.into(),
            secret_ref: LocalRef {
                name: secret.into(),
            },
        };
        s.env_overrides = vec![ov("web", "web-env"), ov("web", "Bad_Name"), ov("-x", "ok")];
        s.image_pull_secrets = vec![LocalRef { name: "a b".into() }];
        let msg = s
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for want in [
            "spec.volumes[1].name: duplicate volume name \"default\"",
            "spec.files.mounts[0].path: path \"etc/x\" must be absolute",
            "spec.files.mounts[0]: exactly one of secretRef or configMapRef must be set",
            "spec.files.mounts[0].mode",
            "spec.ingress.rules[0].port: port 0 is not in 1..65535",
            "spec.ingress.rules[0].hosts[1]",
            "spec.envOverrides[1].service: duplicate service \"web\"",
            "spec.envOverrides[1].secretRef.name",
            "spec.envOverrides[2].service: \"-x\" is not a compose service name",
            "spec.imagePullSecrets[0].name",
        ] {
            assert!(msg.contains(want), "missing {want:?} in {msg}");
        }
    }

    fn tls(secret: Option<&str>, cluster_issuer: Option<&str>, issuer: Option<&str>) -> IngressTls {
        IngressTls {
            secret_name: secret.map(str::to_owned),
            cluster_issuer: cluster_issuer.map(str::to_owned),
            issuer: issuer.map(str::to_owned),
        }
    }

    #[rstest::rstest]
    #[case::secret_only(tls(Some("web-cert"), None, None), None, None)]
    #[case::cluster_issuer_only(tls(None, Some("letsencrypt"), None), None, None)]
    #[case::empty(
        tls(None, None, None),
        None,
        Some("spec.ingress.tls: give secretName, clusterIssuer or issuer")
    )]
    #[case::two_issuers(
        tls(None, Some("a"), Some("b")),
        None,
        Some("spec.ingress.tls.issuer: give clusterIssuer or issuer, not both")
    )]
    #[case::bad_secret_name(
        tls(Some("Bad_Name"), None, None),
        None,
        Some("spec.ingress.tls.secretName")
    )]
    #[case::with_a_traefik_resolver(
        tls(Some("s"), None, None),
        Some("staging"),
        Some(
            "spec.ingress.tls: give certResolver (Traefik's ACME) or tls (spec.tls, cert-manager), not both"
        )
    )]
    fn ingress_tls_is_validated(
        #[case] t: IngressTls,
        #[case] resolver: Option<&str>,
        #[case] want: Option<&str>,
    ) {
        let mut s = valid();
        if let Some(i) = s.ingress.as_mut() {
            i.tls = Some(t);
            i.cert_resolver = resolver.map(str::to_owned);
        }
        let got = s.validate().err().map(|e| e.to_string());
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(msg)) => assert!(msg.contains(w), "{msg} lacks {w}"),
            (want, got) => panic!("want {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn wildcard_host_is_accepted() {
        let mut s = valid();
        if let Some(i) = s.ingress.as_mut() {
            i.rules[0].hosts = vec!["*.example.com".into()];
        }
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn volume_switch_phase_wire_names() {
        let v = serde_json::to_value(VolumeSwitchPhase::ScaleDown).unwrap_or_default();
        assert_eq!(v, serde_json::json!("ScaleDown"));
    }
}
