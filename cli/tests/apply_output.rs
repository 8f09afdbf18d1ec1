//! `kubectl-kompox apply -o …` with `--dry-run=client`, run as a process: the objects apply
//! would write go to stdout in kubectl's formats (progress to stderr), Secret values
//! redacted; no cluster is contacted.

use std::process::Command;

fn dry_run(name: &str, format: &str) -> (i32, String, String) {
    let d = std::env::temp_dir().join(format!("kompox-apply-o-{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    let f = d.join("compose.yml");
    let _ = std::fs::write(
        &f,
        "name: shop\nservices:\n  web:\n    image: nginx\n    environment:\n      PW: ${PW}\n",
    );
    let _ = std::fs::write(d.join(".env"), "PW=hunter2-dotenv\n");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-kompox"))
        .arg("apply")
        .arg("-f")
        .arg(&f)
        .args([
            "--dry-run=client",
            "-o",
            format,
            "--kubeconfig",
            "/nonexistent",
        ])
        .output();
    let _ = std::fs::remove_dir_all(&d);
    match out {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => panic!("running kubectl-kompox: {e}"),
    }
}

#[test]
fn names_on_stdout_progress_on_stderr() {
    let (code, out, err) = dry_run("name", "name");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("namespace/"), "{out}");
    for want in [
        "configmap/shop-compose",
        "secret/shop-dotenv",
        "kompoxapp.k8s.kompox.dev/shop",
    ] {
        assert!(lines.contains(&want), "no {want} in:\n{out}");
    }
    assert!(err.contains("(dry run)"), "progress not on stderr: {err}");
}

#[test]
fn yaml_redacts_secret_values() {
    let (code, out, err) = dry_run("yaml", "yaml");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind: KompoxApp") && out.contains("kind: Secret"),
        "{out}"
    );
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "a value leaked:\n{out}\n{err}"
    );
    // The value is not there in base64 either.
    assert!(!out.contains("aHVudGVyMi1kb3RlbnY"), "{out}");
}

#[test]
fn wide_is_refused_before_anything() {
    let (code, out, err) = dry_run("wide", "wide");
    assert_eq!(code, 1);
    assert!(
        out.is_empty() && err.contains("-o wide: apply prints no table"),
        "{err}"
    );
}
