//! TLS: the rustls client configuration from `--cafile/--cert/--key/...`, and handshake
//! failures put into words. PEM files are read with rustls-pki-types' parser (rustls-pemfile,
//! which rumqttc still pulls in, is archived).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::settings::{TlsSettings, TlsVersion};
use crate::exit::{fail, usage, Exit};

/// Every PEM section in `path`, or a usage error naming the flag and the file.
fn read_pem(path: &Path, flag: &str) -> Result<Vec<(SectionKind, Vec<u8>)>> {
    let bytes = std::fs::read(path)
        .map_err(|e| usage(format!("cannot read {flag} {}: {e}", path.display())))?;
    let mut reader = std::io::Cursor::new(bytes);
    let mut sections = Vec::new();
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => return Ok(sections),
            Err(e) => {
                return Err(usage(format!(
                    "{flag} {} is not valid PEM: {e:?}",
                    path.display()
                )))
            }
        }
    }
}

fn describe(sections: &[(SectionKind, Vec<u8>)]) -> String {
    if sections.is_empty() {
        return "nothing PEM-encoded".to_string();
    }
    let mut kinds: Vec<&str> = sections
        .iter()
        .map(|(kind, _)| match kind {
            SectionKind::Certificate => "a certificate",
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                "a private key"
            }
            SectionKind::PublicKey => "a public key",
            SectionKind::Crl => "a certificate revocation list",
            SectionKind::Csr => "a certificate request",
            _ => "another PEM section",
        })
        .collect();
    kinds.dedup();
    kinds.join(", ")
}

fn certificates(path: &Path, flag: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let sections = read_pem(path, flag)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certs.is_empty() {
        return Err(usage(format!(
            "{flag} {} holds no PEM certificate (found: {}): pass the {what}",
            path.display(),
            describe(&sections)
        )));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let sections = read_pem(path, "--key")?;
    sections
        .iter()
        .find_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.clone().into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.clone().into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.clone().into())),
            _ => None,
        })
        .ok_or_else(|| {
            usage(format!(
                "--key {} holds no private key (found: {}): pass the client's key (PKCS#8, PKCS#1 or SEC1 PEM)",
                path.display(),
                describe(&sections)
            ))
        })
}

fn os_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("skipping part of the OS certificate store: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "loaded the OS certificate store");
    roots
}

pub fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match s.min_version {
        Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| fail(Exit::Other, format!("cannot set up TLS: {e}")))?;

    let verifier: Arc<dyn ServerCertVerifier> = if s.insecure {
        tracing::warn!(
            "--insecure: the broker's certificate is not verified, so anyone on the network path can read and change this connection"
        );
        Arc::new(NoVerification(provider.clone()))
    } else {
        let roots = match &s.cafile {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(path, "--cafile", "CA's certificate")? {
                    roots.add(cert).map_err(|e| {
                        usage(format!(
                            "--cafile {} holds a certificate rustls cannot use: {e}",
                            path.display()
                        ))
                    })?;
                }
                roots
            }
            None => os_roots(),
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| {
                usage(format!(
                    "no CA certificates to trust ({e}): pass the broker's CA with --cafile FILE"
                ))
            })?;
        match &s.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    usage(format!(
                        "--tls-server-name '{name}' is not a DNS name or IP address"
                    ))
                })?;
                Arc::new(VerifyAs {
                    inner: webpki,
                    name,
                })
            }
            None => webpki,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &s.identity {
        Some((cert, key_path)) => {
            let chain = certificates(cert, "--cert", "client's certificate")?;
            let key = private_key(key_path)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                usage(format!(
                    "cannot use --cert {} with --key {}: {e}",
                    cert.display(),
                    key_path.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = s.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// `--insecure`: accepts any certificate, but still checks the handshake signatures, so the
/// peer must at least hold the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `--tls-server-name`: full verification, against another name than the one dialled.
/// (rumqttc derives SNI from the host it dials; only the verified name changes.)
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_contents_are_described() {
        assert_eq!(describe(&[]), "nothing PEM-encoded");
        let key = (SectionKind::PrivateKey, vec![]);
        let cert = (SectionKind::Certificate, vec![]);
        assert_eq!(describe(&[key.clone(), key]), "a private key");
        assert_eq!(describe(&[cert]), "a certificate");
    }
}
