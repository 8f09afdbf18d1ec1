//! Authentication of requests proxied by kube-apiserver (front-proxy client certificate +
//! `X-Remote-*` headers) and authorization by SubjectAccessReview.
//!
//! The front-proxy configuration is kube-apiserver's own: the ConfigMap
//! `kube-system/extension-apiserver-authentication` ([`RequestHeaderConfig`]), watched by
//! [`watch_request_header_config`], which also feeds the CA into the TLS layer so the
//! handshake verifies the proxy's client certificate.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use http::HeaderMap;
use k8s_openapi::api::core::v1::ConfigMap;
pub use kompox_cluster::access::{Action, Attributes, Decision, Reviewer, UserInfo};
use kompox_serve::{ConnInfo, Health, ReloadableTls, peer_common_name};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::api_error::ApiError;

/// Namespace of [`AUTH_CONFIG_MAP`].
pub const AUTH_NAMESPACE: &str = "kube-system";
/// The ConfigMap kube-apiserver publishes its authentication configuration in.
pub const AUTH_CONFIG_MAP: &str = "extension-apiserver-authentication";

/// How kube-apiserver, as a front proxy, passes the user on: the CA of its client certificate,
/// the common names allowed, and the header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// `requestheader-client-ca-file`: PEM bundle verifying the proxy's client certificate.
    pub client_ca_pem: String,
    /// `requestheader-allowed-names`; empty means any CN signed by the CA.
    pub allowed_names: Vec<String>,
    /// `requestheader-username-headers`, e.g. `X-Remote-User`.
    pub username_headers: Vec<String>,
    /// `requestheader-uid-headers`, e.g. `X-Remote-Uid` (may be empty).
    pub uid_headers: Vec<String>,
    /// `requestheader-group-headers`, e.g. `X-Remote-Group`.
    pub group_headers: Vec<String>,
    /// `requestheader-extra-headers-prefix`, e.g. `X-Remote-Extra-`.
    pub extra_prefixes: Vec<String>,
}

fn string_list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>, String> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("{key}: not a JSON list of strings: {e}")),
    }
}

impl RequestHeaderConfig {
    /// Reads the ConfigMap's `data`.
    ///
    /// # Errors
    ///
    /// A message naming the key when `requestheader-client-ca-file` is missing or a list is
    /// not a JSON array of strings.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let client_ca_pem = data
            .get("requestheader-client-ca-file")
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .ok_or_else(|| {
                "requestheader-client-ca-file: missing (kube-apiserver runs without \
                 --requestheader-client-ca-file, so it cannot proxy to aggregated APIs)"
                    .to_owned()
            })?;
        let cfg = Self {
            client_ca_pem,
            allowed_names: string_list(data, "requestheader-allowed-names")?,
            username_headers: string_list(data, "requestheader-username-headers")?,
            uid_headers: string_list(data, "requestheader-uid-headers")?,
            group_headers: string_list(data, "requestheader-group-headers")?,
            extra_prefixes: string_list(data, "requestheader-extra-headers-prefix")?,
        };
        if cfg.username_headers.is_empty() {
            return Err("requestheader-username-headers: missing or empty".to_owned());
        }
        Ok(cfg)
    }
}

/// The values of header `name` that are UTF-8: kube-apiserver sends user names, groups and
/// extras as they are, and they may be any UTF-8 (`HeaderValue::to_str` accepts ASCII only).
fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Percent-decodes an extra key (`X-Remote-Extra-Foo%2fbar`), as Kubernetes' request header
/// authenticator does; invalid escapes are kept as written.
fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// Authenticates a proxied request: the connection must carry a client certificate verified
/// against the request-header CA (done in the TLS handshake) whose CN is allowed, and the
/// user comes from the configured headers. Headers on a connection without such a
/// certificate are ignored.
///
/// # Errors
///
/// 401 Unauthorized naming what is missing; never echoes header values.
pub fn authenticate(
    cfg: Option<&RequestHeaderConfig>,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let Some(cfg) = cfg else {
        return Err(ApiError::unauthorized(
            "the front-proxy configuration (kube-system/extension-apiserver-authentication) is not loaded yet",
        ));
    };
    if conn.peer_certificates.is_none() {
        return Err(ApiError::unauthorized(
            "a verified front-proxy client certificate is required; reach this API through kube-apiserver",
        ));
    }
    if !cfg.allowed_names.is_empty() {
        let cn = peer_common_name(conn).unwrap_or_default();
        if !cfg.allowed_names.contains(&cn) {
            return Err(ApiError::unauthorized(format!(
                "client certificate CN {cn:?} is not in requestheader-allowed-names"
            )));
        }
    }
    let name = cfg
        .username_headers
        .iter()
        .find_map(|h| header_values(headers, h).find(|v| !v.is_empty()))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unauthorized("no user in the front-proxy headers"))?;
    let uid = cfg
        .uid_headers
        .iter()
        .find_map(|h| header_values(headers, h).find(|v| !v.is_empty()))
        .map(str::to_owned);
    let groups = cfg
        .group_headers
        .iter()
        .flat_map(|h| header_values(headers, h))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let lname = name.as_str();
        for prefix in &cfg.extra_prefixes {
            let lp = prefix.to_ascii_lowercase();
            if let Some(key) = lname.strip_prefix(&lp)
                && !key.is_empty()
                && let Ok(v) = std::str::from_utf8(value.as_bytes())
            {
                extra
                    .entry(unescape_extra_key(key))
                    .or_default()
                    .push(v.to_owned());
            }
        }
    }
    Ok(UserInfo {
        name,
        uid,
        groups,
        extra,
    })
}

/// Decides who a bearer token is and whether a user may do something.
pub trait Authorizer: Send + Sync {
    /// The verdict for `user` doing `action`.
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<Decision, ApiError>>;

    /// The user `token` authenticates as, `None` when it does not.
    fn authenticate_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ApiError>>;
}

/// Turns a denial into the 403 kube-apiserver would give.
///
/// # Errors
///
/// 403 Forbidden naming the user, the action and the authorizer's reason.
pub fn require(decision: &Decision, user: &UserInfo, attrs: &Attributes) -> Result<(), ApiError> {
    if decision.allowed {
        return Ok(());
    }
    let reason = if decision.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", decision.reason)
    };
    Err(ApiError::forbidden(format!(
        "{} {:?} is forbidden: User {:?} cannot {}{reason}",
        attrs.resource_path(),
        attrs.name,
        user.name,
        attrs.describe()
    )))
}

/// Authorizes with SubjectAccessReviews against kube-apiserver through the shared
/// [`Reviewer`] (the server's service account needs `system:auth-delegator`), which caches
/// allowed and denied verdicts for a short time each, like Kubernetes' delegating authorizer.
pub struct SarAuthorizer {
    reviewer: Arc<Reviewer>,
}

impl SarAuthorizer {
    /// An authorizer asking through `reviewer`.
    #[must_use]
    pub fn new(reviewer: Arc<Reviewer>) -> Self {
        Self { reviewer }
    }
}

fn review_error(e: &kompox_cluster::Error) -> ApiError {
    match e {
        kompox_cluster::Error::Kube { what, source } => ApiError::from_kube(what, source),
        kompox_cluster::Error::Busy(why) => ApiError::too_many_requests(*why),
        other => ApiError::unavailable(other.to_string()),
    }
}

impl Authorizer for SarAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<Decision, ApiError>> {
        Box::pin(async move {
            self.reviewer
                .authorize(user, action)
                .await
                .map_err(|e| review_error(&e))
        })
    }

    fn authenticate_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ApiError>> {
        Box::pin(async move {
            self.reviewer
                .authenticate_token(token)
                .await
                .map_err(|e| review_error(&e))
        })
    }
}

/// The current front-proxy configuration, shared between the watcher and the handlers.
pub type SharedRequestHeaderConfig = Arc<RwLock<Option<RequestHeaderConfig>>>;

/// Applies a (new) ConfigMap: parses it, swaps the TLS client CA, stores the config and marks
/// the server ready. A bad ConfigMap keeps the previous configuration.
pub fn apply_config_map(
    cm: &ConfigMap,
    tls: &ReloadableTls,
    shared: &SharedRequestHeaderConfig,
    health: &Health,
) {
    let data = cm.data.clone().unwrap_or_default();
    let cfg = match RequestHeaderConfig::from_data(&data) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring {AUTH_NAMESPACE}/{AUTH_CONFIG_MAP}");
            return;
        }
    };
    {
        let current = shared.read().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref() == Some(&cfg) {
            return;
        }
    }
    if let Err(e) = tls.update_client_ca(Some(cfg.client_ca_pem.as_bytes())) {
        tracing::warn!(error = %e, "requestheader-client-ca-file rejected; keeping the previous front-proxy configuration");
        return;
    }
    tracing::info!(
        allowed_names = ?cfg.allowed_names,
        username_headers = ?cfg.username_headers,
        "front-proxy configuration loaded"
    );
    *shared.write().unwrap_or_else(PoisonError::into_inner) = Some(cfg);
    health.set_ready(true);
}

/// Watches `kube-system/extension-apiserver-authentication` until `shutdown`, applying each
/// version with [`apply_config_map`]. Watch errors are retried with backoff, never fatal.
pub async fn watch_request_header_config(
    client: kube::Client,
    tls: ReloadableTls,
    shared: SharedRequestHeaderConfig,
    health: Health,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, AUTH_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={AUTH_CONFIG_MAP}"));
    let stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .map_err(|e| e.to_string());
    tokio::pin!(stream);
    tokio::pin!(shutdown);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            next = stream.next() => match next {
                None => return,
                Some(Ok(cm)) => {
                    last_error = None;
                    apply_config_map(&cm, &tls, &shared, &health);
                }
                Some(Err(e)) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(error = %e, "watching {AUTH_NAMESPACE}/{AUTH_CONFIG_MAP}");
                        last_error = Some(e);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use kompox_serve::{generate_ca, issue_client_cert};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    fn get_rendered(app: &str) -> Attributes {
        Attributes::new(
            "ns",
            "get",
            crate::discovery::GROUP,
            "kompoxapps",
            "rendered",
            app,
        )
    }

    fn decision(allowed: bool, reason: &str) -> Decision {
        Decision {
            allowed,
            reason: reason.into(),
        }
    }

    fn data(allowed: &str) -> BTreeMap<String, String> {
        [
            ("requestheader-client-ca-file", "PEM"),
            ("requestheader-allowed-names", allowed),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn conn_with_cn(cn: Option<&str>) -> ConnInfo {
        let certs = cn.map(|cn| {
            let ca = generate_ca("ca").unwrap();
            let leaf = issue_client_cert(&ca, cn, &[] as &[&str], 1).unwrap();
            vec![
                CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
                    .unwrap()
                    .into_owned(),
            ]
        });
        ConnInfo::new(([127, 0, 0, 1], 1).into(), certs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn config_map_parsing_names_bad_keys() {
        let cfg = RequestHeaderConfig::from_data(&data(r#"["front-proxy-client"]"#)).unwrap();
        assert_eq!(cfg.allowed_names, ["front-proxy-client"]);
        assert_eq!(cfg.extra_prefixes, ["X-Remote-Extra-"]);
        assert!(cfg.uid_headers.is_empty());
        let mut bad = data("not json");
        assert!(
            RequestHeaderConfig::from_data(&bad)
                .unwrap_err()
                .starts_with("requestheader-allowed-names:")
        );
        bad.remove("requestheader-allowed-names");
        bad.remove("requestheader-client-ca-file");
        assert!(
            RequestHeaderConfig::from_data(&bad)
                .unwrap_err()
                .starts_with("requestheader-client-ca-file: missing")
        );
    }

    #[test]
    fn authentication_table() {
        let cfg = RequestHeaderConfig::from_data(&data(r#"["front-proxy-client"]"#)).unwrap();
        let any_cn = RequestHeaderConfig::from_data(&data("")).unwrap();
        let user = headers(&[
            ("X-Remote-User", "dev"),
            ("X-Remote-Group", "team"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Extra-Scopes%2fA", "x"),
            ("X-Remote-Extra-scopes%2fa", "y"),
        ]);
        let proxy = conn_with_cn(Some("front-proxy-client"));
        let other = conn_with_cn(Some("someone-else"));
        let none = conn_with_cn(None);

        let ok = authenticate(Some(&cfg), &proxy, &user).unwrap();
        assert_eq!(ok.name, "dev");
        assert_eq!(ok.groups, ["team", "system:authenticated"]);
        assert_eq!(ok.extra.get("scopes/a").map(Vec::len), Some(2));

        let cases: [(
            &str,
            Option<&RequestHeaderConfig>,
            &ConnInfo,
            HeaderMap,
            bool,
        ); 6] = [
            ("not loaded", None, &proxy, user.clone(), false),
            (
                "no cert: headers ignored",
                Some(&cfg),
                &none,
                user.clone(),
                false,
            ),
            ("CN not allowed", Some(&cfg), &other, user.clone(), false),
            (
                "any CN when list empty",
                Some(&any_cn),
                &other,
                user.clone(),
                true,
            ),
            (
                "no user header",
                Some(&cfg),
                &proxy,
                headers(&[("X-Remote-Group", "g")]),
                false,
            ),
            (
                "empty user header",
                Some(&cfg),
                &proxy,
                headers(&[("X-Remote-User", "")]),
                false,
            ),
        ];
        for (name, cfg, conn, h, want) in cases {
            let got = authenticate(cfg, conn, &h);
            assert_eq!(got.is_ok(), want, "{name}: {got:?}");
            if let Err(e) = got {
                assert_eq!(e.code, http::StatusCode::UNAUTHORIZED, "{name}");
                assert!(!e.message.contains("dev"), "{name}: echoes a header: {e}");
            }
        }
    }

    #[test]
    fn config_map_changes_swap_the_client_ca_and_bad_ones_are_ignored() {
        let serving_ca = generate_ca("serving").unwrap();
        let leaf = kompox_serve::issue_serving_cert(&serving_ca, &["localhost"], &[], 1).unwrap();
        let tls =
            ReloadableTls::new(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes(), None).unwrap();
        let shared: SharedRequestHeaderConfig = Arc::new(RwLock::new(None));
        let health = Health::new();
        let cm = |ca_pem: &str| ConfigMap {
            data: Some({
                let mut d = data(r#"["front-proxy-client"]"#);
                d.insert("requestheader-client-ca-file".into(), ca_pem.to_owned());
                d
            }),
            ..ConfigMap::default()
        };
        let current_ca = || {
            shared
                .read()
                .unwrap()
                .as_ref()
                .map(|c| c.client_ca_pem.clone())
        };

        let first = generate_ca("proxy-1").unwrap();
        let before = tls.current();
        apply_config_map(&cm(first.cert_pem()), &tls, &shared, &health);
        assert!(health.is_ready());
        assert_eq!(current_ca().as_deref(), Some(first.cert_pem()));
        assert!(
            !Arc::ptr_eq(&before, &tls.current()),
            "client CA swapped in"
        );

        let rotated = generate_ca("proxy-2").unwrap();
        let before = tls.current();
        apply_config_map(&cm(rotated.cert_pem()), &tls, &shared, &health);
        assert_eq!(current_ca().as_deref(), Some(rotated.cert_pem()));
        assert!(
            !Arc::ptr_eq(&before, &tls.current()),
            "rotated CA swapped in"
        );

        let before = tls.current();
        apply_config_map(&cm("not a certificate"), &tls, &shared, &health);
        apply_config_map(&ConfigMap::default(), &tls, &shared, &health);
        assert_eq!(current_ca().as_deref(), Some(rotated.cert_pem()));
        assert!(
            Arc::ptr_eq(&before, &tls.current()),
            "bad input keeps the config"
        );
        assert!(health.is_ready());
    }

    #[test]
    fn denial_names_user_action_and_reason() {
        let user = UserInfo {
            name: "dev".into(),
            ..UserInfo::default()
        };
        let attrs = get_rendered("a");
        let deny = decision(false, "no RBAC policy matched");
        let e = require(&deny, &user, &attrs).unwrap_err();
        assert_eq!(e.code, http::StatusCode::FORBIDDEN);
        assert!(
            e.message
                .contains("User \"dev\" cannot get kompoxapps/rendered"),
            "{e}"
        );
        assert!(e.message.ends_with(": no RBAC policy matched"), "{e}");
        let allow = decision(true, "");
        assert!(require(&allow, &user, &attrs).is_ok());
        // Without a subresource, no dangling slash.
        let mut whole = attrs.clone();
        whole.subresource.clear();
        let e = require(&deny, &user, &whole).unwrap_err();
        assert!(
            e.message.starts_with("kompoxapps \"a\" is forbidden"),
            "{e}"
        );
        assert!(e.message.contains("cannot get kompoxapps in"), "{e}");
    }

    #[test]
    fn utf8_user_names_groups_and_extras_are_accepted() {
        let cfg = RequestHeaderConfig::from_data(&data(r#"["front-proxy-client"]"#)).unwrap();
        let proxy = conn_with_cn(Some("front-proxy-client"));
        let mut h = HeaderMap::new();
        let utf8 = |s: &str| HeaderValue::from_bytes(s.as_bytes()).unwrap();
        h.append("X-Remote-User", utf8("山田太郎"));
        h.append("X-Remote-Group", utf8("開発"));
        h.append("X-Remote-Extra-Team", utf8("café"));
        let u = authenticate(Some(&cfg), &proxy, &h).unwrap();
        assert_eq!(u.name, "山田太郎");
        assert_eq!(u.groups, ["開発"]);
        assert_eq!(u.extra.get("team").cloned(), Some(vec!["café".to_owned()]));
        // Bytes that are not UTF-8 are not a user name.
        let mut bad = HeaderMap::new();
        bad.append(
            "X-Remote-User",
            HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
        );
        assert!(authenticate(Some(&cfg), &proxy, &bad).is_err());
    }
}
