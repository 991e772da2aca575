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
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::settings::{TlsSettings, TlsVersion};
use crate::exit::{fail, Exit};

fn usage(msg: String) -> anyhow::Error {
    fail(Exit::Usage, msg)
}

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

/// The rustls error somewhere in `err`'s chain. tokio-rustls wraps it in an `io::Error`, whose
/// `source()` skips the wrapped error itself, so look inside each `io::Error` too.
pub fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // An io::Error may wrap another io::Error that wraps the rustls error (rumqttc's v5
        // path does): follow what it wraps, not just its source().
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn date(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("{} seconds after 1970", t.as_secs()),
            |ts| ts.to_string(),
        )
}

/// `DnsName("broker.test")` / `IpAddress(127.0.0.1)`, as rustls-webpki lists a certificate's
/// names, to plain `broker.test` / `127.0.0.1`.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|s| s.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

pub fn handshake_failed(endpoint: &str, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Tls,
        format!("TLS handshake with {endpoint} failed: {why}"),
    )
}

/// The broker answered something that is not TLS (or hung up on our ClientHello).
pub fn not_tls(endpoint: &str, port: u16) -> anyhow::Error {
    handshake_failed(
        endpoint,
        format!("the broker did not answer with TLS: is {port} a plain MQTT port? Drop the TLS options, or use the broker's TLS port (usually 8883)"),
    )
}

/// Words for a rustls failure; `client_cert` says whether we offered one.
pub fn explain(err: &rustls::Error, endpoint: &str, port: u16, client_cert: bool) -> anyhow::Error {
    use rustls::AlertDescription as A;
    let why = match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the broker's certificate is not signed by a trusted CA: pass the broker's CA with --cafile FILE".to_string()
            }
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "the broker's certificate expired at {}: renew it on the broker, or check this machine's clock",
                date(*not_after)
            ),
            CertificateError::Expired => {
                "the broker's certificate has expired: renew it on the broker, or check this machine's clock".to_string()
            }
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "the broker's certificate is not valid before {}: check this machine's clock",
                date(*not_before)
            ),
            CertificateError::NotValidYet => {
                "the broker's certificate is not valid yet: check this machine's clock".to_string()
            }
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "the broker's certificate is not valid for '{}' (it covers: {}): connect with one of those names, or verify another with --tls-server-name NAME",
                expected.to_str(),
                presented.iter().map(|p| plain_name(p)).collect::<Vec<_>>().join(", ")
            ),
            CertificateError::NotValidForName => {
                "the broker's certificate is not valid for this host name: verify another with --tls-server-name NAME".to_string()
            }
            other => format!("the broker's certificate was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            "the broker asks for a client certificate: pass --cert FILE and --key FILE".to_string()
        }
        // TLS 1.2 has no "certificate required" alert: a broker that wants one, and one that
        // shares no cipher or version with us, both just fail the handshake.
        rustls::Error::AlertReceived(A::HandshakeFailure) if !client_cert => {
            "the broker ended the handshake: it may want a client certificate (pass --cert FILE and --key FILE), or share no cipher or TLS version with mqttcli (see --tls-version)".to_string()
        }
        rustls::Error::AlertReceived(A::ProtocolVersion) => {
            "the broker does not accept this TLS version: check --tls-version".to_string()
        }
        rustls::Error::AlertReceived(alert) if client_cert && rejects_certificate(*alert) => format!(
            "the broker rejected the client certificate ({}): check --cert and --key, and that the broker trusts their CA",
            alert_words(*alert)
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return not_tls(endpoint, port)
        }
        rustls::Error::NoApplicationProtocol => {
            "the broker accepts none of the ALPN protocols offered with --alpn".to_string()
        }
        other => other.to_string(),
    };
    handshake_failed(endpoint, why)
}

fn rejects_certificate(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError
            | A::HandshakeFailure
    )
}

fn alert_words(alert: rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::UnknownCA => "it does not trust the certificate's CA",
        A::BadCertificate => "bad certificate",
        A::CertificateExpired => "the certificate has expired",
        A::CertificateRevoked => "the certificate was revoked",
        A::UnsupportedCertificate => "unsupported certificate",
        A::AccessDenied => "access denied",
        A::DecryptError => "the key does not match the certificate",
        _ => "certificate not accepted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_plainly() {
        assert_eq!(plain_name("DnsName(\"broker.test\")"), "broker.test");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(
            date(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                981173106
            ))),
            "2001-02-03T04:05:06Z"
        );
    }

    #[test]
    fn pem_contents_are_described() {
        assert_eq!(describe(&[]), "nothing PEM-encoded");
        let key = (SectionKind::PrivateKey, vec![]);
        let cert = (SectionKind::Certificate, vec![]);
        assert_eq!(describe(&[key.clone(), key]), "a private key");
        assert_eq!(describe(&[cert]), "a certificate");
    }
}
