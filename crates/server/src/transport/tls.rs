//! TLS with zero setup: the server's certificate, and the rustls configurations.
//!
//! With no certificate configured, the server makes a self-signed one on its first
//! start (ECDSA P-256, for the server name, `localhost` and the listen address),
//! keeps it in the data directory (`tls/cert.pem`, and `tls/key.pem` readable by
//! the owner only) and uses it again on every later start, so its fingerprint,
//! which users compare with what their client shows, stays the same. An operator's
//! own certificate (`--tls-cert`/`--tls-key`) is read from its files, and read again
//! when they change or on SIGHUP ([`ServerTls::reload`]) without dropping anyone:
//! the certificate is looked up per handshake ([`Certs`]).
//!
//! Two configurations share that certificate: IRC connections are asked for a
//! client certificate (optional; its fingerprint identifies the user for SASL
//! EXTERNAL, and the handshake signature proves the client holds its key), browser
//! connections (which offer ALPN `http/1.1`) are not, since a browser would ask its
//! user to pick one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use palaver_tls::SignatureChecks;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// The ALPN name browsers offer for HTTP/1.1 (the only HTTP this server speaks).
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";
/// Where the self-signed certificate is kept, inside the data directory.
const SELF_SIGNED_DIR: &str = "tls";

/// A TLS setup that cannot be used, in one sentence naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct TlsError {
    what: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl TlsError {
    fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Made by this server: kept in `dir`, or in memory only (`--ephemeral`).
    SelfSigned { dir: Option<PathBuf> },
    /// The operator's files, read again when they change.
    Files {
        cert: PathBuf,
        key: PathBuf,
        /// Their modification times when last read.
        read_at: Arc<RwLock<(Option<SystemTime>, Option<SystemTime>)>>,
    },
}

/// The server's TLS: its certificate and the configurations handshakes use.
#[derive(Debug)]
pub struct ServerTls {
    certs: Arc<Certs>,
    irc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    source: Source,
    provider: Arc<CryptoProvider>,
}

impl ServerTls {
    /// A new self-signed certificate for `names`, kept in memory only.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        let provider = palaver_tls::server_provider();
        let made = make_self_signed(names)?;
        let certified = certified(
            &provider,
            vec![made.cert],
            made.key,
            "the self-signed certificate",
        )?;
        Self::build(provider, certified, Source::SelfSigned { dir: None })
    }

    /// The self-signed certificate kept in `data_dir`, made for `names` (and saved
    /// there) if there is none yet.
    pub fn self_signed_in(data_dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        let provider = palaver_tls::server_provider();
        let dir = data_dir.join(SELF_SIGNED_DIR);
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        let certified = if cert_path.exists() || key_path.exists() {
            let (certs, key) = read_files(&cert_path, &key_path)?;
            certified(&provider, certs, key, &cert_path.display().to_string())?
        } else {
            let made = make_self_signed(names)?;
            save_self_signed(&dir, &made)?;
            certified(
                &provider,
                vec![made.cert],
                made.key,
                "the self-signed certificate",
            )?
        };
        Self::build(provider, certified, Source::SelfSigned { dir: Some(dir) })
    }

    /// The operator's certificate chain and key (PEM files).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = palaver_tls::server_provider();
        let times = (modified(cert), modified(key));
        let (certs, key_der) = read_files(cert, key)?;
        let certified = certified(&provider, certs, key_der, &cert.display().to_string())?;
        Self::build(
            provider,
            certified,
            Source::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                read_at: Arc::new(RwLock::new(times)),
            },
        )
    }

    fn build(
        provider: Arc<CryptoProvider>,
        certified: CertifiedKey,
        source: Source,
    ) -> Result<Self, TlsError> {
        let certs = Arc::new(Certs {
            current: RwLock::new(Arc::new(certified)),
        });
        let irc = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("cannot configure TLS", e))?
            .with_client_cert_verifier(Arc::new(AnyClientCert {
                checks: SignatureChecks::new(Arc::clone(&provider)),
            }))
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        let mut http = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("cannot configure TLS", e))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        http.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        let (mut irc, mut http) = (irc, http);
        for config in [&mut irc, &mut http] {
            tune_handshake(config);
        }
        Ok(Self {
            certs,
            irc: Arc::new(irc),
            http: Arc::new(http),
            source,
            provider,
        })
    }

    /// The SHA-256 fingerprint of the certificate in use, as people compare it:
    /// uppercase hex pairs separated by colons.
    pub fn fingerprint(&self) -> String {
        let current = self.certs.current();
        current
            .cert
            .first()
            .map(palaver_tls::fingerprint_colon)
            .unwrap_or_default()
    }

    /// Whether the certificate is this server's own (not trusted by anyone's roots):
    /// STS is not offered then, since clients would be locked out.
    pub fn is_self_signed(&self) -> bool {
        matches!(self.source, Source::SelfSigned { .. })
    }

    /// Where the self-signed certificate is kept, if it is kept.
    pub fn self_signed_dir(&self) -> Option<&Path> {
        match &self.source {
            Source::SelfSigned { dir } => dir.as_deref(),
            Source::Files { .. } => None,
        }
    }

    /// Reads the operator's files again if they changed since last read (or
    /// `force`, for SIGHUP); returns whether the certificate was replaced. A file
    /// that cannot be used leaves the current certificate in place.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let Source::Files { cert, key, read_at } = &self.source else {
            return Ok(false);
        };
        let times = (modified(cert), modified(key));
        if !force && *read_at.read().unwrap_or_else(|p| p.into_inner()) == times {
            return Ok(false);
        }
        let (certs, key_der) = read_files(cert, key)?;
        let certified = certified(&self.provider, certs, key_der, &cert.display().to_string())?;
        *self
            .certs
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        *read_at.write().unwrap_or_else(|p| p.into_inner()) = times;
        Ok(true)
    }

    /// The configuration for IRC connections (asked for a client certificate).
    pub(crate) fn irc_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.irc)
    }

    /// The configuration for a handshake whose ClientHello is `hello`: browsers
    /// (ALPN `http/1.1`) are not asked for a certificate.
    pub(crate) fn config_for(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        Arc::clone(if is_browser(hello) {
            &self.http
        } else {
            &self.irc
        })
    }
}

/// Whether the ClientHello is a browser's: it offers ALPN `http/1.1`.
pub(crate) fn is_browser(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut offered| offered.any(|name| name == ALPN_HTTP1))
}

/// Makes a handshake cheaper for the server without weakening it.
///
/// - The cipher suite is the server's choice, AES-128-GCM with SHA-256 first:
///   128-bit security like the key exchange and the certificate's P-256, and its
///   key schedule hashes with SHA-256, which processors accelerate, where the
///   AES-256/SHA-384 suite many clients list first runs SHA-512 in software (a
///   tenth of a TLS registration's CPU, measured with perf).
/// - One TLS 1.3 session ticket per connection instead of rustls's two: an IRC
///   client keeps one connection, and a reconnect needs only one ticket.
fn tune_handshake(config: &mut ServerConfig) {
    config.ignore_client_order = true;
    config.send_tls13_tickets = 1;
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A certificate made by this server, in both forms it is used in.
struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn make_self_signed(names: &[String]) -> Result<SelfSigned, TlsError> {
    let key = rcgen::KeyPair::generate()
        .map_err(|e| TlsError::new("cannot make a key for the self-signed certificate", e))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::new("cannot make the self-signed certificate", e))?;
    let common_name = names.first().map_or("palaver", String::as_str);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "palaver (self-signed)");
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::new("cannot make the self-signed certificate", e))?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::new("cannot encode the self-signed key", e))?;
    Ok(SelfSigned {
        cert: cert.der().clone(),
        key: key_der,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes the self-signed certificate and key as PEM; the key readable by the
/// owner only.
fn save_self_signed(dir: &Path, made: &SelfSigned) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| TlsError::new(format!("cannot create {}", dir.display()), e))?;
    let key_path = dir.join("key.pem");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&key_path)
        .and_then(|mut file| file.write_all(made.key_pem.as_bytes()))
        .map_err(|e| TlsError::new(format!("cannot write {}", key_path.display()), e))?;
    let cert_path = dir.join("cert.pem");
    std::fs::write(&cert_path, &made.cert_pem)
        .map_err(|e| TlsError::new(format!("cannot write {}", cert_path.display()), e))?;
    Ok(())
}

fn read_files(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsError::new(format!("cannot read the certificate {}", cert.display()), e))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            format!("cannot read the certificate {}", cert.display()),
            "the file holds no certificate",
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::new(format!("cannot read the key {}", key.display()), e))?;
    Ok((certs, key_der))
}

fn certified(
    provider: &CryptoProvider,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<CertifiedKey, TlsError> {
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| TlsError::new(format!("cannot use {what} with its key"), e))
}

/// The certificate handshakes present, replaceable while connections run.
#[derive(Debug)]
struct Certs {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certs {
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Asks IRC clients for a certificate, takes any (self-signed is the norm: it
/// identifies a user, it is not vouched for by anyone), and checks the handshake
/// signature, so a client must hold the key of the certificate it shows.
#[derive(Debug)]
struct AnyClientCert {
    checks: SignatureChecks,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.checks.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.checks.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.checks.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_used_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["irc.example".to_owned(), "127.0.0.1".to_owned()];
        let first = ServerTls::self_signed_in(dir.path(), &names).expect("first start");
        let again = ServerTls::self_signed_in(dir.path(), &names).expect("second start");
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        assert!(first.is_self_signed());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = ServerTls::self_signed(&names).expect("in memory");
        assert_ne!(first.fingerprint(), other.fingerprint());
    }

    #[test]
    fn unusable_files_are_one_sentence_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").expect("write");
        std::fs::write(&key, "not a key").expect("write");
        let error = ServerTls::from_files(&cert, &key).expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(&cert.display().to_string()), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn operator_files_are_read_again_when_they_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["irc.example".to_owned()];
        let made = ServerTls::self_signed_in(dir.path(), &names).expect("make a pair");
        let cert = dir.path().join("tls/cert.pem");
        let key = dir.path().join("tls/key.pem");
        let tls = ServerTls::from_files(&cert, &key).expect("load");
        assert_eq!(tls.fingerprint(), made.fingerprint());
        assert!(!tls.is_self_signed());
        assert!(!tls.reload(false).expect("unchanged"));
        // Replace the pair with another one.
        let other = tempfile::tempdir().expect("tempdir");
        let replacement = ServerTls::self_signed_in(other.path(), &names).expect("another pair");
        std::fs::copy(other.path().join("tls/cert.pem"), &cert).expect("copy");
        std::fs::remove_file(&key).expect("remove");
        std::fs::copy(other.path().join("tls/key.pem"), &key).expect("copy");
        assert!(tls.reload(true).expect("reloaded"));
        assert_eq!(tls.fingerprint(), replacement.fingerprint());
    }
}
