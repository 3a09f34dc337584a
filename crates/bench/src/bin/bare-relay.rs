//! `bare-relay ADDR`: the floor under any IRC server's cost on this machine.
//!
//! Not a server: a measuring instrument. It speaks just enough IRC for `chat-bench`
//! (NICK/USER get 001 and 376, JOIN gets the echo and 366, PING gets PONG, PRIVMSG
//! is relayed to the channel's other members or to the nick) and does nothing else:
//! no validation, no limits, no modes, no tags, no timers. It does what the fastest
//! C servers do and no less: one thread, edge-triggered epoll (mio), every line
//! copied into each recipient's output buffer, and one `write` per connection per
//! loop pass, after every readable socket has been read.
//!
//! Whatever CPU per delivery and round-trip time it shows, pinned like the servers
//! under test, is what the kernel's TCP path on loopback and the generator cost:
//! a server can come close to it but not below it (docs/PERFORMANCE.md).
//!
//! It trusts its clients completely; never expose it beyond loopback.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// A client whose unsent output passes this is dropped (a floor tool still bounds).
const MAX_OUTPUT: usize = 64 << 20;

struct Client {
    stream: TcpStream,
    nick: String,
    user_seen: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Already in this pass's list of connections to write.
    dirty: bool,
    closed: bool,
}

struct Relay {
    clients: Slab<Client>,
    nicks: HashMap<String, usize>,
    channels: HashMap<String, Vec<usize>>,
    dirty: Vec<usize>,
}

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: bare-relay 127.0.0.1:PORT");
        return ExitCode::FAILURE;
    };
    match run(&addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bare-relay: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ADDR must be IP:PORT"))?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("bare-relay listening on {}", listener.local_addr()?);
    let mut relay = Relay {
        clients: Slab::new(),
        nicks: HashMap::new(),
        channels: HashMap::new(),
        dirty: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut relay)?;
                continue;
            }
            let key = event.token().0;
            if event.is_readable() {
                relay.read(key, &mut scratch);
            }
            if event.is_writable() {
                relay.mark_dirty(key);
            }
        }
        relay.flush(&poll);
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, relay: &mut Relay) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nodelay(true)?;
                let entry = relay.clients.vacant_entry();
                poll.registry().register(
                    &mut stream,
                    Token(entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                entry.insert(Client {
                    stream,
                    nick: String::new(),
                    user_seen: false,
                    input: Vec::new(),
                    output: Vec::new(),
                    dirty: false,
                    closed: false,
                });
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => {
                eprintln!("bare-relay: accept: {error}");
                return Ok(());
            }
        }
    }
}

/// Appends `bytes` to a client's output and lists it for this pass's writes.
fn queue(clients: &mut Slab<Client>, dirty: &mut Vec<usize>, key: usize, bytes: &[u8]) {
    let Some(client) = clients.get_mut(key) else {
        return;
    };
    client.output.extend_from_slice(bytes);
    if client.output.len() > MAX_OUTPUT {
        client.closed = true;
    }
    if !client.dirty {
        client.dirty = true;
        dirty.push(key);
    }
}

impl Relay {
    /// Reads everything the socket has (edge-triggered) and handles whole lines.
    fn read(&mut self, key: usize, scratch: &mut [u8]) {
        loop {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            match client.stream.read(scratch) {
                Ok(0) => {
                    client.closed = true;
                    self.mark_dirty(key);
                    return;
                }
                Ok(n) => client.input.extend_from_slice(&scratch[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    client.closed = true;
                    self.mark_dirty(key);
                    return;
                }
            }
        }
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let input = std::mem::take(&mut client.input);
        let mut start = 0;
        while let Some(end) = input[start..].iter().position(|&b| b == b'\n') {
            let line = &input[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.handle(key, line);
            start += end + 1;
        }
        if let Some(client) = self.clients.get_mut(key) {
            client.input = input[start..].to_vec();
        }
    }

    fn handle(&mut self, key: usize, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "NICK" => {
                let nick = rest.trim_start_matches(':').to_owned();
                self.nicks.insert(nick.clone(), key);
                if let Some(client) = self.clients.get_mut(key) {
                    client.nick = nick;
                }
                self.maybe_welcome(key);
            }
            "USER" => {
                if let Some(client) = self.clients.get_mut(key) {
                    client.user_seen = true;
                }
                self.maybe_welcome(key);
            }
            "PING" => {
                let token = rest.strip_prefix(':').unwrap_or(rest);
                self.send(key, format!(":relay PONG relay :{token}\r\n").as_bytes());
            }
            "JOIN" => {
                let channel = rest.split(' ').next().unwrap_or_default().to_owned();
                let nick = self.nick(key);
                self.channels.entry(channel.clone()).or_default().push(key);
                let reply = format!(
                    ":{nick}!b@relay JOIN {channel}\r\n:relay 366 {nick} {channel} :End\r\n"
                );
                self.send(key, reply.as_bytes());
            }
            "PRIVMSG" | "NOTICE" => {
                let target = rest.split(' ').next().unwrap_or_default();
                let relayed = format!(":{}!b@relay {line}\r\n", self.nick(key));
                if target.starts_with('#') {
                    let Self {
                        clients,
                        channels,
                        dirty,
                        ..
                    } = self;
                    for &member in channels.get(target).into_iter().flatten() {
                        if member != key {
                            queue(clients, dirty, member, relayed.as_bytes());
                        }
                    }
                } else if let Some(&to) = self.nicks.get(target) {
                    self.send(to, relayed.as_bytes());
                }
            }
            "QUIT" => {
                if let Some(client) = self.clients.get_mut(key) {
                    client.closed = true;
                }
                self.mark_dirty(key);
            }
            _ => {}
        }
    }

    fn nick(&self, key: usize) -> String {
        self.clients
            .get(key)
            .map(|c| c.nick.clone())
            .unwrap_or_default()
    }

    fn maybe_welcome(&mut self, key: usize) {
        let Some(client) = self.clients.get(key) else {
            return;
        };
        if client.user_seen && !client.nick.is_empty() {
            let nick = client.nick.clone();
            let welcome = format!(":relay 001 {nick} :hi\r\n:relay 376 {nick} :End\r\n");
            self.send(key, welcome.as_bytes());
        }
    }

    /// Appends to the client's output; it is written at the end of the pass.
    fn send(&mut self, key: usize, bytes: &[u8]) {
        queue(&mut self.clients, &mut self.dirty, key, bytes);
    }

    fn mark_dirty(&mut self, key: usize) {
        queue(&mut self.clients, &mut self.dirty, key, b"");
    }

    /// One write per connection that has output (or closes it).
    fn flush(&mut self, poll: &Poll) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            client.dirty = false;
            let mut written = 0;
            while written < client.output.len() && !client.closed {
                match client.stream.write(&client.output[written..]) {
                    Ok(0) => client.closed = true,
                    Ok(n) => written += n,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => client.closed = true,
                }
            }
            client.output.drain(..written);
            if client.closed {
                let mut client = self.clients.remove(key);
                let _ = poll.registry().deregister(&mut client.stream);
                self.nicks.retain(|_, k| *k != key);
                for members in self.channels.values_mut() {
                    members.retain(|&m| m != key);
                }
            }
        }
    }
}
