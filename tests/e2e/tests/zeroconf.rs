//! "Bring your compose file": `kubectl kompox apply -f compose.yml` with no `--app`, against
//! the real local control plane with the Kompox servers from `install --local` (the controller
//! scoped by `--watch-namespaces` to this test's workspace).
//!
//! A WordPress + MariaDB file written the way published ones are (volume `db_data` with an
//! underscore, services reaching each other by name, a single-file bind `./nginx.conf`,
//! credentials `${…}` from the project's `.env`, which end up in Secrets only) deploys to Ready
//! with everything inferred;
//! editing the bound file and re-applying rolls the Pod; re-applying never recreates a disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_e2e::cli::{Run, kompox_async, temp_dir};
use kompox_e2e::{admin_client, wait_until};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt as _};
use serde_json::Value;

/// The compose file, as a user would copy it from a published example.
const COMPOSE: &str = "\
services:
  db:
    image: mariadb:11.4
    command: '--default-authentication-plugin=mysql_native_password'
    volumes:
      - db_data:/var/lib/mysql
    restart: always
    environment:
      - MYSQL_ROOT_PASSWORD=${DB_ROOT_PASSWORD}
      - MYSQL_DATABASE=wordpress
      - MYSQL_USER=wordpress
      - MYSQL_PASSWORD=${DB_PASSWORD}
    expose:
      - 3306
  wordpress:
    image: wordpress:6.6
    volumes:
      - wp_data:/var/www/html
    restart: always
    environment:
      - WORDPRESS_DB_HOST=db
      - WORDPRESS_DB_USER=wordpress
      - WORDPRESS_DB_PASSWORD=${DB_PASSWORD}
      - WORDPRESS_DB_NAME=wordpress
  nginx:
    image: nginx:1.27
    ports:
      - 80:80
    volumes:
      - ./nginx.conf:/etc/nginx/conf.d/default.conf:ro
    depends_on:
      - wordpress
volumes:
  db_data:
  wp_data:
    x-kompox:
      size: 2Gi
";

const NGINX_CONF: &str =
    "server {\n  listen 80;\n  location / { proxy_pass http://wordpress:80; }\n}\n";
const DB_PASSWORD: &str = "zc-db-password-7f3a";
const DB_ROOT_PASSWORD: &str = "zc-root-password-91c2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_file_as_it_is_deploys_without_app() -> Result<()> {
    let cache = temp_dir("zeroconf-cache")?;
    let dir = temp_dir("wordpress")?;
    let ws = format!("zc{:06x}", rand::random::<u32>() & 0xff_ffff);
    let selector = format!("kompox.dev/tenant={ws}");
    let install = kompox_async(
        &cache,
        &["install", "--local", "--watch-namespaces", &selector],
    )
    .await;
    let result = match install.and_then(Run::ok) {
        Ok(_) => flow(&cache, &dir, &ws).await,
        Err(e) => Err(e),
    };
    let un = kompox_async(&cache, &["uninstall", "--local"]).await;
    result?;
    un?.ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

async fn apply(cache: &Path, dir: &Path, ws: &str) -> Result<Run> {
    let compose = dir.join("compose.yml");
    kompox_async(
        cache,
        &[
            "apply",
            "-f",
            &compose.to_string_lossy(),
            "--disk-size",
            "1Gi",
            "--workspace",
            ws,
            "--timeout",
            "180s",
        ],
    )
    .await
}

async fn flow(cache: &Path, dir: &Path, ws: &str) -> Result<()> {
    std::fs::write(dir.join("compose.yml"), COMPOSE)?;
    std::fs::write(dir.join("nginx.conf"), NGINX_CONF)?;
    std::fs::write(
        dir.join(".env"),
        format!("DB_PASSWORD={DB_PASSWORD}\nDB_ROOT_PASSWORD={DB_ROOT_PASSWORD}\n"),
    )?;
    let first = apply(cache, dir, ws).await?;
    // The namespace is recorded before the wait: clean it up whatever happened next.
    let app_name = dir
        .file_name()
        .map(|n| kompox_core::naming::k8s_name(&n.to_string_lossy(), 40))
        .context("directory name")?;
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".kompox/state.json"))
            .with_context(|| format!("{first:?}"))?,
    )?;
    let ns = state["apps"][format!("{ws}/{app_name}")]["namespace"]
        .as_str()
        .with_context(|| format!("namespace in state.json: {state}"))?
        .to_owned();
    let client = admin_client().await?;
    let result = checks(cache, dir, ws, &client, &ns, &app_name, first).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    wait_until(
        &format!("namespace {ns} gone"),
        Duration::from_secs(120),
        || {
            let namespaces = namespaces.clone();
            let ns = ns.clone();
            async move { Ok(namespaces.get_opt(&ns).await?.is_none()) }
        },
    )
    .await?;
    result
}

#[allow(clippy::too_many_lines)]
async fn checks(
    cache: &Path,
    dir: &Path,
    ws: &str,
    client: &Client,
    ns: &str,
    app: &str,
    first: Run,
) -> Result<()> {
    let first = first.ok()?;
    ensure!(
        first
            .stdout
            .contains(&format!("KompoxApp {ns}/{app} is Ready")),
        "{first:?}"
    );
    // What was inferred is said, once per inference.
    for want in [
        format!("inferred: app name {app} (from the compose file's directory)"),
        "inferred: KompoxDisk db-data (1Gi) for compose volume db_data (--disk-size size)".into(),
        "inferred: KompoxDisk wp-data (2Gi) for compose volume wp_data (x-kompox.size size)".into(),
    ] {
        ensure!(
            first.stderr.lines().any(|l| l == want),
            "missing {want:?}: {first:?}"
        );
    }
    ensure!(
        first
            .stderr
            .contains("from ./nginx.conf for services.nginx.volumes[0]"),
        "{first:?}"
    );
    for secret in [DB_PASSWORD, DB_ROOT_PASSWORD] {
        ensure!(
            !first.stdout.contains(secret) && !first.stderr.contains(secret),
            "a password was printed: {first:?}"
        );
    }

    // The KompoxApp names the volumes as the compose file does; the disks carry derived names.
    let kapp = Api::<KompoxApp>::namespaced(client.clone(), ns)
        .get(app)
        .await?;
    let vols: Vec<(String, String)> = kapp
        .spec
        .volumes
        .iter()
        .map(|v| (v.name.clone(), v.disk_ref.name.clone()))
        .collect();
    ensure!(
        vols == [
            ("db_data".to_owned(), "db-data".to_owned()),
            ("wp_data".to_owned(), "wp-data".to_owned())
        ],
        "{vols:?}"
    );
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
    let uids = |list: Vec<KompoxDisk>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|d| (d.name_any(), d.uid().unwrap_or_default()))
            .collect()
    };
    let before = uids(disks.list(&ListParams::default()).await?.items);
    ensure!(
        before.keys().map(String::as_str).collect::<Vec<_>>() == ["db-data", "wp-data"],
        "{before:?}"
    );
    let wp = disks.get("wp-data").await?;
    ensure!(wp.spec.size.0 == "2Gi", "{:?}", wp.spec);

    // The bound file is a ConfigMap mounted by subPath, read-only.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let dep_name = format!("{app}-app");
    let dep = serde_json::to_value(deployments.get(&dep_name).await?)?;
    let tpl = &dep["spec"]["template"];
    let nginx = tpl["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "nginx")
        .cloned()
        .context("no nginx container")?;
    let mount = nginx["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == "/etc/nginx/conf.d/default.conf")
        .cloned()
        .with_context(|| format!("no nginx.conf mount: {nginx}"))?;
    ensure!(
        mount["readOnly"] == true && mount["subPath"].is_string(),
        "{mount}"
    );
    let cm_name = tpl["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .and_then(|v| v["configMap"]["name"].as_str().map(str::to_owned))
        .with_context(|| format!("no ConfigMap volume for {mount}"))?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms.get(&cm_name).await?;
    ensure!(
        cm.data
            .unwrap_or_default()
            .get("nginx.conf")
            .map(String::as_str)
            == Some(NGINX_CONF),
        "ConfigMap {cm_name} does not hold nginx.conf"
    );
    for secret in [DB_PASSWORD, DB_ROOT_PASSWORD] {
        ensure!(
            !dep.to_string().contains(secret),
            "a password is in the Deployment"
        );
    }
    // The passwords from .env live in Secrets: the Pod reads them by secretKeyRef.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let values: Vec<Vec<u8>> = secrets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .flat_map(|s| s.data.unwrap_or_default().into_values().map(|v| v.0))
        .collect();
    for secret in [DB_PASSWORD, DB_ROOT_PASSWORD] {
        ensure!(
            values.iter().any(|v| v.as_slice() == secret.as_bytes()),
            "a password from .env is in no Secret"
        );
    }
    let db = tpl["spec"]["containers"]
        .as_array()
        .into_iter()
        .chain(tpl["spec"]["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == "db")
        .cloned()
        .context("no db container")?;
    let pw = db["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "MYSQL_PASSWORD")
        .cloned()
        .with_context(|| format!("no MYSQL_PASSWORD: {db}"))?;
    ensure!(
        pw["valueFrom"]["secretKeyRef"]["name"].is_string() && pw.get("value").is_none(),
        "MYSQL_PASSWORD is not a secretKeyRef: {pw}"
    );
    let r = kompox_async(cache, &["rendered", app, "-n", ns, "-o", "json"])
        .await?
        .ok()?;
    for secret in [DB_PASSWORD, DB_ROOT_PASSWORD] {
        ensure!(!r.stdout.contains(secret), "a password is in rendered");
    }
    let hash_before = tpl["metadata"]["annotations"]["kompox.dev/env-hash"]
        .as_str()
        .context("env-hash")?
        .to_owned();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_before = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|p| p.name_any())
        .collect::<Vec<_>>();
    ensure!(pod_before.len() == 1, "{pod_before:?}");

    // Edit the bound file and re-apply: the Pod rolls; the disks stay the same objects.
    let edited = NGINX_CONF.replace("listen 80;", "listen 80;\n  client_max_body_size 64m;");
    std::fs::write(dir.join("nginx.conf"), &edited)?;
    let second = apply(cache, dir, ws).await?.ok()?;
    ensure!(
        second.stdout.contains(&format!("namespace {ns} (reused)")),
        "{second:?}"
    );
    for d in ["db-data", "wp-data"] {
        ensure!(
            second
                .stdout
                .contains(&format!("KompoxDisk {ns}/{d} exists (kept as it is)")),
            "{second:?}"
        );
    }
    let cm = cms.get(&cm_name).await?;
    ensure!(
        cm.data.unwrap_or_default().get("nginx.conf") == Some(&edited),
        "the ConfigMap was not updated"
    );
    let old_pod = pod_before[0].clone();
    wait_until(
        "the Pod rolled after nginx.conf changed",
        Duration::from_secs(120),
        || {
            let (deployments, pods, dep_name, hash_before, old_pod) = (
                deployments.clone(),
                pods.clone(),
                dep_name.clone(),
                hash_before.clone(),
                old_pod.clone(),
            );
            async move {
                let d = serde_json::to_value(deployments.get(&dep_name).await?)?;
                let hash = d["spec"]["template"]["metadata"]["annotations"]["kompox.dev/env-hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let available = d["status"]["availableReplicas"] == 1
                    && d["status"]["updatedReplicas"] == 1
                    && d["status"]["replicas"] == 1;
                let names: Vec<String> = pods
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .map(|p| p.name_any())
                    .collect();
                Ok(hash != hash_before && available && !names.contains(&old_pod))
            }
        },
    )
    .await?;
    let after = uids(disks.list(&ListParams::default()).await?.items);
    ensure!(after == before, "disks recreated: {before:?} → {after:?}");

    // A third apply with a smaller --disk-size changes nothing on the existing disks.
    let third = kompox_async(
        cache,
        &[
            "apply",
            "-f",
            &dir.join("compose.yml").to_string_lossy(),
            "--disk-size",
            "512Mi",
            "--workspace",
            ws,
            "--wait=false",
        ],
    )
    .await?
    .ok()?;
    ensure!(third.stdout.contains("exists (kept as it is)"), "{third:?}");
    let db = disks.get("db-data").await?;
    ensure!(db.spec.size.0 == "1Gi", "{:?}", db.spec);
    ensure!(
        db.uid().unwrap_or_default() == before["db-data"],
        "db-data recreated"
    );
    Ok(())
}
