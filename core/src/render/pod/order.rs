//! The start order inside the Pod, from compose `depends_on`: which services run as regular
//! containers, which as native sidecars, which as init containers run to completion, and the
//! order the init containers start in.
//!
//! The compose parser refuses a `depends_on` cycle, naming it; here the graph is acyclic, and
//! a service left unordered would be a Kompox bug, reported as an error rather than a Pod
//! that never starts.

use std::collections::{BTreeMap, BTreeSet};

use super::Role;
use super::container::probe_exec;
use crate::compose::{DependencyCondition, Project};
use crate::render::ErrorReason;
use crate::render::ctx::Ctx;

/// The role of every service and the init containers in start order.
pub(crate) struct Order<'p> {
    pub roles: BTreeMap<&'p str, Role>,
    pub init: Vec<&'p str>,
}

/// The roles of all services and the order of the init containers (`None` when errors were
/// recorded).
pub(crate) fn order<'p>(cx: &mut Ctx, project: &'p Project) -> Option<Order<'p>> {
    let mut sidecars: BTreeSet<&str> = BTreeSet::new();
    let mut startup: BTreeSet<&str> = BTreeSet::new();
    let mut jobs: BTreeSet<&str> = BTreeSet::new();
    for (name, svc) in &project.services {
        for (dep, d) in &svc.depends_on {
            let Some((dep, dsvc)) = project.services.get_key_value(dep) else {
                continue;
            };
            match d.condition {
                DependencyCondition::CompletedSuccessfully => {
                    jobs.insert(dep);
                }
                DependencyCondition::Started => {
                    sidecars.insert(dep);
                }
                DependencyCondition::Healthy => {
                    sidecars.insert(dep);
                    if probe_exec(dsvc.healthcheck.as_ref()).is_some() {
                        startup.insert(dep);
                    } else {
                        cx.error(
                            ErrorReason::InvalidCompose,
                            format!("{}.depends_on.{dep}", crate::compose::service_path(name)),
                            format!(
                                "condition service_healthy needs a healthcheck with a test on service {dep:?} (Kubernetes does not run an image's HEALTHCHECK)"
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut roles = BTreeMap::new();
    for name in project.services.keys() {
        let n = name.as_str();
        let role = if jobs.contains(n) {
            Role::Job
        } else if sidecars.contains(n) {
            Role::Sidecar {
                startup: startup.contains(n),
            }
        } else {
            Role::Main
        };
        roles.insert(n, role);
    }
    // Kahn's algorithm over the init services, ties broken by name. Every service on a
    // dependency path is an init service, so a cycle would leave some of them unordered.
    let init: BTreeSet<&str> = jobs.union(&sidecars).copied().collect();
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &n in &init {
        let deps = project.depends_on(n, |d| init.contains(d));
        waiting.insert(n, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(n);
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, w)| **w == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for &m in dependents.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(w) = waiting.get_mut(m) {
                *w = w.saturating_sub(1);
                if *w == 0 {
                    ready.insert(m);
                }
            }
        }
    }
    if order.len() < init.len() {
        let left: Vec<&str> = init
            .difference(&order.iter().copied().collect())
            .copied()
            .collect();
        cx.error(
            ErrorReason::InvalidCompose,
            "services",
            format!("dependency cycle among {}", left.join(", ")),
        );
        return None;
    }
    Some(Order { roles, init: order })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        crate::compose::parse(yaml, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .project
    }

    #[test]
    fn init_containers_start_after_what_they_depend_on() {
        let p = project(
            "services:
  web: {image: x, depends_on: {migrate: {condition: service_completed_successfully}, cache: {condition: service_started}}}
  migrate: {image: x, depends_on: [db]}
  db: {image: x}
  cache: {image: x}
",
        );
        let mut cx = Ctx::default();
        let o = order(&mut cx, &p).expect("ordered");
        assert!(cx.errors.is_empty());
        assert_eq!(o.init, ["cache", "db", "migrate"]);
        assert_eq!(o.roles["web"], Role::Main);
        assert_eq!(o.roles["migrate"], Role::Job);
        assert_eq!(o.roles["db"], Role::Sidecar { startup: false });
    }

    #[test]
    fn a_cycle_the_parser_would_refuse_is_an_error_not_a_dropped_service() {
        let mut p = project(
            "services:
  a: {image: x, depends_on: [b]}
  b: {image: x}
",
        );
        let b = p.services.get_mut("b").expect("b");
        b.depends_on.insert("a".into(), Default::default());
        let mut cx = Ctx::default();
        assert!(order(&mut cx, &p).is_none());
        assert_eq!(
            cx.errors
                .iter()
                .map(|(_, d)| format!("{}: {}", d.path, d.message))
                .collect::<Vec<_>>(),
            ["services: dependency cycle among a, b"]
        );
    }
}
