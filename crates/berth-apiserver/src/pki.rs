//! The cluster PKI: a CA, the apiserver's serving certificate and the admin client certificate,
//! kept under DATA_DIR/tls/ (file names follow k3s), plus the rustls server configuration built
//! from them and the admin kubeconfig. Touches only the filesystem under the paths it is given.
//!
//! # Guarantees
//! - First start creates everything; later starts reuse the files. The serving certificate is
//!   re-issued when the requested SAN set is not covered by the existing one, when it expires
//!   within [`RENEW_BEFORE_DAYS`], or when it was not signed by the current CA.
//! - Private key files (and kubeconfigs) are written with mode 0600, atomically (temp + rename).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Leaf certificates (serving, client) are re-issued on start when they expire within this many days.
pub const RENEW_BEFORE_DAYS: i64 = 90;
/// Validity of the CA (10 years, as k3s).
const CA_VALIDITY_DAYS: i64 = 3650;
/// Validity of leaf certificates (1 year, as k3s).
const LEAF_VALIDITY_DAYS: i64 = 365;

/// The admin identity: `system:masters` is allowed everything by the authorizer.
pub const ADMIN_USER: &str = "system:admin";
/// The admin group.
pub const ADMIN_GROUP: &str = "system:masters";

const CA_CERT: &str = "server-ca.crt";
const CA_KEY: &str = "server-ca.key";
const SERVING_CERT: &str = "serving-kube-apiserver.crt";
const SERVING_KEY: &str = "serving-kube-apiserver.key";
const ADMIN_CERT: &str = "client-admin.crt";
const ADMIN_KEY: &str = "client-admin.key";

/// Why the PKI could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failed to create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("failed to generate the {what}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid subject alternative name {san:?}")]
    InvalidSan {
        san: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to build the TLS configuration")]
    Tls(#[source] rustls::Error),
    #[error("failed to build the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct CertKeyPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKeyPem").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// The loaded cluster PKI.
pub struct Pki {
    dir: PathBuf,
    ca: CertKeyPem,
    ca_cn: String,
    serving: CertKeyPem,
    admin: CertKeyPem,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).field("ca_cn", &self.ca_cn).finish_non_exhaustive()
    }
}

/// Creates (first start) or loads (later starts) the PKI under `data_dir/tls`. `sans` are extra
/// subject alternative names for the serving certificate (IP addresses or DNS names).
///
/// # Errors
/// I/O errors naming the file, unparsable existing files, or an invalid SAN.
pub fn ensure_pki(data_dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
    install_crypto_provider();
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|source| PkiError::CreateDir { path: dir.clone(), source })?;

    // The CA: reused when both files exist, else (re)created, which invalidates every leaf.
    let (ca, ca_cn, ca_created) = match (read_opt(&dir.join(CA_CERT))?, read_opt(&dir.join(CA_KEY))?) {
        (Some(cert_pem), Some(key_pem)) => {
            let cn = subject_common_name(&dir.join(CA_CERT), &cert_pem)?;
            (CertKeyPem { cert_pem, key_pem }, cn, false)
        }
        _ => {
            let (ca, cn) = generate_ca()?;
            write_file(&dir.join(CA_CERT), ca.cert_pem.as_bytes(), 0o644)?;
            write_file(&dir.join(CA_KEY), ca.key_pem.as_bytes(), 0o600)?;
            (ca, cn, true)
        }
    };
    let ca_key = KeyPair::from_pem(&ca.key_pem)
        .map_err(|e| PkiError::Parse { path: dir.join(CA_KEY), reason: e.to_string() })?;
    let issuer = Issuer::new(ca_params(&ca_cn, 0), ca_key);
    let ca_der = pem_to_der(&dir.join(CA_CERT), &ca.cert_pem)?;

    let wanted_sans = serving_sans(sans);
    let serving = ensure_leaf(
        &dir,
        SERVING_CERT,
        SERVING_KEY,
        ca_created,
        &ca_der,
        |existing| wanted_sans.is_subset(&existing.sans),
        || {
            let mut params = leaf_params("kube-apiserver", &[], LEAF_VALIDITY_DAYS);
            params.subject_alt_names = wanted_sans.iter().map(|s| to_san(s)).collect::<Result<_, _>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            sign_leaf(&params, &issuer, "serving certificate")
        },
    )?;

    let admin = ensure_leaf(
        &dir,
        ADMIN_CERT,
        ADMIN_KEY,
        ca_created,
        &ca_der,
        |_| true,
        || issue_client(&issuer, ADMIN_USER, &[ADMIN_GROUP.to_string()]),
    )?;

    let server_config = build_server_config(&dir, &ca, &serving)?;
    Ok(Pki { dir, ca, ca_cn, serving, admin, server_config })
}

impl Pki {
    /// The TLS configuration for the apiserver: ALPN h2 and http/1.1; client certificates are
    /// optional but, when presented, must chain to the cluster CA.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The serving certificate and key, PEM.
    pub fn serving(&self) -> &CertKeyPem {
        &self.serving
    }

    /// The admin client certificate (CN `system:admin`, O `system:masters`) and key, PEM.
    pub fn admin(&self) -> &CertKeyPem {
        &self.admin
    }

    /// DATA_DIR/tls.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a new client certificate signed by the cluster CA: CN = `user`, one O per group.
    ///
    /// Note: rcgen keeps one value per attribute type, so only the first group is encoded.
    pub fn issue_client_cert(&self, user: &str, groups: &[String]) -> Result<CertKeyPem, PkiError> {
        let ca_key = KeyPair::from_pem(&self.ca.key_pem)
            .map_err(|e| PkiError::Parse { path: self.dir.join(CA_KEY), reason: e.to_string() })?;
        let issuer = Issuer::new(ca_params(&self.ca_cn, 0), ca_key);
        issue_client(&issuer, user, groups)
    }
}

/// Writes a kubeconfig for `server_url` with the CA embedded; cluster, context and user are all
/// named `default` (as k3s does). `user` `system:admin` (or `admin`) gets the admin certificate;
/// any other name gets a freshly issued client certificate with CN = `user` and no groups.
/// Creates parent directories; the file has mode 0600.
pub fn write_kubeconfig(path: &Path, server_url: &str, pki: &Pki, user: &str) -> Result<(), PkiError> {
    let creds =
        if user == ADMIN_USER || user == "admin" { pki.admin.clone() } else { pki.issue_client_cert(user, &[])? };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // A JSON string is a valid YAML double-quoted scalar, so the URL needs no YAML library.
    let server = serde_json::Value::String(server_url.to_string()).to_string();
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: default\n\
         contexts:\n\
         - context:\n    cluster: default\n    user: default\n  name: default\n\
         current-context: default\n\
         preferences: {{}}\n\
         users:\n\
         - name: default\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64(pki.ca_pem()),
        cert = b64(&creds.cert_pem),
        key = b64(&creds.key_pem),
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PkiError::CreateDir { path: parent.to_path_buf(), source })?;
    }
    write_file(path, text.as_bytes(), 0o600)
}

/// Installs ring as the process-wide rustls provider; a second call (or another provider already
/// installed by the binary) is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The serving certificate's SAN set: the fixed in-cluster names, the host name, and `extra`.
fn serving_sans(extra: &[String]) -> BTreeSet<String> {
    let mut sans: BTreeSet<String> = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.43.0.1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Some(host) = host_name() {
        sans.insert(host);
    }
    sans.extend(extra.iter().map(|s| normalize_san(s)).filter(|s| !s.is_empty()));
    sans
}

/// IP addresses in canonical text form (so `::0001` and `::1` compare equal); names lower-cased.
fn normalize_san(s: &str) -> String {
    let s = s.trim();
    match s.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => s.to_ascii_lowercase(),
    }
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    // A host name that cannot be a DNS SAN is skipped rather than failing the start.
    (!name.is_empty() && name.is_ascii() && !name.contains(char::is_whitespace)).then_some(name)
}

fn to_san(s: &str) -> Result<SanType, PkiError> {
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => s
            .to_string()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|source| PkiError::InvalidSan { san: s.to_string(), source }),
    }
}

/// What the existing leaf certificate says about itself.
struct LeafInfo {
    sans: BTreeSet<String>,
}

/// Reuses the leaf at `cert_name`/`key_name` when it exists, is signed by `ca_der`'s subject,
/// is not about to expire and `acceptable` agrees; otherwise `generate`s and writes a new one.
fn ensure_leaf(
    dir: &Path,
    cert_name: &str,
    key_name: &str,
    ca_created: bool,
    ca_der: &CertificateDer<'static>,
    acceptable: impl Fn(&LeafInfo) -> bool,
    generate: impl FnOnce() -> Result<CertKeyPem, PkiError>,
) -> Result<CertKeyPem, PkiError> {
    let cert_path = dir.join(cert_name);
    let key_path = dir.join(key_name);
    if !ca_created
        && let (Some(cert_pem), Some(key_pem)) = (read_opt(&cert_path)?, read_opt(&key_path)?)
        && let Some(info) = inspect_leaf(&cert_path, &cert_pem, ca_der)?
        && acceptable(&info)
    {
        return Ok(CertKeyPem { cert_pem, key_pem });
    }
    let leaf = generate()?;
    write_file(&key_path, leaf.key_pem.as_bytes(), 0o600)?;
    write_file(&cert_path, leaf.cert_pem.as_bytes(), 0o644)?;
    Ok(leaf)
}

/// `None` when the certificate must be re-issued (wrong issuer, expiring soon).
fn inspect_leaf(path: &Path, cert_pem: &str, ca_der: &CertificateDer<'static>) -> Result<Option<LeafInfo>, PkiError> {
    let der = pem_to_der(path, cert_pem)?;
    let parse_err = |reason: String| PkiError::Parse { path: path.to_path_buf(), reason };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| parse_err(e.to_string()))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| parse_err(e.to_string()))?;
    // The CA subject carries its creation time, so a matching issuer name means this CA.
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Ok(None);
    }
    match cert.validity().time_to_expiration() {
        Some(left) if left.whole_days() >= RENEW_BEFORE_DAYS => {}
        _ => return Ok(None),
    }
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    sans.insert(d.to_ascii_lowercase());
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Some(LeafInfo { sans }))
}

fn subject_common_name(path: &Path, cert_pem: &str) -> Result<String, PkiError> {
    let der = pem_to_der(path, cert_pem)?;
    let parse_err = |reason: String| PkiError::Parse { path: path.to_path_buf(), reason };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| parse_err(e.to_string()))?;
    let cn =
        cert.subject().iter_common_name().next().ok_or_else(|| parse_err("certificate has no common name".into()))?;
    cn.as_str().map(str::to_string).map_err(|e| parse_err(e.to_string()))
}

fn pem_to_der(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Parse { path: path.to_path_buf(), reason: e.to_string() })
}

/// The CA's parameters; `validity_days` 0 is fine when they only describe an [`Issuer`].
fn ca_params(cn: &str, validity_days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    if validity_days > 0 {
        set_validity(&mut params, validity_days);
    }
    params
}

fn generate_ca() -> Result<(CertKeyPem, String), PkiError> {
    let gen_err = |source| PkiError::Generate { what: "cluster CA".into(), source };
    // k3s names its CA `k3s-server-ca@<unix time>`, so a regenerated CA never shares a subject
    // with an old one (clients keep no stale chain around).
    let cn = format!("berth-server-ca@{}", jiff::Timestamp::now().as_second());
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = ca_params(&cn, CA_VALIDITY_DAYS).self_signed(&key).map_err(gen_err)?;
    Ok((CertKeyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() }, cn))
}

fn leaf_params(cn: &str, groups: &[String], days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(group) = groups.first() {
        dn.push(DnType::OrganizationName, group.as_str());
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days);
    params
}

fn issue_client(issuer: &Issuer<'_, KeyPair>, user: &str, groups: &[String]) -> Result<CertKeyPem, PkiError> {
    let mut params = leaf_params(user, groups, LEAF_VALIDITY_DAYS);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(&params, issuer, &format!("client certificate for {user}"))
}

fn sign_leaf(params: &CertificateParams, issuer: &Issuer<'_, KeyPair>, what: &str) -> Result<CertKeyPem, PkiError> {
    let gen_err = |source| PkiError::Generate { what: what.to_string(), source };
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, issuer).map_err(gen_err)?;
    Ok(CertKeyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// From yesterday (clock skew between nodes) to `days` from now, at day granularity.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // jiff dates are always valid calendar dates, so rcgen's helper cannot panic on them.
    let at = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month().unsigned_abs(), d.day().unsigned_abs())
    };
    let from = today.checked_sub(jiff::Span::new().days(1)).unwrap_or(today);
    let to = today.checked_add(jiff::Span::new().days(days)).unwrap_or(today);
    params.not_before = at(from);
    params.not_after = at(to);
}

fn build_server_config(
    dir: &Path,
    ca: &CertKeyPem,
    serving: &CertKeyPem,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem_to_der(&dir.join(CA_CERT), &ca.cert_pem)?).map_err(PkiError::Tls)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(PkiError::Verifier)?;
    let chain = vec![pem_to_der(&dir.join(SERVING_CERT), &serving.cert_pem)?];
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| PkiError::Parse { path: dir.join(SERVING_KEY), reason: e.to_string() })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(PkiError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(PkiError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read { path: path.to_path_buf(), source }),
    }
}

/// Writes `path` atomically (temp file in the same directory, then rename) with `mode`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_err = |source| PkiError::Write { path: path.to_path_buf(), source };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(write_err)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn serving_sans_of(pki: &Pki) -> BTreeSet<String> {
        let der = pem_to_der(Path::new("serving"), &pki.serving().cert_pem).expect("der");
        let ca_der = pem_to_der(Path::new("ca"), pki.ca_pem()).expect("ca der");
        inspect_leaf(Path::new("serving"), &pki.serving().cert_pem, &ca_der)
            .expect("parse")
            .map(|info| info.sans)
            .unwrap_or_else(|| panic!("serving cert not issued by the CA: {}", der.len()))
    }

    #[test]
    fn first_start_creates_ca_serving_and_admin_with_private_keys_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(dir.path(), &["10.0.0.5".into(), "Berth.Example.com".into()]).expect("pki");
        let tls = dir.path().join("tls");
        for key in [CA_KEY, SERVING_KEY, ADMIN_KEY] {
            assert_eq!(mode(&tls.join(key)), 0o600, "{key}");
        }
        for cert in [CA_CERT, SERVING_CERT, ADMIN_CERT] {
            assert!(tls.join(cert).exists(), "{cert}");
        }
        let sans = serving_sans_of(&pki);
        for want in ["127.0.0.1", "::1", "localhost", "kubernetes.default.svc.cluster.local", "10.43.0.1", "10.0.0.5"] {
            assert!(sans.contains(want), "missing {want} in {sans:?}");
        }
        assert!(sans.contains("berth.example.com"), "{sans:?}");
        let admin_der = pem_to_der(Path::new("admin"), &pki.admin().cert_pem).expect("der");
        assert_eq!(
            crate::tls::user_from_cert(&admin_der),
            Some(crate::authn::UserInfo::new(ADMIN_USER, [ADMIN_GROUP]))
        );
    }

    #[test]
    fn later_start_reuses_everything_and_reissues_serving_cert_only_when_sans_grow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure_pki(dir.path(), &["10.0.0.5".into()]).expect("first");
        let second = ensure_pki(dir.path(), &["10.0.0.5".into()]).expect("second");
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.serving().cert_pem, second.serving().cert_pem);
        assert_eq!(first.admin().cert_pem, second.admin().cert_pem);
        // A subset of the existing SANs is still covered.
        let third = ensure_pki(dir.path(), &[]).expect("third");
        assert_eq!(first.serving().cert_pem, third.serving().cert_pem);

        let grown = ensure_pki(dir.path(), &["10.0.0.5".into(), "api.example.com".into()]).expect("grown");
        assert_eq!(first.ca_pem(), grown.ca_pem(), "the CA survives");
        assert_eq!(first.admin().cert_pem, grown.admin().cert_pem);
        assert_ne!(first.serving().cert_pem, grown.serving().cert_pem, "serving cert re-issued");
        let sans = serving_sans_of(&grown);
        assert!(sans.contains("api.example.com") && sans.contains("10.0.0.5"), "{sans:?}");
    }

    #[test]
    fn losing_the_ca_reissues_all_leaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure_pki(dir.path(), &[]).expect("first");
        std::fs::remove_file(dir.path().join("tls").join(CA_KEY)).expect("rm");
        let second = ensure_pki(dir.path(), &[]).expect("second");
        assert_ne!(first.ca_pem(), second.ca_pem());
        assert_ne!(first.serving().cert_pem, second.serving().cert_pem);
        assert_ne!(first.admin().cert_pem, second.admin().cert_pem);
        assert!(serving_sans_of(&second).contains("localhost"));
    }

    #[test]
    fn corrupt_ca_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        ensure_pki(dir.path(), &[]).expect("first");
        std::fs::write(dir.path().join("tls").join(CA_CERT), "garbage").expect("write");
        let err = ensure_pki(dir.path(), &[]).expect_err("corrupt");
        assert!(err.to_string().contains(CA_CERT), "{err}");
    }

    #[test]
    fn invalid_san_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ensure_pki(dir.path(), &["bad name\u{e9}".into()]).expect_err("invalid");
        assert!(matches!(err, PkiError::InvalidSan { .. }), "{err:?}");
    }

    #[test]
    fn kubeconfig_embeds_ca_and_admin_credentials_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(dir.path(), &[]).expect("pki");
        let path = dir.path().join("nested").join("kubeconfig.yaml");
        write_kubeconfig(&path, "https://127.0.0.1:6443", &pki, ADMIN_USER).expect("write");
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        assert!(text.contains(&format!("certificate-authority-data: {}", b64(pki.ca_pem()))));
        assert!(text.contains(&format!("client-certificate-data: {}", b64(&pki.admin().cert_pem))));
        assert!(text.contains(&format!("client-key-data: {}", b64(&pki.admin().key_pem))));
        assert!(text.contains("server: \"https://127.0.0.1:6443\""));
        assert!(text.contains("current-context: default"));
    }

    #[test]
    fn kubeconfig_is_readable_by_kube_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(dir.path(), &[]).expect("pki");
        let path = dir.path().join("kubeconfig.yaml");
        write_kubeconfig(&path, "https://127.0.0.1:6443", &pki, "alice").expect("write");
        let config = kube::config::Kubeconfig::read_from(&path).expect("kube parses it");
        assert_eq!(config.current_context.as_deref(), Some("default"));
        let cluster = config.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        let auth = config.auth_infos[0].auth_info.as_ref().expect("user");
        assert!(auth.client_certificate_data.is_some() && auth.client_key_data.is_some());
        // A non-admin user gets its own certificate, not the admin's.
        let cert_pem = base64::engine::general_purpose::STANDARD
            .decode(auth.client_certificate_data.as_deref().expect("data"))
            .expect("b64");
        let der = CertificateDer::from_pem_slice(&cert_pem).expect("der");
        assert_eq!(crate::tls::user_from_cert(&der), Some(crate::authn::UserInfo::new("alice", Vec::<String>::new())));
    }
}
