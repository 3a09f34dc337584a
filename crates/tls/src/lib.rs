//! The rustls code the server, the client, `chat-bench` and the tests share, kept
//! in one place instead of a copy in each crate.
//!
//! - [`SignatureChecks`]: the handshake signature checks on the `ring` provider,
//!   which every certificate verifier of ours delegates to, whatever it decides
//!   about the certificate itself. Accepting a certificate never skips them: a
//!   peer must hold the key of the certificate it shows.
//! - [`AnyServerCert`]: a server-certificate verifier that accepts any certificate
//!   (the load generator and the tests talk to self-signed servers), optionally
//!   recording its fingerprint.
//! - Fingerprints of a certificate (SHA-256 of its DER) in the two forms palaver
//!   uses: [`fingerprint_colon`] (uppercase hex pairs joined by `:`, what
//!   `chat-server` prints and `chat-client` shows and pins) and [`certfp`]
//!   (lowercase hex without separators, what WHOIS shows and the store keeps for
//!   SASL EXTERNAL).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// The crypto provider palaver uses everywhere: rustls's `ring` one (a C compiler
/// is all it needs to build).
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// ring's suites in the order a server should prefer them: the SHA-256 suites
/// (whose key schedule processors accelerate) before AES-256-GCM-SHA384, whose
/// SHA-384 runs in software. Used with `ServerConfig::ignore_client_order`.
pub fn server_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        suite.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
            || suite.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            || suite.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    });
    Arc::new(provider)
}

/// The TLS 1.2 and 1.3 handshake signature checks of a crypto provider: what a
/// verifier's `verify_tls12_signature`, `verify_tls13_signature` and
/// `supported_verify_schemes` delegate to.
#[derive(Debug, Clone)]
pub struct SignatureChecks {
    provider: Arc<CryptoProvider>,
}

impl SignatureChecks {
    /// The checks of `provider`'s signature algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }

    /// The checks of the `ring` provider ([`ring_provider`]).
    pub fn ring() -> Self {
        Self::new(ring_provider())
    }

    /// The provider whose algorithms are used.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Checks a TLS 1.2 handshake signature made with `cert`'s key.
    pub fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    /// Checks a TLS 1.3 handshake signature made with `cert`'s key.
    pub fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    /// The signature schemes these checks support.
    pub fn supported_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts every server certificate, and checks the handshake signatures made
/// with it, so the server does all the work of a real handshake. Optionally
/// records the SHA-256 fingerprint ([`fingerprint_colon`]) of the end-entity
/// certificate it was shown.
#[derive(Debug, Clone)]
pub struct AnyServerCert {
    checks: SignatureChecks,
    seen: Option<Arc<Mutex<Option<String>>>>,
}

impl AnyServerCert {
    /// Accepts any certificate, checking signatures with `provider`.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self {
            checks: SignatureChecks::new(provider),
            seen: None,
        }
    }

    /// As [`AnyServerCert::new`], and each certificate accepted has its
    /// fingerprint ([`fingerprint_colon`]) written to `seen`.
    pub fn recording(provider: Arc<CryptoProvider>, seen: Arc<Mutex<Option<String>>>) -> Self {
        Self {
            checks: SignatureChecks::new(provider),
            seen: Some(seen),
        }
    }
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(seen) = &self.seen {
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint_colon(end_entity));
        }
        Ok(ServerCertVerified::assertion())
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

/// The SHA-256 fingerprint of a DER certificate as people compare it (what
/// `chat-server` prints and `chat-client` shows and pins): uppercase hex pairs
/// joined by colons.
pub fn fingerprint_colon(der: impl AsRef<[u8]>) -> String {
    let digest = Sha256::digest(der.as_ref());
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The SHA-256 fingerprint of a DER certificate as WHOIS shows it and accounts
/// store it (SASL EXTERNAL): lowercase hex without separators.
pub fn certfp(der: impl AsRef<[u8]>) -> String {
    let digest = Sha256::digest(der.as_ref());
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of `abc` (FIPS 180-2's example), standing in for a certificate's DER.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn certfp_is_lowercase_hex_without_separators() {
        assert_eq!(certfp(b"abc"), ABC);
        assert_eq!(certfp(CertificateDer::from(b"abc".to_vec())), ABC);
    }

    #[test]
    fn fingerprint_colon_is_uppercase_pairs_joined_by_colons() {
        let fp = fingerprint_colon(b"abc");
        assert_eq!(
            fp,
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(fp.replace(':', "").to_ascii_lowercase(), certfp(b"abc"));
    }

    #[test]
    fn any_server_cert_accepts_and_records_the_fingerprint() {
        let seen = Arc::new(Mutex::new(None));
        let verifier = AnyServerCert::recording(ring_provider(), Arc::clone(&seen));
        let cert = CertificateDer::from(b"abc".to_vec());
        let name = ServerName::try_from("localhost").expect("server name");
        verifier
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .expect("accepted");
        let recorded = seen.lock().expect("lock").clone();
        assert_eq!(recorded, Some(fingerprint_colon(b"abc")));
        // Without a recorder it accepts all the same.
        AnyServerCert::new(ring_provider())
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .expect("accepted");
    }

    #[test]
    fn the_server_prefers_aes_128_with_sha_256() {
        let provider = server_provider();
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites.first(),
            Some(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        let aes_256 = suites
            .iter()
            .position(|s| *s == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
            .expect("AES-256 offered");
        let chacha = suites
            .iter()
            .position(|s| *s == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
            .expect("ChaCha20 offered");
        assert!(chacha < aes_256, "{suites:?}");
    }

    #[test]
    fn signature_checks_offer_the_providers_schemes() {
        let checks = SignatureChecks::ring();
        let schemes = checks.supported_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(schemes.contains(&SignatureScheme::ED25519));
        assert_eq!(
            AnyServerCert::new(Arc::clone(checks.provider())).supported_verify_schemes(),
            schemes
        );
    }
}
