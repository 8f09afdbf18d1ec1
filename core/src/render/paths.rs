//! What a compose path means on the cluster: the `spec.files.mounts` path a compose file
//! path must have ([`project_path`]), where a bind source lives ([`bind_path`],
//! [`bind_on_disk`]), the host paths a project names ([`host_paths`]) and the compose field
//! of each mount ([`mount_fields`]).

use super::{HOME_DIR, PROJECT_DIR};
use crate::compose::{FileObjectSource, MountSource, Project, Service};

/// Where a compose path points once resolved: the path a `spec.files.mounts` entry must have
/// to provide it. Absolute paths are normalized; relative ones are taken from
/// [`PROJECT_DIR`]. `None` when the path leaves the root or the project directory, or names
/// a directory (`/`, `.`).
///
/// ```
/// use kompox_core::render::project_path;
/// assert_eq!(project_path("./gitea.env").as_deref(), Some("/kompox/project/gitea.env"));
/// assert_eq!(project_path("env/../db.env").as_deref(), Some("/kompox/project/db.env"));
/// assert_eq!(project_path("/etc/kompox//app.env").as_deref(), Some("/etc/kompox/app.env"));
/// assert_eq!(project_path("../outside.env"), None);
/// ```
#[must_use]
pub fn project_path(path: &str) -> Option<String> {
    let (mut parts, floor): (Vec<&str>, usize) = if path.starts_with('/') {
        (Vec::new(), 0)
    } else {
        let base: Vec<&str> = PROJECT_DIR.split('/').filter(|p| !p.is_empty()).collect();
        let n = base.len();
        (base, n)
    };
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.len() <= floor {
                    return None;
                }
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.len() <= floor {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// The `spec.files.mounts` path that provides a bind source: [`project_path`] for relative
/// and absolute binds; for `~/` binds the path under [`HOME_DIR`] (`~/.config/app.conf` →
/// `/kompox/home/.config/app.conf`), `None` when it leaves the home directory. `None` for
/// mounts that are not binds.
///
/// ```
/// use kompox_core::compose::MountSource;
/// use kompox_core::render::bind_path;
/// let home = |p: &str| MountSource::HomeBind { path: p.into() };
/// assert_eq!(bind_path(&home(".config/app.conf")).as_deref(), Some("/kompox/home/.config/app.conf"));
/// assert_eq!(bind_path(&home("../root")), None);
/// ```
#[must_use]
pub fn bind_path(source: &MountSource) -> Option<String> {
    match source {
        MountSource::RelativeBind { path } | MountSource::AbsoluteBind { path } => {
            project_path(path)
        }
        MountSource::HomeBind { path } => {
            let mut parts: Vec<&str> = Vec::new();
            for c in path.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        parts.pop()?;
                    }
                    c => parts.push(c),
                }
            }
            (!parts.is_empty()).then(|| format!("{HOME_DIR}/{}", parts.join("/")))
        }
        MountSource::Volume { .. } | MountSource::Anonymous | MountSource::Tmpfs { .. } => None,
    }
}

/// Where a bind that no `spec.files.mounts` entry provides goes (see [`bind_on_disk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskBind {
    /// A directory on the app's first volume (`spec.volumes[0]`, the default disk):
    /// `subpath` on it (`None`: the whole volume); `host` for absolute and `~/` binds, which
    /// the renderer warns about.
    Directory { subpath: Option<String>, host: bool },
    /// A host system file that has no meaning in a Pod (the host's time zone): left out with
    /// a warning saying what to do instead.
    Dropped(&'static str),
    /// Refused: the host's sockets, devices or kernel interfaces. The text says why.
    Refused(&'static str),
}

/// Directory on the default disk under which absolute binds live (`/etc/pihole` →
/// `_host/etc/pihole`).
pub const HOST_BIND_DIR: &str = "_host";
/// Directory on the default disk under which `~/` binds live (`~/data` → `_home/data`).
pub const HOME_BIND_DIR: &str = "_home";

/// Host paths refused as bind sources, by prefix, with the reason.
const REFUSED_HOST_PATHS: &[(&str, &str)] = &[
    (
        "/var/run/docker.sock",
        "the Docker daemon's socket: a Pod has no Docker daemon, and Kompox gives containers no access to the node",
    ),
    (
        "/run",
        "runtime sockets and state of the host (such as the Docker daemon's socket): a Pod has no access to the node's",
    ),
    (
        "/var/run",
        "runtime sockets and state of the host (such as the Docker daemon's socket): a Pod has no access to the node's",
    ),
    (
        "/dev",
        "the host's devices: Kompox gives containers no access to the node's devices",
    ),
    (
        "/proc",
        "the host kernel's process interface: a container sees its own /proc",
    ),
    (
        "/sys",
        "the host kernel's interfaces: Kompox gives containers no access to the node's",
    ),
    (
        "/var/lib/docker",
        "the Docker daemon's data: a Pod has no Docker daemon",
    ),
    (
        "/lib/modules",
        "the host kernel's modules: Kompox gives containers no access to the node's",
    ),
];

/// Host files left out of a Pod, with what to do instead.
const DROPPED_HOST_FILES: &[(&str, &str)] = &[
    (
        "/etc/localtime",
        "the host's time zone: a Pod runs on any node; set the TZ environment variable instead",
    ),
    (
        "/etc/timezone",
        "the host's time zone: a Pod runs on any node; set the TZ environment variable instead",
    ),
];

/// Where a bind source goes when no `spec.files.mounts` entry provides it: relative binds
/// are directories on the default disk (`./data` → `data`, `.` → the whole volume);
/// absolute and `~/` binds of data directories too, under [`HOST_BIND_DIR`] /
/// [`HOME_BIND_DIR`]; the host's sockets, devices and kernel interfaces are refused and its
/// time zone files left out. `None` for mounts that are not binds.
///
/// ```
/// use kompox_core::compose::MountSource;
/// use kompox_core::render::{DiskBind, bind_on_disk};
/// let abs = |p: &str| MountSource::AbsoluteBind { path: p.into() };
/// assert_eq!(
///     bind_on_disk(&abs("/etc/pihole")),
///     Some(DiskBind::Directory { subpath: Some("_host/etc/pihole".into()), host: true })
/// );
/// assert!(matches!(bind_on_disk(&abs("/var/run/docker.sock")), Some(DiskBind::Refused(_))));
/// assert!(matches!(bind_on_disk(&abs("/etc/localtime")), Some(DiskBind::Dropped(_))));
/// ```
#[must_use]
pub fn bind_on_disk(source: &MountSource) -> Option<DiskBind> {
    match source {
        MountSource::RelativeBind { path } => Some(DiskBind::Directory {
            subpath: (path != ".").then(|| path.clone()),
            host: false,
        }),
        MountSource::HomeBind { path } => Some(DiskBind::Directory {
            subpath: Some(if path == "." {
                HOME_BIND_DIR.to_owned()
            } else {
                format!("{HOME_BIND_DIR}/{path}")
            }),
            host: true,
        }),
        MountSource::AbsoluteBind { path } => {
            let under = |prefix: &str| {
                path == prefix
                    || path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            };
            if path == "/" {
                return Some(DiskBind::Refused(
                    "the host's root filesystem: Kompox gives containers no access to the node's",
                ));
            }
            if let Some((_, why)) = REFUSED_HOST_PATHS.iter().find(|(p, _)| under(p)) {
                return Some(DiskBind::Refused(why));
            }
            if path.ends_with("/docker.sock") {
                return Some(DiskBind::Refused(REFUSED_HOST_PATHS[0].1));
            }
            if let Some((_, why)) = DROPPED_HOST_FILES.iter().find(|(p, _)| path == p) {
                return Some(DiskBind::Dropped(why));
            }
            Some(DiskBind::Directory {
                subpath: Some(format!("{HOST_BIND_DIR}{path}")),
                host: true,
            })
        }
        MountSource::Volume { .. } | MountSource::Anonymous | MountSource::Tmpfs { .. } => None,
    }
}

/// What a compose path on the host is used for (see [`host_paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPathKind {
    /// `services.*.env_file[i]`.
    EnvFile,
    /// A top-level `configs.*.file`.
    ConfigFile,
    /// A top-level `secrets.*.file`.
    SecretFile,
    /// A bind source `services.*.volumes[i]`: relative, `~/`, or an absolute path that is
    /// not refused ([`bind_on_disk`]).
    Bind,
}

/// A host path named by a compose file. Kompox has no project directory in the cluster:
/// each file must come from a `spec.files.mounts` entry at [`HostPath::project_path`], and
/// a relative bind becomes a directory on the first app volume. Callers with a filesystem
/// (the CLI) use this list to read files next to the compose file, or to refuse single-file
/// binds, exactly as the renderer will resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// The compose field, e.g. `services.web.env_file[0]`.
    pub field: String,
    pub kind: HostPathKind,
    /// The path as the compose file gives it (bind sources and config files normalized
    /// relative to the project directory by the parser; `~/…` for home binds).
    pub path: String,
    /// The `spec.files.mounts` path that provides it: [`project_path`] of `path`, or
    /// [`bind_path`] of a bind source.
    pub project_path: Option<String>,
    /// Whether rendering fails without it (`env_file` `required: false` is not).
    pub required: bool,
    /// For a bind: whether it is read-only (`:ro`); a file is always mounted read-only.
    pub read_only: bool,
}

/// The host paths a compose project names, in file order (services by name).
#[must_use]
pub fn host_paths(project: &Project) -> Vec<HostPath> {
    let mut out = Vec::new();
    let mut push = |field: String, kind, path: String, at: Option<String>, required, read_only| {
        out.push(HostPath {
            field,
            kind,
            path,
            project_path: at,
            required,
            read_only,
        });
    };
    for (name, svc) in &project.services {
        for (i, ef) in svc.env_file.iter().enumerate() {
            push(
                format!("{}.env_file[{i}]", crate::compose::service_path(name)),
                HostPathKind::EnvFile,
                ef.path.clone(),
                project_path(&ef.path),
                ef.required,
                true,
            );
        }
        for (field, m) in mount_fields(name, svc).into_iter().zip(&svc.mounts) {
            let at = bind_path(&m.source);
            match &m.source {
                MountSource::RelativeBind { path } if path != "." => {
                    push(
                        field,
                        HostPathKind::Bind,
                        path.clone(),
                        at,
                        true,
                        m.read_only,
                    );
                }
                MountSource::AbsoluteBind { path }
                    if matches!(bind_on_disk(&m.source), Some(DiskBind::Directory { .. })) =>
                {
                    push(
                        field,
                        HostPathKind::Bind,
                        path.clone(),
                        at,
                        true,
                        m.read_only,
                    );
                }
                MountSource::HomeBind { path } if at.is_some() => {
                    push(
                        field,
                        HostPathKind::Bind,
                        format!("~/{path}"),
                        at,
                        true,
                        m.read_only,
                    );
                }
                _ => {}
            }
        }
    }
    for (kind, top, defs) in [
        (HostPathKind::ConfigFile, "configs", &project.configs),
        (HostPathKind::SecretFile, "secrets", &project.secrets),
    ] {
        for (name, def) in defs {
            if let FileObjectSource::File(path) = &def.source {
                push(
                    format!("{top}.{name}.file"),
                    kind,
                    path.clone(),
                    project_path(path),
                    true,
                    true,
                );
            }
        }
    }
    out
}

/// The compose field of each entry of `svc.mounts`: `services.<name>.volumes[i]`, or
/// `services.<name>.tmpfs[j]` for entries of the service's `tmpfs` key. The parser appends
/// both lists to `mounts` in key order; `tmpfs`-key entries are the tmpfs mounts it creates
/// with `create_host_path: false` (long-syntax tmpfs volumes keep the default `true`).
pub(crate) fn mount_fields(name: &str, svc: &Service) -> Vec<String> {
    let (mut v, mut t) = (0usize, 0usize);
    svc.mounts
        .iter()
        .map(|m| {
            if matches!(m.source, MountSource::Tmpfs { .. }) && !m.create_host_path {
                t += 1;
                format!("{}.tmpfs[{}]", crate::compose::service_path(name), t - 1)
            } else {
                v += 1;
                format!("{}.volumes[{}]", crate::compose::service_path(name), v - 1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// A compose path and the `spec.files.mounts` path that provides it (`None`: refused).
    #[rstest]
    #[case::bare_name("gitea.env", Some("/kompox/project/gitea.env"))]
    #[case::dot_slash_subdir("./env/db.env", Some("/kompox/project/env/db.env"))]
    #[case::dot_and_dotdot_inside("a/./b/../c", Some("/kompox/project/a/c"))]
    #[case::absolute_double_slash("/abs//x/./y", Some("/abs/x/y"))]
    #[case::absolute_dotdot_inside("/a/../b", Some("/b"))]
    #[case::parent_of_project("..", None)]
    #[case::leaves_through_subdir("a/../..", None)]
    #[case::parent_of_root("/..", None)]
    #[case::project_dir_itself(".", None)]
    #[case::root_itself("/", None)]
    #[case::empty("", None)]
    fn project_paths(#[case] input: &str, #[case] want: Option<&str>) {
        assert_eq!(project_path(input).as_deref(), want);
    }
}
