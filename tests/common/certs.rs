//! Certificates made at test time with rcgen, written as PEM files into a tempdir: CAs, server
//! and client certificates, an expired one, one not valid yet, and the same key in each format
//! `--key` accepts.
//! Nothing is checked in, so nothing can expire under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
};
use tempfile::TempDir;

/// When the expired server certificate stopped being valid: 2001-02-03T04:05:06Z.
pub const EXPIRED_AT: &str = "2001-02-03T04:05:06Z";

/// When the not-yet-valid server certificate starts being valid: 2999-01-02T03:04:05Z.
pub const VALID_FROM: &str = "2999-01-02T03:04:05Z";

/// A tempdir of PEM files. Mosquitto reads them too (it runs as the same user, or as root).
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir for certificates"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Write `contents` to `name` in the tempdir.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        path
    }

    /// A new self-signed CA, its certificate written to `NAME.pem`.
    pub fn ca(&self, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mqttcli test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        Ca {
            cert: self.write(&format!("{name}.pem"), cert.pem()),
            dir: self.dir.path().to_path_buf(),
            issuer: Issuer::new(params, key),
        }
    }
}

pub struct Ca {
    /// The CA certificate (PEM), for `--cafile` or Mosquitto's `cafile`.
    pub cert: PathBuf,
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    /// PKCS#8 (`BEGIN PRIVATE KEY`).
    pub key: PathBuf,
}

impl Leaf {
    /// The lines that make a Mosquitto listener serve TLS with this certificate.
    pub fn mosquitto_tls(&self) -> String {
        format!(
            "certfile {}\nkeyfile {}\n",
            self.cert.display(),
            self.key.display()
        )
    }

    /// As `mosquitto_tls`, and the listener requires a client certificate signed by
    /// `client_ca`.
    pub fn mosquitto_mtls(&self, client_ca: &Ca) -> String {
        format!(
            "{}cafile {}\nrequire_certificate true\n",
            self.mosquitto_tls(),
            client_ca.cert.display()
        )
    }
}

impl Ca {
    /// A server certificate for `names` (DNS names or IP addresses), valid from 1975 to 4096
    /// (rcgen's defaults), written to `NAME.pem` and `NAME.key`.
    pub fn server(&self, name: &str, names: &[&str]) -> Leaf {
        self.issue(
            name,
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
            false,
        )
    }

    /// A server certificate for localhost and 127.0.0.1 that expired at `EXPIRED_AT`.
    pub fn expired_server(&self, name: &str) -> Leaf {
        let names = ["localhost", "127.0.0.1"];
        self.issue(
            name,
            &names,
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
            true,
        )
    }

    /// A server certificate for localhost and 127.0.0.1 that is not valid before `VALID_FROM`.
    pub fn not_yet_valid_server(&self, name: &str) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mqttcli test {name}"));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before =
            date_time_ymd(2999, 1, 2) + std::time::Duration::from_secs(3 * 3600 + 4 * 60 + 5);
        params.not_after = date_time_ymd(3999, 1, 1);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        let write = |file: String, contents: String| {
            let path = self.dir.join(file);
            std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
            path
        };
        Leaf {
            cert: write(format!("{name}.pem"), cert.pem()),
            key: write(format!("{name}.key"), key.serialize_pem()),
        }
    }

    /// A client certificate (ECDSA P-256 key).
    pub fn client(&self, name: &str) -> Leaf {
        self.issue(name, &[], ExtendedKeyUsagePurpose::ClientAuth, None, false)
    }

    /// A client certificate for the RSA key `key_pkcs8` (PEM).
    pub fn client_rsa(&self, name: &str, key_pkcs8: &str) -> Leaf {
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(key_pkcs8, &PKCS_RSA_SHA256)
            .expect("load the RSA key");
        self.issue(
            name,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            Some(key),
            false,
        )
    }

    fn issue(
        &self,
        name: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        key: Option<KeyPair>,
        expired: bool,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        // IP addresses become IP SANs, the rest DNS SANs.
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mqttcli test {name}"));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after =
                date_time_ymd(2001, 2, 3) + std::time::Duration::from_secs(4 * 3600 + 5 * 60 + 6);
        }
        let key = key.unwrap_or_else(|| KeyPair::generate().expect("leaf key"));
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        let write = |file: String, contents: String| {
            let path = self.dir.join(file);
            std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
            path
        };
        Leaf {
            cert: write(format!("{name}.pem"), cert.pem()),
            key: write(format!("{name}.key"), key.serialize_pem()),
        }
    }
}

/// The `openssl` command line tool (tests that use it carry
/// `#[cfg_attr(no_openssl, ignore = "needs openssl")]`).
#[track_caller]
pub fn openssl() -> PathBuf {
    super::programs::program("openssl")
}

/// Run `openssl ARGS` and return its stdout.
pub fn run_openssl(openssl: &Path, args: &[&str]) -> String {
    let out = Command::new(openssl)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl printed PEM")
}

/// `key` (PKCS#8) in OpenSSL's "traditional" format: PKCS#1 for RSA, SEC1 for EC.
pub fn traditional_key(openssl: &Path, key: &Path) -> String {
    let key = key.to_str().expect("UTF-8 path");
    run_openssl(openssl, &["pkey", "-in", key, "-traditional"])
}

/// A new 2048-bit RSA key, PKCS#8 PEM (ring, and so rcgen here, cannot generate RSA keys).
pub fn rsa_key_pkcs8(openssl: &Path) -> String {
    run_openssl(
        openssl,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
    )
}
