//! The SASL login as the core runs it: asked for with `CAP REQ sasl`, carried
//! out with `AUTHENTICATE` before `CAP END`, so registration completes logged
//! in (or, if the login fails, without an account, saying why).
//!
//! The mechanisms themselves are in [`super::sasl`]; here are the wire
//! (chunking, the numerics 900-908) and what the user is told.

use palaver_proto::Message;
use palaver_proto::numeric::{
    ERR_NICKLOCKED, ERR_SASLABORTED, ERR_SASLALREADY, ERR_SASLFAIL, ERR_SASLTOOLONG, RPL_LOGGEDIN,
    RPL_LOGGEDOUT, RPL_SASLMECHS, RPL_SASLSUCCESS,
};

use super::sasl::{self, Exchange, Mechanism};
use super::{Client, last};
use crate::state::{LineKind, SERVER_BUFFER};

/// Most base64 the server may send in one SASL message before we give up.
const MAX_INBOUND: usize = 8 * 1024;

impl Client {
    /// Sends CAP END once per connection: registration waits for it.
    pub(super) fn cap_end(&mut self) {
        if !self.cap_ended && !self.registered {
            self.cap_ended = true;
            self.send("CAP", &["END"]);
        }
    }

    /// After `CAP ACK sasl`: starts the login with the best mechanism left.
    pub(super) fn start_login(&mut self) {
        let Some(account) = self.config.account.clone() else {
            return self.cap_end();
        };
        let mut tried = self.sasl_tried.clone();
        if let Some(only) = account.mechanism {
            // Every other mechanism counts as tried: only this one may be used.
            tried.extend(Mechanism::ALL.into_iter().filter(|m| *m != only));
        } else {
            // EXTERNAL only when asked for: it needs a certificate the account
            // accepts, and a failed attempt would count against the address.
            tried.push(Mechanism::External);
        }
        match Mechanism::choose(&self.sasl_offer, &tried) {
            Some(mechanism) => {
                self.sasl_tried.push(mechanism);
                self.sasl_inbound.clear();
                self.sasl = Some(Exchange::new(mechanism, account));
                self.send("AUTHENTICATE", &[mechanism.name()]);
            }
            None => {
                let offer = self.sasl_offer.clone();
                self.login_failed(&format!(
                    "the server's SASL mechanisms ({offer}) are none this client may use here (SCRAM-SHA-256, PLAIN, or EXTERNAL with --sasl-mechanism)"
                ));
                self.cap_end();
            }
        }
    }

    /// Tells the user, in the server buffer, that the login did not happen.
    pub(super) fn login_failed(&mut self, why: &str) {
        let name = self
            .config
            .account
            .as_ref()
            .map_or("", |a| a.name.as_str())
            .to_owned();
        let text =
            format!("Login to the account {name} failed: {why}; continuing without an account");
        self.info(SERVER_BUFFER, LineKind::Error, text);
    }

    /// `AUTHENTICATE <piece>` from the server: one piece of its next message.
    pub(super) fn on_authenticate(&mut self, msg: &Message<'_>) {
        if self.sasl.is_none() {
            return;
        }
        let piece = msg.param(0).unwrap_or("+");
        if piece != "+" {
            self.sasl_inbound.push_str(piece);
            if self.sasl_inbound.len() > MAX_INBOUND {
                return self.abort_login("the server's SASL message is too long");
            }
            if piece.len() == sasl::CHUNK {
                return; // More pieces follow.
            }
        }
        let message = std::mem::take(&mut self.sasl_inbound);
        let decoded = if message.is_empty() {
            Some(Vec::new())
        } else {
            sasl::decode(&message)
        };
        let Some(challenge) = decoded else {
            return self.abort_login("the server's SASL message is not base64");
        };
        let Some(exchange) = self.sasl.as_mut() else {
            return;
        };
        match exchange.respond(&challenge) {
            Ok(reply) => {
                for piece in sasl::chunks(&reply) {
                    self.send("AUTHENTICATE", &[&piece]);
                }
            }
            Err(error) => self.abort_login(&error.to_string()),
        }
    }

    /// Gives up the exchange on our side; the server's 906 then ends it.
    fn abort_login(&mut self, why: &str) {
        self.sasl = None;
        self.sasl_inbound.clear();
        self.send("AUTHENTICATE", &["*"]);
        self.login_failed(why);
        self.cap_end();
    }

    /// The SASL numerics, 900 to 908.
    pub(super) fn on_sasl_numeric(&mut self, command: &str, msg: &Message<'_>) {
        match command {
            RPL_LOGGEDIN => {
                let account = msg.param(2).unwrap_or("").to_owned();
                let text = format!("Logged in as {account}");
                self.state.account = Some(account);
                self.info(SERVER_BUFFER, LineKind::Info, text);
                self.changes.push(super::Change::Status);
            }
            RPL_LOGGEDOUT => {
                self.state.account = None;
                self.info(SERVER_BUFFER, LineKind::Info, last(msg).to_owned());
                self.changes.push(super::Change::Status);
            }
            RPL_SASLSUCCESS => {
                self.sasl = None;
                self.cap_end();
            }
            RPL_SASLMECHS => {
                self.sasl_offer = msg.param(1).unwrap_or("").to_owned();
            }
            ERR_SASLFAIL => {
                let was_running = self.sasl.take().is_some();
                // A mechanism the server turned down (it said which it has, 908)
                // gives way to the next one; a wrong password does not.
                let untried = Mechanism::choose(&self.sasl_offer, &self.sasl_tried);
                let refused_mechanism = was_running
                    && self
                        .sasl_tried
                        .last()
                        .is_some_and(|m| !offers(&self.sasl_offer, *m));
                if refused_mechanism && untried.is_some() {
                    return self.start_login();
                }
                if was_running {
                    let why = match last(msg) {
                        "" => "wrong account name or password".to_owned(),
                        text => text.to_owned(),
                    };
                    self.login_failed(&why);
                }
                self.cap_end();
            }
            ERR_NICKLOCKED | ERR_SASLTOOLONG | ERR_SASLABORTED => {
                if self.sasl.take().is_some() {
                    self.login_failed(last(msg));
                }
                self.cap_end();
            }
            ERR_SASLALREADY => {
                self.sasl = None;
                self.cap_end();
            }
            _ => {}
        }
    }
}

/// Whether the comma-separated `offer` names `mechanism` (an empty offer names
/// every mechanism: the server did not say).
fn offers(offer: &str, mechanism: Mechanism) -> bool {
    offer.is_empty()
        || offer
            .split(',')
            .any(|m| m.eq_ignore_ascii_case(mechanism.name()))
}
