//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), for SASL.
//!
//! Written here rather than taken from a SASL framework because the server needs only
//! this one exchange, on the stored verifier it keeps beside the argon2 hash, and the
//! exchange is small enough to read in one sitting. What it does not do: channel
//! binding (`-PLUS`; the client's `p=` flag is refused, `y` and `n` accepted) and
//! SASLprep of the user name and password (names follow nick rules, which are ASCII;
//! a password is used as its UTF-8 bytes on both sides, so it works as long as the
//! client does not normalise it differently, which the common clients do not).
//!
//! The exchange, as a state machine with two steps driven by the SASL handler:
//! [`ClientFirst::parse`] the client's first message; [`Exchange::start`] with the
//! account's verifier, which yields the server-first message; [`Exchange::finish`] on
//! the client's final message, which checks the proof and yields the server-final
//! message (`v=<signature>`) or an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use palaver_store::ScramVerifier;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// HMAC-SHA-256, the `HMAC` of RFC 5802 with SHA-256 as `H` (RFC 7677).
type HmacSha256 = Hmac<Sha256>;

/// The PBKDF2 iterations for new verifiers: RFC 7677's minimum.
pub(crate) const ITERATIONS: u32 = 4096;

/// Why an exchange failed. Each maps to `904 ERR_SASLFAIL`; the distinction is for
/// logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramError {
    /// The message does not follow the grammar of RFC 5802 §7.
    Malformed,
    /// The client asked for channel binding (`p=`), which we do not offer.
    ChannelBinding,
    /// An authorisation identity other than the user itself.
    Authzid,
    /// The nonce in the final message is not the one we sent.
    Nonce,
    /// The proof is wrong: wrong password, or no such account.
    Proof,
}

/// The client-first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// The GS2 header (`n,,` or `y,,`, with an authzid if any), echoed in `c=`.
    gs2_header: String,
    /// The message without its GS2 header, part of the AuthMessage.
    bare: String,
    /// The user name, unescaped (`=2C` → `,`, `=3D` → `=`).
    pub(crate) user: String,
    /// The client's nonce.
    nonce: String,
}

impl ClientFirst {
    /// Parses `gs2-header client-first-message-bare` (RFC 5802 §7).
    pub(crate) fn parse(message: &str) -> Result<Self, ScramError> {
        let mut parts = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ScramError::Malformed);
        };
        match flag {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        }
        let authzid = match authzid {
            "" => None,
            a => Some(unescape(
                a.strip_prefix("a=").ok_or(ScramError::Malformed)?,
            )?),
        };
        // `m=` (mandatory extensions) must fail: we know none.
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(ScramError::Malformed)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(ScramError::Malformed)?;
        let user = unescape(user)?;
        if user.is_empty() {
            return Err(ScramError::Malformed);
        }
        if authzid.is_some_and(|a| a != user) {
            return Err(ScramError::Authzid);
        }
        Ok(Self {
            gs2_header: format!(
                "{flag},{authzid},",
                authzid = message.split(',').nth(1).unwrap_or("")
            ),
            bare: bare.to_owned(),
            user,
            nonce: nonce.to_owned(),
        })
    }
}

/// An exchange waiting for the client's final message.
pub(crate) struct Exchange {
    /// `client-first-message-bare "," server-first-message`: the start of the
    /// AuthMessage.
    first_messages: String,
    /// The GS2 header the final message's `c=` must carry.
    gs2_header: String,
    /// Client nonce followed by ours.
    nonce: String,
    /// The account's `StoredKey`: checks the client's proof.
    stored_key: Vec<u8>,
    /// The account's `ServerKey`: signs our final message.
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Exchange {
    /// The keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts an exchange for `first` on `verifier`, adding `server_nonce` (printable,
    /// no comma) to the client's nonce. Returns the exchange and the server-first
    /// message to send.
    pub(crate) fn start(
        first: &ClientFirst,
        verifier: &ScramVerifier,
        server_nonce: &str,
    ) -> (Self, String) {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&verifier.salt),
            verifier.iterations
        );
        let exchange = Self {
            first_messages: format!("{},{server_first}", first.bare),
            gs2_header: first.gs2_header.clone(),
            nonce,
            stored_key: verifier.stored_key.clone(),
            server_key: verifier.server_key.clone(),
        };
        (exchange, server_first)
    }

    /// Checks the client-final message; returns the server-final message
    /// (`v=<server signature>`) if the proof is right.
    pub(crate) fn finish(&self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed)?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed)?;
        let binding = BASE64.decode(binding).map_err(|_| ScramError::Malformed)?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        if nonce != self.nonce {
            return Err(ScramError::Nonce);
        }
        let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed)?;
        let auth_message = format!("{},{without_proof}", self.first_messages);
        let signature = hmac(&self.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::Proof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored_key = Sha256::digest(&client_key);
        if !bool::from(stored_key.as_slice().ct_eq(&self.stored_key)) {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac(&self.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// The verifier for `password` with `salt` and `iterations` (RFC 5802 §3). Slow on
/// purpose (PBKDF2): compute it off the world lock.
pub(crate) fn verifier(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    ScramVerifier {
        salt: salt.to_vec(),
        iterations,
        stored_key: Sha256::digest(client_key).to_vec(),
        server_key: hmac(&salted, b"Server Key"),
    }
}

/// A stand-in verifier for a name that has no account, so that the exchange runs to
/// its end (and fails there) like one with a wrong password. Its salt is derived from
/// the name and a per-process secret, so asking twice shows the same salt, as a real
/// account would.
pub(crate) fn decoy(secret: &[u8], name: &str) -> ScramVerifier {
    let salt = hmac(secret, name.as_bytes());
    ScramVerifier {
        salt: salt[..16].to_vec(),
        iterations: ITERATIONS,
        stored_key: hmac(secret, b"no account: stored key"),
        server_key: hmac(secret, b"no account: server key"),
    }
}

/// `HMAC(key, data)` as bytes.
fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Undoes the `saslname` escaping: `=2C` is `,` and `=3D` is `=`; any other `=` is
/// an error (RFC 5802 §5.1).
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).ok_or(ScramError::Malformed)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(ScramError::Malformed),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.contains(',') {
        return Err(ScramError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    /// The verifier RFC 7677's server holds for "user".
    fn rfc_verifier() -> ScramVerifier {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        verifier("pencil", &salt, 4096)
    }

    #[test]
    fn the_rfc_7677_exchange_succeeds() {
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        assert_eq!(first.user, "user");
        let (exchange, server_first) = Exchange::start(&first, &rfc_verifier(), SERVER_NONCE);
        assert_eq!(server_first, SERVER_FIRST);
        assert_eq!(exchange.finish(CLIENT_FINAL), Ok(SERVER_FINAL.to_owned()));
    }

    #[test]
    fn a_wrong_password_or_nonce_fails() {
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let (exchange, _) =
            Exchange::start(&first, &verifier("pencils", &salt, 4096), SERVER_NONCE);
        assert_eq!(exchange.finish(CLIENT_FINAL), Err(ScramError::Proof));
        let (exchange, _) = Exchange::start(&first, &rfc_verifier(), "other");
        assert_eq!(exchange.finish(CLIENT_FINAL), Err(ScramError::Nonce));
        let (exchange, _) = Exchange::start(&first, &decoy(b"secret", "user"), SERVER_NONCE);
        assert_eq!(exchange.finish(CLIENT_FINAL), Err(ScramError::Proof));
        let (exchange, _) = Exchange::start(&first, &rfc_verifier(), SERVER_NONCE);
        let tampered = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(exchange.finish(&tampered), Err(ScramError::ChannelBinding));
        assert_eq!(exchange.finish("c=biws"), Err(ScramError::Malformed));
        assert_eq!(
            exchange.finish(&CLIENT_FINAL.replace("p=dHz", "p=!!")),
            Err(ScramError::Malformed)
        );
    }

    #[test]
    fn client_first_messages_are_checked() {
        assert_eq!(
            ClientFirst::parse("p=tls-unique,,n=user,r=abc"),
            Err(ScramError::ChannelBinding)
        );
        assert_eq!(ClientFirst::parse("n,,n=user"), Err(ScramError::Malformed));
        assert_eq!(ClientFirst::parse("garbage"), Err(ScramError::Malformed));
        assert_eq!(
            ClientFirst::parse("n,a=other,n=user,r=abc"),
            Err(ScramError::Authzid)
        );
        assert_eq!(
            ClientFirst::parse("n,,n=a=3Db=2Cc,r=abc"),
            Err(ScramError::Malformed)
        );
        let first = ClientFirst::parse("y,a=user,n=user,r=abc").expect("authzid = user");
        assert_eq!(first.gs2_header, "y,a=user,");
        assert_eq!(
            ClientFirst::parse("n,,n=a=3Db,r=abc").map(|f| f.user),
            Ok("a=b".to_owned())
        );
        assert_eq!(
            ClientFirst::parse("n,,n=a=4Fb,r=abc"),
            Err(ScramError::Malformed)
        );
    }

    #[test]
    fn decoys_are_stable_per_name() {
        assert_eq!(decoy(b"k", "alice"), decoy(b"k", "alice"));
        assert_ne!(decoy(b"k", "alice").salt, decoy(b"k", "bob").salt);
    }
}
