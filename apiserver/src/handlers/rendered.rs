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
use crate::auth::{Attributes, UserInfo};
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

/// Server-side dry run (`dryRun=All`, apply as [`FIELD_MANAGER`], forced) of every object as
/// the caller (impersonated: [`impersonate`]), concurrently; one verdict per object in order.
/// The verdicts reflect the caller's own rights, and the requests count against the caller's
/// API priority and fairness. Messages are scrubbed of the Secret values the objects hold.
async fn dry_run_all(state: &State, ns: &str, out: &RenderOutput, user: &UserInfo) -> Vec<Verdict> {
    let secrets = service::secret_values(&out.objects);
    let runs = out
        .objects
        .iter()
        .map(|o| dry_run_one(state, ns, o, &secrets, user));
    futures::future::join_all(runs).await
}

/// Adds kube-apiserver's `Impersonate-*` headers for `user`: name, uid, every group and extra
/// (extra keys percent-encoded, as kube-apiserver decodes them).
///
/// # Errors
///
/// Naming the part of the identity that cannot be a header.
pub(crate) fn impersonate(headers: &mut http::HeaderMap, user: &UserInfo) -> Result<(), String> {
    let value = |what: &str, s: &str| {
        HeaderValue::from_bytes(s.as_bytes())
            .map_err(|_| format!("the caller's {what} cannot be sent as a header"))
    };
    headers.insert("impersonate-user", value("name", &user.name)?);
    if let Some(uid) = user.uid.as_deref().filter(|u| !u.is_empty()) {
        headers.insert("impersonate-uid", value("uid", uid)?);
    }
    for g in &user.groups {
        headers.append("impersonate-group", value("group", g)?);
    }
    for (key, values) in &user.extra {
        let mut name = String::from("impersonate-extra-");
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' {
                name.push(char::from(b.to_ascii_lowercase()));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "the caller's extra key cannot be sent as a header".to_owned())?;
        for v in values {
            headers.append(name.clone(), value("extra value", v)?);
        }
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
    if let Err(m) = impersonate(req.headers_mut(), user) {
        return reject(422, "Invalid", m);
    }
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
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod impersonation_tests {
    use super::*;

    #[test]
    fn headers_carry_the_whole_identity() {
        let user = UserInfo {
            name: "山田".into(),
            uid: Some("u-1".into()),
            groups: vec!["team".into(), "system:authenticated".into()],
            extra: [("scopes/a".to_owned(), vec!["x".to_owned(), "y".to_owned()])]
                .into_iter()
                .collect(),
        };
        let mut h = http::HeaderMap::new();
        impersonate(&mut h, &user).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h["impersonate-user"].as_bytes(), "山田".as_bytes());
        assert_eq!(h["impersonate-uid"], "u-1");
        let groups: Vec<&HeaderValue> = h.get_all("impersonate-group").iter().collect();
        assert_eq!(groups, ["team", "system:authenticated"]);
        let extra: Vec<&HeaderValue> = h.get_all("impersonate-extra-scopes%2Fa").iter().collect();
        assert_eq!(extra, ["x", "y"]);
        let bad = UserInfo {
            name: "a\nb".into(),
            ..UserInfo::default()
        };
        assert!(impersonate(&mut http::HeaderMap::new(), &bad).is_err());
    }
}
