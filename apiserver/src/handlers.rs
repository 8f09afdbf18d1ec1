//! HTTP routing: the path to a [`Route`], the method check, authentication, then one module
//! per subresource family — [`rendered`] (`kompoxapps/NAME/rendered`) and [`volumes`]
//! (`kompoxdisks/NAME/attach`, `…/detach`); discovery, health and metrics are answered here.
//! Every error becomes a `metav1.Status`.

mod rendered;
mod volumes;

pub use rendered::FIELD_MANAGER;

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_serve::{BoxError, ConnInfo};
use kube::api::Api;

use crate::api_error::ApiError;
use crate::auth::{self, Action, Attributes, UserInfo};
use crate::discovery::{self, GROUP, GROUP_VERSION};
use crate::state::State;
use kompox_cluster::access::{Refusal, bearer_token};

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
            metrics_access(state, &req).await?;
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
            rendered::serve(
                state,
                &user,
                &ns,
                &name,
                req.uri().query(),
                req.headers().get(ACCEPT),
            )
            .await
        }
        Route::Disk { ns, name, attach } => {
            let sub = if attach { "attach" } else { "detach" };
            only(&method, &Method::POST, &format!("kompoxdisks/{sub}"))?;
            let user = authenticate(state, conn, &req)?;
            volumes::serve(state, &user, &ns, &name, attach, req).await
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
    let decision = state
        .authorizer
        .authorize(user, &Action::Resource(attrs.clone()))
        .await?;
    auth::require(&decision, user, &attrs)
}

/// `/metrics` answers a bearer token kube-apiserver authenticates (TokenReview) whose user may
/// `get /metrics` (SubjectAccessReview; the install's ClusterRole `kompox-metrics-reader`).
async fn metrics_access<B>(state: &State, req: &Request<B>) -> Result<(), ApiError> {
    let token = bearer_token(req.headers()).ok_or_else(|| {
        ApiError::unauthorized("/metrics needs a bearer token kube-apiserver authenticates")
    })?;
    let user = state
        .authorizer
        .authenticate_token(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not authenticated"))?;
    let action = Action::metrics();
    let decision = state.authorizer.authorize(&user, &action).await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            Refusal::forbidden(&user, &action, &decision).to_string(),
        ))
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

#[cfg(test)]
mod tests;
