// Client state: buffers (channels and private conversations), their messages,
// members, read markers and unread/mention counts. No DOM here.

import { casefold, isChannel } from './irc.js';
import { mentions } from './text.js';

export const MAX_MESSAGES = 10_000;
// Bounds on what other people (or a hostile server) can make this page hold.
const MAX_REACTIONS = 50; // different reactions on one message
const MAX_ORPHAN_TARGETS = 1000; // msgids with reactions waiting for their message
const MAX_ORPHANS_EACH = 500; // reactions waiting for one such message
const MAX_MEMBERS = 100_000; // members of one channel
const PREFIX_ORDER = '@+';

let nextLocalId = 1;

/**
 * A message as the views use it. kind: 'privmsg' | 'notice' | 'action' | 'system'.
 * `time` is milliseconds since the epoch (server-time when known). Optional fields:
 * `event` (join, part, … for channel events), `info` (a line the client added: never
 * unread), `error`, `label` and `failed` (our own message the server refused).
 */
export function makeMessage(fields) {
  return {
    id: nextLocalId++,
    msgid: null,
    time: Date.now(),
    nick: '',
    kind: 'privmsg',
    text: '',
    self: false,
    pending: false,
    redacted: false,
    reactions: null, // Map emoji → Set of folded nicks
    ...fields,
  };
}

export class Buffer {
  constructor(name, since) {
    this.name = name; // as the server spells it
    this.key = casefold(name);
    this.isChannel = isChannel(name);
    this.messages = [];
    this.msgids = new Map(); // msgid → message
    this.trimmed = 0; // how many old messages were dropped from the front so far (the cap)
    this.orphanReactions = new Map(); // msgid → [{ emoji, nick }] for messages not loaded yet
    this.members = new Map(); // folded nick → { nick, prefixes }
    this.topic = '';
    this.joined = false;
    this.rejoin = false; // joined before a disconnect: join again on reconnecting
    this.closing = false; // the user closed it: our PART removes the buffer
    this.readMarker = null; // ms; messages after it are unread
    this.since = since; // without a marker, only messages after this count as unread
    this.unread = 0;
    this.mentions = 0;
    this.historyLoaded = false; // a first page of history arrived
    this.historyExhausted = false;
    this.historyPending = null; // 'latest' | 'before' while a request is out
    this.typing = new Map(); // folded nick → { nick, until }
  }

  /** Inserts messages in time order, skipping msgids already present; returns those inserted. */
  insert(messages) {
    const added = [];
    for (const msg of messages) {
      if (msg.msgid && this.msgids.has(msg.msgid)) continue;
      if (msg.msgid) {
        const twin = msg.event ? this.findUntaggedTwin(msg) : null;
        if (twin) {
          // A live event (sent untagged) seen again from history: adopt its id.
          twin.msgid = msg.msgid;
          this.msgids.set(msg.msgid, twin);
          continue;
        }
        this.msgids.set(msg.msgid, msg);
      }
      added.push(msg);
    }
    if (!added.length) return added;
    const last = this.messages.at(-1);
    if (added.length === 1 && (!last || added[0].time >= last.time)) {
      this.messages.push(added[0]);
    } else {
      this.messages.push(...added);
      this.messages.sort((a, b) => a.time - b.time || a.id - b.id);
    }
    for (const msg of added) this.applyOrphans(msg);
    if (this.messages.length > MAX_MESSAGES) {
      const excess = this.messages.length - MAX_MESSAGES;
      this.trimmed += excess;
      for (const old of this.messages.splice(0, excess)) {
        if (old.msgid) this.msgids.delete(old.msgid);
      }
      this.historyExhausted = false;
    }
    return added;
  }

  /** An event line without msgid that looks like `msg` (same event, nick, text, within 10 s). */
  findUntaggedTwin(msg) {
    for (let i = this.messages.length - 1; i >= 0 && i >= this.messages.length - 500; i--) {
      const m = this.messages[i];
      if (!m.msgid && m.event === msg.event && m.nick === msg.nick && m.text === msg.text
          && Math.abs(m.time - msg.time) < 10_000) return m;
    }
    return null;
  }

  addReaction(msgid, emoji, nick) {
    const target = this.msgids.get(msgid);
    if (!target) {
      const list = this.orphanReactions.get(msgid) ?? [];
      if (list.length >= MAX_ORPHANS_EACH) return null;
      list.push({ emoji, nick });
      this.orphanReactions.set(msgid, list);
      // Reactions to msgids that never show up (trimmed, or made up): forget the oldest.
      if (this.orphanReactions.size > MAX_ORPHAN_TARGETS) {
        this.orphanReactions.delete(this.orphanReactions.keys().next().value);
      }
      return null;
    }
    target.reactions ??= new Map();
    if (!target.reactions.has(emoji) && target.reactions.size >= MAX_REACTIONS) return null;
    const who = target.reactions.get(emoji) ?? new Set();
    who.add(casefold(nick));
    target.reactions.set(emoji, who);
    return target;
  }

  applyOrphans(msg) {
    const list = msg.msgid && this.orphanReactions.get(msg.msgid);
    if (!list) return;
    this.orphanReactions.delete(msg.msgid);
    for (const { emoji, nick } of list) this.addReaction(msg.msgid, emoji, nick);
  }

  /** Marks the message with this msgid deleted; returns it (or null). */
  redact(msgid) {
    const msg = this.msgids.get(msgid);
    if (!msg) return null;
    msg.redacted = true;
    msg.text = '';
    msg.reactions = null;
    return msg;
  }

  /** Counts messages from others after the read marker; mentions are those naming `nick` (every one in a query). */
  recount(nick) {
    const since = this.readMarker ?? this.since;
    let unread = 0;
    let mentionCount = 0;
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (m.time <= since) break;
      if (!countsAsUnread(m)) continue;
      unread++;
      if (this.isMention(m, nick)) mentionCount++;
    }
    this.unread = unread;
    this.mentions = mentionCount;
  }

  /** Counts one message just added at the end, without a full recount. */
  countNew(msg, nick) {
    if (msg.time <= (this.readMarker ?? this.since) || !countsAsUnread(msg)) return;
    this.unread++;
    if (this.isMention(msg, nick)) this.mentions++;
  }

  isMention(msg, nick) {
    return countsAsUnread(msg) && (!this.isChannel || mentions(msg.text, nick));
  }

  /** The first unread message (for the "new messages" line), or null. */
  firstUnread() {
    const since = this.readMarker ?? this.since;
    let first = null;
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (m.time <= since) break;
      if (countsAsUnread(m)) first = m;
    }
    return first;
  }

  setMember(nick, prefixes = '') {
    if (this.members.size >= MAX_MEMBERS && !this.members.has(casefold(nick))) return;
    this.members.set(casefold(nick), { nick, prefixes: sortPrefixes(prefixes) });
  }

  removeMember(nick) {
    return this.members.delete(casefold(nick));
  }

  renameMember(oldNick, newNick) {
    const entry = this.members.get(casefold(oldNick));
    if (!entry) return false;
    this.members.delete(casefold(oldNick));
    this.members.set(casefold(newNick), { ...entry, nick: newNick });
    return true;
  }

  setMemberMode(nick, prefix, on) {
    const entry = this.members.get(casefold(nick));
    if (!entry) return;
    const without = entry.prefixes.replace(prefix, '');
    entry.prefixes = sortPrefixes(on ? without + prefix : without);
  }

  /** Members sorted ops, voiced, rest; alphabetically within each group. */
  sortedMembers() {
    const rank = (m) => (m.prefixes ? PREFIX_ORDER.indexOf(m.prefixes[0]) : PREFIX_ORDER.length);
    return [...this.members.values()].sort(
      (a, b) => rank(a) - rank(b) || casefold(a.nick).localeCompare(casefold(b.nick)),
    );
  }
}

// Lines the client adds itself (errors, server notices) are `info`.
const countsAsUnread = (m) => !m.self && !m.redacted && !m.info && m.kind !== 'system';

function sortPrefixes(prefixes) {
  return [...new Set(prefixes)].filter((p) => PREFIX_ORDER.includes(p))
    .sort((a, b) => PREFIX_ORDER.indexOf(a) - PREFIX_ORDER.indexOf(b)).join('');
}

/** All buffers, keyed by folded name; channels listed before private conversations. */
export class BufferList {
  constructor() {
    this.map = new Map();
    this.since = Date.now(); // the session start: older history is not "unread" without a marker
  }

  get(name) {
    return this.map.get(casefold(name)) ?? null;
  }

  ensure(name) {
    let buffer = this.get(name);
    if (!buffer) {
      buffer = new Buffer(name, this.since);
      this.map.set(buffer.key, buffer);
    }
    return buffer;
  }

  remove(name) {
    this.map.delete(casefold(name));
  }

  rename(oldName, newName) {
    const buffer = this.get(oldName);
    const other = this.get(newName);
    // `other === buffer` is a change of case only (Bob → bob): still rename.
    if (!buffer || (other && other !== buffer)) return null;
    this.map.delete(buffer.key);
    buffer.name = newName;
    buffer.key = casefold(newName);
    this.map.set(buffer.key, buffer);
    return buffer;
  }

  ordered() {
    const all = [...this.map.values()];
    const byName = (a, b) => a.key.localeCompare(b.key);
    return [...all.filter((b) => b.isChannel).sort(byName), ...all.filter((b) => !b.isChannel).sort(byName)];
  }

  [Symbol.iterator]() {
    return this.map.values();
  }
}
