//! An OpenTelemetry Collector as a local process (hack/tools/otelcol: the OTLP receiver and the
//! file exporter, built by `hack/build-tools.sh`): the receiver the servers export traces to;
//! [`Collector::spans`] reads what it wrote.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::controller::target_dir;
use crate::{cluster, wait_until};

/// A running collector; killed on drop.
pub struct Collector {
    child: Child,
    /// The OTLP/HTTP base URL (`http://127.0.0.1:PORT`): `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// Where the file exporter writes (OTLP JSON, one export request a line).
    pub file: PathBuf,
    /// The collector's own log.
    pub log: PathBuf,
}

/// One span as the collector received it.
#[derive(Debug, Clone)]
pub struct Span {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex id of the parent span; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// OTLP SpanKind: 1 internal, 2 server, 3 client.
    pub kind: i64,
    /// Attributes, every value as text.
    pub attributes: BTreeMap<String, String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i64,
}

impl Collector {
    /// Starts the collector on a free port and waits until it accepts connections.
    ///
    /// # Errors
    /// When the binary is missing (run `hack/build-tools.sh otelcol`) or it does not start.
    pub async fn start(name: &str) -> Result<Self> {
        let bin = cluster().bin_dir.join("otelcol");
        if !bin.is_file() {
            bail!(
                "{} is missing: run hack/build-tools.sh otelcol",
                bin.display()
            );
        }
        let dir = target_dir().join("e2e-logs");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("otelcol-{name}-{}.jsonl", std::process::id()));
        let log = dir.join(format!("otelcol-{name}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.join(format!("otelcol-{name}-{}.yaml", std::process::id()));
        // No telemetry port of its own (8888 would clash between runs).
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
                 exporters:\n  file:\n    path: {file}\n    flush_interval: 100ms\n\
                 service:\n  telemetry:\n    metrics:\n      level: none\n\
                 \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
                file = file.display()
            ),
        )?;
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&bin)
            .arg(format!("--config=file:{}", config.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting otelcol")?;
        let mut c = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            file,
            log,
        };
        let started = wait_until(
            "otelcol listening",
            Duration::from_secs(60),
            || async move {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok())
            },
        )
        .await;
        if let Err(e) = started {
            let _ = c.child.start_kill();
            let log = std::fs::read_to_string(&c.log).unwrap_or_default();
            bail!("{e}\n{log}");
        }
        Ok(c)
    }

    /// Every span written so far (a line cut mid-write is skipped).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn spans(&self) -> Result<Vec<Span>> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut spans = Vec::new();
        for line in text.lines() {
            let Ok(request) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            for rs in request["resourceSpans"].as_array().into_iter().flatten() {
                let service = attributes(&rs["resource"]["attributes"])
                    .remove("service.name")
                    .unwrap_or_default();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                        spans.push(Span {
                            service: service.clone(),
                            trace_id: text("traceId"),
                            span_id: text("spanId"),
                            parent_span_id: text("parentSpanId"),
                            name: text("name"),
                            kind: s["kind"].as_i64().unwrap_or_default(),
                            attributes: attributes(&s["attributes"]),
                            status: s["status"]["code"].as_i64().unwrap_or_default(),
                        });
                    }
                }
            }
        }
        Ok(spans)
    }

    /// Waits until `pick` finds what it wants among the spans received.
    ///
    /// # Errors
    /// On timeout, listing the span names received.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&[Span]) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans()?;
            if let Some(found) = pick(&spans) {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> = spans
                    .iter()
                    .map(|s| format!("{}:{}", s.service, s.name))
                    .collect();
                bail!("no {what} within {timeout:?}; spans received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// OTLP JSON attributes (`[{"key", "value": {"stringValue"|"intValue"|…}}]`) as text.
fn attributes(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let key = a["key"].as_str()?.to_owned();
            let value = a["value"].as_object()?.values().next()?;
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            Some((key, value))
        })
        .collect()
}
