//! The foundation's smoke test: the local control plane schedules Pods onto zoned kwok nodes.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kompox_e2e::{TestNamespace, admin_client, wait_until};
use kube::api::{Api, ListParams, PostParams};

#[tokio::test]
async fn three_zoned_nodes_are_ready() -> Result<()> {
    let client = admin_client().await?;
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let mut zones: Vec<String> = nodes
        .items
        .iter()
        .filter_map(|n| {
            n.metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    zones.sort();
    assert_eq!(zones.len(), 3, "three kwok nodes, each with a zone label");
    assert!(
        zones
            .iter()
            .enumerate()
            .all(|(i, z)| z.ends_with(&format!("-{}", i + 1)))
    );
    Ok(())
}

#[tokio::test]
async fn deployment_follows_required_zone_affinity_and_runs() -> Result<()> {
    let client = admin_client().await?;
    let zone2 = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await?
        .items
        .into_iter()
        .find_map(|n| {
            let z = n
                .metadata
                .labels?
                .get("topology.kubernetes.io/zone")?
                .clone();
            z.ends_with("-2").then_some((n.metadata.name?, z))
        });
    let Some((node2, zone2)) = zone2 else {
        anyhow::bail!("no node in zone -2");
    };
    let ns = TestNamespace::create(&client, "smoke", &[]).await?;
    let deploy: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "zoned"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "zoned"}},
            "template": {
                "metadata": {"labels": {"app": "zoned"}},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{
                            "key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone2],
                        }]}],
                    }}},
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                },
            },
        },
    }))?;
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deploy)
        .await?;

    let pods: Api<Pod> = ns.api();
    wait_until(
        "2 Running pods on the zone-2 node",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            let node2 = node2.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=zoned"))
                    .await?;
                let running_on_2 = list
                    .items
                    .iter()
                    .filter(|p| {
                        let spec_node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
                        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                        spec_node == Some(node2.as_str()) && phase == Some("Running")
                    })
                    .count();
                Ok(list.items.len() == 2 && running_on_2 == 2)
            }
        },
    )
    .await?;
    ns.cleanup().await
}

#[tokio::test]
async fn kompox_crds_install_and_accept_the_roadmap_disk() -> Result<()> {
    kompox_e2e::ensure_crds().await?;
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "crds", &[]).await?;
    let disks: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::api::ApiResource {
            group: "k8s.kompox.dev".into(),
            version: "v1alpha1".into(),
            api_version: "k8s.kompox.dev/v1alpha1".into(),
            kind: "KompoxDisk".into(),
            plural: "kompoxdisks".into(),
        },
    );
    let disk: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": "default"},
        "spec": {"size": "10Gi", "zone": "1", "deletionPolicy": "Orphan"},
    }))?;
    disks.create(&PostParams::default(), &disk).await?;
    let bad: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": "bad"},
        "spec": {"size": "10Gi", "deletionPolicy": "Shred"},
    }))?;
    let err = disks
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("an unknown deletionPolicy is rejected by the schema");
    assert!(err.to_string().contains("deletionPolicy"), "{err}");
    ns.cleanup().await
}
