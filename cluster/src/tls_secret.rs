//! The serving certificate kept in a Secret (`--tls-secret <namespace>/<name>`), for the two
//! servers kube-apiserver calls: the webhook and the aggregated API server.
//!
//! The Secret holds `tls.crt` and `tls.key` (the serving pair), and, when the webhook manages
//! it, `ca.crt` (the CA bundle kube-apiserver must trust: the current CA first, older ones
//! after it during a rotation) and `ca.key` (the current CA's key). The webhook watches the
//! Secret and swaps the rustls config when the pair changes — rotation never needs a
//! restart, whoever writes the Secret (cert-manager, an installer, or the server itself).
//!
//! # Managed mode
//!
//! With [`Managed`] (`--tls-manage`), the server also keeps the material valid, one step at
//! a time, each step a write of the Secret (optimistic concurrency, so replicas do not race)
//! decided by the pure [`plan`]:
//!
//! 1. No usable CA: a new CA and serving certificate (bootstrap).
//! 2. The CA expires within [`CA_RENEW_BEFORE_DAYS`]: a new CA is put in front of the bundle,
//!    the old one stays (the serving certificate, still signed by the old CA, stays valid).
//! 3. The serving certificate is missing, expires within [`LEAF_RENEW_BEFORE_DAYS`], does not
//!    cover the DNS names, or was not issued by the current CA: a new one from the current
//!    CA, but only once the [`CaBundleTarget`]'s `caBundle` has trusted that CA for
//!    [`TRUST_SETTLE`] (kube-apiserver reloads webhook configurations and APIServices
//!    asynchronously).
//! 4. Expired CAs are dropped from the bundle.
//!
//! The server copies `ca.crt` into the target's `caBundle` (every `clientConfig.caBundle` of a
//! MutatingWebhookConfiguration, or `spec.caBundle` of an APIService), and again whenever the
//! target is re-applied without it (a Helm upgrade, `kubectl apply -k`). During a CA rotation
//! the bundle holds old and new CA: that is the overlap.
//!
//! The CA key lives only in this Secret, read through the API by the one server that signs
//! with it — it is never mounted into a Pod.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;

use crate::is_conflict;
use futures::{StreamExt as _, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kompox_serve::certs::certificate_pem;
use kompox_serve::{CertKeyPem, CertifiedCa, generate_ca, issue_serving_cert};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use time::OffsetDateTime;
use tokio::time::Instant;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Secret key of the serving certificate.
pub const TLS_CERT: &str = "tls.crt";
/// Secret key of the serving key.
pub const TLS_KEY: &str = "tls.key";
/// Secret key of the CA bundle.
pub const CA_CERT: &str = "ca.crt";
/// Secret key of the current CA's key.
pub const CA_KEY: &str = "ca.key";
/// Validity of a serving certificate the webhook issues.
pub const LEAF_VALIDITY_DAYS: u32 = 365;
/// A serving certificate is renewed when it has fewer days left than this.
pub const LEAF_RENEW_BEFORE_DAYS: i64 = 90;
/// A CA is rotated when it has fewer days left than this.
pub const CA_RENEW_BEFORE_DAYS: i64 = 365;
/// How long a new CA must have been in the webhook configuration's `caBundle` before the
/// serving certificate is switched to it.
pub const TRUST_SETTLE: Duration = Duration::from_secs(30);
/// How often the material is re-checked without any watch event (expiry is time-driven).
const RECHECK: Duration = Duration::from_secs(3600);

/// Errors of the TLS Secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the Secret failed.
    #[error("TLS Secret {secret}: {source}")]
    Api {
        /// `namespace/name`.
        secret: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Reading or updating the object holding the `caBundle` failed.
    #[error("{target}: {source}")]
    CaBundleTarget {
        /// The target (`MutatingWebhookConfiguration NAME`, `APIService NAME`).
        target: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Generating certificates failed.
    #[error("TLS Secret: generating certificates: {0}")]
    Certs(#[from] kompox_serve::Error),
    /// The watch on the Secret ended before it held a serving pair.
    #[error("TLS Secret {secret}: watch ended before the Secret held {TLS_CERT} and {TLS_KEY}")]
    NeverReady {
        /// `namespace/name`.
        secret: String,
    },
}

/// `--tls-secret`: where the pair lives, and whether the webhook manages it.
#[derive(Debug, Clone)]
pub struct SecretTls {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Manage (create, renew, rotate) the material; `None`: only follow the Secret.
    pub manage: Option<Managed>,
}

/// What a server needs to manage its certificate.
#[derive(Debug, Clone)]
pub struct Managed {
    /// DNS names of the serving certificate (the Service's names).
    pub dns_names: Vec<String>,
    /// The registration whose `caBundle` is kept equal to `ca.crt`.
    pub ca_bundle_target: Option<CaBundleTarget>,
}

/// The cluster-scoped registration through which kube-apiserver calls the server, and which
/// therefore must trust its CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaBundleTarget {
    /// Every webhook's `clientConfig.caBundle` of this MutatingWebhookConfiguration.
    MutatingWebhookConfiguration(String),
    /// `spec.caBundle` of this APIService.
    ApiService(String),
}

impl std::fmt::Display for CaBundleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MutatingWebhookConfiguration(n) => write!(f, "MutatingWebhookConfiguration {n}"),
            Self::ApiService(n) => write!(f, "APIService {n}"),
        }
    }
}

impl SecretTls {
    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The PEM material of the Secret. `Debug` shows no keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Material {
    /// `ca.crt`: current CA first, older CAs after it.
    pub ca_bundle: String,
    /// `ca.key`: the current CA's key.
    pub ca_key: Option<String>,
    /// `tls.crt`.
    pub cert_pem: String,
    /// `tls.key`.
    pub key_pem: String,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("ca_bundle", &self.ca_bundle)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Material {
    /// Reads the material; `None` unless `tls.crt` and `tls.key` are present.
    #[must_use]
    pub fn from_secret(s: &Secret) -> Option<Material> {
        let data = s.data.as_ref()?;
        let text = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|t| !t.trim().is_empty())
        };
        Some(Material {
            cert_pem: text(TLS_CERT)?,
            key_pem: text(TLS_KEY)?,
            ca_bundle: text(CA_CERT).unwrap_or_default(),
            ca_key: text(CA_KEY),
        })
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        let mut d = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            d.insert(k.to_owned(), ByteString(v.as_bytes().to_vec()));
        };
        put(TLS_CERT, &self.cert_pem);
        put(TLS_KEY, &self.key_pem);
        put(CA_CERT, &self.ca_bundle);
        if let Some(k) = &self.ca_key {
            put(CA_KEY, k);
        }
        d
    }
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do now.
    Keep,
    /// Write this material, for the stated reason.
    Write {
        /// The new material.
        material: Material,
        /// Why (for logs).
        why: &'static str,
    },
    /// The serving certificate needs the current CA, which the webhook configuration does
    /// not trust yet (or only just): check again later.
    WaitForTrust,
}

/// One parsed certificate of a PEM bundle.
struct Cert {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    not_after: i64,
    dns_names: Vec<String>,
}

fn parse_certs(pem: &str) -> Vec<Cert> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .filter_map(|p| {
            let c = p.parse_x509().ok()?;
            let dns_names = c
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            GeneralName::DNSName(d) => Some((*d).to_owned()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Cert {
                subject: c.subject().as_raw().to_vec(),
                issuer: c.issuer().as_raw().to_vec(),
                not_after: c.validity().not_after.timestamp(),
                dns_names,
                der: p.contents.clone(),
            })
        })
        .collect()
}

fn bundle_of(certs: &[&Cert]) -> String {
    certs.iter().map(|c| certificate_pem(&c.der)).collect()
}

const DAY: i64 = 86_400;

fn new_ca(now: OffsetDateTime) -> Result<CertifiedCa, kompox_serve::Error> {
    generate_ca(&format!("kompox-webhook-ca@{}", now.unix_timestamp()))
}

/// Whether the DER of `ca` is in the bundle `trusted` (PEM).
fn trusts(trusted: &str, ca: &Cert) -> bool {
    parse_certs(trusted).iter().any(|c| c.der == ca.der)
}

/// Decides the next step for the material (see the module docs). `trusted` is the bundle the
/// webhook configuration currently trusts and for how long, or `None` when no
/// configuration is managed (then trust is not checked).
///
/// # Errors
///
/// When generating a certificate fails.
pub fn plan(
    current: Option<&Material>,
    dns_names: &[String],
    now: OffsetDateTime,
    trusted: Option<(&str, Duration)>,
) -> Result<Plan, kompox_serve::Error> {
    let now_ts = now.unix_timestamp();
    let fresh = |keep: Vec<&Cert>, why| -> Result<Plan, kompox_serve::Error> {
        let ca = new_ca(now)?;
        let leaf = issue_serving_cert(&ca, dns_names, &[], LEAF_VALIDITY_DAYS)?;
        let mut bundle = ca.cert_pem().to_owned();
        bundle.push_str(&bundle_of(&keep));
        Ok(Plan::Write {
            material: Material {
                ca_bundle: bundle,
                ca_key: Some(ca.key_pem().to_owned()),
                cert_pem: leaf.cert_pem,
                key_pem: leaf.key_pem,
            },
            why,
        })
    };
    let Some(cur) = current else {
        return fresh(Vec::new(), "no TLS material yet");
    };
    let bundle = parse_certs(&cur.ca_bundle);
    let valid_old: Vec<&Cert> = bundle.iter().filter(|c| c.not_after > now_ts).collect();
    let current_ca = bundle.first().and_then(|first| {
        let key = cur.ca_key.as_deref()?;
        let signer = CertifiedCa::from_pem(&certificate_pem(&first.der), key).ok()?;
        Some((first, signer))
    });
    let Some((ca_cert, signer)) = current_ca else {
        return fresh(valid_old, "no usable CA (ca.crt/ca.key)");
    };
    if ca_cert.not_after - now_ts < CA_RENEW_BEFORE_DAYS * DAY {
        // Start the overlap: the new CA in front, every still-valid CA after it.
        let ca = new_ca(now)?;
        let mut b = ca.cert_pem().to_owned();
        b.push_str(&bundle_of(&valid_old));
        return Ok(Plan::Write {
            material: Material {
                ca_bundle: b,
                ca_key: Some(ca.key_pem().to_owned()),
                ..cur.clone()
            },
            why: "CA expires soon; new CA added to the bundle",
        });
    }
    // The current CA stays first; expired older ones go.
    let pruned: Vec<&Cert> = std::iter::once(ca_cert)
        .chain(bundle.iter().skip(1).filter(|c| c.not_after > now_ts))
        .collect();
    let pruned_pem = bundle_of(&pruned);
    let pruned_changed = pruned.len() != bundle.len();

    let leaf = parse_certs(&cur.cert_pem);
    let leaf_ok =
        leaf.first().is_some_and(|l| {
            l.issuer == ca_cert.subject
                && l.not_after - now_ts >= LEAF_RENEW_BEFORE_DAYS * DAY
                && dns_names.iter().all(|d| l.dns_names.contains(d))
        }) && kompox_serve::server_config(cur.cert_pem.as_bytes(), cur.key_pem.as_bytes(), None)
            .is_ok();
    if !leaf_ok {
        let settled = match trusted {
            None => true,
            Some((bundle, since)) => trusts(bundle, ca_cert) && since >= TRUST_SETTLE,
        };
        if !settled {
            return Ok(if pruned_changed {
                Plan::Write {
                    material: Material {
                        ca_bundle: pruned_pem,
                        ..cur.clone()
                    },
                    why: "expired CA dropped from the bundle",
                }
            } else {
                Plan::WaitForTrust
            });
        }
        let CertKeyPem { cert_pem, key_pem } =
            issue_serving_cert(&signer, dns_names, &[], LEAF_VALIDITY_DAYS)?;
        return Ok(Plan::Write {
            material: Material {
                ca_bundle: pruned_pem,
                ca_key: cur.ca_key.clone(),
                cert_pem,
                key_pem,
            },
            why: "serving certificate issued by the current CA",
        });
    }
    if pruned_changed {
        return Ok(Plan::Write {
            material: Material {
                ca_bundle: pruned_pem,
                ..cur.clone()
            },
            why: "expired CA dropped from the bundle",
        });
    }
    Ok(Plan::Keep)
}

fn secret_object(s: &SecretTls, m: &Material, resource_version: Option<String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(s.name.clone()),
            namespace: Some(s.namespace.clone()),
            resource_version,
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "kompox".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(m.data()),
        ..Secret::default()
    }
}

/// Waits until the Secret holds a serving pair and returns it. In managed mode a missing
/// Secret is created with fresh material first.
///
/// # Errors
///
/// [`Error::Api`] when creating the Secret fails other than by a race,
/// [`Error::Certs`] when generating fails, [`Error::NeverReady`] when the watch ends.
pub async fn initial(client: &Client, s: &SecretTls) -> Result<CertKeyPem, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let watch = watcher::watch_object(api.clone(), &s.name);
    futures::pin_mut!(watch);
    let mut said_waiting = false;
    while let Some(ev) = watch.next().await {
        match ev {
            Ok(Some(secret)) => {
                if let Some(m) = Material::from_secret(&secret) {
                    return Ok(CertKeyPem {
                        cert_pem: m.cert_pem,
                        key_pem: m.key_pem,
                    });
                }
            }
            Ok(None) => {
                if let Some(managed) = &s.manage {
                    let Plan::Write { material, why } =
                        plan(None, &managed.dns_names, OffsetDateTime::now_utc(), None)?
                    else {
                        continue;
                    };
                    match api
                        .create(&PostParams::default(), &secret_object(s, &material, None))
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(secret = %s.id(), why, "created the TLS Secret");
                            return Ok(CertKeyPem {
                                cert_pem: material.cert_pem,
                                key_pem: material.key_pem,
                            });
                        }
                        // Another replica won the race; its Secret arrives on the watch.
                        Err(e) if is_conflict(&e) => {}
                        Err(source) => {
                            return Err(Error::Api {
                                secret: s.id(),
                                source,
                            });
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(secret = %s.id(), error = %e, "watching the TLS Secret"),
        }
        if !said_waiting {
            tracing::info!(secret = %s.id(), "waiting for the TLS Secret to hold {TLS_CERT} and {TLS_KEY}");
            said_waiting = true;
        }
    }
    Err(Error::NeverReady { secret: s.id() })
}

/// Follows the Secret until `shutdown`: swaps the serving pair into `tls` on change and, in
/// managed mode, keeps the material valid and the [`CaBundleTarget`]'s `caBundle` in sync. Errors are logged and retried on the next event or check.
pub async fn run(
    client: Client,
    s: SecretTls,
    tls: kompox_serve::ReloadableTls,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    enum Trigger {
        Secret(Option<Box<Secret>>),
        Config,
        Tick,
        Error(String),
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let secret_events = watcher::watch_object(secrets.clone(), &s.name).map(|e| match e {
        Ok(o) => Trigger::Secret(o.map(Box::new)),
        Err(e) => Trigger::Error(e.to_string()),
    });
    let to_trigger = |e: Result<_, watcher::Error>| match e {
        Ok(_) => Trigger::Config,
        Err(e) => Trigger::Error(e.to_string()),
    };
    let config_events = match s.manage.as_ref().and_then(|m| m.ca_bundle_target.as_ref()) {
        Some(CaBundleTarget::MutatingWebhookConfiguration(name)) => {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            watcher::watch_object(api, name)
                .map(|e| to_trigger(e.map(|_| ())))
                .boxed()
        }
        Some(CaBundleTarget::ApiService(name)) => {
            let api: Api<APIService> = Api::all(client.clone());
            watcher::watch_object(api, name)
                .map(|e| to_trigger(e.map(|_| ())))
                .boxed()
        }
        None => stream::pending().boxed(),
    };
    let ticks = stream::unfold(tokio::time::interval(RECHECK), |mut i| async move {
        i.tick().await;
        Some((Trigger::Tick, i))
    });
    let events = stream::select(stream::select(secret_events, config_events), ticks);
    futures::pin_mut!(events);
    tokio::pin!(shutdown);

    let mut latest: Option<Secret> = None;
    let mut trusted_since: HashMap<Vec<u8>, Instant> = HashMap::new();
    let mut retry_at: Option<Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let trigger = tokio::select! {
            () = &mut shutdown => return,
            () = retry => Trigger::Tick,
            ev = events.next() => match ev {
                Some(t) => t,
                None => return,
            },
        };
        retry_at = None;
        match trigger {
            Trigger::Secret(obj) => latest = obj.map(|b| *b),
            Trigger::Error(e) => {
                tracing::warn!(secret = %s.id(), error = %e, "watch failed; retrying");
                continue;
            }
            Trigger::Config | Trigger::Tick => {}
        }
        let material = latest.as_ref().and_then(Material::from_secret);
        if let Some(m) = &material
            && let Err(e) = tls.update_serving(m.cert_pem.as_bytes(), m.key_pem.as_bytes())
        {
            tracing::warn!(secret = %s.id(), error = %e, "TLS Secret holds an unusable pair; keeping the current one");
        }
        let Some(managed) = &s.manage else { continue };
        match reconcile(
            &s,
            managed,
            &client,
            &secrets,
            latest.as_ref(),
            material.as_ref(),
            &mut trusted_since,
        )
        .await
        {
            Ok(Plan::WaitForTrust) => retry_at = Some(Instant::now() + TRUST_SETTLE / 3),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "managing the TLS material failed; retrying");
                retry_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }
}

/// One managed step: sync the caBundle, then plan and write the Secret if needed.
async fn reconcile(
    s: &SecretTls,
    managed: &Managed,
    client: &Client,
    secrets: &Api<Secret>,
    latest: Option<&Secret>,
    material: Option<&Material>,
    trusted_since: &mut HashMap<Vec<u8>, Instant>,
) -> Result<Plan, Error> {
    let mut trusted: Option<(String, Duration)> = None;
    if let (Some(target), Some(m)) = (&managed.ca_bundle_target, material)
        && !m.ca_bundle.is_empty()
    {
        let bundle = sync_ca_bundle(client, target, &m.ca_bundle).await?;
        if let Some(bundle) = bundle {
            // Remember since when each CA has been trusted.
            let now = Instant::now();
            let certs = parse_certs(&bundle);
            trusted_since.retain(|der, _| certs.iter().any(|c| &c.der == der));
            let first = certs.first().map(|c| c.der.clone());
            for c in certs {
                trusted_since.entry(c.der).or_insert(now);
            }
            let since = first
                .and_then(|d| trusted_since.get(&d))
                .map_or(Duration::ZERO, |t| now.duration_since(*t));
            trusted = Some((bundle, since));
        } else {
            trusted = Some((String::new(), Duration::ZERO));
        }
    }
    let decided = plan(
        material,
        &managed.dns_names,
        OffsetDateTime::now_utc(),
        trusted.as_ref().map(|(b, d)| (b.as_str(), *d)),
    )?;
    if let Plan::Write { material: new, why } = &decided {
        let rv = latest.and_then(|l| l.resource_version());
        let obj = secret_object(s, new, rv.clone());
        let res = if rv.is_some() {
            secrets.replace(&s.name, &PostParams::default(), &obj).await
        } else {
            secrets.create(&PostParams::default(), &obj).await
        };
        match res {
            Ok(_) => tracing::info!(secret = %s.id(), why, "updated the TLS Secret"),
            // Someone else wrote it first; the watch brings their version.
            Err(e) if is_conflict(&e) => {}
            Err(source) => {
                return Err(Error::Api {
                    secret: s.id(),
                    source,
                });
            }
        }
    }
    Ok(decided)
}

/// Sets the target's `caBundle` (every webhook's, or the APIService's) to `bundle`; returns
/// the bundle the target trusts afterwards (`None` if it does not exist). A bundle trusted
/// means every `caBundle` of the target holds it.
async fn sync_ca_bundle(
    client: &Client,
    target: &CaBundleTarget,
    bundle: &str,
) -> Result<Option<String>, Error> {
    let err = |source| Error::CaBundleTarget {
        target: target.to_string(),
        source,
    };
    let want = ByteString(bundle.as_bytes().to_vec());
    let written = match target {
        CaBundleTarget::MutatingWebhookConfiguration(name) => {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let Some(mut cfg) = api.get_opt(name).await.map_err(err)? else {
                return Ok(None);
            };
            let mut changed = false;
            for w in cfg.webhooks.iter_mut().flatten() {
                if w.client_config.ca_bundle.as_ref() != Some(&want) {
                    w.client_config.ca_bundle = Some(want.clone());
                    changed = true;
                }
            }
            if !changed {
                return Ok(Some(bundle.to_owned()));
            }
            api.replace(name, &PostParams::default(), &cfg)
                .await
                .map(|_| ())
        }
        CaBundleTarget::ApiService(name) => {
            let api: Api<APIService> = Api::all(client.clone());
            let Some(mut svc) = api.get_opt(name).await.map_err(err)? else {
                return Ok(None);
            };
            let Some(spec) = svc.spec.as_mut() else {
                return Ok(None);
            };
            if spec.ca_bundle.as_ref() == Some(&want) {
                return Ok(Some(bundle.to_owned()));
            }
            spec.ca_bundle = Some(want);
            api.replace(name, &PostParams::default(), &svc)
                .await
                .map(|_| ())
        }
    };
    match written {
        Ok(()) => {
            tracing::info!(%target, "caBundle updated");
            Ok(Some(bundle.to_owned()))
        }
        // Changed meanwhile; the watch brings it back here.
        Err(e) if is_conflict(&e) => Ok(Some(String::new())),
        Err(source) => Err(err(source)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["kompox-webhook.k4x-system.svc".to_owned()]
    }

    fn write(p: Plan) -> (Material, &'static str) {
        match p {
            Plan::Write { material, why } => (material, why),
            other => panic!("expected a write, got {other:?}"),
        }
    }

    const YEAR: time::Duration = time::Duration::days(365);

    /// A CA valid from `from` to `to` (rcgen directly: the serve helpers only make
    /// certificates valid from now), and a serving certificate it signed.
    fn dated_ca(
        cn: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> (String, String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = from;
        p.not_after = to;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        (cert_pem, key_pem, rcgen::Issuer::new(p, key))
    }

    fn dated_leaf(
        issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
        to: OffsetDateTime,
    ) -> (String, String) {
        let mut p = rcgen::CertificateParams::new(names()).unwrap();
        p.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
        p.not_after = to;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn bootstrap_then_steady() {
        let now = OffsetDateTime::now_utc();
        let (m, why) = write(plan(None, &names(), now, None).unwrap());
        assert_eq!(why, "no TLS material yet");
        assert_eq!(parse_certs(&m.ca_bundle).len(), 1);
        assert_eq!(parse_certs(&m.cert_pem)[0].dns_names, names());
        assert!(!format!("{m:?}").contains("PRIVATE KEY"));
        assert_eq!(plan(Some(&m), &names(), now, None).unwrap(), Plan::Keep);
        let trusted = Some((m.ca_bundle.as_str(), TRUST_SETTLE));
        assert_eq!(plan(Some(&m), &names(), now, trusted).unwrap(), Plan::Keep);
        let s = secret_object(
            &SecretTls {
                namespace: "k4x-system".into(),
                name: "tls".into(),
                manage: None,
            },
            &m,
            None,
        );
        assert_eq!(Material::from_secret(&s), Some(m));
    }

    #[test]
    fn leaf_renewal_waits_for_trust() {
        let now = OffsetDateTime::now_utc();
        let (m, _) = write(plan(None, &names(), now, None).unwrap());
        let later = now + YEAR - time::Duration::days(30);
        assert_eq!(
            plan(Some(&m), &names(), later, Some(("", Duration::ZERO))).unwrap(),
            Plan::WaitForTrust,
            "not trusted by the configuration yet"
        );
        assert_eq!(
            plan(
                Some(&m),
                &names(),
                later,
                Some((&m.ca_bundle, Duration::from_secs(1)))
            )
            .unwrap(),
            Plan::WaitForTrust,
            "trusted only just"
        );
        let (renewed, why) = write(
            plan(
                Some(&m),
                &names(),
                later,
                Some((&m.ca_bundle, TRUST_SETTLE)),
            )
            .unwrap(),
        );
        assert_eq!(why, "serving certificate issued by the current CA");
        assert_ne!(renewed.cert_pem, m.cert_pem);
        assert_eq!(
            (&renewed.ca_bundle, &renewed.ca_key),
            (&m.ca_bundle, &m.ca_key)
        );
        // New DNS names also mean a new leaf.
        let more = vec![names()[0].clone(), "other.k4x-system.svc".into()];
        let (m2, _) = write(plan(Some(&m), &more, now, None).unwrap());
        assert_eq!(parse_certs(&m2.cert_pem)[0].dns_names, more);
    }

    #[test]
    fn ca_rotation_overlaps_then_switches_then_drops_the_old_ca() {
        let now = OffsetDateTime::now_utc();
        // A CA with 100 days left (under CA_RENEW_BEFORE_DAYS) and a leaf it signed.
        let (ca_pem, ca_key, issuer) =
            dated_ca("old-ca", now - YEAR, now + time::Duration::days(100));
        let (cert_pem, key_pem) = dated_leaf(&issuer, now + time::Duration::days(99));
        let m0 = Material {
            ca_bundle: ca_pem,
            ca_key: Some(ca_key),
            cert_pem,
            key_pem,
        };
        let old_ca = parse_certs(&m0.ca_bundle).remove(0);

        let (m1, why) = write(plan(Some(&m0), &names(), now, None).unwrap());
        assert_eq!(why, "CA expires soon; new CA added to the bundle");
        let bundle = parse_certs(&m1.ca_bundle);
        assert_eq!(bundle.len(), 2, "new and old CA during the overlap");
        assert_eq!(bundle[1].der, old_ca.der);
        assert_ne!(m1.ca_key, m0.ca_key);
        assert_eq!(m1.cert_pem, m0.cert_pem, "the leaf stays in the first step");

        // The leaf is from the old CA; the switch waits until the new CA is trusted a while.
        for trusted in [
            (m0.ca_bundle.as_str(), TRUST_SETTLE),
            (m1.ca_bundle.as_str(), Duration::from_secs(1)),
        ] {
            assert_eq!(
                plan(Some(&m1), &names(), now, Some(trusted)).unwrap(),
                Plan::WaitForTrust
            );
        }
        let (m2, why) = write(
            plan(
                Some(&m1),
                &names(),
                now,
                Some((&m1.ca_bundle, TRUST_SETTLE)),
            )
            .unwrap(),
        );
        assert_eq!(why, "serving certificate issued by the current CA");
        assert_eq!(parse_certs(&m2.cert_pem)[0].issuer, bundle[0].subject);
        assert_eq!(
            parse_certs(&m2.ca_bundle).len(),
            2,
            "old CA kept while it is valid"
        );
        assert_eq!(
            plan(
                Some(&m2),
                &names(),
                now,
                Some((&m2.ca_bundle, TRUST_SETTLE))
            )
            .unwrap(),
            Plan::Keep
        );

        // Once the old CA has expired it is dropped (simulated with an expired CA in the bundle).
        let (expired, _, _) = dated_ca("expired-ca", now - YEAR * 2, now - YEAR);
        let with_expired = Material {
            ca_bundle: format!("{}{expired}", m2.ca_bundle),
            ..m2.clone()
        };
        let (m3, why) = write(plan(Some(&with_expired), &names(), now, None).unwrap());
        assert_eq!(why, "expired CA dropped from the bundle");
        assert_eq!(parse_certs(&m3.ca_bundle).len(), 2);
        assert_eq!(plan(Some(&m3), &names(), now, None).unwrap(), Plan::Keep);
    }

    #[test]
    fn unusable_material_starts_over() {
        let now = OffsetDateTime::now_utc();
        let junk = Material {
            ca_bundle: "not pem".into(),
            ca_key: Some("nope".into()),
            cert_pem: "x".into(),
            key_pem: "y".into(),
        };
        let (m, why) = write(plan(Some(&junk), &names(), now, None).unwrap());
        assert_eq!(why, "no usable CA (ca.crt/ca.key)");
        assert_eq!(plan(Some(&m), &names(), now, None).unwrap(), Plan::Keep);
        // A key that does not match the certificate means a new leaf.
        let (other, _) = write(plan(None, &names(), now, None).unwrap());
        let mismatched = Material {
            key_pem: other.key_pem,
            ..m.clone()
        };
        let (fixed, _) = write(plan(Some(&mismatched), &names(), now, None).unwrap());
        assert_eq!(plan(Some(&fixed), &names(), now, None).unwrap(), Plan::Keep);
    }
}
