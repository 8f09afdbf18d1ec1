//! The render context (collected errors and warnings) and the names, labels and metadata
//! every rendered object shares.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    APP_LABEL, COMPONENT, COMPONENT_LABEL, Diagnostic, ErrorReason, INSTANCE_LABEL, NAME_LABEL,
    SOURCE_ANNOTATION, Warning,
};
use crate::naming::{self, MANAGED_BY, MANAGED_BY_LABEL, MAX_LABEL_LEN};

/// Errors (each with its reason) and warnings found while rendering.
#[derive(Default)]
pub(crate) struct Ctx {
    pub errors: Vec<(ErrorReason, Diagnostic)>,
    pub warnings: Vec<Warning>,
}

impl Ctx {
    pub fn error(&mut self, reason: ErrorReason, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((
            reason,
            Diagnostic {
                path: path.into(),
                message: msg.into(),
            },
        ));
    }

    pub fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.into(),
            message: msg.into(),
        });
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// What every object of one app shares: its name, namespace and labels.
pub(crate) struct AppMeta {
    /// `metadata.name` of the KompoxApp.
    pub name: String,
    /// `metadata.namespace`, if set (the CLI may render without one).
    pub namespace: Option<String>,
    /// The app name as a label value.
    pub label: String,
}

impl AppMeta {
    pub fn new(name: &str, namespace: Option<&str>) -> AppMeta {
        AppMeta {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            label: label_value(name),
        }
    }

    /// The four labels every object carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_owned(), self.label.clone()),
            (INSTANCE_LABEL.to_owned(), self.label.clone()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            (APP_LABEL.to_owned(), self.label.clone()),
        ])
    }

    /// The selector of the app's Pod (Deployment and Services).
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (APP_LABEL.to_owned(), self.label.clone()),
            (COMPONENT_LABEL.to_owned(), COMPONENT.to_owned()),
        ])
    }

    /// The labels of the Pod template: the common labels plus the component.
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels();
        l.insert(COMPONENT_LABEL.to_owned(), COMPONENT.to_owned());
        l
    }

    /// Metadata of a rendered object: name, namespace, the common labels and the
    /// `kompox.dev/source` annotation.
    pub fn meta(&self, name: &str, source: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: self.namespace.clone(),
            labels: Some(self.labels()),
            annotations: Some(BTreeMap::from([(
                SOURCE_ANNOTATION.to_owned(),
                source.to_owned(),
            )])),
            ..ObjectMeta::default()
        }
    }

    /// `<app>-<suffix>` as an object name (at most 63 characters, hashed when longer).
    pub fn object_name(&self, suffix: &str) -> String {
        naming::truncate_with_hash(&format!("{}-{suffix}", self.name), MAX_LABEL_LEN)
    }
}

/// The Kubernetes names of the compose names an app uses ([`naming::k8s_names`]): one
/// derivation for every place a name appears, so containers, Services, PVCs and pod volumes
/// agree.
#[derive(Default)]
pub(crate) struct Names {
    /// Compose service → container name (a DNS-1123 label).
    containers: BTreeMap<String, String>,
    /// `spec.volumes[].name` → pod volume name and PVC suffix (a DNS-1123 label).
    volumes: BTreeMap<String, String>,
}

impl Names {
    pub fn new<'a>(
        services: impl IntoIterator<Item = &'a str>,
        volumes: impl IntoIterator<Item = &'a str>,
    ) -> Names {
        Names {
            containers: naming::k8s_names(services, MAX_LABEL_LEN),
            volumes: naming::k8s_names(volumes, MAX_LABEL_LEN),
        }
    }

    /// The container name of a compose service.
    pub fn container<'s>(&'s self, service: &'s str) -> &'s str {
        self.containers.get(service).map_or(service, String::as_str)
    }

    /// The Service name of a compose service: its container name, prefixed with `k4x-` when
    /// that does not start with a letter (Service names are DNS-1035 labels).
    pub fn service(&self, service: &str) -> String {
        let c = self.container(service);
        if c.starts_with(|ch: char| ch.is_ascii_lowercase()) {
            c.to_owned()
        } else {
            naming::truncate_with_hash(&format!("{}-{c}", naming::PREFIX), MAX_LABEL_LEN)
        }
    }

    /// The pod volume name of an app volume.
    pub fn volume<'s>(&'s self, volume: &'s str) -> &'s str {
        self.volumes.get(volume).map_or(volume, String::as_str)
    }
}

/// `s` as a label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(crate) fn label_value(s: &str) -> String {
    let ok = !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        s.to_owned()
    } else {
        naming::sanitize_label(s, MAX_LABEL_LEN)
    }
}

/// `s` as a DNS-1035 label (a Service name): a DNS-1123 label starting with a letter.
pub(crate) fn service_name(s: &str) -> String {
    let l = naming::sanitize_label(s, MAX_LABEL_LEN);
    if l.starts_with(|c: char| c.is_ascii_lowercase()) {
        l
    } else {
        naming::sanitize_label(&format!("{}-{s}", naming::PREFIX), MAX_LABEL_LEN)
    }
}

/// `name` as a pod volume name (a DNS-1123 label), prefixed so it cannot be mistaken for
/// an app volume.
pub(crate) fn generated_volume_name(kind: &str, name: &str) -> String {
    naming::sanitize_label(&format!("{}-{kind}-{name}", naming::PREFIX), MAX_LABEL_LEN)
}

/// Seconds from a duration, rounded up, at least 1, capped to `i32`.
pub(crate) fn seconds(d: std::time::Duration) -> i32 {
    let mut s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s += 1;
    }
    i32::try_from(s.max(1)).unwrap_or(i32::MAX)
}

/// A value Kubernetes will not expand: `command`, `args` and `env` values undergo `$(VAR)`
/// expansion (and `$$` → `$`), compose's do not; doubling every `$` keeps them literal. Values
/// without `$(` or `$$` are unaffected by the expansion and kept as they are.
pub(crate) fn literal(s: &str) -> String {
    if s.contains("$(") || s.contains("$$") {
        s.replace('$', "$$")
    } else {
        s.to_owned()
    }
}

/// Bytes as a Kubernetes quantity: `Gi`/`Mi`/`Ki` when exact, plain bytes otherwise.
pub(crate) fn bytes_quantity(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "Ti"),
        (1 << 30, "Gi"),
        (1 << 20, "Mi"),
        (1 << 10, "Ki"),
    ];
    for (size, unit) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

/// Millicores as a Kubernetes CPU quantity (`1`, `500m`).
pub(crate) fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn helpers() {
        assert_eq!(label_value("gitea"), "gitea");
        assert!(naming::is_dns1123_label(&label_value("my.app-")));
        assert_eq!(label_value(&"a".repeat(70)).len(), 63);
        assert_eq!(service_name("web"), "web");
        assert!(service_name("1web").starts_with("k4x-1web"));
        assert_eq!(seconds(Duration::from_millis(1500)), 2);
        assert_eq!(seconds(Duration::ZERO), 1);
        assert_eq!(seconds(Duration::from_secs(u64::MAX)), i32::MAX);
        assert_eq!(literal("a$b"), "a$b");
        assert_eq!(literal("$(date) $$"), "$$(date) $$$$");
        assert_eq!(bytes_quantity(536_870_912), "512Mi");
        assert_eq!(bytes_quantity(1_073_741_824), "1Gi");
        assert_eq!(bytes_quantity(1000), "1000");
        assert_eq!(bytes_quantity(0), "0");
        assert_eq!(cpu_quantity(500), "500m");
        assert_eq!(cpu_quantity(2000), "2");
    }
}
