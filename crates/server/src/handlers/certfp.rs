//! Client certificates as a way to log in: the fingerprints an account accepts
//! (`/msg NickServ CERT ADD|DEL|LIST`) and SASL EXTERNAL's lookup of the account a
//! connection's certificate belongs to.
//!
//! A fingerprint is the SHA-256 of the certificate the client presented in its TLS
//! handshake (the handshake proves the client holds the certificate's key), as
//! 64 lowercase hex digits; users may type it with colons or in capitals, as other
//! tools print it. Each account accepts at most
//! [`palaver_store::MAX_CERTFPS_PER_ACCOUNT`], and a fingerprint belongs to one
//! account at most. The store does the work, in deferred jobs.

use palaver_store::{CertfpAdded, MAX_CERTFPS_PER_ACCOUNT, Store};

use super::Ctx;
use super::deferred::Deferred;
use super::nickserv::reply;

/// A store job for certificates (see [`super::deferred`]).
#[derive(Debug)]
pub(crate) enum Job {
    /// CERT ADD: `account` (folded) accepts `certfp` from now on.
    Add { account: String, certfp: String },
    /// CERT DEL.
    Remove { account: String, certfp: String },
    /// CERT LIST.
    List { account: String },
    /// SASL EXTERNAL: the account `certfp` belongs to; the client asked to log in
    /// as `authzid` (empty: whichever account that is).
    External { certfp: String, authzid: String },
}

/// What a [`Job`] found.
#[derive(Debug)]
pub(crate) enum Done {
    Added {
        certfp: String,
        outcome: Result<CertfpAdded, ()>,
    },
    Removed {
        certfp: String,
        outcome: Result<bool, ()>,
    },
    Listed(Result<Vec<String>, ()>),
    External {
        authzid: String,
        account: Result<Option<String>, ()>,
    },
}

/// Runs the store part of `job` (without the world lock).
pub(crate) async fn work(store: &dyn Store, job: Job) -> Done {
    let logged = |error: palaver_store::StoreError| {
        tracing::warn!(%error, "a client certificate request failed");
    };
    match job {
        Job::Add { account, certfp } => Done::Added {
            outcome: store.add_certfp(&account, &certfp).await.map_err(logged),
            certfp,
        },
        Job::Remove { account, certfp } => Done::Removed {
            outcome: store.remove_certfp(&account, &certfp).await.map_err(logged),
            certfp,
        },
        Job::List { account } => Done::Listed(store.certfps(&account).await.map_err(logged)),
        Job::External { certfp, authzid } => Done::External {
            authzid,
            account: store
                .account_by_certfp(&certfp)
                .await
                .map(|found| found.map(|account| account.name))
                .map_err(logged),
        },
    }
}

/// Answers a finished [`Job`] (with the world locked again).
pub(crate) fn finish(ctx: &mut Ctx<'_>, done: Done) {
    match done {
        Done::Added { certfp, outcome } => reply(
            ctx,
            &match outcome {
                Ok(CertfpAdded::Added) => {
                    format!("Certificate {certfp} added: it now logs you in (SASL EXTERNAL)")
                }
                Ok(CertfpAdded::AlreadyPresent) => {
                    format!("Certificate {certfp} is already on your account")
                }
                Ok(CertfpAdded::Taken) => {
                    format!("Certificate {certfp} belongs to another account")
                }
                Ok(CertfpAdded::LimitReached) => format!(
                    "Your account already has {MAX_CERTFPS_PER_ACCOUNT} certificates; remove one with CERT DEL"
                ),
                Err(()) => "Could not add the certificate; try again".to_owned(),
            },
        ),
        Done::Removed { certfp, outcome } => reply(
            ctx,
            &match outcome {
                Ok(true) => format!("Certificate {certfp} removed"),
                Ok(false) => format!("Certificate {certfp} is not on your account"),
                Err(()) => "Could not remove the certificate; try again".to_owned(),
            },
        ),
        Done::Listed(Ok(certfps)) if certfps.is_empty() => {
            reply(ctx, "Your account has no certificates (see CERT ADD)");
        }
        Done::Listed(Ok(certfps)) => {
            reply(ctx, "Certificates that log you in:");
            for certfp in &certfps {
                reply(ctx, certfp);
            }
        }
        Done::Listed(Err(())) => reply(ctx, "Could not list the certificates; try again"),
        Done::External { authzid, account } => {
            let account = account.ok().flatten().filter(|name| {
                authzid.is_empty()
                    || crate::world::World::key(&authzid) == crate::world::World::key(name)
            });
            super::sasl::credential_checked(ctx, account);
        }
    }
}

/// `CERT ADD [fingerprint] | DEL <fingerprint> | LIST`, for the account the client
/// is logged in to. ADD without a fingerprint adds the connection's own.
pub(super) fn nickserv_cert(ctx: &mut Ctx<'_>, args: &[&str]) {
    let Some(account) = ctx.me().account.as_deref() else {
        reply(ctx, "You are not logged in");
        return;
    };
    let account = crate::world::World::key(account).as_str().to_owned();
    let subcommand = args
        .first()
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    let job = match (subcommand.as_str(), &args[1.min(args.len())..]) {
        ("ADD", []) => match ctx.world.certfps.get(&ctx.id) {
            Some(certfp) => Job::Add {
                account,
                certfp: certfp.to_string(),
            },
            None => {
                reply(
                    ctx,
                    "Your connection has no client certificate; connect with one, or give its fingerprint",
                );
                return;
            }
        },
        ("ADD" | "DEL", [given]) => {
            let Some(certfp) = normalize(given) else {
                reply(
                    ctx,
                    "A fingerprint is the SHA-256 of the certificate: 64 hex digits (colons allowed)",
                );
                return;
            };
            if subcommand == "ADD" {
                Job::Add { account, certfp }
            } else {
                Job::Remove { account, certfp }
            }
        }
        ("LIST", []) => Job::List { account },
        _ => {
            reply(
                ctx,
                "Syntax: CERT ADD [fingerprint] | CERT DEL <fingerprint> | CERT LIST",
            );
            return;
        }
    };
    ctx.deferred = Some(Deferred::Certfp(job));
}

/// `text` as a stored fingerprint (64 lowercase hex digits), accepting colons and
/// capitals; `None` if it is not a SHA-256 fingerprint.
pub(crate) fn normalize(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|&c| c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn fingerprints_are_taken_as_tools_print_them() {
        let plain = "ab".repeat(32);
        assert_eq!(normalize(&plain), Some(plain.clone()));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(normalize(&colons), Some(plain));
        assert_eq!(normalize("abcd"), None);
        assert_eq!(normalize(&"zz".repeat(32)), None);
    }
}
