// The WebSocket to the server: capability negotiation, registration, SASL or
// REGISTER, keepalive, and reconnection with exponential backoff.

import { parse, serialize, parseCaps, casefold } from './irc.js';
import { ScramClient, scramAvailable, utf8ToBase64, base64ToUtf8 } from './scram.js';

const WANTED_CAPS = [
  'message-tags', 'server-time', 'echo-message', 'batch', 'labeled-response', 'away-notify',
  'account-notify', 'account-tag', 'extended-join', 'multi-prefix', 'userhost-in-names', 'cap-notify',
  'setname', 'draft/chathistory', 'draft/event-playback', 'draft/read-marker', 'draft/multiline',
  'draft/message-redaction', 'draft/account-registration', 'sasl', 'invite-notify',
];

// `?debug` in the page address traces the protocol on the console.
const DEBUG = typeof location !== 'undefined' && new URLSearchParams(location.search).has('debug');
const BACKOFF_MAX_S = 30;
const KEEPALIVE_MS = 60_000;
// Lines that may carry a password (SASL, REGISTER, PASS, OPER, NickServ's IDENTIFY and
// the echo of it): never written to the console, even with `?debug`.
const SECRET_LINE = /^(?:@\S+ +)?(?::\S+ +)?(?:AUTHENTICATE|REGISTER|PASS|OPER|NS|NICKSERV|PRIVMSG +NickServ) /i;
const trace = (arrow, line) => console.debug(arrow, SECRET_LINE.test(line) ? '<redacted>' : line);

/**
 * Options: { nick, mode: 'guest'|'login'|'register', account, password }.
 * Callbacks: onState(state, secondsUntilRetry), onMessage(msg), onRegistered(),
 * onFatal(text) (credentials refused: no reconnect), onAccountCreated(account).
 */
export class Connection {
  constructor(options, callbacks) {
    this.options = { ...options };
    this.callbacks = callbacks;
    this.ws = null;
    this.nick = options.nick;
    this.caps = new Map(); // enabled capability → value from CAP LS
    this.offered = new Map();
    this.registered = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.countdownTimer = null;
    this.keepaliveTimer = null;
    this.awaitingPong = false;
    this.pendingNick = null;
    this.reclaiming = null; // the nick we asked for and got 433 for, watched with MONITOR
  }

  has(cap) {
    return this.caps.has(cap);
  }

  isSelf(nick) {
    return casefold(nick) === casefold(this.nick);
  }

  start() {
    this.stopped = false;
    this.clearTimers();
    this.registered = false;
    this.caps = new Map();
    this.offered = new Map();
    this.sasl = null;
    this.nick = this.options.nick;
    this.callbacks.onState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const ws = new WebSocket(`${scheme}${location.host}/`, ['text.ircv3.net']);
    this.ws = ws;
    ws.onopen = () => {
      this.sendRaw('CAP LS 302');
      this.sendLine({ command: 'NICK', params: [this.nick] });
      this.sendLine({ command: 'USER', params: [this.nick.replace(/[^A-Za-z0-9]/g, '') || 'user', '0', '*', this.nick] });
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      const text = typeof event.data === 'string' ? event.data : '';
      for (const line of text.split(/\r?\n/)) if (line) this.receive(line);
    };
    ws.onclose = () => {
      if (ws === this.ws) this.closed();
    };
  }

  /** Quits for good (QUIT with a reason) or just closes; no reconnect either way. */
  stop(reason) {
    this.stopped = true;
    this.clearTimers();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && reason !== undefined) {
      this.sendLine({ command: 'QUIT', params: [reason] });
    }
    this.ws?.close();
    this.ws = null;
    this.registered = false;
    this.callbacks.onState('disconnected');
  }

  /** Skips the backoff wait. */
  reconnectNow() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.start();
  }

  get connected() {
    return this.registered && this.ws?.readyState === WebSocket.OPEN;
  }

  sendRaw(line) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    if (DEBUG) trace('→', line);
    this.ws.send(line);
    return true;
  }

  sendLine(msg) {
    return this.sendRaw(serialize(msg));
  }

  /** Sends only once registered; returns false when the line could not go out. */
  send(msg) {
    return this.connected && this.sendLine(msg);
  }

  receive(line) {
    if (DEBUG) trace('←', line);
    const msg = parse(line);
    msg.command = msg.command.toUpperCase();
    this.awaitingPong = false;
    switch (msg.command) {
      case 'PING':
        this.sendLine({ command: 'PONG', params: msg.params });
        return;
      case 'CAP':
        this.onCap(msg);
        return;
      case 'AUTHENTICATE':
        this.onAuthenticate(msg.params[0]);
        return;
      case '900':
        this.options.account = msg.params[2];
        break;
      case '903':
        this.endCap();
        return;
      case '902': case '904': case '905': case '906':
        if (msg.command === '904' && this.sasl?.afterFallback) {
          // The 904 that follows a 908 is about the mechanism we already replaced.
          this.sasl.afterFallback = false;
          return;
        }
        if (!this.registered) {
          this.fatal(msg.params.at(-1));
          return;
        }
        break;
      case '908':
        // Mechanisms the server offers: fall back from SCRAM to PLAIN if needed.
        if (this.sasl?.mechanism === 'SCRAM-SHA-256' && this.sasl.step === 0 && msg.params[1]?.split(',').includes('PLAIN')) {
          this.beginSasl('PLAIN');
          this.sasl.afterFallback = true;
        }
        return;
      case 'REGISTER':
        if (msg.params[0] === 'SUCCESS') {
          this.options.mode = 'login';
          this.options.account = msg.params[1];
          this.callbacks.onAccountCreated(msg.params[1]);
          if (!this.registered) this.endCap();
        }
        break;
      case 'FAIL':
        if (msg.params[0] === 'REGISTER' && !this.registered) {
          this.fatal(msg.params.at(-1));
          return;
        }
        break;
      case '433':
        if (!this.registered) {
          this.nick = `${msg.params[1] ?? this.nick}_`;
          this.sendLine({ command: 'NICK', params: [this.nick] });
          return;
        }
        break;
      case '432':
        if (!this.registered) {
          this.fatal(`${msg.params[1] ?? this.nick}: ${msg.params.at(-1)}`);
          return;
        }
        break;
      case '001':
        this.registered = true;
        this.nick = msg.params[0];
        this.attempt = 0;
        this.callbacks.onState('connected');
        this.startKeepalive();
        this.callbacks.onRegistered();
        this.reclaimNick();
        break;
      case '730': case '731': case '732': case '733': case '734':
        // MONITOR replies are only ever about the nick being reclaimed.
        if (msg.command === '731' && this.reclaiming
          && (msg.params[1] ?? '').split(',').some((nick) => casefold(nick) === casefold(this.reclaiming))) {
          this.sendLine({ command: 'NICK', params: [this.reclaiming] });
        }
        return;
      case 'NICK':
        if (msg.source && this.isSelf(msg.source.split('!')[0])) {
          this.pendingNick = msg.params[0];
          if (this.reclaiming) {
            // Got it back, or chose another on purpose: either way, stop watching.
            this.sendLine({ command: 'MONITOR', params: ['-', this.reclaiming] });
            this.reclaiming = null;
          }
          this.options.nick = msg.params[0]; // a reconnect asks for the nick chosen last
        }
        break;
      default:
    }
    this.callbacks.onMessage(msg);
    if (this.pendingNick) {
      // Updated after the app saw the NICK, so it can still tell it was ours.
      this.nick = this.pendingNick;
      this.pendingNick = null;
    }
  }

  /**
   * Registered under another nick than the one asked for (it was in use: often our
   * own previous connection, not yet timed out after a network change): watch the
   * wanted nick with MONITOR and take it as soon as it is free (RPL_MONOFFLINE).
   */
  reclaimNick() {
    const wanted = this.options.nick;
    this.reclaiming = null;
    if (!wanted || casefold(wanted) === casefold(this.nick)) return;
    this.reclaiming = wanted;
    this.sendLine({ command: 'MONITOR', params: ['+', wanted] });
  }

  onCap(msg) {
    const [, sub, ...rest] = msg.params;
    const list = rest.at(-1) ?? '';
    switch (sub) {
      case 'LS': {
        for (const [k, v] of parseCaps(list)) this.offered.set(k, v);
        if (rest[0] === '*') return; // more LS lines follow
        this.request([...this.offered.keys()]);
        break;
      }
      case 'NEW':
        for (const [k, v] of parseCaps(list)) this.offered.set(k, v);
        this.request([...parseCaps(list).keys()]);
        break;
      case 'DEL':
        for (const k of parseCaps(list).keys()) this.caps.delete(k);
        break;
      case 'ACK':
        for (const name of list.split(' ')) {
          if (!name) continue;
          if (name.startsWith('-')) this.caps.delete(name.slice(1));
          else this.caps.set(name, this.offered.get(name) ?? '');
        }
        if (!this.registered && --this.pendingReqs === 0) this.afterCaps();
        break;
      case 'NAK':
        if (!this.registered && --this.pendingReqs === 0) this.afterCaps();
        break;
      default:
    }
  }

  request(names) {
    const wanted = names.filter((n) => WANTED_CAPS.includes(n) && !this.caps.has(n));
    if (!wanted.length) {
      if (!this.registered) this.afterCaps();
      return;
    }
    // Several REQ lines keep each under the 512-byte limit.
    const chunks = [];
    for (const name of wanted) {
      const last = chunks.at(-1);
      if (last && last.join(' ').length + name.length < 400) last.push(name);
      else chunks.push([name]);
    }
    this.pendingReqs = chunks.length;
    for (const chunk of chunks) this.sendLine({ command: 'CAP', params: ['REQ', chunk.join(' ')] });
  }

  afterCaps() {
    const { mode, account, password } = this.options;
    if (mode === 'login' && account && password) {
      this.beginSasl(scramAvailable() ? 'SCRAM-SHA-256' : 'PLAIN');
    } else if (mode === 'register' && account && password) {
      if (!this.offered.has('draft/account-registration')) {
        this.fatal('This server does not offer account registration before connecting.');
        return;
      }
      this.sendLine({ command: 'REGISTER', params: [account, '*', password] });
    } else {
      this.endCap();
    }
  }

  endCap() {
    this.sendRaw('CAP END');
  }

  beginSasl(mechanism) {
    const { account, password } = this.options;
    this.sasl = { mechanism, scram: mechanism === 'SCRAM-SHA-256' ? new ScramClient(account, password) : null, step: 0 };
    this.sendLine({ command: 'AUTHENTICATE', params: [mechanism] });
  }

  async onAuthenticate(data) {
    const sasl = this.sasl;
    if (!sasl) return;
    const { account, password } = this.options;
    try {
      let reply;
      if (sasl.mechanism === 'PLAIN') {
        reply = utf8ToBase64(`\0${account}\0${password}`);
      } else if (sasl.step === 0) {
        reply = utf8ToBase64(sasl.scram.clientFirst());
      } else if (sasl.step === 1) {
        reply = utf8ToBase64(await sasl.scram.clientFinal(base64ToUtf8(data)));
      } else {
        if (!sasl.scram.verifyServerFinal(base64ToUtf8(data))) throw new Error('The server could not prove it knows the password');
        reply = '+';
      }
      sasl.step++;
      this.sendAuthenticate(reply);
    } catch (err) {
      this.sendRaw('AUTHENTICATE *');
      this.fatal(err.message);
    }
  }

  sendAuthenticate(payload) {
    // 400-byte chunks; a final chunk of exactly 400 is followed by '+'.
    if (payload === '+') {
      this.sendRaw('AUTHENTICATE +');
      return;
    }
    for (let i = 0; i < payload.length; i += 400) this.sendRaw(`AUTHENTICATE ${payload.slice(i, i + 400)}`);
    if (payload.length % 400 === 0) this.sendRaw('AUTHENTICATE +');
  }

  fatal(text) {
    this.stop();
    this.callbacks.onFatal(text || 'The server refused the connection.');
  }

  startKeepalive() {
    // A silent network drop can leave a socket open for minutes: probe it.
    this.keepaliveTimer = setInterval(() => {
      if (this.awaitingPong) {
        this.ws?.close();
        return;
      }
      this.awaitingPong = true;
      this.sendRaw('PING palaver-web');
    }, KEEPALIVE_MS);
  }

  closed() {
    this.ws = null;
    this.registered = false;
    this.clearTimers();
    if (this.stopped) return;
    // 1 s doubling to 30 s, plus up to 25 % jitter so a restarted server is not hit all at once.
    const base = Math.min(BACKOFF_MAX_S, 2 ** this.attempt);
    this.attempt++;
    const delayMs = base * 1000 * (1 + Math.random() * 0.25);
    let left = Math.ceil(delayMs / 1000);
    this.callbacks.onState('disconnected', left);
    this.countdownTimer = setInterval(() => {
      left--;
      if (left > 0) this.callbacks.onState('disconnected', left);
    }, 1000);
    this.retryTimer = setTimeout(() => this.start(), delayMs);
  }

  clearTimers() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    clearInterval(this.keepaliveTimer);
    this.awaitingPong = false;
  }
}
