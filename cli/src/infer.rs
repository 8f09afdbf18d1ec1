//! Zero-config: what `apply` and `render` infer from the compose file where `--app` (or
//! `--kompoxops`) says nothing.
//!
//! | what | inferred from |
//! |---|---|
//! | app name | `--app`, else the compose `name:`, else the compose file's directory ([`default_name`]) |
//! | `spec.volumes` | one entry per compose volume a service mounts that `spec.volumes` lacks, on a KompoxDisk named [`k8s_name`] of the volume (`db_data` → `db-data`); plus `default` first when a bind is a directory on the default disk and `spec.volumes` is empty |
//! | external volumes | `external: true` (or the obsolete `external: {name: …}`): compose creates nothing for them, so neither does Kompox: the volume refers to the existing KompoxDisk [`external_disk`] (`name:`, else the key, as a Kubernetes name); `apply` refuses to go on when it does not exist |
//! | disk size | `x-kompox: {size: …}` on the compose volume, else `--disk-size`, else 10Gi |
//! | zone | `--zone` (disks and `spec.deployment.zone`), else none: the provisioner picks the disk's zone and the Pod follows the disk |
//! | `spec.ingress.rules` | `--host NAME[=PORT]` and `x-kompox: {host(s), port}` on services, when `--app` has no rules; PORT is a published port, the only one the compose file (or the service) publishes when omitted |
//!
//! The caller prints [`Inferred::notes`] (stderr). Disks listed in [`Inferred::disks`] are
//! created when absent and never changed or deleted by a later `apply`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::api::{
    AppVolume, DeploymentSpec, IngressRule, IngressSpec, KompoxApp, KompoxDisk, LocalRef,
    PodSecurityLevel,
};
use kompox_core::compose::{MountSource, Project, Protocol};
use kompox_core::naming::{MAX_LABEL_LEN, k8s_name, k8s_names};
use kompox_core::render::{DiskBind, bind_on_disk, bind_path, project_path};

use crate::CliError;
use crate::project::{DEFAULT_DISK_SIZE, DEFAULT_VOLUME, disk};

/// IngressClass of inferred ingress rules (the one `install` sets up).
pub const INGRESS_CLASS: &str = "traefik";

/// The zero-config flags shared by `apply` and `render`.
#[derive(Debug, Clone, Default, Args)]
pub struct InferArgs {
    /// Size of each disk made for a compose volume without `x-kompox: {size: …}` (and of the
    /// default disk for binds).
    #[arg(long, value_name = "QUANTITY", value_parser = crate::project::parse_size_text)]
    pub disk_size: Option<String>,
    /// Zone of the disks made and of the app's workloads (else the provisioner picks the
    /// disk's zone and the Pod follows it).
    #[arg(long)]
    pub zone: Option<String>,
    /// Route host NAME to published port PORT (the only published port when omitted);
    /// repeatable.
    #[arg(long = "host", value_name = "NAME[=PORT]")]
    pub hosts: Vec<String>,
    /// Provide the bound file or read-only directory PATH from a Secret instead of a
    /// ConfigMap; repeatable.
    #[arg(long = "secret-file", value_name = "PATH")]
    pub secret_files: Vec<PathBuf>,
    /// The app's Pod Security level (`spec.podSecurity`): baseline (the default),
    /// restricted, or privileged (the API server accepts privileged only from someone allowed
    /// to `use` `kompoxapps/privileged`, e.g. a cluster admin).
    #[arg(long, value_name = "LEVEL", value_parser = parse_pod_security)]
    pub pod_security: Option<PodSecurityLevel>,
}

/// Parses `--pod-security`.
fn parse_pod_security(s: &str) -> Result<PodSecurityLevel, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?}: expected baseline, restricted or privileged"))
}

/// What was inferred.
#[derive(Debug, Default)]
pub struct Inferred {
    /// One line per inference, for stderr.
    pub notes: Vec<String>,
    /// The disks made here (created when absent, never changed afterwards).
    pub disks: BTreeSet<String>,
    /// Disks of `external` compose volumes (disk → compose volume): they must exist (in the
    /// app's namespace, or in `--app`); nothing makes them.
    pub external: BTreeMap<String, String>,
}

/// The KompoxDisk an `external` compose volume refers to: its `name:` (or its key) as a
/// Kubernetes name ([`k8s_name`]: `shared_media` → `shared-media`).
#[must_use]
pub fn external_disk(key: &str, def: &kompox_core::compose::VolumeDef) -> String {
    k8s_name(def.name.as_deref().unwrap_or(key), MAX_LABEL_LEN)
}

/// The app's name without `--app`: the compose `name:`, else the compose file's directory,
/// as a Kubernetes name ([`k8s_name`]: `my_blog` → `my-blog`), with where it came from.
#[must_use]
pub fn default_name(project: Option<&Project>, file: &Path) -> (String, &'static str) {
    if let Some(n) = project
        .and_then(|p| p.name.clone())
        .filter(|n| !n.is_empty())
    {
        return (k8s_name(&n, 40), "the compose name:");
    }
    let dir = std::path::absolute(file).ok().and_then(|p| {
        p.parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
    });
    match dir.filter(|d| !d.is_empty()) {
        Some(d) => (k8s_name(&d, 40), "the compose file's directory"),
        None => ("app".to_owned(), "default"),
    }
}

/// Fills what `app` lacks (volumes, disks, zone, ingress) from the compose project and the
/// flags. `disks` holds the disks already known (from `--app`); inferred ones are added.
///
/// # Errors
///
/// [`CliError::Invalid`] naming the flag or compose field at fault.
pub fn complete(
    app: &mut KompoxApp,
    disks: &mut BTreeMap<String, KompoxDisk>,
    project: &Project,
    args: &InferArgs,
) -> Result<Inferred, CliError> {
    let mut out = Inferred::default();
    let mut errors = Vec::new();
    let zone = args.zone.clone().filter(|z| !z.trim().is_empty());
    let default_size = args
        .disk_size
        .clone()
        .unwrap_or_else(|| DEFAULT_DISK_SIZE.to_owned());
    let size_from = if args.disk_size.is_some() {
        "--disk-size"
    } else {
        "default"
    };

    // Volumes: the compose volumes services mount, and the default disk for binds.
    let mut mounted: BTreeSet<&str> = BTreeSet::new();
    let mut on_default: Vec<String> = Vec::new();
    let covered = covered_paths(app);
    for (sname, svc) in &project.services {
        for m in &svc.mounts {
            match &m.source {
                MountSource::Volume { name, .. } => {
                    mounted.insert(name.as_str());
                }
                src => {
                    let provided = bind_path(src).is_some_and(|p| covered.provides(&p));
                    if !provided
                        && let Some(DiskBind::Directory { subpath, .. }) = bind_on_disk(src)
                    {
                        on_default.push(format!(
                            "{} {}",
                            kompox_core::compose::service_path(sname),
                            subpath.as_deref().unwrap_or(".")
                        ));
                    }
                }
            }
        }
    }
    // External volumes name an existing disk; the disks made here are named together with
    // those names, so `db_data` and `db-data` get distinct disks, and none takes the name of
    // an external one.
    let external: BTreeMap<&str, String> = project
        .volumes
        .iter()
        .filter(|(_, d)| d.external)
        .map(|(k, d)| (k.as_str(), external_disk(k, d)))
        .collect();
    let disk_names = k8s_names(
        project
            .volumes
            .iter()
            .filter(|(_, d)| !d.external)
            .map(|(k, _)| k.as_str())
            .chain([DEFAULT_VOLUME])
            .chain(external.values().map(String::as_str)),
        MAX_LABEL_LEN,
    );
    for (key, disk) in &external {
        if let Some(made) = project
            .volumes
            .keys()
            .filter(|k| !external.contains_key(k.as_str()))
            .find(|k| disk_names.get(k.as_str()) == Some(disk))
        {
            errors.push(format!(
                "volumes.{key}: external volume {key}'s disk {disk} would also be the disk made for volume {made}: rename one"
            ));
        }
    }
    let add_disk = |out: &mut Inferred,
                    disks: &mut BTreeMap<String, KompoxDisk>,
                    volume: &str,
                    size: &str,
                    why: String| {
        let disk_name = disk_names
            .get(volume)
            .cloned()
            .unwrap_or_else(|| k8s_name(volume, MAX_LABEL_LEN));
        let mut d = disk(&disk_name);
        d.spec.size = Quantity(size.to_owned());
        d.spec.zone.clone_from(&zone);
        out.notes.push(format!(
            "KompoxDisk {disk_name} ({size}{}) for {why}",
            zone.as_deref()
                .map(|z| format!(", zone {z}"))
                .unwrap_or_default()
        ));
        disks.entry(disk_name.clone()).or_insert(d);
        out.disks.insert(disk_name.clone());
        AppVolume {
            name: volume.to_owned(),
            disk_ref: LocalRef { name: disk_name },
        }
    };
    let has = |app: &KompoxApp, v: &str| app.spec.volumes.iter().any(|x| x.name == v);
    if !on_default.is_empty() && app.spec.volumes.is_empty() {
        if let Some((key, _)) = external
            .iter()
            .find(|(_, d)| disk_names.get(DEFAULT_VOLUME) == Some(*d))
        {
            errors.push(format!(
                "volumes.{key}: external volume {key}'s disk is named {DEFAULT_VOLUME}, the disk Kompox makes for the binds ({}): give the volume another name",
                on_default.join(", ")
            ));
        }
        let v = add_disk(
            &mut out,
            disks,
            DEFAULT_VOLUME,
            &default_size,
            format!(
                "the binds on the default disk ({size_from} size): {}",
                on_default.join(", ")
            ),
        );
        app.spec.volumes.insert(0, v);
    }
    for (name, def) in &project.volumes {
        if !mounted.contains(name.as_str()) || has(app, name) {
            continue;
        }
        if let Some(d) = external.get(name.as_str()) {
            out.notes.push(format!(
                "KompoxDisk {d} for compose volume {name} (external: it must exist; apply never makes it){}",
                if def.kompox.size.is_some() {
                    "; x-kompox.size ignored"
                } else {
                    ""
                }
            ));
            out.external.insert(d.clone(), name.clone());
            app.spec.volumes.push(AppVolume {
                name: name.clone(),
                disk_ref: LocalRef { name: d.clone() },
            });
            continue;
        }
        let (size, from) = match &def.kompox.size {
            Some(s) => (s.clone(), "x-kompox.size"),
            None => (default_size.clone(), size_from),
        };
        let v = add_disk(
            &mut out,
            disks,
            name,
            &size,
            format!("compose volume {name} ({from} size)"),
        );
        app.spec.volumes.push(v);
    }

    // Zone.
    if let Some(z) = &zone {
        let d = app
            .spec
            .deployment
            .get_or_insert_with(DeploymentSpec::default);
        if d.zone.as_deref().is_none_or(|z| z.trim().is_empty()) {
            d.zone = Some(z.clone());
            out.notes.push(format!("spec.deployment.zone {z} (--zone)"));
        }
    }

    if let Some(level) = args.pod_security {
        app.spec.pod_security = level;
    }

    // Ingress.
    let has_rules = app
        .spec
        .ingress
        .as_ref()
        .is_some_and(|i| !i.rules.is_empty());
    let wanted = host_rules(project, &args.hosts, &mut errors);
    if has_rules {
        if !wanted.is_empty() {
            out.notes.push(
                "--host and x-kompox hosts ignored: --app sets spec.ingress.rules".to_owned(),
            );
        }
    } else if !wanted.is_empty() {
        let ing = app.spec.ingress.get_or_insert_with(IngressSpec::default);
        if ing.class_name.is_none() {
            ing.class_name = Some(INGRESS_CLASS.to_owned());
        }
        for (port, (rule_name, hosts, from)) in wanted {
            out.notes.push(format!(
                "ingress rule {rule_name}: {} → published port {port} ({from})",
                hosts.join(", ")
            ));
            ing.rules.push(IngressRule {
                name: rule_name,
                port: i32::from(port),
                hosts,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CliError::Invalid(errors))
    }
}

/// The `spec.files.mounts` paths of an app: exact files, and the directories holding some.
struct Covered(BTreeSet<String>);

impl Covered {
    fn provides(&self, path: &str) -> bool {
        let dir = format!("{path}/");
        self.0.contains(path)
            || self
                .0
                .range(dir.clone()..)
                .next()
                .is_some_and(|p| p.starts_with(&dir))
    }
}

fn covered_paths(app: &KompoxApp) -> Covered {
    Covered(
        app.spec
            .files
            .iter()
            .flat_map(|f| &f.mounts)
            .filter_map(|m| project_path(&m.path))
            .collect(),
    )
}

/// Published TCP ports → (services publishing them).
fn published(project: &Project) -> BTreeMap<u16, BTreeSet<&str>> {
    let mut out: BTreeMap<u16, BTreeSet<&str>> = BTreeMap::new();
    for (name, svc) in &project.services {
        for p in &svc.ports {
            if let (Some(pub_port), Protocol::Tcp) = (p.published, p.protocol) {
                out.entry(pub_port).or_default().insert(name.as_str());
            }
        }
    }
    out
}

/// Ingress rules by published port: (rule name, hosts, where they came from).
fn host_rules(
    project: &Project,
    flags: &[String],
    errors: &mut Vec<String>,
) -> BTreeMap<u16, (String, Vec<String>, String)> {
    let ports = published(project);
    let list = |ports: &BTreeMap<u16, BTreeSet<&str>>| {
        ports
            .keys()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut wanted: Vec<(u16, String, String)> = Vec::new();
    for f in flags {
        let (host, port) = match f.split_once('=') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, Some(p)),
                _ => {
                    errors.push(format!("--host {f}: {p:?} is not a port (1-65535)"));
                    continue;
                }
            },
            None => (f.as_str(), None),
        };
        if !kompox_core::naming::is_dns1123_subdomain(host.strip_prefix("*.").unwrap_or(host)) {
            errors.push(format!(
                "--host {f}: {host:?} is not a host name (lower-case letters, digits, '-' and '.')"
            ));
            continue;
        }
        let port = match port {
            Some(p) if ports.contains_key(&p) => p,
            Some(p) => {
                errors.push(format!(
                    "--host {f}: no service publishes TCP port {p} (published: {})",
                    if ports.is_empty() {
                        "none".to_owned()
                    } else {
                        list(&ports)
                    }
                ));
                continue;
            }
            None => match ports.keys().collect::<Vec<_>>().as_slice() {
                [one] => **one,
                [] => {
                    errors.push(format!(
                        "--host {f}: the compose file publishes no TCP port (add ports: [\"8080:80\"] to the service)"
                    ));
                    continue;
                }
                _ => {
                    errors.push(format!(
                        "--host {f}: the compose file publishes ports {}: say which with --host {host}=PORT",
                        list(&ports)
                    ));
                    continue;
                }
            },
        };
        wanted.push((port, host.to_owned(), "--host".to_owned()));
    }
    for (name, svc) in &project.services {
        let k = &svc.kompox;
        if k.hosts.is_empty() {
            if k.port.is_some() {
                errors.push(format!(
                    "{}.x-kompox.port: needs host or hosts",
                    kompox_core::compose::service_path(name)
                ));
            }
            continue;
        }
        let own: BTreeSet<u16> = svc
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .filter_map(|p| p.published)
            .collect();
        let field = format!("{}.x-kompox", kompox_core::compose::service_path(name));
        let port = match k.port {
            Some(p) if own.contains(&p) => p,
            Some(p) => {
                errors.push(format!(
                    "{field}.port: the service does not publish TCP port {p}"
                ));
                continue;
            }
            None => match own.iter().collect::<Vec<_>>().as_slice() {
                [one] => **one,
                [] => {
                    errors.push(format!(
                        "{field}: the service publishes no TCP port (add ports: [\"8080:80\"])"
                    ));
                    continue;
                }
                many => {
                    let l: Vec<String> = many.iter().map(ToString::to_string).collect();
                    errors.push(format!(
                        "{field}: the service publishes ports {}: say which with port",
                        l.join(", ")
                    ));
                    continue;
                }
            },
        };
        for h in &k.hosts {
            wanted.push((port, h.clone(), field.clone()));
        }
    }
    let mut out: BTreeMap<u16, (String, Vec<String>, String)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (port, host, from) in wanted {
        if !seen.insert(host.clone()) {
            errors.push(format!("{from}: host {host} is given more than once"));
            continue;
        }
        let e = out.entry(port).or_insert_with(|| {
            let svc = ports
                .get(&port)
                .and_then(|s| s.first())
                .copied()
                .unwrap_or("app");
            let several = ports.iter().filter(|(_, s)| s.contains(svc)).count() > 1;
            let base = k8s_name(svc, MAX_LABEL_LEN - 6);
            let name = if several {
                format!("{base}-{port}")
            } else {
                base
            };
            (name, Vec::new(), String::new())
        });
        e.1.push(host);
        if !e.2.split(", ").any(|x| x == from) {
            if !e.2.is_empty() {
                e.2.push_str(", ");
            }
            e.2.push_str(&from);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        match kompox_core::compose::parse(yaml, &|_| None) {
            Ok(p) => p.project,
            Err(e) => panic!("{e}"),
        }
    }

    fn run(
        yaml: &str,
        args: &InferArgs,
    ) -> Result<(KompoxApp, BTreeMap<String, KompoxDisk>, Inferred), String> {
        let mut app = crate::project::default_app("app1");
        let mut disks = BTreeMap::new();
        complete(&mut app, &mut disks, &project(yaml), args)
            .map(|i| (app, disks, i))
            .map_err(|e| e.to_string())
    }

    const WORDPRESS: &str = "services:
  db:
    image: mariadb
    volumes: [db_data:/var/lib/mysql]
  wordpress:
    image: wordpress
    ports: ['8080:80']
    volumes: [./wp-content:/var/www/html/wp-content, ./nginx.conf:/etc/nginx/nginx.conf:ro]
volumes:
  db_data: {x-kompox: {size: 20Gi}}
  unused: {}
";

    #[test]
    fn volumes_disks_zone() {
        struct Case {
            name: &'static str,
            yaml: &'static str,
            args: InferArgs,
            /// (volume, disk, size)
            volumes: &'static [(&'static str, &'static str, &'static str)],
            zone: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "named volume with x-kompox size, binds on the default disk",
                yaml: WORDPRESS,
                args: InferArgs::default(),
                volumes: &[
                    ("default", "default", "10Gi"),
                    ("db_data", "db-data", "20Gi"),
                ],
                zone: None,
            },
            Case {
                name: "--disk-size and --zone",
                yaml: WORDPRESS,
                args: InferArgs {
                    disk_size: Some("5Gi".into()),
                    zone: Some("2".into()),
                    ..InferArgs::default()
                },
                volumes: &[
                    ("default", "default", "5Gi"),
                    ("db_data", "db-data", "20Gi"),
                ],
                zone: Some("2"),
            },
            Case {
                name: "volume names that collide get distinct disks",
                yaml: "services: {web: {image: x, volumes: ['db_data:/a', 'db-data:/b']}}\nvolumes: {db_data: {}, db-data: {}}\n",
                args: InferArgs::default(),
                volumes: &[
                    ("db-data", "db-data", "10Gi"),
                    ("db_data", "db-data-47dfnl", "10Gi"),
                ],
                zone: None,
            },
            Case {
                name: "stateless: no disk",
                yaml: "services: {web: {image: nginx, volumes: ['/tmp']}}\n",
                args: InferArgs::default(),
                volumes: &[],
                zone: None,
            },
            Case {
                name: "host binds need the default disk, refused ones do not",
                yaml: "services: {pihole: {image: pihole, volumes: ['/etc/pihole:/etc/pihole', '/var/run/docker.sock:/s']}}\n",
                args: InferArgs::default(),
                volumes: &[("default", "default", "10Gi")],
                zone: None,
            },
        ];
        for c in cases {
            let (app, disks, inferred) =
                run(c.yaml, &c.args).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let got: Vec<(&str, &str, String)> = app
                .spec
                .volumes
                .iter()
                .map(|v| {
                    let size = disks
                        .get(&v.disk_ref.name)
                        .map(|d| d.spec.size.0.clone())
                        .unwrap_or_default();
                    (v.name.as_str(), v.disk_ref.name.as_str(), size)
                })
                .collect();
            let want: Vec<(&str, &str, String)> = c
                .volumes
                .iter()
                .map(|(a, b, s)| (*a, *b, (*s).to_owned()))
                .collect();
            assert_eq!(got, want, "{}", c.name);
            assert_eq!(inferred.disks.len(), want.len(), "{}", c.name);
            for d in disks.values() {
                assert_eq!(d.spec.zone.as_deref(), c.zone, "{}", c.name);
            }
            assert_eq!(
                app.spec.deployment.and_then(|d| d.zone).as_deref(),
                c.zone,
                "{}",
                c.name
            );
            assert_eq!(
                inferred.notes.is_empty(),
                want.is_empty() && c.zone.is_none(),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn external_volumes_refer_to_existing_disks() {
        struct Case {
            name: &'static str,
            yaml: &'static str,
            /// (volume, disk) of spec.volumes.
            volumes: &'static [(&'static str, &'static str)],
            /// Disks made (never the external ones).
            made: &'static [&'static str],
            /// disk → volume of the external ones.
            external: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case {
                name: "external: true names the disk by its key",
                yaml: "services: {db: {image: x, volumes: ['db_data:/d', 'media:/m']}}\nvolumes: {db_data: {external: true}, media: {}}\n",
                volumes: &[("db_data", "db-data"), ("media", "media")],
                made: &["media"],
                external: &[("db-data", "db_data")],
            },
            Case {
                name: "name: is the disk's name, as a Kubernetes name",
                yaml: "services: {db: {image: x, volumes: ['data:/d']}}\nvolumes: {data: {external: true, name: Shared_Media}}\n",
                volumes: &[("data", "shared-media")],
                made: &[],
                external: &[("shared-media", "data")],
            },
            Case {
                name: "the obsolete external: {name}",
                yaml: "services: {db: {image: x, volumes: ['data:/d']}}\nvolumes: {data: {external: {name: pgdata}}}\n",
                volumes: &[("data", "pgdata")],
                made: &[],
                external: &[("pgdata", "data")],
            },
            Case {
                name: "a made disk does not take an external disk's name",
                yaml: "services: {db: {image: x, volumes: ['db_data:/d', 'old:/o']}}\nvolumes: {db_data: {}, old: {external: true, name: db-data}}\n",
                volumes: &[("db_data", "db-data-47dfnl"), ("old", "db-data")],
                made: &["db-data-47dfnl"],
                external: &[("db-data", "old")],
            },
            Case {
                name: "an unmounted external volume is not referred to",
                yaml: "services: {db: {image: x}}\nvolumes: {data: {external: true}}\n",
                volumes: &[],
                made: &[],
                external: &[],
            },
        ];
        for c in cases {
            let (app, disks, inferred) =
                run(c.yaml, &InferArgs::default()).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let got: Vec<(&str, &str)> = app
                .spec
                .volumes
                .iter()
                .map(|v| (v.name.as_str(), v.disk_ref.name.as_str()))
                .collect();
            assert_eq!(got, c.volumes, "{}", c.name);
            let made: Vec<&str> = disks.keys().map(String::as_str).collect();
            assert_eq!(made, c.made, "{}", c.name);
            assert_eq!(
                inferred
                    .disks
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                c.made,
                "{}",
                c.name
            );
            let ext: Vec<(&str, &str)> = inferred
                .external
                .iter()
                .map(|(d, v)| (d.as_str(), v.as_str()))
                .collect();
            assert_eq!(ext, c.external, "{}", c.name);
            for (d, v) in c.external {
                let want = format!(
                    "KompoxDisk {d} for compose volume {v} (external: it must exist; apply never makes it)"
                );
                assert!(
                    inferred.notes.contains(&want),
                    "{}: {:?}",
                    c.name,
                    inferred.notes
                );
            }
        }
        for (name, yaml, want) in [
            (
                "an external disk named as a made one",
                "services: {db: {image: x, volumes: ['shared:/s', 'ext:/e']}}\nvolumes: {shared: {}, ext: {external: true, name: shared}}\n",
                "volumes.ext: external volume ext's disk shared would also be the disk made for volume shared: rename one",
            ),
            (
                "an external disk named as the default disk the binds need",
                "services: {db: {image: x, volumes: ['./data:/d', 'ext:/e']}}\nvolumes: {ext: {external: true, name: default}}\n",
                "volumes.ext: external volume ext's disk is named default, the disk Kompox makes for the binds (services.db data): give the volume another name",
            ),
        ] {
            assert_eq!(
                run(yaml, &InferArgs::default()).map(|_| ()),
                Err(want.to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn ingress_rules() {
        type Rules = &'static [(&'static str, i32, &'static [&'static str])];
        struct Case {
            name: &'static str,
            yaml: &'static str,
            hosts: &'static [&'static str],
            /// (rule name, port, hosts) or the error.
            want: Result<Rules, &'static str>,
        }
        let two = "services:
  web: {image: x, ports: ['8080:80', '8443:443']}
  admin: {image: y, ports: ['9000:9000'], x-kompox: {host: admin.example.com}}
";
        let cases = [
            Case {
                name: "the only published port",
                yaml: WORDPRESS,
                hosts: &["blog.example.com"],
                want: Ok(&[("wordpress", 8080, &["blog.example.com"])]),
            },
            Case {
                name: "x-kompox and an explicit port",
                yaml: two,
                hosts: &["www.example.com=8080"],
                want: Ok(&[
                    ("web-8080", 8080, &["www.example.com"]),
                    ("admin", 9000, &["admin.example.com"]),
                ]),
            },
            Case {
                name: "several ports need =PORT",
                yaml: two,
                hosts: &["www.example.com"],
                want: Err(
                    "--host www.example.com: the compose file publishes ports 8080, 8443, 9000: say which with --host www.example.com=PORT",
                ),
            },
            Case {
                name: "unpublished port",
                yaml: WORDPRESS,
                hosts: &["a.example.com=80"],
                want: Err(
                    "--host a.example.com=80: no service publishes TCP port 80 (published: 8080)",
                ),
            },
            Case {
                name: "bad host",
                yaml: WORDPRESS,
                hosts: &["Bad_Host"],
                want: Err(
                    "--host Bad_Host: \"Bad_Host\" is not a host name (lower-case letters, digits, '-' and '.')",
                ),
            },
            Case {
                name: "x-kompox on a service with two ports",
                yaml: "services: {web: {image: x, ports: ['80:80', '443:443'], x-kompox: {host: a.example.com}}}\n",
                hosts: &[],
                want: Err(
                    "services.web.x-kompox: the service publishes ports 80, 443: say which with port",
                ),
            },
        ];
        for c in cases {
            let args = InferArgs {
                hosts: c.hosts.iter().map(|h| (*h).to_owned()).collect(),
                ..InferArgs::default()
            };
            match (run(c.yaml, &args), c.want) {
                (Ok((app, _, _)), Ok(want)) => {
                    let ing = app.spec.ingress.unwrap_or_default();
                    assert_eq!(ing.class_name.as_deref(), Some(INGRESS_CLASS), "{}", c.name);
                    let got: Vec<(String, i32, Vec<String>)> = ing
                        .rules
                        .into_iter()
                        .map(|r| (r.name, r.port, r.hosts))
                        .collect();
                    let want: Vec<(String, i32, Vec<String>)> = want
                        .iter()
                        .map(|(n, p, h)| {
                            (
                                (*n).to_owned(),
                                *p,
                                h.iter().map(|x| (*x).to_owned()).collect(),
                            )
                        })
                        .collect();
                    assert_eq!(got, want, "{}", c.name);
                }
                (Err(e), Err(want)) => assert_eq!(e, want, "{}", c.name),
                (got, want) => panic!(
                    "{}: got {:?}, want {want:?}",
                    c.name,
                    got.map(|(a, _, _)| a.spec.ingress)
                ),
            }
        }
    }

    #[test]
    fn app_file_wins() {
        let mut app = crate::project::default_app("app1");
        app.spec.volumes.push(AppVolume {
            name: "db_data".into(),
            disk_ref: LocalRef {
                name: "mine".into(),
            },
        });
        let mut disks = BTreeMap::new();
        let inferred = complete(
            &mut app,
            &mut disks,
            &project(WORDPRESS),
            &InferArgs::default(),
        )
        .unwrap_or_default();
        // spec.volumes is not empty, so binds use it; db_data keeps its disk.
        assert_eq!(app.spec.volumes.len(), 1);
        assert_eq!(app.spec.volumes[0].disk_ref.name, "mine");
        assert!(inferred.disks.is_empty());
    }

    #[test]
    fn names() {
        let p = project("name: my_blog\nservices: {web: {image: x}}\n");
        assert_eq!(
            default_name(Some(&p), Path::new("/srv/x/compose.yml")),
            ("my-blog".to_owned(), "the compose name:")
        );
        assert_eq!(
            default_name(None, Path::new("/srv/Word_Press/compose.yml")).0,
            "word-press"
        );
    }
}
