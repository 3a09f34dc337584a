//! SASL login during registration (IRCv3 `sasl` 3.1/3.2): SCRAM-SHA-256
//! (RFC 5802, RFC 7677) where the server offers it, else PLAIN.
//!
//! SCRAM is preferred because the password never crosses the connection (which
//! is plain TCP today) and the server has to prove it knows the password's
//! verifier too. PLAIN is the fallback every server has. The mechanisms are
//! pure functions of the server's messages (no I/O), so the exchange is tested
//! with the RFC 7677 example.
//!
//! The password lives in a [`Secret`], which never prints itself; the
//! connection logs `AUTHENTICATE` lines without their payload.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Largest piece of base64 in one `AUTHENTICATE` line (sasl-3.1).
pub const CHUNK: usize = 400;

/// Fewest PBKDF2 iterations we accept: RFC 7677's minimum. Fewer would let
/// whoever answers as the server test passwords against our proof cheaply.
const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations we run (about a second unoptimised), so a server
/// cannot stall the client.
const MAX_ITERATIONS: u32 = 600_000;

/// A string that does not show itself in `Debug` output (logs, panics).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The account to log in to (`--account`).
#[derive(Debug, Clone)]
pub struct Account {
    /// The account name.
    pub name: String,
    /// Its password.
    pub password: Secret,
    /// Use only this mechanism (`--sasl-mechanism`); `None`: the best offered.
    pub mechanism: Option<Mechanism>,
}

/// A SASL mechanism we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 7677.
    ScramSha256,
    /// RFC 4616.
    Plain,
    /// RFC 4422 appendix A: the TLS client certificate (`--tls-cert`) is the
    /// credential; used only when asked for (`--sasl-mechanism EXTERNAL`), since
    /// it needs a certificate the account accepts.
    External,
}

impl Mechanism {
    /// Every mechanism, in order of preference. EXTERNAL comes last: it is chosen
    /// only when the others are ruled out (`--sasl-mechanism EXTERNAL`).
    pub const ALL: [Self; 3] = [Self::ScramSha256, Self::Plain, Self::External];

    /// The name in `AUTHENTICATE` and in the `sasl=` capability value.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
            Self::External => "EXTERNAL",
        }
    }

    /// The mechanism called `name` (any case), if we speak it.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Our choice among `offered` (the `sasl=` value or a 908 list, comma
    /// separated; empty when the server did not say), not counting `tried`.
    pub fn choose(offered: &str, tried: &[Mechanism]) -> Option<Self> {
        let listed: Vec<&str> = offered.split(',').filter(|m| !m.is_empty()).collect();
        Self::ALL.into_iter().find(|m| {
            !tried.contains(m)
                && (listed.is_empty() || listed.iter().any(|l| l.eq_ignore_ascii_case(m.name())))
        })
    }
}

/// Why a login exchange was given up on our side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The server's message does not follow the mechanism.
    #[error("the server's SCRAM message is malformed ({0})")]
    Malformed(&'static str),
    /// The server's nonce does not extend ours (a replay, or not our exchange).
    #[error("the server's SCRAM nonce does not extend ours")]
    Nonce,
    /// An iteration count outside what we accept.
    #[error("the server asks for {0} SCRAM iterations (accepted: 4096 to 600000)")]
    Iterations(u32),
    /// The server failed to prove it knows the password's verifier.
    #[error("the server could not prove that it knows the password (wrong server?)")]
    ServerSignature,
    /// The server reported an error inside SCRAM (`e=`).
    #[error("the server refused the login: {0}")]
    Refused(String),
    /// No random bytes for the nonce.
    #[error("no random numbers for the login: {0}")]
    Random(String),
}

/// One login exchange in progress: what to answer the server's next message.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    account: Account,
    step: Step,
}

#[derive(Debug)]
enum Step {
    /// Waiting for the server's first (empty) challenge.
    Start,
    /// SCRAM: our first message is out, with this nonce and bare part.
    ScramFirst { nonce: String, first_bare: String },
    /// SCRAM: our final message is out; the server's must carry this signature.
    ScramFinal { server_signature: Vec<u8> },
    /// Nothing more to answer.
    Done,
}

/// What to send for a server message.
pub type Reply = Result<Vec<u8>, SaslError>;

impl Exchange {
    /// Starts logging in to `account` with `mechanism`.
    pub fn new(mechanism: Mechanism, account: Account) -> Self {
        Self {
            mechanism,
            account,
            step: Step::Start,
        }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The answer to the server's message `challenge` (decoded from base64).
    pub fn respond(&mut self, challenge: &[u8]) -> Reply {
        let nonce = || random_nonce().map_err(|e| SaslError::Random(e.to_string()));
        self.respond_with(challenge, nonce)
    }

    /// [`Exchange::respond`] with the client nonce given, for the test vectors.
    fn respond_with(
        &mut self,
        challenge: &[u8],
        nonce: impl FnOnce() -> Result<String, SaslError>,
    ) -> Reply {
        let step = std::mem::replace(&mut self.step, Step::Done);
        match (self.mechanism, step) {
            (Mechanism::Plain, Step::Start) => {
                // authzid (empty: the account itself) NUL authcid NUL password.
                let mut reply = Vec::new();
                reply.push(0);
                reply.extend_from_slice(self.account.name.as_bytes());
                reply.push(0);
                reply.extend_from_slice(self.account.password.expose().as_bytes());
                Ok(reply)
            }
            // The account asked for; the certificate is the proof.
            (Mechanism::External, Step::Start) => Ok(self.account.name.as_bytes().to_vec()),
            (Mechanism::ScramSha256, Step::Start) => {
                let nonce = nonce()?;
                let first_bare = format!("n={},r={nonce}", sasl_name(&self.account.name));
                let reply = format!("n,,{first_bare}").into_bytes();
                self.step = Step::ScramFirst { nonce, first_bare };
                Ok(reply)
            }
            (Mechanism::ScramSha256, Step::ScramFirst { nonce, first_bare }) => {
                let (reply, server_signature) =
                    scram_final(&self.account, &nonce, &first_bare, challenge)?;
                self.step = Step::ScramFinal { server_signature };
                Ok(reply)
            }
            (Mechanism::ScramSha256, Step::ScramFinal { server_signature }) => {
                let text = std::str::from_utf8(challenge)
                    .map_err(|_| SaslError::Malformed("not UTF-8"))?;
                if let Some(error) = attribute(text, 'e') {
                    return Err(SaslError::Refused(error.to_owned()));
                }
                let verifier = attribute(text, 'v').ok_or(SaslError::Malformed("no v="))?;
                let verifier = BASE64
                    .decode(verifier)
                    .map_err(|_| SaslError::Malformed("v= is not base64"))?;
                if verifier != server_signature {
                    return Err(SaslError::ServerSignature);
                }
                // sasl-3.1: an empty answer lets the server send 903.
                Ok(Vec::new())
            }
            (_, _) => Err(SaslError::Malformed("a message after the exchange ended")),
        }
    }
}

/// RFC 5802's `saslname`: `=` and `,` escaped.
fn sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The value of `letter=` in a SCRAM message.
fn attribute(message: &str, letter: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(letter) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// 18 random bytes in base64: printable and without commas, as SCRAM requires.
fn random_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes)?;
    Ok(BASE64.encode(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Our final message for the server's first one, and the signature the
/// server's final message must carry (RFC 5802 §3).
///
/// The password is used as its UTF-8 bytes, without SASLprep: identical for
/// ASCII passwords, and what the palaver server does too.
fn scram_final(
    account: &Account,
    nonce: &str,
    first_bare: &str,
    server_first: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
    let server_first =
        std::str::from_utf8(server_first).map_err(|_| SaslError::Malformed("not UTF-8"))?;
    if let Some(error) = attribute(server_first, 'e') {
        return Err(SaslError::Refused(error.to_owned()));
    }
    if server_first.starts_with("m=") {
        return Err(SaslError::Malformed("a mandatory extension"));
    }
    let combined = attribute(server_first, 'r').ok_or(SaslError::Malformed("no r="))?;
    if !combined.starts_with(nonce) || combined.len() == nonce.len() {
        return Err(SaslError::Nonce);
    }
    let salt = attribute(server_first, 's').ok_or(SaslError::Malformed("no s="))?;
    let salt = BASE64
        .decode(salt)
        .map_err(|_| SaslError::Malformed("s= is not base64"))?;
    let iterations: u32 = attribute(server_first, 'i')
        .and_then(|i| i.parse().ok())
        .ok_or(SaslError::Malformed("no i="))?;
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(SaslError::Iterations(iterations));
    }
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        account.password.expose().as_bytes(),
        &salt,
        iterations,
        &mut salted,
    );
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    // "biws" is base64 of the GS2 header "n,,": no channel binding.
    let without_proof = format!("c=biws,r={combined}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let client_signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&client_signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac(&salted, b"Server Key");
    let server_signature = hmac(&server_key, auth_message.as_bytes());
    let reply = format!("{without_proof},p={}", BASE64.encode(proof));
    Ok((reply.into_bytes(), server_signature))
}

/// `AUTHENTICATE` parameters carrying `payload`: base64 in pieces of at most
/// [`CHUNK`], with `+` for an empty payload or after a last piece of exactly
/// [`CHUNK`].
pub fn chunks(payload: &[u8]) -> Vec<String> {
    let encoded = BASE64.encode(payload);
    let mut pieces: Vec<String> = encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if pieces.last().is_none_or(|last| last.len() == CHUNK) {
        pieces.push("+".to_owned());
    }
    pieces
}

/// Decodes a whole server message (its pieces joined; `+` alone is empty).
pub fn decode(message: &str) -> Option<Vec<u8>> {
    if message == "+" {
        return Some(Vec::new());
    }
    BASE64.decode(message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Account {
        Account {
            name: "user".into(),
            password: Secret::new("pencil"),
            mechanism: None,
        }
    }

    /// RFC 7677 §3's example exchange, byte for byte.
    #[test]
    fn scram_sha_256_follows_the_rfc_7677_example() {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, user());
        let first = exchange
            .respond_with(b"", || Ok("rOprNGfwEbeRWgbNEkqO".into()))
            .expect("first");
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = exchange.respond(server_first).expect("final");
        assert_eq!(
            String::from_utf8(last).expect("text"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let done = exchange
            .respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the server is verified");
        assert!(done.is_empty());
    }

    #[test]
    fn a_wrong_server_signature_or_weak_parameters_are_refused() {
        let start = || {
            let mut e = Exchange::new(Mechanism::ScramSha256, user());
            e.respond_with(b"", || Ok("abc".into())).expect("first");
            e
        };
        let mut e = start();
        e.respond(b"r=abcdef,s=c2FsdA==,i=4096").expect("final");
        assert_eq!(
            e.respond(b"v=AAAA"),
            Err(SaslError::ServerSignature),
            "a forged verifier"
        );
        assert_eq!(
            start().respond(b"r=abcdef,s=c2FsdA==,i=1"),
            Err(SaslError::Iterations(1))
        );
        assert_eq!(
            start().respond(b"r=xyz123,s=c2FsdA==,i=4096"),
            Err(SaslError::Nonce)
        );
        assert_eq!(
            start().respond(b"e=unknown-user"),
            Err(SaslError::Refused("unknown-user".into()))
        );
    }

    #[test]
    fn external_names_the_account_and_sends_no_secret() {
        let mut e = Exchange::new(Mechanism::External, user());
        assert_eq!(e.respond(b"").expect("external"), b"user");
    }

    #[test]
    fn plain_sends_the_account_and_password() {
        let mut e = Exchange::new(Mechanism::Plain, user());
        assert_eq!(e.respond(b"").expect("plain"), b"\0user\0pencil");
    }

    #[test]
    fn scram_is_preferred_and_the_offer_is_respected() {
        assert_eq!(
            Mechanism::choose("PLAIN,SCRAM-SHA-256", &[]),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(
            Mechanism::choose("PLAIN,EXTERNAL", &[]),
            Some(Mechanism::Plain)
        );
        assert_eq!(Mechanism::choose("", &[]), Some(Mechanism::ScramSha256));
        assert_eq!(
            Mechanism::choose("", &[Mechanism::ScramSha256]),
            Some(Mechanism::Plain)
        );
        // EXTERNAL is last, and left out by whoever did not ask for it.
        assert_eq!(
            Mechanism::choose("EXTERNAL", &[]),
            Some(Mechanism::External)
        );
        assert_eq!(Mechanism::choose("EXTERNAL", &[Mechanism::External]), None);
    }

    #[test]
    fn payloads_are_cut_into_400_byte_pieces() {
        assert_eq!(chunks(b""), ["+"]);
        // 300 bytes are exactly 400 characters of base64: a "+" follows.
        let pieces = chunks(&[7u8; 300]);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].len(), pieces[1].as_str()), (400, "+"));
        let pieces = chunks(&[7u8; 301]);
        assert_eq!(pieces.iter().map(String::len).collect::<Vec<_>>(), [400, 4]);
        assert_eq!(format!("{:?}", Secret::new("pencil")), "<redacted>");
    }
}
