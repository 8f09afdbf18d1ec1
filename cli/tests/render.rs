//! `kubectl-kompox render`, run as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-kompox"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(args: &[&str]) -> Output {
    match bin().args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("running kubectl-kompox: {e}"),
    }
}

/// `render -f <compose> <args>`.
fn render(compose: &Path, args: &[&str]) -> Output {
    let compose = compose.to_string_lossy();
    let mut all = vec!["render", "-f", &compose];
    all.extend_from_slice(args);
    run(&all)
}

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kompox-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    if let Err(e) = std::fs::create_dir_all(&d) {
        panic!("{}: {e}", d.display());
    }
    d
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// A file with the key the golden files are rendered with (core/tests/golden.rs).
fn golden_key_file(test: &str) -> PathBuf {
    let d = tmp(&format!("golden-key-{test}"));
    let f = d.join("hash.key");
    write(&f, "kompox golden samples: fixed key");
    f
}

fn write(path: &Path, content: &str) {
    if let Err(e) = std::fs::write(path, content) {
        panic!("{}: {e}", path.display());
    }
}

#[test]
fn samples_render_as_their_golden_files() {
    for name in ["gitea", "wordpress", "nextcloud", "vaultwarden", "miniflux"] {
        let dir = repo().join("samples").join(name);
        let compose = dir.join("compose.yml");
        let app = dir.join("app.yml");
        let out = render(
            &compose,
            &[
                "--app",
                &app.to_string_lossy(),
                "--provider",
                "aks",
                "--region",
                "japaneast",
                "--hash-key-file",
                &golden_key_file(name).to_string_lossy(),
            ],
        );
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let golden = std::fs::read_to_string(dir.join("rendered.yaml")).unwrap_or_default();
        let (comments, body): (Vec<&str>, Vec<&str>) =
            golden.lines().partition(|l| l.starts_with("# "));
        let body = body.join("\n") + "\n";
        assert_eq!(
            text(&out.stdout),
            body,
            "{name}: stdout differs from rendered.yaml"
        );
        let warnings: Vec<String> = comments
            .iter()
            .filter_map(|c| c.strip_prefix("# warning: "))
            .map(|w| format!("warning: {w}"))
            .collect();
        let stderr: Vec<String> = text(&out.stderr).lines().map(str::to_owned).collect();
        assert_eq!(stderr, warnings, "{name}: warnings");
    }
}

#[test]
fn default_app_reads_files_next_to_the_compose_file() {
    let d = tmp("default");
    write(
        &d.join("compose.yml"),
        "name: demo
services:
  web:
    image: nginx:1.27
    env_file: [./web.env, /etc/app/extra.env]
    volumes: [./html:/usr/share/nginx/html]
    configs: [site]
configs:
  site:
    file: ./site.conf
",
    );
    write(&d.join("web.env"), "PASSWORD=very-secret-value\n");
    write(&d.join("extra.env"), "EXTRA=1\n");
    write(&d.join("site.conf"), "listen 80;\n");
    let compose = d.join("compose.yml");
    let extra = format!("/etc/app/extra.env={}", d.join("extra.env").display());
    let out = render(&compose, &["--project-file", &extra]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: demo-web-env"), "{stdout}");
    assert!(
        stdout.contains("PASSWORD: hmac-sha256:"),
        "redacted by default: {stdout}"
    );
    assert!(stdout.contains("EXTRA: hmac-sha256:"), "{stdout}");
    // No unkeyed digest of the value: `echo -n very-secret-value | sha256sum` finds nothing.
    assert!(
        !stdout.contains(&sha256_hex(b"very-secret-value")),
        "{stdout}"
    );
    assert!(!stdout.contains("very-secret-value"));
    assert!(
        stdout.contains("site: |") || stdout.contains("site: \"listen 80;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("volumeName: kompox-default"),
        "a fresh disk: {stdout}"
    );
    assert!(stdout.contains("storage: 10Gi"), "{stdout}");
    assert!(
        !stdout.contains("kompox-file-"),
        "synthetic sources never reach the output"
    );
    assert!(!stdout.contains("namespace:"));

    // --show-secrets prints the data (base64, as in any Secret); -n sets the namespace.
    let out = render(
        &compose,
        &[
            "--project-file",
            &extra,
            "--show-secrets",
            "-n",
            "apps",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(list["kind"], "List");
    let secret = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == "Secret")
        .cloned()
        .unwrap_or_default();
    assert_eq!(secret["data"]["PASSWORD"], "dmVyeS1zZWNyZXQtdmFsdWU=");
    assert_eq!(secret["metadata"]["namespace"], "apps");
}

#[test]
fn invalid_input_exits_1_with_paths() {
    let d = tmp("invalid");
    write(
        &d.join("compose.yml"),
        "services:\n  web:\n    image: x\n    ports: [x]\n",
    );
    let out = render(&d.join("compose.yml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: services.web.ports[0]: invalid port \"x\"\n"
    );
    assert!(out.stdout.is_empty());

    write(
        &d.join("compose.yml"),
        "services:\n  web:\n    image: x\n    volumes: ['./nginx.conf:/etc/nginx/nginx.conf']\n    env_file: ./missing.env\n",
    );
    let out = render(&d.join("compose.yml"), &["--project-file", "/unused=x"]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: services.web.env_file[0]: ./missing.env not found: create it next to the compose file ({}), or give --project-file ./missing.env=FILE\n",
            d.join("missing.env").display()
        )
    );

    write(
        &d.join("app.yml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
    );
    let out = render(
        &d.join("compose.yml"),
        &["--app", &d.join("app.yml").to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("expected exactly one KompoxApp, found 0"),
        "{}",
        text(&out.stderr)
    );

    let out = render(&d.join("nope.yml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: reading "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn zone_numbers_need_a_region() {
    let dir = repo().join("samples").join("gitea");
    let out = bin()
        .env_remove("KOMPOX_REGION")
        .args(["render", "-f"])
        .arg(dir.join("compose.yml"))
        .arg("--app")
        .arg(dir.join("app.yml"))
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("error: spec.deployment.zone: zone \"1\": provider csi needs the region"),
        "{}",
        text(&out.stderr)
    );
}

/// Without --app: the app, disks, file binds and ingress are inferred and said on stderr.
#[test]
fn zero_config_render_infers_and_says_so() {
    let d = tmp("zeroconf");
    write(
        &d.join("compose.yml"),
        "name: my_blog
services:
  db:
    image: mariadb:11
    volumes: [db_data:/var/lib/mysql]
  wordpress:
    image: wordpress:6
    ports: ['8080:80']
    volumes:
      - ./nginx.conf:/etc/nginx/conf.d/default.conf:ro
      - ./conf.d:/etc/extra:ro
      - ./uploads:/var/www/html/wp-content/uploads
      - /etc/pihole:/etc/pihole
volumes:
  db_data:
    x-kompox: {size: 20Gi}
",
    );
    write(&d.join("nginx.conf"), "server { listen 80; }\n");
    std::fs::create_dir_all(d.join("conf.d/sub")).unwrap_or_default();
    write(&d.join("conf.d/a.conf"), "a\n");
    write(&d.join("conf.d/sub/b.conf"), "b\n");
    let out = render(&d.join("compose.yml"), &["--host", "blog.example.com"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for want in [
        "inferred: app name my-blog (from the compose name:)",
        "inferred: KompoxDisk db-data (20Gi) for compose volume db_data (x-kompox.size size)",
        "inferred: KompoxDisk default (10Gi) for the binds on the default disk (default size): services.wordpress uploads, services.wordpress _host/etc/pihole",
        "inferred: ingress rule wordpress: blog.example.com → published port 8080 (--host)",
        "warning: services.wordpress.volumes[3]: host path /etc/pihole becomes the directory _host/etc/pihole on volume \"default\" (spec.volumes[0]), empty at first: copy the host's data there if the app needs it",
    ] {
        assert!(
            stderr.lines().any(|l| l == want),
            "missing {want:?} in\n{stderr}"
        );
    }
    assert!(
        stderr.contains("key nginx.conf from ./nginx.conf for services.wordpress.volumes[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("from directory ./conf.d (2 files"),
        "{stderr}"
    );
    for want in [
        "name: my-blog-db-data",
        "storage: 20Gi",
        "name: my-blog-default",
        "host: blog.example.com",
        "subPath: _host/etc/pihole",
        "path: sub/b.conf",
        "mountPath: /etc/nginx/conf.d/default.conf",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }

    // A file bind given as a Secret; a refused bind names the field and says why.
    let out = render(
        &d.join("compose.yml"),
        &["--secret-file", &d.join("nginx.conf").to_string_lossy()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("inferred: Secret kompox-file-"),
        "{}",
        text(&out.stderr)
    );
    // Over 1 MiB in a read-only directory: a clear error.
    write(&d.join("conf.d/big"), &"x".repeat(1024 * 1024 + 1));
    let out = render(&d.join("compose.yml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: services.wordpress.volumes[1]: read-only directory ./conf.d holds 1048581 bytes in 3 files, more than the 1048576 (1 MiB) a ConfigMap or Secret can"),
        "{}",
        text(&out.stderr)
    );
    write(
        &d.join("compose.yml"),
        "services:\n  web:\n    image: x\n    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n",
    );
    let out = render(&d.join("compose.yml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: services.web.volumes[0]: bind source \"/var/run/docker.sock\" is refused: the Docker daemon's socket: a Pod has no Docker daemon, and Kompox gives containers no access to the node\n"
    );
}

/// An `external` compose volume refers to an existing KompoxDisk (named by `name:`), rendered
/// as if it were there; no disk is made for it.
#[test]
fn zero_config_external_volume_names_an_existing_disk() {
    let d = tmp("zeroconf-external");
    write(
        &d.join("compose.yml"),
        "name: shop
services:
  db:
    image: postgres:16
    volumes: [pgdata:/var/lib/postgresql/data, cache:/cache]
volumes:
  pgdata:
    external: true
    name: shop_pgdata
  cache: {}
",
    );
    let out = render(&d.join("compose.yml"), &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for want in [
        "inferred: KompoxDisk shop-pgdata for compose volume pgdata (external: it must exist; apply never makes it)",
        "inferred: KompoxDisk cache (10Gi) for compose volume cache (default size)",
    ] {
        assert!(
            stderr.lines().any(|l| l == want),
            "missing {want:?} in\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("KompoxDisk shop-pgdata (") && !stderr.contains("KompoxDisk pgdata"),
        "{stderr}"
    );
    for want in [
        "kompox.dev/disk: shop-pgdata",
        "volumeName: kompox-shop-pgdata",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
}

/// A bind source outside the project is treated by what it is on this machine, as a relative
/// one: `~/` (the home directory, as compose expands it) and absolute files become ConfigMaps
/// (or Secrets with --secret-file), with a warning that this machine's copy is uploaded;
/// what does not exist is a directory on the default disk; sockets stay refused.
#[test]
fn binds_outside_the_project_are_this_machines_files() {
    let d = tmp("outside");
    let home = d.join("home");
    std::fs::create_dir_all(home.join(".config")).unwrap_or_default();
    write(&home.join(".config/app.conf"), "a = 1\n");
    write(&d.join("abs.conf"), "abs\n");
    let abs = d.join("abs.conf").to_string_lossy().into_owned();
    let project = d.join("project");
    std::fs::create_dir_all(&project).unwrap_or_default();
    write(
        &project.join("compose.yml"),
        &format!(
            "services:
  web:
    image: nginx
    volumes:
      - ~/.config/app.conf:/etc/app.conf:ro
      - {abs}:/etc/abs.conf:ro
      - ~/data:/data
"
        ),
    );
    let home_s = home.to_string_lossy().into_owned();
    let out = render_env(&project.join("compose.yml"), &[], &[("HOME", &home_s)]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for want in [
        "warning: services.web.volumes[0]: ~/.config/app.conf is outside the project: this machine's copy goes to ConfigMap kompox-file-",
        "warning: services.web.volumes[2]: host path ~/data becomes the directory _home/data on volume \"default\"",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in\n{stderr}");
    }
    assert!(
        stderr.contains(&format!(
            "warning: services.web.volumes[1]: {abs} is outside the project"
        )),
        "{stderr}"
    );
    for want in [
        "inferred: ConfigMap kompox-file-",
        "key app.conf from ~/.config/app.conf for services.web.volumes[0]",
        "key abs.conf from",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in\n{stderr}");
    }
    for want in ["mountPath: /etc/app.conf", "subPath: _home/data"] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    assert!(!stdout.contains("subPath: _home/.config"), "{stdout}");
    // With --secret-file, the home file goes to a Secret.
    let secret = home.join(".config/app.conf").to_string_lossy().into_owned();
    let out = render_env(
        &project.join("compose.yml"),
        &["--secret-file", &secret],
        &[("HOME", &home_s)],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("inferred: Secret kompox-file-")
            && stderr.contains(
                "~/.config/app.conf is outside the project: this machine's copy goes to Secret"
            ),
        "{stderr}"
    );
}

/// `samples/zero-config/*`: compose files taken as they are, rendered without --app (all
/// inferred) as their reviewed `rendered.yaml`, with the `inferred:` and `warning:` lines as
/// leading comments. Regenerate after a deliberate change, then review the diff:
/// `KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox --test render zero_config_samples`
#[test]
fn zero_config_samples_render_as_their_golden_files() {
    let root = repo().join("samples").join("zero-config");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().join("compose.yml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    let update = std::env::var_os("KOMPOX_UPDATE_GOLDEN").is_some();
    for name in names {
        let dir = root.join(&name);
        let key = golden_key_file("zero-config");
        // A sample may need flags (`args`, one line), e.g. pihole's NET_ADMIN its Pod Security
        // level.
        let extra = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
        let extra: Vec<&str> = extra.split_whitespace().collect();
        let key = key.to_string_lossy();
        let mut args = vec![
            "--provider",
            "aks",
            "--region",
            "japaneast",
            "--hash-key-file",
            &key,
        ];
        args.extend(extra.iter().copied());
        let out = render(&dir.join("compose.yml"), &args);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let shown: String = extra.iter().map(|a| format!(" {a}")).collect();
        let mut got = format!(
            "# kubectl-kompox render -f samples/zero-config/{name}/compose.yml --provider aks --region japaneast{shown}\n\
             # (no --app: everything below the comments is inferred from the compose file)\n\
             # (digests under the fixed key \"kompox golden samples: fixed key\", given with --hash-key-file)\n"
        );
        for line in text(&out.stderr).lines() {
            got.push_str(&format!("# {line}\n"));
        }
        got.push_str(&text(&out.stdout));
        let golden = dir.join("rendered.yaml");
        if update {
            write(&golden, &got);
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            got == want,
            "samples/zero-config/{name}/rendered.yaml is stale; regenerate with KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox --test render zero_config_samples and review:\n{got}"
        );
    }
}

/// `render -f <compose> <args>` with exactly `env` as the process environment.
fn render_env(compose: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.env_clear()
        .arg("render")
        .arg("-f")
        .arg(compose)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("running kubectl-kompox: {e}"),
    }
}

/// The project `.env`, `--env-file` and the environment, as docker compose reads them; the
/// values go to Secrets, never into the Deployment; names only on stderr.
#[test]
fn dotenv_env_file_and_environment_interpolate_as_compose() {
    let d = tmp("dotenv");
    write(
        &d.join("compose.yml"),
        "name: shop
services:
  db:
    image: postgres:${PG_TAG:-16}
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it in .env}
      POSTGRES_USER: ${DB_USER}
    command: [postgres, -c, \"log_line_prefix=${PREFIX}\"]
",
    );
    write(
        &d.join(".env"),
        "POSTGRES_PASSWORD=\"p@ss w0rd-from-dotenv\"\nDB_USER=shop\nPREFIX=x-${DB_USER}\nPG_TAG=15\n",
    );
    write(
        &d.join("prod.env"),
        "POSTGRES_PASSWORD=prod-secret-value\nDB_USER=prod\n",
    );
    let compose = d.join("compose.yml");
    struct Case {
        name: &'static str,
        args: Vec<String>,
        env: Vec<(&'static str, &'static str)>,
        image: &'static str,
        password: &'static str,
        prefix: &'static str,
    }
    let prod = d.join("prod.env").display().to_string();
    let cases = [
        Case {
            name: "the project .env",
            args: vec![],
            env: vec![],
            image: "postgres:15",
            password: "p@ss w0rd-from-dotenv",
            prefix: "log_line_prefix=x-shop",
        },
        Case {
            name: "the environment wins over .env",
            args: vec![],
            env: vec![("PG_TAG", "17"), ("POSTGRES_PASSWORD", "env-secret-value")],
            image: "postgres:17",
            password: "env-secret-value",
            prefix: "log_line_prefix=x-shop",
        },
        Case {
            name: "--env-file replaces .env",
            args: vec!["--env-file".into(), prod],
            env: vec![],
            image: "postgres:16",
            password: "prod-secret-value",
            prefix: "log_line_prefix=",
        },
        Case {
            name: "--var wins over everything",
            args: vec!["--var".into(), "PG_TAG=18".into()],
            env: vec![("PG_TAG", "17")],
            image: "postgres:18",
            password: "p@ss w0rd-from-dotenv",
            prefix: "log_line_prefix=x-shop",
        },
    ];
    for c in cases {
        let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        args.extend(["-o", "json", "--show-secrets"]);
        let out = render_env(&compose, &args, &c.env);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "case {}: {stderr}", c.name);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let find = |kind: &str, name: &str| {
            items
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .cloned()
                .unwrap_or_default()
        };
        let ctr = &find("Deployment", "shop-app")["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(ctr["image"], c.image, "case {}", c.name);
        assert_eq!(ctr["args"][2], c.prefix, "case {}", c.name);
        let env = ctr["env"].as_array().cloned().unwrap_or_default();
        for e in &env {
            assert!(e["value"].is_null(), "case {}: a plain value {e}", c.name);
            assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "shop-environment");
        }
        let secret = find("Secret", "shop-environment");
        let b64 = secret["data"]["db.POSTGRES_PASSWORD"]
            .as_str()
            .unwrap_or_default();
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
            .unwrap_or_default();
        assert_eq!(text(&decoded), c.password, "case {}", c.name);
        // The Deployment and stderr never hold the password.
        let dep = find("Deployment", "shop-app").to_string();
        assert!(!dep.contains(c.password), "case {}: {dep}", c.name);
        assert!(!stderr.contains(c.password), "case {}: {stderr}", c.name);
        assert!(
            stderr.contains("variables: ") && stderr.contains("POSTGRES_PASSWORD"),
            "case {}: {stderr}",
            c.name
        );
        assert!(
            stderr.contains(
                "warning: services.db.command[2]: uses the secret-held variable ${PREFIX}"
            ) || c.name == "--env-file replaces .env",
            "case {}: {stderr}",
            c.name
        );
    }
    // The redacted output holds no value either.
    let out = render_env(&compose, &[], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("w0rd"), "{}", text(&out.stdout));
}

#[test]
fn env_file_problems_name_the_file_and_line() {
    let d = tmp("dotenv-errors");
    write(
        &d.join("compose.yml"),
        "services:\n  web:\n    image: nginx:${TAG}\n    environment: {PW: \"${PW:?set PW}\"}\n",
    );
    let compose = d.join("compose.yml");
    write(&d.join(".env"), "TAG=1.27\nPW=\"unterminated-s3cret\n");
    let out = render_env(&compose, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(".env: line 2: unterminated quoted value"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");

    write(&d.join(".env"), "TAG=\n");
    let out = render_env(&compose, &[], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: services.web.image: invalid image reference \"nginx:${TAG}\": the tag after \":\" is empty (interpolated from ${TAG})"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "error: services.web.environment.PW: required variable PW is missing a value: set PW"
        ),
        "{stderr}"
    );

    let missing = d.join("nope.env").display().to_string();
    let out = render_env(&compose, &["--env-file", &missing], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nope.env: cannot be read"),
        "{}",
        text(&out.stderr)
    );
}
