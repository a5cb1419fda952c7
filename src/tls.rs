//! TLS for the HTTP side: a rustls server config from a PEM certificate
//! chain and private key, with the `ring` provider (pure Rust and assembly,
//! no cmake or C++ toolchain to build), TLS 1.2 and 1.3 only.
//!
//! `check` and every (re)load go through [`server_config`], so a certificate
//! that `check` accepts is one the daemon can serve, key and certificate
//! matching included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which of the two files a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    pub file: TlsFile,
    pub message: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads and checks the certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1, unencrypted).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |message: String| TlsError {
        file: TlsFile::Cert,
        message,
    };
    let key_err = |message: String| TlsError {
        file: TlsFile::Key,
        message,
    };
    let cert_pem = std::fs::read(cert)
        .map_err(|e| cert_err(format!("cannot read {}: {e}", cert.display())))?;
    let key_pem =
        std::fs::read(key).map_err(|e| key_err(format!("cannot read {}: {e}", key.display())))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("{}: bad PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_err(format!(
            "{}: no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        key_err(format!(
            "{}: no usable private key ({e}; expected an unencrypted PEM PKCS#8, RSA or EC key)",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            key_err(format!(
                "{} does not go with {}: {e}",
                key.display(),
                cert.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn loads_a_matching_pair_and_names_the_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let cert = write("cert.pem", &cert);
        let key = write("key.pem", &key);
        let other_key = write("other.pem", &other_key);
        let garbage = write("garbage.pem", "not a PEM file\n");
        let missing = dir.path().join("missing.pem");

        assert!(server_config(&cert, &key).is_ok());
        let e = server_config(&cert, &other_key).expect_err("mismatch");
        assert_eq!(e.file, TlsFile::Key, "{e}");
        let e = server_config(&garbage, &key).expect_err("garbage cert");
        assert_eq!(e.file, TlsFile::Cert, "{e}");
        assert!(e.message.contains("no certificate"), "{e}");
        let e = server_config(&cert, &garbage).expect_err("garbage key");
        assert_eq!(e.file, TlsFile::Key, "{e}");
        let e = server_config(&missing, &key).expect_err("missing cert");
        assert_eq!(e.file, TlsFile::Cert, "{e}");
        assert!(e.message.contains("cannot read"), "{e}");
        // The key where the certificate belongs.
        let e = server_config(&key, &cert).expect_err("swapped");
        assert_eq!(e.file, TlsFile::Cert, "{e}");
    }
}
