//! The mTLS listener for direct-broker mode (docs/feasibility.md, "Direct mode").
//!
//! The gate terminates TLS itself and requires a client certificate that chains to the site's
//! broker CA bundle (rustls `WebPkiClientVerifier`: signature chain, validity period, the
//! clientAuth extended key usage). The ingress in front passes TLS through untouched, so no
//! header and no ingress setting can vouch for a caller: whoever holds a key the CA certified is
//! the only one who can complete the handshake. A handshake without a certificate, or with one
//! from another CA, fails before any HTTP is read. Which certified clients may query is decided
//! afterwards by the callers config ([`crate::auth::Authenticator::authenticate_certificate`]),
//! so a refused but certified caller gets a 403 and an audit line.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} holds no PEM {kind}: {detail}")]
    Pem {
        what: String,
        kind: &'static str,
        detail: String,
    },
    #[error("the client CA bundle {what} is not usable: {detail}")]
    ClientCa { what: String, detail: String },
    #[error("the server certificate and key do not form a TLS configuration: {0}")]
    Config(String),
}

/// PEM contents of the three inputs: the gate's own certificate chain and key (what a broker
/// verifies) and the CA bundle that certifies brokers.
pub struct TlsMaterial<'a> {
    pub cert_chain: &'a [u8],
    pub key: &'a [u8],
    pub client_ca: &'a [u8],
}

/// Files of the three inputs, as mounted from the site's Secrets.
#[derive(Debug, Clone)]
pub struct TlsFiles<'a> {
    pub cert_chain: &'a Path,
    pub key: &'a Path,
    pub client_ca: &'a Path,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads the three files and builds the acceptor.
pub fn acceptor_from_files(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let (cert_chain, key, client_ca) = (
        read(files.cert_chain)?,
        read(files.key)?,
        read(files.client_ca)?,
    );
    acceptor(
        &TlsMaterial {
            cert_chain: &cert_chain,
            key: &key,
            client_ca: &client_ca,
        },
        &Names {
            cert_chain: &files.cert_chain.display().to_string(),
            key: &files.key.display().to_string(),
            client_ca: &files.client_ca.display().to_string(),
        },
    )
}

/// What to call each input in an error message.
pub struct Names<'a> {
    pub cert_chain: &'a str,
    pub key: &'a str,
    pub client_ca: &'a str,
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            kind: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.into(),
            kind: "certificate",
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The server configuration: TLS 1.2 and 1.3 with ring (the provider is named rather than taken
/// from the process default, which is ambiguous when a dependency enables a second one), a
/// client certificate required and verified against `client_ca`.
pub fn acceptor(material: &TlsMaterial, names: &Names) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates(material.client_ca, names.client_ca)? {
        roots.add(ca).map_err(|e| TlsError::ClientCa {
            what: names.client_ca.into(),
            detail: e.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::ClientCa {
            what: names.client_ca.into(),
            detail: e.to_string(),
        })?;
    let chain = certificates(material.cert_chain, names.cert_chain)?;
    let key = PrivateKeyDer::from_pem_slice(material.key).map_err(|e| TlsError::Pem {
        what: names.key.into(),
        kind: "private key",
        detail: e.to_string(),
    })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
