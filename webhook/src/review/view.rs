//! Slim views of the admitted objects: they decode only the fields the decision reads and
//! build a k8s-openapi projection of the object from them, so [`crate::mutate`] and
//! `kompox_core::hash::pod_spec_env_refs` keep working on the real types.
//!
//! Decoding a full `Pod` spends most of its time on fields the webhook never reads
//! (`managedFields`, `status`, resources, probes…); serde skips unknown fields without
//! allocating. Each field read here keeps its JSON presence (`Option`), because the patch
//! paths depend on which parents exist.

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvFromSource, EnvVar, EphemeralContainer, Pod, PodSpec, PodTemplateSpec,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

mod wire {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta {
        pub name: Option<String>,
        pub generate_name: Option<String>,
        pub namespace: Option<String>,
        pub annotations: Option<BTreeMap<String, String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Container {
        #[serde(default)]
        pub name: String,
        pub env: Option<Vec<EnvVar>>,
        pub env_from: Option<Vec<EnvFromSource>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PodSpec {
        pub containers: Option<Vec<Container>>,
        pub init_containers: Option<Vec<Container>>,
        pub ephemeral_containers: Option<Vec<Container>>,
        pub volumes: Option<Vec<Volume>>,
        pub affinity: Option<Affinity>,
    }

    #[derive(Deserialize)]
    pub struct Pod {
        #[serde(default)]
        pub metadata: Meta,
        pub spec: Option<PodSpec>,
    }

    #[derive(Deserialize)]
    pub struct Template {
        pub metadata: Option<Meta>,
        pub spec: Option<PodSpec>,
    }

    #[derive(Deserialize)]
    pub struct WorkloadSpec {
        pub template: Option<Template>,
    }

    #[derive(Deserialize)]
    pub struct Workload {
        #[serde(default)]
        pub metadata: Meta,
        pub spec: Option<WorkloadSpec>,
    }
}

impl From<wire::Meta> for ObjectMeta {
    fn from(m: wire::Meta) -> Self {
        ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            annotations: m.annotations,
            ..ObjectMeta::default()
        }
    }
}

fn container(c: wire::Container) -> Container {
    Container {
        name: c.name,
        env: c.env,
        env_from: c.env_from,
        ..Container::default()
    }
}

impl From<wire::PodSpec> for PodSpec {
    fn from(s: wire::PodSpec) -> Self {
        PodSpec {
            containers: s.containers.into_iter().flatten().map(container).collect(),
            init_containers: s
                .init_containers
                .map(|cs| cs.into_iter().map(container).collect()),
            ephemeral_containers: s.ephemeral_containers.map(|cs| {
                cs.into_iter()
                    .map(|c| EphemeralContainer {
                        name: c.name,
                        env: c.env,
                        env_from: c.env_from,
                        ..EphemeralContainer::default()
                    })
                    .collect()
            }),
            volumes: s.volumes,
            affinity: s.affinity,
            ..PodSpec::default()
        }
    }
}

/// A Pod as far as the decision reads it: metadata (name, generateName, namespace,
/// annotations) and the spec's containers' `env`/`envFrom`, `volumes` and `affinity`.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "wire::Pod")]
pub struct PodView(pub Pod);

impl From<wire::Pod> for PodView {
    fn from(p: wire::Pod) -> Self {
        PodView(Pod {
            metadata: p.metadata.into(),
            spec: p.spec.map(Into::into),
            status: None,
        })
    }
}

/// A Deployment or StatefulSet as far as the decision reads it: metadata and the pod
/// template (`K` only names the kind).
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "wire::Workload")]
pub struct WorkloadView<K> {
    /// Name, generateName, namespace, annotations.
    pub metadata: ObjectMeta,
    /// `spec.template`, if present.
    pub template: Option<PodTemplateSpec>,
    #[serde(skip)]
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> From<wire::Workload> for WorkloadView<K> {
    fn from(w: wire::Workload) -> Self {
        WorkloadView {
            metadata: w.metadata.into(),
            template: w.spec.and_then(|s| s.template).map(|t| PodTemplateSpec {
                metadata: t.metadata.map(Into::into),
                spec: t.spec.map(Into::into),
            }),
            _kind: std::marker::PhantomData,
        }
    }
}

/// A Deployment's view.
pub type DeploymentView = WorkloadView<Deployment>;
/// A StatefulSet's view.
pub type StatefulSetView = WorkloadView<StatefulSet>;

impl kube::Resource for PodView {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    crate::type_info_of!(Pod);
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

impl<K> kube::Resource for WorkloadView<K>
where
    K: kube::Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    crate::type_info_of!(K);
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The view keeps exactly what the decision reads, with the same presence as the full
    /// object: env refs and the decision agree between the two.
    #[test]
    fn pod_view_matches_the_full_pod_where_it_matters() {
        let v = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"},
                "annotations": {"x": "y"}, "managedFields": [{"manager": "m", "fieldsV1": {"f:a": {}}}]},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}},
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "cm"}}]}],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s2"}}]}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "s3"}}]}}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}},
                "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"phase": "Pending"}});
        let full: Pod = serde_json::from_value(v.clone()).unwrap();
        let view: PodView = serde_json::from_value(v).unwrap();
        let (fs, vs) = (full.spec.as_ref().unwrap(), view.0.spec.as_ref().unwrap());
        assert_eq!(
            kompox_core::hash::pod_spec_env_refs(fs),
            kompox_core::hash::pod_spec_env_refs(vs)
        );
        assert_eq!(fs.volumes, vs.volumes);
        assert_eq!(fs.affinity, vs.affinity);
        assert_eq!(full.metadata.annotations, view.0.metadata.annotations);
        assert_eq!(view.0.metadata.managed_fields, None);
        let lookup = crate::testing::Fake::new().kompox_claim("ns", "data", "main", "2");
        assert_eq!(
            crate::mutate::mutate_pod("ns", &full, &lookup, &crate::testing::key()),
            crate::mutate::mutate_pod("ns", &view.0, &lookup, &crate::testing::key())
        );
    }

    #[test]
    fn presence_is_kept() {
        let bare: PodView = serde_json::from_value(json!({"metadata": {}})).unwrap();
        assert!(bare.0.spec.is_none() && bare.0.metadata.annotations.is_none());
        let w: DeploymentView = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": []}}}}))
        .unwrap();
        let t = w.template.unwrap();
        assert!(t.metadata.is_none(), "no template metadata in, none out");
        let w: StatefulSetView = serde_json::from_value(json!({"metadata": {},
            "spec": {"template": {"metadata": {"annotations": {}}}}}))
        .unwrap();
        let t = w.template.unwrap();
        assert_eq!(t.metadata.unwrap().annotations, Some(BTreeMap::new()));
        assert!(t.spec.is_none());
        assert_eq!(
            <StatefulSetView as kube::Resource>::kind(&()),
            "StatefulSet"
        );
        assert_eq!(<DeploymentView as kube::Resource>::group(&()), "apps");
        assert_eq!(<PodView as kube::Resource>::plural(&()), "pods");
        assert_eq!(<PodView as kube::Resource>::version(&()), "v1");
    }
}
