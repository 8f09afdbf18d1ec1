//! "Bring your compose file": `kubectl kompox apply -f compose.yml` with no `--app`, against
//! the real local control plane with the Kompox servers from `install --local` (the controller
//! scoped by `--watch-namespaces` to this test's workspace).
//!
//! A WordPress + MariaDB file written the way published ones are (volume `db_data` with an
//! underscore, services reaching each other by name, a single-file bind `./nginx.conf`,
//! credentials `${…}` from the project's `.env`, which end up in Secrets only) deploys to Ready
//! with everything inferred. Editing the bound file, or the compose file, and re-applying rolls
//! the Pod, and `apply` returns only once the new Pod is up; re-applying never recreates a
//! disk.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_e2e::cli::{
    LocalInstall, Run, kompox_async, pods_at, rolled_since, temp_dir, with_local_install,
};
use kompox_e2e::{admin_client, ensure_crds};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};

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
    with_local_install("zc", |env| Box::pin(flow(env))).await
}

async fn apply(env: &LocalInstall) -> Result<Run> {
    let compose = env.dir.join("compose.yml");
    env.kompox(&[
        "apply",
        "-f",
        &compose.to_string_lossy(),
        "--disk-size",
        "1Gi",
        "--workspace",
        &env.ws,
        "--timeout",
        "180s",
    ])
    .await
}

async fn flow(env: &LocalInstall) -> Result<()> {
    let dir = &env.dir;
    std::fs::write(dir.join("compose.yml"), COMPOSE)?;
    std::fs::write(dir.join("nginx.conf"), NGINX_CONF)?;
    std::fs::write(
        dir.join(".env"),
        format!("DB_PASSWORD={DB_PASSWORD}\nDB_ROOT_PASSWORD={DB_ROOT_PASSWORD}\n"),
    )?;
    let first = apply(env).await?;
    env.step("first apply");
    let app_name = dir
        .file_name()
        .map(|n| kompox_core::naming::k8s_name(&n.to_string_lossy(), 40))
        .context("directory name")?;
    let ns = env
        .namespace_of(&app_name)
        .with_context(|| format!("{first:?}"))?;
    checks(env, &ns, &app_name, first).await?;
    suspended_apply(env, &ns, &app_name).await?;
    env.step("apply of a suspended app");
    diff_flow(env).await
}

/// `apply` of a suspended app returns once the controller holds it at zero (a suspended app is
/// never Ready: before, apply waited out its whole timeout), and leaves it suspended (apply's
/// field manager does not own `spec.suspend`).
async fn suspended_apply(env: &LocalInstall, ns: &str, app: &str) -> Result<()> {
    let apps: Api<KompoxApp> = Api::namespaced(env.client.clone(), ns);
    let suspend = serde_json::json!({"spec": {"suspend": true}});
    apps.patch(app, &PatchParams::default(), &Patch::Merge(&suspend))
        .await?;
    let r = apply(env).await?.ok()?;
    ensure!(
        r.stdout.contains("is suspended (spec.suspend: true)"),
        "{r:?}"
    );
    let a = apps.get(app).await?;
    ensure!(a.spec.suspend, "apply took spec.suspend back: {:?}", a.spec);
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn checks(env: &LocalInstall, ns: &str, app: &str, first: Run) -> Result<()> {
    let (client, dir) = (&env.client, &env.dir);
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
    // `diff` exits as `kubectl diff`: 0 when the live objects are the rendered ones.
    let d = env.kompox(&["diff", app, "-n", ns]).await?;
    ensure!(d.code == 0 && d.stdout.contains("no differences"), "{d:?}");
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
    let r = env
        .kompox(&["rendered", app, "-n", ns, "-o", "json"])
        .await?
        .ok()?;
    for secret in [DB_PASSWORD, DB_ROOT_PASSWORD] {
        ensure!(!r.stdout.contains(secret), "a password is in rendered");
    }
    let pods_before = pods_at(client, ns, &dep_name).await?;
    ensure!(pods_before.pods.len() == 1, "{pods_before:?}");

    // Edit the bound file and re-apply: apply returns once the Pod has rolled (no wait here);
    // the disks stay the same objects.
    let edited = NGINX_CONF.replace("listen 80;", "listen 80;\n  client_max_body_size 64m;");
    std::fs::write(dir.join("nginx.conf"), &edited)?;
    let second = apply(env).await?.ok()?;
    env.step("apply after editing nginx.conf");
    let rolled = rolled_since(client, ns, &pods_before)
        .await
        .with_context(|| format!("right after apply returned: {second:?}"))?;
    ensure!(
        rolled.hash != pods_before.hash,
        "the env-hash did not change"
    );
    let pods_before = pods_at(client, ns, &dep_name).await?;
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

    // A change of the compose file alone (it lives in a ConfigMap too) rolls the Pod the same
    // way before apply returns.
    std::fs::write(
        dir.join("compose.yml"),
        COMPOSE.replace("image: nginx:1.27", "image: nginx:1.27.3"),
    )?;
    let third = apply(env).await?.ok()?;
    env.step("apply after editing compose.yml");
    let rolled = rolled_since(client, ns, &pods_before)
        .await
        .with_context(|| format!("right after apply returned: {third:?}"))?;
    ensure!(
        rolled.images.get("nginx").map(String::as_str) == Some("nginx:1.27.3"),
        "the new Pod runs {:?}",
        rolled.images
    );
    let dep = serde_json::to_value(deployments.get(&dep_name).await?)?;
    ensure!(
        dep["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "nginx" && c["image"] == "nginx:1.27.3"),
        "the nginx image did not change: {dep}"
    );
    let after = uids(disks.list(&ListParams::default()).await?.items);
    ensure!(after == before, "disks recreated: {before:?} → {after:?}");

    // Another apply with a smaller --disk-size changes nothing on the existing disks.
    let fourth = env
        .kompox(&[
            "apply",
            "-f",
            &dir.join("compose.yml").to_string_lossy(),
            "--disk-size",
            "512Mi",
            "--workspace",
            &env.ws,
            "--wait=false",
        ])
        .await?
        .ok()?;
    ensure!(
        fourth.stdout.contains("exists (kept as it is)"),
        "{fourth:?}"
    );
    let db = disks.get("db-data").await?;
    ensure!(db.spec.size.0 == "1Gi", "{:?}", db.spec);
    ensure!(
        db.uid().unwrap_or_default() == before["db-data"],
        "db-data recreated"
    );
    Ok(())
}

/// `diff` exits 1 when the live objects differ from the rendered ones (an app in a workspace
/// no controller watches: nothing is applied), 2 on an error, as `kubectl diff`.
async fn diff_flow(env: &LocalInstall) -> Result<()> {
    let compose = env.dir.join("compose.yml");
    std::fs::write(
        &compose,
        "name: plain\nservices:\n  web:\n    image: nginx:1.27\n",
    )?;
    // The controller watches env.ws only: in this workspace nothing renders the app.
    let unwatched = format!("{}u", env.ws);
    let applied = env
        .kompox(&[
            "apply",
            "-f",
            &compose.to_string_lossy(),
            "--workspace",
            &unwatched,
            "--wait=false",
        ])
        .await?
        .ok()?;
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        env.dir.join(".kompox/state.json"),
    )?)?;
    let ns = state["apps"][format!("{unwatched}/plain")]["namespace"]
        .as_str()
        .with_context(|| format!("{applied:?}"))?
        .to_owned();
    let result = async {
        let d = env.kompox(&["diff", "plain", "-n", &ns]).await?;
        ensure!(
            d.code == 1 && d.stdout.contains("+++ rendered Deployment") && d.stderr.is_empty(),
            "{d:?}"
        );
        let d = env.kompox(&["diff", "no-such-app", "-n", &ns]).await?;
        ensure!(d.code == 2 && d.stderr.starts_with("error: "), "{d:?}");
        Ok(())
    }
    .await;
    Api::<Namespace>::all(env.client.clone())
        .delete(&ns, &DeleteParams::default())
        .await?;
    result
}

/// A compose volume with `external: true` is created outside the project: `apply` refers to
/// the existing KompoxDisk (named by the volume's `name:`) and never makes one; a missing one
/// stops `apply` before anything is applied, saying how to provide it. Talks to the API
/// server only (`--wait=false`, no controller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_volumes_must_exist() -> Result<()> {
    ensure_crds().await?;
    let client = admin_client().await?;
    let cache = temp_dir("zc-ext-cache")?;
    let dir = temp_dir("zc-ext")?;
    let ws = format!("zx{:06x}", rand::random::<u32>() & 0xff_ffff);
    let result = external_flow(&client, &cache, &dir, &ws).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("kompox.dev/tenant={ws}"));
    for ns in namespaces.list(&lp).await?.items {
        namespaces
            .delete(&ns.name_any(), &DeleteParams::default())
            .await?;
    }
    result?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

async fn external_flow(client: &Client, cache: &Path, dir: &Path, ws: &str) -> Result<()> {
    let compose = dir.join("compose.yml");
    let file = compose.to_string_lossy().into_owned();
    let args = ["apply", "-f", &file, "--workspace", ws, "--wait=false"];
    let apply = || kompox_async(cache, &args);
    let with_external = "name: shop\nservices:\n  db:\n    image: postgres:16\n    volumes: [pgdata:/var/lib/postgresql/data]\nvolumes:\n  pgdata:\n    external: true\n    name: shop_pgdata\n";

    // A new app: no namespace yet, so no disk can exist; nothing is created.
    std::fs::write(&compose, with_external)?;
    let r = apply().await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains(&format!(
            "{file}: volumes.pgdata.external: KompoxDisk shop-pgdata must exist before the app is applied"
        )) && r.stderr.contains("declare the disk with --app"),
        "{r:?}"
    );
    ensure!(!dir.join(".kompox").exists(), "state written: {r:?}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("kompox.dev/tenant={ws}"));
    ensure!(
        namespaces.list(&lp).await?.items.is_empty(),
        "a namespace was created"
    );

    // The app exists without the volume; the external disk is still missing: refused, with
    // the command that makes it, and the compose ConfigMap is not touched.
    std::fs::write(
        &compose,
        "name: shop\nservices:\n  db:\n    image: postgres:16\n",
    )?;
    apply().await?.ok()?;
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".kompox/state.json"))?)?;
    let ns = state["apps"][format!("{ws}/shop")]["namespace"]
        .as_str()
        .context("namespace in state.json")?
        .to_owned();
    std::fs::write(&compose, with_external)?;
    let r = apply().await?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr.contains(&format!(
            "volumes.pgdata.external: KompoxDisk shop-pgdata not found in namespace {ns}"
        )) && r.stderr.contains(&format!(
            "`kubectl kompox disk create shop-pgdata -n {ns} --size 10Gi`"
        )),
        "{r:?}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = cms.get("shop-compose").await?;
    ensure!(
        !cm.data
            .unwrap_or_default()
            .values()
            .any(|v| v.contains("external")),
        "the compose ConfigMap was updated by a refused apply"
    );

    // Made as the message says, the disk is used as it is.
    kompox_async(
        cache,
        &[
            "disk",
            "create",
            "shop-pgdata",
            "-n",
            &ns,
            "--size",
            "3Gi",
            "--wait=false",
        ],
    )
    .await?
    .ok()?;
    let r = apply().await?.ok()?;
    ensure!(
        !r.stdout.contains("KompoxDisk") && r.stderr.contains(
            "inferred: KompoxDisk shop-pgdata for compose volume pgdata (external: it must exist; apply never makes it)"
        ),
        "{r:?}"
    );
    let app = Api::<KompoxApp>::namespaced(client.clone(), &ns)
        .get("shop")
        .await?;
    let vols: Vec<(String, String)> = app
        .spec
        .volumes
        .iter()
        .map(|v| (v.name.clone(), v.disk_ref.name.clone()))
        .collect();
    ensure!(
        vols == [("pgdata".to_owned(), "shop-pgdata".to_owned())],
        "{vols:?}"
    );
    let disk = Api::<KompoxDisk>::namespaced(client.clone(), &ns)
        .get("shop-pgdata")
        .await?;
    ensure!(disk.spec.size.0 == "3Gi", "{:?}", disk.spec);
    let disks = Api::<KompoxDisk>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    ensure!(disks.items.len() == 1, "a disk was made: {:?}", disks.items);
    Ok(())
}
