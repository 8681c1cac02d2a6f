//! Standalone bootstrap: the CA, the serving certificate, the admin client certificate and the
//! kubeconfig under `<data-dir>`, created on first start and reused afterwards.
//!
//! Files (PEM; keys mode 0600): `pki/ca.{crt,key}`, `pki/serving.{crt,key}`,
//! `pki/admin.{crt,key}`; and `kubeconfig` (mode 0600). The serving certificate is reissued when
//! it lacks a requested SAN or expires within 30 days; the CA is never replaced once made, so
//! kubeconfigs handed out keep working.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

/// The user name of the generated admin client certificate.
pub const ADMIN_USER: &str = "source-apiserver-admin";
/// The group of the generated admin client certificate: always allowed.
pub const MASTERS_GROUP: &str = "system:masters";

/// A failure creating or reading the bootstrap files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{operation} {path}")]
    File {
        /// What was being done (`reading`, `writing`).
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// OpenSSL refused an operation (key generation, signing, parsing PEM).
    #[error("{operation}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        source: openssl::error::ErrorStack,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn crypto(operation: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> Error {
    move |source| Error::Crypto { operation, source }
}

/// PEM files of one certificate and its key.
#[derive(Clone, Debug)]
pub struct CertPaths {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// What the bootstrap made or found.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// The CA certificate (PEM) that signs the serving and the admin certificates.
    pub ca_cert: PathBuf,
    /// The serving certificate.
    pub serving: CertPaths,
    /// The admin client certificate (`O=system:masters`).
    pub admin: CertPaths,
}

/// Creates (or reuses) the CA, the serving certificate with `localhost`, `127.0.0.1`, `::1` and
/// every entry of `extra_sans`, and the admin client certificate, under `<data_dir>/pki`.
///
/// # Errors
/// [`Error::File`] when the directory or a file cannot be read or written; [`Error::Crypto`] when
/// an existing file is not valid PEM or OpenSSL fails.
pub fn ensure(data_dir: &Path, extra_sans: &[String]) -> Result<Bootstrap> {
    let dir = data_dir.join("pki");
    fs::create_dir_all(&dir).map_err(|source| Error::File {
        operation: "creating",
        path: dir.clone(),
        source,
    })?;
    let ca = CertPaths {
        cert: dir.join("ca.crt"),
        key: dir.join("ca.key"),
    };
    let (ca_cert, ca_key) = if ca.cert.exists() && ca.key.exists() {
        load(&ca)?
    } else {
        let key = new_key()?;
        let cert = build_cert(&key, "source-apiserver-ca", None, Profile::Ca, None)?;
        save(&ca, &cert, &key)?;
        (cert, key)
    };

    let mut sans: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for san in extra_sans {
        if !sans.contains(san) {
            sans.push(san.clone());
        }
    }
    let serving = CertPaths {
        cert: dir.join("serving.crt"),
        key: dir.join("serving.key"),
    };
    let reuse = serving.cert.exists()
        && serving.key.exists()
        && load(&serving).is_ok_and(|(cert, _)| covers(&cert, &sans) && !expires_soon(&cert));
    if !reuse {
        let key = new_key()?;
        let cert = build_cert(
            &key,
            "source-apiserver",
            None,
            Profile::Server(&sans),
            Some((&ca_cert, &ca_key)),
        )?;
        save(&serving, &cert, &key)?;
    }

    let admin = CertPaths {
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
    };
    if !(admin.cert.exists() && admin.key.exists()) {
        let (cert, key) = issue_client(&ca_cert, &ca_key, ADMIN_USER, &[MASTERS_GROUP])?;
        save(&admin, &cert, &key)?;
    }
    Ok(Bootstrap {
        ca_cert: ca.cert,
        serving,
        admin,
    })
}

/// Issues a client certificate signed by the CA in `<data_dir>/pki` (user = CN, groups = O).
/// Used by tests and by operators who want more users than the admin.
///
/// # Errors
/// As [`ensure`]; the CA must exist.
pub fn issue_client_pem(
    data_dir: &Path,
    user: &str,
    groups: &[&str],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = data_dir.join("pki");
    let (ca_cert, ca_key) = load(&CertPaths {
        cert: dir.join("ca.crt"),
        key: dir.join("ca.key"),
    })?;
    let (cert, key) = issue_client(&ca_cert, &ca_key, user, groups)?;
    Ok((
        cert.to_pem().map_err(crypto("encoding a certificate"))?,
        key.private_key_to_pem_pkcs8()
            .map_err(crypto("encoding a key"))?,
    ))
}

fn issue_client(
    ca_cert: &X509,
    ca_key: &PKey<Private>,
    user: &str,
    groups: &[&str],
) -> Result<(X509, PKey<Private>)> {
    let key = new_key()?;
    let cert = build_cert(
        &key,
        user,
        Some(groups),
        Profile::Client,
        Some((ca_cert, ca_key)),
    )?;
    Ok((cert, key))
}

/// Writes `<data_dir>/kubeconfig` (mode 0600) with the CA, the admin certificate embedded and
/// `server` pointing at `addr` (an unspecified address becomes loopback).
///
/// # Errors
/// [`Error::File`] when a PEM file cannot be read or the kubeconfig cannot be written.
pub fn write_kubeconfig(
    data_dir: &Path,
    bootstrap: &Bootstrap,
    addr: SocketAddr,
) -> Result<PathBuf> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| Error::File {
            operation: "reading",
            path: path.to_owned(),
            source,
        })
    };
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let server = format!("https://{host}:{}", addr.port());
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: source-apiserver\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {ADMIN_USER}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: source-apiserver\n  context:\n    cluster: source-apiserver\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: source-apiserver\n",
        ca = b64(read(&bootstrap.ca_cert)?),
        cert = b64(read(&bootstrap.admin.cert)?),
        key = b64(read(&bootstrap.admin.key)?),
    );
    let path = data_dir.join("kubeconfig");
    write_private(&path, kubeconfig.as_bytes())?;
    Ok(path)
}

enum Profile<'a> {
    Ca,
    Server(&'a [String]),
    Client,
}

fn new_key() -> Result<PKey<Private>> {
    let group =
        EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto("choosing a curve"))?;
    let ec = EcKey::generate(&group).map_err(crypto("generating a key"))?;
    PKey::from_ec_key(ec).map_err(crypto("generating a key"))
}

fn build_cert(
    key: &PKey<Private>,
    common_name: &str,
    organizations: Option<&[&str]>,
    profile: Profile<'_>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> Result<X509> {
    let err = crypto("building a certificate");
    let mut name = X509NameBuilder::new().map_err(crypto("building a name"))?;
    for org in organizations.unwrap_or_default() {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, org)
            .map_err(crypto("building a name"))?;
    }
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(crypto("building a name"))?;
    let name = name.build();
    let mut builder = X509::builder().map_err(crypto("building a certificate"))?;
    let mut serial = BigNum::new().map_err(crypto("making a serial"))?;
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(crypto("making a serial"))?;
    let serial = Asn1Integer::from_bn(&serial).map_err(crypto("making a serial"))?;
    let days = match profile {
        Profile::Ca => 3650,
        _ => 365,
    };
    (|| {
        builder.set_version(2)?;
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(issuer.map_or(&*name, |(ca, _)| ca.subject_name()))?;
        builder.set_pubkey(key)?;
        builder.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        builder.set_not_after(&*Asn1Time::days_from_now(days)?)?;
        match profile {
            Profile::Ca => {
                builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
                builder.append_extension(
                    KeyUsage::new()
                        .critical()
                        .key_cert_sign()
                        .crl_sign()
                        .digital_signature()
                        .build()?,
                )?;
            }
            Profile::Server(sans) => {
                builder.append_extension(BasicConstraints::new().critical().build()?)?;
                builder
                    .append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
                builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
                let mut san = SubjectAlternativeName::new();
                for entry in sans {
                    if entry.parse::<IpAddr>().is_ok() {
                        san.ip(entry);
                    } else {
                        san.dns(entry);
                    }
                }
                let ext = san.build(&builder.x509v3_context(issuer.map(|(ca, _)| &**ca), None))?;
                builder.append_extension(ext)?;
            }
            Profile::Client => {
                builder.append_extension(BasicConstraints::new().critical().build()?)?;
                builder
                    .append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
                builder.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
            }
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(issuer.map(|(ca, _)| &**ca), None))?;
        builder.append_extension(ski)?;
        if issuer.is_some() {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&builder.x509v3_context(issuer.map(|(ca, _)| &**ca), None))?;
            builder.append_extension(aki)?;
        }
        builder.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())?;
        Ok(())
    })()
    .map_err(err)?;
    Ok(builder.build())
}

fn covers(cert: &X509, sans: &[String]) -> bool {
    let Some(names) = cert.subject_alt_names() else {
        return false;
    };
    sans.iter().all(|want| {
        names.iter().any(|name| {
            name.dnsname().is_some_and(|d| d == want)
                || name.ipaddress().is_some_and(|raw| {
                    let ip = match raw.len() {
                        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
                        _ => None,
                    };
                    ip.is_some_and(|ip| Some(ip) == want.parse::<IpAddr>().ok())
                })
        })
    })
}

fn expires_soon(cert: &X509) -> bool {
    Asn1Time::days_from_now(30).map_or(true, |limit| cert.not_after() < limit)
}

fn load(paths: &CertPaths) -> Result<(X509, PKey<Private>)> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| Error::File {
            operation: "reading",
            path: path.to_owned(),
            source,
        })
    };
    let cert = X509::from_pem(&read(&paths.cert)?).map_err(crypto("parsing a certificate"))?;
    let key = PKey::private_key_from_pem(&read(&paths.key)?).map_err(crypto("parsing a key"))?;
    Ok((cert, key))
}

fn save(paths: &CertPaths, cert: &X509, key: &PKey<Private>) -> Result<()> {
    let key_pem = key
        .private_key_to_pem_pkcs8()
        .map_err(crypto("encoding a key"))?;
    let cert_pem = cert.to_pem().map_err(crypto("encoding a certificate"))?;
    write_private(&paths.key, &key_pem)?;
    write_private(&paths.cert, &cert_pem)
}

/// Writes a file readable by the owner only, through a temporary file and a rename so that a
/// crash never leaves a half-written key.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |operation, source| Error::File {
        operation,
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("writing", e))?;
    file.write_all(bytes).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("writing", e))?;
    fs::rename(&tmp, path).map_err(|e| io("writing", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bootstrap_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &[]).unwrap();
        let ca_before = fs::read(&first.ca_cert).unwrap();
        let serving_before = fs::read(&first.serving.cert).unwrap();
        let second = ensure(dir.path(), &[]).unwrap();
        assert_eq!(ca_before, fs::read(&second.ca_cert).unwrap());
        assert_eq!(serving_before, fs::read(&second.serving.cert).unwrap());
        let mode = fs::metadata(&first.admin.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_san_reissues_the_serving_certificate_but_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &[]).unwrap();
        let ca = fs::read(&first.ca_cert).unwrap();
        let second = ensure(dir.path(), &["api.example.com".into(), "10.1.2.3".into()]).unwrap();
        assert_eq!(ca, fs::read(&second.ca_cert).unwrap());
        let cert = X509::from_pem(&fs::read(&second.serving.cert).unwrap()).unwrap();
        assert!(covers(
            &cert,
            &[
                "localhost".into(),
                "::1".into(),
                "api.example.com".into(),
                "10.1.2.3".into()
            ]
        ));
        assert!(!covers(&cert, &["other.example.com".into()]));
    }

    #[test]
    fn certificates_chain_to_the_ca_and_carry_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let b = ensure(dir.path(), &[]).unwrap();
        let ca = X509::from_pem(&fs::read(&b.ca_cert).unwrap()).unwrap();
        let admin = X509::from_pem(&fs::read(&b.admin.cert).unwrap()).unwrap();
        assert!(admin.verify(&ca.public_key().unwrap()).unwrap());
        let org: Vec<_> = admin
            .subject_name()
            .entries_by_nid(Nid::ORGANIZATIONNAME)
            .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            .collect();
        assert_eq!(org, vec![MASTERS_GROUP]);
    }

    #[test]
    fn kubeconfig_is_private_and_points_at_loopback_for_a_wildcard_listen() {
        let dir = tempfile::tempdir().unwrap();
        let b = ensure(dir.path(), &[]).unwrap();
        let path = write_kubeconfig(dir.path(), &b, "0.0.0.0:8443".parse().unwrap()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("server: https://127.0.0.1:8443"), "{text}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
