//! `kubectl-kompox` against the real local control plane.
//!
//! - Error paths: each failure exits non-zero with a message on stderr that names the file,
//!   field, object or reason.
//! - [`local_servers_kompoxops_disks_snapshots_and_lists`]: `install --local` (the controller
//!   scoped by `--watch-namespaces` to this test's workspace, so it leaves other tests'
//!   namespaces alone), then `apply --kompoxops`, `disk create|list|attach|detach|delete`,
//!   `snapshot create|list`, `-o wide`, a wait that times out, and `uninstall --local`. The
//!   APIService and the MutatingWebhookConfiguration it registers are cluster-wide, as in the
//!   demo test.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot};
use kompox_e2e::cli::{
    LocalInstall, Run, kompox, kompox_async, row, table, temp_dir, with_local_install,
};
use kompox_e2e::controller::driver_volumes;
use kompox_e2e::{cluster, ensure_crds, wait_until};
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

#[test]
fn missing_compose_file_is_named() -> Result<()> {
    let dir = temp_dir("cli-missing")?;
    let f = dir.join("nope.yml");
    let r = kompox(&dir, &["apply", "-f", &f.to_string_lossy()])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("nope.yml: compose file not found"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    Ok(())
}

#[test]
fn invalid_compose_names_the_field_before_touching_the_cluster() -> Result<()> {
    let dir = temp_dir("cli-invalid")?;
    let f = dir.join("compose.yml");
    std::fs::write(
        &f,
        "services:\n  web:\n    image: nginx\n    ports: [\"x\"]\n",
    )?;
    // An unreachable cluster: the compose error must come first.
    let r = kompox(
        &dir,
        &[
            "apply",
            "-f",
            &f.to_string_lossy(),
            "--kubeconfig",
            "/nonexistent",
        ],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("services.web.ports[0]"), "{r:?}");
    assert!(!dir.join(".kompox").exists(), "no state for an invalid app");
    Ok(())
}

#[test]
fn unknown_app_is_not_found() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ensure_crds())?;
    let dir = temp_dir("cli-unknown")?;
    let r = kompox(&dir, &["status", "no-such-app", "-n", "default"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("KompoxApp default/no-such-app: not found"),
        "{r:?}"
    );
    let r = kompox(&dir, &["status", "no-such-app-anywhere"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not found in any namespace"), "{r:?}");
    Ok(())
}

#[test]
fn unreachable_cluster_is_said_plainly() -> Result<()> {
    let dir = temp_dir("cli-unreachable")?;
    let kc = dir.join("kubeconfig");
    // Port 1 on loopback: nothing listens.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
    )?;
    let r = kompox(
        &dir,
        &[
            "disk",
            "list",
            "-n",
            "default",
            "--kubeconfig",
            &kc.to_string_lossy(),
        ],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot reach the cluster at https://127.0.0.1:1"),
        "{r:?}"
    );
    let r = kompox(&dir, &["status", "x", "--context", "nope"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("--context \"nope\": no such context"),
        "{r:?}"
    );
    Ok(())
}

#[test]
fn forbidden_shows_the_403_reason() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ensure_crds())?;
    let dir = temp_dir("cli-rbac")?;
    let user = cluster().user_kubeconfig.to_string_lossy().into_owned();
    let r = kompox(
        &dir,
        &["status", "gitea", "-n", "default", "--kubeconfig", &user],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Forbidden, HTTP 403"), "{r:?}");
    assert!(r.stderr.contains("User \"dev\" cannot get"), "{r:?}");
    Ok(())
}

#[test]
fn install_dry_run_client_prints_everything_without_secret_values() -> Result<()> {
    let dir = temp_dir("cli-dry")?;
    let r = kompox(
        &dir,
        &[
            "install",
            "--dry-run=client",
            "--acme-email",
            "a@example.com",
        ],
    )?
    .ok()?;
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: APIService",
        "kind: MutatingWebhookConfiguration",
        "kind: NetworkPolicy",
        "kind: IngressClass",
        "kind: Deployment",
        "certificatesresolvers.production.acme.email=a@example.com",
        "image: ghcr.io/kompox/kompox:dev",
    ] {
        assert!(r.stdout.contains(kind), "missing {kind}");
    }
    assert!(!r.stdout.contains("PRIVATE KEY"), "a key was printed");
    // In the cluster the servers make their certificates and the hash key: no Secret at all.
    assert!(!r.stdout.contains("kind: Secret"), "a Secret was printed");
    // --local's processes get install's own, shown redacted.
    let local = kompox(&dir, &["install", "--local", "--dry-run=client"])?.ok()?;
    assert!(!local.stdout.contains("PRIVATE KEY"), "a key was printed");
    assert!(
        local.stdout.contains("ca.key: <redacted>"),
        "the CA key is not redacted"
    );
    Ok(())
}

const KOMPOXOPS_COMPOSE: &str = "\
services:
  web:
    image: nginx:1.29
    ports:
      - \"8080:80\"
    volumes:
      - ./html:/usr/share/nginx/html
";

/// A legacy kompoxops.yml as today's Kompox users have them (the sections kompox does not read
/// included).
const KOMPOXOPS_YML: &str = "\
version: v1
service:
  name: legacy
provider:
  name: aks1
  driver: aks
cluster:
  name: cluster1
app:
  name: legacy-web
  compose: compose.yml
  ingress:
    certResolver: staging
    rules:
      - name: main
        port: 8080
        hosts: [web.example.test]
  deployment:
    zone: \"2\"
  volumes:
    - name: data
      size: 1Gi
      options:
        sku: Premium_LRS
";

#[test]
fn kompoxops_errors_name_the_field_before_touching_the_cluster() -> Result<()> {
    let dir = temp_dir("cli-kompoxops-invalid")?;
    let compose = dir.join("compose.yml");
    std::fs::write(&compose, KOMPOXOPS_COMPOSE)?;
    let ops = dir.join("kompoxops.yml");
    let run = |text: &str| -> Result<Run> {
        std::fs::write(&ops, text)?;
        kompox(
            &dir,
            &[
                "apply",
                "-f",
                &compose.to_string_lossy(),
                "--kompoxops",
                &ops.to_string_lossy(),
                "--kubeconfig",
                "/nonexistent",
            ],
        )
    };
    let r = run("version: v1\nservice:\n  name: x\n")?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(r.stderr.contains("kompoxops.yml: app: missing"), "{r:?}");
    let r = run("app:\n  name: Legacy_Web\n")?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr
            .contains("app.name: \"Legacy_Web\" is not a DNS-1123 label"),
        "{r:?}"
    );
    // Every problem of the app section at once, each by its path.
    let r = run(
        "app:\n  name: web\n  ingress:\n    rules:\n      - {name: main, port: 70000}\n      - {name: other}\n  volumes:\n    - name: data\n      options: {sku: [a, b]}\n    - size: 1Gi\n",
    )?;
    ensure!(r.code == 1, "{r:?}");
    for want in [
        "app.ingress.rules[0].port: 70000 is not a port (1-65535)",
        "app.ingress.rules[1]: needs name and port",
        "app.volumes[0].options.sku: expected a string or number",
        "app.volumes[1].name: missing",
    ] {
        ensure!(r.stderr.contains(want), "missing {want:?} in {r:?}");
    }
    ensure!(
        !r.stderr.contains("/nonexistent"),
        "the cluster was contacted before the input was checked: {r:?}"
    );
    ensure!(!dir.join(".kompox").exists(), "no state for an invalid app");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_servers_kompoxops_disks_snapshots_and_lists() -> Result<()> {
    with_local_install("cli", |env| Box::pin(with_app(env))).await
}

/// `apply --kompoxops` into a fresh namespace, then the disk and snapshot flows in it (the
/// namespace is deleted by [`with_local_install`] while the controller still runs its
/// finalizers).
async fn with_app(env: &LocalInstall) -> Result<()> {
    let (cache, dir, ws) = (env.cache.as_path(), env.dir.as_path(), env.ws.as_str());
    let compose = dir.join("compose.yml");
    std::fs::write(&compose, KOMPOXOPS_COMPOSE)?;
    let ops = dir.join("kompoxops.yml");
    std::fs::write(&ops, KOMPOXOPS_YML)?;
    let (compose, ops) = (compose.to_string_lossy(), ops.to_string_lossy());
    let applied = kompox_async(
        cache,
        &[
            "apply",
            "-f",
            &compose,
            "--kompoxops",
            &ops,
            "--workspace",
            ws,
            "--timeout",
            "180s",
        ],
    )
    .await?;
    let ns = env
        .namespace_of("legacy-web")
        .with_context(|| format!("{applied:?}"))?;
    let client = env.client.clone();
    kompoxops_applied(&client, &ns, applied).await?;
    // Without -n, the namespace of the kubeconfig's context, as kubectl.
    let kc = dir.join("kubeconfig");
    std::fs::copy(&cluster().admin_kubeconfig, &kc)?;
    let set = std::process::Command::new(cluster().bin_dir.join("kubectl"))
        .args(["config", "set-context", "--current", "--namespace", &ns])
        .arg("--kubeconfig")
        .arg(&kc)
        .output()?;
    ensure!(set.status.success(), "{set:?}");
    let names = |r: &Run| -> Vec<String> {
        table(&r.stdout)
            .into_iter()
            .filter_map(|row| row.first().cloned())
            .collect()
    };
    let with_n = kompox_async(cache, &["disk", "list", "-n", &ns])
        .await?
        .ok()?;
    let from_context = kompox_async(
        cache,
        &["disk", "list", "--kubeconfig", &kc.to_string_lossy()],
    )
    .await?
    .ok()?;
    ensure!(
        names(&with_n).len() > 1 && names(&with_n) == names(&from_context),
        "{with_n:?}\n{from_context:?}"
    );
    disk_flows(cache, &client, &ns).await?;
    snapshot_flows(cache, &client, &ns).await
}

/// What `apply --kompoxops` made of the legacy file: the app's ingress, zone and volumes, the
/// disk's size, zone and options, the compose ConfigMap, and a Ready app whose Pod the
/// webhook pinned to zone 2.
async fn kompoxops_applied(client: &Client, ns: &str, r: Run) -> Result<()> {
    let r = r.ok()?;
    ensure!(r.stderr.contains("app.compose: not read"), "{r:?}");
    ensure!(
        r.stdout.contains(&format!("namespace {ns} created")),
        "{r:?}"
    );
    ensure!(
        r.stdout.contains("KompoxApp legacy-web Ready: True"),
        "no progress line: {r:?}"
    );
    ensure!(
        r.stdout
            .contains(&format!("KompoxApp {ns}/legacy-web is Ready")),
        "{r:?}"
    );

    let app = Api::<KompoxApp>::namespaced(client.clone(), ns)
        .get("legacy-web")
        .await?;
    let spec = serde_json::to_value(&app.spec)?;
    ensure!(
        spec["ingress"]
            == serde_json::json!({
                "className": "traefik", "certResolver": "staging",
                "rules": [{"name": "main", "port": 8080, "hosts": ["web.example.test"]}],
            }),
        "{spec}"
    );
    ensure!(spec["deployment"]["zone"] == "2", "{spec}");
    ensure!(
        spec["volumes"] == serde_json::json!([{"name": "data", "diskRef": {"name": "data"}}]),
        "{spec}"
    );
    let disk = Api::<KompoxDisk>::namespaced(client.clone(), ns)
        .get("data")
        .await?;
    ensure!(disk.spec.size.0 == "1Gi", "{:?}", disk.spec);
    ensure!(disk.spec.zone.as_deref() == Some("2"), "{:?}", disk.spec);
    ensure!(
        disk.spec.options.get("sku").map(String::as_str) == Some("Premium_LRS"),
        "{:?}",
        disk.spec
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("legacy-web-compose")
        .await?;
    ensure!(
        cm.data
            .unwrap_or_default()
            .get("compose.yml")
            .map(String::as_str)
            == Some(KOMPOXOPS_COMPOSE),
        "the compose ConfigMap is not the compose file"
    );
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("no Pod")?;
    let terms = serde_json::to_value(&pod)?["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .clone();
    ensure!(
        terms.to_string().contains("japaneast-2"),
        "the Pod is not pinned to zone 2: {terms}"
    );
    Ok(())
}

async fn disk_status(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<kompox_core::api::KompoxDiskStatus> {
    Ok(Api::<KompoxDisk>::namespaced(client.clone(), ns)
        .get(name)
        .await?
        .status
        .unwrap_or_default())
}

/// Waits until the controller has (`Some`) or has not (`None`) bound disk `name` to an app
/// volume.
async fn wait_attached(client: &Client, ns: &str, name: &str, to: Option<&str>) -> Result<()> {
    wait_until(
        &format!("KompoxDisk {ns}/{name} attachedTo {to:?}"),
        Duration::from_secs(90),
        || async move {
            let at = disk_status(client, ns, name)
                .await?
                .attached_to
                .map(|a| format!("{}/{}", a.app, a.volume));
            Ok(at.as_deref() == to)
        },
    )
    .await
}

/// `disk attach|detach spare --app legacy-web --volume extra`: what it says, the app's
/// volumes after it, and the controller binding or releasing the disk.
async fn move_spare(cache: &Path, client: &Client, ns: &str, verb: &str) -> Result<()> {
    let attach = verb == "attach";
    let args = [
        "disk",
        verb,
        "spare",
        "--app",
        "legacy-web",
        "--volume",
        "extra",
        "-n",
        ns,
    ];
    let r = kompox_async(cache, &args).await?.ok()?;
    let said = format!(
        "kompoxdisk {ns}/spare {verb}ed {} legacy-web/extra",
        if attach { "to" } else { "from" }
    );
    ensure!(r.stdout.contains(&said), "{r:?}");
    let app = Api::<KompoxApp>::namespaced(client.clone(), ns)
        .get("legacy-web")
        .await?;
    let named = app
        .spec
        .volumes
        .iter()
        .any(|v| v.name == "extra" && v.disk_ref.name == "spare");
    ensure!(named == attach, "after {verb}: {:?}", app.spec.volumes);
    wait_attached(client, ns, "spare", attach.then_some("legacy-web/extra")).await
}

async fn disk_flows(cache: &Path, client: &Client, ns: &str) -> Result<()> {
    let k = |args: Vec<&str>| {
        let mut all = args;
        all.extend(["-n", ns]);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            kompox_async(cache, &refs).await
        }
    };
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);

    // create waits for Ready, printing the conditions as they change.
    let r = k(vec![
        "disk", "create", "spare", "--size", "1Gi", "--zone", "2",
    ])
    .await?
    .ok()?;
    ensure!(
        r.stdout.contains(&format!("kompoxdisk {ns}/spare created")),
        "{r:?}"
    );
    ensure!(
        r.stdout
            .contains(&format!("kompoxdisk {ns}/spare is Ready")),
        "{r:?}"
    );
    ensure!(
        r.stdout.contains("Ready="),
        "no condition was printed while waiting: {r:?}"
    );
    ensure!(
        disk_status(client, ns, "spare")
            .await?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "create returned before the disk was Ready"
    );

    // list: the normal columns, and -o wide's extra ones with the live values.
    let normal = [
        "NAME",
        "SIZE",
        "ZONE",
        "READY",
        "ATTACHED-TO",
        "FROM-SNAPSHOT",
        "AGE",
    ];
    let t = table(&k(vec!["disk", "list"]).await?.ok()?.stdout);
    ensure!(
        t.first().map(Vec::as_slice) == Some(&normal.map(String::from)[..]),
        "{t:?}"
    );
    let data = row(&t, "data")?;
    ensure!(
        data["READY"] == "True" && data["ATTACHED-TO"] == "legacy-web/data",
        "{data:?}"
    );
    ensure!(
        data["ZONE"] == "japaneast-2" && data["SIZE"] == "1Gi",
        "{data:?}"
    );
    ensure!(row(&t, "spare")?["ATTACHED-TO"] == "-", "{t:?}");
    let t = table(&k(vec!["disk", "list", "-o", "wide"]).await?.ok()?.stdout);
    let wide: Vec<String> = normal
        .iter()
        .chain(&["VOLUME-SIZE", "DELETION-POLICY", "PV", "HANDLE"])
        .map(|c| (*c).to_owned())
        .collect();
    ensure!(t.first() == Some(&wide), "{t:?}");
    let st = disk_status(client, ns, "data").await?;
    let data = row(&t, "data")?;
    ensure!(
        Some(&data["PV"]) == st.pv_name.as_ref(),
        "{data:?} vs {st:?}"
    );
    ensure!(
        Some(&data["HANDLE"]) == st.handle.as_ref(),
        "{data:?} vs {st:?}"
    );
    ensure!(
        data["DELETION-POLICY"] == "Orphan" && data["VOLUME-SIZE"] == "1Gi",
        "{data:?}"
    );
    let json: Value =
        serde_json::from_str(&k(vec!["disk", "list", "-o", "json"]).await?.ok()?.stdout)?;
    let mut names: Vec<&str> = json["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    names.sort_unstable();
    ensure!(names == ["data", "spare"], "{json}");

    // resize: grows and waits; a smaller size is refused naming the field; a size the driver
    // refuses is reported, and a smaller growth after it (above the volume's size) goes through.
    let r = k(vec!["disk", "resize", "spare", "--size", "2Gi"])
        .await?
        .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("kompoxdisk {ns}/spare spec.size set to 2Gi"))
            && r.stdout
                .contains(&format!("kompoxdisk {ns}/spare is Ready at 2Gi")),
        "{r:?}"
    );
    let size = disk_status(client, ns, "spare").await?.size.map(|q| q.0);
    ensure!(size.as_deref() == Some("2Gi"), "status.size {size:?}");
    let r = k(vec!["disk", "resize", "spare", "--size", "1Gi"]).await?;
    ensure!(
        r.code == 1 && r.stderr.contains("spec.size") && r.stderr.contains("cannot shrink"),
        "{r:?}"
    );
    let r = k(vec!["disk", "resize", "spare", "--size", "2Ti"]).await?;
    ensure!(
        r.code == 1
            && r.stderr.contains(&format!(
                "kompoxdisk {ns}/spare cannot grow to 2Ti: spec.size"
            )),
        "{r:?}"
    );
    let r = k(vec!["disk", "resize", "spare", "--size", "3Gi"])
        .await?
        .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("kompoxdisk {ns}/spare is Ready at 3Gi")),
        "{r:?}"
    );

    // attach through the aggregated API: the app gains the volume, the controller binds it.
    move_spare(cache, client, ns, "attach").await?;
    // A disk another volume holds: 409 naming the holder.
    let r = k(vec![
        "disk",
        "attach",
        "data",
        "--app",
        "legacy-web",
        "--volume",
        "other",
    ])
    .await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains("is attached to legacy-web/data") && r.stderr.contains("HTTP 409"),
        "{r:?}"
    );

    // delete refuses a disk an app uses, and says how to detach it.
    let r = k(vec!["disk", "delete", "spare"]).await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains(&format!(
            "KompoxDisk {ns}/spare is in use by KompoxApp legacy-web volume extra: not deleted"
        )),
        "{r:?}"
    );
    ensure!(
        r.stderr.contains(&format!(
            "kubectl kompox disk detach spare -n {ns} --app legacy-web --volume extra"
        )),
        "{r:?}"
    );
    ensure!(
        disks
            .get("spare")
            .await?
            .metadata
            .deletion_timestamp
            .is_none(),
        "a refused delete deleted the disk"
    );

    // detach: the app loses the volume, the controller releases the disk.
    move_spare(cache, client, ns, "detach").await?;

    // delete (Orphan): gone when the command returns, its volume kept in the driver.
    let handle = disk_status(client, ns, "spare")
        .await?
        .handle
        .context("spare has no handle")?;
    let r = k(vec!["disk", "delete", "spare"]).await?.ok()?;
    ensure!(
        r.stdout.contains(&format!(
            "kompoxdisk {ns}/spare deleted (deletionPolicy Orphan: volume {handle} kept"
        )),
        "{r:?}"
    );
    ensure!(
        disks.get_opt("spare").await?.is_none(),
        "delete returned before the disk was gone"
    );
    ensure!(
        driver_volumes()?.contains(&handle),
        "the orphaned volume {handle} was deleted"
    );

    // deletionPolicy Delete: refused without a terminal or --yes; with --yes the volume goes.
    k(vec![
        "disk",
        "create",
        "doomed",
        "--size",
        "1Gi",
        "--zone",
        "2",
        "--deletion-policy",
        "Delete",
    ])
    .await?
    .ok()?;
    let handle = disk_status(client, ns, "doomed")
        .await?
        .handle
        .context("doomed has no handle")?;
    let r = k(vec!["disk", "delete", "doomed"]).await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains(&format!(
            "KompoxDisk {ns}/doomed has deletionPolicy Delete: deleting it destroys volume {handle}"
        )) && r.stderr.contains("give --yes to confirm"),
        "{r:?}"
    );
    ensure!(
        disks.get_opt("doomed").await?.is_some(),
        "deleted without confirmation"
    );
    let r = k(vec!["disk", "delete", "doomed", "--yes"]).await?.ok()?;
    ensure!(
        r.stdout
            .contains(&format!("(deletionPolicy Delete: volume {handle} deleted)")),
        "{r:?}"
    );
    ensure!(
        disks.get_opt("doomed").await?.is_none(),
        "delete returned before the disk was gone"
    );
    ensure!(
        !driver_volumes()?.contains(&handle),
        "volume {handle} still in the driver"
    );

    let r = k(vec!["disk", "delete", "nope"]).await?;
    ensure!(
        r.code == 1
            && r.stderr
                .contains(&format!("KompoxDisk {ns}/nope: not found")),
        "{r:?}"
    );
    Ok(())
}

async fn snapshot_flows(cache: &Path, client: &Client, ns: &str) -> Result<()> {
    // A wait that cannot succeed ends at --timeout, naming what it awaited and the
    // controller's last word.
    let r = kompox_async(
        cache,
        &[
            "snapshot",
            "create",
            "orphan",
            "-n",
            ns,
            "--disk",
            "no-such-disk",
            "--timeout",
            "4s",
        ],
    )
    .await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains(&format!(
            "KompoxSnapshot {ns}/orphan ready to use: not done after 4s (last seen: "
        )),
        "{r:?}"
    );
    ensure!(
        r.stderr.contains("no-such-disk"),
        "the controller's condition is not in the message: {r:?}"
    );

    let r = kompox_async(
        cache,
        &["snapshot", "create", "snap1", "-n", ns, "--disk", "data"],
    )
    .await?
    .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("kompoxsnapshot {ns}/snap1 is ready to use")),
        "{r:?}"
    );
    let st = Api::<KompoxSnapshot>::namespaced(client.clone(), ns)
        .get("snap1")
        .await?
        .status
        .unwrap_or_default();
    ensure!(
        st.ready_to_use,
        "create returned before the snapshot was ready: {st:?}"
    );

    let t = table(
        &kompox_async(cache, &["snapshot", "list", "-n", ns])
            .await?
            .ok()?
            .stdout,
    );
    ensure!(
        t.first().map(Vec::as_slice)
            == Some(&["NAME", "DISK", "READY", "AGE"].map(String::from)[..]),
        "{t:?}"
    );
    let t = table(
        &kompox_async(cache, &["snapshot", "list", "-n", ns, "-o", "wide"])
            .await?
            .ok()?
            .stdout,
    );
    ensure!(
        t.first().map(Vec::as_slice)
            == Some(
                &["NAME", "DISK", "READY", "AGE", "RESTORE-SIZE", "HANDLE"].map(String::from)[..]
            ),
        "{t:?}"
    );
    let snap = row(&t, "snap1")?;
    ensure!(
        snap["DISK"] == "data" && snap["READY"] == "true",
        "{snap:?}"
    );
    ensure!(
        Some(&snap["HANDLE"]) == st.snapshot_handle.as_ref(),
        "{snap:?} vs {st:?}"
    );
    ensure!(row(&t, "orphan")?["READY"] == "false", "{t:?}");
    Ok(())
}
