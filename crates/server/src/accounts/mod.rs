//! Accounts: the rules for names and passwords, and the password material the store
//! keeps (the SCRAM exchange itself is [`crate::scram`]).
//!
//! A password is stored twice, both derived at once whenever it is set: an argon2id
//! PHC string (checked for SASL PLAIN and NickServ IDENTIFY) and a SCRAM-SHA-256
//! verifier (SCRAM cannot be run on an argon2 hash). Deriving both is slow on
//! purpose, so it runs in a deferred job, never with the world locked. Nothing here
//! touches the world or the store: `handlers::sasl`, `handlers::account` and
//! `handlers::nickserv` do.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use palaver_proto::validate::is_valid_nick;
use palaver_store::{Account, PasswordUpdate, Timestamp};

use crate::scram;

/// Service nicknames no user may take (NickServ now, ChanServ later), nor register
/// as an account.
pub(crate) const RESERVED_NICKS: &[&str] = &["NickServ", "ChanServ"];

/// Whether `nick` is one of [`RESERVED_NICKS`] (compared folded).
pub(crate) fn is_reserved(nick: &str) -> bool {
    let key = crate::world::World::key(nick);
    RESERVED_NICKS
        .iter()
        .any(|reserved| crate::world::World::key(reserved) == key)
}

/// Why a name or password is refused, as a sentence for the client.
pub(crate) fn check_name(name: &str, nick_len: usize) -> Result<(), &'static str> {
    if !is_valid_nick(name, nick_len) {
        return Err("Account names follow the nickname rules");
    }
    if is_reserved(name) || name.to_ascii_lowercase().starts_with("guest") {
        return Err("That account name is reserved");
    }
    Ok(())
}

/// Why a password is refused for account `name`, as a sentence for the client.
pub(crate) fn check_password(
    name: &str,
    password: &str,
    min_bytes: usize,
) -> Result<(), &'static str> {
    if password.len() < min_bytes {
        return Err("That password is too short");
    }
    if crate::world::World::key(password) == crate::world::World::key(name) {
        return Err("The password must not be the account name");
    }
    if password.contains(' ') || password == "*" {
        return Err("Passwords cannot contain spaces");
    }
    Ok(())
}

/// A password as it is hashed and checked: prepared with SASLprep (RFC 4013), which
/// SCRAM-SHA-256 asks of both ends (RFC 5802 `Normalize`), so that one password
/// typed as composed or decomposed Unicode, or with a no-break space, is the same
/// password for SCRAM, PLAIN and IDENTIFY alike. ASCII passwords come back unchanged.
/// A password SASLprep refuses (a control character, or a character Unicode 3.2,
/// the version its tables know, did not assign, such as most emoji) is used as
/// given rather than refused: a query may hold unassigned characters (RFC 4013
/// section 2.5), and since registration and checks both go through here they agree.
pub(crate) fn prepare(password: &str) -> std::borrow::Cow<'_, str> {
    stringprep::saslprep(password).unwrap_or(std::borrow::Cow::Borrowed(password))
}

/// The argon2id hash and SCRAM verifier of `password`, [prepared](prepare) (slow: a
/// deferred job's work).
pub(crate) fn derive(password: &str) -> Result<PasswordUpdate, String> {
    let password = prepare(password);
    let password_hash = crate::opers::hash_password(&password)?;
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    Ok(PasswordUpdate {
        password_hash,
        scram: scram::verifier(&password, &salt, scram::ITERATIONS),
    })
}

/// Whether `password` is the one whose argon2id hash is `hash` (slow). It is
/// [prepared](prepare) first; a password that preparing changes is also tried as
/// given, because accounts registered before passwords were prepared (issue 10)
/// hold the hash of the raw text. That costs a second argon2 check only for such
/// passwords (never for ASCII ones) and only when the first check failed.
pub(crate) fn verify(password: &str, hash: &str) -> bool {
    let prepared = prepare(password);
    crate::opers::verify_password(&prepared, hash)
        || (prepared != password && crate::opers::verify_password(password, hash))
}

/// A new account record for `name` with the password material `secret`.
pub(crate) fn new_account(name: &str, secret: PasswordUpdate, email: Option<String>) -> Account {
    Account {
        key: crate::world::World::key(name).as_str().to_owned(),
        name: name.to_owned(),
        password_hash: secret.password_hash,
        scram: secret.scram,
        email,
        verified: true,
        created_at: Timestamp::now(),
    }
}

/// `len` random bytes as URL-safe base64 without padding: printable, no comma, so
/// fit for a SCRAM nonce.
pub(crate) fn random_token(len: usize) -> String {
    use base64::Engine as _;
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_follow_the_rules() {
        assert!(check_name("alice", 30).is_ok());
        assert!(check_name("nickserv", 30).is_err());
        assert!(check_name("Guest123", 30).is_err());
        assert!(check_name("#chan", 30).is_err());
        assert!(check_password("alice", "correct horse", 8).is_err());
        assert!(check_password("alice", "longenough", 8).is_ok());
        assert!(check_password("alice", "short", 8).is_err());
        assert!(check_password("alicealice", "ALICEALICE", 8).is_err());
    }

    #[test]
    fn passwords_are_prepared_with_saslprep() {
        // RFC 4013's examples: a soft hyphen maps to nothing, NFKC folds the
        // roman numeral nine.
        assert_eq!(prepare("I\u{00AD}X"), "IX");
        assert_eq!(prepare("\u{2168}"), "IX");
        // Decomposed and composed forms become one; a no-break space a space.
        assert_eq!(prepare("cafe\u{0301}"), prepare("caf\u{00E9}"));
        assert_eq!(prepare("a\u{00A0}b"), "a b");
        // ASCII is untouched (and not copied); what SASLprep refuses is kept as is.
        assert!(matches!(
            prepare("correct-horse"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(prepare("crab\u{1F980}"), "crab\u{1F980}");
        assert_eq!(prepare("tab\there"), "tab\there");
    }

    #[test]
    fn a_hash_of_the_raw_text_still_verifies() {
        // An account registered before passwords were prepared.
        let raw = "cafe\u{0301}-password";
        let old = crate::opers::hash_password(raw).expect("hash");
        assert!(verify(raw, &old));
        assert!(!verify("wrong-password", &old));
        // A new one is found by either form.
        let new = derive(raw).expect("derive").password_hash;
        assert!(verify("caf\u{00E9}-password", &new));
        assert!(verify(raw, &new));
    }

    #[test]
    fn derived_material_verifies_the_password() {
        let secret = derive("longenough").expect("derive");
        assert!(crate::opers::verify_password(
            "longenough",
            &secret.password_hash
        ));
        let again = scram::verifier("longenough", &secret.scram.salt, secret.scram.iterations);
        assert_eq!(again, secret.scram);
        assert!(secret.scram.iterations >= 4096);
    }
}
