//! TLS for the gateway's own connections to Redis and PostgreSQL (rustls with ring, as the
//! rest of the gateway): the server is verified against a private CA alone, or the public roots
//! compiled in (the image needs no CA bundle). Files are read at start; one that cannot be used
//! is an error naming its config field.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};

/// A client configuration trusting `ca` (a PEM file; `label` names it in errors) or the public
/// roots; `field` names the section in other errors. The caller adds a client certificate, or
/// none.
pub fn client(
    field: &str,
    ca: Option<(&str, &Path)>,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some((label, path)) => {
            let certs = certificates(label, path)?;
            if certs.is_empty() {
                return Err(unusable(label, path, &"it holds no certificate"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| unusable(label, path, &e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{field}: {e}"))?
        .with_root_certificates(roots))
}

/// The certificates of a PEM file.
pub fn certificates(label: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unusable(label, path, &e))
}

/// `label: cannot use <path>: <why>`.
pub fn unusable(label: &str, path: &Path, e: &dyn std::fmt::Display) -> String {
    format!("{label}: cannot use {}: {e}", path.display())
}
