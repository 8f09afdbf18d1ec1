//! `GET …/kompoxapps/NAME/rendered[?validate=true]`: the objects the controller would apply,
//! Secrets redacted, as JSON or YAML; with `validate`, each checked by a server-side dry run.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use super::{authorize, get_app};
use crate::api_error::{ApiError, Cause};
use crate::auth::{self, Action, Attributes, UserInfo};
use crate::discovery::GROUP;
use crate::service::{self, RenderOutput, Verdict};
use crate::state::State;

/// Field manager of the server-side dry runs.
pub const FIELD_MANAGER: &str = "kompox";

/// Serves the subresource for an authenticated `user`: authorization (`get
/// kompoxapps/rendered`), then the query (`query`) and the media type (`accept`).
pub(super) async fn serve(
    state: &State,
    user: &UserInfo,
    ns: &str,
    name: &str,
    query: Option<&str>,
    accept: Option<&HeaderValue>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    authorize(
        state,
        user,
        Attributes::new(ns, "get", GROUP, "kompoxapps", "rendered", name),
    )
    .await?;
    let validate = validate_param(query)?;
    let yaml = wants_yaml(accept);
    if validate
        && let Err(wait) = state
            .validate_limit
            .take(&user.name, std::time::Instant::now())
    {
        return Err(ApiError::too_many_requests(format!(
            "validate: at most {} dry-run validations at once and one every {:.0} s per user; retry in {:.1} s",
            crate::state::VALIDATE_BURST,
            1.0 / crate::state::VALIDATE_PER_SECOND,
            wait.as_secs_f64()
        )));
    }
    let list = rendered(state, ns, name, validate.then_some(user)).await?;
    Ok(respond_value(&list, yaml))
}

pub(super) fn validate_param(query: Option<&str>) -> Result<bool, ApiError> {
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

pub(super) fn wants_yaml(accept: Option<&HeaderValue>) -> bool {
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

/// What `GET …/kompoxapps/NAME/rendered` answers (see [`service::rendered_list`]).
/// With `validate_as`, each object is dry-run as that user.
async fn rendered(
    state: &State,
    ns: &str,
    name: &str,
    validate_as: Option<&UserInfo>,
) -> Result<Value, ApiError> {
    let app = get_app(state, ns, name).await?;
    let inputs = kompox_cluster::gather_inputs(&state.client, &app)
        .await
        .map_err(|e| inputs_error(name, e))?;
    let cluster = state.cluster_info(app.spec.provider.type_).await?;
    let out = crate::render::render_bounded(state, inputs, cluster, name).await?;
    let verdicts = match validate_as {
        Some(user) => Some(dry_run_all(state, ns, &out, user).await),
        None => None,
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

/// Server-side dry run (`dryRun=All`, apply as [`FIELD_MANAGER`], forced) of every object,
/// concurrently; one verdict per object in order. Each object is first authorized for the
/// caller (a SubjectAccessReview each for `patch` and `create`, as an apply may create): an
/// object the caller could not apply gets their 403 and no request is sent. The dry run itself
/// is sent as [`VALIDATOR`] ([`as_validator`]), which may only dry-run (the install's
/// ValidatingAdmissionPolicy `kompox-validator-dry-run-only`), so the server impersonates no
/// caller and holds no create rights itself. Messages are scrubbed of the Secret values the
/// objects hold.
async fn dry_run_all(state: &State, ns: &str, out: &RenderOutput, user: &UserInfo) -> Vec<Verdict> {
    let secrets = service::secret_values(&out.objects);
    let runs = out
        .objects
        .iter()
        .map(|o| dry_run_one(state, ns, o, &secrets, user));
    futures::future::join_all(runs).await
}

/// The identity of the dry runs: ServiceAccount `k4x-system/kompox-validator` of the install
/// (`manifests/apiserver/rbac.yaml`), the only one the server may impersonate.
pub const VALIDATOR: &str = "system:serviceaccount:k4x-system:kompox-validator";

/// Sends a request as [`VALIDATOR`]: `Impersonate-User` only (kube-apiserver adds the
/// ServiceAccount's groups itself), replacing any impersonation already set.
pub(crate) fn as_validator(headers: &mut http::HeaderMap) {
    headers.insert("impersonate-user", HeaderValue::from_static(VALIDATOR));
    headers.remove("impersonate-group");
    headers.remove("impersonate-uid");
}

/// Whether `user` may apply object `name` of `resource` (in `ns` when namespaced): `patch`,
/// and `create` as an apply creates a missing object. The 403 names the user and the verb.
async fn caller_may_apply(
    state: &State,
    user: &UserInfo,
    ns: &str,
    group: &str,
    resource: &str,
    name: &str,
) -> Result<(), ApiError> {
    for verb in ["patch", "create"] {
        let attrs = Attributes::new(ns, verb, group, resource, "", name);
        let decision = state
            .authorizer
            .authorize(user, &Action::Resource(attrs.clone()))
            .await?;
        auth::require(&decision, user, &attrs)?;
    }
    Ok(())
}

async fn dry_run_one(
    state: &State,
    ns: &str,
    obj: &Value,
    secrets: &[String],
    user: &UserInfo,
) -> Verdict {
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
    let scope = if namespaced { ns } else { "" };
    if let Err(e) = caller_may_apply(state, user, scope, &group, &ar.plural, &name).await {
        return reject(e.code.as_u16(), e.reason, e.message);
    }
    let url = <DynamicObject as kube::Resource>::url_path(&ar, namespaced.then_some(ns));
    let mut body = obj.clone();
    if namespaced && let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.to_owned()));
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let mut req = match kube::core::Request::new(url).patch(&name, &pp, &Patch::Apply(&body)) {
        Ok(r) => r,
        Err(e) => return reject(422, "Invalid", e.to_string()),
    };
    req.extensions_mut().insert("patch");
    as_validator(req.headers_mut());
    match state.client.request::<DynamicObject>(req).await {
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

#[cfg(test)]
mod impersonation_tests {
    use super::*;

    #[test]
    fn dry_runs_impersonate_the_validator_alone() {
        let mut h = http::HeaderMap::new();
        h.append(
            "impersonate-group",
            HeaderValue::from_static("system:masters"),
        );
        h.insert("impersonate-uid", HeaderValue::from_static("u"));
        as_validator(&mut h);
        assert_eq!(h["impersonate-user"], VALIDATOR);
        assert!(h.get("impersonate-group").is_none() && h.get("impersonate-uid").is_none());
        assert!(
            !h.keys()
                .any(|k| k.as_str().starts_with("impersonate-extra-"))
        );
    }
}
