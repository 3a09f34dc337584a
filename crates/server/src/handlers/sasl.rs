//! `AUTHENTICATE`: SASL (IRCv3 sasl-3.1 and 3.2) with PLAIN, SCRAM-SHA-256 and
//! EXTERNAL.
//!
//! An exchange lives in the client's boxed [`Login`](crate::world::Client::login)
//! as a [`Sasl`]. Registration waits for a credential check that is running (the
//! client's lines, CAP END included, wait for a deferred job); a client that
//! completes registration (CAP END, or NICK/USER without CAP) while the exchange
//! waits for *its* next message has the exchange aborted (906) and registers without
//! an account, as sasl-3.1 asks. Data from
//! the client arrives base64-encoded in 400-byte chunks; a chunk shorter than 400
//! bytes (or `+`) ends a message. The password checks do not run here: PLAIN's
//! argon2 check and SCRAM's account lookup are deferred jobs (see
//! [`super::deferred`]), so the world is never locked while the store or argon2
//! works. SCRAM's proof check itself is a few HMACs and runs in the handler.
//!
//! After registration a client may authenticate again, to the same or another
//! account (sasl-3.2); before registration a second exchange after a success gets
//! `907 ERR_SASLALREADY`.
//!
//! Failed attempts count against the address and the account (see
//! `world::auth_failures`); past the limit an attempt is refused with 904 and a
//! sentence saying how long to wait, without any check. EXTERNAL logs in with the
//! TLS client certificate (see [`super::certfp`]): its one message names the
//! account wanted (or none), and a deferred lookup finds the account the
//! certificate was added to. PLAIN is refused on unencrypted connections from
//! other machines (the password would cross the network in clear text) unless the
//! operator allows it (`--allow-plaintext-sasl`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::Ctx;
use super::deferred::{Deferred, Via};
use crate::scram::{self, ClientFirst, Exchange};
use crate::world::{Mechanism, Sasl, Step, World};

/// The mechanisms we offer, as `RPL_SASLMECHS` and the CAP 302 value list them:
/// EXTERNAL only where TLS (and so client certificates) is served.
pub(crate) fn mechanisms(config: &crate::config::Config) -> &'static str {
    if config.tls.is_some() {
        "PLAIN,SCRAM-SHA-256,EXTERNAL"
    } else {
        "PLAIN,SCRAM-SHA-256"
    }
}

/// The most a client may send in one AUTHENTICATE parameter.
const CHUNK: usize = 400;
/// The most base64 text one SASL message may add up to (PLAIN with a very long
/// password is some hundreds of bytes; SCRAM messages are about a hundred).
const MAX_MESSAGE: usize = 4 * CHUNK;

/// `AUTHENTICATE <mechanism>|<data>|+|*`.
pub(super) fn authenticate(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(arg) = msg.param(0).filter(|a| !a.is_empty()) else {
        ctx.need_more_params("AUTHENTICATE");
        return;
    };
    let in_progress = ctx.me().login.as_ref().is_some_and(|l| l.sasl.is_some());
    if !in_progress {
        start(ctx, arg);
        return;
    }
    if arg == "*" {
        end(ctx);
        ctx.numeric(ERR_SASLABORTED)
            .trailing("SASL authentication aborted")
            .send();
        super::registration::try_complete(ctx);
        return;
    }
    if arg.len() > CHUNK {
        fail_with(ctx, ERR_SASLTOOLONG, "SASL message too long");
        return;
    }
    let Some(sasl) = sasl_mut(ctx) else {
        return;
    };
    if arg != "+" {
        sasl.buffer.push_str(arg);
    }
    if sasl.buffer.len() > MAX_MESSAGE {
        // Too much in total (each chunk was fine): a failed exchange, not 905.
        fail(ctx);
        return;
    }
    if arg.len() == CHUNK {
        return; // More to come.
    }
    let text = std::mem::take(&mut sasl.buffer);
    let Ok(data) = BASE64.decode(text.as_bytes()) else {
        fail(ctx);
        return;
    };
    step(ctx, &data);
}

/// `AUTHENTICATE <mechanism>`: starts an exchange.
fn start(ctx: &mut Ctx<'_>, arg: &str) {
    if arg == "*" {
        ctx.numeric(ERR_SASLABORTED)
            .trailing("SASL authentication aborted")
            .send();
        return;
    }
    if ctx.me().account.is_some() && !ctx.me().is_registered() {
        ctx.numeric(ERR_SASLALREADY)
            .trailing("You have already authenticated using SASL")
            .send();
        return;
    }
    let mechanism = match arg.to_ascii_uppercase().as_str() {
        "PLAIN" if !plain_allowed(ctx) => {
            ctx.numeric(ERR_SASLFAIL)
                .trailing(
                    "SASL PLAIN would send your password in clear text: connect with TLS, or use SCRAM-SHA-256",
                )
                .send();
            return;
        }
        "PLAIN" => Mechanism::Plain,
        "SCRAM-SHA-256" => Mechanism::ScramSha256,
        "EXTERNAL" if ctx.world.config.tls.is_some() => {
            if !ctx.world.certfps.contains_key(&ctx.id) {
                ctx.numeric(ERR_SASLFAIL)
                    .trailing("SASL EXTERNAL needs a TLS client certificate, and this connection has none")
                    .send();
                return;
            }
            Mechanism::External
        }
        _ => {
            ctx.numeric(RPL_SASLMECHS)
                .param(mechanisms(&ctx.world.config))
                .trailing("are available SASL mechanisms")
                .send();
            ctx.numeric(ERR_SASLFAIL)
                .trailing("SASL authentication failed")
                .send();
            return;
        }
    };
    if let Some(wait) = super::oper::refused_for(ctx) {
        let text = super::oper::too_many_failures(wait);
        ctx.numeric(ERR_SASLFAIL).trailing(&text).send();
        return;
    }
    ctx.me_mut().login.get_or_insert_with(Box::default).sasl = Some(Box::new(Sasl {
        mechanism,
        buffer: String::new(),
        step: Step::Start,
    }));
    ctx.world
        .server_line(ctx.id, "AUTHENTICATE")
        .param("+")
        .send();
}

/// One whole client message of the exchange.
fn step(ctx: &mut Ctx<'_>, data: &[u8]) {
    let Some(sasl) = sasl_mut(ctx) else {
        return;
    };
    let mechanism = sasl.mechanism;
    let step = std::mem::replace(&mut sasl.step, Step::Checking);
    match (mechanism, step) {
        (Mechanism::Plain, Step::Start) => plain(ctx, data),
        (Mechanism::ScramSha256, Step::Start) => {
            let first = std::str::from_utf8(data)
                .ok()
                .and_then(|text| ClientFirst::parse(text).ok());
            let Some(first) = first else {
                fail(ctx);
                return;
            };
            if !may_try(ctx, &first.user) {
                return;
            }
            ctx.deferred = Some(Deferred::ScramLookup {
                first: Box::new(first),
            });
        }
        (Mechanism::ScramSha256, Step::ScramFinal { exchange, account }) => {
            let outcome = std::str::from_utf8(data)
                .map_err(|_| scram::ScramError::Malformed)
                .and_then(|text| exchange.finish(text));
            match (outcome, account) {
                (Ok(server_final), Some(account)) => {
                    if let Some(sasl) = sasl_mut(ctx) {
                        sasl.step = Step::ScramAck { account };
                    }
                    send_data(ctx, server_final.as_bytes());
                }
                _ => fail(ctx),
            }
        }
        (Mechanism::ScramSha256, Step::ScramAck { account }) if data.is_empty() => {
            succeed(ctx, &account);
        }
        // The message is the account asked for (empty: the certificate's own).
        (Mechanism::External, Step::Start) => {
            let (Ok(authzid), Some(certfp)) = (
                String::from_utf8(data.to_vec()),
                ctx.world.certfps.get(&ctx.id).map(ToString::to_string),
            ) else {
                fail(ctx);
                return;
            };
            ctx.deferred = Some(super::deferred::Deferred::Certfp(
                super::certfp::Job::External { certfp, authzid },
            ));
        }
        _ => fail(ctx),
    }
}

/// PLAIN: `authzid NUL authcid NUL password`; the check is deferred.
fn plain(ctx: &mut Ctx<'_>, data: &[u8]) {
    let mut parts = data.split(|byte| *byte == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        fail(ctx);
        return;
    };
    let (Ok(authzid), Ok(authcid), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(authcid),
        std::str::from_utf8(password),
    ) else {
        fail(ctx);
        return;
    };
    // Logging in as someone else (authzid ≠ authcid) is for services operators; we
    // have none.
    if authcid.is_empty() || (!authzid.is_empty() && World::key(authzid) != World::key(authcid)) {
        fail(ctx);
        return;
    }
    if !may_try(ctx, authcid) {
        return;
    }
    ctx.deferred = Some(Deferred::CheckPassword {
        account: authcid.to_owned(),
        password: password.into(),
        via: Via::Sasl,
    });
}

/// Whether an attempt on account `name` may be checked; if so it is counted as a
/// failure (against the address and the account) until it succeeds. If not, the
/// exchange fails with a sentence saying how long to wait.
fn may_try(ctx: &mut Ctx<'_>, name: &str) -> bool {
    let now = std::time::Instant::now();
    let key = World::key(name);
    let wait = super::oper::refused_for(ctx)
        .or_else(|| ctx.world.auth_failures.account_refused_for(&key, now));
    if let Some(wait) = wait {
        end(ctx);
        let text = super::oper::too_many_failures(wait);
        ctx.numeric(ERR_SASLFAIL).trailing(&text).send();
        super::registration::try_complete(ctx);
        return false;
    }
    record_attempt(ctx, key);
    true
}

/// Counts an attempt on account `key` (and from the caller's address) as failed
/// until [`forgive_attempt`] takes it back.
pub(super) fn record_attempt(ctx: &mut Ctx<'_>, key: palaver_proto::CaseKey) {
    let now = std::time::Instant::now();
    if let Some(ip) = ctx.me().ip() {
        ctx.world.auth_failures.record(ip, now);
    }
    ctx.world.auth_failures.record_account(key, now);
}

/// Takes back the failure [`record_attempt`] counted: the password was right.
pub(super) fn forgive_attempt(ctx: &mut Ctx<'_>, name: &str) {
    if let Some(ip) = ctx.me().ip() {
        ctx.world.auth_failures.forgive(ip);
    }
    ctx.world.auth_failures.forgive_account(&World::key(name));
}

/// Completes PLAIN once the password was checked, or EXTERNAL once the
/// certificate was looked up: `account` is the registered name of the account the
/// credential is good for, if any.
pub(super) fn credential_checked(ctx: &mut Ctx<'_>, account: Option<String>) {
    match account {
        Some(account) => succeed(ctx, &account),
        None => fail(ctx),
    }
}

/// Whether SASL PLAIN may be used on this connection: the password would cross
/// the network in clear text unless the connection is TLS or comes from this
/// machine (or the operator allowed it anyway).
fn plain_allowed(ctx: &Ctx<'_>) -> bool {
    let me = ctx.me();
    plain_allowed_for(me.tls, me.ip(), ctx.world.config.allow_plaintext_sasl)
}

/// [`plain_allowed`]'s rule.
fn plain_allowed_for(tls: bool, ip: Option<std::net::IpAddr>, allowed_anyway: bool) -> bool {
    tls || allowed_anyway || ip.is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod plain_tests {
    use super::plain_allowed_for;

    #[test]
    fn plain_needs_tls_or_loopback_unless_allowed() {
        let remote = Some([192, 0, 2, 7].into());
        let local = Some([127, 0, 0, 1].into());
        assert!(!plain_allowed_for(false, remote, false));
        assert!(plain_allowed_for(true, remote, false));
        assert!(plain_allowed_for(false, local, false));
        assert!(plain_allowed_for(
            false,
            Some(std::net::Ipv6Addr::LOCALHOST.into()),
            false
        ));
        assert!(plain_allowed_for(false, remote, true));
    }
}

/// Completes SCRAM's account lookup: sends the server-first message, with the
/// account's salt, or a stand-in's for an unknown name.
pub(super) fn scram_looked_up(
    ctx: &mut Ctx<'_>,
    first: &ClientFirst,
    account: Option<(String, palaver_store::ScramVerifier)>,
) {
    if sasl_mut(ctx).is_none() {
        return;
    }
    let (name, verifier) = match account {
        Some((name, verifier)) => (Some(name), verifier),
        None => (
            None,
            scram::decoy(&ctx.world.sasl_secret, World::key(&first.user).as_str()),
        ),
    };
    let (exchange, server_first) =
        Exchange::start(first, &verifier, &crate::accounts::random_token(18));
    if let Some(sasl) = sasl_mut(ctx) {
        sasl.step = Step::ScramFinal {
            exchange: Box::new(exchange),
            account: name,
        };
    }
    send_data(ctx, server_first.as_bytes());
}

/// The exchange succeeded: logs the client in to `account` and lets registration go on.
fn succeed(ctx: &mut Ctx<'_>, account: &str) {
    forgive_attempt(ctx, account);
    end(ctx);
    super::account::log_in(ctx.world, ctx.id, account);
    ctx.numeric(RPL_SASLSUCCESS)
        .trailing("SASL authentication successful")
        .send();
    if ctx.me().is_registered() {
        // Re-authenticated to another account: the nick may now be someone else's.
        super::nickserv::check_nick(ctx);
    }
    super::registration::try_complete(ctx);
}

/// The exchange failed (904), the attempt stays counted as a failure.
fn fail(ctx: &mut Ctx<'_>) {
    fail_with(ctx, ERR_SASLFAIL, "SASL authentication failed");
}

/// Ends the exchange with `code` (904 or 905), and lets registration go on.
fn fail_with(ctx: &mut Ctx<'_>, code: &str, text: &str) {
    end(ctx);
    ctx.numeric(code).trailing(text).send();
    super::registration::try_complete(ctx);
}

/// Aborts an exchange in progress (906) because the client completed registration.
pub(super) fn abort_for_registration(ctx: &mut Ctx<'_>) {
    if ctx.me().login.as_ref().is_some_and(|l| l.sasl.is_some()) {
        end(ctx);
        ctx.numeric(ERR_SASLABORTED)
            .trailing("SASL authentication aborted")
            .send();
    }
}

/// Forgets the exchange in progress.
fn end(ctx: &mut Ctx<'_>) {
    if let Some(login) = ctx.me_mut().login.as_mut() {
        login.sasl = None;
    }
    let me = ctx.me_mut();
    if me.is_registered() && me.login.as_ref().is_some_and(|l| l.password.is_none()) {
        me.login = None;
    }
}

/// The caller's exchange in progress, if any.
fn sasl_mut<'c>(ctx: &'c mut Ctx<'_>) -> Option<&'c mut Sasl> {
    ctx.me_mut().login.as_mut()?.sasl.as_deref_mut()
}

/// Sends server data as `AUTHENTICATE` lines of at most 400 bytes (and a `+` after
/// a last chunk of exactly 400).
fn send_data(ctx: &Ctx<'_>, data: &[u8]) {
    let text = BASE64.encode(data);
    let mut rest = text.as_str();
    loop {
        let (chunk, tail) = rest.split_at(rest.len().min(CHUNK));
        ctx.world
            .server_line(ctx.id, "AUTHENTICATE")
            .param(chunk)
            .send();
        rest = tail;
        if rest.is_empty() {
            if chunk.len() == CHUNK {
                ctx.world
                    .server_line(ctx.id, "AUTHENTICATE")
                    .param("+")
                    .send();
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exchange_state_stays_out_of_the_client_record() {
        // It lives in the boxed Login, which most clients never allocate.
        assert!(std::mem::size_of::<Option<Box<super::Sasl>>>() == 8);
    }
}
