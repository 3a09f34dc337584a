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

/// The argon2id hash and SCRAM verifier of `password` (slow: a deferred job's work).
pub(crate) fn derive(password: &str) -> Result<PasswordUpdate, String> {
    let password_hash = crate::opers::hash_password(password)?;
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    Ok(PasswordUpdate {
        password_hash,
        scram: scram::verifier(password, &salt, scram::ITERATIONS),
    })
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
