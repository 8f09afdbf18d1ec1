//! Routing, authentication and the errors every request can meet, through [`handle`] with no
//! cluster behind it.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use super::rendered::{validate_param, wants_yaml};
use super::*;
use crate::auth::{Authorizer, Decision, RequestHeaderConfig};
use crate::service::MAX_BODY_BYTES;
use futures::future::BoxFuture;
use http::HeaderValue;
use http_body_util::BodyExt as _;
use kompox_serve::{Health, Metrics, generate_ca, issue_client_cert};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use std::collections::BTreeMap;
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
        _action: &'a Action,
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

    /// `reader` is the user `reader`; every other token is not authenticated.
    fn authenticate_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ApiError>> {
        let user = (token == "reader").then(|| UserInfo {
            name: "reader".into(),
            ..UserInfo::default()
        });
        Box::pin(async move { Ok(user) })
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
            .header("Authorization", "Bearer reader")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        anon_conn(),
    )
    .await;
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("route=\"kompoxdisks/attach\""), "{text}");
}

/// `/metrics` needs a token kube-apiserver authenticates whose user may `get /metrics`.
#[rstest::rstest]
#[case::anonymous(true, &[], StatusCode::UNAUTHORIZED)]
#[case::not_a_bearer_token(true, &[("Authorization", "Basic eDp5")], StatusCode::UNAUTHORIZED)]
#[case::unknown_token(true, &[("Authorization", "Bearer nobody")], StatusCode::UNAUTHORIZED)]
#[case::front_proxy_headers_are_no_token(true, &[("X-Remote-User", "reader")], StatusCode::UNAUTHORIZED)]
#[case::without_the_right(false, &[("Authorization", "Bearer reader")], StatusCode::FORBIDDEN)]
#[case::with_the_right(true, &[("Authorization", "Bearer reader")], StatusCode::OK)]
#[tokio::test]
async fn metrics_need_an_authorized_token(
    #[case] allow: bool,
    #[case] headers: &[(&str, &str)],
    #[case] want: StatusCode,
) {
    let mut b = Request::get("/metrics");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = handle(
        state(allow),
        b.body(Full::new(Bytes::new())).unwrap(),
        proxy_conn(),
    )
    .await;
    assert_eq!(resp.status(), want);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(body.ends_with("# EOF\n"), want == StatusCode::OK, "{body}");
    if want == StatusCode::FORBIDDEN {
        assert!(
            body.contains(r#"User \"reader\" cannot get path \"/metrics\""#),
            "{body}"
        );
    }
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
