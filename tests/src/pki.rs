//! A throw-away test PKI built with the `openssl` crate: one CA per [`TestCa`], server and client
//! certificates issued on demand, PEM files written into the CA's temp dir (deleted on drop).
//!
//! Keys are EC P-256 in PKCS#8 PEM (what `reqwest::Identity::from_pkcs8_pem` wants), except
//! [`TestCa::issue_signing`] which gives RSA 2048 for RS256 JWTs. Certificates are valid from one
//! hour ago for 30 days.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use tempfile::TempDir;

/// Organisation (`O=`) values for a client certificate; Kubernetes reads them as groups.
/// Implemented for `&str` (one), `&[&str]`, `[&str; N]`, `Vec<&str>` and `Option<&str>`.
pub trait Organizations {
    /// The `O=` values in order.
    fn organizations(&self) -> Vec<String>;
}

impl Organizations for &str {
    fn organizations(&self) -> Vec<String> {
        if self.is_empty() {
            Vec::new()
        } else {
            vec![(*self).to_owned()]
        }
    }
}
impl Organizations for &[&str] {
    fn organizations(&self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}
impl<const N: usize> Organizations for [&str; N] {
    fn organizations(&self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}
impl<const N: usize> Organizations for &[&str; N] {
    fn organizations(&self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}
impl Organizations for Vec<&str> {
    fn organizations(&self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}
impl Organizations for Option<&str> {
    fn organizations(&self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// A test certificate authority with its files in a temp dir (removed on drop).
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
    cert: X509,
    key: PKey<Private>,
    cert_pem: Vec<u8>,
    cert_path: PathBuf,
    serial: AtomicU32,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("p-256 group");
    PKey::from_ec_key(EcKey::generate(&group).expect("ec key")).expect("pkey")
}

fn pkcs8(key: &PKey<Private>) -> Vec<u8> {
    key.private_key_to_pem_pkcs8().expect("pkcs8 pem")
}

impl TestCa {
    /// Creates a CA (`CN=source-apiserver test CA`) and writes `ca.pem` into a new temp dir.
    ///
    /// # Panics
    /// On OpenSSL or file-system failures (test-only code).
    pub fn new() -> Self {
        Self::with_name("source-apiserver test CA")
    }

    /// Like [`new`](Self::new) with a chosen common name (to tell two CAs apart).
    ///
    /// # Panics
    /// On OpenSSL or file-system failures.
    pub fn with_name(common_name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("test-ca-")
            .tempdir()
            .expect("temp dir");
        let key = ec_key();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial(1)).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now() - 3600).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let cert_pem = cert.to_pem().unwrap();
        let cert_path = dir.path().join("ca.pem");
        std::fs::write(&cert_path, &cert_pem).expect("writing ca.pem");
        TestCa {
            dir,
            cert,
            key,
            cert_pem,
            cert_path,
            serial: AtomicU32::new(2),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// Path of `ca.pem`.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The temp dir holding this CA's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `pem` to `<dir>/<name>` and returns the path.
    ///
    /// # Panics
    /// On write failure.
    pub fn write_pem(&self, name: &str, pem: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses, all put in
    /// subjectAltName; the first is also the CN). Returns `(cert_pem, key_pem)`, key PKCS#8.
    ///
    /// # Panics
    /// On OpenSSL failures or an empty `names`.
    pub fn issue_server(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        assert!(!names.is_empty(), "issue_server needs at least one name");
        let key = ec_key();
        let cert = self.issue(&key, names[0], &[], names, true);
        (cert.to_pem().unwrap(), pkcs8(&key))
    }

    /// [`issue_server`](Self::issue_server), written to `<dir>/<stem>.pem` and `<dir>/<stem>-key.pem`;
    /// returns `(cert_path, key_path)`.
    ///
    /// # Panics
    /// As `issue_server`.
    pub fn issue_server_files(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue_server(names);
        (
            self.write_pem(&format!("{stem}.pem"), &cert),
            self.write_pem(&format!("{stem}-key.pem"), &key),
        )
    }

    /// Issues a client certificate (`extendedKeyUsage=clientAuth`) with `CN=cn` and one `O=` per
    /// organisation (Kubernetes: user name and groups). Returns `(cert_pem, key_pem)`, key PKCS#8.
    ///
    /// # Panics
    /// On OpenSSL failures.
    pub fn issue_client(&self, cn: &str, orgs: impl Organizations) -> (Vec<u8>, Vec<u8>) {
        let key = ec_key();
        let cert = self.issue(&key, cn, &orgs.organizations(), &[], false);
        (cert.to_pem().unwrap(), pkcs8(&key))
    }

    /// [`issue_client`](Self::issue_client), written to `<dir>/<stem>.pem` and
    /// `<dir>/<stem>-key.pem`; returns `(cert_path, key_path)`.
    ///
    /// # Panics
    /// As `issue_client`.
    pub fn issue_client_files(
        &self,
        stem: &str,
        cn: &str,
        orgs: impl Organizations,
    ) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue_client(cn, orgs);
        (
            self.write_pem(&format!("{stem}.pem"), &cert),
            self.write_pem(&format!("{stem}-key.pem"), &key),
        )
    }

    /// Issues a signing certificate with an RSA 2048 key (for RS256 JWTs such as registry
    /// tokens). Returns `(cert_pem, key_pem)`, key PKCS#8.
    ///
    /// # Panics
    /// On OpenSSL failures.
    pub fn issue_signing(&self, cn: &str) -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = self.issue(&key, cn, &[], &[], false);
        (cert.to_pem().unwrap(), pkcs8(&key))
    }

    fn issue(
        &self,
        key: &PKey<Private>,
        cn: &str,
        orgs: &[String],
        sans: &[&str],
        server: bool,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        for o in orgs {
            name.append_entry_by_nid(Nid::ORGANIZATIONNAME, o).unwrap();
        }
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial(self.serial.fetch_add(1, Ordering::Relaxed)))
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now() - 3600).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut eku = ExtendedKeyUsage::new();
        if server {
            eku.server_auth();
        } else {
            eku.client_auth();
        }
        b.append_extension(eku.build().unwrap()).unwrap();
        if !sans.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for s in sans {
                if s.parse::<IpAddr>().is_ok() {
                    san.ip(s);
                } else {
                    san.dns(s);
                }
            }
            let ext = san
                .build(&b.x509v3_context(Some(&self.cert), None))
                .unwrap();
            b.append_extension(ext).unwrap();
        }
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.cert), None))
            .unwrap();
        b.append_extension(aki).unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        b.build()
    }
}

fn serial(n: u32) -> Asn1Integer {
    BigNum::from_u32(n).unwrap().to_asn1_integer().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::X509StoreContext;
    use openssl::x509::store::X509StoreBuilder;

    fn verifies(ca: &TestCa, pem: &[u8]) -> bool {
        let cert = X509::from_pem(pem).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store
            .add_cert(X509::from_pem(ca.cert_pem()).unwrap())
            .unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, &cert, &Stack::new().unwrap(), |c| c.verify_cert())
            .unwrap()
    }

    #[test]
    fn issued_certificates_chain_to_their_ca_only() {
        let ca = TestCa::new();
        let other = TestCa::with_name("other");
        let (server, key) = ca.issue_server(&["localhost", "127.0.0.1"]);
        assert!(verifies(&ca, &server));
        assert!(!verifies(&other, &server));
        assert!(
            String::from_utf8(key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let (client, _) = ca.issue_client("alice", ["devs", "ops"]);
        let cert = X509::from_pem(&client).unwrap();
        let orgs: Vec<_> = cert
            .subject_name()
            .entries_by_nid(Nid::ORGANIZATIONNAME)
            .map(|e| String::from_utf8(e.data().as_slice().to_vec()).unwrap())
            .collect();
        assert_eq!(orgs, ["devs", "ops"]);
        assert!(ca.cert_path().exists());
    }
}
