//! The `make demo` flow as a test: `kubectl kompox install --local`, `apply` of samples/gitea
//! in a fresh workspace, Ready, the rendered view without Secret values, the Pod's injected
//! zone affinity and env-hash, a snapshot restored into a new disk, idempotent re-install and
//! re-apply, then the app namespace deleted and `uninstall --local`.
//!
//! The APIService and the MutatingWebhookConfiguration are cluster-wide: this test installs
//! them and removes them at the end. The apiserver and webhook e2e tests live in other test
//! binaries, which cargo runs one after another, so they do not overlap with it. The local
//! servers' state goes to a temporary KOMPOX_CACHE, so a demo left running by a person is not
//! stopped by `uninstall --local` here (though its registrations are replaced).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kompox_e2e::cli::{copy_sample, kompox, temp_dir};
use kompox_e2e::{admin_client, wait_until};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_flow_install_apply_snapshot_restore_uninstall() -> Result<()> {
    let started = Instant::now();
    let cache = temp_dir("demo-cache")?;
    let app_dir = temp_dir("demo-app")?;
    copy_sample("gitea", &app_dir)?;
    let ws = format!("e2e{:06x}", rand::random::<u32>() & 0xff_ffff);
    let compose = app_dir.join("compose.yml").to_string_lossy().into_owned();
    let app_yml = app_dir.join("app.yml").to_string_lossy().into_owned();
    let k = |args: Vec<String>| {
        let cache = cache.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                kompox(&cache, &refs)
            })
            .await
            .context("joining")?
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    let result = async {
        // 1. install --local, twice: the second run reuses the servers.
        let r = k(s(&["install", "--local", "--acme-email", "e2e@example.com"])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains("APIService v1alpha1.subresources.k8s.kompox.dev is Available"), "{r:?}");
        let r = k(s(&["install", "--local"])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains("kompox-apiserver already runs (reused)"), "{r:?}");

        // 2. apply; the namespace is recorded and reused by a second apply.
        let r = k(s(&["apply", "-f", &compose, "--app", &app_yml, "--workspace", &ws, "--timeout", "180s"])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains("gitea is Ready"), "{r:?}");
        anyhow::ensure!(!r.stdout.contains("demo-db-password") && !r.stderr.contains("demo-db-password"), "a Secret value was printed");
        let state: Value = serde_json::from_str(&std::fs::read_to_string(app_dir.join(".kompox/state.json"))?)?;
        let ns = state["apps"][format!("{ws}/gitea")]["namespace"].as_str().context("namespace in state.json")?.to_owned();
        anyhow::ensure!(ns.starts_with(&format!("k4x-{ws}-app-")), "{ns}");
        let r = k(s(&["apply", "-f", &compose, "--app", &app_yml, "--workspace", &ws])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains(&format!("namespace {ns} (reused)")), "{r:?}");

        let client = admin_client().await?;
        let nsobj = Api::<Namespace>::all(client.clone()).get(&ns).await?;
        let labels = nsobj.metadata.labels.unwrap_or_default();
        anyhow::ensure!(labels.get("app.kubernetes.io/managed-by").map(String::as_str) == Some("kompox"), "{:?} != {:?}", labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("kompox"));
        anyhow::ensure!(labels.get("kompox.dev/tenant") == Some(&ws), "{:?} != {:?}", labels.get("kompox.dev/tenant"), Some(&ws));
        anyhow::ensure!(labels.contains_key("kompox.dev/app-id"));

        // 3. rendered through kube-apiserver, redacted.
        let r = k(s(&["rendered", "gitea", "-n", &ns, "-o", "json"])).await?.ok()?;
        let list: Value = serde_json::from_str(&r.stdout)?;
        let kinds: Vec<&str> = list["items"].as_array().context("items")?.iter().filter_map(|o| o["kind"].as_str()).collect();
        anyhow::ensure!(kinds.contains(&"Deployment") && kinds.contains(&"Ingress"), "{kinds:?}");
        anyhow::ensure!(!r.stdout.contains("demo-db-password"), "rendered shows a Secret value");

        // 4. the Pod: zone affinity from the disk and the env hash.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod = pods.list(&ListParams::default()).await?.items.into_iter().next().context("no Pod")?;
        let pj = serde_json::to_value(&pod)?;
        let zones = &pj["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0];
        anyhow::ensure!(zones["key"] == "topology.kubernetes.io/zone", "{pj}");
        anyhow::ensure!(zones["values"][0] == "japaneast-1", "{pj}");
        let hash = pj["metadata"]["annotations"]["kompox.dev/env-hash"].as_str().unwrap_or_default();
        anyhow::ensure!(hash.starts_with("hmac-sha256:"), "{pj}");

        // 5. status, diff.
        let r = k(s(&["status", "gitea", "-f", &compose])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains("ready=true") && r.stdout.contains("gitea.example.com"), "{r:?}");
        let r = k(s(&["diff", "gitea", "-n", &ns])).await?.ok()?;
        anyhow::ensure!(!r.stdout.contains("demo-db-password"), "diff shows a Secret value");

        // 6. snapshot → restore into a new disk.
        k(s(&["snapshot", "create", "snap1", "-n", &ns, "--disk", "default", "--timeout", "120s"])).await?.ok()?;
        k(s(&["snapshot", "restore", "snap1", "-n", &ns, "--to", "restored", "--timeout", "120s"])).await?.ok()?;
        let r = k(s(&["disk", "list", "-n", &ns])).await?.ok()?;
        anyhow::ensure!(r.stdout.lines().any(|l| l.starts_with("restored") && l.contains("True") && l.contains("snap1")), "{r:?}");
        let r = k(s(&["snapshot", "list", "-n", &ns])).await?.ok()?;
        anyhow::ensure!(r.stdout.contains("snap1"), "{r:?}");

        // 7. the app goes with its namespace (while the controller still runs its finalizers).
        Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::default()).await?;
        wait_until(&format!("namespace {ns} gone"), Duration::from_secs(120), || {
            let api = Api::<Namespace>::all(client.clone());
            let ns = ns.clone();
            async move { Ok(api.get_opt(&ns).await?.is_none()) }
        })
        .await?;
        anyhow::Ok(())
    }
    .await;

    // Always uninstall, also after a failure.
    let un = k(s(&["uninstall", "--local"])).await;
    eprintln!("demo flow took {:.1}s", started.elapsed().as_secs_f32());
    result?;
    let un = un?.ok()?;
    assert!(
        un.stdout.contains("kompox-controller") && un.stdout.contains("stopped"),
        "{un:?}"
    );
    let client = admin_client().await?;
    let gone = kompox_e2e::kubectl(&[
        "get",
        "apiservice",
        "v1alpha1.subresources.k8s.kompox.dev",
        "--ignore-not-found",
    ])?;
    if !gone.trim().is_empty() {
        bail!("APIService still there: {gone}");
    }
    drop(client);
    let _ = std::fs::remove_dir_all(&app_dir);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
