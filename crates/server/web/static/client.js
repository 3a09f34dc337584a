// The chat client's protocol logic: turns server lines into state changes
// (buffers, members, messages, markers) and user intents into lines. It tells
// the UI what changed through the `ui` callbacks; it never touches the DOM.

import { casefold, isChannel, parseCtcp, parseCapValue, parseSource, utf8Length } from './irc.js';
import { BufferList, makeMessage } from './state.js';
import { Connection } from './connection.js';
import { isoTime } from './text.js';

const HISTORY_PAGE = 100;
const LINE_BYTES = 400; // text bytes per PRIVMSG, leaving room for the relay prefix in 512
const TYPING_SHOWN_MS = 6000;
const TYPING_SEND_EVERY_MS = 3000;
const DAY_MS = 86_400_000;
const MARKREAD_EVERY_MS = 1000;
// Bounds on what a server can make the page hold while it waits for an end that may never come.
const MAX_OPEN_BATCHES = 50;
const MAX_BATCH_LINES = 10_000;
const MAX_NAMES = 100_000; // one NAMES reply

/** Splits one line into pieces of at most `max` UTF-8 bytes, at spaces when possible. */
export function splitByBytes(line, max = LINE_BYTES) {
  const pieces = [];
  let rest = line;
  while (utf8Length(rest) > max) {
    let cut = 0;
    let bytes = 0;
    for (const ch of rest) {
      const n = utf8Length(ch);
      if (bytes + n > max) break;
      bytes += n;
      cut += ch.length;
    }
    const space = rest.lastIndexOf(' ', cut);
    if (space > cut / 2) cut = space + 1;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  pieces.push(rest);
  return pieces;
}

export class Client {
  constructor(options, ui) {
    this.ui = ui;
    this.buffers = new BufferList();
    this.batches = new Map();
    this.outbox = []; // messages not yet echoed: { label, target, lines, action, message, sent, attempted }
    this.nextLabel = 1;
    this.namesPending = new Map();
    this.markersToSend = new Set();
    this.markerTimer = 0;
    this.listing = false;
    this.lastTypingSent = 0;
    this.typingTarget = null;
    this.autoJoin = options.channels ?? [];
    this.keys = new Map();
    this.switchTo = options.active ? casefold(options.active) : null; // the buffer shown before a reload
    this.isupport = { PREFIX: '(ov)@+', CHANMODES: 'beI,k,l,CERimnpst', CHANTYPES: '#' };
    this.conn = new Connection(options, {
      onState: (state, seconds) => ui.status(state, seconds),
      onMessage: (msg) => this.handle(msg),
      onRegistered: () => this.registered(),
      onFatal: (text) => ui.fatal(text),
      onAccountCreated: (account) => ui.accountCreated(account),
    });
  }

  get nick() {
    return this.conn.nick;
  }

  start() {
    this.conn.start();
  }

  has(cap) {
    return this.conn.has(cap);
  }

  send(command, ...params) {
    return this.conn.send({ command, params });
  }

  sendTagged(tags, command, ...params) {
    return this.conn.send({ tags: this.has('message-tags') ? tags : {}, command, params });
  }

  // ——— registration and rejoining ———

  registered() {
    // What was in flight on the previous connection will never be answered.
    this.batches.clear();
    this.namesPending.clear();
    this.listing = false;
    for (const buffer of this.buffers) buffer.historyPending = null;
    const channels = new Set();
    const names = this.autoJoin.filter((name) => !channels.has(casefold(name)) && channels.add(casefold(name)));
    for (const buffer of this.buffers) {
      if (buffer.isChannel && (buffer.joined || buffer.rejoin) && !channels.has(buffer.key)) {
        channels.add(buffer.key);
        names.push(buffer.name);
      }
      buffer.joined = false;
      buffer.members.clear();
    }
    this.autoJoin = [];
    for (const name of names) this.join(name, this.keys.get(casefold(name)), false);
    if (!this.markerTimer) this.sendMarkers(); // markers set while disconnected
    for (const entry of this.outbox) {
      // Sent but never echoed: it may or may not have arrived. History will tell (see resolvePendingFromHistory).
      if (entry.sent) entry.attempted = true;
      entry.sent = false;
    }
    for (const buffer of this.buffers) {
      if (!buffer.isChannel) this.syncQuery(buffer);
    }
    if (this.has('draft/chathistory')) {
      const now = Date.now();
      this.send('CHATHISTORY', 'TARGETS', `timestamp=${isoTime(now - 30 * DAY_MS)}`, `timestamp=${isoTime(now + 60_000)}`, '50');
    } else {
      this.flushOutbox();
    }
    this.ui.buffersChanged();
  }

  join(name, key, switchTo = true) {
    if (key) this.keys.set(casefold(name), key);
    if (switchTo) this.switchTo = casefold(name);
    const existing = this.buffers.get(name);
    if (existing?.joined) {
      if (switchTo) this.ui.activate(existing);
      return;
    }
    if (!this.send('JOIN', ...(key ? [name, key] : [name]))) {
      this.autoJoin.push(name);
      this.system(`Not connected: will join ${name} once reconnected.`);
    }
  }

  part(buffer, reason) {
    buffer.closing = true;
    if (!this.send('PART', buffer.name, ...(reason ? [reason] : []))) this.closeBuffer(buffer);
  }

  /** Closes a buffer: PART for a joined channel, otherwise just forgets it. */
  close(buffer) {
    if (buffer.isChannel && buffer.joined) this.part(buffer);
    else this.closeBuffer(buffer);
  }

  closeBuffer(buffer) {
    this.buffers.remove(buffer.name);
    this.outbox = this.outbox.filter((o) => casefold(o.target) !== buffer.key);
    this.ui.bufferClosed(buffer);
  }

  openQuery(nick) {
    const existing = this.buffers.get(nick);
    const buffer = this.buffers.ensure(nick);
    if (!existing) {
      this.syncQuery(buffer);
      this.ui.buffersChanged();
    }
    this.ui.activate(buffer);
    return buffer;
  }

  /** A private conversation's history and read marker, asked for when it opens and after a reconnect. */
  syncQuery(buffer) {
    this.fetchLatest(buffer);
    if (this.has('draft/read-marker')) this.send('MARKREAD', buffer.name);
  }

  // ——— history ———

  fetchLatest(buffer) {
    if (!this.has('draft/chathistory') || !this.conn.connected) return;
    buffer.historyPending = 'latest';
    this.send('CHATHISTORY', 'LATEST', buffer.name, '*', String(HISTORY_PAGE));
  }

  /** Asks for the page before the oldest message held; false when there is nothing to ask. */
  loadOlder(buffer) {
    if (!this.has('draft/chathistory') || buffer.historyPending || buffer.historyExhausted) return false;
    if (buffer.isChannel && !buffer.joined) return false;
    const oldest = buffer.messages.find((m) => m.msgid);
    if (!oldest) return false;
    if (!this.send('CHATHISTORY', 'BEFORE', buffer.name, `timestamp=${isoTime(oldest.time)}`, String(HISTORY_PAGE))) return false;
    buffer.historyPending = 'before';
    return true;
  }

  historyDone(target, lines) {
    const buffer = this.buffers.get(target);
    if (!buffer) return;
    const kind = buffer.historyPending;
    const first = !buffer.historyLoaded;
    buffer.historyPending = null;
    const messages = [];
    for (const line of lines) {
      const reaction = this.reactionOf(line);
      if (reaction) {
        buffer.addReaction(reaction.msgid, reaction.emoji, reaction.nick);
        continue;
      }
      const msg = this.toMessage(line);
      if (msg) messages.push(msg);
    }
    // A short first page (or a short page of older messages) means there is nothing older.
    // A short LATEST after a reconnect only says little was missed.
    if (lines.length < HISTORY_PAGE && (kind === 'before' || !buffer.historyLoaded)) buffer.historyExhausted = true;
    buffer.historyLoaded = true;
    this.resolvePendingFromHistory(buffer, messages);
    const added = buffer.insert(messages);
    buffer.recount(this.nick);
    this.ui.historyLoaded(buffer, added, kind, first);
    this.flushOutbox(buffer);
  }

  // ——— sending ———

  /** Sends text (possibly several lines) to a buffer; kept and retried while disconnected. */
  say(buffer, text, { action = false } = {}) {
    const lines = text.replace(/\r/g, '').replace(/^\n+|\n+$/g, '').split('\n');
    if (!lines.some((l) => l.trim())) return;
    if (buffer.isChannel && !buffer.joined && !buffer.rejoin) {
      this.system(`You are not in ${buffer.name}: /join ${buffer.name}`, buffer.name, { error: true });
      return;
    }
    const entry = { label: `w${this.nextLabel++}`, target: buffer.name, lines, action, sent: false };
    entry.message = makeMessage({
      nick: this.nick, self: true, pending: true, kind: action ? 'action' : 'privmsg', text: lines.join('\n'), label: entry.label,
    });
    this.outbox.push(entry);
    buffer.insert([entry.message]);
    this.ui.messagesAdded(buffer, [entry.message]);
    this.stopTyping(buffer);
    this.transmit(entry);
  }

  transmit(entry) {
    if (!this.conn.connected) return;
    const buffer = this.buffers.get(entry.target);
    if (buffer?.isChannel && !buffer.joined) return; // after rejoin + history
    const wrap = (t) => (entry.action ? `\x01ACTION ${t}\x01` : t);
    const multiline = this.has('draft/multiline') && this.has('batch') ? parseCapValue(this.conn.caps.get('draft/multiline')) : null;
    const label = this.has('labeled-response') ? { label: entry.label } : {};
    const pieces = entry.lines.flatMap((line) => splitByBytes(line).map((p, i) => ({ text: p, concat: i > 0 })));
    const bytes = pieces.reduce((n, p) => n + utf8Length(p.text), 0);
    if (pieces.length > 1 && multiline && !entry.action
        && pieces.length <= Number(multiline['max-lines'] || 32) && bytes <= Number(multiline['max-bytes'] || 4096)) {
      const ref = `ml${entry.label}`;
      this.conn.send({ tags: label, command: 'BATCH', params: [`+${ref}`, 'draft/multiline', entry.target] });
      for (const p of pieces) {
        const tags = p.concat ? { batch: ref, 'draft/multiline-concat': '' } : { batch: ref };
        this.conn.send({ tags, command: 'PRIVMSG', params: [entry.target, p.text || ' '] });
      }
      this.conn.send({ command: 'BATCH', params: [`-${ref}`] });
    } else {
      pieces.forEach((p, i) => {
        if (!p.text) return;
        this.conn.send({ tags: i === 0 ? label : {}, command: 'PRIVMSG', params: [entry.target, wrap(p.text)] });
      });
    }
    entry.sent = true;
    if (!this.has('echo-message')) this.settle(entry, null);
  }

  /** Sends what waits in the outbox (for one buffer, or all) once the connection is back. */
  flushOutbox(buffer = null) {
    for (const entry of [...this.outbox]) {
      const target = this.buffers.get(entry.target);
      if (entry.sent || (buffer && target !== buffer)) continue;
      if (target?.historyPending) continue; // flushed once its history has shown what already arrived
      this.transmit(entry);
    }
  }

  /** The pending message of `entry` became real (echo or history), or was sent without echo. */
  settle(entry, echo) {
    this.outbox = this.outbox.filter((e) => e !== entry);
    const buffer = this.buffers.get(entry.target);
    const msg = entry.message;
    msg.pending = false;
    if (echo) {
      msg.msgid = echo.msgid;
      msg.time = echo.time;
      msg.text = echo.text;
      if (msg.msgid && buffer) buffer.msgids.set(msg.msgid, msg);
    }
    if (buffer) this.ui.messageChanged(buffer, msg);
  }

  /** A labeled reply other than the echo (an error such as 404) means the message was not delivered. */
  refused(reply) {
    const entry = this.outbox.find((e) => e.label === reply.tags.label);
    if (!entry || reply.command === 'ACK') return;
    this.outbox = this.outbox.filter((e) => e !== entry);
    entry.message.pending = false;
    entry.message.failed = reply.params.at(-1) || reply.command;
    const buffer = this.buffers.get(entry.target);
    if (buffer) this.ui.messageChanged(buffer, entry.message);
  }

  pendingFor(buffer, label, text) {
    return this.outbox.find((e) => (label ? e.label === label : casefold(e.target) === buffer.key && e.message.text === text));
  }

  resolvePendingFromHistory(buffer, messages) {
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i];
      if (!m.self) continue;
      const entry = this.outbox.find((e) => casefold(e.target) === buffer.key && e.attempted && e.message.text === m.text);
      if (entry) {
        this.settle(entry, m);
        messages.splice(i, 1);
      }
    }
  }

  react(buffer, msg, emoji) {
    if (!msg.msgid) return;
    this.sendTagged({ '+draft/react': emoji, '+draft/reply': msg.msgid }, 'TAGMSG', buffer.name);
    if (!this.has('echo-message')) {
      buffer.addReaction(msg.msgid, emoji, this.nick);
      this.ui.messageChanged(buffer, msg);
    }
  }

  redact(buffer, msg) {
    if (msg.msgid) this.send('REDACT', buffer.name, msg.msgid);
  }

  typing(buffer, active) {
    if (!this.has('message-tags') || !this.conn.connected) return;
    const now = Date.now();
    if (active) {
      if (this.typingTarget === buffer.key && now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
      this.typingTarget = buffer.key;
      this.lastTypingSent = now;
      this.sendTagged({ '+typing': 'active' }, 'TAGMSG', buffer.name);
    } else {
      this.stopTyping(buffer);
    }
  }

  stopTyping(buffer) {
    if (this.typingTarget !== buffer.key) return;
    this.typingTarget = null;
    this.lastTypingSent = 0;
    if (this.conn.connected) this.sendTagged({ '+typing': 'done' }, 'TAGMSG', buffer.name);
  }

  /** Moves the read marker of `buffer` to its newest message. */
  markRead(buffer) {
    // Only a time the server gave: a pending or client-made line carries this machine's
    // clock, and a marker ahead of the server's would hide the next messages.
    const newest = buffer.messages.findLast((m) => !m.pending && !m.info);
    if (!newest || (buffer.readMarker ?? 0) >= newest.time) {
      if (buffer.unread || buffer.mentions) {
        buffer.recount(this.nick);
        this.ui.countsChanged(buffer);
      }
      return;
    }
    buffer.readMarker = newest.time;
    buffer.recount(this.nick);
    this.ui.countsChanged(buffer);
    if (!this.has('draft/read-marker')) return;
    // At once, but while messages stream in at most once a second.
    this.markersToSend.add(buffer);
    if (!this.markerTimer) this.sendMarkers();
  }

  /** Disconnects for good (log out, refused login): no reconnect, no timer left. */
  stop(reason) {
    clearTimeout(this.markerTimer);
    this.markerTimer = 0;
    this.markersToSend.clear();
    this.conn.stop(reason);
  }

  sendMarkers() {
    // While disconnected the markers wait in the set: registered() sends them.
    if (!this.markersToSend.size || !this.conn.connected) {
      this.markerTimer = 0;
      return;
    }
    for (const b of this.markersToSend) this.send('MARKREAD', b.name, `timestamp=${isoTime(b.readMarker)}`);
    this.markersToSend.clear();
    this.markerTimer = setTimeout(() => this.sendMarkers(), MARKREAD_EVERY_MS);
  }

  // ——— receiving ———

  handle(msg) {
    if (msg.tags.label && !['PRIVMSG', 'NOTICE', 'BATCH'].includes(msg.command)) this.refused(msg);
    const batchRef = msg.tags.batch;
    if (batchRef && this.batches.has(batchRef) && msg.command !== 'BATCH') {
      const { lines } = this.batches.get(batchRef);
      if (lines.length < MAX_BATCH_LINES) lines.push(msg);
      return;
    }
    const handler = this[`on${msg.command}`];
    if (handler) handler.call(this, msg);
    else if (/^\d{3}$/.test(msg.command)) this.onNumeric(msg);
  }

  onBATCH(msg) {
    const [reference = ''] = msg.params;
    const ref = reference.slice(1);
    if (reference[0] === '+') {
      if (this.batches.size >= MAX_OPEN_BATCHES && !this.batches.has(ref)) return;
      this.batches.set(ref, { type: msg.params[1], params: msg.params.slice(2), tags: msg.tags, lines: [], parent: msg.tags.batch });
      return;
    }
    const batch = this.batches.get(ref);
    if (!batch) return;
    this.batches.delete(ref);
    let lines = batch.lines;
    if (batch.type === 'draft/multiline') lines = [combineMultiline(batch)];
    const parent = batch.parent && this.batches.get(batch.parent);
    if (parent) {
      parent.lines.push(...lines);
    } else if (batch.type === 'chathistory') {
      this.historyDone(batch.params[0], lines);
    } else if (batch.type === 'draft/chathistory-targets') {
      this.targetsDone(lines);
    } else {
      for (const line of lines) this.handle(line);
    }
  }

  targetsDone(lines) {
    for (const line of lines) {
      const name = line.params[1];
      if (!name || isChannel(name, this.isupport.CHANTYPES) || this.buffers.get(name)) continue;
      this.syncQuery(this.buffers.ensure(name));
    }
    this.flushOutbox();
    this.ui.buffersChanged();
  }

  /** The buffer name a PRIVMSG/NOTICE/TAGMSG belongs to (a channel, or the other person). */
  conversationOf(msg) {
    const target = this.stripStatus(msg.params[0] ?? '');
    if (isChannel(target, this.isupport.CHANTYPES)) return target;
    return this.fromMe(msg) ? target : parseSource(msg.source).nick;
  }

  /** `@#chan` (STATUSMSG, to the channel's operators) belongs to `#chan`. */
  stripStatus(target) {
    const prefixes = this.isupport.STATUSMSG ?? '@+';
    let i = 0;
    while (i < target.length && prefixes.includes(target[i])) i++;
    return target.slice(i);
  }

  /** Sent by this connection, or by another session of the same account. */
  fromMe(line) {
    const account = this.conn.options.account;
    return this.conn.isSelf(parseSource(line.source).nick)
      || Boolean(account && line.tags.account && casefold(line.tags.account) === casefold(account));
  }

  /** A reaction TAGMSG → { msgid, emoji, nick }; null otherwise. */
  reactionOf(msg) {
    if (msg.command !== 'TAGMSG') return null;
    const emoji = msg.tags['+draft/react'] ?? msg.tags['+react'];
    const msgid = msg.tags['+draft/reply'] ?? msg.tags['+reply'];
    if (!emoji || !msgid) return null;
    return { msgid, emoji, nick: parseSource(msg.source).nick };
  }

  /** A line (live or from history) as a message for the log, or null if it shows nothing. */
  toMessage(line) {
    const nick = parseSource(line.source).nick;
    const time = line.tags.time ? Date.parse(line.tags.time) : Date.now();
    const base = { msgid: line.tags.msgid ?? null, time: Number.isNaN(time) ? Date.now() : time, nick, self: this.fromMe(line) };
    const p = line.params;
    switch (line.command) {
      case 'PRIVMSG':
      case 'NOTICE': {
        const text = p[1] ?? '';
        const ctcp = parseCtcp(text);
        if (ctcp && ctcp.command !== 'ACTION') return null;
        if (ctcp) return makeMessage({ ...base, kind: 'action', text: ctcp.text });
        return makeMessage({ ...base, kind: line.command === 'NOTICE' ? 'notice' : 'privmsg', text });
      }
      case 'JOIN':
        return this.event(base, 'join', `${nick} joined`);
      case 'PART':
        return this.event(base, 'part', `${nick} left${p[1] ? ` (${p[1]})` : ''}`);
      case 'QUIT':
        return this.event(base, 'quit', `${nick} quit${p[0] ? ` (${p[0]})` : ''}`);
      case 'KICK':
        return this.event(base, 'kick', `${p[1]} was kicked by ${nick}${p[2] ? ` (${p[2]})` : ''}`);
      case 'NICK':
        return this.event(base, 'nick', `${nick} is now known as ${p[0]}`);
      case 'TOPIC':
        return this.event(base, 'topic', p[1] ? `${nick} changed the topic to: ${p[1]}` : `${nick} cleared the topic`);
      case 'MODE':
        return this.event(base, 'mode', `${nick} set mode ${p.slice(1).join(' ')}`);
      default:
        return null;
    }
  }

  event(base, event, text) {
    return makeMessage({ ...base, kind: 'system', event, text });
  }

  /** Adds a system line (errors, whois, notices from the server) to a buffer, the active one by default. */
  system(text, bufferName = null, extra = {}) {
    const buffer = (bufferName && this.buffers.get(bufferName)) || this.ui.activeBuffer();
    if (!buffer) return;
    const msg = makeMessage({ kind: 'system', text, ...extra, info: true }); // never unread
    buffer.insert([msg]);
    this.ui.messagesAdded(buffer, [msg]);
  }

  /** Adds a live message to its buffer and updates counts and notifications. */
  addLive(buffer, msg) {
    const added = buffer.insert([msg]);
    if (!added.length) return;
    if (!msg.self && msg.kind !== 'system') buffer.typing.delete(casefold(msg.nick));
    if (buffer.messages.at(-1) === msg) buffer.countNew(msg, this.nick);
    else buffer.recount(this.nick);
    this.ui.messagesAdded(buffer, added);
    if (!msg.self && buffer.isMention(msg, this.nick)) this.ui.notifyMention(buffer, msg);
  }

  onPRIVMSG(line) {
    const target = line.params[0] ?? '';
    const from = parseSource(line.source);
    const msg = this.toMessage(line);
    if (!msg) return;
    const serverNotice = line.command === 'NOTICE' && (!from.user || !this.conn.registered);
    const toMe = !isChannel(this.stripStatus(target), this.isupport.CHANTYPES) && !msg.self;
    if (serverNotice || (line.command === 'NOTICE' && toMe && !this.buffers.get(from.nick))) {
      // Notices from the server and services go to whatever the user is looking at.
      const where = isChannel(target, this.isupport.CHANTYPES) ? target : null;
      // The server repeats some notices on every join (history is kept…): once per buffer is enough.
      const text = `${from.nick ? `${from.nick}: ` : ''}${msg.text}`;
      if (where && this.buffers.get(where)?.messages.some((m) => m.info && m.text === text)) return;
      this.system(text, where, { kind: 'notice', nick: from.nick || '' });
      return;
    }
    const name = this.conversationOf(line);
    const existed = this.buffers.get(name);
    const buffer = this.buffers.ensure(name);
    if (msg.self) {
      const entry = this.pendingFor(buffer, line.tags.label, msg.text);
      if (entry) {
        this.settle(entry, msg);
        return;
      }
    }
    if (!existed) {
      this.ui.buffersChanged();
      if (!buffer.isChannel && this.has('draft/read-marker')) this.send('MARKREAD', buffer.name);
    }
    this.addLive(buffer, msg);
  }

  onNOTICE(line) {
    this.onPRIVMSG(line);
  }

  onTAGMSG(line) {
    const reaction = this.reactionOf(line);
    const buffer = this.buffers.get(this.conversationOf(line));
    if (!buffer) return;
    if (reaction) {
      const msg = buffer.addReaction(reaction.msgid, reaction.emoji, reaction.nick);
      if (msg) this.ui.messageChanged(buffer, msg);
      return;
    }
    const typing = line.tags['+typing'];
    const nick = parseSource(line.source).nick;
    if (!typing || this.conn.isSelf(nick)) return;
    const now = Date.now();
    // Only the shown buffer drops expired entries when it draws them: prune here too.
    for (const [key, entry] of buffer.typing) if (entry.until <= now) buffer.typing.delete(key);
    if (typing === 'active') buffer.typing.set(casefold(nick), { nick, until: now + TYPING_SHOWN_MS });
    else buffer.typing.delete(casefold(nick));
    this.ui.typingChanged(buffer);
  }

  onREDACT(line) {
    const buffer = this.buffers.get(this.conversationOf(line));
    const msg = buffer?.redact(line.params[1]);
    if (msg) {
      buffer.recount(this.nick);
      this.ui.messageChanged(buffer, msg);
      this.ui.countsChanged(buffer);
    }
  }

  onMARKREAD(line) {
    const [target, stamp] = line.params;
    const buffer = this.buffers.get(target);
    if (!buffer) return;
    if (!stamp || stamp === '*') {
      // Nothing stored server-side (a guest after reconnecting): give it ours.
      if (buffer.readMarker) this.send('MARKREAD', buffer.name, `timestamp=${isoTime(buffer.readMarker)}`);
      return;
    }
    const time = Date.parse(stamp.replace(/^timestamp=/, ''));
    if (Number.isNaN(time)) return;
    buffer.readMarker = Math.max(time, buffer.readMarker ?? 0);
    buffer.recount(this.nick);
    this.ui.countsChanged(buffer);
  }

  onJOIN(line) {
    const nick = parseSource(line.source).nick;
    const name = line.params[0];
    const self = this.conn.isSelf(nick);
    if (self) {
      const buffer = this.buffers.ensure(name);
      buffer.name = name; // as the server spells it, whatever case /join used
      buffer.joined = true;
      buffer.rejoin = true;
      buffer.closing = false;
      buffer.members.clear();
      this.fetchLatest(buffer);
      this.ui.channelsChanged();
      this.ui.buffersChanged();
      if (this.switchTo === buffer.key || !this.ui.activeBuffer()) {
        if (this.switchTo === buffer.key) this.switchTo = null;
        this.ui.activate(buffer);
      }
      if (!this.has('draft/chathistory')) this.flushOutbox(buffer);
      if (this.has('draft/event-playback')) return; // the join comes back with history
    }
    const buffer = this.buffers.get(name);
    if (!buffer) return;
    if (!self) buffer.setMember(nick);
    this.addLive(buffer, this.toMessage(line));
    this.ui.membersChanged(buffer);
  }

  onPART(line) {
    const nick = parseSource(line.source).nick;
    const buffer = this.buffers.get(line.params[0]);
    if (!buffer) return;
    if (this.conn.isSelf(nick)) {
      this.left(buffer);
      if (buffer.closing) {
        this.closeBuffer(buffer);
        return;
      }
      this.ui.buffersChanged();
    } else {
      buffer.removeMember(nick);
    }
    this.addLive(buffer, this.toMessage(line));
    this.ui.membersChanged(buffer);
  }

  /** We are out of a channel (PART or KICK): keep its buffer, do not rejoin it. */
  left(buffer) {
    buffer.joined = false;
    buffer.rejoin = false;
    buffer.members.clear();
    this.ui.channelsChanged();
  }

  onKICK(line) {
    const [channel, victim] = line.params;
    const buffer = this.buffers.get(channel);
    if (!buffer) return;
    if (this.conn.isSelf(victim)) {
      this.left(buffer);
      this.ui.buffersChanged();
    } else {
      buffer.removeMember(victim);
    }
    this.addLive(buffer, this.toMessage(line));
    this.ui.membersChanged(buffer);
  }

  onQUIT(line) {
    const nick = parseSource(line.source).nick;
    for (const buffer of this.buffers) {
      if (buffer.isChannel ? buffer.removeMember(nick) : buffer.key === casefold(nick)) {
        this.addLive(buffer, this.toMessage(line));
        this.ui.membersChanged(buffer);
      }
    }
  }

  onNICK(line) {
    const oldNick = parseSource(line.source).nick;
    const newNick = line.params[0];
    const self = this.conn.isSelf(oldNick);
    for (const buffer of [...this.buffers]) {
      const inIt = buffer.isChannel ? buffer.renameMember(oldNick, newNick) : buffer.key === casefold(oldNick);
      if (!inIt && !self) continue;
      if (!buffer.isChannel && buffer.key === casefold(oldNick)) this.buffers.rename(oldNick, newNick);
      this.addLive(buffer, this.toMessage(line));
      this.ui.membersChanged(buffer);
    }
    if (self) this.ui.nickChanged(newNick);
    this.ui.buffersChanged();
  }

  onTOPIC(line) {
    const buffer = this.buffers.get(line.params[0]);
    if (!buffer) return;
    buffer.topic = line.params[1] ?? '';
    this.ui.topicChanged(buffer);
    this.addLive(buffer, this.toMessage(line));
  }

  onMODE(line) {
    const [target, modes = '', ...args] = line.params;
    const buffer = this.buffers.get(target);
    if (!buffer || !buffer.isChannel) return;
    const [prefixModes, prefixChars] = this.isupport.PREFIX.slice(1).split(')');
    const [listModes = '', alwaysArg = '', setArg = ''] = this.isupport.CHANMODES.split(',');
    let on = true;
    let argIndex = 0;
    for (const mode of modes) {
      if (mode === '+' || mode === '-') {
        on = mode === '+';
        continue;
      }
      const prefixAt = prefixModes.indexOf(mode);
      const takesArg = prefixAt !== -1 || listModes.includes(mode) || alwaysArg.includes(mode) || (on && setArg.includes(mode));
      const arg = takesArg ? args[argIndex++] : null;
      if (prefixAt !== -1 && arg) buffer.setMemberMode(arg, prefixChars[prefixAt], on);
    }
    this.addLive(buffer, this.toMessage(line));
    this.ui.membersChanged(buffer);
  }

  onAWAY(line) {
    const nick = parseSource(line.source).nick;
    for (const buffer of this.buffers) {
      const member = buffer.members.get(casefold(nick));
      if (member) {
        member.away = line.params.length > 0;
        this.ui.membersChanged(buffer);
      }
    }
  }

  onINVITE(line) {
    const [, channel] = line.params;
    const from = parseSource(line.source).nick;
    if (this.conn.isSelf(line.params[0])) this.system(`${from} invited you to ${channel}: /join ${channel}`);
    else this.system(`${from} invited ${line.params[0]} to ${channel}`, channel);
  }

  onERROR(line) {
    this.system(`Disconnected: ${line.params[0] ?? ''}`, null, { error: true });
  }

  onFAIL(line) {
    const [command, code, ...rest] = line.params;
    if (command === 'CHATHISTORY') {
      for (const buffer of this.buffers) buffer.historyPending = null;
      this.flushOutbox(); // what waited for history goes out anyway
      if (code === 'INVALID_TARGET') return;
    }
    if (command === 'REGISTER' || command === 'MARKREAD') return;
    this.system(rest.at(-1) || `${command} failed: ${code}`, null, { error: true });
  }

  onWARN(line) {
    this.system(line.params.at(-1), null);
  }

  onNumeric(line) {
    const code = line.command;
    const p = line.params;
    const rest = p.slice(1);
    switch (code) {
      case '005':
        for (const token of p.slice(1, -1)) {
          const eq = token.indexOf('=');
          if (eq > 0) this.isupport[token.slice(0, eq)] = token.slice(eq + 1);
        }
        return;
      case '332': {
        const buffer = this.buffers.get(p[1]);
        if (buffer) {
          buffer.topic = p[2] ?? '';
          this.ui.topicChanged(buffer);
        }
        return;
      }
      case '331': {
        const buffer = this.buffers.get(p[1]);
        if (buffer) {
          buffer.topic = '';
          this.ui.topicChanged(buffer);
        }
        return;
      }
      case '353': {
        const channel = p[2];
        const names = this.namesPending.get(casefold(channel)) ?? [];
        for (const item of (p[3] ?? '').split(' ')) {
          if (!item || names.length >= MAX_NAMES) continue;
          const prefixes = item.match(/^[~&@%+]*/)[0];
          names.push({ nick: item.slice(prefixes.length).split('!')[0], prefixes });
        }
        this.namesPending.set(casefold(channel), names);
        return;
      }
      case '366': {
        const buffer = this.buffers.get(p[1]);
        const names = this.namesPending.get(casefold(p[1])) ?? [];
        this.namesPending.delete(casefold(p[1]));
        if (buffer) {
          buffer.members.clear();
          for (const { nick, prefixes } of names) buffer.setMember(nick, prefixes);
          this.ui.membersChanged(buffer);
        }
        return;
      }
      case '321':
        this.listing = true;
        this.ui.listStarted();
        return;
      case '322':
        // The topic starts with the channel's modes ("[+nt] "): not part of the topic.
        this.ui.listEntry({ name: p[1], users: Number(p[2]) || 0, topic: (p[3] ?? '').replace(/^\[\+[^\]]*\] ?/, '') });
        return;
      case '323':
        this.listing = false;
        this.ui.listEnded();
        return;
      case '311':
        this.system(`${p[1]} (${p[2]}@${p[3]}): ${p[5] ?? ''}`);
        return;
      case '312':
        this.system(`${p[1]} is connected to ${p[2]}${p[3] ? ` (${p[3]})` : ''}`);
        return;
      case '317':
        this.system(`${p[1]} has been idle ${formatDuration(Number(p[2]))}`);
        return;
      case '319':
        this.system(`${p[1]} is on ${p[2]}`);
        return;
      case '330':
        this.system(`${p[1]} is logged in as ${p[2]}`);
        return;
      case '301':
        this.system(`${p[1]} is away: ${p[2] ?? ''}`, this.buffers.get(p[1]) ? p[1] : null);
        return;
      case '305':
      case '306':
      case '313':
      case '335':
      case '671':
      case '276':
      case '341':
        this.system(rest.join(' '));
        return;
      case '403': case '404': case '405': case '442': case '471': case '473': case '474': case '475':
      case '477': case '482': case '489': case '401': case '406': case '441': case '443': case '481': {
        const where = p[1] && this.buffers.get(p[1]) ? p[1] : null;
        this.system(`${p[1]}: ${p.at(-1)}`, where, { error: true });
        if (['403', '405', '471', '473', '474', '475', '477', '489'].includes(code)) this.switchTo = null;
        return;
      }
      default:
        if (Number(code) >= 400 && Number(code) < 600) this.system(rest.join(' '), null, { error: true });
        else if (['324', '329', '367', '368', '346', '347', '348', '349', '704', '705', '706', '371', '374', '391', '351', '352', '315', '314', '369', '303', '302'].includes(code)) {
          this.system(rest.join(' ')); // replies to commands typed raw (/mode, /who, /help, …)
        }
    }
  }
}

function combineMultiline(batch) {
  const first = batch.lines[0];
  let text = '';
  batch.lines.forEach((line, i) => {
    const piece = line.params[1] ?? '';
    if (i === 0) text = piece;
    else text += ('draft/multiline-concat' in line.tags ? '' : '\n') + piece;
  });
  const tags = { ...batch.tags }; // msgid, time and label are on the opening line
  delete tags.batch;
  return {
    tags,
    source: first?.source ?? null,
    command: first?.command ?? 'PRIVMSG',
    params: [batch.params[0], text],
  };
}

function formatDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}
