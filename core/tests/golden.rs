//! Golden tests: every `samples/<name>/` (compose.yml + app.yml) renders to the reviewed
//! `samples/<name>/rendered.yaml` (Secrets redacted, warnings as leading comments).
//!
//! Regenerate after a deliberate change, then review the diff:
//! `KOMPOX_UPDATE_GOLDEN=1 cargo test -p kompox-core --test golden`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kompox_core::api::ProviderType;
use kompox_core::hash::HashKey;
use kompox_core::redact::redact_objects;
use kompox_core::render::{Bundle, ClusterInfo, RenderInput, render, yaml_stream};

/// The cluster the samples are rendered for (the local test cluster's region).
fn cluster() -> ClusterInfo {
    ClusterInfo {
        provider: ProviderType::Aks,
        region: Some("japaneast".to_owned()),
    }
}

/// A fixed key, so the goldens' digests are stable (an install has its own random key).
fn key() -> HashKey {
    HashKey::new(b"kompox golden samples: fixed key").unwrap_or_else(|e| panic!("{e}"))
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The golden text of one sample.
fn render_sample(name: &str, dir: &Path) -> String {
    let compose = read(&dir.join("compose.yml"));
    let mut bundle = Bundle::parse(&read(&dir.join("app.yml")))
        .unwrap_or_else(|e| panic!("{name}/app.yml: {e:?}"));
    bundle.assume_fresh_disks();
    assert_eq!(bundle.apps.len(), 1, "{name}/app.yml: one KompoxApp");
    let rendered = render(&RenderInput {
        app: &bundle.apps[0],
        compose: &compose,
        disks: &bundle.disks,
        sources: &bundle.sources,
        cluster: &cluster(),
        interpolation: &BTreeMap::new(),
        key: &key(),
    })
    .unwrap_or_else(|e| panic!("{name}: render failed:\n{e}"));
    let mut out = format!(
        "# Rendered from samples/{name}/compose.yml and app.yml for provider aks, region japaneast.\n\
         # Same as: kubectl-kompox render -f samples/{name}/compose.yml --app samples/{name}/app.yml --provider aks --region japaneast\n\
         # (digests under the fixed key \"kompox golden samples: fixed key\", given with --hash-key-file)\n\
         # Regenerate: KOMPOX_UPDATE_GOLDEN=1 cargo test -p kompox-core --test golden\n"
    );
    for w in bundle.warnings.iter().chain(&rendered.warnings) {
        out.push_str(&format!("# warning: {w}\n"));
    }
    out.push_str(
        &yaml_stream(&redact_objects(&key(), &rendered.objects)).unwrap_or_else(|e| panic!("{e}")),
    );
    out
}

#[test]
fn samples_match_golden_files() {
    let update = std::env::var_os("KOMPOX_UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(samples_dir())
        .unwrap_or_else(|e| panic!("samples/: {e}"))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("compose.yml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 5,
        "expected at least 5 samples, found {names:?}"
    );
    assert!(
        names.iter().any(|n| n == "gitea"),
        "samples/gitea is missing"
    );
    let mut stale = Vec::new();
    for name in &names {
        let dir = samples_dir().join(name);
        let got = render_sample(name, &dir);
        let golden = dir.join("rendered.yaml");
        if update {
            std::fs::write(&golden, &got).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            stale.push(format!(
                "samples/{name}/rendered.yaml differs from line {}",
                line + 1
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nregenerate with KOMPOX_UPDATE_GOLDEN=1 cargo test -p kompox-core --test golden and review the diff",
        stale.join("\n")
    );
}

#[test]
fn golden_files_hold_no_secret_values() {
    for name in ["gitea", "wordpress", "nextcloud", "vaultwarden", "miniflux"] {
        let text = std::fs::read_to_string(samples_dir().join(name).join("rendered.yaml"))
            .unwrap_or_default();
        assert!(
            !text.contains("demo-"),
            "samples/{name}/rendered.yaml shows a demo secret value"
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    for name in ["gitea", "nextcloud"] {
        let dir = samples_dir().join(name);
        assert_eq!(render_sample(name, &dir), render_sample(name, &dir));
    }
}
