//! The typed compose model produced by [`parse`](super::parse).
//!
//! Everything here has been validated: names are valid, references resolve, units are
//! parsed. Maps are `BTreeMap`s so that iteration (and anything rendered from it) is
//! deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A whole compose file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Project {
    /// Top-level `name`, if given.
    pub name: Option<String>,
    /// Services by name (compose names: `[a-zA-Z0-9._-]+`).
    pub services: BTreeMap<String, Service>,
    /// Top-level `volumes` by name.
    pub volumes: BTreeMap<String, VolumeDef>,
    /// Top-level `configs` by name.
    pub configs: BTreeMap<String, FileObjectDef>,
    /// Top-level `secrets` by name.
    pub secrets: BTreeMap<String, FileObjectDef>,
}

impl Project {
    /// The services `name` depends on that `keep` admits, in name order.
    pub(crate) fn depends_on<'p>(
        &'p self,
        name: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<&'p str> {
        self.services
            .get(name)
            .map(|s| {
                s.depends_on
                    .keys()
                    .map(String::as_str)
                    .filter(|d| keep(d))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    pub image: Option<String>,
    /// Recorded only: Kompox does not build images (the renderer refuses build without image).
    pub build: Option<Build>,
    /// `None`: keep the image's CMD. String form is split into words as compose splits it.
    pub command: Option<Vec<String>>,
    /// `None`: keep the image's ENTRYPOINT. String form is split into words as compose splits it.
    pub entrypoint: Option<Vec<String>>,
    /// Resolved `environment` (a `null` value is looked up in the interpolation env and
    /// dropped when unset). Applied on top of `env_file`.
    pub environment: BTreeMap<String, String>,
    /// The `environment` keys whose values came from secret-held variables (see
    /// [`parse_with`](super::parse_with)): the renderer keeps them in a Secret.
    pub secret_environment: BTreeSet<String>,
    /// `env_file` entries in order (later files override earlier ones). Core reads no files.
    pub env_file: Vec<EnvFile>,
    /// `ports`, with ranges expanded to one entry per port.
    pub ports: Vec<Port>,
    /// `expose`, with ranges expanded.
    pub expose: Vec<ExposedPort>,
    /// `volumes` plus `tmpfs`, in file order.
    pub mounts: Vec<Mount>,
    pub configs: Vec<FileMount>,
    pub secrets: Vec<FileMount>,
    pub healthcheck: Option<Healthcheck>,
    /// Services this one depends on, by name (all declared services).
    pub depends_on: BTreeMap<String, Dependency>,
    /// `deploy.resources` (also fed by the legacy `cpus`, `mem_limit`, `mem_reservation`).
    pub resources: Resources,
    /// `deploy.replicas` / `scale` (anything but 1 draws a warning).
    pub replicas: Option<u32>,
    pub user: Option<User>,
    pub working_dir: Option<String>,
    pub restart: Option<Restart>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub stdin_open: bool,
    pub tty: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub stop_grace_period: Option<Duration>,
    /// `extra_hosts` as (hostname, IP) pairs in file order.
    pub extra_hosts: Vec<(String, String)>,
    /// `shm_size` in bytes.
    pub shm_size: Option<u64>,
    /// `profiles`: a service with profiles is optional in compose; the caller decides.
    pub profiles: Vec<String>,
    /// `pull_policy` as written (`always`, `never`, `missing`, `if_not_present`, `build`, …).
    pub pull_policy: Option<String>,
    /// `x-kompox`: what `apply`/`render` without `--app` make of the service.
    pub kompox: KompoxService,
}

/// `build`, recorded as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Build {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
}

/// One `env_file` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// The path as written (relative to the project directory unless absolute).
    pub path: String,
    /// `required` (default true): a missing required file is an error for the caller.
    pub required: bool,
    /// `format` (e.g. `raw`), if given.
    pub format: Option<String>,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The lower-case compose spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One published (or merely declared) container port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port, if published.
    pub published: Option<u16>,
    pub host_ip: Option<String>,
    pub protocol: Protocol,
    pub name: Option<String>,
    pub app_protocol: Option<String>,
    /// `host` or `ingress`, if given.
    pub mode: Option<String>,
}

/// One `expose` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExposedPort {
    pub port: u16,
    pub protocol: Protocol,
}

/// What a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A bind mount of a path inside the project directory, normalized (`./data/` → `data`,
    /// the project directory itself → `.`). Never escapes the project directory.
    RelativeBind { path: String },
    /// A bind mount of an absolute host path, normalized.
    AbsoluteBind { path: String },
    /// A bind mount of a path in the user's home directory (`~/data`, `~`), normalized
    /// relative to it (`data`, `.`). Never escapes the home directory.
    HomeBind { path: String },
    /// A named volume declared at top level, optionally a sub-directory of it
    /// (`name/sub` short syntax or `volume.subpath`).
    Volume {
        name: String,
        subpath: Option<String>,
    },
    /// An anonymous volume (`- /data`, or `type: volume` without source).
    Anonymous,
    /// A tmpfs (`type: tmpfs` or the service's `tmpfs` list), with its size limit in bytes.
    Tmpfs { size: Option<u64> },
}

/// A service mount (`volumes` or `tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
    /// `nocopy` (volume option): do not copy image content into a fresh volume.
    pub nocopy: bool,
    /// `bind.create_host_path` (defaults to true in the short syntax, as in compose).
    pub create_host_path: bool,
}

/// A `configs` or `secrets` entry in a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// Name of the top-level config/secret.
    pub source: String,
    /// Absolute path in the container. Defaults: `/<source>` for configs,
    /// `/run/secrets/<source>` for secrets (a relative secret target is under `/run/secrets/`).
    pub target: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// File mode (`0440` is read as octal).
    pub mode: Option<u32>,
}

/// A `healthcheck`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `None`: keep the image's HEALTHCHECK test.
    pub test: Option<HealthTest>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    /// `disable: true` or `test: ["NONE"]`.
    pub disable: bool,
}

/// A healthcheck test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `["CMD", args…]`: run directly.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", "…"]` or a plain string: run with `/bin/sh -c`.
    Shell(String),
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DependencyCondition {
    #[default]
    Started,
    Healthy,
    CompletedSuccessfully,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    pub condition: DependencyCondition,
    /// Default true.
    pub required: bool,
    /// Default false.
    pub restart: bool,
}

impl Default for Dependency {
    fn default() -> Self {
        Dependency {
            condition: DependencyCondition::Started,
            required: true,
            restart: false,
        }
    }
}

/// CPU and memory of a service. A zero value in compose means "no limit" and is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub limits: ResourceSpec,
    pub reservations: ResourceSpec,
}

/// One of `limits` / `reservations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceSpec {
    /// CPUs in millicores (`"0.5"` → 500).
    pub millicpus: Option<u64>,
    /// Memory in bytes (`512M` → 536870912).
    pub memory: Option<u64>,
}

/// A user or group, numeric or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOrName {
    Id(u32),
    Name(String),
}

/// `user`: `"1000"`, `"1000:1000"`, `"name"`, `"name:group"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user: IdOrName,
    pub group: Option<IdOrName>,
}

/// `restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    OnFailure { max_retries: Option<u32> },
    UnlessStopped,
}

/// A top-level `volumes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeDef {
    pub external: bool,
    /// `name`: the real volume name, if different from the key.
    pub name: Option<String>,
    /// `driver` (warned: ignored).
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `x-kompox`: what `apply`/`render` without `--app` make of the volume.
    pub kompox: KompoxVolume,
}

/// `volumes.<name>.x-kompox`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KompoxVolume {
    /// `size`: the size of the KompoxDisk made for the volume (a Kubernetes quantity).
    pub size: Option<String>,
}

/// `services.<name>.x-kompox`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KompoxService {
    /// `host` / `hosts`: host names routed to the service by an ingress rule.
    pub hosts: Vec<String>,
    /// `port`: the published port the hosts go to (needed when the service publishes
    /// several).
    pub port: Option<u16>,
}

/// Where a top-level config's or secret's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileObjectSource {
    /// `file`: relative to the project directory (normalized, never escaping it) or absolute.
    File(String),
    /// `content` (configs only): inline content.
    Content(String),
    /// `environment`: the value of this variable (the caller resolves it).
    Environment(String),
    /// `external: true`: exists already, named `name` or the key.
    External,
}

/// A top-level `configs` or `secrets` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObjectDef {
    pub source: FileObjectSource,
    /// `name`, if given.
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}
