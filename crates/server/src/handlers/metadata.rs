//! `METADATA` (IRCv3 `draft/metadata-3`): GET LIST SET CLEAR SUB UNSUB SUBS SYNC,
//! and the metadata that other commands carry: the registration burst, JOIN and
//! WHOIS.
//!
//! Targets are `*` (oneself; the only target before registration, which
//! `before-connect` allows), a nickname or a channel. Anyone may read a user's
//! metadata; a channel's is readable by its members only and writable by its
//! operators; a user's is writable by that user only. Replies and notifications are
//! the numerics `761 RPL_KEYVALUE` / `766 RPL_KEYNOTSET`; errors are standard
//! replies (`FAIL METADATA <code> ...`). Answers made of several lines are framed in
//! a `metadata` (or `metadata-subs`) batch for clients with `batch`.
//!
//! Subscribing after registration answers `774 RPL_METADATASYNCLATER *ALL 0`, so the
//! client fetches current values with `METADATA *ALL SYNC` when it is ready, instead
//! of receiving an unbounded burst in reply to SUB.

use bytes::Bytes;
use palaver_proto::numeric::{
    RPL_METADATASUBOK, RPL_METADATASUBS, RPL_METADATASYNCLATER, RPL_METADATAUNSUBOK,
    RPL_WHOISKEYVALUE,
};
use palaver_proto::{CaseKey, LineWriter, Message};

use super::Ctx;
use crate::caps;
use crate::world::metadata::{Full, Store, is_valid_key, max_value_bytes};
use crate::world::{ClientId, World};

/// Keys WHOIS shows (`760 RPL_WHOISKEYVALUE`): short ones meant for people to read.
const WHOIS_KEYS: &[&str] = &["display-name", "pronouns", "status", "homepage"];
/// Bytes of key names in one 770/771/772 line before continuing on the next.
const KEYS_PER_LINE_BYTES: usize = 300;
/// Seconds a client is asked to wait before retrying a synchronisation too large
/// to send now.
const RETRY_AFTER_SECONDS: &str = "5";

/// What a METADATA command is about.
#[derive(Debug, Clone)]
enum Target {
    /// The caller.
    Me,
    /// Another registered client.
    User(ClientId),
    /// A channel, by folded name.
    Channel(CaseKey),
}

/// `METADATA <target> <subcommand> [<param>...]`.
pub(super) fn metadata(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(target), Some(sub)) = (msg.param(0), msg.param(1)) else {
        fail(ctx, "INVALID_PARAMS", &["*"], "Not enough parameters");
        return;
    };
    let args = msg.params().get(2..).unwrap_or_default();
    let upper = sub.to_ascii_uppercase();
    let needs_args = matches!(upper.as_str(), "GET" | "SET" | "SUB" | "UNSUB");
    if needs_args && args.is_empty() {
        fail(ctx, "INVALID_PARAMS", &[&upper], "Not enough parameters");
        return;
    }
    if upper == "SET" && args.len() > 2 {
        fail(ctx, "INVALID_PARAMS", &[&upper], "Too many parameters");
        return;
    }
    match upper.as_str() {
        "SUB" | "UNSUB" | "SUBS" => {
            if !matches!(resolve(ctx, target), Some((Target::Me, _))) {
                fail(ctx, "INVALID_TARGET", &[target], "Invalid metadata target");
                return;
            }
            match upper.as_str() {
                "SUB" => sub_keys(ctx, args),
                "UNSUB" => unsub_keys(ctx, args),
                _ => list_subs(ctx),
            }
            return;
        }
        "SYNC" if target == "*ALL" => {
            sync(ctx, None, "*ALL");
            return;
        }
        "GET" | "LIST" | "SET" | "CLEAR" | "SYNC" => {}
        _ => {
            fail(ctx, "INVALID_PARAMS", &[sub], "Unknown subcommand");
            return;
        }
    }
    let Some((target, name)) = resolve(ctx, target) else {
        fail(ctx, "INVALID_TARGET", &[target], "Invalid metadata target");
        return;
    };
    match upper.as_str() {
        "GET" => get(ctx, &target, &name, args),
        "LIST" => list(ctx, &target, &name),
        "SET" => set(ctx, &target, &name, args[0], args.get(1).copied()),
        "CLEAR" => clear(ctx, &target, &name),
        _ => {
            if can_read(ctx, &target) {
                sync(ctx, Some(&target), &name);
            } else {
                no_permission(ctx, &name, "*");
            }
        }
    }
}

/// The target named `name`, and the name to show for it; `None` if there is no such
/// target (before registration only `*` exists).
fn resolve(ctx: &Ctx<'_>, name: &str) -> Option<(Target, String)> {
    let me = ctx.me();
    if name == "*" {
        let shown = if me.is_registered() { me.nick() } else { "*" };
        return Some((Target::Me, shown.to_owned()));
    }
    if !me.is_registered() {
        return None;
    }
    if name.starts_with('#') {
        let key = World::key(name);
        // To an outsider a secret channel is no target at all, as a missing one.
        let channel = ctx.world.channel_known_to(&key, ctx.id)?;
        let shown = channel.name.clone();
        return Some((Target::Channel(key), shown));
    }
    let client = ctx.world.find_nick(name).filter(|c| c.is_registered())?;
    let target = if client.id == ctx.id {
        Target::Me
    } else {
        Target::User(client.id)
    };
    Some((target, client.nick().to_owned()))
}

/// Users' metadata is public; a channel's is for its members.
fn can_read(ctx: &Ctx<'_>, target: &Target) -> bool {
    match target {
        Target::Me | Target::User(_) => true,
        Target::Channel(key) => ctx
            .world
            .channels
            .get(key)
            .is_some_and(|c| c.members.contains_key(&ctx.id)),
    }
}

/// Only a user changes its own metadata; channel operators change the channel's.
fn can_write(ctx: &Ctx<'_>, target: &Target) -> bool {
    match target {
        Target::Me => true,
        Target::User(_) => false,
        Target::Channel(key) => ctx.world.channels.get(key).is_some_and(|c| c.is_op(ctx.id)),
    }
}

fn store<'w>(world: &'w World, me: ClientId, target: &Target) -> Option<&'w Store> {
    match target {
        Target::Me => world.clients.get(&me).map(|c| &c.metadata().values),
        Target::User(id) => world.clients.get(id).map(|c| &c.metadata().values),
        Target::Channel(key) => world.channels.get(key).map(|c| &c.metadata),
    }
}

fn store_mut<'w>(world: &'w mut World, me: ClientId, target: &Target) -> Option<&'w mut Store> {
    match target {
        Target::Me => world
            .clients
            .get_mut(&me)
            .map(|c| &mut c.metadata_mut().values),
        Target::User(id) => world
            .clients
            .get_mut(id)
            .map(|c| &mut c.metadata_mut().values),
        Target::Channel(key) => world.channels.get_mut(key).map(|c| &mut c.metadata),
    }
}

/// `GET <key>...`: one 761, 766 or `WARN INVALID_KEY` per key, in order, in a batch.
fn get(ctx: &mut Ctx<'_>, target: &Target, name: &str, keys: &[&str]) {
    if !can_read(ctx, target) {
        no_permission(ctx, name, "*");
        return;
    }
    let mut batch = Batch::open(ctx, "metadata", Some(name));
    let max_key = ctx.world.config.limits.metadata_key_bytes;
    let world = &*ctx.world;
    let values = store(world, ctx.id, target);
    for key in keys {
        if is_valid_key(key, max_key) {
            let value = values.and_then(|s| s.get(key));
            batch.value(world, name, key, value);
        } else {
            batch.standard(world, "WARN", "INVALID_KEY", &[key], "Invalid key");
        }
    }
    batch.send(ctx);
}

/// `LIST`: every key and value, in a batch.
fn list(ctx: &mut Ctx<'_>, target: &Target, name: &str) {
    if !can_read(ctx, target) {
        no_permission(ctx, name, "*");
        return;
    }
    let mut batch = Batch::open(ctx, "metadata", Some(name));
    let world = &*ctx.world;
    for (key, value) in store(world, ctx.id, target)
        .into_iter()
        .flat_map(Store::iter)
    {
        batch.value(world, name, key, Some(value));
    }
    batch.send(ctx);
}

/// `SET <key> [<value>]`: sets or (without a value) removes one key.
fn set(ctx: &mut Ctx<'_>, target: &Target, name: &str, key: &str, value: Option<&str>) {
    let limits = &ctx.world.config.limits;
    let (max_keys, max_key) = (limits.metadata_max_keys, limits.metadata_key_bytes);
    let max_value = max_value_bytes(&ctx.world.config);
    if !is_valid_key(key, max_key) {
        fail(ctx, "INVALID_KEY", &[key], "Invalid key");
        return;
    }
    if !can_write(ctx, target) {
        no_permission(ctx, name, key);
        return;
    }
    let value = value.filter(|v| !v.is_empty());
    if value.is_some_and(|v| v.len() > max_value) {
        let text = format!("Value too long (at most {max_value} bytes)");
        fail(ctx, "INVALID_VALUE", &[key], &text);
        return;
    }
    let server_full = ctx.world.metadata_total >= ctx.world.config.limits.max_metadata_total;
    let Some(values) = store_mut(ctx.world, ctx.id, target) else {
        return;
    };
    if server_full && value.is_some() && values.get(key).is_none() {
        fail(
            ctx,
            "LIMIT_REACHED",
            &["SET", name, &max_keys.to_string()],
            "The server holds as much metadata as it allows",
        );
        return;
    }
    let keys_before = values.len();
    let changed = match value {
        Some(value) => match values.set(key, value, max_keys) {
            Ok(changed) => changed,
            Err(Full) => {
                let text = "Metadata limit reached";
                fail(
                    ctx,
                    "LIMIT_REACHED",
                    &["SET", name, &max_keys.to_string()],
                    text,
                );
                return;
            }
        },
        None => values.remove(key),
    };
    let keys_after = values.len();
    ctx.world.metadata_total = (ctx.world.metadata_total + keys_after).saturating_sub(keys_before);
    let me = ctx.me();
    me.send(ctx.world.metadata_line(None, me.nick(), name, key, value));
    if changed {
        notify(ctx, target, name, key, value);
    }
}

/// `CLEAR`: removes every key; a batch of 766, one per key removed.
fn clear(ctx: &mut Ctx<'_>, target: &Target, name: &str) {
    if !can_write(ctx, target) {
        no_permission(ctx, name, "*");
        return;
    }
    let removed = store_mut(ctx.world, ctx.id, target)
        .map(Store::clear)
        .unwrap_or_default();
    ctx.world.metadata_total = ctx.world.metadata_total.saturating_sub(removed.len());
    let mut batch = Batch::open(ctx, "metadata", Some(name));
    for key in &removed {
        batch.value(ctx.world, name, key, None);
    }
    batch.send(ctx);
    for key in &removed {
        notify(ctx, target, name, key, None);
    }
}

/// Tells the subscribers who can see `target` that `key` changed.
fn notify(ctx: &Ctx<'_>, target: &Target, name: &str, key: &str, value: Option<&str>) {
    let recipients = match target {
        // Before registration nobody can see the client (not even by MONITOR).
        Target::Me if ctx.me().is_registered() => {
            ctx.world.metadata_watchers_of_client(ctx.id, key)
        }
        Target::Channel(folded) => {
            ctx.world
                .metadata_watchers_of_channel(folded.as_str(), key, ctx.id)
        }
        Target::Me | Target::User(_) => return,
    };
    ctx.world.notify_metadata(&recipients, name, key, value);
}

/// `SUB <key>...`: subscribes in order until the limit; `770` lists the keys now
/// subscribed, invalid keys get `WARN INVALID_KEY`, the first key past the limit
/// `FAIL LIMIT_REACHED`.
fn sub_keys(ctx: &mut Ctx<'_>, keys: &[&str]) {
    let limits = &ctx.world.config.limits;
    let (max_subs, max_key) = (limits.metadata_max_subs, limits.metadata_key_bytes);
    let mut accepted = Vec::new();
    let mut invalid = Vec::new();
    let mut refused = None;
    let mut added = false;
    let subs = &mut ctx.me_mut().metadata_mut().subs;
    for key in keys {
        if !is_valid_key(key, max_key) {
            invalid.push(*key);
            continue;
        }
        match subs.add(key, max_subs) {
            Ok(new) => {
                added |= new;
                accepted.push(*key);
            }
            Err(Full) => {
                refused = Some(*key);
                break;
            }
        }
    }
    key_lines(ctx, RPL_METADATASUBOK, &accepted);
    for key in invalid {
        standard(ctx, "WARN", "INVALID_KEY", &[key], "Invalid key");
    }
    if let Some(key) = refused {
        let max = max_subs.to_string();
        fail(
            ctx,
            "LIMIT_REACHED",
            &["SUB", key, &max],
            "Too many subscriptions",
        );
    }
    if added && ctx.me().is_registered() {
        ctx.numeric(RPL_METADATASYNCLATER)
            .param("*ALL")
            .param("0")
            .trailing("Use METADATA *ALL SYNC for the current values")
            .send();
    }
}

/// `UNSUB <key>...`: `771` lists the keys no longer subscribed.
fn unsub_keys(ctx: &mut Ctx<'_>, keys: &[&str]) {
    let max_key = ctx.world.config.limits.metadata_key_bytes;
    let (valid, invalid): (Vec<&str>, Vec<&str>) =
        keys.iter().partition(|key| is_valid_key(key, max_key));
    let subs = &mut ctx.me_mut().metadata_mut().subs;
    for key in &valid {
        subs.remove(key);
    }
    key_lines(ctx, RPL_METADATAUNSUBOK, &valid);
    for key in invalid {
        standard(ctx, "WARN", "INVALID_KEY", &[key], "Invalid key");
    }
}

/// `SUBS`: the subscribed keys, in a `metadata-subs` batch.
fn list_subs(ctx: &mut Ctx<'_>) {
    let mut batch = Batch::open(ctx, "metadata-subs", None);
    let keys: Vec<&str> = ctx.me().metadata().subs.iter().collect();
    for chunk in key_chunks(&keys) {
        let mut line = batch.start_line(ctx.world, RPL_METADATASUBS);
        for key in chunk {
            line.param(key);
        }
        batch.lines.push(line.finish());
    }
    batch.send(ctx);
}

/// 770/771 lines listing `keys`, one key per parameter.
fn key_lines(ctx: &Ctx<'_>, code: &str, keys: &[&str]) {
    for chunk in key_chunks(keys) {
        let mut reply = ctx.numeric(code);
        for key in chunk {
            reply = reply.param(key);
        }
        reply.send();
    }
}

/// `keys` cut into groups that fit a line (and the 15-parameter limit).
fn key_chunks<'k>(keys: &[&'k str]) -> Vec<Vec<&'k str>> {
    let mut chunks: Vec<Vec<&str>> = Vec::new();
    let mut bytes = 0;
    for key in keys {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < 12 && bytes + key.len() < KEYS_PER_LINE_BYTES => {
                chunk.push(key);
                bytes += key.len() + 1;
            }
            _ => {
                chunks.push(vec![key]);
                bytes = key.len() + 1;
            }
        }
    }
    chunks
}

/// `SYNC`: the subscribed keys of `target` (and, for a channel, of its other
/// members); `None` means every target the client can see (`*ALL`). Answers
/// `774 RPL_METADATASYNCLATER` instead when the batch would take more than a quarter
/// of the client's send queue.
fn sync(ctx: &mut Ctx<'_>, target: Option<&Target>, name: &str) {
    let mut batch = Batch::open(ctx, "metadata", Some(name));
    let world = &*ctx.world;
    let me = ctx.me();
    let subs = &me.metadata().subs;
    let mut channels: Vec<&CaseKey> = Vec::new();
    let mut users: Vec<ClientId> = Vec::new();
    match target {
        None => {
            channels.extend(me.channels.iter());
            users.extend(
                me.channels
                    .iter()
                    .filter_map(|k| world.channels.get(k))
                    .flat_map(|c| c.members.keys().copied()),
            );
            users.extend(
                world
                    .monitors
                    .list(ctx.id)
                    .iter()
                    .filter_map(|(key, _)| world.nicks.get(key).copied()),
            );
        }
        Some(Target::Me) => users.push(ctx.id),
        Some(Target::User(id)) => users.push(*id),
        Some(Target::Channel(key)) => {
            channels.push(key);
            users.extend(
                world
                    .channels
                    .get(key)
                    .into_iter()
                    .flat_map(|c| c.members.keys().copied())
                    .filter(|id| *id != ctx.id),
            );
        }
    }
    if target.is_none() {
        users.retain(|id| *id != ctx.id);
    }
    users.sort_unstable();
    users.dedup();
    for channel in channels.iter().filter_map(|key| world.channels.get(*key)) {
        for (key, value) in channel.metadata.iter().filter(|(k, _)| subs.contains(k)) {
            batch.value(world, &channel.name, key, Some(value));
        }
    }
    for client in users.iter().filter_map(|id| world.clients.get(id)) {
        if !client.is_registered() {
            continue;
        }
        let values = client
            .metadata()
            .values
            .iter()
            .filter(|(k, _)| subs.contains(k));
        for (key, value) in values {
            batch.value(world, client.nick(), key, Some(value));
        }
    }
    if batch.bytes() > world.config.limits.sendq_bytes / 4 {
        ctx.numeric(RPL_METADATASYNCLATER)
            .param(name)
            .param(RETRY_AFTER_SECONDS)
            .trailing("Too much metadata to send now; try METADATA SYNC later")
            .send();
        return;
    }
    batch.send(ctx);
}

/// After a JOIN: a client with metadata gets the channel's and its members'
/// subscribed metadata, as `METADATA <channel> SYNC` would give it.
pub(super) fn after_join(ctx: &mut Ctx<'_>, folded: &CaseKey) {
    if !ctx.me().caps.has(caps::METADATA) {
        return;
    }
    let Some(name) = ctx.world.channels.get(folded).map(|c| c.name.clone()) else {
        return;
    };
    sync(ctx, Some(&Target::Channel(folded.clone())), &name);
}

/// In the welcome burst (before the MOTD): a client that negotiated metadata gets
/// its own, e.g. what it set before registering, in a batch.
pub(super) fn welcome_burst(ctx: &mut Ctx<'_>) {
    if !ctx.me().caps.has(caps::METADATA) {
        return;
    }
    let nick = ctx.me().nick().to_owned();
    let mut batch = Batch::open(ctx, "metadata", Some(&nick));
    let world = &*ctx.world;
    for (key, value) in ctx.me().metadata().values.iter() {
        batch.value(world, &nick, key, Some(value));
    }
    batch.send(ctx);
}

/// WHOIS: `760 RPL_WHOISKEYVALUE` for the human-readable keys `target` set.
pub(super) fn whois_lines(ctx: &Ctx<'_>, target: ClientId) {
    let Some(client) = ctx.world.clients.get(&target) else {
        return;
    };
    for key in WHOIS_KEYS {
        if let Some(value) = client.metadata().values.get(key) {
            ctx.numeric(RPL_WHOISKEYVALUE)
                .param(client.nick())
                .param(key)
                .param("*")
                .trailing(value)
                .send();
        }
    }
}

/// `FAIL METADATA <code> <params...> :<text>`.
fn fail(ctx: &Ctx<'_>, code: &str, params: &[&str], text: &str) {
    standard(ctx, "FAIL", code, params, text);
}

fn no_permission(ctx: &Ctx<'_>, name: &str, key: &str) {
    fail(ctx, "KEY_NO_PERMISSION", &[name, key], "Permission denied");
}

/// A standard reply (`FAIL`, `WARN`, `NOTE`) for the METADATA command.
fn standard(ctx: &Ctx<'_>, kind: &str, code: &str, params: &[&str], text: &str) {
    ctx.world
        .standard_reply(ctx.id, kind, "METADATA", code, params, text);
}

/// Lines for the caller framed as one batch when it negotiated `batch` (and sent as
/// they are otherwise).
struct Batch {
    reference: Option<String>,
    kind: &'static str,
    param: Option<String>,
    /// The caller's nickname, the first parameter of every numeric.
    nick: String,
    lines: Vec<Bytes>,
}

impl Batch {
    fn open(ctx: &mut Ctx<'_>, kind: &'static str, param: Option<&str>) -> Self {
        let me = ctx.me();
        let nick = me.nick().to_owned();
        let framed = me.caps.has(caps::BATCH);
        Self {
            reference: framed.then(|| ctx.world.next_id_string()),
            kind,
            param: param.map(str::to_owned),
            nick,
            lines: Vec::new(),
        }
    }

    /// `761`/`766` for `key` on `target`.
    fn value(&mut self, world: &World, target: &str, key: &str, value: Option<&str>) {
        let line = world.metadata_line(self.reference.as_deref(), &self.nick, target, key, value);
        self.lines.push(line);
    }

    /// A standard reply inside the batch.
    fn standard(&mut self, world: &World, kind: &str, code: &str, params: &[&str], text: &str) {
        let mut line = self.tagged(world);
        line.command(kind).param("METADATA").param(code);
        for param in params {
            line.param(param);
        }
        line.trailing(text);
        self.lines.push(line.finish());
    }

    /// A numeric inside the batch, up to the caller's nickname.
    fn start_line(&self, world: &World, code: &str) -> LineWriter {
        let mut line = self.tagged(world);
        line.command(code).param(&self.nick);
        line
    }

    fn tagged(&self, world: &World) -> LineWriter {
        let mut line = LineWriter::new();
        if let Some(reference) = &self.reference {
            line.tag("batch", Some(reference));
        }
        line.source(&world.config.server_name);
        line
    }

    fn bytes(&self) -> usize {
        self.lines.iter().map(Bytes::len).sum()
    }

    fn send(self, ctx: &Ctx<'_>) {
        let me = ctx.me();
        let server = &ctx.world.config.server_name;
        if let Some(reference) = &self.reference {
            let mut start = LineWriter::new();
            start
                .source(server)
                .command("BATCH")
                .param(&format!("+{reference}"))
                .param(self.kind);
            if let Some(param) = &self.param {
                start.param(param);
            }
            me.send(start.finish());
        }
        for line in self.lines {
            me.send(line);
        }
        if let Some(reference) = &self.reference {
            let mut end = LineWriter::new();
            end.source(server)
                .command("BATCH")
                .param(&format!("-{reference}"));
            me.send(end.finish());
        }
    }
}
