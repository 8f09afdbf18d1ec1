//! `POST …/kompoxdisks/NAME/attach` and `…/detach` with body `{"app","volume"}`: bind a disk
//! to an app volume or release it, recorded on the disk (intent annotation) and the app
//! (`spec.volumes`); each write is guarded by a `test` of what was read, and retried on a
//! fresh read ([`retry_on_conflict`]) when it fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use kompox_cluster::{api_code, is_conflict, retry_on_conflict};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_serve::{BoxError, read_body_limited};
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use super::{authorize, get_app, get_disk};
use crate::api_error::ApiError;
use crate::auth::{Attributes, UserInfo};
use crate::discovery::GROUP;
use crate::service::{self, MAX_BODY_BYTES, VolumeTarget, check_attach, check_detach};
use crate::state::State;

/// Attempts of an attach/detach when a resourceVersion guard fails.
const MAX_ATTEMPTS: usize = 5;

/// Serves `attach` (or `detach`) of disk `name` for an authenticated `user`: authorization
/// (`create kompoxdisks/attach`), the body, then `patch` on the named app — attach and detach
/// change the app with the server's rights, so the user must be allowed to patch it too, or
/// this would be a way around RBAC.
pub(super) async fn serve<B>(
    state: &State,
    user: &UserInfo,
    ns: &str,
    name: &str,
    attach: bool,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let sub = if attach { "attach" } else { "detach" };
    authorize(
        state,
        user,
        Attributes::new(ns, "create", GROUP, "kompoxdisks", sub, name),
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
            StatusCode::REQUEST_TIMEOUT => ApiError::request_timeout(format!("body: {e}")),
            _ => ApiError::bad_request(format!("body: {e}")),
        })?;
    let target = service::parse_volume_target(content_type.as_deref(), &body)?;
    authorize(
        state,
        user,
        Attributes::new(
            ns,
            "patch",
            kompox_core::api::GROUP,
            "kompoxapps",
            "",
            &target.app,
        ),
    )
    .await?;
    let app = if attach {
        let app = attach_disk(state, ns, name, &target).await?;
        serde_json::to_value(app)
            .map_err(|e| ApiError::internal(format!("serializing kompoxapp: {e}")))?
    } else {
        detach_disk(state, ns, name, &target).await?
    };
    Ok(kompox_serve::json(StatusCode::OK, &app))
}

/// A failed guard: the object changed since it was read (409, or 422 from a failed `test`
/// operation of a JSON patch).
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

/// The answer when every attempt hit a changed object.
fn kept_changing(name: &str, last: &kube::Error) -> ApiError {
    ApiError::conflict(format!(
        "kompoxdisk {name:?}: the disk or the app kept changing; try again ({last})"
    ))
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
    // Whether this request set the intent: if the app cannot be updated after all, it is
    // released again so a failed attach does not hold the disk.
    let claimed = AtomicBool::new(false);
    let attempt = Attempt {
        state,
        ns,
        name,
        target,
        disks: &disks,
        apps: &apps,
        key: &key,
        claimed: &claimed,
    };
    let result = match retry_on_conflict(MAX_ATTEMPTS, || attempt.attach()).await {
        Ok(Ok(app)) => Ok(app),
        Ok(Err(last)) => Err(kept_changing(name, &last)),
        Err(e) => Err(e),
    };
    if result.is_err() && claimed.load(Ordering::Relaxed) {
        release_intent(&disks, name, &key).await;
    }
    result
}

/// What one attempt of [`attach_disk`] works with.
struct Attempt<'a> {
    state: &'a State,
    ns: &'a str,
    name: &'a str,
    target: &'a VolumeTarget,
    disks: &'a Api<KompoxDisk>,
    apps: &'a Api<KompoxApp>,
    key: &'a str,
    claimed: &'a AtomicBool,
}

impl Attempt<'_> {
    /// One attempt: `Ok(Err(_))` when a resourceVersion guard failed and the attempt should
    /// be repeated.
    async fn attach(&self) -> Result<Result<KompoxApp, kube::Error>, ApiError> {
        let (state, ns, name, target) = (self.state, self.ns, self.name, self.target);
        let disk = get_disk(state, ns, name).await?;
        let app = get_app(state, ns, &target.app).await?;
        let cluster = state.cluster_info(app.spec.provider.type_).await?;
        let mut app_disks = BTreeMap::new();
        for v in &app.spec.volumes {
            if v.disk_ref.name != name
                && !app_disks.contains_key(&v.disk_ref.name)
                && let Some(d) = self
                    .disks
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

        if let Some(p) = service::intent_patch(&disk, Some(self.key))? {
            match patch_json(self.disks, name, &p).await {
                Ok(_) => self.claimed.store(true, Ordering::Relaxed),
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
            Some(p) => match patch_json(self.apps, &target.app, &p).await {
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
            release_intent(self.disks, &prev, self.key).await;
        }
        tracing::info!(namespace = ns, disk = name, app = %target.app, volume = %target.volume, "attach recorded");
        Ok(Ok(updated))
    }
}

/// Clears the attach intent on disk `name` if it still says `key` (best effort: a failure is
/// logged, the controller reconciles from the app's spec anyway).
async fn release_intent(disks: &Api<KompoxDisk>, name: &str, key: &str) {
    let _: Result<Result<(), kube::Error>, std::convert::Infallible> =
        retry_on_conflict(MAX_ATTEMPTS, || async {
            let Ok(Some(d)) = disks.get_opt(name).await else {
                return Ok(Ok(()));
            };
            if d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(service::ATTACH_INTENT_ANNOTATION))
                .map(String::as_str)
                != Some(key)
            {
                return Ok(Ok(()));
            }
            let Ok(Some(p)) = service::intent_patch(&d, None) else {
                return Ok(Ok(()));
            };
            match patch_json(disks, name, &p).await {
                Ok(_) => Ok(Ok(())),
                Err(e) if is_guard_failure(&e) => Ok(Err(e)),
                Err(e) => {
                    tracing::warn!(disk = name, error = %e, "clearing the attach intent failed");
                    Ok(Ok(()))
                }
            }
        })
        .await;
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
    let updated = retry_on_conflict(MAX_ATTEMPTS, || async {
        let disk = get_disk(state, ns, name).await?;
        check_detach(name, &disk, target)?;
        let app = match get_app(state, ns, &target.app).await {
            Ok(a) => a,
            Err(e) if e.code == StatusCode::NOT_FOUND => return Ok(Ok(None)),
            Err(e) => return Err(e),
        };
        match service::detach_app_patch(&app, &target.volume, name)? {
            None => Ok(Ok(Some(app))),
            Some(p) => match patch_json(&apps, &target.app, &p).await {
                Ok(a) => Ok(Ok(Some(a))),
                Err(e) if is_guard_failure(&e) => Ok(Err(e)),
                Err(e) => Err(ApiError::from_kube(
                    &format!("updating kompoxapp {}", target.app),
                    &e,
                )),
            },
        }
    })
    .await?
    .map_err(|last| kept_changing(name, &last))?;
    release_intent(&disks, name, &key).await;
    tracing::info!(namespace = ns, disk = name, app = %target.app, volume = %target.volume, "detach recorded");
    Ok(match updated {
        Some(a) => serde_json::to_value(a)
            .map_err(|e| ApiError::internal(format!("serializing kompoxapp: {e}")))?,
        None => serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "message": format!("kompoxdisk {name:?} released; kompoxapp {:?} does not exist", target.app),
            "code": 200,
        }),
    })
}
