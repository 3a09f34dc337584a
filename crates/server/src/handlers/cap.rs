//! `CAP` capability negotiation (IRCv3 CAP 302).
//!
//! LS and REQ before registration suspend it until `CAP END`, so a client can finish
//! negotiating before the welcome burst; a client that never sends CAP registers as
//! usual. REQ is atomic: one unknown capability NAKs the whole request.

use palaver_proto::Message;

use super::Ctx;
use super::registration::try_complete;
use crate::caps;
use crate::config::Config;

/// `ERR_INVALIDCAPCMD`, numerics table style; only CAP uses it.
const ERR_INVALIDCAPCMD: &str = "410";

/// The value CAP LS 302 shows after `name=`, for capabilities that have one.
fn cap_value(cap: caps::Cap, config: &Config) -> Option<String> {
    match cap.name {
        name if name == caps::METADATA.name => Some(crate::world::metadata::cap_value(config)),
        name if name == caps::SASL.name => Some(super::sasl::mechanisms(config).to_owned()),
        // Names other than the nick may be registered.
        name if name == caps::ACCOUNT_REGISTRATION.name => {
            let mut value = String::new();
            if config.accounts.register_before_connect {
                value.push_str("before-connect,");
            }
            if config.accounts.email_required {
                value.push_str("email-required,");
            }
            value.push_str("custom-account-name");
            Some(value)
        }
        name if name == caps::MULTILINE.name => Some(format!(
            "max-bytes={},max-lines={}",
            config.limits.multiline_max_bytes, config.limits.multiline_max_lines
        )),
        _ => None,
    }
}

/// The `sts` entry of CAP LS, if the server has a policy: on a plain connection
/// where TLS is (`port`), on a TLS one how long to insist on it (`duration`). It
/// is not in the requestable table: clients only read it.
fn sts_value(ctx: &Ctx<'_>) -> Option<String> {
    let sts = ctx.world.config.sts?;
    if ctx.me().cap_version < 302 {
        return Some("sts".to_owned());
    }
    Some(if ctx.me().tls {
        format!("sts=duration={}", sts.duration.as_secs())
    } else {
        format!("sts=port={}", sts.port)
    })
}

pub(super) fn cap(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(sub) = msg.param(0) else {
        ctx.need_more_params("CAP");
        return;
    };
    match sub.to_ascii_uppercase().as_str() {
        "LS" => {
            let version = msg
                .param(1)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            let me = ctx.me_mut();
            if !me.is_registered() {
                me.cap_negotiating = true;
            }
            me.cap_version = me.cap_version.max(version);
            if me.cap_version >= 302 {
                me.caps.set(caps::CAP_NOTIFY, true);
                me.outbox.set_caps(me.caps);
            }
            // CAP LS 302 shows values (`name=value`); older clients only names.
            let values = ctx.me().cap_version >= 302;
            let config = &ctx.world.config;
            let entries: Vec<String> = caps::SUPPORTED
                .iter()
                .map(|&cap| match cap_value(cap, config).filter(|_| values) {
                    Some(value) => format!("{}={value}", cap.name),
                    None => cap.name.to_owned(),
                })
                .collect();
            let mut entries = entries;
            if let Some(sts) = sts_value(ctx) {
                entries.push(sts);
            }
            let names: Vec<&str> = entries.iter().map(String::as_str).collect();
            send_list(ctx, "LS", &names);
        }
        "LIST" => {
            let names: Vec<&str> = ctx.me().caps.iter().map(|cap| cap.name).collect();
            send_list(ctx, "LIST", &names);
        }
        "REQ" => {
            let Some(request) = msg.param(1) else {
                ctx.need_more_params("CAP");
                return;
            };
            if !ctx.me().is_registered() {
                ctx.me_mut().cap_negotiating = true;
            }
            let mut changes = Vec::new();
            for token in request.split(' ').filter(|t| !t.is_empty()) {
                let (name, enable) = match token.strip_prefix('-') {
                    Some(name) => (name, false),
                    None => (token, true),
                };
                match caps::by_name(name) {
                    Some(cap) => changes.push((cap, enable)),
                    None => {
                        reply(ctx, "NAK", request);
                        return;
                    }
                }
            }
            let me = ctx.me_mut();
            for (cap, enable) in changes {
                me.caps.set(cap, enable);
            }
            if !me.caps.has(caps::METADATA) {
                // Removing the capability drops the subscriptions (metadata spec).
                me.drop_metadata_subscriptions();
            }
            me.outbox.set_caps(me.caps);
            ctx.world.announce_user_state(ctx.id);
            reply(ctx, "ACK", request);
        }
        "END" => {
            ctx.me_mut().cap_negotiating = false;
            try_complete(ctx);
        }
        _ => {
            ctx.numeric(ERR_INVALIDCAPCMD)
                .param(sub)
                .trailing("Invalid CAP subcommand")
                .send();
        }
    }
}

fn reply(ctx: &Ctx<'_>, sub: &str, text: &str) {
    ctx.world
        .server_line(ctx.id, "CAP")
        .param(ctx.me().nick())
        .param(sub)
        .trailing(text)
        .send();
}

/// Sends LS or LIST, split over several lines (`CAP * LS * :...`) when long.
fn send_list(ctx: &Ctx<'_>, sub: &str, names: &[&str]) {
    let mut chunks: Vec<String> = vec![String::new()];
    // Fill each line to the 510-byte limit (`:server CAP nick LS * :` is the fixed
    // part): some clients mishandle continuation lines, so use as few as possible.
    let per_line =
        510 - (ctx.world.config.server_name.len() + ctx.me().nick().len() + sub.len() + 12);
    for name in names {
        let current = chunks.last_mut().map(|c| c.len()).unwrap_or(0);
        if current > 0 && current + name.len() + 1 > per_line {
            chunks.push(String::new());
        }
        if let Some(chunk) = chunks.last_mut() {
            if !chunk.is_empty() {
                chunk.push(' ');
            }
            chunk.push_str(name);
        }
    }
    let multiline = ctx.me().cap_version >= 302;
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.iter().enumerate() {
        let mut line = ctx
            .world
            .server_line(ctx.id, "CAP")
            .param(ctx.me().nick())
            .param(sub);
        if index < last && multiline {
            line = line.param("*");
        }
        line.trailing(chunk).send();
    }
}
