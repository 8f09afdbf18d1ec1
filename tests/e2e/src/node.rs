//! The real node (`KOMPOX_REAL_NODE=1`, hack/README.md "The real node"): containerd, kubelet
//! and kube-proxy on this machine, registered in zone 1 next to the kwok nodes. Pods meant to
//! run there select it by label and tolerate its taint; the kwok-based tests never land on it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{LogParams, PostParams};
use serde_json::{Value, json};

use crate::wait_until;

/// The real node's name (hack/lib/node.sh `NODE_NAME`).
pub const NODE: &str = "real-node-1";
/// The label that selects it.
pub const LABEL: (&str, &str) = ("kompox.dev/node", "real");
/// The taint that keeps other Pods off it.
pub const TAINT: &str = "kompox.dev/real-node";
/// Its Pod network (hack/lib/node.sh `NODE_CIDR`); the node IP is `.1`.
pub const POD_PREFIX: &str = "10.85.0.";
/// The busybox image hack/images.sh builds from Debian's busybox-static.
pub const BUSYBOX: &str = "docker.io/library/busybox:1.35";
/// Kompox's image as hack/images.sh builds it (`kubectl kompox install`'s default `--image`).
pub const KOMPOX_IMAGE: &str = "ghcr.io/kompox/kompox:dev";
/// How long a Pod on the real node may take to start (image present, one sandbox).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Zone `n` of the local cluster (`<region>-<n>`), read from the kwok node of that zone.
pub fn zone(n: u8) -> Result<String> {
    let region = std::env::var("KOMPOX_REGION").unwrap_or_else(|_| "japaneast".into());
    Ok(format!("{region}-{n}"))
}

/// Whether the real node's containerd has `image` (crictl through its CRI socket).
pub fn has_image(image: &str) -> Result<bool> {
    let c = crate::cluster();
    let dir = std::env::var_os("KOMPOX_CLUSTER_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            c.admin_kubeconfig
                .parent()
                .map(std::path::Path::to_path_buf)
        })
        .context("no cluster dir")?;
    let sock = dir.join("node/run/containerd.sock");
    let out = std::process::Command::new(c.bin_dir.join("crictl"))
        .arg("--runtime-endpoint")
        .arg(format!("unix://{}", sock.display()))
        .args(["inspecti", "-q", image])
        .output()
        .context("running crictl")?;
    Ok(out.status.success())
}

/// Whether this run has the real node. Its tests return early (saying so) without it.
pub fn enabled() -> bool {
    std::env::var("KOMPOX_REAL_NODE").is_ok_and(|v| v == "1")
}

/// Prints why a real-node test did nothing; true when it should return.
pub fn skip(test: &str) -> bool {
    if enabled() {
        return false;
    }
    eprintln!("{test}: skipped, KOMPOX_REAL_NODE is not 1 (no real node in this cluster)");
    true
}

/// The scheduling part of a Pod spec that puts it on the real node.
pub fn placement() -> Value {
    json!({
        "nodeSelector": {LABEL.0: LABEL.1},
        "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
    })
}

/// A busybox Pod on the real node running `sh -c script`, with extra spec fields merged in.
pub fn busybox_pod(name: &str, script: &str, restart: &str, extra: Value) -> Result<Pod> {
    let mut spec = placement();
    let obj = spec.as_object_mut().context("placement is an object")?;
    obj.insert("restartPolicy".into(), json!(restart));
    obj.insert("terminationGracePeriodSeconds".into(), json!(1));
    obj.insert(
        "containers".into(),
        json!([{
            "name": "main",
            "image": BUSYBOX,
            "command": ["sh", "-c", script],
        }]),
    );
    if let Value::Object(more) = extra {
        for (k, v) in more {
            obj.insert(k, v);
        }
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }))?)
}

/// Creates the Pod and waits until its phase is one of `phases`; fails early when it ends in
/// another terminal phase, naming the container's state.
pub async fn run(pods: &Api<Pod>, pod: &Pod, phases: &[&str]) -> Result<Pod> {
    let name = pod.metadata.name.clone().context("pod has a name")?;
    pods.create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("creating Pod {name}"))?;
    wait_phase(pods, &name, phases).await
}

/// Waits until the Pod's phase is one of `phases` (see [`run`]).
pub async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str]) -> Result<Pod> {
    wait_until(
        &format!("Pod {name} in phase {phases:?} on {NODE}"),
        START_TIMEOUT,
        || async {
            let p = pods.get(name).await?;
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phases.contains(&phase.as_str()) {
                return Ok(true);
            }
            if phase == "Failed" || phase == "Succeeded" {
                bail!("Pod {name} ended {phase}: {}", container_state(&p));
            }
            Ok(false)
        },
    )
    .await?;
    Ok(pods.get(name).await?)
}

/// The containers' states, for an error message.
pub fn container_state(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| format!("{}: {:?}", c.name, c.state))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| "no container status".into())
}

/// The Pod's log (read through kube-apiserver from the kubelet).
pub async fn logs(pods: &Api<Pod>, name: &str) -> Result<String> {
    pods.logs(name, &LogParams::default())
        .await
        .with_context(|| format!("reading the log of Pod {name}"))
}

/// Runs a busybox Pod to completion and returns its log.
pub async fn run_to_completion(pods: &Api<Pod>, name: &str, script: &str) -> Result<String> {
    let pod = busybox_pod(name, script, "Never", json!({}))?;
    run(pods, &pod, &["Succeeded"]).await?;
    logs(pods, name).await
}

/// The namespace annotations that send every Pod of a namespace to the real node: kube-apiserver
/// runs the PodNodeSelector and PodTolerationRestriction admission plugins while the real node
/// is on (hack/cluster.sh), which merge them into each Pod created there. Zone 1 has a kwok node
/// too, so an app's zone alone does not pick the real node.
pub fn namespace_annotations() -> Value {
    json!({
        "scheduler.alpha.kubernetes.io/node-selector": format!("{}={}", LABEL.0, LABEL.1),
        "scheduler.alpha.kubernetes.io/defaultTolerations":
            json!([{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]).to_string(),
    })
}

/// Annotates the (still empty) namespace so that its Pods run on the real node.
pub async fn send_pods_to_real_node(client: &kube::Client, ns: &str) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.patch(
        ns,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"annotations": namespace_annotations()}})),
    )
    .await
    .with_context(|| format!("annotating namespace {ns} for the real node"))?;
    Ok(())
}

/// Imports the images hack/images.sh built into the node's containerd and checks each of
/// `images` is there.
pub async fn import_images(images: &[&str]) -> Result<()> {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new("bash")
            .arg(crate::repo_root().join("hack/images.sh"))
            .arg("import-node")
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!(
            "hack/images.sh import-node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for image in images {
        if !has_image(image)? {
            bail!(
                "{image} is not on the real node: build it with `make images` (hack/images.sh build)"
            );
        }
    }
    Ok(())
}

/// `curl` through Traefik's `websecure` NodePort on 127.0.0.1 for `host` (the name resolved
/// there, no certificate check: Traefik serves its default certificate without ACME), with
/// extra curl arguments. Returns the HTTP status and the body.
pub fn https_via_traefik(
    port: i32,
    host: &str,
    path: &str,
    extra: &[&str],
) -> Result<(u16, String)> {
    let out = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let code: u16 = code.trim().parse().with_context(|| {
        format!(
            "curl {host}{path}: no status ({})",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((code, body.to_owned()))
}
