//! AdmissionReview v1 on the wire.
//!
//! **Requests** are decoded in one pass into [`Request`]: the envelope fields the webhook
//! uses, and the object through a slim [`view`] chosen by `request.kind` (kube-apiserver
//! writes `kind` before `object`; another order falls back to buffering the object). kube's
//! `AdmissionRequest<K>` would also decode `userInfo`, `options` (into a
//! `serde_json::Value`), the GVRs and a full typed object the webhook never reads, which
//! made decoding most of a review's cost.
//!
//! **Responses** use the serde types below rather than kube-core's `AdmissionResponse`,
//! whose `patch: Option<Vec<u8>>` serializes as a JSON array of numbers (kube-rs #1781); the
//! admission API defines `patch` as `[]byte`, i.e. a base64 string in JSON. The e2e tests
//! check this format against a real kube-apiserver.

pub mod view;

#[cfg(test)]
mod fuzz_tests;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::core::GroupVersionKind;
use kube::core::admission::Operation;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use view::{DeploymentView, PodView, StatefulSetView};

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

/// The admitted object, as far as the webhook reads it.
#[derive(Debug, Clone)]
pub enum Object {
    /// A Pod.
    Pod(Box<PodView>),
    /// A Deployment.
    Deployment(Box<DeploymentView>),
    /// A StatefulSet.
    StatefulSet(Box<StatefulSetView>),
    /// Any other kind (not decoded).
    Other,
}

/// `request` of an AdmissionReview: what the webhook uses of it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Round-trip id, copied into the response.
    pub uid: String,
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Namespace of the request (a Pod created with `generateName` may lack its own).
    pub namespace: Option<String>,
    /// Name of the object, when known.
    pub name: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Whether the request is a dry run (the webhook has no side effects either way).
    pub dry_run: bool,
    /// The object (`None` for DELETE).
    pub object: Option<Object>,
    /// The object before an UPDATE.
    pub old_object: Option<Object>,
}

/// Decodes an `admission.k8s.io/v1` AdmissionReview request in one pass.
///
/// # Errors
///
/// [`DecodeError`] when the body is not such a review or its object does not decode.
pub fn decode(body: &[u8]) -> Result<Request, DecodeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Review {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
        request: Option<Request>,
    }
    let review: Review =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(describe(&e)))?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(DecodeError::Unsupported {
            api_version: truncated(&review.api_version),
            kind: truncated(&review.kind),
        });
    }
    review.request.ok_or(DecodeError::NoRequest)
}

/// Decodes an object (or `null`) as the view for `kind`.
struct ObjectSeed<'a>(&'a GroupVersionKind);

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Option<Object>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(match (self.0.group.as_str(), self.0.kind.as_str()) {
            ("", "Pod") => Option::<PodView>::deserialize(d)?.map(|v| Object::Pod(Box::new(v))),
            ("apps", "Deployment") => {
                Option::<DeploymentView>::deserialize(d)?.map(|v| Object::Deployment(Box::new(v)))
            }
            ("apps", "StatefulSet") => {
                Option::<StatefulSetView>::deserialize(d)?.map(|v| Object::StatefulSet(Box::new(v)))
            }
            _ => Option::<IgnoredAny>::deserialize(d)?.map(|_| Object::Other),
        })
    }
}

/// An object seen before `kind`: decoded once `kind` is known.
enum Pending {
    Known(Option<Object>),
    Buffered(serde_json::Value),
}

impl Pending {
    fn resolve<E: de::Error>(self, kind: &GroupVersionKind) -> Result<Option<Object>, E> {
        match self {
            Pending::Known(o) => Ok(o),
            // The error may quote the value; it is replaced, not wrapped.
            Pending::Buffered(v) => ObjectSeed(kind)
                .deserialize(v)
                .map_err(|_| E::custom("object: a field has the wrong type or value")),
        }
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    Uid,
    Kind,
    Namespace,
    Name,
    Operation,
    DryRun,
    Object,
    OldObject,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut uid: Option<String> = None;
        let mut kind: Option<GroupVersionKind> = None;
        let mut namespace: Option<String> = None;
        let mut name: Option<String> = None;
        let mut operation: Option<Operation> = None;
        let mut dry_run: Option<bool> = None;
        let mut object: Option<Pending> = None;
        let mut old_object: Option<Pending> = None;
        let take = |map: &mut A, kind: &Option<GroupVersionKind>| -> Result<Pending, A::Error> {
            Ok(match kind {
                Some(k) => Pending::Known(map.next_value_seed(ObjectSeed(k))?),
                None => Pending::Buffered(map.next_value()?),
            })
        };
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => uid = Some(map.next_value()?),
                Field::Kind => kind = Some(map.next_value()?),
                Field::Namespace => namespace = map.next_value()?,
                Field::Name => name = map.next_value()?,
                Field::Operation => operation = Some(map.next_value()?),
                Field::DryRun => dry_run = map.next_value()?,
                Field::Object => object = Some(take(&mut map, &kind)?),
                Field::OldObject => old_object = Some(take(&mut map, &kind)?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let uid = uid.ok_or_else(|| de::Error::missing_field("uid"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let operation = operation.ok_or_else(|| de::Error::missing_field("operation"))?;
        Ok(Request {
            object: object.map(|p| p.resolve(&kind)).transpose()?.flatten(),
            old_object: old_object.map(|p| p.resolve(&kind)).transpose()?.flatten(),
            uid,
            kind,
            namespace,
            name,
            operation,
            dry_run: dry_run.unwrap_or(false),
        })
    }
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
    use rstest::rstest;
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

    fn kind_of(r: &Request) -> &'static str {
        match &r.object {
            Some(Object::Pod(_)) => "Pod",
            Some(Object::Deployment(_)) => "Deployment",
            Some(Object::StatefulSet(_)) => "StatefulSet",
            Some(Object::Other) => "Other",
            None => "none",
        }
    }

    #[test]
    fn decodes_the_object_by_kind_in_any_field_order() {
        let pod = json!({"metadata": {"name": "p", "annotations": {"a": "b"}}, "spec": {"containers": []}});
        let body = |request: serde_json::Value| {
            json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}).to_string()
        };
        let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
        // kube-apiserver's order: kind before object.
        let r = decode(
            body(
                json!({"uid": "u", "kind": gvk, "namespace": "ns", "operation": "CREATE",
            "userInfo": {"username": "x", "extra": {"k": ["v"]}}, "object": pod, "oldObject": null,
            "dryRun": true, "options": {"kind": "CreateOptions"}}),
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (r.uid.as_str(), r.namespace.as_deref(), r.dry_run),
            ("u", Some("ns"), true)
        );
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(kind_of(&r), "Pod");
        assert!(r.old_object.is_none());
        // Object first: buffered, then decoded as the same view.
        let late = decode(
            body(json!({"object": pod, "uid": "u", "operation": "CREATE", "kind": gvk})).as_bytes(),
        )
        .unwrap();
        let (Some(Object::Pod(a)), Some(Object::Pod(b))) = (&r.object, &late.object) else {
            panic!("not Pods")
        };
        assert_eq!(a.0, b.0);
        // Workloads and kinds the webhook does not read.
        let d = decode(
            body(json!({"uid": "u", "operation": "UPDATE",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "object": {"metadata": {}, "spec": {"template": {}}}, "oldObject": {"metadata": {}}}))
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(kind_of(&d), "Deployment");
        assert!(matches!(d.old_object, Some(Object::Deployment(_))));
        let other = decode(body(json!({"uid": "u", "operation": "DELETE",
            "kind": {"group": "batch", "version": "v1", "kind": "Job"}, "object": null, "oldObject": {"x": [1]}})).as_bytes()).unwrap();
        assert_eq!(kind_of(&other), "none");
        assert!(matches!(other.old_object, Some(Object::Other)));
    }

    #[test]
    fn decode_errors_name_the_problem_but_not_the_input() {
        let secretish = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","env":[{"name":"P","value":7}],"image":"hunter2-image"}]}}}}"#;
        let e = decode(secretish.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "malformed AdmissionReview: a field has the wrong type or value at line 1 column "
            ),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // The buffered path does not quote values either.
        let late = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"name":"hunter2"},"spec":{"containers":"hunter2"}},"uid":"u","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let e = decode(late.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("a field has the wrong type or value"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[rstest]
    #[case::empty(
        b"",
        "malformed AdmissionReview: unexpected end of input at line 1 column 0"
    )]
    #[case::not_json(
        b"{not json hunter2",
        "malformed AdmissionReview: invalid JSON at line 1 column 2"
    )]
    #[case::an_array(
        b"[1,2]",
        "malformed AdmissionReview: a field has the wrong type or value at line 1 column 2"
    )]
    #[case::v1beta1(
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
        r#"unsupported review: want apiVersion admission.k8s.io/v1 kind AdmissionReview, got apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview""#
    )]
    #[case::no_request(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        "malformed AdmissionReview: no request"
    )]
    #[case::no_uid(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
        "malformed AdmissionReview: missing field `uid`"
    )]
    #[case::no_kind(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}"#,
        "malformed AdmissionReview: missing field `kind`"
    )]
    #[case::unknown_operation(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"hunter2","kind":{"group":"","version":"v1","kind":"Pod"}}}"#,
        "malformed AdmissionReview: a field has the wrong type or value"
    )]
    fn bad_reviews_are_named_never_quoted(#[case] body: &[u8], #[case] want: &str) {
        let got = decode(body).map(|r| r.uid).unwrap_err().to_string();
        assert!(got.starts_with(want), "{got}");
        assert!(!got.contains("hunter2"), "{got}");
    }
}
