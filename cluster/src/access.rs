//! Delegated authentication and authorization, as kube-apiserver's extension servers do it:
//! a bearer token is authenticated with a TokenReview, and what a user may do is asked with a
//! SubjectAccessReview (resource attributes, or a non-resource path such as `get /metrics`).
//! Verdicts are cached for a short time each ([`Ttls`]); a token is kept only as its sha256.
//!
//! A bearer token comes from a caller nobody has authenticated yet, so what one can cost is
//! bounded: a token longer than [`MAX_TOKEN_BYTES`] is refused unread, at most
//! [`TOKEN_REVIEWS_IN_FLIGHT`] TokenReviews run at once (a caller waits up to
//! [`TOKEN_REVIEW_QUEUE_WAIT`] for a turn, then gets 429), and every answer, unauthenticated
//! included, is cached. A flood of distinct junk tokens thus costs kube-apiserver at most a few
//! reviews at a time, and a scraper whose token is cached is never queued behind it.
//!
//! [`Reviewer`] is the one place the servers ask: the aggregated API server for its
//! subresources and per object before a dry run, and all three servers for `/metrics`
//! ([`Reviewer::metrics_access`], as kube-rbac-proxy and controller-runtime's metrics filter
//! do). The identity asking needs `system:auth-delegator` (create TokenReviews and
//! SubjectAccessReviews).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header::AUTHORIZATION;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes as SarResourceAttributes, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A user as kube-apiserver authenticated it (Kubernetes' `user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// User UID, when known.
    pub uid: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (keys lowercased, as Kubernetes does).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A request on an API resource, in SubjectAccessReview terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Namespace (empty for a cluster-scoped resource).
    pub namespace: String,
    /// Verb (`get`, `create`, `patch`).
    pub verb: String,
    /// API group (empty for the core group).
    pub group: String,
    /// Resource (`kompoxapps`).
    pub resource: String,
    /// Subresource (`rendered`), empty for none.
    pub subresource: String,
    /// Object name (empty for all).
    pub name: String,
}

impl Attributes {
    /// Attributes from their parts (`subresource` empty for none).
    #[must_use]
    pub fn new(
        namespace: &str,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        name: &str,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
        }
    }

    /// `verb resource/subresource in the API group "g" in the namespace "ns"`, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {} in the API group {:?}",
            self.verb,
            self.resource_path(),
            self.group
        );
        if !self.namespace.is_empty() {
            s.push_str(&format!(" in the namespace {:?}", self.namespace));
        }
        s
    }

    /// `resource/subresource`, or `resource` without a subresource.
    #[must_use]
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// What a SubjectAccessReview asks about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// An API resource.
    Resource(Attributes),
    /// A path that is no API resource (`get /metrics`).
    NonResource {
        /// Verb, the HTTP method lowercased (`get`).
        verb: String,
        /// Path (`/metrics`).
        path: String,
    },
}

impl Action {
    /// `get /metrics`.
    #[must_use]
    pub fn metrics() -> Self {
        Action::NonResource {
            verb: "get".to_owned(),
            path: "/metrics".to_owned(),
        }
    }

    /// What the action is, as kube-apiserver words a denial (`get path "/metrics"`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Action::Resource(a) => a.describe(),
            Action::NonResource { verb, path } => format!("{verb} path {path:?}"),
        }
    }
}

/// An authorization verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The authorizer's reason (may be empty).
    pub reason: String,
}

/// How long verdicts are reused (like kube-apiserver's delegating authenticator and
/// authorizer; zero caches nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// An allowed SubjectAccessReview.
    pub allow: Duration,
    /// A denied SubjectAccessReview.
    pub deny: Duration,
    /// A TokenReview (authenticated or not).
    pub token: Duration,
}

impl Default for Ttls {
    /// 10 s each.
    fn default() -> Self {
        let ten = Duration::from_secs(10);
        Ttls {
            allow: ten,
            deny: ten,
            token: ten,
        }
    }
}

/// The longest bearer token sent for review (kube-apiserver's own tokens are 1–2 KiB, OIDC
/// ID tokens a few KiB); a longer one is not authenticated.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// TokenReviews one server makes at once.
pub const TOKEN_REVIEWS_IN_FLIGHT: usize = 4;

/// How long a request waits for a TokenReview turn before it is refused with 429.
pub const TOKEN_REVIEW_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Entries a cache keeps before expired ones are swept (and, if still full, all are dropped).
const CACHE_MAX: usize = 10_000;

/// A bounded map of values that expire.
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, Duration, V)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, ttl, v) = entries.get(key)?;
        (at.elapsed() < *ttl).then(|| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (at, ttl, _)| at.elapsed() < *ttl);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), ttl, value));
    }
}

/// Why `/metrics` (or another guarded path) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No bearer token, or kube-apiserver did not authenticate it (401).
    #[error("Unauthorized: a bearer token kube-apiserver authenticates is required")]
    Unauthenticated,
    /// The token's user may not do it (403).
    #[error("forbidden: User {user:?} cannot {action}{reason}")]
    Forbidden {
        /// The user.
        user: String,
        /// What was asked ([`Action::describe`]).
        action: String,
        /// `: <authorizer's reason>`, or empty.
        reason: String,
    },
    /// The TokenReview or SubjectAccessReview could not be made (503).
    #[error("{0}")]
    Unavailable(String),
    /// Too many TokenReviews in flight (429): retry later.
    #[error("{0}")]
    Busy(&'static str),
}

impl Refusal {
    /// The HTTP status of the refusal.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            Refusal::Forbidden { .. } => http::StatusCode::FORBIDDEN,
            Refusal::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Busy(_) => http::StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The refusal of `user` doing `action` for `decision` (a denial).
    #[must_use]
    pub fn forbidden(user: &UserInfo, action: &Action, decision: &Decision) -> Self {
        Refusal::Forbidden {
            user: user.name.clone(),
            action: action.describe(),
            reason: if decision.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", decision.reason)
            },
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>` (scheme case-insensitive), if that is
/// the request's one Authorization header.
#[must_use]
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Asks kube-apiserver who a token is and what a user may do, with short-lived caches.
pub struct Reviewer {
    client: kube::Client,
    ttls: Ttls,
    verdicts: TtlCache<(UserInfo, Action), Decision>,
    /// sha256 of the token → the user, `None` when not authenticated.
    tokens: TtlCache<[u8; 32], Option<UserInfo>>,
    /// Turns for TokenReviews ([`TOKEN_REVIEWS_IN_FLIGHT`]).
    token_reviews: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer")
            .field("ttls", &self.ttls)
            .finish_non_exhaustive()
    }
}

impl Reviewer {
    /// A reviewer asking through `client` (which needs `system:auth-delegator`).
    #[must_use]
    pub fn new(client: kube::Client, ttls: Ttls) -> Self {
        Self {
            client,
            ttls,
            verdicts: TtlCache::new(),
            tokens: TtlCache::new(),
            token_reviews: tokio::sync::Semaphore::new(TOKEN_REVIEWS_IN_FLIGHT),
        }
    }

    /// Whether `user` may do `action`, from the cache or a SubjectAccessReview.
    ///
    /// # Errors
    ///
    /// [`Error::Kube`] when the review cannot be created.
    pub async fn authorize(&self, user: &UserInfo, action: &Action) -> Result<Decision> {
        let key = (user.clone(), action.clone());
        if let Some(d) = self.verdicts.get(&key) {
            return Ok(d);
        }
        let d = self.review(user, action).await?;
        let ttl = if d.allowed {
            self.ttls.allow
        } else {
            self.ttls.deny
        };
        self.verdicts.put(key, d.clone(), ttl);
        Ok(d)
    }

    /// The user `token` authenticates as (`None`: not authenticated), from the cache or a
    /// TokenReview (with the API server's own audiences). A token longer than
    /// [`MAX_TOKEN_BYTES`] is not authenticated and not sent.
    ///
    /// # Errors
    ///
    /// [`Error::Kube`] when the review cannot be created; [`Error::Busy`] when
    /// [`TOKEN_REVIEWS_IN_FLIGHT`] reviews stayed in flight for [`TOKEN_REVIEW_QUEUE_WAIT`].
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>> {
        if token.len() > MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(u) = self.tokens.get(&key) {
            return Ok(u);
        }
        let busy = || Error::Busy("too many token reviews in flight; retry later");
        let _turn = tokio::time::timeout(TOKEN_REVIEW_QUEUE_WAIT, self.token_reviews.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        // Another request may have reviewed the same token while this one waited.
        if let Some(u) = self.tokens.get(&key) {
            return Ok(u);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(Error::kube("creating a TokenReview"))?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) => u.username.filter(|n| !n.is_empty()).map(|name| UserInfo {
                name,
                uid: u.uid.filter(|s| !s.is_empty()),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            }),
            _ => None,
        };
        self.tokens.put(key, user.clone(), self.ttls.token);
        Ok(user)
    }

    /// Whether the request with `headers` may `get /metrics`: its bearer token is authenticated
    /// with a TokenReview and its user authorized with a SubjectAccessReview for the
    /// non-resource path (grant it with the install's ClusterRole `kompox-metrics-reader`).
    ///
    /// # Errors
    ///
    /// [`Refusal`]: 401 without a token that authenticates, 403 when the user lacks the
    /// right, 503 when a review cannot be made. Never quotes the token.
    pub async fn metrics_access(&self, headers: &HeaderMap) -> Result<UserInfo, Refusal> {
        self.path_access(headers, &Action::metrics()).await
    }

    /// As [`Reviewer::metrics_access`], for any action.
    ///
    /// # Errors
    ///
    /// As [`Reviewer::metrics_access`].
    pub async fn path_access(
        &self,
        headers: &HeaderMap,
        action: &Action,
    ) -> Result<UserInfo, Refusal> {
        let token = bearer_token(headers).ok_or(Refusal::Unauthenticated)?;
        let user = self
            .authenticate_token(token)
            .await
            .map_err(|e| match e {
                Error::Busy(why) => Refusal::Busy(why),
                e => Refusal::Unavailable(e.to_string()),
            })?
            .ok_or(Refusal::Unauthenticated)?;
        let decision = self
            .authorize(&user, action)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        if decision.allowed {
            Ok(user)
        } else {
            Err(Refusal::forbidden(&user, action, &decision))
        }
    }

    async fn review(&self, user: &UserInfo, action: &Action) -> Result<Decision> {
        let (resource_attributes, non_resource_attributes) = match action {
            Action::Resource(a) => (
                Some(SarResourceAttributes {
                    namespace: (!a.namespace.is_empty()).then(|| a.namespace.clone()),
                    verb: Some(a.verb.clone()),
                    group: Some(a.group.clone()),
                    resource: Some(a.resource.clone()),
                    subresource: (!a.subresource.is_empty()).then(|| a.subresource.clone()),
                    name: (!a.name.is_empty()).then(|| a.name.clone()),
                    ..SarResourceAttributes::default()
                }),
                None,
            ),
            Action::NonResource { verb, path } => (
                None,
                Some(NonResourceAttributes {
                    verb: Some(verb.clone()),
                    path: Some(path.clone()),
                }),
            ),
        };
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()),
                resource_attributes,
                non_resource_attributes,
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &sar)
            .await
            .map_err(Error::kube("creating a SubjectAccessReview"))?;
        let status = answer.status.unwrap_or_default();
        let reason = status.reason.unwrap_or_default();
        let reason = match status.evaluation_error {
            Some(err) if !err.is_empty() && reason.is_empty() => err,
            _ => reason,
        };
        Ok(Decision {
            allowed: status.allowed && !status.denied.unwrap_or(false),
            reason,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use rstest::rstest;

    /// A reviewer whose every request fails: nothing listens on port 9, so an answer can only
    /// come from the cache.
    fn offline(ttls: Ttls) -> Reviewer {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        Reviewer::new(client, ttls)
    }

    fn get_rendered(app: &str) -> Action {
        Action::Resource(Attributes::new(
            "ns",
            "get",
            "subresources.k8s.kompox.dev",
            "kompoxapps",
            "rendered",
            app,
        ))
    }

    fn with_auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[rstest]
    #[case::bearer(&["Bearer abc.def"], Some("abc.def"))]
    #[case::scheme_any_case(&["bEaReR abc"], Some("abc"))]
    #[case::padded(&["  Bearer   abc  "], Some("abc"))]
    #[case::none(&[], None)]
    #[case::basic(&["Basic dXNlcjpwdw=="], None)]
    #[case::empty_token(&["Bearer "], None)]
    #[case::no_token(&["Bearer"], None)]
    #[case::two_words(&["Bearer a b"], None)]
    #[case::two_headers(&["Bearer a", "Bearer b"], None)]
    fn bearer_tokens(#[case] values: &[&str], #[case] want: Option<&str>) {
        assert_eq!(bearer_token(&with_auth(values)), want);
    }

    #[tokio::test]
    async fn verdicts_are_cached_per_user_and_action() {
        let r = offline(Ttls {
            allow: Duration::from_secs(60),
            deny: Duration::ZERO,
            token: Duration::from_secs(60),
        });
        let user = UserInfo {
            name: "dev".into(),
            groups: vec!["g".into()],
            ..UserInfo::default()
        };
        let allow = Decision {
            allowed: true,
            reason: String::new(),
        };
        r.verdicts.put(
            (user.clone(), get_rendered("a")),
            allow.clone(),
            r.ttls.allow,
        );
        assert_eq!(r.authorize(&user, &get_rendered("a")).await.unwrap(), allow);
        // Another object, other groups, another action: asked, and the ask fails.
        assert!(r.authorize(&user, &get_rendered("b")).await.is_err());
        let other_groups = UserInfo {
            groups: vec![],
            ..user.clone()
        };
        assert!(
            r.authorize(&other_groups, &get_rendered("a"))
                .await
                .is_err()
        );
        assert!(r.authorize(&user, &Action::metrics()).await.is_err());
    }

    #[rstest]
    #[case::no_token(&[], Refusal::Unauthenticated)]
    #[case::not_bearer(&["Basic eDp5"], Refusal::Unauthenticated)]
    #[case::unknown_token(&["Bearer unknown"], Refusal::Unauthenticated)]
    #[case::reader(&["Bearer reader"], Refusal::Unavailable(String::new()))]
    #[case::other(&["Bearer other"], Refusal::Forbidden {
        user: "other".into(),
        action: "get path \"/metrics\"".into(),
        reason: ": no RBAC policy matched".into(),
    })]
    #[tokio::test]
    async fn metrics_access_from_cached_reviews(#[case] auth: &[&str], #[case] want: Refusal) {
        let r = offline(Ttls::default());
        let user = |n: &str| UserInfo {
            name: n.into(),
            ..UserInfo::default()
        };
        let key = |t: &str| -> [u8; 32] { Sha256::digest(t.as_bytes()).into() };
        r.tokens.put(key("unknown"), None, r.ttls.token);
        r.tokens
            .put(key("reader"), Some(user("reader")), r.ttls.token);
        r.tokens
            .put(key("other"), Some(user("other")), r.ttls.token);
        let deny = Decision {
            allowed: false,
            reason: "no RBAC policy matched".into(),
        };
        r.verdicts
            .put((user("other"), Action::metrics()), deny, r.ttls.deny);
        let got = r.metrics_access(&with_auth(auth)).await.unwrap_err();
        match (&got, &want) {
            // The reader's verdict is not cached: the SubjectAccessReview is made, and fails.
            (Refusal::Unavailable(msg), Refusal::Unavailable(_)) => {
                assert!(msg.starts_with("creating a SubjectAccessReview"), "{msg}");
            }
            _ => assert_eq!(got, want),
        }
        assert!(!got.to_string().contains("Bearer"), "{got}");
    }

    /// A reviewer whose reviews never get an answer: the listener accepts and stays silent.
    async fn silent() -> (Reviewer, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        (Reviewer::new(client, Ttls::default()), listener)
    }

    #[tokio::test]
    async fn token_reviews_in_flight_are_capped_and_cached_tokens_skip_the_queue() {
        let (r, listener) = silent().await;
        let r = std::sync::Arc::new(r);
        let held: Vec<_> = (0..TOKEN_REVIEWS_IN_FLIGHT)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move { r.authenticate_token(&format!("junk-{i}")).await })
            })
            .collect();
        // Every turn taken (the reviews hang on the silent listener).
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.token_reviews.available_permits() > 0 {
            assert!(Instant::now() < deadline, "the reviews never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = Instant::now();
        let err = r.authenticate_token("one-more").await.unwrap_err();
        assert!(matches!(err, Error::Busy(_)), "{err}");
        assert!(
            start.elapsed() >= TOKEN_REVIEW_QUEUE_WAIT,
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < TOKEN_REVIEW_QUEUE_WAIT * 5,
            "{:?}",
            start.elapsed()
        );
        let refusal = r
            .metrics_access(&with_auth(&["Bearer one-more"]))
            .await
            .unwrap_err();
        assert_eq!(refusal.status(), http::StatusCode::TOO_MANY_REQUESTS);
        // A cached answer and an oversized token need no turn.
        let key: [u8; 32] = Sha256::digest(b"known").into();
        let user = UserInfo {
            name: "prometheus".into(),
            ..UserInfo::default()
        };
        r.tokens.put(key, Some(user.clone()), r.ttls.token);
        let start = Instant::now();
        assert_eq!(r.authenticate_token("known").await.unwrap(), Some(user));
        let huge = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(r.authenticate_token(&huge).await.unwrap(), None);
        assert!(
            start.elapsed() < TOKEN_REVIEW_QUEUE_WAIT,
            "{:?}",
            start.elapsed()
        );
        for h in held {
            h.abort();
        }
        drop(listener);
    }

    #[test]
    fn refusals_have_kube_apiserver_statuses_and_words() {
        let forbidden = Refusal::forbidden(
            &UserInfo {
                name: "system:serviceaccount:ns:sa".into(),
                ..UserInfo::default()
            },
            &Action::metrics(),
            &Decision {
                allowed: false,
                reason: String::new(),
            },
        );
        assert_eq!(forbidden.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(
            forbidden.to_string(),
            r#"forbidden: User "system:serviceaccount:ns:sa" cannot get path "/metrics""#
        );
        assert_eq!(
            Refusal::Unauthenticated.status(),
            http::StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Refusal::Unavailable("x".into()).status(),
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Refusal::Busy("x").status(),
            http::StatusCode::TOO_MANY_REQUESTS
        );
    }
}
