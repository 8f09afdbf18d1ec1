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
    let out = render(&compose, &["--env-file", &extra]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: demo-web-env"), "{stdout}");
    assert!(
        stdout.contains("PASSWORD: sha256:"),
        "redacted by default: {stdout}"
    );
    assert!(stdout.contains("EXTRA: sha256:"), "{stdout}");
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
            "--env-file",
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
    write(&d.join("nginx.conf"), "x");
    let out = render(&d.join("compose.yml"), &["--env-file", "/unused=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: services.web.volumes[0]: bind source \"nginx.conf\" is a file: Kompox binds directories (on spec.volumes[0]); put the file in a ConfigMap or Secret and add a spec.files.mounts entry with path /kompox/project/nginx.conf\n"
    );
    std::fs::remove_file(d.join("nginx.conf")).unwrap_or_default();
    let out = render(&d.join("compose.yml"), &["--env-file", "/unused=x"]);
    assert_eq!(
        text(&out.stderr),
        "warning: --env-file /unused: not needed: the compose file does not name it, or spec.files.mounts provides it\n\
         error: services.web.env_file[0]: env file \"./missing.env\" not found: add a spec.files.mounts entry with path /kompox/project/missing.env (a Secret key holding the file)\n"
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
