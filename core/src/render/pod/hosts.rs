//! Name resolution inside the Pod: `extra_hosts`, and compose service names that no Service
//! name serves, as `hostAliases` or a hosts file Kompox writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::HostAlias;

use crate::compose::Project;
use crate::render::ctx::{Ctx, Names};
use crate::render::files::FileRef;

/// Where the hosts file is mounted.
pub(super) const ETC_HOSTS: &str = "/etc/hosts";
/// The key of the hosts file in its ConfigMap.
pub(crate) const HOSTS_KEY: &str = "hosts";

/// How names resolve inside the Pod: `extra_hosts`, and the compose service names that no
/// Service name serves.
#[derive(Default)]
pub(crate) struct Hosts {
    /// Pod `hostAliases` (kubelet adds them to the /etc/hosts it writes).
    pub aliases: Option<Vec<HostAlias>>,
    /// The hosts file to mount at /etc/hosts instead, when a service name cannot be a
    /// `hostAliases` entry (kubelet then leaves /etc/hosts alone).
    pub file: Option<FileRef>,
    /// Its content.
    pub file_content: Option<String>,
    /// The Pod's hostname when the hosts file is used (so it resolves, as kubelet's does).
    pub hostname: Option<String>,
}

/// Plans name resolution. All services share the Pod's network, so each compose service
/// name must resolve to the Pod: a name that is its own Service name resolves through the
/// Service (cluster DNS); another name that is a DNS-1123 subdomain once lowercased
/// (`db.local`, `1db`, `Web`) becomes a `hostAliases` entry for 127.0.0.1; a name with `_`
/// (`my_db`), which neither DNS nor `hostAliases` accepts, makes Kompox write the Pod's
/// /etc/hosts itself: ConfigMap `hosts_config_map` key `hosts`, mounted into every
/// container, with the localhost entries kubelet writes, the `extra_hosts`, the names, and the
/// Pod's `hostname` (set to `app_host`).
pub(crate) fn hosts(
    cx: &mut Ctx,
    project: &Project,
    names: &Names,
    hosts_config_map: &str,
    app_host: &str,
) -> Hosts {
    let mut by_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_host: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for (name, svc) in &project.services {
        for (host, ip) in &svc.extra_hosts {
            let field = format!("{}.extra_hosts", crate::compose::service_path(name));
            if ip == "host-gateway" {
                cx.warn(
                    field,
                    format!("{host}: host-gateway ignored: a Pod has no Docker host gateway"),
                );
                continue;
            }
            match by_host.get(host.as_str()) {
                Some((prev, _)) if prev == ip => {}
                Some((prev, owner)) => {
                    cx.warn(
                        field,
                        format!(
                            "{host}: {ip} ignored: {} maps it to {prev} and all services share one /etc/hosts",
                            crate::compose::service_path(owner)
                        ),
                    );
                }
                None => {
                    by_host.insert(host.clone(), (ip.clone(), name));
                    by_ip.entry(ip.clone()).or_default().insert(host.clone());
                }
            }
        }
    }
    let mut need_file = false;
    for name in project.services.keys() {
        if names.service(name) == *name || by_host.contains_key(name.as_str()) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        need_file |= !crate::naming::is_dns1123_subdomain(&lower);
        by_ip.entry(LOOPBACK.to_owned()).or_default().insert(lower);
    }
    let mut out = Hosts::default();
    if need_file {
        let hostname = crate::naming::k8s_name(app_host, crate::naming::MAX_LABEL_LEN);
        let mut text = String::from(
            "# Written by Kompox: compose service names resolve to this Pod.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        by_ip
            .entry(LOOPBACK.to_owned())
            .or_default()
            .insert(hostname.clone());
        for (ip, hosts) in &by_ip {
            text.push_str(ip);
            for h in hosts {
                text.push('\t');
                text.push_str(h);
            }
            text.push('\n');
        }
        out.file = Some(FileRef {
            kind: crate::hash::SourceKind::ConfigMap,
            name: hosts_config_map.to_owned(),
            key: HOSTS_KEY.to_owned(),
        });
        out.file_content = Some(text);
        out.hostname = Some(hostname);
    } else {
        let v: Vec<HostAlias> = by_ip
            .into_iter()
            .map(|(ip, hosts)| HostAlias {
                ip,
                hostnames: Some(hosts.into_iter().collect()),
            })
            .collect();
        out.aliases = (!v.is_empty()).then_some(v);
    }
    out
}

/// The address every compose service name resolves to when no Service name serves it: the
/// Pod's loopback, which all its containers share.
const LOOPBACK: &str = "127.0.0.1";
