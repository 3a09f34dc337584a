//! IRC operator credentials: argon2id password hashes, the `--oper NAME:PASSWORD`
//! flag, the `[[oper]]` entries of the TOML configuration file, and verification.
//!
//! Plaintext passwords are never kept: `--oper` passwords are hashed at startup, the
//! configuration file holds PHC strings (`chat-server --hash-password` makes them),
//! and a password sent with `OPER` lives only until its verification has run. That
//! verification is deliberately slow (it is argon2), so the server runs it on the
//! blocking pool, outside the world lock (see `handlers::deferred`).

use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use toml::de::DeValue;

/// One operator: a name for `OPER` and the argon2id hash of its password.
#[derive(Clone, PartialEq, Eq)]
pub struct OperCredential {
    /// The name given as the first parameter of `OPER`, compared exactly.
    pub name: String,
    /// The password's argon2id hash as a PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
}

impl fmt::Debug for OperCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperCredential")
            .field("name", &self.name)
            .field("password_hash", &"<argon2id hash>")
            .finish()
    }
}

impl OperCredential {
    /// A credential for `name` whose password is hashed now (slow on purpose).
    pub fn from_password(name: &str, password: &str) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            password_hash: hash_password(password)?,
        })
    }

    /// Parses `--oper NAME:PASSWORD` and hashes the password.
    pub fn from_flag(flag: &str) -> Result<Self, String> {
        let Some((name, password)) = flag.split_once(':') else {
            // Not echoed: without the ':' the whole value may be a password.
            return Err("an --oper value has no ':' (use NAME:PASSWORD)".to_owned());
        };
        check_name(name)?;
        if password.is_empty() {
            return Err(format!("--oper {name}: the password is empty"));
        }
        Self::from_password(name, password)
    }
}

/// Hashes a password with argon2id (default parameters, random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

/// Whether `password` matches the PHC string `hash` (false if the hash is malformed).
/// Slow on purpose: call it off the async runtime's workers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// What a PHC string must be for an operator password: argon2id, well formed.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|error| format!("not a PHC string ({error})"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "uses {}, not argon2id (make one with chat-server --hash-password)",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Operator names are one word: they are a command parameter.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains([' ', ',', ':']) || name.chars().any(char::is_control) {
        return Err(format!(
            "operator name '{name}' must be one word without ',' or ':'"
        ));
    }
    Ok(())
}

/// The `[[oper]]` entries of the configuration file (see `config_file`), each a
/// table of `name` and `password_hash`: every problem found, all at once.
pub(crate) fn parse_oper_tables(value: &DeValue<'_>) -> Result<Vec<OperCredential>, Vec<String>> {
    let Some(entries) = value.as_array() else {
        return Err(vec![
            "operators are [[oper]] tables with a name and a password_hash (the file never holds plain passwords)"
                .to_owned(),
        ]);
    };
    let mut problems = Vec::new();
    let mut opers: Vec<OperCredential> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let which = format!("[[oper]] #{}", index + 1);
        let Some(table) = entry.get_ref().as_table() else {
            problems.push(format!("{which} is not a table"));
            continue;
        };
        let text = |key: &str| {
            table
                .get(key)
                .and_then(|value| value.get_ref().as_str())
                .map(str::to_owned)
        };
        for key in table.keys() {
            let key = key.get_ref().as_ref();
            if key != "name" && key != "password_hash" {
                problems.push(format!(
                    "{which}: unknown key '{key}' (an oper has name and password_hash)"
                ));
            }
        }
        let (Some(name), Some(password_hash)) = (text("name"), text("password_hash")) else {
            problems.push(format!(
                "{which}: needs a name and a password_hash, both strings"
            ));
            continue;
        };
        let which = format!("{which} ('{name}')");
        if let Err(problem) = check_name(&name) {
            problems.push(format!("{which}: {problem}"));
        }
        if let Err(problem) = check_hash(&password_hash) {
            problems.push(format!("{which}: password_hash {problem}"));
        }
        if opers.iter().any(|seen| seen.name == name) {
            problems.push(format!("{which}: the name is used twice"));
        }
        opers.push(OperCredential {
            name,
            password_hash,
        });
    }
    if problems.is_empty() {
        Ok(opers)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::DeTable;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = hash_password("hunter2").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("hunter2", &hash));
        assert!(!verify_password("hunter3", &hash));
        assert!(!verify_password("hunter2", "not a hash"));
    }

    #[test]
    fn the_flag_needs_a_name_and_a_password() {
        let oper = OperCredential::from_flag("root:s3:cret").expect("valid flag");
        assert_eq!(oper.name, "root");
        assert!(verify_password("s3:cret", &oper.password_hash));
        assert!(OperCredential::from_flag("root").is_err());
        assert!(OperCredential::from_flag("root:").is_err());
        assert!(OperCredential::from_flag(":pw").is_err());
        // The password never appears in an error or in Debug output.
        let error = OperCredential::from_flag("bad name:topsecret").expect_err("space");
        assert!(!error.contains("topsecret"), "{error}");
        assert!(!format!("{oper:?}").contains("argon2id$"));
    }

    /// The `[[oper]]` entries of a configuration file's text.
    fn parse_config(text: &str) -> Result<Vec<OperCredential>, Vec<String>> {
        let table = DeTable::parse(text).map_err(|error| vec![error.to_string()])?;
        match table.get_ref().get("oper") {
            Some(value) => parse_oper_tables(value.get_ref()),
            None => Ok(Vec::new()),
        }
    }

    #[test]
    fn the_config_file_reports_every_problem_at_once() {
        let hash = hash_password("pw").expect("hash");
        let good = format!("[[oper]]\nname = \"root\"\npassword_hash = \"{hash}\"\n");
        let opers = parse_config(&good).expect("valid file");
        assert_eq!(opers.len(), 1);
        assert_eq!(opers[0].name, "root");
        assert_eq!(parse_config("").expect("empty file"), []);

        let bad = format!(
            "[[oper]]\nname = \"a b\"\npassword_hash = \"plain\"\n\
             [[oper]]\nname = \"root\"\npassword_hash = \"{hash}\"\n\
             [[oper]]\nname = \"root\"\npassword_hash = \"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$3e+3Ag1uHSHHQTIEm7Li4Q\"\n"
        );
        let problems = parse_config(&bad).expect_err("three problems");
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("one word"), "{problems:#?}");
        assert!(problems[1].contains("not a PHC string"), "{problems:#?}");
        assert!(problems[2].contains("not argon2id"), "{problems:#?}");
        assert!(problems[3].contains("used twice"), "{problems:#?}");

        let unknown = parse_config("[[oper]]\nname = \"x\"\npasword_hash = \"y\"\n")
            .expect_err("typo in a key");
        assert!(unknown[0].contains("pasword_hash"), "{unknown:#?}");
        assert!(parse_config("oper = \"root:secret\"\n").is_err());
    }
}
