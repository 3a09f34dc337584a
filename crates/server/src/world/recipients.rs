//! Who a relayed message reaches: the one model that relay (`handlers::messaging`),
//! redaction (`world::recent`, `handlers::redact`) and history (`crate::history`)
//! share, so a target is resolved once, by relay, and never parsed again.

use palaver_proto::CaseKey;

use super::{ClientId, Status, World};
use crate::outbox::Outbox;

/// The recipients of one message, named rather than collected: a message to a big
/// channel costs no per-member allocation or reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipients {
    /// Members of a channel (folded name); `min_status` is the STATUSMSG prefix
    /// (`@` or `+`) if only members with that status receive it.
    Channel {
        key: CaseKey,
        min_status: Option<char>,
    },
    /// One client (a private message; the sender itself for a note to self).
    Client(ClientId),
}

impl Recipients {
    /// Whether a channel member with `status` is among those a message with
    /// STATUSMSG prefix `min_status` reaches.
    pub(crate) fn status_admits(min_status: Option<char>, status: Status) -> bool {
        match min_status {
            None => true,
            Some(prefix) => status.op || (prefix == '+' && status.voice),
        }
    }

    /// Calls `deliver` with the outbox of every recipient; `sender` is left out of
    /// a channel's members (it gets its copy through echo-message only).
    pub(crate) fn for_each(
        &self,
        world: &World,
        sender: ClientId,
        mut deliver: impl FnMut(&Outbox),
    ) {
        match self {
            Self::Channel { key, min_status } => {
                let Some(channel) = world.channels.get(key) else {
                    return;
                };
                for (id, member) in &channel.members {
                    if *id != sender && Self::status_admits(*min_status, member.status) {
                        deliver(&member.outbox);
                    }
                }
            }
            Self::Client(id) => {
                if let Some(client) = world.clients.get(id) {
                    deliver(&client.outbox);
                }
            }
        }
    }
}
