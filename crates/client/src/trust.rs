//! TLS and trust on first use: which server certificates the client accepts,
//! and the known-servers file where accepted fingerprints are pinned.
//!
//! Decisions, in the order a certificate is judged ([`TofuVerifier`]):
//! 1. A certificate valid for the host name by the operating system's trust
//!    (`rustls-platform-verifier`: the OS verifier on macOS, Windows and
//!    Android, the system root store with webpki elsewhere) is accepted without
//!    asking, and *not* pinned: such certificates are renewed every few months,
//!    and a pin would turn each renewal into a scary refusal. The platform
//!    verifier was chosen over `webpki-roots` (a root list compiled in, aging
//!    with the binary) so that what the user's system trusts, company roots
//!    included, is what the client trusts.
//! 2. Otherwise (a self-signed certificate, as `chat-server` makes on first
//!    start) the SHA-256 fingerprint of the end-entity certificate must equal
//!    the pin for `host:port` in the known-servers file. Handshake signatures are
//!    still verified, so only the holder of the pinned certificate's key passes.
//! 3. No pin: the handshake fails with [`TlsFailure::Unknown`] carrying the
//!    fingerprint; the front end asks the user and connects again with the
//!    accepted pin (the simplest correct flow: nothing is sent before the user
//!    said yes).
//!
//! A pin is changed only by editing the file: a different certificate is refused
//! ([`TlsFailure::Mismatch`], naming the file and line), and a pinned server that
//! stops speaking TLS is never used in plain text ([`TlsFailure::NotTls`] with a
//! pin).

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palaver_tls::SignatureChecks;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

/// The SHA-256 fingerprint of a DER certificate as `chat-server` prints it:
/// uppercase hex pairs joined by colons (the canonical form pins are kept in).
pub use palaver_tls::fingerprint_colon as fingerprint;

/// A fingerprint as typed (any case, with or without colons or spaces) in the
/// canonical form, or `None` if it is not 32 bytes of hex.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let hex = hex.strip_prefix("SHA256").unwrap_or(&hex);
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let pairs: Vec<&str> = (0..32).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

/// The key a server is known by: `host:port`, the host in lowercase and an IPv6
/// address in brackets.
pub fn server_key(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where the known-servers file is by default: `$XDG_CONFIG_HOME/palaver/known_servers`,
/// else `~/.config/palaver/known_servers` (`$HOME`), and on Windows
/// `%APPDATA%\palaver\known_servers`. Computed from the environment: the `dirs`
/// crate is not in the lock file, and this is all of it we would use.
pub fn default_known_servers() -> Option<PathBuf> {
    known_servers_in(|name| std::env::var_os(name), cfg!(windows))
}

/// [`default_known_servers`] with the environment given (`windows` for
/// `%APPDATA%`), so the rules are tested without changing the process's.
fn known_servers_in(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    windows: bool,
) -> Option<PathBuf> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let base = if let Some(xdg) = env("XDG_CONFIG_HOME") {
        PathBuf::from(xdg)
    } else if windows {
        PathBuf::from(env("APPDATA")?)
    } else {
        PathBuf::from(env("HOME")?).join(".config")
    };
    Some(base.join("palaver").join("known_servers"))
}

/// One pin: a server's key, its fingerprint, and where the pin is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pinned fingerprint (canonical form).
    pub fingerprint: String,
    /// The known-servers file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: usize,
}

/// The known-servers file: one `host:port FINGERPRINT` per line, like ssh's
/// `known_hosts`. Blank lines and lines starting with `#` are kept as they are.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    lines: Vec<String>,
}

/// A known-servers file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnownServersError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A line is not `host:port FINGERPRINT`. Refused rather than skipped: a pin
    /// silently dropped would let a different certificate through with a prompt.
    #[error("{}, line {line}: expected `host:port SHA-256-FINGERPRINT`, found {text:?}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number (1-based).
        line: usize,
        /// The line.
        text: String,
    },
}

impl KnownServers {
    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, KnownServersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownServersError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(path, &text)
    }

    /// Parses the file's text (`path` is for messages and later writes).
    pub fn parse(path: &Path, text: &str) -> Result<Self, KnownServersError> {
        let known = Self {
            path: path.to_owned(),
            lines: text.lines().map(str::to_owned).collect(),
        };
        for (index, line) in known.lines.iter().enumerate() {
            if entry(line).is_none_or(|(_, fp)| fp.is_none()) && !is_comment(line) {
                return Err(KnownServersError::Malformed {
                    path: path.to_owned(),
                    line: index + 1,
                    text: line.clone(),
                });
            }
        }
        Ok(known)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pin for `key` (see [`server_key`]), if any.
    pub fn find(&self, key: &str) -> Option<Pin> {
        self.lines.iter().enumerate().find_map(|(index, line)| {
            let (k, fp) = entry(line)?;
            (k == key).then(|| Pin {
                fingerprint: fp.unwrap_or_default(),
                file: self.path.clone(),
                line: index + 1,
            })
        })
    }

    /// Pins `fingerprint` for `key` (appending a line; an existing pin for `key` is
    /// never replaced here, only by editing the file) and writes the file
    /// atomically: a temporary file in the same directory, renamed over it. The
    /// directory is created if missing.
    pub fn pin(&mut self, key: &str, fingerprint: &str) -> Result<Pin, KnownServersError> {
        if let Some(pin) = self.find(key) {
            return Ok(pin);
        }
        self.lines.push(format!("{key} {fingerprint}"));
        self.save()?;
        Ok(Pin {
            fingerprint: fingerprint.to_owned(),
            file: self.path.clone(),
            line: self.lines.len(),
        })
    }

    fn save(&self) -> Result<(), KnownServersError> {
        let io_error = |source| KnownServersError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        let name = self.path.file_name().map_or_else(
            || "known_servers".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut text = self.lines.join("\n");
        text.push('\n');
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io_error)
    }
}

fn is_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// `(key, fingerprint)` of an entry line; the fingerprint is `None` when it is not
/// one. `None` for comments and blank lines.
fn entry(line: &str) -> Option<(String, Option<String>)> {
    if is_comment(line) {
        return None;
    }
    let mut fields = line.split_whitespace();
    let key = fields.next()?.to_ascii_lowercase();
    let fingerprint = match (fields.next(), fields.next()) {
        (Some(fp), None) => normalize_fingerprint(fp),
        _ => None,
    };
    Some((key, fingerprint))
}

/// A client certificate presented to the server (`--tls-cert`, `--tls-key`), for
/// SASL EXTERNAL.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert {}: no PEM certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
        Ok(Self { chain, key })
    }
}

/// How the connection is secured; chosen once (possibly after asking) and used
/// for every connection and reconnection, so a reconnect never asks again and
/// checks the same pin.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// Plain TCP (`--plain`, or the user agreed after the server did not speak TLS).
    /// The library's default, so embedding code and its tests opt in to TLS;
    /// `chat-client`'s command line defaults to TLS.
    #[default]
    Plain,
    /// TLS, trusting what [`TlsPolicy`] says.
    Tls(TlsPolicy),
}

/// What a TLS connection trusts and presents.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    /// The fingerprint pinned for this server, if any.
    pub pin: Option<Pin>,
    /// The operating system's verifier, if it could be set up.
    pub system: Option<Arc<dyn ServerCertVerifier>>,
    /// The client certificate, if any.
    pub identity: Option<Arc<Identity>>,
}

/// The platform verifier on the ring provider, or why there is none (on Linux, no
/// CA certificates found on the system); without it only pins are trusted.
pub fn system_verifier() -> Result<Arc<dyn ServerCertVerifier>, String> {
    rustls_platform_verifier::Verifier::new(palaver_tls::ring_provider())
        .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
        .map_err(|e| e.to_string())
}

/// Why a TLS connection was not made.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// No pin, and the system does not vouch for the certificate: the user decides.
    #[error(
        "the server {server} presented a certificate that is not trusted yet (SHA-256 fingerprint {fingerprint})"
    )]
    Unknown {
        /// `host:port`.
        server: String,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The certificate differs from the pin.
    #[error(
        "the server {server} presented a certificate with SHA-256 fingerprint\n  {presented}\nbut {file} (line {line}) pins\n  {pinned}\n\
         Someone may be intercepting the connection, or the server has a new certificate. \
         Not connecting. If you know the change is genuine, edit or delete line {line} of {file} and connect again.",
        file = pin.file.display(),
        line = pin.line,
        pinned = pin.fingerprint
    )]
    Mismatch {
        /// `host:port`.
        server: String,
        /// What the server presented.
        presented: String,
        /// What is pinned.
        pin: Pin,
    },
    /// The server did not answer in TLS (it answered plain IRC, closed, or said
    /// nothing in time).
    #[error("{}", not_tls(server, reason, pin.as_ref()))]
    NotTls {
        /// `host:port`.
        server: String,
        /// What happened, in words.
        reason: String,
        /// The pin, if the server has one: then plain text is refused.
        pin: Option<Pin>,
    },
    /// Any other handshake failure (the system verifier's verdict included).
    #[error("TLS with {server} failed: {reason}")]
    Other {
        /// `host:port`.
        server: String,
        /// What happened.
        reason: String,
    },
}

fn not_tls(server: &str, reason: &str, pin: Option<&Pin>) -> String {
    match pin {
        None => format!("the server {server} does not speak TLS ({reason})"),
        Some(pin) => format!(
            "the server {server} did not complete a TLS handshake ({reason}), but it is pinned in {} (line {}); \
             a pinned server is never used in plain text. If it really dropped TLS, delete line {} of {} and use --plain.",
            pin.file.display(),
            pin.line,
            pin.line,
            pin.file.display()
        ),
    }
}

/// What the verifier saw during one handshake.
#[derive(Debug, Default)]
struct Seen {
    fingerprint: Option<String>,
    /// The certificate was judged and refused (by pin or for want of one).
    refused: bool,
    /// The system verifier's reason for not vouching, when it did not.
    system_said: Option<String>,
}

/// The verifier of [`TlsPolicy`]: the system's verdict first, then the pin.
#[derive(Debug)]
struct TofuVerifier {
    system: Option<Arc<dyn ServerCertVerifier>>,
    pin: Option<String>,
    checks: SignatureChecks,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for TofuVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.fingerprint = Some(presented.clone());
        if let Some(system) = &self.system {
            match system.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(verified) => return Ok(verified),
                Err(error) => seen.system_said = Some(error.to_string()),
            }
        }
        if self.pin.as_deref() == Some(presented.as_str()) {
            return Ok(ServerCertVerified::assertion());
        }
        seen.refused = true;
        Err(rustls::Error::General(
            "certificate neither trusted by the system nor pinned".into(),
        ))
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

/// The TLS stream the client talks over.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Runs the TLS handshake on `tcp` for `host:port` under `policy`, within
/// `limit`.
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    port: u16,
    policy: &TlsPolicy,
    limit: Duration,
) -> Result<TlsStream, TlsFailure> {
    let server = server_key(host, port);
    let other = |reason: String| TlsFailure::Other {
        server: server.clone(),
        reason,
    };
    let provider = palaver_tls::ring_provider();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = TofuVerifier {
        system: policy.system.clone(),
        pin: policy.pin.as_ref().map(|p| p.fingerprint.clone()),
        checks: SignatureChecks::new(Arc::clone(&provider)),
        seen: Arc::clone(&seen),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| other(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match &policy.identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| other(format!("the client certificate cannot be used: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| other(format!("{host:?} is not a host name")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = tokio::time::timeout(limit, connector.connect(name, tcp)).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let error = match result {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(error)) => error,
        Err(_) => {
            return Err(match seen.fingerprint {
                Some(_) => other("the handshake timed out".into()),
                None => TlsFailure::NotTls {
                    server,
                    reason: format!("no TLS answer within {}s", limit.as_secs()),
                    pin: policy.pin.clone(),
                },
            });
        }
    };
    if let Some(said) = &seen.system_said {
        tracing::info!("{server}: the system does not vouch for the certificate: {said}");
    }
    if let (Some(presented), true) = (seen.fingerprint, seen.refused) {
        return Err(match &policy.pin {
            Some(pin) => TlsFailure::Mismatch {
                server,
                presented,
                pin: pin.clone(),
            },
            None => TlsFailure::Unknown {
                server,
                fingerprint: presented,
            },
        });
    }
    if let Some(reason) = not_tls_reason(&error) {
        return Err(TlsFailure::NotTls {
            server,
            reason,
            pin: policy.pin.clone(),
        });
    }
    Err(other(error.to_string()))
}

/// Whether a handshake error means the server does not speak TLS: it closed
/// or reset the connection, or sent something that is not a TLS record.
fn not_tls_reason(error: &io::Error) -> Option<String> {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => return Some("it closed the connection".into()),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            return Some("it reset the connection".into());
        }
        _ => {}
    }
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidMessage(_) => {
            Some("it answered with something other than TLS".into())
        }
        _ => None,
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, line {})",
            self.fingerprint,
            self.file.display(),
            self.line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    const FP_B: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    #[test]
    fn fingerprints_are_formatted_as_the_server_prints_them() {
        let fp = fingerprint(b"certificate");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.split(':').all(|p| {
            p.len() == 2
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        }));
        assert_eq!(normalize_fingerprint(&fp).as_deref(), Some(fp.as_str()));
        let typed = fp.replace(':', "").to_ascii_lowercase();
        assert_eq!(normalize_fingerprint(&typed).as_deref(), Some(fp.as_str()));
        assert_eq!(normalize_fingerprint("AB:CD"), None);
        assert_eq!(normalize_fingerprint(&"ZZ".repeat(32)), None);
    }

    #[test]
    fn server_keys_are_lowercase_with_ipv6_in_brackets() {
        assert_eq!(
            server_key("Chat.Example.NET", 6697),
            "chat.example.net:6697"
        );
        assert_eq!(server_key("127.0.0.1", 6667), "127.0.0.1:6667");
        assert_eq!(server_key("::1", 6667), "[::1]:6667");
    }

    #[test]
    fn known_servers_are_parsed_with_their_line_numbers() {
        let text = format!(
            "# pinned servers\n\nchat.example.net:6697 {FP_A}\n127.0.0.1:6667 {}\n",
            FP_B.replace(':', "").to_ascii_lowercase()
        );
        let known = KnownServers::parse(Path::new("/k"), &text).expect("parses");
        let pin = known.find("chat.example.net:6697").expect("pinned");
        assert_eq!((pin.fingerprint.as_str(), pin.line), (FP_A, 3));
        assert_eq!(pin.file, Path::new("/k"));
        let pin = known.find("127.0.0.1:6667").expect("pinned");
        assert_eq!((pin.fingerprint.as_str(), pin.line), (FP_B, 4));
        assert_eq!(known.find("127.0.0.1:6697"), None);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it() {
        for bad in ["host:1", "host:1 nothex", &format!("host:1 {FP_A} extra")] {
            let text = format!("ok:1 {FP_A}\n{bad}\n");
            match KnownServers::parse(Path::new("/k"), &text) {
                Err(KnownServersError::Malformed { line, .. }) => assert_eq!(line, 2, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn pins_are_written_atomically_with_parent_directories_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir
            .path()
            .join("deep")
            .join("palaver")
            .join("known_servers");
        let mut known = KnownServers::load(&path).expect("missing file is empty");
        assert_eq!(known.find("a:1"), None);
        let pin = known.pin("a:1", FP_A).expect("written");
        assert_eq!((pin.line, pin.file.as_path()), (1, path.as_path()));
        known.pin("b:2", FP_B).expect("written");
        // An existing pin is never replaced by pinning again.
        assert_eq!(known.pin("a:1", FP_B).expect("kept").fingerprint, FP_A);
        let text = std::fs::read_to_string(&path).expect("file");
        assert_eq!(text, format!("a:1 {FP_A}\nb:2 {FP_B}\n"));
        let again = KnownServers::load(&path).expect("reads back");
        assert_eq!(again.find("b:2").map(|p| p.line), Some(2));
        // Only the file is left: the temporary was renamed over it.
        let entries: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(entries, ["known_servers"]);
    }

    #[test]
    fn comments_survive_a_rewrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("known_servers");
        std::fs::write(&path, format!("# mine\na:1 {FP_A}\n")).expect("write");
        let mut known = KnownServers::load(&path).expect("reads");
        known.pin("b:2", FP_B).expect("written");
        let text = std::fs::read_to_string(&path).expect("file");
        assert_eq!(text, format!("# mine\na:1 {FP_A}\nb:2 {FP_B}\n"));
    }

    #[test]
    fn the_default_file_follows_xdg_then_home_or_appdata() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = &[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h"), ("APPDATA", "/a")];
        let under = |base: &str| Some(Path::new(base).join("palaver").join("known_servers"));
        assert_eq!(known_servers_in(env(all), false), under("/x"));
        assert_eq!(known_servers_in(env(all), true), under("/x"));
        let no_xdg = &[("XDG_CONFIG_HOME", ""), ("HOME", "/h"), ("APPDATA", "/a")];
        assert_eq!(known_servers_in(env(no_xdg), false), under("/h/.config"));
        assert_eq!(known_servers_in(env(no_xdg), true), under("/a"));
        assert_eq!(known_servers_in(env(&[]), false), None);
    }
}
