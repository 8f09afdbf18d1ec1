//! Errors as `metav1.Status`: the JSON kube-apiserver's own errors have, which kubectl prints
//! as `Error from server (Reason): message`.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde_json::{Value, json};

/// A field named by an error, as `details.causes[]` of a Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The field path, e.g. `services.web.ports[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error answered as a `metav1.Status`. Messages never hold Secret data: they name
/// objects and fields only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({}): {message}", .code.as_u16())]
pub struct ApiError {
    /// HTTP status.
    pub code: StatusCode,
    /// `reason` of the Status (`NotFound`, `Forbidden`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details.kind` and `details.name`, when the error is about one object.
    pub object: Option<(String, String)>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            object: None,
            causes: Vec::new(),
        }
    }

    /// Sets `details.kind`/`details.name`.
    #[must_use]
    pub fn about(mut self, kind: &str, name: &str) -> Self {
        self.object = Some((kind.to_owned(), name.to_owned()));
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404 NotFound for an object: `<resource> "<name>" not found`, as kube-apiserver says it.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} {name:?} not found"),
        )
    }

    /// 404 NotFound for a path nothing is served at.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource {path:?}"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &http::Method, path_kind: &str, allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {path_kind}; use {allowed}"),
        )
    }

    /// 409 Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// 422 Invalid, one cause per field; the message lists them.
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} {name:?} is invalid: {list}"),
        )
        .about(kind, name);
        e.causes = causes;
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 429 TooManyRequests.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
    }

    /// 408 Timeout: the client did not send its request in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "Timeout", message)
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// The Status object.
    #[must_use]
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if self.object.is_some() || !self.causes.is_empty() {
            let mut details = serde_json::Map::new();
            if let Some((kind, name)) = &self.object {
                details.insert("group".into(), json!(crate::discovery::GROUP));
                details.insert("kind".into(), json!(kind));
                details.insert("name".into(), json!(name));
            }
            if !self.causes.is_empty() {
                details.insert(
                    "causes".into(),
                    Value::Array(
                        self.causes
                            .iter()
                            .map(|c| {
                                json!({"reason": "FieldValueInvalid", "field": c.field, "message": c.message})
                            })
                            .collect(),
                    ),
                );
            }
            status["details"] = Value::Object(details);
        }
        status
    }

    /// The HTTP response carrying [`ApiError::to_status`].
    #[must_use]
    pub fn to_response(&self) -> http::Response<Full<Bytes>> {
        kompox_serve::json(self.code, &self.to_status())
    }

    /// Maps a Kubernetes API error met while serving a request: the API's own Status
    /// reason/code when it answered, 503 when it could not be reached. `what` names the
    /// read (`getting KompoxApp ns/a`).
    pub fn from_kube(what: &str, e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let code = StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY);
                let reason = match code.as_u16() {
                    403 => "Forbidden",
                    404 => "NotFound",
                    409 => "Conflict",
                    422 => "Invalid",
                    429 => "TooManyRequests",
                    400 => "BadRequest",
                    _ => "InternalError",
                };
                Self::new(code, reason, format!("{what}: {}", s.message))
            }
            other => Self::unavailable(format!("{what}: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shape() {
        let e = ApiError::invalid(
            "kompoxapps",
            "a",
            vec![Cause {
                field: "services.web.ports[0]".into(),
                message: "invalid port \"x\"".into(),
            }],
        );
        let s = e.to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["apiVersion"], "v1");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["details"]["causes"][0]["field"], "services.web.ports[0]");
        assert!(
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("services.web.ports[0]: invalid port")),
            "{s}"
        );
        let nf = ApiError::not_found("kompoxapps", "x").to_status();
        assert_eq!(nf["code"], 404);
        assert_eq!(nf["message"], "kompoxapps \"x\" not found");
        assert!(nf.get("details").is_none());
    }
}
