//! What the nodes of a cluster say to each other, and how: the wire format
//! ([`wire`]) and the NATS connection with its nick claims ([`nats`]). A leaf:
//! it knows nothing of the world; `world::remote` produces and `crate::cluster`
//! applies what travels here.

mod nats;
mod wire;

pub(crate) use nats::{Bus, ClaimRefused};
pub(crate) use wire::{
    Answer, ChannelMessage, ChannelState, Envelope, Event, Intro, ListEntry, Membership, Question,
    Relayed, ServerBan, Topic, UserRef, WIRE_VERSION, kind_letter, kind_of,
};
