//! Never-panic tests: the samples mutated byte-wise, line-wise and structurally, plus
//! generated compose files, rendered under a seeded PRNG (reproducible, no extra deps).
//! A failure prints the seed and the input.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;
use crate::test_rng::Rng;

const SAMPLES: [(&str, &str, &str); 5] = [
    (
        "gitea",
        include_str!("../../../samples/gitea/compose.yml"),
        include_str!("../../../samples/gitea/app.yml"),
    ),
    (
        "wordpress",
        include_str!("../../../samples/wordpress/compose.yml"),
        include_str!("../../../samples/wordpress/app.yml"),
    ),
    (
        "nextcloud",
        include_str!("../../../samples/nextcloud/compose.yml"),
        include_str!("../../../samples/nextcloud/app.yml"),
    ),
    (
        "vaultwarden",
        include_str!("../../../samples/vaultwarden/compose.yml"),
        include_str!("../../../samples/vaultwarden/app.yml"),
    ),
    (
        "miniflux",
        include_str!("../../../samples/miniflux/compose.yml"),
        include_str!("../../../samples/miniflux/app.yml"),
    ),
];

const SNIPPETS: &[&str] = &[
    "\n",
    " ",
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "$",
    "${X}",
    "${X:?boom}",
    "$$",
    "#",
    "&a",
    "*a",
    "<<: *a",
    "!!str ",
    "|",
    ">",
    "..",
    "../",
    "./",
    "/",
    "~",
    "0",
    "-1",
    "65536",
    "1.5",
    "true",
    "null",
    "~",
    "x",
    "é",
    "\u{0}",
    "\t",
    "depends_on: [",
    "volumes:",
    "condition: service_healthy",
    "condition: service_completed_successfully",
    "ports: ['1:1']",
    "image: x",
    "env_file: ./nope.env",
    "healthcheck: {test: [CMD, x]}",
    "build: .",
    "configs: [c]",
    "secrets: [s]",
    "tmpfs: /t",
    "user: a:b",
    "extra_hosts: ['a:b']",
];

fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !s.is_empty() => {
                let at = rng.below(s.len());
                let len = rng.below(20).min(s.len() - at);
                s.drain(at..at + len);
            }
            1 => {
                let at = rng.below(s.len() + 1);
                let snippet: Vec<char> = rng.pick(SNIPPETS).chars().collect();
                s.splice(at..at, snippet);
            }
            2 if !s.is_empty() => {
                let at = rng.below(s.len());
                s[at] = *rng.pick(&[' ', ':', '-', '\n', 'a', '"', '{', '/', '.', '$']);
            }
            3 => {
                // Duplicate or drop a whole line.
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    if rng.chance(50) {
                        let l = lines[i];
                        lines.insert(i, l);
                    } else {
                        lines.remove(i);
                    }
                }
                s = lines.join("\n").chars().collect();
            }
            4 => {
                // Swap two lines.
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                s = lines.join("\n").chars().collect();
            }
            _ => {
                // Re-indent a line.
                let text: String = s.iter().collect();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    if rng.chance(50) {
                        lines[i] = format!("  {}", lines[i]);
                    } else {
                        lines[i] = lines[i].trim_start().to_owned();
                    }
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

/// Structural mutations of the typed inputs.
fn mutate_inputs(
    rng: &mut Rng,
    b: &mut Bundle,
    cluster: &mut ClusterInfo,
    vars: &mut BTreeMap<String, String>,
) {
    for _ in 0..=rng.below(3) {
        match rng.below(10) {
            0 => {
                let names: Vec<String> = b.disks.keys().cloned().collect();
                if !names.is_empty() {
                    b.disks.remove(rng.pick(&names));
                }
            }
            1 => {
                for d in b.disks.values_mut() {
                    if let Some(s) = d.status.as_mut() {
                        s.pv_name = None;
                        s.zone = Some(rng.pick(&["", "1", "japaneast-9", "x"]).to_string());
                    }
                    d.spec.zone = Some(
                        rng.pick(&["", "1", "2", "27", "0", "us-east-1a"])
                            .to_string(),
                    );
                }
            }
            2 => {
                b.sources.secrets.clear();
            }
            3 => {
                b.sources.config_maps.clear();
                for s in b.sources.secrets.values_mut() {
                    s.string_data = Some(BTreeMap::from([(
                        "gitea.env".to_owned(),
                        "\u{0}\"unterminated demo-value".to_owned(),
                    )]));
                }
            }
            4 => {
                *cluster = ClusterInfo {
                    provider: *rng.pick(&ProviderType::ALL),
                    region: if rng.chance(50) {
                        None
                    } else {
                        Some(rng.pick(&["", "r", "us-east-1"]).to_string())
                    },
                };
            }
            5 => {
                if let Some(app) = b.apps.first_mut() {
                    app.spec.volumes.reverse();
                    if rng.chance(50) {
                        app.spec.volumes.clear();
                    }
                }
            }
            6 => {
                if let Some(i) = b.apps.first_mut().and_then(|a| a.spec.ingress.as_mut()) {
                    for r in &mut i.rules {
                        r.port = *rng.pick(&[0, 1, 22, 80, 3000, 8080, 65535, 70000, -1]);
                        r.name = rng
                            .pick(&["", "a", "x-y", "Bad_Name", "toolongportname-xyz"])
                            .to_string();
                    }
                }
            }
            7 => {
                if let Some(app) = b.apps.first_mut() {
                    for m in app.spec.files.iter_mut().flat_map(|f| f.mounts.iter_mut()) {
                        m.path = rng
                            .pick(&[
                                "",
                                "/",
                                "relative",
                                "/kompox/project/../x",
                                "/a//b",
                                "/kompox/project/gitea.env",
                            ])
                            .to_string();
                        m.mode = Some(*rng.pick(&[-1, 0, 420, 511, 4096]));
                    }
                }
            }
            8 => {
                vars.insert(
                    "X".to_owned(),
                    rng.pick(&["", "$(x)", "a:b", "\n"]).to_string(),
                );
            }
            _ => {
                if let Some(app) = b.apps.first_mut() {
                    app.metadata.name = Some(
                        rng.pick(&["", "a", "A", &"x".repeat(300), "a.b", "-a"])
                            .to_string(),
                    );
                    app.metadata.namespace = None;
                }
            }
        }
    }
}

fn run(
    compose: &str,
    b: &Bundle,
    cluster: &ClusterInfo,
    vars: &BTreeMap<String, String>,
) -> Option<Result<Rendered, RenderError>> {
    let app = b.apps.first()?;
    Some(render(&RenderInput {
        app,
        compose,
        disks: &b.disks,
        sources: &b.sources,
        cluster,
        interpolation: vars,
    }))
}

fn check(seed: u64, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("render panicked (seed {seed}) on {what}");
    }
}

fn base_cluster() -> ClusterInfo {
    ClusterInfo {
        provider: ProviderType::Aks,
        region: Some("japaneast".to_owned()),
    }
}

#[test]
fn mutated_compose_files_never_panic() {
    for seed in 1..=1500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let Ok(mut b) = Bundle::parse(app) else {
            panic!("{name}: sample app.yml")
        };
        b.assume_fresh_disks();
        let text = mutate_text(&mut rng, compose);
        check(seed, &format!("{name} compose:\n{text}"), || {
            if let Some(Ok(r)) = run(&text, &b, &base_cluster(), &BTreeMap::new()) {
                assert!(!r.objects.is_empty());
            }
        });
    }
}

#[test]
fn mutated_app_files_never_panic() {
    for seed in 1..=800u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let text = mutate_text(&mut rng, app);
        check(seed, &format!("{name} app.yml:\n{text}"), || {
            let Ok(mut b) = Bundle::parse(&text) else {
                return;
            };
            b.assume_fresh_disks();
            let _ = run(compose, &b, &base_cluster(), &BTreeMap::new());
        });
    }
}

#[test]
fn mutated_inputs_never_panic_nor_leak_secrets() {
    for seed in 1..=800u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let Ok(mut b) = Bundle::parse(app) else {
            panic!("{name}: sample app.yml")
        };
        b.assume_fresh_disks();
        let mut cluster = base_cluster();
        let mut vars = BTreeMap::new();
        mutate_inputs(&mut rng, &mut b, &mut cluster, &mut vars);
        check(seed, &format!("{name} with mutated inputs"), || {
            let messages = match run(compose, &b, &cluster, &vars) {
                Some(Ok(r)) => r
                    .warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                Some(Err(e)) => e.errors.iter().map(ToString::to_string).collect(),
                None => Vec::new(),
            };
            for m in messages {
                assert!(!m.contains("demo-"), "a Secret value in {m:?}");
            }
        });
    }
}

/// Random compose files built from the keys the renderer maps.
fn generated_compose(rng: &mut Rng) -> String {
    let n = 1 + rng.below(6);
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let mut out = String::from("services:\n");
    for name in &names {
        out.push_str(&format!("  {name}:\n"));
        if rng.chance(90) {
            out.push_str("    image: img\n");
        } else {
            out.push_str("    build: .\n");
        }
        if rng.chance(50) {
            let dep = rng.pick(&names);
            let cond = rng.pick(&[
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ]);
            out.push_str(&format!(
                "    depends_on: {{{dep}: {{condition: {cond}}}}}\n"
            ));
        }
        if rng.chance(50) {
            out.push_str("    healthcheck: {test: [CMD, x], interval: 1s, start_period: 2s}\n");
        }
        if rng.chance(60) {
            let v = rng.pick(&[
                "./d:/d",
                ".:/p",
                "data:/data",
                "data/sub:/s",
                "/abs:/a",
                "/anon",
                "x:/x",
            ]);
            out.push_str(&format!("    volumes: ['{v}']\n"));
        }
        if rng.chance(50) {
            let p = rng.pick(&[
                "80",
                "8080:80",
                "53:53/udp",
                "3000-3002:3000-3002",
                "1:65535",
            ]);
            out.push_str(&format!("    ports: ['{p}']\n"));
        }
        if rng.chance(20) {
            out.push_str("    env_file: [./gitea.env, {path: x.env, required: false}]\n");
        }
        if rng.chance(20) {
            out.push_str("    configs: [c]\n    secrets: [s]\n");
        }
        if rng.chance(20) {
            out.push_str("    user: '1000:1000'\n    shm_size: 1g\n    tmpfs: [/t]\n");
        }
    }
    out.push_str("volumes:\n  data: {}\n  x: {}\nconfigs:\n  c: {content: x}\nsecrets:\n  s: {file: ./s.txt}\n");
    out
}

#[test]
fn generated_compose_files_never_panic() {
    let Ok(mut b) = Bundle::parse(SAMPLES[0].2) else {
        panic!("gitea app.yml")
    };
    b.assume_fresh_disks();
    for seed in 1..=1500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x94D0_49BB_1331_11EB) | 1);
        let text = generated_compose(&mut rng);
        check(seed, &format!("generated compose:\n{text}"), || {
            if let Some(Ok(r)) = run(&text, &b, &base_cluster(), &BTreeMap::new()) {
                // Whatever renders is well-formed: named, labelled, in order.
                let mut last = 0;
                for o in &r.objects {
                    let name = o["metadata"]["name"].as_str().unwrap_or_default();
                    assert!(crate::naming::is_dns1123_subdomain(name), "{name}");
                    let rank = KIND_ORDER
                        .iter()
                        .position(|k| o["kind"] == *k)
                        .unwrap_or(99);
                    assert!(rank >= last && rank < KIND_ORDER.len());
                    last = rank;
                }
            }
        });
    }
}
