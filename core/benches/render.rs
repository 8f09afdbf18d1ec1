//! Renderer benchmark: time per render of every sample and of a generated 50-service
//! compose file. `cargo bench -p kompox-core --bench render` (release build); prints a
//! Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use kompox_core::api::ProviderType;
use kompox_core::render::{Bundle, ClusterInfo, RenderInput, render};

struct Case {
    name: String,
    compose: String,
    bundle: Bundle,
}

fn sample(dir: &Path) -> Option<Case> {
    let compose = std::fs::read_to_string(dir.join("compose.yml")).ok()?;
    let mut bundle = Bundle::parse(&std::fs::read_to_string(dir.join("app.yml")).ok()?).ok()?;
    bundle.assume_fresh_disks();
    Some(Case {
        name: dir.file_name()?.to_string_lossy().into_owned(),
        compose,
        bundle,
    })
}

/// 50 services: image, 8 variables, an env file, a port, a bind, a healthcheck, and a
/// dependency on the previous service for every fifth one.
fn fifty() -> Case {
    let mut compose = String::from("name: fifty\nservices:\n");
    let mut env = String::new();
    for i in 0..50 {
        let _ = write!(
            compose,
            "  s{i}:
    image: registry.example.com/team/s{i}:1.{i}.0
    env_file: [./s{i}.env]
    environment:
      A{i}: a
      B{i}: b
      C{i}: c
      D{i}: d
      E{i}: e
      F{i}: f
      G{i}: g
      H{i}: h
    ports: ['{}:{}']
    volumes: ['./data/s{i}:/data']
    healthcheck:
      test: [CMD, /bin/check, --port, '{}']
      interval: 10s
      retries: 3
    deploy: {{resources: {{limits: {{cpus: '0.5', memory: 256M}}}}}}
",
            20000 + i,
            10000 + i,
            10000 + i
        );
        if i % 5 == 4 {
            let _ = writeln!(
                compose,
                "    depends_on: {{s{}: {{condition: service_healthy}}}}",
                i - 1
            );
        }
        let _ = writeln!(
            env,
            "  s{i}.env: \"SECRET_{i}=value-{i}\\nTOKEN_{i}=t{i}\\n\""
        );
    }
    let mounts: String = (0..50)
        .map(|i| format!("      - {{path: /kompox/project/s{i}.env, secretRef: {{name: env-files, key: s{i}.env}}}}\n"))
        .collect();
    let app = format!(
        "apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxApp
metadata: {{name: fifty, namespace: fifty}}
spec:
  compose: {{configMapRef: {{name: fifty-compose, key: compose.yml}}}}
  ingress: {{className: traefik, rules: [{{name: web, port: 20000, hosts: [fifty.example.com]}}]}}
  volumes: [{{name: default, diskRef: {{name: default}}}}]
  files:
    mounts:
{mounts}---
apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxDisk
metadata: {{name: default}}
spec: {{size: 100Gi, zone: '1'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: env-files}}
stringData:
{env}"
    );
    let mut bundle = match Bundle::parse(&app) {
        Ok(b) => b,
        Err(e) => panic!("generated app: {e:?}"),
    };
    bundle.assume_fresh_disks();
    Case {
        name: "generated, 50 services".to_owned(),
        compose,
        bundle,
    }
}

fn main() {
    let cluster = ClusterInfo {
        provider: ProviderType::Aks,
        region: Some("japaneast".to_owned()),
    };
    let vars = BTreeMap::new();
    let key = match kompox_core::hash::HashKey::new(&[7; 32]) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    };
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut cases: Vec<Case> = std::fs::read_dir(&samples)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| sample(&e.path()))
                .collect()
        })
        .unwrap_or_default();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases.push(fifty());

    println!(
        "| input | services | objects | render median | mean | min | of which compose parse (median) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let Some(app) = case.bundle.apps.first() else {
            continue;
        };
        let input = RenderInput {
            app,
            compose: &case.compose,
            disks: &case.bundle.disks,
            sources: &case.bundle.sources,
            cluster: &cluster,
            interpolation: &vars,
            key: &key,
        };
        let rendered = match render(&input) {
            Ok(r) => r,
            Err(e) => panic!("{}: {e}", case.name),
        };
        let services = case.compose.matches("\n    image: ").count();
        // Warm up, then time batches until ~1 s has passed.
        for _ in 0..20 {
            let _ = black_box(render(black_box(&input)));
        }
        let mut times: Vec<Duration> = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) || times.len() < 20 {
            let t = Instant::now();
            let _ = black_box(render(black_box(&input)));
            times.push(t.elapsed());
        }
        times.sort();
        let parse = median(|| {
            let _ = black_box(kompox_core::compose::parse(
                black_box(&case.compose),
                &|_| None,
            ));
        });
        let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap_or(u32::MAX);
        println!(
            "| {} | {} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            case.name,
            services,
            rendered.objects.len(),
            micros(times[times.len() / 2]),
            micros(mean),
            micros(times[0]),
            micros(parse),
        );
    }
}

/// Median time of `f` over ~0.5 s.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) || times.len() < 20 {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
