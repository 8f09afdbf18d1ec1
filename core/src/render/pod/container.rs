//! The container of one compose service: image, command, environment, ports, mounts,
//! probes, resources and security settings, and the warnings for what compose says that a
//! container cannot honour.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource, ExecAction, Probe,
    ResourceRequirements, SecretEnvSource, SecretKeySelector, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{PlannedMount, PodInputs, Role, Volumes, memory_volume};
use crate::compose::{HealthTest, Healthcheck, IdOrName, Restart, Service};
use crate::render::ErrorReason;
use crate::render::ctx::{
    Ctx, bytes_quantity, cpu_quantity, generated_volume_name, literal, seconds,
};
use crate::render::files::DEFAULT_COMPOSE_FILE_MODE;
use crate::render::network::{protocol_name, service_ports};

/// Compose healthcheck defaults.
const HC_INTERVAL: i32 = 30;
const HC_TIMEOUT: i32 = 30;
const HC_RETRIES: i32 = 3;
const HC_START_INTERVAL: i32 = 5;

/// One compose service as the Pod builder hands it over.
pub(super) struct ServiceContainer<'a> {
    pub name: &'a str,
    pub svc: &'a Service,
    pub role: Role,
    /// Its compose `volumes` and `tmpfs`, resolved.
    pub compose_mounts: Vec<PlannedMount>,
    /// What every container mounts (the remaining `files.mounts` entries, the hosts file).
    pub global: &'a [PlannedMount],
}

impl ServiceContainer<'_> {
    /// The container; problems are recorded in `cx`, naming the compose field.
    pub(super) fn build(mut self, cx: &mut Ctx, inp: &PodInputs, vols: &mut Volumes) -> Container {
        let field = crate::compose::service_path(self.name);
        self.check_image(cx, &field);
        let compose_mounts = std::mem::take(&mut self.compose_mounts);
        let volume_mounts = self.volume_mounts(cx, inp, vols, &field, compose_mounts);
        let env = self.env(inp);
        // envFrom: the env_file Secret, then the override Secret (a later envFrom entry wins
        // over an earlier one; `env` wins over both, so overridden keys leave `env`).
        let env_from: Vec<EnvFromSource> = inp
            .env_secrets
            .get(self.name)
            .into_iter()
            .chain(inp.env_overrides.get(self.name).map(|(s, _)| s))
            .map(|s| EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: s.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            })
            .collect();
        let env_from = (!env_from.is_empty()).then_some(env_from);
        let ports: Vec<ContainerPort> = service_ports(self.svc)
            .into_iter()
            .map(|(port, proto, _)| ContainerPort {
                container_port: i32::from(port),
                protocol: Some(protocol_name(proto).to_owned()),
                ..ContainerPort::default()
            })
            .collect();
        let svc = self.svc;
        let mut c = Container {
            name: inp.names.container(self.name).to_owned(),
            image: svc.image.clone(),
            command: svc
                .entrypoint
                .as_ref()
                .map(|v| v.iter().map(|s| literal(s)).collect()),
            args: svc
                .command
                .as_ref()
                .map(|v| v.iter().map(|s| literal(s)).collect()),
            env: (!env.is_empty()).then_some(env),
            env_from,
            ports: (!ports.is_empty()).then_some(ports),
            volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
            working_dir: svc.working_dir.clone(),
            stdin: svc.stdin_open.then_some(true),
            tty: svc.tty.then_some(true),
            resources: resources(svc),
            security_context: security_context(cx, &field, svc),
            image_pull_policy: pull_policy(cx, &field, svc),
            ..Container::default()
        };
        self.lifecycle(cx, &field, &mut c);
        self.warn_ignored(cx, &field);
        c
    }

    /// Kompox deploys images: `image` is required, `build` is refused without it and ignored
    /// beside it.
    fn check_image(&self, cx: &mut Ctx, field: &str) {
        match (&self.svc.image, &self.svc.build) {
            (None, Some(_)) => cx.error(
                ErrorReason::InvalidCompose,
                format!("{field}.build"),
                format!(
                    "Kompox deploys images and does not build them: build and push the image, then set {field}.image"
                ),
            ),
            (None, None) => {
                cx.error(ErrorReason::InvalidCompose, format!("{field}.image"), "required");
            }
            (Some(image), Some(_)) => cx.warn(
                format!("{field}.build"),
                format!("ignored: Kompox deploys the image {image:?}; build and push it first"),
            ),
            (Some(_), None) => {}
        }
    }

    /// Mounts: compose volumes, configs, secrets, shm, then the ones every container gets; a
    /// second mount at one path is an error naming both fields.
    fn volume_mounts(
        &self,
        cx: &mut Ctx,
        inp: &PodInputs,
        vols: &mut Volumes,
        field: &str,
        mut mounts: Vec<PlannedMount>,
    ) -> Vec<VolumeMount> {
        let (name, svc) = (self.name, self.svc);
        for (secret, list) in [(false, &svc.configs), (true, &svc.secrets)] {
            let kind = if secret { "secrets" } else { "configs" };
            for (i, fm) in list.iter().enumerate() {
                let f = format!("{field}.{kind}[{i}]");
                if fm.uid.is_some() || fm.gid.is_some() {
                    cx.warn(
                        &f,
                        "uid/gid ignored: Kubernetes owns projected files by root (or the Pod's fsGroup)",
                    );
                }
                let Some(file) = inp.derived.resolved.get(&(secret, fm.source.clone())) else {
                    continue; // error recorded when resolving the top-level entry
                };
                let mode = fm
                    .mode
                    .and_then(|m| i32::try_from(m & 0o7777).ok())
                    .unwrap_or(DEFAULT_COMPOSE_FILE_MODE);
                let mount = vols.files.mount(file, mode, &fm.target);
                mounts.push(PlannedMount { field: f, mount });
            }
        }
        if let Some(size) = svc.shm_size {
            let vname = generated_volume_name("shm", name);
            vols.empty_dirs
                .insert(vname.clone(), memory_volume(&vname, Some(size)));
            mounts.push(PlannedMount {
                field: format!("{field}.shm_size"),
                mount: VolumeMount {
                    name: vname,
                    mount_path: "/dev/shm".to_owned(),
                    ..VolumeMount::default()
                },
            });
        }
        mounts.extend(self.global.iter().map(|g| PlannedMount {
            field: g.field.clone(),
            mount: g.mount.clone(),
        }));
        let mut targets: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for p in mounts {
            if let Some(prev) = targets.insert(p.mount.mount_path.clone(), p.field.clone()) {
                cx.error(
                    ErrorReason::InvalidCompose,
                    &p.field,
                    format!(
                        "{} is already mounted by {prev} in container {name:?}",
                        p.mount.mount_path
                    ),
                );
                continue;
            }
            out.push(p.mount);
        }
        out
    }

    /// `environment`: a value kept in a Secret becomes a `secretKeyRef` (not expanded by
    /// Kubernetes, so no `$` doubling); any other is a literal.
    fn env(&self, inp: &PodInputs) -> Vec<EnvVar> {
        let overridden = inp.env_overrides.get(self.name).map(|(_, keys)| keys);
        self.svc
            .environment
            .iter()
            .filter(|(k, _)| !overridden.is_some_and(|o| o.contains(*k)))
            .map(
                |(k, v)| match inp.env_refs.get(&(self.name.to_owned(), k.clone())) {
                    Some((secret, key)) => EnvVar {
                        name: k.clone(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: secret.clone(),
                                key: key.clone(),
                                optional: None,
                            }),
                            ..EnvVarSource::default()
                        }),
                    },
                    None => EnvVar {
                        name: k.clone(),
                        value: Some(literal(v)),
                        value_from: None,
                    },
                },
            )
            .collect()
    }

    /// Probes and restart policy by role: a job runs to completion without probes; a main
    /// container or sidecar gets readiness and liveness probes from its healthcheck, a sidecar
    /// others wait to be healthy also a startup probe.
    fn lifecycle(&self, cx: &mut Ctx, field: &str, c: &mut Container) {
        let (svc, role) = (self.svc, self.role);
        let probe = probe_exec(svc.healthcheck.as_ref());
        match role {
            Role::Job => {
                if probe.is_some() {
                    cx.warn(
                        format!("{field}.healthcheck"),
                        "ignored: the service runs to completion before the others (service_completed_successfully), as an init container without probes",
                    );
                }
            }
            Role::Main | Role::Sidecar { .. } => {
                if let (Some(h), Some(exec)) = (svc.healthcheck.as_ref(), probe) {
                    let (ready, live, start) = probes(h, exec);
                    c.readiness_probe = Some(ready);
                    c.liveness_probe = Some(live);
                    if role == (Role::Sidecar { startup: true }) {
                        c.startup_probe = Some(start);
                    }
                } else if let Some(h) = &svc.healthcheck
                    && !h.disable
                {
                    cx.warn(
                        format!("{field}.healthcheck"),
                        "no test: the image's HEALTHCHECK is not run by Kubernetes, so there are no probes",
                    );
                }
                if let Some(r @ (Restart::No | Restart::OnFailure { .. })) = svc.restart {
                    let what = if r == Restart::No { "no" } else { "on-failure" };
                    cx.warn(
                        format!("{field}.restart"),
                        format!(
                            "{what:?} is not honoured: Kubernetes restarts the containers of a Deployment's Pod whenever they exit"
                        ),
                    );
                }
            }
        }
        if let Role::Sidecar { .. } = role {
            c.restart_policy = Some("Always".to_owned());
        }
    }

    /// Warnings for compose fields a container has no place for.
    fn warn_ignored(&self, cx: &mut Ctx, field: &str) {
        let svc = self.svc;
        for (key, what) in [
            (!svc.labels.is_empty(), "labels"),
            (!svc.annotations.is_empty(), "annotations"),
        ] {
            if key {
                cx.warn(
                    format!("{field}.{what}"),
                    format!("ignored: compose {what} are container metadata; Kompox sets the Kubernetes labels and annotations"),
                );
            }
        }
        if svc.hostname.is_some() {
            cx.warn(
                format!("{field}.hostname"),
                "ignored: all services share the Pod's hostname",
            );
        }
        if !svc.profiles.is_empty() {
            cx.warn(
                format!("{field}.profiles"),
                "ignored: Kompox renders every service, whatever its profiles",
            );
        }
    }
}

/// The exec action of a usable healthcheck (not disabled, with a test).
pub(super) fn probe_exec(h: Option<&Healthcheck>) -> Option<ExecAction> {
    let h = h.filter(|h| !h.disable)?;
    let command = match h.test.as_ref()? {
        HealthTest::Cmd(args) if !args.is_empty() => args.clone(),
        HealthTest::Cmd(_) => return None,
        HealthTest::Shell(s) => vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()],
    };
    Some(ExecAction {
        command: Some(command),
    })
}

/// Readiness, liveness and startup probes of a healthcheck (compose defaults: interval 30s,
/// timeout 30s, retries 3, start_period 0, start_interval 5s).
fn probes(h: &Healthcheck, exec: ExecAction) -> (Probe, Probe, Probe) {
    let interval = h.interval.map_or(HC_INTERVAL, seconds);
    let timeout = h.timeout.map_or(HC_TIMEOUT, seconds);
    let retries = h
        .retries
        .map_or(HC_RETRIES, |r| i32::try_from(r).unwrap_or(i32::MAX).max(1));
    let start_period = h.start_period.filter(|d| !d.is_zero()).map(seconds);
    let base = Probe {
        exec: Some(exec),
        period_seconds: Some(interval),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(retries),
        ..Probe::default()
    };
    let ready = base.clone();
    let live = Probe {
        initial_delay_seconds: start_period,
        ..base.clone()
    };
    // The startup probe polls every start_interval for as long as compose would wait
    // before calling the service unhealthy: start_period + retries × interval.
    let every = h.start_interval.map_or(HC_START_INTERVAL, seconds);
    let budget = i64::from(start_period.unwrap_or(0)) + i64::from(retries) * i64::from(interval);
    let attempts = (budget + i64::from(every) - 1) / i64::from(every);
    let start = Probe {
        period_seconds: Some(every),
        failure_threshold: Some(i32::try_from(attempts.max(1)).unwrap_or(i32::MAX)),
        ..base
    };
    (ready, live, start)
}

fn resources(svc: &Service) -> Option<ResourceRequirements> {
    let list = |spec: &crate::compose::ResourceSpec| {
        let mut m = BTreeMap::new();
        if let Some(c) = spec.millicpus {
            m.insert("cpu".to_owned(), Quantity(cpu_quantity(c)));
        }
        if let Some(b) = spec.memory {
            m.insert("memory".to_owned(), Quantity(bytes_quantity(b)));
        }
        (!m.is_empty()).then_some(m)
    };
    let limits = list(&svc.resources.limits);
    let requests = list(&svc.resources.reservations);
    (limits.is_some() || requests.is_some()).then_some(ResourceRequirements {
        limits,
        requests,
        claims: None,
    })
}

fn security_context(cx: &mut Ctx, field: &str, svc: &Service) -> Option<SecurityContext> {
    let mut sc = SecurityContext::default();
    let mut set = false;
    if let Some(u) = &svc.user {
        match &u.user {
            IdOrName::Id(id) => {
                sc.run_as_user = Some(i64::from(*id));
                set = true;
            }
            IdOrName::Name(n) if n == "root" => {
                sc.run_as_user = Some(0);
                set = true;
            }
            IdOrName::Name(n) => cx.warn(
                format!("{field}.user"),
                format!(
                    "user name {n:?} ignored: Kubernetes needs a numeric UID (e.g. user: \"1000:1000\"); the image's user applies"
                ),
            ),
        }
        match &u.group {
            Some(IdOrName::Id(id)) => {
                sc.run_as_group = Some(i64::from(*id));
                set = true;
            }
            Some(IdOrName::Name(n)) if n == "root" => {
                sc.run_as_group = Some(0);
                set = true;
            }
            Some(IdOrName::Name(n)) => cx.warn(
                format!("{field}.user"),
                format!("group name {n:?} ignored: Kubernetes needs a numeric GID"),
            ),
            None => {}
        }
    }
    let caps = |list: &[String]| -> Option<Vec<String>> {
        let v: Vec<String> = list
            .iter()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                c.strip_prefix("CAP_").map(str::to_owned).unwrap_or(c)
            })
            .collect();
        (!v.is_empty()).then_some(v)
    };
    let (add, drop) = (caps(&svc.cap_add), caps(&svc.cap_drop));
    if add.is_some() || drop.is_some() {
        sc.capabilities = Some(Capabilities { add, drop });
        set = true;
    }
    if svc.privileged {
        sc.privileged = Some(true);
        set = true;
    }
    if svc.read_only {
        sc.read_only_root_filesystem = Some(true);
        set = true;
    }
    set.then_some(sc)
}

fn pull_policy(cx: &mut Ctx, field: &str, svc: &Service) -> Option<String> {
    let p = svc.pull_policy.as_deref()?;
    match p {
        "always" => Some("Always".to_owned()),
        "never" => Some("Never".to_owned()),
        "missing" | "if_not_present" => Some("IfNotPresent".to_owned()),
        other => {
            cx.warn(
                format!("{field}.pull_policy"),
                format!("{other:?} ignored: Kubernetes knows Always, Never and IfNotPresent"),
            );
            None
        }
    }
}
