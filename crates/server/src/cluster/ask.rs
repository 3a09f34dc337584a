//! Questions other nodes ask this one about its own users, answered at once.
//!
//! Most of what a node knows of another's users travels as events, applied to
//! its replica before anyone asks. A few facts change too often to announce:
//! the idle time WHOIS shows changes with every message a user sends. So the
//! asking node's WHOIS waits (a deferred job, `handlers::deferred`) for a NATS
//! request to the user's home node, which this task answers from its world, by
//! its own clock. Answers go on the request's reply subject, outside the ordered
//! event stream: nothing else waits behind them.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::bus::{Answer, Bus, Question};
use crate::world::{ClientId, World, unix_now};

/// Answers the questions addressed to this node until `stop`.
pub(crate) async fn serve(shared: Arc<Shared>, bus: Bus, stop: CancellationToken) {
    let mut questions = match bus.client.subscribe(bus.ask_subject(&bus.node)).await {
        Ok(questions) => questions,
        Err(error) => {
            tracing::error!(%error, "cannot subscribe to other nodes' questions; WHOIS elsewhere shows no idle time for this node's users");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = questions.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        let Some(reply) = message.reply else {
            continue;
        };
        let answer = match postcard::from_bytes::<Question>(&message.payload) {
            Ok(question) => answer(&shared.lock_world(), &question),
            Err(error) => {
                // A node of another version, or a stray publisher: it times out.
                tracing::debug!(%error, "a question from another node could not be read");
                continue;
            }
        };
        let Ok(payload) = postcard::to_allocvec(&answer) else {
            continue;
        };
        if let Err(error) = bus.client.publish(reply, Bytes::from(payload)).await {
            tracing::debug!(%error, "cannot answer another node's question");
        }
    }
}

/// What this node's world says to `question`.
fn answer(world: &World, question: &Question) -> Answer {
    match question {
        Question::Idle { id, nick } => {
            let id = ClientId(*id);
            let idle = world
                .clients
                .get(&id)
                .filter(|client| {
                    client.is_registered()
                        && !world.is_remote(id)
                        && World::key(client.nick()) == World::key(nick)
                })
                .map(|client| unix_now().saturating_sub(client.last_spoke));
            Answer::Idle(idle)
        }
    }
}
