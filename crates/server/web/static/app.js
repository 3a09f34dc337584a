// The page: login screen, sidebar, header, nick list, compose box and dialogs.
// It implements the `ui` callbacks the Client calls and turns user input into
// Client calls. Network text only reaches the DOM through textContent.

import { Client } from './client.js';
import { MessageLog, el, setNickColour } from './view.js';
import { runCommand } from './commands.js';
import { Attention } from './notify.js';
import { loadSession, saveSession, updateSession, clearSession } from './storage.js';
import { casefold, isChannel } from './irc.js';

const $ = (id) => document.getElementById(id);
const REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '👀'];
const NICK_PATTERN = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]*$/;
const INPUT_HISTORY_MAX = 100;
const LIST_RENDER_MAX = 300;
const LIST_MAX = 10_000; // LIST entries kept: the server decides how many come
const COUNTS_DELAY_MS = 50;
const MOBILE = window.matchMedia('(max-width: 699px)');

class App {
  constructor() {
    this.client = null;
    this.active = null;
    this.session = null;
    this.bufferItems = new Map(); // buffer key → sidebar button
    this.drafts = new Map();
    this.inputHistory = [];
    this.historyIndex = 0;
    this.historyDraft = '';
    this.completion = null;
    this.channelList = [];
    this.membersQueued = false;
    this.countsDirty = new Set();
    this.countsTimer = 0;
    this.typingTimer = null;
    this.pickerFor = null;
    this.attention = new Attention(document.querySelector('link[rel="icon"]'));
    this.log = new MessageLog($('messages'), $('jump-latest'), {
      nearTop: (buffer) => this.client?.loadOlder(buffer),
      nearBottom: () => this.maybeMarkRead(),
      openNick: (nick) => this.client?.openQuery(nick),
      react: (msg, anchor) => this.openPicker(msg, anchor),
      reactWith: (msg, emoji) => this.client.react(this.active, msg, emoji),
      remove: (msg) => this.client.redact(this.active, msg),
      // Highlighted in channels; in a private conversation every message would be.
      isMention: (msg) => Boolean(this.active?.isChannel && this.client && this.active.isMention(msg, this.client.nick)),
    });
    this.bindLogin();
    this.bindChat();
  }

  init() {
    const saved = loadSession();
    if (saved?.resumable) this.startChat(saved);
    else this.showLogin(saved);
  }

  // ——— login ———

  bindLogin() {
    $('login-mode').addEventListener('change', () => this.updateLoginMode());
    $('login').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitLogin();
    });
  }

  showLogin(prefill, error = '') {
    $('app').hidden = true;
    $('login-screen').hidden = false;
    if (prefill) {
      $('login-nick').value = prefill.nick ?? '';
      $('login-mode').value = prefill.mode === 'register' || prefill.mode === 'login' ? prefill.mode : 'guest';
      $('login-account').value = prefill.account ?? '';
    }
    $('login-password').value = '';
    $('login-error').textContent = error;
    this.updateLoginMode();
    document.title = 'palaver';
    $('login-nick').focus();
  }

  updateLoginMode() {
    const mode = $('login-mode').value;
    $('account-fields').hidden = mode === 'guest';
    $('login-nick').placeholder = mode === 'guest' ? '' : 'Optional: the account name';
    $('login-password').autocomplete = mode === 'register' ? 'new-password' : 'current-password';
    $('login-submit').textContent = { guest: 'Connect', login: 'Log in', register: 'Create account' }[mode];
  }

  submitLogin() {
    const mode = $('login-mode').value;
    const account = $('login-account').value.trim();
    const password = $('login-password').value;
    const nick = $('login-nick').value.trim() || (mode !== 'guest' ? account : '');
    const error = (text, field) => {
      $('login-error').textContent = text;
      $(field).focus();
    };
    if (!nick) return error('Choose a nickname.', 'login-nick');
    if (!NICK_PATTERN.test(nick) || nick.length > 30) {
      return error('A nickname has letters, digits and - _ [ ] { } \\ ` ^ |, and does not start with a digit or -.', 'login-nick');
    }
    if (mode !== 'guest' && !account) return error('Enter the account name.', 'login-account');
    if (mode !== 'guest' && !password) return error('Enter the password.', 'login-password');
    const channels = loadSession()?.channels ?? [];
    this.startChat({ nick, mode, account: mode === 'guest' ? '' : account, password: mode === 'guest' ? '' : password, channels });
  }

  startChat(session) {
    this.session = session;
    saveSession(session);
    $('login-screen').hidden = true;
    $('app').hidden = false;
    $('self-nick').textContent = session.nick;
    this.showAccount(session.mode === 'login' ? session.account : '');
    const channels = ['#lobby', ...(session.channels ?? [])];
    this.client = new Client({ ...session, channels }, this);
    this.client.start();
    $('input').focus();
  }

  showAccount(account) {
    $('self-account').textContent = account && casefold(account) !== casefold($('self-nick').textContent) ? ` (${account})` : '';
  }

  // ——— callbacks from the Client ———

  status(state, seconds) {
    const status = $('status');
    status.dataset.state = state;
    status.textContent = state === 'connecting' ? 'connecting…'
      : state === 'connected' ? 'connected'
        : seconds ? `disconnected — reconnecting in ${seconds}s` : 'disconnected';
    $('reconnect').hidden = state !== 'disconnected';
    if (state === 'connected') $('self-nick').textContent = this.client.nick;
  }

  fatal(text) {
    const previous = this.session;
    clearSession();
    this.client?.stop();
    this.client = null;
    this.reset();
    this.showLogin(previous, text);
  }

  accountCreated(account) {
    this.session = { ...this.session, mode: 'login', account };
    updateSession({ mode: 'login', account });
    this.showAccount(account);
  }

  activeBuffer() {
    return this.active;
  }

  nickChanged(nick) {
    $('self-nick').textContent = nick;
    this.session = { ...this.session, nick };
    updateSession({ nick });
  }

  channelsChanged() {
    // Channels being rejoined after a reconnect count too.
    const channels = [...this.client.buffers].filter((b) => b.isChannel && (b.joined || b.rejoin)).map((b) => b.name);
    updateSession({ channels });
  }

  buffersChanged() {
    this.renderBufferList();
  }

  bufferClosed(buffer) {
    if (this.active === buffer) {
      const rest = this.client.buffers.ordered();
      this.active = null;
      if (rest.length) this.activate(rest[0]);
      else this.showEmpty();
    }
    this.renderBufferList();
    this.channelsChanged();
  }

  messagesAdded(buffer, messages) {
    if (buffer === this.active) {
      // Arriving while the user looks elsewhere: a "new messages" line before the first one.
      if ((document.hidden || !document.hasFocus()) && !this.log.markerEl && !this.log.unreadFrom) {
        this.log.unreadFrom = messages.find((m) => !m.self && !m.info && m.kind !== 'system') ?? null;
      }
      this.log.appended(buffer, messages); // marks the buffer read (nearBottom) once drawn
    }
    this.countsChanged(buffer);
  }

  historyLoaded(buffer, added, kind, first) {
    if (buffer === this.active && !added.length) this.log.noteStart();
    if (buffer === this.active && added.length) {
      if (kind === 'before') {
        this.log.prepended(buffer);
      } else if (first) {
        this.log.show(buffer, buffer.firstUnread()); // now the "new messages" line can be placed
      } else {
        this.log.refresh();
      }
      this.maybeMarkRead();
    }
    this.countsChanged(buffer);
  }

  messageChanged(buffer, msg) {
    this.log.changed(buffer, msg);
  }

  countsChanged(buffer) {
    // A burst of messages changes the counts many times: draw them once.
    this.countsDirty.add(buffer);
    this.countsTimer ||= setTimeout(() => this.drawCounts(), COUNTS_DELAY_MS);
  }

  drawCounts() {
    this.countsTimer = 0;
    for (const buffer of this.countsDirty) this.drawCount(buffer);
    this.countsDirty.clear();
    this.updateAttention();
  }

  drawCount(buffer) {
    const item = this.bufferItems.get(buffer.key);
    if (item) {
      item.querySelector('.unread').textContent = buffer.unread ? String(buffer.unread) : '';
      item.querySelector('.mentions').textContent = buffer.mentions ? String(buffer.mentions) : '';
      item.classList.toggle('has-unread', buffer.unread > 0);
      item.querySelector('.count-label').textContent = countLabel(buffer);
    }
  }

  membersChanged(buffer) {
    if (buffer !== this.active || this.membersQueued) return;
    // A netsplit or a big NAMES reply changes many members at once: draw once per frame.
    this.membersQueued = true;
    requestAnimationFrame(() => {
      this.membersQueued = false;
      this.renderMembers();
    });
  }

  topicChanged(buffer) {
    if (buffer === this.active) this.renderTopic();
  }

  typingChanged(buffer) {
    if (buffer === this.active) this.renderTyping();
  }

  notifyMention(buffer, msg) {
    const title = buffer.isChannel ? `${msg.nick} in ${buffer.name}` : msg.nick;
    this.attention.notify(title, msg.text, () => this.activate(buffer));
  }

  listStarted() {
    this.channelList = [];
    $('channel-list-status').textContent = 'Loading…';
  }

  listEntry(entry) {
    if (this.channelList.length < LIST_MAX) this.channelList.push(entry);
  }

  listEnded() {
    this.channelList.sort((a, b) => b.users - a.users || a.name.localeCompare(b.name));
    this.renderChannelList();
  }

  quit(reason) {
    this.client.conn.stop(reason);
  }

  showHelp(lines) {
    for (const line of lines) this.client.system(line);
  }

  // ——— buffers ———

  activate(buffer) {
    if (!buffer) return;
    if (this.active && this.active !== buffer) {
      this.drafts.set(this.active.key, $('input').value);
      this.client.stopTyping(this.active);
    }
    const changed = this.active !== buffer;
    this.active = buffer;
    if (changed) updateSession({ active: buffer.name });
    for (const [key, item] of this.bufferItems) {
      if (key === buffer.key) item.setAttribute('aria-current', 'page');
      else item.removeAttribute('aria-current');
    }
    $('buffer-title').textContent = buffer.name;
    $('app').classList.toggle('query', !buffer.isChannel);
    const input = $('input');
    input.placeholder = `Message ${buffer.name}`;
    if (changed) {
      input.value = this.drafts.get(buffer.key) ?? '';
      this.autosize();
      this.completion = null;
    }
    this.log.show(buffer, buffer.firstUnread());
    this.renderTopic();
    this.renderMembers();
    this.renderTyping();
    this.closeDrawers();
    this.maybeMarkRead();
    this.updateAttention();
  }

  showEmpty() {
    this.log.clear();
    $('buffer-title').textContent = '';
    $('topic').textContent = '';
    $('member-list').replaceChildren();
    $('member-count').textContent = '';
    this.updateAttention();
  }

  maybeMarkRead() {
    if (!this.active || !this.client || document.hidden || !document.hasFocus() || !this.log.followsLatest()) return;
    this.client.markRead(this.active);
  }

  updateAttention() {
    let unread = 0;
    let mentionCount = 0;
    for (const buffer of this.client?.buffers ?? []) {
      unread += buffer.unread;
      mentionCount += buffer.mentions;
    }
    this.attention.update(this.active?.name, unread, mentionCount);
  }

  renderBufferList() {
    const channels = $('channel-buffers');
    const queries = $('query-buffers');
    const channelItems = [];
    const queryItems = [];
    this.bufferItems.clear();
    for (const buffer of this.client.buffers.ordered()) {
      const li = el('li', 'buffer-row');
      const button = el('button', 'buffer');
      button.type = 'button';
      button.dataset.buffer = buffer.name;
      if (buffer === this.active) button.setAttribute('aria-current', 'page');
      button.classList.toggle('parted', buffer.isChannel && !buffer.joined);
      const mentionBadge = el('span', 'mentions');
      const unreadBadge = el('span', 'unread');
      // Screen readers get the counts in words instead of the bare badges.
      mentionBadge.setAttribute('aria-hidden', 'true');
      unreadBadge.setAttribute('aria-hidden', 'true');
      button.append(el('span', 'name', buffer.name), el('span', 'count-label visually-hidden'), mentionBadge, unreadBadge);
      button.addEventListener('click', () => {
        this.activate(buffer);
        if (!MOBILE.matches) $('input').focus(); // on a phone that would pop up the keyboard
      });
      const close = el('button', 'close-buffer icon-button', '×');
      close.type = 'button';
      close.setAttribute('aria-label', `Close ${buffer.name}`);
      close.title = buffer.isChannel ? 'Leave channel' : 'Close conversation';
      close.addEventListener('click', () => this.client.close(buffer));
      li.append(button, close);
      (buffer.isChannel ? channelItems : queryItems).push(li);
      this.bufferItems.set(buffer.key, button);
      this.drawCount(buffer);
    }
    channels.replaceChildren(...channelItems);
    queries.replaceChildren(...queryItems);
    if (this.active) $('buffer-title').textContent = this.active.name; // a query follows its nick
    if (!this.active && this.client.buffers.ordered().length === 0) this.showEmpty();
  }

  renderTopic() {
    $('topic').textContent = this.active?.isChannel ? this.active.topic : '';
    $('topic').title = this.active?.topic ?? '';
  }

  renderMembers() {
    const buffer = this.active;
    const list = $('member-list');
    if (!buffer || !buffer.isChannel) {
      list.replaceChildren();
      $('member-count').textContent = '';
      return;
    }
    const items = buffer.sortedMembers().map((member) => {
      const li = el('li', 'member');
      li.dataset.nick = member.nick;
      const button = el('button', 'member-button', `${member.prefixes[0] ?? ''}${member.nick}`);
      button.type = 'button';
      button.classList.toggle('away', Boolean(member.away));
      button.title = member.away ? `${member.nick} (away)` : member.nick;
      setNickColour(button, member.nick);
      button.addEventListener('click', () => {
        if (!this.client.conn.isSelf(member.nick)) this.client.openQuery(member.nick);
      });
      li.append(button);
      return li;
    });
    list.replaceChildren(...items);
    $('member-count').textContent = String(items.length);
  }

  renderTyping() {
    clearTimeout(this.typingTimer);
    const buffer = this.active;
    const now = Date.now();
    const who = [];
    let next = Infinity;
    for (const [key, entry] of buffer?.typing ?? []) {
      if (entry.until <= now) buffer.typing.delete(key);
      else {
        who.push(entry.nick);
        next = Math.min(next, entry.until);
      }
    }
    $('typing').textContent = who.length === 0 ? ''
      : who.length === 1 ? `${who[0]} is typing…`
        : who.length <= 3 ? `${who.slice(0, -1).join(', ')} and ${who.at(-1)} are typing…`
          : 'Several people are typing…';
    if (next !== Infinity) this.typingTimer = setTimeout(() => this.renderTyping(), next - now + 50);
  }

  // ——— chat screen events ———

  bindChat() {
    $('compose').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitInput();
    });
    const input = $('input');
    input.addEventListener('keydown', (event) => this.onInputKey(event));
    input.addEventListener('input', () => {
      this.autosize();
      this.completion = null;
      if (this.active && this.client) {
        const text = input.value;
        this.client.typing(this.active, text.length > 0 && !text.startsWith('/'));
      }
    });
    document.addEventListener('keydown', (event) => this.onGlobalKey(event));
    window.addEventListener('focus', () => this.maybeMarkRead());
    // Everything shown has been seen: the next message while away gets a fresh "new messages" line.
    window.addEventListener('blur', () => {
      if (this.log.followsLatest()) this.log.clearMarker();
    });
    document.addEventListener('visibilitychange', () => this.maybeMarkRead());
    $('reconnect').addEventListener('click', () => this.client?.conn.reconnectNow());
    $('logout').addEventListener('click', () => this.logout());
    $('toggle-buffers').addEventListener('click', () => this.toggleDrawer('buffers'));
    $('toggle-members').addEventListener('click', () => this.toggleDrawer('members'));
    $('scrim').addEventListener('click', () => this.closeDrawers());
    MOBILE.addEventListener('change', () => this.closeDrawers());

    $('join-channel').addEventListener('click', () => {
      $('join-name').value = '';
      $('join-dialog').showModal();
    });
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const name = $('join-name').value.trim();
      if (!name) return;
      $('join-dialog').close();
      this.client.join(isChannel(name) ? name : `#${name}`);
    });
    $('browse-channels').addEventListener('click', () => this.openChannelList(''));
    $('channel-search').addEventListener('input', () => this.renderChannelList());
    for (const dialog of document.querySelectorAll('dialog')) {
      dialog.querySelector('.cancel').addEventListener('click', () => dialog.close());
      dialog.addEventListener('close', () => $('input').focus());
    }

    const picker = $('reaction-picker');
    for (const emoji of REACTIONS) {
      const button = el('button', 'pick', emoji);
      button.type = 'button';
      button.setAttribute('aria-label', `React with ${emoji}`);
      button.addEventListener('click', () => {
        if (this.pickerFor) this.client.react(this.active, this.pickerFor, emoji);
        this.closePicker();
      });
      picker.append(button);
    }
    document.addEventListener('pointerdown', (event) => {
      if (!picker.hidden && !picker.contains(event.target) && !event.target.closest('button.react')) this.closePicker();
    });

    const notifications = $('enable-notifications');
    notifications.hidden = Attention.permission() !== 'default';
    notifications.addEventListener('click', async () => {
      const result = await Attention.requestPermission();
      notifications.hidden = result !== 'default';
    });
  }

  submitInput() {
    const input = $('input');
    const text = input.value;
    if (!text.trim() || !this.client) return;
    this.inputHistory.push(text);
    if (this.inputHistory.length > INPUT_HISTORY_MAX) this.inputHistory.shift();
    this.historyIndex = this.inputHistory.length;
    input.value = '';
    this.autosize();
    this.drafts.delete(this.active?.key);
    const handled = runCommand(text, { client: this.client, buffer: this.active, ui: this });
    if (handled) return;
    if (!this.active) {
      this.client.system('Join a channel first: /join #channel');
      return;
    }
    this.client.say(this.active, text.startsWith('//') ? text.slice(1) : text);
    this.log.jumpToLatest(); // what one just sent is always in view
  }

  onInputKey(event) {
    const input = event.target;
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submitInput();
    } else if (event.key === 'Tab' && !event.shiftKey && !event.altKey && !event.ctrlKey) {
      if (this.complete()) event.preventDefault();
    } else if ((event.key === 'ArrowUp' || event.key === 'ArrowDown') && !event.altKey && !event.shiftKey) {
      const before = input.value.slice(0, input.selectionStart);
      const after = input.value.slice(input.selectionEnd);
      const up = event.key === 'ArrowUp';
      const edge = input.value === '' || (up ? !before.includes('\n') : !after.includes('\n'));
      if (!edge || !this.recall(up)) return;
      event.preventDefault();
    }
  }

  /** Steps through sent lines; false when there is nothing to step to. */
  recall(up) {
    const next = this.historyIndex + (up ? -1 : 1);
    if (next < 0 || next > this.inputHistory.length) return false;
    const input = $('input');
    // What was being typed comes back after stepping down past the newest line.
    if (this.historyIndex === this.inputHistory.length) this.historyDraft = input.value;
    this.historyIndex = next;
    input.value = next === this.inputHistory.length ? this.historyDraft : this.inputHistory[next];
    input.setSelectionRange(input.value.length, input.value.length);
    this.autosize();
    return true;
  }

  /** Tab completion of nicks in the current buffer, cycling on repeated Tab. */
  complete() {
    const input = $('input');
    const buffer = this.active;
    if (!buffer) return false;
    let state = this.completion;
    if (!state || state.value !== input.value) {
      const caret = input.selectionStart;
      const start = input.value.slice(0, caret).search(/\S*$/);
      const prefix = casefold(input.value.slice(start, caret));
      const nicks = buffer.isChannel ? buffer.sortedMembers().map((m) => m.nick) : [buffer.name];
      const candidates = nicks
        .filter((n) => casefold(n).startsWith(prefix) && !this.client.conn.isSelf(n))
        .sort((a, b) => casefold(a).localeCompare(casefold(b)));
      if (!prefix || !candidates.length) return Boolean(prefix);
      state = { start, end: caret, candidates, index: -1, original: input.value };
    }
    state.index = (state.index + 1) % state.candidates.length;
    const nick = state.candidates[state.index];
    const suffix = state.start === 0 ? ': ' : ' ';
    const head = state.original.slice(0, state.start);
    const tail = state.original.slice(state.end);
    input.value = `${head}${nick}${suffix}${tail}`;
    const caret = head.length + nick.length + suffix.length;
    input.setSelectionRange(caret, caret);
    state.value = input.value;
    this.completion = state;
    return true;
  }

  onGlobalKey(event) {
    if (event.altKey && (event.key === 'ArrowUp' || event.key === 'ArrowDown') && this.client) {
      event.preventDefault();
      const list = this.client.buffers.ordered();
      const at = list.indexOf(this.active);
      const next = list[(at + (event.key === 'ArrowUp' ? -1 : 1) + list.length) % list.length];
      if (next) this.activate(next);
    } else if (event.key === 'Escape') {
      // Handled here too: in a search field the first Escape would only clear the text.
      const dialog = document.querySelector('dialog[open]');
      if (dialog) dialog.close();
      else if (!$('reaction-picker').hidden) this.closePicker();
      else this.closeDrawers();
    }
  }

  autosize() {
    const input = $('input');
    input.style.setProperty('height', 'auto');
    input.style.setProperty('height', `${Math.min(input.scrollHeight, 200)}px`);
  }

  toggleDrawer(which) {
    const app = $('app');
    const cls = `show-${which}`;
    const open = !app.classList.contains(cls);
    this.closeDrawers();
    if (!open) return;
    app.classList.add(cls);
    $(`toggle-${which}`).setAttribute('aria-expanded', 'true');
    $('scrim').hidden = false;
    $(which).querySelector('button')?.focus();
  }

  closeDrawers() {
    const app = $('app');
    app.classList.remove('show-buffers', 'show-members');
    $('toggle-buffers').setAttribute('aria-expanded', 'false');
    $('toggle-members').setAttribute('aria-expanded', 'false');
    $('scrim').hidden = true;
  }

  openPicker(msg, anchor) {
    const picker = $('reaction-picker');
    this.pickerFor = msg;
    picker.hidden = false;
    const rect = anchor.getBoundingClientRect();
    const width = picker.offsetWidth;
    const left = Math.max(8, Math.min(window.innerWidth - width - 8, rect.right - width));
    const top = rect.top - picker.offsetHeight - 6 > 8 ? rect.top - picker.offsetHeight - 6 : rect.bottom + 6;
    picker.style.setProperty('left', `${left}px`);
    picker.style.setProperty('top', `${top}px`);
    picker.querySelector('button').focus();
  }

  closePicker() {
    $('reaction-picker').hidden = true;
    this.pickerFor = null;
  }

  openChannelList(filter) {
    if (!this.client?.send('LIST')) {
      this.client?.system('Not connected.', null, { error: true });
      return;
    }
    this.channelList = [];
    $('channel-search').value = filter;
    $('channel-entries').replaceChildren();
    $('channel-list-status').textContent = 'Loading…';
    $('channel-list').showModal();
    $('channel-search').focus();
  }

  renderChannelList() {
    const query = $('channel-search').value.trim().toLowerCase();
    const matches = this.channelList.filter((c) => !query || c.name.toLowerCase().includes(query) || c.topic.toLowerCase().includes(query));
    const items = matches.slice(0, LIST_RENDER_MAX).map((entry) => {
      const li = el('li');
      const button = el('button', 'channel-entry');
      button.type = 'button';
      button.dataset.channel = entry.name;
      button.append(
        el('span', 'channel-name', entry.name),
        el('span', 'channel-users', `${entry.users} ${entry.users === 1 ? 'user' : 'users'}`),
        el('span', 'channel-topic', entry.topic),
      );
      button.addEventListener('click', () => {
        $('channel-list').close();
        this.client.join(entry.name);
      });
      li.append(button);
      return li;
    });
    $('channel-entries').replaceChildren(...items);
    $('channel-list-status').textContent = this.client?.listing ? 'Loading…'
      : matches.length === 0 ? 'No channels found.'
        : `${matches.length} ${matches.length === 1 ? 'channel' : 'channels'}${matches.length > LIST_RENDER_MAX ? `, first ${LIST_RENDER_MAX} shown` : ''}`;
  }

  logout() {
    this.client?.stop('Logged out');
    clearSession();
    this.client = null;
    this.reset();
    this.showLogin(null);
    $('login-nick').value = '';
    $('login-account').value = '';
  }

  /** Forgets the chat screen's state (after logging out or a refused login). */
  reset() {
    clearTimeout(this.typingTimer);
    clearTimeout(this.countsTimer);
    this.countsTimer = 0;
    this.countsDirty.clear();
    this.active = null;
    this.bufferItems.clear();
    this.drafts.clear();
    $('channel-buffers').replaceChildren();
    $('query-buffers').replaceChildren();
    $('input').value = '';
    this.showEmpty();
  }
}

function countLabel(buffer) {
  const parts = [];
  if (buffer.unread) parts.push(`, ${buffer.unread} unread`);
  if (buffer.mentions) parts.push(`, ${buffer.mentions} ${buffer.mentions === 1 ? 'mention' : 'mentions'}`);
  return parts.join('');
}

new App().init();
