//! Slow work a handler asks for, run after the world lock is released.
//!
//! Handlers hold the world lock and must finish quickly, but some commands need work
//! that takes tens of milliseconds of CPU, such as checking an argon2 password hash
//! for `OPER`, SASL and NickServ, or a store query for an account. Such a handler does not do the work itself: it stores
//! a [`Deferred`] job in [`Ctx::deferred`](super::Ctx) and returns. The connection's
//! reader, once `dispatch` has returned and the lock is released, calls [`run`]:
//!
//! 1. [`Deferred::work`] runs the job on tokio's blocking pool, behind
//!    `Shared::slow_work` (a semaphore with a few permits, so a burst of attempts
//!    from many clients queues instead of taking every core);
//! 2. the world is locked again and the job's [`Completion`] is applied by the
//!    handler's completion function (e.g. `oper::finish`), which answers the client.
//!
//! The reader awaits the job before it takes the client's next line, so commands keep
//! their order (a `JOIN` after `OPER` sees the outcome of the `OPER`) and a client can
//! have at most one job in flight: flooding slow commands only slows the flooder.
//!
//! To add a job: a variant here, its work in [`Deferred::work`], a [`Completion`]
//! variant, and the function that finishes it in [`Completion::finish`].

use std::collections::HashMap;
use std::fmt;

use super::{Ctx, account, chanserv, nickserv, oper, sasl};
use crate::scram::ClientFirst;
use crate::secret::Secret;
use palaver_store::{Account, StoreError};
use std::sync::{Arc, Mutex};

use crate::outbox::Outbox;
use crate::world::{ClientId, World};
use crate::{Shared, labeled, lock};

/// Which command an account job answers: the replies differ (numerics and
/// `AUTHENTICATE` for SASL, `FAIL REGISTER` for REGISTER, NOTICEs for NickServ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `AUTHENTICATE`.
    Sasl,
    /// `REGISTER` (draft/account-registration).
    Register,
    /// A NickServ command.
    NickServ,
}

/// Work a handler left to be done outside the world lock.
pub(crate) enum Deferred {
    /// Check `OPER <name> <password>` against the configured argon2id hashes.
    VerifyOper { name: String, password: String },
    /// Check an account's password (SASL PLAIN, NickServ IDENTIFY).
    CheckPassword {
        account: String,
        password: Secret,
        via: Via,
    },
    /// SCRAM: find the verifier of the account the client-first message names.
    ScramLookup { first: Box<ClientFirst> },
    /// Derive the password material and create an account.
    Register {
        name: String,
        password: Secret,
        email: Option<String>,
        via: Via,
    },
    /// NickServ INFO: look an account up.
    AccountInfo { name: String },
    /// NickServ DROP: delete an account.
    DropAccount { name: String },
    /// NickServ SET PASSWORD: derive and store new password material.
    SetPassword { account: String, password: Secret },
    /// Whether `nick` (the client's nick when the job was made) is a registered
    /// account's name, for nick ownership.
    NickOwner { nick: String },
    /// Read history from the store (`CHATHISTORY`).
    History(super::chathistory::Request),
    /// ChanServ REGISTER: store a new channel registration (boxed: it carries the
    /// channel's lists).
    RegisterChannel(Box<palaver_store::ChannelRegistration>),
    /// ChanServ DROP: delete the registration of the channel with folded name `key`.
    DropChannel { key: String, name: String },
    /// NickServ DROP: delete the registrations the dropped account had founded.
    DropChannels { keys: Vec<String> },
    /// NickServ CERT, SASL EXTERNAL: client certificate fingerprints in the store.
    Certfp(super::certfp::Job),
    /// `REHASH`: read the configuration again (see `crate::reload`); `by` is the
    /// operator's nick, for the log and the operators' NOTICE.
    Rehash { by: String },
    /// KLINE, DLINE and their removal: server bans in the store.
    ServerBan(super::bans::Job),
    /// `NICK` on a cluster node: claim the nick cluster-wide before taking it.
    ClaimNick { wanted: String },
    /// `WHOIS` of another node's user `target` (`origin` on its node `node`,
    /// asked for as `nick`): ask that node its idle time before answering.
    RemoteIdle {
        target: ClientId,
        node: Arc<str>,
        origin: u64,
        nick: Box<str>,
    },
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never log the password, nor the name: clients that swap the two
            // parameters send the password as the name.
            Self::VerifyOper { .. } => f.debug_struct("VerifyOper").finish_non_exhaustive(),
            Self::CheckPassword { account, via, .. } => f
                .debug_struct("CheckPassword")
                .field("account", account)
                .field("via", via)
                .finish_non_exhaustive(),
            Self::ScramLookup { first } => f
                .debug_struct("ScramLookup")
                .field("user", &first.user)
                .finish_non_exhaustive(),
            Self::Register { name, via, .. } => f
                .debug_struct("Register")
                .field("name", name)
                .field("via", via)
                .finish_non_exhaustive(),
            Self::AccountInfo { name } => {
                f.debug_struct("AccountInfo").field("name", name).finish()
            }
            Self::DropAccount { name } => {
                f.debug_struct("DropAccount").field("name", name).finish()
            }
            Self::SetPassword { account, .. } => f
                .debug_struct("SetPassword")
                .field("account", account)
                .finish_non_exhaustive(),
            Self::NickOwner { nick } => f.debug_struct("NickOwner").field("nick", nick).finish(),
            Self::History(request) => f.debug_tuple("History").field(request).finish(),
            Self::RegisterChannel(registration) => f
                .debug_tuple("RegisterChannel")
                .field(&registration.key)
                .finish(),
            Self::DropChannel { key, .. } => f
                .debug_struct("DropChannel")
                .field("key", key)
                .finish_non_exhaustive(),
            Self::DropChannels { keys } => {
                f.debug_struct("DropChannels").field("keys", keys).finish()
            }
            Self::Certfp(job) => f.debug_tuple("Certfp").field(job).finish(),
            Self::Rehash { by } => f.debug_struct("Rehash").field("by", by).finish(),
            Self::ServerBan(job) => f.debug_tuple("ServerBan").field(job).finish(),
            Self::ClaimNick { wanted } => {
                f.debug_struct("ClaimNick").field("wanted", wanted).finish()
            }
            Self::RemoteIdle { node, nick, .. } => f
                .debug_struct("RemoteIdle")
                .field("node", node)
                .field("nick", nick)
                .finish_non_exhaustive(),
        }
    }
}

/// The result of a [`Deferred`] job, applied with the world locked.
pub(crate) enum Completion {
    /// Whether `name`'s password matched.
    OperVerified { name: String, ok: bool },
    /// An account password check: the account's registered name if it matched.
    PasswordChecked {
        attempted: String,
        account: Option<String>,
        via: Via,
    },
    /// SCRAM's lookup: the registered name and verifier, if the account exists.
    ScramLookedUp {
        first: Box<ClientFirst>,
        account: Option<(String, palaver_store::ScramVerifier)>,
    },
    /// A registration: created, or the refusal's code and sentence.
    Registered {
        name: String,
        via: Via,
        result: Result<(), (&'static str, &'static str)>,
    },
    /// NickServ INFO's answer (`Err` if the store failed).
    AccountInfo {
        name: String,
        account: Result<Option<Account>, ()>,
    },
    /// NickServ DROP's outcome: whether the account existed and is gone.
    Dropped { name: String, ok: bool },
    /// NickServ SET PASSWORD's outcome.
    PasswordSet { ok: bool },
    /// Nick ownership: the registered name of the account `nick` belongs to.
    NickOwner {
        nick: String,
        account: Option<String>,
    },
    /// What a history query found.
    History(super::chathistory::Found),
    /// ChanServ REGISTER's outcome: stored, or the refusal's sentence.
    ChannelRegistered {
        registration: Box<palaver_store::ChannelRegistration>,
        result: Result<(), &'static str>,
    },
    /// ChanServ DROP's outcome: whether the registration is gone.
    ChannelDropped { key: String, name: String, ok: bool },
    /// NickServ DROP's channel registrations: how many were dropped.
    ChannelsDropped { count: usize },
    /// What a certificate job found.
    Certfp(super::certfp::Done),
    /// Whether a `REHASH` found a configuration source to reload from.
    Rehashed { ran: bool },
    /// What a server-ban job did.
    ServerBan(super::bans::Done),
    /// Whether the cluster let this client have the nick it asked for.
    NickClaimed {
        wanted: String,
        claimed: Result<(), crate::bus::ClaimRefused>,
    },
    /// Another node's user's idle time, if its node answered, for a WHOIS.
    RemoteIdle {
        target: ClientId,
        nick: Box<str>,
        idle: Option<u32>,
    },
}

impl Deferred {
    /// Does the slow part, without the world lock, on the blocking pool.
    async fn work(self, shared: &Shared, id: ClientId) -> Completion {
        match self {
            Self::ClaimNick { wanted } => {
                let claimed = match &shared.claims {
                    Some(claims) => claims.claim(crate::world::World::key(&wanted), id.0).await,
                    None => Ok(()),
                };
                Completion::NickClaimed { wanted, claimed }
            }
            Self::RemoteIdle {
                target,
                node,
                origin,
                nick,
            } => {
                let question = crate::bus::Question::Idle {
                    id: origin,
                    nick: nick.clone(),
                };
                let answer = match &shared.cluster {
                    Some(bus) => bus.ask(&node, &question).await,
                    None => None,
                };
                let idle = match answer {
                    Some(crate::bus::Answer::Idle(idle)) => idle,
                    None => None,
                };
                Completion::RemoteIdle { target, nick, idle }
            }
            Self::VerifyOper { name, password } => {
                let opers = &shared.config().opers;
                let known = opers.iter().find(|oper| oper.name == name);
                // An unknown name is checked against some hash anyway, so the time
                // taken does not reveal which names exist (the reply doesn't either).
                let Some(hash) = known.or(opers.first()).map(|o| o.password_hash.clone()) else {
                    return Completion::OperVerified { name, ok: false };
                };
                let matched = blocking(shared, move || {
                    crate::opers::verify_password(&password, &hash)
                })
                .await
                .unwrap_or(false);
                Completion::OperVerified {
                    ok: known.is_some() && matched,
                    name,
                }
            }
            Self::CheckPassword {
                account,
                password,
                via,
            } => {
                let found = lookup(shared, &account).await.ok().flatten();
                // An unknown name costs an argon2 check too (on a decoy hash), so
                // timing does not tell which accounts exist.
                let (name, hash) = match found {
                    Some(found) => (Some(found.name), Some(found.password_hash)),
                    None => (None, None),
                };
                let matched = blocking(shared, move || {
                    let hash = hash.unwrap_or_else(decoy_hash);
                    crate::accounts::verify(password.expose(), &hash)
                })
                .await
                .unwrap_or(false);
                Completion::PasswordChecked {
                    attempted: account,
                    account: name.filter(|_| matched),
                    via,
                }
            }
            Self::ScramLookup { first } => {
                let account = lookup(shared, &first.user)
                    .await
                    .ok()
                    .flatten()
                    .map(|account| (account.name, account.scram));
                Completion::ScramLookedUp { first, account }
            }
            Self::Register {
                name,
                password,
                email,
                via,
            } => {
                let derived = blocking(shared, move || crate::accounts::derive(password.expose()))
                    .await
                    .and_then(Result::ok);
                let result = match derived {
                    None => Err(("TEMPORARILY_UNAVAILABLE", "Registration failed; try again")),
                    Some(secret) => {
                        let record = crate::accounts::new_account(&name, secret, email);
                        match shared.store.create_account(record).await {
                            Ok(()) => Ok(()),
                            Err(StoreError::AlreadyExists { .. }) => {
                                Err(("ACCOUNT_EXISTS", "That account is already registered"))
                            }
                            Err(error) => {
                                tracing::error!(%error, "cannot create an account");
                                Err(("TEMPORARILY_UNAVAILABLE", "Registration failed; try again"))
                            }
                        }
                    }
                };
                Completion::Registered { name, via, result }
            }
            Self::AccountInfo { name } => Completion::AccountInfo {
                account: lookup(shared, &name).await.map_err(|_| ()),
                name,
            },
            Self::DropAccount { name } => {
                let key = crate::world::World::key(&name);
                let ok = shared
                    .store
                    .delete_account(key.as_str())
                    .await
                    .unwrap_or(false);
                Completion::Dropped { name, ok }
            }
            Self::SetPassword { account, password } => {
                let derived = blocking(shared, move || crate::accounts::derive(password.expose()))
                    .await
                    .and_then(Result::ok);
                let key = crate::world::World::key(&account);
                let ok = match derived {
                    Some(update) => shared
                        .store
                        .set_password(key.as_str(), update)
                        .await
                        .is_ok(),
                    None => false,
                };
                Completion::PasswordSet { ok }
            }
            Self::NickOwner { nick } => {
                let account = lookup(shared, &nick)
                    .await
                    .ok()
                    .flatten()
                    .map(|account| account.name);
                Completion::NickOwner { nick, account }
            }
            // The store's own reader threads do the work: no permit needed.
            Self::History(request) => {
                Completion::History(super::chathistory::query(&*shared.store, request).await)
            }
            Self::RegisterChannel(registration) => {
                let result = match shared.store.register_channel((*registration).clone()).await {
                    Ok(()) => Ok(()),
                    Err(StoreError::AlreadyExists { .. }) => {
                        Err("That channel is already registered")
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot register a channel");
                        Err("Registration failed; try again")
                    }
                };
                Completion::ChannelRegistered {
                    registration,
                    result,
                }
            }
            Self::DropChannel { key, name } => {
                let ok = match shared.store.drop_channel(&key).await {
                    // Gone already is gone.
                    Ok(_) => true,
                    Err(error) => {
                        tracing::error!(%error, "cannot drop a channel registration");
                        false
                    }
                };
                Completion::ChannelDropped { key, name, ok }
            }
            Self::DropChannels { keys } => {
                let mut count = 0;
                for key in &keys {
                    match shared.store.drop_channel(key).await {
                        Ok(_) => count += 1,
                        Err(error) => {
                            tracing::error!(%error, "cannot drop a channel registration");
                        }
                    }
                }
                Completion::ChannelsDropped { count }
            }
            // The store's own threads do the work: no permit needed.
            Self::Certfp(job) => Completion::Certfp(super::certfp::work(&*shared.store, job).await),
            Self::Rehash { by } => {
                let reloader = shared.config().reloader.clone();
                let ran = match reloader {
                    // The outcome reaches every operator from `reload` itself.
                    Some(reloader) => {
                        let _ = crate::reload::reload(shared, &reloader, &by).await;
                        true
                    }
                    None => false,
                };
                Completion::Rehashed { ran }
            }
            // The store's own threads do the work: no permit needed.
            Self::ServerBan(job) => {
                Completion::ServerBan(super::bans::work(&*shared.store, job).await)
            }
        }
    }
}

/// The account named `name` (folded here), from the store.
async fn lookup(shared: &Shared, name: &str) -> Result<Option<Account>, StoreError> {
    let key = crate::world::World::key(name);
    let found = shared.store.account(key.as_str()).await;
    if let Err(error) = &found {
        tracing::error!(%error, "cannot read an account");
    }
    found
}

/// An argon2id hash no password matches, made once: unknown accounts are checked
/// against it so that they cost what a wrong password does.
fn decoy_hash() -> String {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            crate::opers::hash_password(&crate::accounts::random_token(24)).unwrap_or_default()
        })
        .clone()
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The name may be a password (see `Deferred`'s Debug).
            Self::OperVerified { ok, .. } => f
                .debug_struct("OperVerified")
                .field("ok", ok)
                .finish_non_exhaustive(),
            // The attempted name of a failed check may be a password typed in the
            // wrong place; only the outcome is shown.
            Self::PasswordChecked { account, via, .. } => f
                .debug_struct("PasswordChecked")
                .field("ok", &account.is_some())
                .field("via", via)
                .finish_non_exhaustive(),
            Self::ScramLookedUp { account, .. } => f
                .debug_struct("ScramLookedUp")
                .field("found", &account.is_some())
                .finish_non_exhaustive(),
            Self::Registered { name, via, result } => f
                .debug_struct("Registered")
                .field("name", name)
                .field("via", via)
                .field("result", result)
                .finish(),
            Self::AccountInfo { name, .. } => f
                .debug_struct("AccountInfo")
                .field("name", name)
                .finish_non_exhaustive(),
            Self::Dropped { name, ok } => f
                .debug_struct("Dropped")
                .field("name", name)
                .field("ok", ok)
                .finish(),
            Self::PasswordSet { ok } => f.debug_struct("PasswordSet").field("ok", ok).finish(),
            Self::NickClaimed { wanted, claimed } => f
                .debug_struct("NickClaimed")
                .field("wanted", wanted)
                .field("claimed", claimed)
                .finish(),
            Self::NickOwner { nick, account } => f
                .debug_struct("NickOwner")
                .field("nick", nick)
                .field("account", account)
                .finish(),
            Self::History(found) => f.debug_tuple("History").field(found).finish(),
            Self::ChannelRegistered {
                registration,
                result,
            } => f
                .debug_struct("ChannelRegistered")
                .field("key", &registration.key)
                .field("result", result)
                .finish(),
            Self::ChannelDropped { key, ok, .. } => f
                .debug_struct("ChannelDropped")
                .field("key", key)
                .field("ok", ok)
                .finish_non_exhaustive(),
            Self::ChannelsDropped { count } => f
                .debug_struct("ChannelsDropped")
                .field("count", count)
                .finish(),
            Self::Certfp(done) => f.debug_tuple("Certfp").field(done).finish(),
            Self::Rehashed { ran } => f.debug_struct("Rehashed").field("ran", ran).finish(),
            Self::ServerBan(done) => f.debug_tuple("ServerBan").field(done).finish(),
            Self::RemoteIdle { nick, idle, .. } => f
                .debug_struct("RemoteIdle")
                .field("nick", nick)
                .field("idle", idle)
                .finish_non_exhaustive(),
        }
    }
}

impl Completion {
    /// Applies the result: the handler's own completion function answers the client.
    fn finish(self, ctx: &mut Ctx<'_>) {
        match self {
            Self::OperVerified { name, ok } => oper::finish(ctx, &name, ok),
            Self::PasswordChecked {
                attempted,
                account,
                via,
            } => match via {
                Via::Sasl => sasl::credential_checked(ctx, account),
                _ => nickserv::identified(ctx, &attempted, account),
            },
            Self::ScramLookedUp { first, account } => sasl::scram_looked_up(ctx, &first, account),
            Self::Registered { name, via, result } => {
                if result.is_ok() {
                    ctx.world.account_names.insert(World::key(&name));
                    ctx.world.announce_account_name(&name, true);
                }
                account::registered(ctx, &name, via, result);
            }
            Self::AccountInfo { name, account } => nickserv::info_found(ctx, &name, account),
            Self::Dropped { name, ok } => {
                if ok {
                    ctx.world.account_names.remove(&World::key(&name));
                    ctx.world.announce_account_name(&name, false);
                }
                nickserv::dropped(ctx, &name, ok);
            }
            Self::PasswordSet { ok } => nickserv::password_set(ctx, ok),
            Self::NickOwner { nick, account } => nickserv::nick_owner(ctx, &nick, account),
            Self::History(found) => super::chathistory::finish(ctx, found),
            Self::ChannelRegistered {
                registration,
                result,
            } => chanserv::channel_registered(ctx, *registration, result),
            Self::ChannelDropped { key, name, ok } => {
                chanserv::channel_dropped(ctx, &key, &name, ok);
            }
            Self::ChannelsDropped { count } => chanserv::founded_dropped(ctx, count),
            Self::Certfp(done) => super::certfp::finish(ctx, done),
            Self::Rehashed { ran } => oper::rehashed(ctx, ran),
            Self::ServerBan(done) => super::bans::finish(ctx, done),
            Self::NickClaimed { wanted, claimed } => {
                super::registration::nick_claimed(ctx, &wanted, claimed);
            }
            Self::RemoteIdle { target, nick, idle } => {
                super::query::remote_idle_known(ctx, target, &nick, idle);
            }
        }
    }
}

/// Runs `job` on the blocking pool once a `slow_work` permit is free; `None` if the
/// job panicked.
async fn blocking<T: Send + 'static>(
    shared: &Shared,
    job: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    // The semaphore is never closed; if it were, running without a permit is safe.
    let _permit = shared.slow_work.acquire().await.ok();
    tokio::task::spawn_blocking(job).await.ok()
}

/// Runs a deferred job for client `id` and completes it with the world locked.
/// Returns the reason to close the connection, if the completion decided so.
/// A labeled command's label (and earlier replies) is honoured for the completion's
/// replies too.
pub(crate) async fn run(
    shared: &Shared,
    id: ClientId,
    job: Deferred,
    mut labeled: Option<labeled::Pending>,
) -> Option<String> {
    let mut job = job;
    // A completion may defer more work (a registration that completes after SASL
    // looks up who owns the nick): it runs before the client's next line too.
    for _ in 0..MAX_CHAINED_JOBS {
        let completion = job.work(shared, id).await;
        let mut world = shared.lock_world();
        let outbox = world.clients.get(&id).map(|c| Arc::clone(&c.outbox))?;
        if labeled.is_some() {
            outbox.begin_capture();
        }
        let mut ctx = Ctx::new(&mut world, id);
        completion.finish(&mut ctx);
        let quit = ctx.quit.take();
        let again = ctx.deferred.take();
        if let Some(labeled::Pending { label, replies }) = labeled.as_mut() {
            replies.extend(outbox.end_capture());
            if quit.is_some() || again.is_none() {
                let replies = std::mem::take(replies);
                labeled::deliver(&mut world, id, label, replies);
            }
        }
        match again {
            Some(next) if quit.is_none() => job = next,
            _ => return quit,
        }
    }
    tracing::warn!(
        client = id.0,
        "deferred jobs chained too long; the last one was dropped"
    );
    None
}

/// How many jobs one command may chain (see [`run`]).
const MAX_CHAINED_JOBS: usize = 4;

/// Results of deferred jobs, waiting for their connection's next poll.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    /// By client: `Some(reason)` if the job's completion ends the connection.
    done: Mutex<HashMap<ClientId, Option<String>>>,
}

impl Jobs {
    /// Runs `job` for client `id` in a task of its own, then wakes the connection.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        shared: Arc<Shared>,
        id: ClientId,
        job: Deferred,
        labeled: Option<labeled::Pending>,
        outbox: Arc<Outbox>,
    ) {
        let jobs = Arc::clone(self);
        tokio::spawn(async move {
            let quit = run(&shared, id, job, labeled).await;
            lock(&jobs.done).insert(id, quit);
            outbox.wake_connection();
        });
    }

    /// The result of client `id`'s job, once it is done.
    pub(crate) fn take(&self, id: ClientId) -> Option<Option<String>> {
        lock(&self.done).remove(&id)
    }

    /// Forgets the result of a job whose connection ended before it finished.
    pub(crate) fn forget(&self, id: ClientId) {
        lock(&self.done).remove(&id);
    }
}
