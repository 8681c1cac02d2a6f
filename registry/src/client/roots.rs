//! The system trust anchors for verified registry connections, read once per process.
//!
//! Found where OpenSSL finds them, through `openssl-probe`: the bundle named by `SSL_CERT_FILE`,
//! else the distribution's bundle file (`/etc/ssl/certs/ca-certificates.crt` on Debian); only
//! when no bundle file exists, every PEM file of the certificate directory (`SSL_CERT_DIR`, else
//! `/etc/ssl/certs`, `/etc/pki/tls/certs`, ...). The bundle is read and parsed once (rustls's
//! PEM and webpki's trust-anchor parsers, no OpenSSL), on the first verified client of the
//! process, and shared by every later one.
//!
//! Why not native-tls: its OpenSSL connector loads the default verify paths and then the probed
//! bundle again (native-tls 0.2.18 `TlsConnector::new`), two OpenSSL parses of ~140
//! certificates per client, ~115 ms of CPU, most of a small `sourcectl push` (bench/README.md,
//! start-up). Why not `rustls-native-certs`: with both a bundle file and a directory (Debian
//! sets both), it parses the bundle and every file of the directory, each certificate twice.

use std::path::Path;
use std::sync::LazyLock;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The system roots, parsed on first use; empty when none were found or none parsed (each
/// problem logged at `warn`).
static SYSTEM_ROOTS: LazyLock<RootCertStore> = LazyLock::new(|| {
    let mut store = RootCertStore::empty();
    let (_, ignored) = store.add_parsable_certificates(load());
    if ignored > 0 {
        tracing::debug!(
            ignored,
            "system CA certificates webpki cannot use as trust anchors"
        );
    }
    store
});

/// The system trust anchors, as OpenSSL would find them (see the module docs). The first call
/// reads and parses them; later calls return the same store.
pub(crate) fn system_roots() -> &'static RootCertStore {
    &SYSTEM_ROOTS
}

fn load() -> Vec<CertificateDer<'static>> {
    let probe = openssl_probe::probe();
    if let Some(bundle) = probe.cert_file {
        return read_pem(&bundle);
    }
    let mut roots = Vec::new();
    for dir in &probe.cert_dir {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list CA directory");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // The hashed names (`<hash>.0`, made by `c_rehash`) link to the other files: read
            // each certificate once.
            if path.metadata().is_ok_and(|m| m.is_file()) && !is_hashed_name(&path) {
                roots.extend(read_pem(&path));
            }
        }
    }
    roots
}

/// Whether `path` is named as OpenSSL's hashed-directory links are: 8 hex digits, a dot, a
/// number.
fn is_hashed_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split_once('.').is_some_and(|(hash, n)| {
        hash.len() == 8
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The certificates of one PEM file; none (logged) when it cannot be read or parsed.
fn read_pem(path: &Path) -> Vec<CertificateDer<'static>> {
    let parsed = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        });
    match parsed {
        Ok(certs) => certs,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read system CA certificates");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_parses_and_is_shared() {
        let first = system_roots();
        assert!(
            !first.is_empty(),
            "no system CA certificates found: install ca-certificates"
        );
        assert!(std::ptr::eq(first, system_roots()));
    }

    #[test]
    fn hashed_links_are_recognised() {
        assert!(is_hashed_name(Path::new("/etc/ssl/certs/002c0b4f.0")));
        assert!(!is_hashed_name(Path::new(
            "/etc/ssl/certs/ISRG_Root_X1.pem"
        )));
        assert!(!is_hashed_name(Path::new("ca-certificates.crt")));
    }

    #[test]
    fn an_unreadable_file_gives_no_roots() {
        assert!(read_pem(Path::new("/nonexistent/ca.crt")).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(read_pem(&junk).is_empty());
    }
}
