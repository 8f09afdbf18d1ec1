//! Services and the Ingress: a headless Service per compose service (so `postgres:5432`
//! resolves as under compose), one ClusterIP Service for the ports `spec.ingress.rules`
//! use, and one Traefik Ingress.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ctx::{AppMeta, Ctx, Names};
use super::{COMPONENT, ErrorReason, SOURCE_ANNOTATION};
use crate::api::KompoxApp;
use crate::compose::{Project, Protocol};
use crate::naming::is_port_name;

/// Traefik annotation: entry points of the router.
pub const TRAEFIK_ENTRYPOINTS: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
/// Traefik annotation: terminate TLS on the router.
pub const TRAEFIK_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";
/// Traefik annotation: the ACME certificate resolver.
pub const TRAEFIK_CERT_RESOLVER: &str = "traefik.ingress.kubernetes.io/router.tls.certresolver";
/// cert-manager's annotation naming the ClusterIssuer of an Ingress's certificates.
pub const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
/// cert-manager's annotation naming the Issuer (same namespace) of an Ingress's certificates.
pub const CERT_MANAGER_ISSUER: &str = "cert-manager.io/issuer";

pub(crate) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// The container ports of a compose service (`ports` targets and `expose`), deduplicated,
/// in file order, with the app protocol of the first `ports` entry naming it.
pub(crate) fn service_ports(svc: &crate::compose::Service) -> Vec<(u16, Protocol, Option<String>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let ports = svc
        .ports
        .iter()
        .map(|p| (p.target, p.protocol, p.app_protocol.clone()));
    let expose = svc.expose.iter().map(|e| (e.port, e.protocol, None));
    for (port, proto, app) in ports.chain(expose) {
        if port != 0 && seen.insert((port, proto)) {
            out.push((port, proto, app));
        }
    }
    out
}

/// The Services and the Ingress of an app.
pub(crate) struct Network {
    pub services: Vec<Service>,
    pub ingress: Option<Ingress>,
}

pub(crate) fn plan(
    cx: &mut Ctx,
    meta: &AppMeta,
    names: &Names,
    app: &KompoxApp,
    project: &Project,
) -> Network {
    let front_name = super::ctx::service_name(&meta.object_name(COMPONENT));
    let mut services = Vec::new();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();

    for (name, svc) in &project.services {
        let field = crate::compose::service_path(name);
        let sname = names.service(name);
        if let Some(other) = taken.insert(sname.clone(), name) {
            cx.error(
                ErrorReason::InvalidCompose,
                &field,
                format!("its Service would be named {sname:?} like the one of service {other:?}: rename one of them"),
            );
            continue;
        }
        if sname == front_name {
            cx.error(
                ErrorReason::InvalidCompose,
                &field,
                format!(
                    "the Service for this compose service would have the name of the app's ingress Service {front_name:?}: rename the compose service"
                ),
            );
            continue;
        }
        let ports: Vec<ServicePort> = service_ports(svc)
            .into_iter()
            .map(|(port, proto, app_protocol)| ServicePort {
                name: Some(format!("{}-{port}", proto.as_str())),
                port: i32::from(port),
                target_port: Some(IntOrString::Int(i32::from(port))),
                protocol: Some(protocol_name(proto).to_owned()),
                app_protocol,
                node_port: None,
            })
            .collect();
        services.push(Service {
            metadata: meta.meta(&sname, &field),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".to_owned()),
                selector: Some(meta.selector()),
                ports: (!ports.is_empty()).then_some(ports),
                // The Pod is Ready only once every container is; names must resolve before
                // that, or services waiting on each other would never start.
                publish_not_ready_addresses: Some(true),
                ..ServiceSpec::default()
            }),
            status: None,
        });
    }

    let rules = app
        .spec
        .ingress
        .as_ref()
        .map(|i| i.rules.as_slice())
        .unwrap_or_default();
    let mut ingress_ports: BTreeSet<u16> = BTreeSet::new();
    let mut front_ports = Vec::new();
    let mut ingress_rules = Vec::new();
    let mut port_rule: BTreeMap<i32, &str> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("spec.ingress.rules[{i}]");
        let Ok(port) = u16::try_from(rule.port) else {
            continue; // refused by spec validation
        };
        if let Some(other) = port_rule.insert(rule.port, &rule.name) {
            cx.error(
                ErrorReason::InvalidSpec,
                format!("{field}.port"),
                format!(
                    "port {port} is already used by rule {other:?}: put all its hosts in one rule"
                ),
            );
            continue;
        }
        let mut targets: BTreeSet<(&str, u16)> = BTreeSet::new();
        for (sname, svc) in &project.services {
            for p in &svc.ports {
                if p.published == Some(port) && p.protocol == Protocol::Tcp {
                    targets.insert((sname.as_str(), p.target));
                }
            }
        }
        let target = match targets.len() {
            1 => targets.first().map(|t| t.1),
            0 => {
                cx.error(
                    ErrorReason::InvalidSpec,
                    format!("{field}.port"),
                    format!(
                        "no compose service publishes TCP port {port} (e.g. ports: [\"{port}:8080\"])"
                    ),
                );
                None
            }
            _ => {
                let list: Vec<String> = targets
                    .iter()
                    .map(|(s, t)| format!("{s} (container port {t})"))
                    .collect();
                cx.error(
                    ErrorReason::InvalidCompose,
                    format!("{field}.port"),
                    format!(
                        "port {port} is published more than once: {}",
                        list.join(", ")
                    ),
                );
                None
            }
        };
        let Some(target) = target else { continue };
        ingress_ports.insert(port);
        let port_name = if is_port_name(&rule.name) {
            rule.name.clone()
        } else {
            format!("p{port}")
        };
        front_ports.push(ServicePort {
            name: Some(port_name),
            port: rule.port,
            target_port: Some(IntOrString::Int(i32::from(target))),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        });
        for host in &rule.hosts {
            ingress_rules.push(IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: front_name.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(rule.port),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            });
        }
    }

    for (name, svc) in &project.services {
        for p in &svc.ports {
            if let Some(ip) = &p.host_ip {
                cx.warn(
                    format!("{}.ports", crate::compose::service_path(name)),
                    format!("host_ip {ip} ignored: a Pod publishes no host ports"),
                );
            }
            if let Some(published) = p.published
                && !ingress_ports.contains(&published)
            {
                cx.warn(
                    format!("{}.ports", crate::compose::service_path(name)),
                    format!(
                        "published port {published} is not exposed outside the cluster (no spec.ingress.rules entry has port {published}); in the cluster it is {}:{}",
                        names.service(name),
                        p.target
                    ),
                );
            }
        }
    }

    let mut ingress = None;
    if !front_ports.is_empty() {
        services.push(Service {
            metadata: meta.meta(&front_name, "spec.ingress"),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                selector: Some(meta.selector()),
                ports: Some(front_ports),
                ..ServiceSpec::default()
            }),
            status: None,
        });
        let spec = app.spec.ingress.clone().unwrap_or_default();
        let mut annotations = BTreeMap::new();
        if let Some(resolver) = spec.cert_resolver.as_deref().filter(|r| !r.is_empty()) {
            annotations.insert(TRAEFIK_ENTRYPOINTS.to_owned(), "websecure".to_owned());
            annotations.insert(TRAEFIK_TLS.to_owned(), "true".to_owned());
            annotations.insert(TRAEFIK_CERT_RESOLVER.to_owned(), resolver.to_owned());
        }
        let ingress_name = meta.object_name(COMPONENT);
        let mut tls = None;
        if let Some(t) = &spec.tls {
            for (key, issuer) in [
                (CERT_MANAGER_CLUSTER_ISSUER, &t.cluster_issuer),
                (CERT_MANAGER_ISSUER, &t.issuer),
            ] {
                if let Some(issuer) = issuer {
                    annotations.insert(key.to_owned(), issuer.clone());
                }
            }
            let hosts: Vec<String> = ingress_rules
                .iter()
                .filter_map(|r| r.host.clone())
                .collect();
            tls = Some(vec![IngressTLS {
                hosts: (!hosts.is_empty()).then_some(hosts),
                secret_name: Some(
                    t.secret_name
                        .clone()
                        .unwrap_or_else(|| format!("{ingress_name}-tls")),
                ),
            }]);
        }
        // User annotations win over the generated ones.
        annotations.extend(spec.annotations.clone());
        annotations.insert(SOURCE_ANNOTATION.to_owned(), "spec.ingress".to_owned());
        let mut m = meta.meta(&ingress_name, "spec.ingress");
        m.annotations = Some(annotations);
        ingress = Some(Ingress {
            metadata: m,
            spec: Some(IngressSpec {
                ingress_class_name: spec.class_name.filter(|c| !c.is_empty()),
                rules: Some(ingress_rules),
                tls,
                ..IngressSpec::default()
            }),
            status: None,
        });
    }
    Network { services, ingress }
}
