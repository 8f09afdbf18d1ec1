//! Certificate generation with rcgen: a CA, serving certificates and client certificates.
//!
//! Keys are ECDSA P-256 and are written as PKCS#8 (`PRIVATE KEY`). Validity starts one hour
//! in the past to tolerate clock skew between nodes.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::tls::parse_certs;

/// Validity of a CA made by [`generate_ca`].
pub const CA_VALIDITY_DAYS: u32 = 3650;

/// Longest validity accepted by the issue functions (100 years).
const MAX_VALIDITY_DAYS: u32 = 36_500;

const BACKDATE: time::Duration = time::Duration::hours(1);

/// A CA that can sign certificates: its certificate and key as PEM, plus the parsed signer.
/// `Debug` does not print the key.
pub struct CertifiedCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertifiedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertifiedCa {
    /// The CA certificate, PEM. This is the bundle clients (or kube-apiserver's
    /// `caBundle`) trust.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (PKCS#8). Secret: store it in a Secret, never log it.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Loads an existing CA (e.g. from a Secret) so it can keep signing.
    ///
    /// `cert_pem` must hold the CA certificate (the first `CERTIFICATE` block is used) with
    /// `basicConstraints CA:TRUE`; `key_pem` its PKCS#8 private key (`PRIVATE KEY`;
    /// ECDSA P-256/P-384, Ed25519 or RSA). PKCS#1/SEC1 keys are not supported by the ring
    /// backend: convert them with `openssl pkcs8 -topk8 -nocrypt`.
    ///
    /// # Errors
    ///
    /// [`Error::Pem`] naming `CA certificate` or `CA private key` when one does not parse,
    /// is not a CA, or the key does not belong to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        const CERT: &str = "CA certificate";
        const KEY: &str = "CA private key";
        let certs = parse_certs(cert_pem.as_bytes(), CERT)?;
        let ca_der = &certs[0];
        let (_, x509) = x509_parser::parse_x509_certificate(ca_der).map_err(|_| Error::Pem {
            input: CERT.into(),
            reason: "not a valid X.509 certificate".into(),
        })?;
        match x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            _ => {
                return Err(Error::Pem {
                    input: CERT.into(),
                    reason: "not a CA certificate (basicConstraints CA:TRUE missing)".into(),
                });
            }
        }
        let key = KeyPair::from_pem(key_pem).map_err(|_| Error::Pem {
            input: KEY.into(),
            reason: "no usable PKCS#8 PRIVATE KEY block (PKCS#1 and SEC1 keys are not \
                     supported; convert with `openssl pkcs8 -topk8 -nocrypt`)"
                .into(),
        })?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(Error::Pem {
                input: KEY.into(),
                reason: "does not match the public key of the CA certificate".into(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(ca_der, key).map_err(|source| Error::CertGen {
            what: "reading CA certificate".into(),
            source,
        })?;
        Ok(Self {
            cert_pem: certificate_pem(ca_der),
            key_pem: issuer.key().serialize_pem(),
            issuer,
        })
    }
}

/// One DER certificate as a PEM `CERTIFICATE` block (base64 in 64-column lines). Used so
/// `cert_pem()` holds exactly the CA certificate, not a whole bundle, and to rebuild bundles
/// from parsed certificates.
#[must_use]
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A certificate and its private key, PEM. `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKeyPem {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8). Secret.
    pub key_pem: String,
}

impl fmt::Debug for CertKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKeyPem")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<()> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(Error::InvalidParam {
            field: "validity_days".into(),
            reason: format!("must be 1..={MAX_VALIDITY_DAYS}, got {days}"),
        });
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(())
}

/// A leaf (not a CA) for `usage`, signed by a CA that the key identifier names, valid
/// `validity_days` from now.
fn leaf(
    params: &mut CertificateParams,
    usage: ExtendedKeyUsagePurpose,
    validity_days: u32,
) -> Result<()> {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity(params, validity_days)
}

fn gen_key(what: &str) -> Result<KeyPair> {
    KeyPair::generate().map_err(|source| Error::CertGen {
        what: format!("generating {what} key"),
        source,
    })
}

fn common_name_dn(common_name: &str, field: &str) -> Result<DistinguishedName> {
    if common_name.is_empty() {
        return Err(Error::InvalidParam {
            field: field.into(),
            reason: "must not be empty".into(),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

/// Generates a self-signed CA (ECDSA P-256, valid [`CA_VALIDITY_DAYS`], may sign leaf
/// certificates but no intermediate CAs).
///
/// # Errors
///
/// [`Error::InvalidParam`] for an empty `common_name`; [`Error::CertGen`] if key generation
/// or signing fails.
pub fn generate_ca(common_name: &str) -> Result<CertifiedCa> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(common_name, "common_name")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_VALIDITY_DAYS)?;
    let key = gen_key("CA")?;
    let cert = params.self_signed(&key).map_err(|source| Error::CertGen {
        what: "self-signing CA certificate".into(),
        source,
    })?;
    Ok(CertifiedCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(params, key),
    })
}

/// Issues a serving certificate (`serverAuth`) for the given DNS names and IP addresses,
/// signed by `ca`. The subject CN is the first DNS name (or the first IP). The returned
/// `cert_pem` holds the leaf only; clients trust [`CertifiedCa::cert_pem`].
///
/// # Errors
///
/// [`Error::InvalidParam`] when both lists are empty, a DNS name is not a valid IA5 string,
/// or `validity_days` is 0 or over 36500; [`Error::CertGen`] if signing fails.
pub fn issue_serving_cert<S: AsRef<str>>(
    ca: &CertifiedCa,
    dns_names: &[S],
    ip_addrs: &[IpAddr],
    validity_days: u32,
) -> Result<CertKeyPem> {
    if dns_names.is_empty() && ip_addrs.is_empty() {
        return Err(Error::InvalidParam {
            field: "dns_names/ip_addrs".into(),
            reason: "a serving certificate needs at least one DNS name or IP address".into(),
        });
    }
    let mut params = CertificateParams::default();
    let mut sans = Vec::with_capacity(dns_names.len() + ip_addrs.len());
    for (i, name) in dns_names.iter().enumerate() {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(Error::InvalidParam {
                field: format!("dns_names[{i}]"),
                reason: "must not be empty".into(),
            });
        }
        let ia5 = name.try_into().map_err(|_| Error::InvalidParam {
            field: format!("dns_names[{i}]"),
            reason: format!("{name:?} is not a valid DNS name"),
        })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ip_addrs.iter().copied().map(SanType::IpAddress));
    let cn = match (dns_names.first(), ip_addrs.first()) {
        (Some(d), _) => d.as_ref().to_owned(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => String::new(),
    };
    params.distinguished_name = common_name_dn(&cn, "dns_names[0]")?;
    params.subject_alt_names = sans;
    leaf(
        &mut params,
        ExtendedKeyUsagePurpose::ServerAuth,
        validity_days,
    )?;
    sign(ca, &params, "serving certificate")
}

/// Issues a client certificate (`clientAuth`) with subject CN `common_name` and one O per
/// entry of `organizations` (any number) — in Kubernetes terms, the user name and groups. Used as
/// kube-apiserver's front-proxy client identity and for test users.
///
/// # Errors
///
/// [`Error::InvalidParam`] for an empty `common_name` or organization, or `validity_days`
/// 0 or over 36500; [`Error::CertGen`] if signing fails.
pub fn issue_client_cert<S: AsRef<str>>(
    ca: &CertifiedCa,
    common_name: &str,
    organizations: &[S],
    validity_days: u32,
) -> Result<CertKeyPem> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(common_name, "common_name")?;
    let mut orgs = Vec::with_capacity(organizations.len());
    for (i, org) in organizations.iter().enumerate() {
        let org = org.as_ref();
        if org.is_empty() {
            return Err(Error::InvalidParam {
                field: format!("organizations[{i}]"),
                reason: "must not be empty".into(),
            });
        }
        orgs.push(org);
    }
    leaf(
        &mut params,
        ExtendedKeyUsagePurpose::ClientAuth,
        validity_days,
    )?;
    let key = gen_key("client certificate")?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|source| Error::CertGen {
            what: "signing client certificate".into(),
            source,
        })?;
    // rcgen keeps one value per attribute type, but a Kubernetes user may be in several
    // groups (one O each): put the full subject in and re-sign.
    let der = der::replace_subject(cert.der(), &der::name(common_name, &orgs), ca.issuer.key())?;
    Ok(CertKeyPem {
        cert_pem: certificate_pem(&der),
        key_pem: key.serialize_pem(),
    })
}

/// Just enough DER to rewrite a certificate's subject.
mod der {
    use rcgen::{KeyPair, SigningKey as _};

    use crate::error::{Error, Result};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const BIT_STRING: u8 = 0x03;
    const UTF8_STRING: u8 = 0x0c;
    /// OID 2.5.4.3 (commonName), encoded.
    const OID_CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    /// OID 2.5.4.10 (organizationName), encoded.
    const OID_O: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x0a];

    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + 6);
        out.push(tag);
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// Header length and content length of the TLV at the start of `der`.
    pub(super) fn header(der: &[u8]) -> Option<(usize, usize)> {
        let first = *der.get(1)?;
        if first < 0x80 {
            return Some((2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Some((2 + n, len))
    }

    fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
        let mut atv = oid.to_vec();
        atv.extend(tlv(UTF8_STRING, value.as_bytes()));
        tlv(SET, &tlv(SEQUENCE, &atv))
    }

    /// `O=<org>…, CN=<cn>` as a DER Name, one RDN per attribute.
    pub(super) fn name(cn: &str, orgs: &[&str]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for org in orgs {
            rdns.extend(attribute(&OID_O, org));
        }
        rdns.extend(attribute(&OID_CN, cn));
        tlv(SEQUENCE, &rdns)
    }

    fn malformed() -> Error {
        Error::InvalidParam {
            field: "client certificate".into(),
            reason: "internal error: generated certificate has unexpected DER layout".into(),
        }
    }

    /// Returns `cert` with its subject replaced by `name`, re-signed with `key` (the issuer's
    /// key, whose signature algorithm the certificate already names).
    pub(super) fn replace_subject(cert: &[u8], name: &[u8], key: &KeyPair) -> Result<Vec<u8>> {
        let (_, x509) = x509_parser::parse_x509_certificate(cert).map_err(|_| malformed())?;
        let tbs: &[u8] = x509.tbs_certificate.as_ref();
        let subject = x509.subject().as_raw();
        // Offsets from the parser's borrowed slices (all point into `cert`).
        let tbs_start = (tbs.as_ptr() as usize)
            .checked_sub(cert.as_ptr() as usize)
            .ok_or_else(malformed)?;
        let (tbs_hdr, _) = header(tbs).ok_or_else(malformed)?;
        let tbs_content = tbs.get(tbs_hdr..).ok_or_else(malformed)?;
        let subj_start = (subject.as_ptr() as usize)
            .checked_sub(tbs_content.as_ptr() as usize)
            .ok_or_else(malformed)?;
        let subj_end = subj_start + subject.len();
        let mut new_tbs_content = tbs_content
            .get(..subj_start)
            .ok_or_else(malformed)?
            .to_vec();
        new_tbs_content.extend_from_slice(name);
        new_tbs_content.extend_from_slice(tbs_content.get(subj_end..).ok_or_else(malformed)?);
        let new_tbs = tlv(SEQUENCE, &new_tbs_content);

        let after_tbs = cert.get(tbs_start + tbs.len()..).ok_or_else(malformed)?;
        let (alg_hdr, alg_len) = header(after_tbs).ok_or_else(malformed)?;
        let sig_alg = after_tbs.get(..alg_hdr + alg_len).ok_or_else(malformed)?;

        let signature = key.sign(&new_tbs).map_err(|source| Error::CertGen {
            what: "signing client certificate".into(),
            source,
        })?;
        let mut bits = vec![0u8]; // no unused bits
        bits.extend(signature);

        let mut content = new_tbs;
        content.extend_from_slice(sig_alg);
        content.extend(tlv(BIT_STRING, &bits));
        Ok(tlv(SEQUENCE, &content))
    }
}

fn sign(ca: &CertifiedCa, params: &CertificateParams, what: &str) -> Result<CertKeyPem> {
    let key = gen_key(what)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|source| Error::CertGen {
            what: format!("signing {what}"),
            source,
        })?;
    Ok(CertKeyPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;
    use crate::tls::crypto_provider;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn roots(ca: &CertifiedCa) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(der(ca.cert_pem())).unwrap();
        Arc::new(roots)
    }

    fn verify_server(ca: &CertifiedCa, cert_pem: &str, name: &str) -> bool {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), crypto_provider())
            .build()
            .unwrap();
        verifier
            .verify_server_cert(
                &der(cert_pem),
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    fn verify_client(ca: &CertifiedCa, cert_pem: &str) -> bool {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), crypto_provider())
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&der(cert_pem), &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn serving_cert_verifies_for_sans_only() {
        let ca = generate_ca("test-ca").unwrap();
        let ip: IpAddr = "10.96.0.10".parse().unwrap();
        let leaf = issue_serving_cert(&ca, &["svc.ns.svc", "svc.ns.svc.cluster.local"], &[ip], 30)
            .unwrap();
        assert!(verify_server(&ca, &leaf.cert_pem, "svc.ns.svc"));
        assert!(verify_server(
            &ca,
            &leaf.cert_pem,
            "svc.ns.svc.cluster.local"
        ));
        assert!(verify_server(&ca, &leaf.cert_pem, "10.96.0.10"));
        assert!(!verify_server(&ca, &leaf.cert_pem, "other.ns.svc"));
        // serverAuth only.
        assert!(!verify_client(&ca, &leaf.cert_pem));
        let other = generate_ca("other").unwrap();
        assert!(!verify_server(&other, &leaf.cert_pem, "svc.ns.svc"));
    }

    #[test]
    fn client_cert_has_cn_orgs_and_client_auth_only() {
        let ca = generate_ca("client-ca").unwrap();
        let c =
            issue_client_cert(&ca, "alice", &["devs", "ops", "system:authenticated"], 1).unwrap();
        assert!(verify_client(&ca, &c.cert_pem));
        assert!(!verify_server(&ca, &c.cert_pem, "alice"));
        let d = der(&c.cert_pem);
        let (_, x) = x509_parser::parse_x509_certificate(&d).unwrap();
        let cn: Vec<_> = x
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<_> = x
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(o, ["devs", "ops", "system:authenticated"]);

        let no_groups = issue_client_cert(&ca, "bob", &[] as &[&str], 1).unwrap();
        assert!(verify_client(&ca, &no_groups.cert_pem));
    }

    #[test]
    fn validity_is_backdated_and_bounded() {
        let ca = generate_ca("ca").unwrap();
        let leaf = issue_serving_cert(&ca, &["a"], &[], 7).unwrap();
        let d = der(&leaf.cert_pem);
        let (_, x) = x509_parser::parse_x509_certificate(&d).unwrap();
        let now = OffsetDateTime::now_utc();
        let nb = x.validity().not_before.to_datetime();
        let na = x.validity().not_after.to_datetime();
        assert!(nb < now - time::Duration::minutes(59), "{nb}");
        let days = (na - now).whole_hours();
        assert!((7 * 24 - 1..=7 * 24).contains(&days), "{days}");
    }

    #[test]
    fn invalid_params_are_named() {
        let ca = generate_ca("ca").unwrap();
        let e = |r: Result<CertKeyPem>| r.unwrap_err().to_string();
        assert!(e(issue_serving_cert(&ca, &["a"], &[], 0)).starts_with("validity_days:"));
        assert!(
            e(issue_serving_cert(&ca, &[] as &[&str], &[], 1)).starts_with("dns_names/ip_addrs:")
        );
        assert!(e(issue_serving_cert(&ca, &["a", ""], &[], 1)).starts_with("dns_names[1]:"));
        assert!(e(issue_serving_cert(&ca, &["bad\u{e9}"], &[], 1)).starts_with("dns_names[0]:"));
        assert!(e(issue_client_cert(&ca, "", &["g"], 1)).starts_with("common_name:"));
        assert!(e(issue_client_cert(&ca, "u", &["g", ""], 1)).starts_with("organizations[1]:"));
        assert!(
            generate_ca("")
                .unwrap_err()
                .to_string()
                .starts_with("common_name:")
        );
        // IP-only serving cert is fine.
        issue_serving_cert(&ca, &[] as &[&str], &["127.0.0.1".parse().unwrap()], 1).unwrap();
    }

    #[test]
    fn loaded_ca_keeps_signing_for_the_same_trust() {
        let ca = generate_ca("stored-ca").unwrap();
        // As if read back from a Secret, with a second cert appended to the bundle.
        let other = generate_ca("other").unwrap();
        let bundle = format!("{}{}", ca.cert_pem(), other.cert_pem());
        let loaded = CertifiedCa::from_pem(&bundle, ca.key_pem()).unwrap();
        assert_eq!(der(loaded.cert_pem()), der(ca.cert_pem()));
        let leaf = issue_serving_cert(&loaded, &["x.svc"], &[], 1).unwrap();
        assert!(verify_server(&ca, &leaf.cert_pem, "x.svc"));
        let client = issue_client_cert(&loaded, "u", &["g1", "g2"], 1).unwrap();
        assert!(verify_client(&ca, &client.cert_pem));
        assert!(!format!("{loaded:?}").contains("PRIVATE KEY"));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn loading_a_bad_ca_says_which_input() {
        let ca = generate_ca("ca").unwrap();
        let other = generate_ca("other").unwrap();
        let leaf = issue_serving_cert(&ca, &["a"], &[], 1).unwrap();
        let err = |c: &str, k: &str| CertifiedCa::from_pem(c, k).unwrap_err().to_string();

        let e = err(ca.cert_pem(), other.key_pem());
        assert!(e.starts_with("CA private key: does not match"), "{e}");
        let e = err(&leaf.cert_pem, &leaf.key_pem);
        assert!(e.starts_with("CA certificate: not a CA"), "{e}");
        let e = err("nonsense", ca.key_pem());
        assert!(e.starts_with("CA certificate: no CERTIFICATE"), "{e}");
        let e = err(
            ca.cert_pem(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(e.starts_with("CA private key:"), "{e}");
        assert!(!e.contains("AAAA"), "{e}");
    }
}
