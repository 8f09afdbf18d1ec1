//! HTTP: routing, authentication/authorization, Kubernetes reads and writes, and turning
//! every error into a `metav1.Status`.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use kompox_cluster::{api_code, is_conflict};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_serve::{BoxError, ConnInfo, read_body_limited};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::auth::{self, Attributes, UserInfo};
use crate::discovery::{self, GROUP, GROUP_VERSION};
use crate::service::{
    self, MAX_BODY_BYTES, RenderOutput, Verdict, VolumeTarget, check_attach, check_detach,
};
use crate::state::State;
use crate::status::{ApiError, Cause};

/// Field manager of the server-side dry runs.
pub const FIELD_MANAGER: &str = "kompox";
/// Attempts of an attach/detach when a resourceVersion guard fails.
const MAX_ATTEMPTS: usize = 5;

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Metrics,
    GroupList,
    Group,
    ResourceList,
    OpenApi,
    Rendered {
        ns: String,
        name: String,
    },
    Disk {
        ns: String,
        name: String,
        attach: bool,
    },
    Unknown,
}

impl Route {
    fn parse(path: &str) -> Route {
        match path.trim_end_matches('/') {
            "/healthz" | "/livez" | "/readyz" | "/healthz/ping" | "/livez/ping"
            | "/readyz/ping" => {
                return Route::Health;
            }
            "/metrics" => return Route::Metrics,
            "/apis" => return Route::GroupList,
            p if p == format!("/apis/{GROUP}") => return Route::Group,
            p if p == format!("/apis/{GROUP_VERSION}") => return Route::ResourceList,
            p if p.starts_with("/openapi/") || p == "/openapi" => return Route::OpenApi,
            _ => {}
        }
        let Some(rest) = path.strip_prefix(&format!("/apis/{GROUP_VERSION}/namespaces/")) else {
            return Route::Unknown;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [ns, resource, name, sub] = parts.as_slice() else {
            return Route::Unknown;
        };
        if kompox_core::naming::validate_dns1123_label(ns).is_err()
            || kompox_core::naming::validate_dns1123_subdomain(name).is_err()
        {
            return Route::Unknown;
        }
        let (ns, name) = ((*ns).to_owned(), (*name).to_owned());
        match (*resource, *sub) {
            ("kompoxapps", "rendered") => Route::Rendered { ns, name },
            ("kompoxdisks", "attach") => Route::Disk {
                ns,
                name,
                attach: true,
            },
            ("kompoxdisks", "detach") => Route::Disk {
                ns,
                name,
                attach: false,
            },
            _ => Route::Unknown,
        }
    }

    /// Fixed label for metrics.
    fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::GroupList | Route::Group | Route::ResourceList => "discovery",
            Route::OpenApi => "openapi",
            Route::Rendered { .. } => "kompoxapps/rendered",
            Route::Disk { attach: true, .. } => "kompoxdisks/attach",
            Route::Disk { attach: false, .. } => "kompoxdisks/detach",
            Route::Unknown => "unknown",
        }
    }
}

/// Serves one request. Never panics on any input; every error is a Status.
pub async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
    conn: Arc<ConnInfo>,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let route = Route::parse(req.uri().path());
    let label = route.label();
    let resp = match tokio::time::timeout(
        state.request_timeout,
        dispatch(&state, route, req, &conn),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.to_response(),
        Err(_) => ApiError::timeout(format!(
            "the request did not complete within {:?}",
            state.request_timeout
        ))
        .to_response(),
    };
    state
        .metrics
        .observe(label, &method, resp.status(), started.elapsed());
    resp
}

fn only(method: &Method, allowed: &Method, what: &str) -> Result<(), ApiError> {
    let head_ok = *allowed == Method::GET && *method == Method::HEAD;
    if method == allowed || head_ok {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method, what, allowed.as_str()))
    }
}

async fn dispatch<B>(
    state: &State,
    route: Route,
    req: Request<B>,
    conn: &ConnInfo,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let method = req.method().clone();
    match route {
        Route::Health => Ok(state
            .health
            .respond(&req)
            .unwrap_or_else(|| ApiError::no_route(req.uri().path()).to_response())),
        Route::Metrics => {
            only(&method, &Method::GET, "/metrics")?;
            Ok(state.metrics.response())
        }
        Route::GroupList => {
            only(&method, &Method::GET, "discovery")?;
            Ok(kompox_serve::json(
                StatusCode::OK,
                &discovery::api_group_list(),
            ))
        }
        Route::Group => {
            only(&method, &Method::GET, "discovery")?;
            Ok(kompox_serve::json(StatusCode::OK, &discovery::api_group()))
        }
        Route::ResourceList => {
            only(&method, &Method::GET, "discovery")?;
            Ok(kompox_serve::json(
                StatusCode::OK,
                &discovery::api_resource_list(),
            ))
        }
        Route::OpenApi => Err(ApiError::no_route(req.uri().path())),
        Route::Unknown => Err(ApiError::no_route(req.uri().path())),
        Route::Rendered { ns, name } => {
            only(&method, &Method::GET, "kompoxapps/rendered")?;
            let user = authenticate(state, conn, &req)?;
            authorize(
                state,
                &user,
                Attributes::new(&ns, "get", GROUP, "kompoxapps", "rendered", &name),
            )
            .await?;
            let validate = validate_param(req.uri().query())?;
            let yaml = wants_yaml(req.headers().get(ACCEPT));
            let list = rendered(state, &ns, &name, validate).await?;
            Ok(respond_value(&list, yaml))
        }
        Route::Disk { ns, name, attach } => {
            let sub = if attach { "attach" } else { "detach" };
            only(&method, &Method::POST, &format!("kompoxdisks/{sub}"))?;
            let user = authenticate(state, conn, &req)?;
            authorize(
                state,
                &user,
                Attributes::new(&ns, "create", GROUP, "kompoxdisks", sub, &name),
            )
            .await?;
            let content_type = req
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("invalid").to_owned());
            let body = read_body_limited(req.into_body(), MAX_BODY_BYTES)
                .await
                .map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        ApiError::too_large(format!("body: larger than {MAX_BODY_BYTES} bytes"))
                    }
                    _ => ApiError::bad_request(format!("body: {e}")),
                })?;
            let target = service::parse_volume_target(content_type.as_deref(), &body)?;
            // Attach/detach change the app with the server's rights: the user must be allowed
            // to patch it too, or this would be a way around RBAC.
            authorize(
                state,
                &user,
                Attributes::new(
                    &ns,
                    "patch",
                    kompox_core::api::GROUP,
                    "kompoxapps",
                    "",
                    &target.app,
                ),
            )
            .await?;
            let app = if attach {
                let app = attach_disk(state, &ns, &name, &target).await?;
                serde_json::to_value(app)
                    .map_err(|e| ApiError::internal(format!("serializing kompoxapp: {e}")))?
            } else {
                detach_disk(state, &ns, &name, &target).await?
            };
            Ok(kompox_serve::json(StatusCode::OK, &app))
        }
    }
}

fn authenticate<B>(state: &State, conn: &ConnInfo, req: &Request<B>) -> Result<UserInfo, ApiError> {
    let cfg = state
        .request_header
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    auth::authenticate(cfg.as_ref(), conn, req.headers())
}

async fn authorize(state: &State, user: &UserInfo, attrs: Attributes) -> Result<(), ApiError> {
    let decision = state.authorizer.authorize(user, &attrs).await?;
    auth::require(&decision, user, &attrs)
}

fn validate_param(query: Option<&str>) -> Result<bool, ApiError> {
    let mut validate = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if k == "validate" {
            validate = match v {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "validate: {v:?} is not a boolean (use true or false)"
                    )));
                }
            };
        }
    }
    Ok(validate)
}

fn wants_yaml(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
        return false;
    };
    // The first listed of JSON or YAML wins; kubectl asks for JSON.
    for part in accept.split(',') {
        let media = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => return false,
            "application/yaml" | "application/x-yaml" | "text/yaml" => return true,
            _ => {}
        }
    }
    false
}

fn respond_value(value: &Value, yaml: bool) -> Response<Full<Bytes>> {
    if !yaml {
        return kompox_serve::json(StatusCode::OK, value);
    }
    match serde_saphyr::to_string(value) {
        Ok(text) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
            resp
        }
        Err(e) => ApiError::internal(format!("serializing YAML: {e}")).to_response(),
    }
}

async fn get_app(state: &State, ns: &str, name: &str) -> Result<KompoxApp, ApiError> {
    Api::<KompoxApp>::namespaced(state.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ApiError::from_kube(&format!("getting kompoxapp {ns}/{name}"), &e))?
        .ok_or_else(|| ApiError::not_found("kompoxapps.k8s.kompox.dev", name))
}

async fn get_disk(state: &State, ns: &str, name: &str) -> Result<KompoxDisk, ApiError> {
    Api::<KompoxDisk>::namespaced(state.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ApiError::from_kube(&format!("getting kompoxdisk {ns}/{name}"), &e))?
        .ok_or_else(|| ApiError::not_found("kompoxdisks.k8s.kompox.dev", name))
}

/// What `GET …/kompoxapps/NAME/rendered` answers (see [`service::rendered_list`]).
async fn rendered(state: &State, ns: &str, name: &str, validate: bool) -> Result<Value, ApiError> {
    let app = get_app(state, ns, name).await?;
    let inputs = kompox_cluster::gather_inputs(&state.client, &app)
        .await
        .map_err(|e| inputs_error(name, e))?;
    let cluster = state.cluster_info(app.spec.provider.type_).await?;
    let out = crate::render::render_bounded(state, inputs, cluster, name).await?;
    let verdicts = if validate {
        Some(dry_run_all(state, ns, &out).await)
    } else {
        None
    };
    Ok(service::rendered_list(
        &state.render.key,
        &out,
        verdicts.as_deref(),
    ))
}

fn inputs_error(app: &str, e: kompox_cluster::Error) -> ApiError {
    use kompox_cluster::Error as E;
    match e {
        E::ComposeConfigMapNotFound { .. } => ApiError::invalid(
            "kompoxapps",
            app,
            vec![Cause {
                field: "spec.compose.configMapRef.name".into(),
                message: e
                    .to_string()
                    .trim_start_matches("spec.compose.configMapRef.name: ")
                    .to_owned(),
            }],
        ),
        E::ComposeKeyNotFound { .. } => ApiError::invalid(
            "kompoxapps",
            app,
            vec![Cause {
                field: "spec.compose.configMapRef.key".into(),
                message: e
                    .to_string()
                    .trim_start_matches("spec.compose.configMapRef.key: ")
                    .to_owned(),
            }],
        ),
        E::Kube { what, source } => ApiError::from_kube(&what, &source),
        other => ApiError::internal(other.to_string()),
    }
}

/// Server-side dry run (`dryRun=All`, apply as [`FIELD_MANAGER`], forced) of every object, with
/// the server's own rights, concurrently; one verdict per object in order. Messages are
/// scrubbed of the Secret values the objects hold.
async fn dry_run_all(state: &State, ns: &str, out: &RenderOutput) -> Vec<Verdict> {
    let secrets = service::secret_values(&out.objects);
    let runs = out
        .objects
        .iter()
        .map(|o| dry_run_one(state, ns, o, &secrets));
    futures::future::join_all(runs).await
}

async fn dry_run_one(state: &State, ns: &str, obj: &Value, secrets: &[String]) -> Verdict {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    let api_version = s(obj.get("apiVersion"));
    let kind = s(obj.get("kind"));
    let name = s(obj.get("metadata").and_then(|m| m.get("name")));
    let reject = |code: u16, reason: &str, message: String| Verdict {
        api_version: api_version.clone(),
        kind: kind.clone(),
        name: name.clone(),
        rejection: Some((code, reason.to_owned(), service::scrub(&message, secrets))),
    };
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    if version.is_empty() || kind.is_empty() || name.is_empty() {
        return reject(
            422,
            "Invalid",
            "object lacks apiVersion, kind or metadata.name".into(),
        );
    }
    let gvk = GroupVersionKind::gvk(&group, &version, &kind);
    let (ar, namespaced) = match state.resource_for(&gvk).await {
        Ok(r) => r,
        Err(e) => return reject(e.code.as_u16(), e.reason, e.message),
    };
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(state.client.clone(), ns, &ar)
    } else {
        Api::all_with(state.client.clone(), &ar)
    };
    let mut body = obj.clone();
    if namespaced && let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.to_owned()));
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    match api.patch(&name, &pp, &Patch::Apply(&body)).await {
        Ok(_) => Verdict {
            api_version,
            kind,
            name,
            rejection: None,
        },
        Err(kube::Error::Api(st)) => reject(st.code, &st.reason, st.message.clone()),
        Err(e) => reject(503, "ServiceUnavailable", e.to_string()),
    }
}

fn is_guard_failure(e: &kube::Error) -> bool {
    is_conflict(e) || api_code(e) == Some(422)
}

async fn patch_json<K>(
    api: &Api<K>,
    name: &str,
    patch: &json_patch::Patch,
) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Json::<()>(patch.clone()),
    )
    .await
}

/// Attach: records `target` → disk `name` on the disk (intent annotation) and on the app
/// (`spec.volumes`), after [`check_attach`]; retries when a resourceVersion guard fails.
async fn attach_disk(
    state: &State,
    ns: &str,
    name: &str,
    target: &VolumeTarget,
) -> Result<KompoxApp, ApiError> {
    let disks: Api<KompoxDisk> = Api::namespaced(state.client.clone(), ns);
    let apps: Api<KompoxApp> = Api::namespaced(state.client.clone(), ns);
    let key = target.key();
    let mut last: Option<kube::Error> = None;
    // Whether this request set the intent: if the app cannot be updated after all, it is
    // released again so a failed attach does not hold the disk.
    let mut claimed = false;
    let mut result = None;
    for _ in 0..MAX_ATTEMPTS {
        match attach_once(state, ns, name, target, &disks, &apps, &key, &mut claimed).await {
            Ok(Ok(app)) => result = Some(Ok(app)),
            Ok(Err(guard)) => last = Some(guard),
            Err(e) => result = Some(Err(e)),
        }
        if result.is_some() {
            break;
        }
    }
    let result = result.unwrap_or_else(|| {
        Err(ApiError::conflict(format!(
            "kompoxdisk {name:?}: the disk or the app kept changing; try again ({})",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    });
    if result.is_err() && claimed {
        release_intent(&disks, name, &key).await;
    }
    result
}

/// One attempt of [`attach_disk`]: `Ok(Err(_))` when a resourceVersion guard failed and the
/// attempt should be repeated.
#[allow(clippy::too_many_arguments)]
async fn attach_once(
    state: &State,
    ns: &str,
    name: &str,
    target: &VolumeTarget,
    disks: &Api<KompoxDisk>,
    apps: &Api<KompoxApp>,
    key: &str,
    claimed: &mut bool,
) -> Result<Result<KompoxApp, kube::Error>, ApiError> {
    let disk = get_disk(state, ns, name).await?;
    let app = get_app(state, ns, &target.app).await?;
    let cluster = state.cluster_info(app.spec.provider.type_).await?;
    let mut app_disks = BTreeMap::new();
    for v in &app.spec.volumes {
        if v.disk_ref.name != name
            && !app_disks.contains_key(&v.disk_ref.name)
            && let Some(d) = disks
                .get_opt(&v.disk_ref.name)
                .await
                .map_err(|e| ApiError::from_kube("getting the app's kompoxdisks", &e))?
        {
            app_disks.insert(v.disk_ref.name.clone(), d);
        }
    }
    check_attach(name, &disk, &app, &app_disks, target, &cluster)?;
    let previous = app
        .spec
        .volumes
        .iter()
        .find(|v| v.name == target.volume && v.disk_ref.name != name)
        .map(|v| v.disk_ref.name.clone());

    if let Some(p) = service::intent_patch(&disk, Some(key))? {
        match patch_json(disks, name, &p).await {
            Ok(_) => *claimed = true,
            Err(e) if is_guard_failure(&e) => return Ok(Err(e)),
            Err(e) => {
                return Err(ApiError::from_kube(
                    &format!("annotating kompoxdisk {name}"),
                    &e,
                ));
            }
        }
    }
    let updated = match service::attach_app_patch(&app, &target.volume, name)? {
        None => app,
        Some(p) => match patch_json(apps, &target.app, &p).await {
            Ok(a) => a,
            Err(e) if is_guard_failure(&e) => return Ok(Err(e)),
            Err(e) => {
                return Err(ApiError::from_kube(
                    &format!("updating kompoxapp {}", target.app),
                    &e,
                ));
            }
        },
    };
    if let Some(prev) = previous {
        release_intent(disks, &prev, key).await;
    }
    tracing::info!(namespace = ns, disk = name, app = %target.app, volume = %target.volume, "attach recorded");
    Ok(Ok(updated))
}

/// Clears the attach intent on disk `name` if it still says `key` (best effort: a failure is
/// logged, the controller reconciles from the app's spec anyway).
async fn release_intent(disks: &Api<KompoxDisk>, name: &str, key: &str) {
    for _ in 0..MAX_ATTEMPTS {
        let Ok(Some(d)) = disks.get_opt(name).await else {
            return;
        };
        if d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(service::ATTACH_INTENT_ANNOTATION))
            .map(String::as_str)
            != Some(key)
        {
            return;
        }
        let Ok(Some(p)) = service::intent_patch(&d, None) else {
            return;
        };
        match patch_json(disks, name, &p).await {
            Ok(_) => return,
            Err(e) if is_guard_failure(&e) => continue,
            Err(e) => {
                tracing::warn!(disk = name, error = %e, "clearing the attach intent failed");
                return;
            }
        }
    }
}

/// Detach: removes the app's binding of `target.volume` to disk `name` and clears the intent.
/// Answers the updated app (or, when the app is gone, a Success Status).
async fn detach_disk(
    state: &State,
    ns: &str,
    name: &str,
    target: &VolumeTarget,
) -> Result<Value, ApiError> {
    let disks: Api<KompoxDisk> = Api::namespaced(state.client.clone(), ns);
    let apps: Api<KompoxApp> = Api::namespaced(state.client.clone(), ns);
    let key = target.key();
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        let disk = get_disk(state, ns, name).await?;
        check_detach(name, &disk, target)?;
        let app = match get_app(state, ns, &target.app).await {
            Ok(a) => Some(a),
            Err(e) if e.code == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e),
        };
        let updated = match &app {
            None => None,
            Some(app) => match service::detach_app_patch(app, &target.volume, name)? {
                None => Some(app.clone()),
                Some(p) => match patch_json(&apps, &target.app, &p).await {
                    Ok(a) => Some(a),
                    Err(e) if is_guard_failure(&e) => {
                        last = Some(e);
                        continue;
                    }
                    Err(e) => {
                        return Err(ApiError::from_kube(
                            &format!("updating kompoxapp {}", target.app),
                            &e,
                        ));
                    }
                },
            },
        };
        release_intent(&disks, name, &key).await;
        tracing::info!(namespace = ns, disk = name, app = %target.app, volume = %target.volume, "detach recorded");
        return Ok(match updated {
            Some(a) => serde_json::to_value(a)
                .map_err(|e| ApiError::internal(format!("serializing kompoxapp: {e}")))?,
            None => serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "message": format!("kompoxdisk {name:?} released; kompoxapp {:?} does not exist", target.app),
                "code": 200,
            }),
        });
    }
    Err(ApiError::conflict(format!(
        "kompoxdisk {name:?}: the disk or the app kept changing; try again ({})",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::auth::{Authorizer, Decision, RequestHeaderConfig};
    use futures::future::BoxFuture;
    use http_body_util::BodyExt as _;
    use kompox_serve::{Health, Metrics, generate_ca, issue_client_cert};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    use std::sync::RwLock;
    use std::time::Duration;

    /// Allows what `allow` says; counts calls.
    struct Fake {
        allow: bool,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Authorizer for Fake {
        fn authorize<'a>(
            &'a self,
            _user: &'a UserInfo,
            _attrs: &'a Attributes,
        ) -> BoxFuture<'a, Result<Decision, ApiError>> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let allowed = self.allow;
            Box::pin(async move {
                Ok(Decision {
                    allowed,
                    reason: "fake says so".into(),
                })
            })
        }
    }

    fn state(allow: bool) -> Arc<State> {
        // Nothing listens on port 9: any Kubernetes call fails fast, and the tests below
        // must be answered before one is made.
        let cfg = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(cfg).unwrap();
        let rh: BTreeMap<String, String> = [
            ("requestheader-client-ca-file", "PEM"),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Arc::new(State::new(
            client,
            Arc::new(Fake {
                allow,
                calls: 0.into(),
            }),
            Arc::new(RwLock::new(Some(
                RequestHeaderConfig::from_data(&rh).unwrap(),
            ))),
            Health::new(),
            Metrics::new("kompox_apiserver"),
            Duration::from_secs(5),
            crate::state::RenderLimits {
                key: kompox_core::hash::HashKey::new(&[5; 32]).unwrap(),
                timeout: Duration::from_secs(5),
                concurrency: 2,
            },
        ))
    }

    fn proxy_conn() -> Arc<ConnInfo> {
        let ca = generate_ca("ca").unwrap();
        let leaf = issue_client_cert(&ca, "front-proxy-client", &[] as &[&str], 1).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
            .unwrap()
            .into_owned();
        Arc::new(ConnInfo::new(([127, 0, 0, 1], 1).into(), Some(vec![der])))
    }

    fn anon_conn() -> Arc<ConnInfo> {
        Arc::new(ConnInfo::new(([127, 0, 0, 1], 1).into(), None))
    }

    async fn call(
        state: Arc<State>,
        conn: Arc<ConnInfo>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from_static(body))).unwrap();
        let resp = handle(state, req, conn).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    const NS: &str = "/apis/subresources.k8s.kompox.dev/v1alpha1/namespaces/ns";

    #[tokio::test]
    async fn discovery_is_open_and_lists_the_subresources() {
        let (code, v) = call(
            state(false),
            anon_conn(),
            "GET",
            &format!("/apis/{GROUP_VERSION}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let names: Vec<&str> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "kompoxapps/rendered",
                "kompoxdisks/attach",
                "kompoxdisks/detach"
            ]
        );
        assert!(
            v["resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["namespaced"] == true
                    && !r["kind"].as_str().unwrap_or("").is_empty()
                    && !r["verbs"].as_array().unwrap().is_empty())
        );
        let (code, v) = call(
            state(false),
            anon_conn(),
            "GET",
            &format!("/apis/{GROUP}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(
            (code, v["kind"].as_str()),
            (StatusCode::OK, Some("APIGroup"))
        );
        let (code, v) = call(state(false), anon_conn(), "GET", "/apis", &[], b"").await;
        assert_eq!(
            (code, v["groups"][0]["name"].as_str()),
            (StatusCode::OK, Some(GROUP))
        );
    }

    #[tokio::test]
    async fn statuses_for_bad_requests() {
        let user = [("X-Remote-User", "admin")];
        let json = [
            ("X-Remote-User", "admin"),
            ("Content-Type", "application/json"),
        ];
        let yaml = [
            ("X-Remote-User", "admin"),
            ("Content-Type", "application/yaml"),
        ];
        let cases: Vec<(
            &str,
            Arc<State>,
            Arc<ConnInfo>,
            &str,
            String,
            &[(&str, &str)],
            &'static [u8],
            u16,
            &str,
        )> = vec![
            (
                "unknown path",
                state(true),
                proxy_conn(),
                "GET",
                "/nope".into(),
                &user,
                b"",
                404,
                "NotFound",
            ),
            (
                "unknown subresource",
                state(true),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxapps/a/logs"),
                &user,
                b"",
                404,
                "NotFound",
            ),
            (
                "bad name",
                state(true),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxapps/A..b/rendered"),
                &user,
                b"",
                404,
                "NotFound",
            ),
            (
                "openapi v2",
                state(true),
                anon_conn(),
                "GET",
                "/openapi/v2".into(),
                &[],
                b"",
                404,
                "NotFound",
            ),
            (
                "openapi v3",
                state(true),
                anon_conn(),
                "GET",
                "/openapi/v3".into(),
                &[],
                b"",
                404,
                "NotFound",
            ),
            (
                "POST rendered",
                state(true),
                proxy_conn(),
                "POST",
                format!("{NS}/kompoxapps/a/rendered"),
                &user,
                b"",
                405,
                "MethodNotAllowed",
            ),
            (
                "GET attach",
                state(true),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxdisks/d/attach"),
                &user,
                b"",
                405,
                "MethodNotAllowed",
            ),
            (
                "DELETE discovery",
                state(true),
                proxy_conn(),
                "DELETE",
                format!("/apis/{GROUP_VERSION}"),
                &user,
                b"",
                405,
                "MethodNotAllowed",
            ),
            (
                "no cert",
                state(true),
                anon_conn(),
                "GET",
                format!("{NS}/kompoxapps/a/rendered"),
                &user,
                b"",
                401,
                "Unauthorized",
            ),
            (
                "forged header without cert",
                state(true),
                anon_conn(),
                "POST",
                format!("{NS}/kompoxdisks/d/attach"),
                &json,
                b"{}",
                401,
                "Unauthorized",
            ),
            (
                "no user header",
                state(true),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxapps/a/rendered"),
                &[],
                b"",
                401,
                "Unauthorized",
            ),
            (
                "denied",
                state(false),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxapps/a/rendered"),
                &user,
                b"",
                403,
                "Forbidden",
            ),
            (
                "bad validate",
                state(true),
                proxy_conn(),
                "GET",
                format!("{NS}/kompoxapps/a/rendered?validate=maybe"),
                &user,
                b"",
                400,
                "BadRequest",
            ),
            (
                "yaml body",
                state(true),
                proxy_conn(),
                "POST",
                format!("{NS}/kompoxdisks/d/attach"),
                &yaml,
                b"app: a",
                415,
                "UnsupportedMediaType",
            ),
            (
                "malformed body",
                state(true),
                proxy_conn(),
                "POST",
                format!("{NS}/kompoxdisks/d/attach"),
                &json,
                b"{\"app\":",
                400,
                "BadRequest",
            ),
            (
                "missing field",
                state(true),
                proxy_conn(),
                "POST",
                format!("{NS}/kompoxdisks/d/detach"),
                &json,
                b"{\"app\":\"a\"}",
                400,
                "BadRequest",
            ),
            (
                "binary junk",
                state(true),
                proxy_conn(),
                "POST",
                format!("{NS}/kompoxdisks/d/attach"),
                &json,
                b"\xff\xfe\x00",
                400,
                "BadRequest",
            ),
        ];
        for (name, st, conn, method, path, headers, body, code, reason) in cases {
            let (got, v) = call(st, conn, method, &path, headers, body).await;
            assert_eq!(got.as_u16(), code, "{name}: {v}");
            assert_eq!(v["kind"], "Status", "{name}: {v}");
            assert_eq!(v["reason"], reason, "{name}: {v}");
            assert_eq!(v["code"], code, "{name}: {v}");
        }
    }

    #[tokio::test]
    async fn oversized_body_is_413_and_health_is_open() {
        let st = state(true);
        let big: &'static [u8] = Box::leak(vec![b' '; MAX_BODY_BYTES + 1].into_boxed_slice());
        let (code, v) = call(
            st.clone(),
            proxy_conn(),
            "POST",
            &format!("{NS}/kompoxdisks/d/attach"),
            &[("X-Remote-User", "a"), ("Content-Type", "application/json")],
            big,
        )
        .await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        let (code, _) = call(st.clone(), anon_conn(), "GET", "/healthz", &[], b"").await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = call(st.clone(), anon_conn(), "GET", "/readyz", &[], b"").await;
        assert_eq!(
            code,
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready before the CA is loaded"
        );
        let resp = handle(
            st,
            Request::get("/metrics")
                .body(Full::new(Bytes::new()))
                .unwrap(),
            anon_conn(),
        )
        .await;
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("route=\"kompoxdisks/attach\""), "{text}");
    }

    #[test]
    fn accept_and_query_parsing() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(wants_yaml(Some(&h("application/yaml"))));
        assert!(wants_yaml(Some(&h(
            "application/yaml;q=0.9, application/json"
        ))));
        assert!(!wants_yaml(Some(&h("application/json, */*"))));
        assert!(!wants_yaml(None));
        assert_eq!(validate_param(Some("validate=true")).ok(), Some(true));
        assert_eq!(validate_param(Some("x=1&validate")).ok(), Some(true));
        assert_eq!(validate_param(Some("validate=false")).ok(), Some(false));
        assert_eq!(validate_param(None).ok(), Some(false));
        assert!(validate_param(Some("validate=yes")).is_err());
    }
}
