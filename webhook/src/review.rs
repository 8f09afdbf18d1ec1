//! AdmissionReview v1 on the wire.
//!
//! Requests are decoded with kube's [`AdmissionReview`] typed to the object's kind, after a
//! cheap peek at `request.kind` (no intermediate `serde_json::Value` of the whole object).
//! Responses use the serde types below rather than kube-core's `AdmissionResponse`, whose
//! `patch: Option<Vec<u8>>` serializes as a JSON array of numbers (kube-rs #1781); the
//! admission API defines `patch` as `[]byte`, i.e. a base64 string in JSON. The e2e tests
//! check this format against a real kube-apiserver.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::core::GroupVersionKind;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `apiVersion` of the reviews this webhook speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of a review.
pub const KIND: &str = "AdmissionReview";

/// Why a request body is not an AdmissionReview this webhook can answer (HTTP 400).
/// Messages never quote the input (it may hold Secret values, e.g. literal `env` values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    /// JSON but not `admission.k8s.io/v1` `AdmissionReview`.
    #[error(
        "unsupported review: want apiVersion {API_VERSION} kind {KIND}, got apiVersion {api_version:?} kind {kind:?}"
    )]
    Unsupported {
        /// The `apiVersion` sent (truncated).
        api_version: String,
        /// The `kind` sent (truncated).
        kind: String,
    },
    /// An AdmissionReview without `request`.
    #[error("malformed AdmissionReview: no request")]
    NoRequest,
}

/// A description of a serde_json error that does not quote the input: the position, and
/// the message only when it names schema fields rather than input values.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let what = if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        msg.split(" at line ").next().unwrap_or_default().to_owned()
    } else {
        match e.classify() {
            serde_json::error::Category::Syntax => "invalid JSON".to_owned(),
            serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
            serde_json::error::Category::Data => "a field has the wrong type or value".to_owned(),
            serde_json::error::Category::Io => "read error".to_owned(),
        }
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<PeekRequest>,
}

#[derive(Deserialize)]
struct PeekRequest {
    kind: GroupVersionKind,
}

/// Reads the review's envelope and the object's kind without decoding the object.
///
/// # Errors
///
/// [`DecodeError`] when the body is not an `admission.k8s.io/v1` review with a request.
pub fn peek_kind(body: &[u8]) -> Result<GroupVersionKind, DecodeError> {
    let peek: Peek =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(describe(&e)))?;
    if peek.api_version != API_VERSION || peek.kind != KIND {
        return Err(DecodeError::Unsupported {
            api_version: truncated(&peek.api_version),
            kind: truncated(&peek.kind),
        });
    }
    peek.request.map(|r| r.kind).ok_or(DecodeError::NoRequest)
}

/// Decodes the review with the object typed as `K`.
///
/// # Errors
///
/// [`DecodeError::Malformed`] when the body (or the object) does not decode as `K`.
pub fn decode<K>(body: &[u8]) -> Result<AdmissionRequest<K>, DecodeError>
where
    K: kube::Resource + DeserializeOwned,
{
    let review: AdmissionReview<K> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(describe(&e)))?;
    review.try_into().map_err(|_| DecodeError::NoRequest)
}

/// `status` of a response: why it was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `"Failure"` here.
    pub status: String,
    /// Shown to the client.
    pub message: String,
    /// Machine-readable reason (e.g. `ZoneConflict`).
    pub reason: String,
    /// HTTP-style code (403 denied, 400 bad object).
    pub code: u16,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's uid, copied.
    pub uid: String,
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why not, when `allowed` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// A JSON Patch (RFC 6902) as bytes; base64 in JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "b64_ser",
        deserialize_with = "b64_de"
    )]
    pub patch: Option<Vec<u8>>,
    /// `"JSONPatch"` when `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Warnings for the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Response {
    /// Allowed, unchanged.
    #[must_use]
    pub fn allow(uid: &str) -> Self {
        Response {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    /// Refused with `message`.
    #[must_use]
    pub fn deny(uid: &str, code: u16, reason: &str, message: String) -> Self {
        Response {
            allowed: false,
            status: Some(Status {
                status: "Failure".to_owned(),
                message,
                reason: reason.to_owned(),
                code,
            }),
            ..Response::allow(uid)
        }
    }

    /// Allowed with a JSON Patch (none when `ops` is empty).
    ///
    /// # Errors
    ///
    /// When the operations do not serialize (not expected: they are plain JSON).
    pub fn patched(
        uid: &str,
        ops: &[json_patch::PatchOperation],
        warnings: Vec<String>,
    ) -> Result<Self, serde_json::Error> {
        let mut r = Response::allow(uid);
        r.warnings = warnings;
        if !ops.is_empty() {
            r.patch = Some(serde_json::to_vec(ops)?);
            r.patch_type = Some("JSONPatch".to_owned());
        }
        Ok(r)
    }

    /// Wraps the response in an `admission.k8s.io/v1` AdmissionReview.
    #[must_use]
    pub fn into_review(self) -> Review {
        Review {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            response: Some(self),
        }
    }
}

/// An AdmissionReview as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// `admission.k8s.io/v1`.
    pub api_version: String,
    /// `AdmissionReview`.
    pub kind: String,
    /// The answer.
    pub response: Option<Response>,
}

#[allow(clippy::ref_option)] // serde's serialize_with passes `&Option<T>`
fn b64_ser<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
        None => s.serialize_none(),
    }
}

fn b64_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn patch_is_a_base64_string_of_a_json_patch_array() {
        let ops = [PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: json!({"a": "b"}),
        })];
        let review = Response::patched("u-1", &ops, vec!["w".into()])
            .unwrap()
            .into_review();
        let v = serde_json::to_value(&review).unwrap();
        let patch = v["response"]["patch"].as_str().unwrap();
        let decoded: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(patch).unwrap()).unwrap();
        assert_eq!(
            decoded,
            json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}])
        );
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        assert_eq!(v["response"]["uid"], "u-1");
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], KIND);
        assert!(v["response"].get("status").is_none());
        let back: Review = serde_json::from_value(v).unwrap();
        assert_eq!(back, review);
    }

    #[test]
    fn no_ops_no_patch_fields() {
        let v = serde_json::to_value(Response::patched("u", &[], vec![]).unwrap()).unwrap();
        assert_eq!(v, json!({"uid": "u", "allowed": true}));
        let d =
            serde_json::to_value(Response::deny("u", 403, "ZoneConflict", "no".into())).unwrap();
        assert_eq!(
            d,
            json!({"uid": "u", "allowed": false, "status": {"status": "Failure", "message": "no", "reason": "ZoneConflict", "code": 403}})
        );
    }

    #[test]
    fn decode_errors_name_the_problem_but_not_the_input() {
        let secretish = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{},"object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","env":[{"name":"P","value":7}],"image":"hunter2-image"}],"priority":"hunter2"}}}}"#;
        assert_eq!(
            peek_kind(secretish.as_bytes()).unwrap().kind,
            "Pod".to_string()
        );
        let e = decode::<Pod>(secretish.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "malformed AdmissionReview: a field has the wrong type or value at line 1 column "
            ),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        let cases: [(&[u8], &str); 6] = [
            (
                b"",
                "malformed AdmissionReview: unexpected end of input at line 1 column 0",
            ),
            (
                b"{not json hunter2",
                "malformed AdmissionReview: invalid JSON at line 1 column 2",
            ),
            (
                b"[1,2]",
                "malformed AdmissionReview: a field has the wrong type or value at line 1 column 2",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
                r#"unsupported review: want apiVersion admission.k8s.io/v1 kind AdmissionReview, got apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview""#,
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "malformed AdmissionReview: no request",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
                "malformed AdmissionReview: missing field `kind` at line 1 column 73",
            ),
        ];
        for (body, want) in cases {
            let got = peek_kind(body).map(|k| k.kind).unwrap_err().to_string();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
        }
    }
}
