//! The renderer: a KompoxApp, its compose file, its KompoxDisks and the Secrets/ConfigMaps
//! its `spec.files.mounts` name → an ordered, deterministic list of Kubernetes objects.
//!
//! Pure: the caller fetches everything ([`referenced_sources`], [`referenced_disks`] say
//! what) and applies the result (owner references are the caller's). The CLI renders the
//! same way offline.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kompox_core::api::{ComposeSource, KompoxApp, KompoxAppSpec, LocalKeyRef, ProviderType};
//! use kompox_core::hash::HashKey;
//! use kompox_core::render::{ClusterInfo, RenderInput, Sources, render};
//!
//! let compose_ref = LocalKeyRef { name: "hello-compose".into(), key: "compose.yml".into() };
//! let spec = KompoxAppSpec {
//!     compose: ComposeSource { config_map_ref: compose_ref, env_from: vec![] },
//!     ..KompoxAppSpec::default()
//! };
//! let app = KompoxApp::new("hello", spec);
//! let compose = "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n";
//! let rendered = render(&RenderInput {
//!     app: &app,
//!     compose,
//!     disks: &BTreeMap::new(),
//!     sources: &Sources::default(),
//!     cluster: &ClusterInfo { provider: ProviderType::K3s, region: None },
//!     interpolation: &BTreeMap::new(),
//!     key: &HashKey::new(&[7; 32]).expect("a key"),
//! })
//! .expect("renders");
//! let kinds: Vec<&str> = rendered.objects.iter().filter_map(|o| o["kind"].as_str()).collect();
//! assert_eq!(kinds, ["Service", "Deployment"]);
//! assert!(rendered.hash.starts_with("hmac-sha256:"));
//! ```
//!
//! # The conversion
//!
//! | compose / KompoxApp | Kubernetes |
//! |---|---|
//! | the whole project | one Deployment `<app>-app`: `replicas: 1`, strategy `Recreate`, one container per service (name = service name) |
//! | each service | a headless Service named after it (its derived name, below; `clusterIP: None`, `publishNotReadyAddresses: true`), ports from `ports` targets and `expose`; without ports it has none and its name still resolves to the Pod IP (the endpoints controller publishes addresses of headless Services without ports) |
//! | compose names (`my_db`, `db_data`, `db.local`, `Web`) | Kubernetes names derived by [`crate::naming::k8s_names`]: lowercase, `_`/`.` → `-` (`my-db`, `db-data`), a hash suffix only when two names of a kind would collide (the already valid one keeps its name); a Service name not starting with a letter is prefixed `k4x-` |
//! | a service name no Service name serves | resolves to the Pod (127.0.0.1) inside it: a `hostAliases` entry when it is a DNS name once lowercased (`db.local`, `1db`, `Web`); with `_` (`my_db`), which neither DNS nor `hostAliases` accepts, Kompox writes the Pod's /etc/hosts (ConfigMap `<app>-hosts`, mounted read-only into every container; with the localhost entries, `extra_hosts`, and the Pod `hostname` = the app name) |
//! | `spec.ingress.rules[i]` | port of Service `<app>-app` (name = rule name if a valid port name, else `p<port>`), target = the container port published as `rules[i].port`; Ingress `<app>-app` with one rule per host, path `/` Prefix |
//! | `spec.ingress.className` / `annotations` / `certResolver` | `ingressClassName` / annotations (the user's win) / `router.tls: "true"`, `router.tls.certresolver`, `router.entrypoints: websecure` |
//! | `spec.ingress.tls` (`secretName`, `clusterIssuer` / `issuer`) | `spec.tls` for every host (Secret default `<ingress>-tls`) / `cert-manager.io/cluster-issuer` or `cert-manager.io/issuer` |
//! | published port no rule uses, `host_ip` | warning (reachable in the cluster only) |
//! | `spec.volumes[i]` | PVC `<app>-<name>` (the derived name of the compose volume name): `volumeName` = the disk's `status.pvName`, `storageClassName` = the disk's `status.storageClassName` (`""` without one), RWO, size = disk `spec.size`, label `kompox.dev/disk` |
//! | `./rel` bind | `subPath: rel` on `spec.volumes[0]`; `.` mounts the whole volume |
//! | absolute / `~/` bind of a data directory (`/etc/pihole`, `~/data`) | `subPath: _host/etc/pihole` / `_home/data` on `spec.volumes[0]`, with a warning naming the mapping (see [`bind_on_disk`]) |
//! | bind of the host's sockets, devices, kernel interfaces (`/var/run/docker.sock`, `/run/…`, `/dev/…`, `/proc`, `/sys`, `/`) | error saying why |
//! | bind of `/etc/localtime`, `/etc/timezone` | left out, warning (set `TZ`) |
//! | directory bind with `spec.files.mounts` entries under its [`project_path`] | one projected volume, read-only, each entry at its relative path (what `apply` makes of a small `:ro` directory) |
//! | `name[/sub]`, `volume.subpath` | the app volume `name` (must be in `spec.volumes`), `subPath: sub`; warning unless `nocopy` (Kubernetes does not copy the image's files into a new volume) |
//! | sub-directories | init container `init-volume-subpaths` (`busybox:1.35`): `mkdir -p -m 1777 /work/<vol>/<sub>…` (under `spec.podSecurity: restricted` as UID 65534 in the Pod's `fsGroup`) |
//! | bind whose source is a `spec.files.mounts` path (see [`project_path`]) | the file, read-only, from that Secret/ConfigMap key |
//! | anonymous volume / `tmpfs` / `shm_size` | emptyDir (warning) / emptyDir `Memory` with `sizeLimit` / emptyDir `Memory` at `/dev/shm` |
//! | `env_file` | derived Secret `<app>-<service>-env` (dotenv parsed; later files win; keys set by `environment` left out) + `envFrom`; each file from the `spec.files.mounts` entry at its [`project_path`]; missing → error unless `required: false` |
//! | `environment` | `env`, sorted; wins over `envFrom` as over `env_file` in compose; an entry whose value used a secret-held variable is a `secretKeyRef` into the derived Secret `<app>-environment` (key `<service>.<KEY>`) |
//! | `spec.compose.envFrom` | the `${VAR}` interpolation variables (each key of each Secret/ConfigMap, later entries win, `prefix`, `optional`); Secret-held values never appear in plain text: besides `environment` entries, configs using them go to the Secret `<app>-configs`, and any other field using one is a warning naming it |
//! | `configs` / `secrets` (`file`, `content`, `environment`) | ConfigMap `<app>-configs` (Secret `<app>-configs` when read from a Secret) / Secret `<app>-secrets`, one key per name, mounted with `subPath` and `defaultMode` (`mode`, default 0444); `external` → error; `uid`/`gid` → warning |
//! | other `spec.files.mounts` entries | mounted read-only at `path` in every service container, `defaultMode` = `mode` (default 0644) |
//! | `entrypoint` / `command` | `command` / `args` (`$` doubled where Kubernetes would expand `$(…)`) |
//! | `healthcheck` | readinessProbe + livenessProbe (exec; `CMD-SHELL` as `/bin/sh -c`; interval → periodSeconds, timeout → timeoutSeconds, retries → failureThreshold, start_period → liveness initialDelaySeconds) |
//! | `depends_on` (`service_started`/`service_healthy`) | the dependency becomes a native sidecar (init container, `restartPolicy: Always`), init containers in dependency order; `service_healthy` adds a startupProbe (every `start_interval`, for `start_period` + `retries` × `interval`) |
//! | `depends_on` (`service_completed_successfully`) | the dependency becomes a plain init container (run to completion; its healthcheck is dropped with a warning) |
//! | dependency cycle | error naming the cycle |
//! | `deploy.resources` (`cpus`, `mem_limit`, …) | `resources.limits` / `resources.requests` |
//! | `user` `uid[:gid]` | `securityContext.runAsUser`/`runAsGroup` (`root` is 0; other names → warning) |
//! | `cap_add` / `cap_drop` / `privileged` / `read_only` | `securityContext.capabilities` / `privileged` / `readOnlyRootFilesystem` |
//! | `working_dir` / `stdin_open` / `tty` / `pull_policy` | `workingDir` / `stdin` / `tty` / `imagePullPolicy` |
//! | `stop_grace_period` | Pod `terminationGracePeriodSeconds` (the longest) |
//! | `extra_hosts` | Pod `hostAliases` (`host-gateway` → warning) |
//! | `restart: no`/`on-failure` | warning: a Deployment's containers always restart |
//! | `labels`, `annotations`, `hostname`, `profiles`, `build` with `image` | warning (ignored) |
//! | `build` without `image` | error: Kompox deploys images |
//! | `spec.deployment.zone`, disk zones | required node affinity on `topology.kubernetes.io/zone` (zone numbers mapped by [`crate::provider::node_zone`]); a mismatch is a `ZoneMismatch` error |
//!
//! Always: `enableServiceLinks: false` (compose has no service-link variables),
//! `automountServiceAccountToken: false`, the pod template annotation
//! [`ENV_HASH_ANNOTATION`](crate::naming::ENV_HASH_ANNOTATION) =
//! [`crate::hash::env_hash_for_refs`] over every Secret/ConfigMap the pod references (derived
//! and sources, computed from the rendered pod spec so the webhook gets the same value).
//!
//! # Files and the project directory
//!
//! In the cluster there is no project directory. A file the compose file names (`env_file`,
//! `configs`/`secrets` `file:`, a single-file bind) comes from the `spec.files.mounts` entry
//! whose `path` is the file's [`project_path`]: absolute paths as written, relative ones under
//! [`PROJECT_DIR`] (`./gitea.env` → `/kompox/project/gitea.env`). Entries used this way are
//! not mounted at their own path; the others are mounted into every service container.
//! Env files and configs are copied into derived objects, so the Pod does not depend on the
//! source Secrets for them and their values never appear in a container's filesystem.
//!
//! # Objects
//!
//! Order: Secret, ConfigMap, PersistentVolumeClaim, Service, Deployment, Ingress (Helm's
//! install order), each kind by name. Every object carries the labels
//! `app.kubernetes.io/{name,instance}=<app>`, `app.kubernetes.io/managed-by=kompox`,
//! `kompox.dev/app=<app>` and the annotation `kompox.dev/source` naming what it came from.
//! Names longer than 63 characters are shortened with a hash
//! ([`crate::naming::truncate_with_hash`]).
//!
//! Nothing here panics on any input, and no Secret value appears in an error or warning.

mod bundle;
mod ctx;
mod files;
mod network;
mod paths;
mod pod;
pub mod podsecurity;
mod storage;
mod vars;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Serialize;
use serde_json::Value;

pub use bundle::{Bundle, fresh_pv_name};
pub use network::{
    CERT_MANAGER_CLUSTER_ISSUER, CERT_MANAGER_ISSUER, TRAEFIK_CERT_RESOLVER, TRAEFIK_ENTRYPOINTS,
    TRAEFIK_TLS,
};
pub use paths::{
    DiskBind, HOME_BIND_DIR, HOST_BIND_DIR, HostPath, HostPathKind, bind_on_disk, bind_path,
    host_paths, project_path,
};

use crate::api::{KompoxApp, KompoxDisk, PodSecurityLevel, ProviderType, condition::reasons};
pub use crate::compose::{Diagnostic, Warning};
use crate::hash::{
    HashKey, ObjectDigests, SourceKind, env_hash_for_refs, pod_spec_env_refs, rendered_hash,
};
use crate::naming::ENV_HASH_ANNOTATION;
pub use crate::well_known::{APP_LABEL, SOURCE_ANNOTATION};
use ctx::{AppMeta, Ctx, Names};
use files::{Derived, FileTable, check_size};
use vars::Variables;

/// `app.kubernetes.io/name`.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component` (on the Pod template and in selectors).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Value of [`COMPONENT_LABEL`], and the suffix of the Deployment, Service and Ingress names.
pub const COMPONENT: &str = "app";
/// The virtual project directory: relative compose paths resolve under it (see
/// [`project_path`]).
pub const PROJECT_DIR: &str = "/kompox/project";
/// The virtual home directory: `~/` bind sources resolve under it (see [`bind_path`]).
pub const HOME_DIR: &str = "/kompox/home";
/// Name of the init container that creates sub-directories on app volumes.
pub const SUBPATH_INIT_CONTAINER: &str = "init-volume-subpaths";
/// Image of that init container (`mkdir` only). 1.35, not kompoxops' 1.36: the version the
/// real-node tests run (hack/images.sh builds it from Debian's busybox-static under this name).
pub const SUBPATH_INIT_IMAGE: &str = "busybox:1.35";

/// Everything one render needs. The caller fetched it; nothing is read from anywhere else.
#[derive(Clone, Copy)]
pub struct RenderInput<'a> {
    /// The app; `metadata.name` names the objects, `metadata.namespace` (if any) is set on them.
    pub app: &'a KompoxApp,
    /// The compose file text.
    pub compose: &'a str,
    /// The KompoxDisks named by `spec.volumes[].diskRef`, by name. A missing one is a
    /// MissingReference error naming `spec.volumes[i].diskRef`.
    pub disks: &'a BTreeMap<String, KompoxDisk>,
    /// The Secrets/ConfigMaps `spec.files.mounts` name ([`referenced_sources`]).
    pub sources: &'a Sources,
    /// Facts about the cluster.
    pub cluster: &'a ClusterInfo,
    /// Plain (not secret-held) variables for `${VAR}` interpolation, over those of
    /// `spec.compose.envFrom` (the CLI's `--var`; empty in the cluster).
    pub interpolation: &'a BTreeMap<String, String>,
    /// The install's key for the env hash and the rendered hash ([`crate::hash`]).
    pub key: &'a HashKey,
}

impl fmt::Debug for RenderInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderInput")
            .field("app", &self.app.metadata.name)
            .field("compose_bytes", &self.compose.len())
            .field("disks", &self.disks.keys().collect::<Vec<_>>())
            .field("sources", &self.sources)
            .field("cluster", &self.cluster)
            .field(
                "interpolation",
                &self.interpolation.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The contents of the Secrets and ConfigMaps `spec.files.mounts` name, by name (all in the
/// app's namespace). `Debug` shows names only.
#[derive(Clone, Default, PartialEq)]
pub struct Sources {
    pub secrets: BTreeMap<String, Secret>,
    pub config_maps: BTreeMap<String, ConfigMap>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Facts about the cluster the renderer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The provider, resolved (not `auto`): it maps zone numbers to node zone labels.
    pub provider: ProviderType,
    /// The region (node label `topology.kubernetes.io/region`), needed to map zone numbers.
    pub region: Option<String>,
}

/// The Secret and ConfigMap names an app's spec refers to (in its namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRefs {
    pub secrets: BTreeSet<String>,
    /// Not including the compose ConfigMap (`spec.compose.configMapRef`).
    pub config_maps: BTreeSet<String>,
}

/// The Secrets and ConfigMaps the caller must fetch and pass as [`Sources`]: those named by
/// `spec.compose.envFrom`, `spec.envOverrides` and `spec.files.mounts`.
#[must_use]
pub fn referenced_sources(app: &KompoxApp) -> SourceRefs {
    let mut refs = SourceRefs::default();
    for e in &app.spec.compose.env_from {
        if let Some(s) = &e.secret_ref {
            refs.secrets.insert(s.name.clone());
        }
        if let Some(c) = &e.config_map_ref {
            refs.config_maps.insert(c.name.clone());
        }
    }
    for o in &app.spec.env_overrides {
        refs.secrets.insert(o.secret_ref.name.clone());
    }
    for m in app.spec.files.iter().flat_map(|f| &f.mounts) {
        if let Some(s) = &m.secret_ref {
            refs.secrets.insert(s.name.clone());
        }
        if let Some(c) = &m.config_map_ref {
            refs.config_maps.insert(c.name.clone());
        }
    }
    refs
}

/// The KompoxDisks named by `spec.volumes[].diskRef`, sorted, without duplicates.
#[must_use]
pub fn referenced_disks(app: &KompoxApp) -> Vec<String> {
    let set: BTreeSet<&str> = app
        .spec
        .volumes
        .iter()
        .map(|v| v.disk_ref.name.as_str())
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

/// A successful render: the object list, plus typed views of the parts its users act on (so
/// nobody has to find them in `objects` again by kind or annotation).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Rendered {
    /// Complete objects (apiVersion, kind, metadata with name, namespace, labels,
    /// annotations), in Helm's install order; the same input gives the same list.
    pub objects: Vec<Value>,
    /// Compose warnings, then renderer warnings; each names a path.
    pub warnings: Vec<Warning>,
    /// The pod template's `kompox.dev/env-hash`.
    pub env_hash: String,
    /// The keyed digest of `objects` ([`crate::hash::rendered_hash`], `status.renderedHash`).
    pub hash: String,
    /// The Deployment, as it appears in `objects`.
    pub deployment: Deployment,
    /// The Ingress, as it appears in `objects` (`None` without `spec.ingress.rules`).
    pub ingress: Option<Ingress>,
    /// Each `spec.volumes[i]`, in spec order, with the PVC (in `objects`) that binds its disk.
    pub volume_claims: Vec<VolumeClaim>,
}

/// One app volume and its PVC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeClaim {
    /// `spec.volumes[i].name`.
    pub volume: String,
    /// The PersistentVolumeClaim's name.
    pub claim: String,
}

impl Rendered {
    /// The Deployment's name.
    #[must_use]
    pub fn deployment_name(&self) -> &str {
        self.deployment.metadata.name.as_deref().unwrap_or_default()
    }

    /// The Ingress's name, if one is rendered.
    #[must_use]
    pub fn ingress_name(&self) -> Option<&str> {
        self.ingress
            .as_ref()
            .and_then(|i| i.metadata.name.as_deref())
    }

    /// The hosts of the Ingress rules, sorted, without duplicates (for `status.ingressHosts`).
    #[must_use]
    pub fn ingress_hosts(&self) -> Vec<String> {
        let hosts: BTreeSet<&str> = self
            .ingress
            .iter()
            .flat_map(|i| i.spec.iter().flat_map(|s| s.rules.iter().flatten()))
            .filter_map(|r| r.host.as_deref())
            .collect();
        hosts.into_iter().map(str::to_owned).collect()
    }

    /// The PVC of app volume `volume`.
    #[must_use]
    pub fn claim_of(&self, volume: &str) -> Option<&str> {
        self.volume_claims
            .iter()
            .find(|v| v.volume == volume)
            .map(|v| v.claim.as_str())
    }
}

/// Why an app could not be rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// The compose file is invalid or uses something Kompox cannot run.
    InvalidCompose,
    /// `spec.deployment.zone` and the disks' zones disagree.
    ZoneMismatch,
    /// A KompoxDisk (or its PV), Secret, ConfigMap, key, file or variable is missing.
    MissingReference,
    /// The KompoxApp (or a disk or file it points at) is invalid.
    InvalidSpec,
    /// The Pod breaks the app's Pod Security level (`spec.podSecurity`).
    PodSecurity,
}

impl ErrorReason {
    /// The condition reason (`Degraded`) for this error.
    #[must_use]
    pub const fn condition_reason(self) -> &'static str {
        match self {
            ErrorReason::InvalidCompose => reasons::INVALID_COMPOSE,
            ErrorReason::ZoneMismatch => reasons::ZONE_MISMATCH,
            ErrorReason::MissingReference => reasons::REFERENCE_NOT_FOUND,
            ErrorReason::InvalidSpec => reasons::INVALID_SPEC,
            ErrorReason::PodSecurity => reasons::POD_SECURITY_VIOLATION,
        }
    }

    /// Higher first: the reason reported when errors of several kinds are found.
    const fn rank(self) -> u8 {
        match self {
            ErrorReason::InvalidSpec => 4,
            ErrorReason::InvalidCompose => 3,
            ErrorReason::PodSecurity => 2,
            ErrorReason::ZoneMismatch => 1,
            ErrorReason::MissingReference => 0,
        }
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorReason::InvalidCompose => "InvalidCompose",
            ErrorReason::ZoneMismatch => "ZoneMismatch",
            ErrorReason::MissingReference => "MissingReference",
            ErrorReason::InvalidSpec => "InvalidSpec",
            ErrorReason::PodSecurity => "PodSecurity",
        })
    }
}

/// Every problem found, each naming its path; `Display` prints one `path: message` per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RenderError {
    /// Never empty, in the order found.
    pub errors: Vec<Diagnostic>,
    /// The most fundamental kind among the errors: InvalidSpec, then InvalidCompose, then
    /// ZoneMismatch, then MissingReference (the one most likely to resolve by itself).
    pub reason: ErrorReason,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::compose::write_lines(f, &self.errors)
    }
}

fn fail(cx: Ctx) -> RenderError {
    let reason = cx
        .errors
        .iter()
        .map(|(r, _)| *r)
        .max_by_key(|r| r.rank())
        .unwrap_or(ErrorReason::InvalidSpec);
    RenderError {
        errors: cx.errors.into_iter().map(|(_, d)| d).collect(),
        reason,
    }
}

/// Renders an app (see the module docs for the conversion).
///
/// # Errors
///
/// [`RenderError`] listing every problem found, each naming its path, with the
/// [`ErrorReason`] the controller reports.
pub fn render(input: &RenderInput) -> Result<Rendered, RenderError> {
    let mut cx = Ctx::default();
    let app = input.app;
    let name = app.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        cx.error(ErrorReason::InvalidSpec, "metadata.name", "required");
    } else if let Err(e) = crate::naming::validate_dns1123_subdomain(name) {
        cx.error(ErrorReason::InvalidSpec, "metadata.name", e.to_string());
    }
    match app.spec.validate() {
        Ok(()) => {}
        Err(crate::api::Error::Invalid(errs)) => {
            for e in errs {
                cx.error(ErrorReason::InvalidSpec, e.field, e.message);
            }
        }
        Err(e) => cx.error(ErrorReason::InvalidSpec, "spec", e.to_string()),
    }
    let vars = Variables::gather(&mut cx, app, input.sources, input.interpolation);
    let parsed =
        match crate::compose::parse_with(input.compose, &|k| vars.get(k), &|k| vars.is_secret(k)) {
            Ok(p) => Some(p),
            Err(e) => {
                for mut d in e.errors {
                    hide_var_values(&mut d.message, input.interpolation);
                    cx.error(ErrorReason::InvalidCompose, d.path, d.message);
                }
                None
            }
        };
    let Some(parsed) = parsed.filter(|_| !cx.has_errors()) else {
        return Err(fail(cx));
    };
    let interpolations = &parsed.interpolations;
    let project = &parsed.project;
    let meta = AppMeta::new(name, app.metadata.namespace.as_deref());
    cx.warnings = parsed.warnings.clone();
    secret_use_warnings(&mut cx, project, interpolations);
    let result = render_parsed(&mut cx, input, &vars, project, interpolations, &meta);
    // Errors and warnings about interpolated compose fields name the variables and never
    // show a secret-held value.
    for (_, d) in &mut cx.errors {
        interpolations.explain(&d.path, &mut d.message);
        hide_var_values(&mut d.message, input.interpolation);
    }
    for w in &mut cx.warnings {
        interpolations.redact(&w.path, &mut w.message);
        hide_var_values(&mut w.message, input.interpolation);
    }
    match result {
        Some(mut r) if !cx.has_errors() => {
            r.warnings = cx.warnings;
            Ok(r)
        }
        _ => Err(fail(cx)),
    }
}

/// Shows `${NAME}` instead of the value of each `interpolation` variable (the CLI's `--var`,
/// which may hold a secret too) inside the quoted parts of `message`, so no error or warning
/// quotes such a value. Values shorter than 3 characters are left (they would match too much).
fn hide_var_values(message: &mut String, vars: &BTreeMap<String, String>) {
    if vars.is_empty() || !message.contains('"') {
        return;
    }
    let mut by_len: Vec<(&String, &String)> = vars
        .iter()
        .filter(|(_, v)| v.chars().count() >= 3)
        .collect();
    by_len.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        if i % 2 == 1 {
            let mut p = part.to_owned();
            for (name, value) in &by_len {
                p = p.replace(value.as_str(), &format!("${{{name}}}"));
            }
            out.push_str(&p);
        } else {
            out.push_str(part);
        }
    }
    *message = out;
}

/// Under `restricted`, warns for each service that names no numeric user: the Pod runs as
/// non-root, so an image whose user is root or a name does not start (the kubelet cannot
/// verify a name is not root and refuses it), which no render can see.
fn unknown_users(
    cx: &mut Ctx,
    pod: &k8s_openapi::api::core::v1::PodSpec,
    project: &crate::compose::Project,
    names: &Names,
) {
    let pod_user = pod.security_context.as_ref().and_then(|p| p.run_as_user);
    for s in project.services.keys() {
        let container = names.container(s);
        // A service others wait for runs as a native sidecar (an init container).
        let user = pod
            .init_containers
            .iter()
            .flatten()
            .chain(&pod.containers)
            .find(|c| c.name == container)
            .and_then(|c| c.security_context.as_ref()?.run_as_user)
            .or(pod_user);
        if user.is_none() {
            cx.warn(
                format!("{}.user", crate::compose::service_path(s)),
                "not set: under spec.podSecurity: restricted the kubelet starts the container only if its image's USER is a non-zero number (root or a user name such as git is refused); give a numeric user (user: \"1000:1000\")".to_owned(),
            );
        }
    }
}

/// Records an error for each rule of `level` the rendered Pod breaks, naming the compose
/// field it came from (`services.web.privileged`, `services.web.cap_add[0]`,
/// `services.web.user`), or the Pod field for what Kompox itself set.
fn pod_security(
    cx: &mut Ctx,
    level: PodSecurityLevel,
    pod: &k8s_openapi::api::core::v1::PodSpec,
    project: &crate::compose::Project,
    names: &Names,
) {
    use podsecurity::Field;
    let service_of = |container: &str| {
        project
            .services
            .keys()
            .find(|s| names.container(s) == container)
    };
    let advice = match level {
        PodSecurityLevel::Restricted => "; spec.podSecurity: baseline allows less hardened Pods",
        _ => {
            "; only a cluster admin can allow it, with spec.podSecurity: privileged (docs/security.md)"
        }
    };
    for v in podsecurity::check(level, pod) {
        let svc = v.container.as_deref().and_then(service_of);
        let path = match (svc, v.field) {
            (Some(s), Field::Privileged) => {
                format!("{}.privileged", crate::compose::service_path(s))
            }
            (Some(s), Field::CapabilityAdded(i)) => {
                format!("{}.cap_add[{i}]", crate::compose::service_path(s))
            }
            (Some(s), Field::User) => format!("{}.user", crate::compose::service_path(s)),
            (Some(s), Field::Other) => {
                format!("{} (Pod {})", crate::compose::service_path(s), v.path)
            }
            (None, _) => format!("Pod {}", v.path),
        };
        cx.error(
            ErrorReason::PodSecurity,
            path,
            format!(
                "{} at Pod Security level {:?} (spec.podSecurity){advice}",
                v.message,
                level.as_str()
            ),
        );
    }
}

/// Warns about every compose field other than an `environment` entry (kept in a Secret),
/// a config's `content` (moved to a Secret) or a compose secret that used a secret-held
/// variable: its value shows in plain text in the rendered objects. An image reference and
/// a volume entry (a bind source, a path) are left out: they hold no credential, and `apply`
/// keeps every variable of `.env` in a Secret, so `image: app:${TAG}` or
/// `${UPLOAD_LOCATION}:/data` (as published compose files write them) would warn for nothing.
fn secret_use_warnings(
    cx: &mut Ctx,
    project: &crate::compose::Project,
    interpolations: &crate::compose::Interpolations,
) {
    use crate::compose::child;
    let config_contents: BTreeSet<String> = project
        .configs
        .keys()
        .map(|n| child(&child("configs", n), "content"))
        .collect();
    for (path, origin) in interpolations.secret_uses() {
        let in_secret = origin.kept_in_secret()
            || config_contents.contains(path)
            || path.starts_with("secrets.")
            || path.starts_with("secrets[");
        if in_secret || no_credential(path) {
            continue;
        }
        let names: Vec<String> = origin.secret.iter().map(|n| format!("${{{n}}}")).collect();
        cx.warn(
            path,
            format!(
                "uses the secret-held variable {}: its value is in plain text in the rendered objects (only environment entries, configs and secrets are kept in Secrets)",
                names.join(", ")
            ),
        );
    }
}

/// `spec.envOverrides`: per compose service, the Secret and its keys (the variables it sets
/// over `environment`). A service the compose file lacks or a Secret that does not exist is an
/// error naming the entry; a key that is no environment variable name is refused, naming the
/// key (never a value).
fn env_overrides(
    cx: &mut Ctx,
    app: &KompoxApp,
    project: &crate::compose::Project,
    sources: &Sources,
) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for (i, o) in app.spec.env_overrides.iter().enumerate() {
        let field = format!("spec.envOverrides[{i}]");
        if !project.services.contains_key(&o.service) {
            cx.error(
                ErrorReason::InvalidSpec,
                format!("{field}.service"),
                format!("no service {:?} in the compose file", o.service),
            );
            continue;
        }
        let name = &o.secret_ref.name;
        let Some(secret) = sources.secrets.get(name) else {
            cx.error(
                ErrorReason::MissingReference,
                format!("{field}.secretRef.name"),
                format!("Secret {name:?} not found"),
            );
            continue;
        };
        let keys: BTreeSet<String> = secret
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(secret.string_data.iter().flat_map(|d| d.keys()))
            .cloned()
            .collect();
        for k in &keys {
            if !crate::naming::is_env_var_name(k) {
                cx.error(
                    ErrorReason::InvalidSpec,
                    format!("{field}.secretRef.name"),
                    format!("Secret {name:?} key {k:?} is not an environment variable name"),
                );
            }
        }
        out.insert(o.service.clone(), (name.clone(), keys));
    }
    out
}

/// Whether a service field holds no credential whatever its value: `image`, and a
/// `volumes` entry (short syntax) or its `source`.
fn no_credential(path: &str) -> bool {
    if !path.starts_with("services") {
        return false;
    }
    if path.ends_with(".image") {
        return true;
    }
    let Some((_, rest)) = path.rsplit_once(".volumes[") else {
        return false;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest == "]" || rest == "].source"
}

/// The render proper, once the compose file parsed: `None` when errors were recorded.
fn render_parsed(
    cx: &mut Ctx,
    input: &RenderInput,
    vars: &Variables,
    project: &crate::compose::Project,
    interpolations: &crate::compose::Interpolations,
    meta: &AppMeta,
) -> Option<Rendered> {
    let app = input.app;

    let names = Names::new(
        project.services.keys().map(String::as_str),
        app.spec.volumes.iter().map(|v| v.name.as_str()),
    );
    let mut files = FileTable::resolve(cx, app, input.sources);
    let storage = storage::plan(cx, meta, &names, app, input.disks, input.cluster);

    // Derived objects: env Secrets per service, configs and secrets.
    let mut secrets: Vec<Secret> = Vec::new();
    let mut config_maps: Vec<ConfigMap> = Vec::new();
    let mut env_secrets = BTreeMap::new();
    for (sname, svc) in &project.services {
        if let Some(data) = files::env_file_data(cx, &mut files, sname, svc, vars) {
            let obj = meta.object_name(&format!("{}-env", names.container(sname)));
            let bytes: BTreeMap<String, Vec<u8>> =
                data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            let field = format!("{}.env_file", crate::compose::service_path(sname));
            check_size(cx, &field, &format!("Secret {obj:?}"), &bytes);
            secrets.push(secret(meta, &obj, &field, bytes));
            env_secrets.insert(sname.clone(), obj);
        }
    }
    let configs_name = meta.object_name("configs");
    let secrets_name = meta.object_name("secrets");
    let mut derived = Derived::default();
    for secret in [false, true] {
        files::resolve_compose_files(
            cx,
            &mut files,
            &mut derived,
            project,
            secret,
            vars,
            interpolations,
            &configs_name,
            &secrets_name,
        );
    }
    // `environment` entries that use secret-held variables: one derived Secret, read with
    // secretKeyRef.
    let env_name = meta.object_name(ENVIRONMENT_SECRET);
    let mut env_refs: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    let mut env_data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (sname, svc) in &project.services {
        for k in &svc.secret_environment {
            let Some(v) = svc.environment.get(k) else {
                continue;
            };
            let key = environment_key(sname, k);
            env_data.insert(key.clone(), v.clone().into_bytes());
            env_refs.insert((sname.clone(), k.clone()), (env_name.clone(), key));
        }
    }
    if !env_data.is_empty() {
        let field = "services.*.environment";
        check_size(cx, field, &format!("Secret {env_name:?}"), &env_data);
        secrets.push(secret(meta, &env_name, field, env_data));
    }
    let d = std::mem::take(&mut derived.configs);
    if !d.is_empty() {
        check_size(cx, "configs", &format!("ConfigMap {configs_name:?}"), &d);
        config_maps.push(config_map(meta, &configs_name, "configs", d));
    }
    for (data, obj, field) in [
        (
            std::mem::take(&mut derived.secret_configs),
            &configs_name,
            "configs",
        ),
        (
            std::mem::take(&mut derived.secrets),
            &secrets_name,
            "secrets",
        ),
    ] {
        if !data.is_empty() {
            check_size(cx, field, &format!("Secret {obj:?}"), &data);
            secrets.push(secret(meta, obj, field, data));
        }
    }

    let env_overrides = env_overrides(cx, app, project, input.sources);

    let network = network::plan(cx, meta, &names, app, project);
    let hosts = pod::hosts(cx, project, &names, &meta.object_name("hosts"), &meta.name);
    if let (Some(file), Some(text)) = (&hosts.file, &hosts.file_content) {
        config_maps.push(config_map(
            meta,
            &file.name,
            "services",
            BTreeMap::from([(pod::HOSTS_KEY.to_owned(), text.clone().into_bytes())]),
        ));
    }
    let pod = pod::build(
        cx,
        &pod::PodInputs {
            project,
            storage: &storage,
            spec_volumes: app.spec.volumes.iter().map(|v| v.name.as_str()).collect(),
            env_secrets: &env_secrets,
            env_refs: &env_refs,
            env_overrides: &env_overrides,
            image_pull_secrets: &app.spec.image_pull_secrets,
            derived: &derived,
            names: &names,
            hosts: &hosts,
        },
        &mut files,
    );

    // A source object with the name of a generated one would be overwritten.
    let generated: BTreeSet<(SourceKind, &str)> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.as_deref().map(|n| (SourceKind::Secret, n)))
        .chain(config_maps.iter().filter_map(|c| {
            c.metadata
                .name
                .as_deref()
                .map(|n| (SourceKind::ConfigMap, n))
        }))
        .collect();
    let mut clashes = Vec::new();
    for (entry, kind, n) in files.source_names() {
        if generated.contains(&(kind, n)) {
            let r = match kind {
                SourceKind::Secret => "secretRef",
                SourceKind::ConfigMap => "configMapRef",
            };
            clashes.push((
                format!("{}.{r}.name", entry.field),
                format!(
                    "{kind} {n:?} has the name of a {kind} Kompox generates for this app: rename it"
                ),
            ));
        }
    }
    for (p, m) in clashes {
        cx.error(ErrorReason::InvalidSpec, p, m);
    }

    let mut pod = pod.filter(|_| !cx.has_errors())?;
    // The app's Pod Security level: restricted's required settings, then the check.
    let level = app.spec.pod_security;
    if level == PodSecurityLevel::Restricted {
        podsecurity::harden(&mut pod);
        unknown_users(cx, &pod, project, &names);
    }
    pod_security(cx, level, &pod, project, &names);
    if cx.has_errors() {
        return None;
    }

    // The env hash, computed from the pod spec like the webhook does.
    let mut digests: BTreeMap<(SourceKind, String), ObjectDigests> = BTreeMap::new();
    for s in input.sources.secrets.values() {
        let d = ObjectDigests::from_secret(s);
        digests.insert((SourceKind::Secret, d.name.clone()), d);
    }
    for c in input.sources.config_maps.values() {
        let d = ObjectDigests::from_config_map(c);
        digests.insert((SourceKind::ConfigMap, d.name.clone()), d);
    }
    for s in &secrets {
        let d = ObjectDigests::from_secret(s);
        digests.insert((SourceKind::Secret, d.name.clone()), d);
    }
    for c in &config_maps {
        let d = ObjectDigests::from_config_map(c);
        digests.insert((SourceKind::ConfigMap, d.name.clone()), d);
    }
    let namespace = meta.namespace.clone().unwrap_or_default();
    let env_hash = env_hash_for_refs(
        input.key,
        &namespace,
        &pod_spec_env_refs(&pod),
        |kind, n| digests.get(&(kind, n.to_owned())),
    );

    let dep_name = meta.object_name(COMPONENT);
    let deployment = Deployment {
        metadata: meta.meta(&dep_name, "services"),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(meta.selector()),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta.pod_labels()),
                    annotations: Some(BTreeMap::from([(
                        ENV_HASH_ANNOTATION.to_owned(),
                        env_hash.clone(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };

    let mut objects: Vec<Value> = Vec::new();
    let mut push = |cx: &mut Ctx, obj: &dyn erased::Ser| match obj.value() {
        Ok(v) => objects.push(v),
        Err(e) => cx.error(ErrorReason::InvalidSpec, "", format!("internal: {e}")),
    };
    for s in &secrets {
        push(cx, s);
    }
    for c in &config_maps {
        push(cx, c);
    }
    for p in &storage.pvcs {
        push(cx, p);
    }
    for s in &network.services {
        push(cx, s);
    }
    push(cx, &deployment);
    if let Some(i) = &network.ingress {
        push(cx, i);
    }
    if cx.has_errors() {
        return None;
    }
    objects.sort_by_key(sort_key);
    let all = Value::Array(objects);
    let hash = rendered_hash(input.key, &all);
    let Value::Array(objects) = all else {
        return None;
    };
    let volume_claims = storage
        .volumes
        .into_iter()
        .map(|v| VolumeClaim {
            volume: v.name,
            claim: v.claim,
        })
        .collect();
    Some(Rendered {
        objects,
        warnings: Vec::new(),
        env_hash,
        hash,
        deployment,
        ingress: network.ingress,
        volume_claims,
    })
}

/// `objects` as a multi-document YAML stream (`---` between documents, a final newline):
/// the form the CLI prints and the samples' golden files hold.
///
/// # Errors
///
/// The serializer's message if a value cannot be written as YAML.
pub fn yaml_stream(objects: &[Value]) -> Result<String, String> {
    let mut s = serde_saphyr::to_string_multiple(objects).map_err(|e| e.to_string())?;
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// Suffix of the derived Secret holding `environment` values that use secret-held variables.
pub const ENVIRONMENT_SECRET: &str = "environment";

/// The key of `environment` entry `key` of service `service` in that Secret:
/// `<service>.<key>`, or `<service>.env-<hash>` when `key` is not a valid Secret key.
fn environment_key(service: &str, key: &str) -> String {
    let k = format!("{service}.{key}");
    let valid = k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid {
        k
    } else {
        format!(
            "{}.env-{}",
            crate::naming::sanitize_label(service, 40),
            crate::naming::short_hash(key)
        )
    }
}

/// Kinds in Helm's install order.
const KIND_ORDER: [&str; 6] = [
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "Ingress",
];

fn sort_key(v: &Value) -> (usize, String) {
    let kind = v["kind"].as_str().unwrap_or_default();
    let rank = KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len());
    (
        rank,
        v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn secret(meta: &AppMeta, name: &str, source: &str, data: BTreeMap<String, Vec<u8>>) -> Secret {
    Secret {
        metadata: meta.meta(name, source),
        type_: Some("Opaque".to_owned()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Secret::default()
    }
}

fn config_map(
    meta: &AppMeta,
    name: &str,
    source: &str,
    data: BTreeMap<String, Vec<u8>>,
) -> ConfigMap {
    let mut text = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (k, v) in data {
        match String::from_utf8(v) {
            Ok(s) => {
                text.insert(k, s);
            }
            Err(e) => {
                binary.insert(k, ByteString(e.into_bytes()));
            }
        }
    }
    ConfigMap {
        metadata: meta.meta(name, source),
        data: (!text.is_empty()).then_some(text),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..ConfigMap::default()
    }
}

mod erased {
    /// Serialize-to-JSON for the objects pushed into the output list.
    pub trait Ser {
        fn value(&self) -> Result<serde_json::Value, serde_json::Error>;
    }
    impl<T: super::Serialize> Ser for T {
        fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(self)
        }
    }
}
