// The message log: renders a window of a buffer's messages (the newest ~300)
// into #messages, appends live ones without re-rendering, and slides the window
// when the user scrolls. Network text only ever reaches the DOM as text nodes.

import { splitLinks, nickHue, formatTime, formatDay, dayKey, isoTime } from './text.js';

const WINDOW = 300; // messages in the DOM normally
const MAX_DOM = 450; // before trimming the far end
const PAGE = 100; // messages added per scroll step
const NEAR_EDGE_PX = 400;
const GROUP_MS = 5 * 60_000;

/** Creates an element with a class and optional text (always as a text node). */
export function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

const ICONS = {
  react: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 2a8 8 0 1 1 0 16 8 8 0 0 1 0-16zM8.5 8.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm7 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zM7.2 14a5.2 5.2 0 0 0 9.6 0h-2.3a3 3 0 0 1-5 0z',
  trash: 'M9 3h6l1 2h4v2H4V5h4zM6 9h12l-1 12H7zm4 2v8h1.5v-8zm2.5 0v8H14v-8z',
};

/** A small inline SVG icon (decorative: the button carries the label). */
function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/** An icon button of a message's actions; the label is for screen readers and hover. */
function actionButton(className, iconName, label) {
  const button = el('button', className);
  button.type = 'button';
  button.append(icon(iconName));
  button.setAttribute('aria-label', label);
  button.title = label;
  return button;
}

export function setNickColour(node, nick) {
  node.style.setProperty('--hue', String(nickHue(nick)));
}

function appendLinkified(parent, text) {
  for (const part of splitLinks(text)) {
    if (part.href) {
      const a = el('a', '', part.text);
      a.href = part.href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      parent.append(a);
    } else {
      parent.append(document.createTextNode(part.text));
    }
  }
}

const isContinuation = (msg, prev) => prev && prev.kind !== 'system' && msg.kind !== 'system' && msg.kind !== 'action'
  && prev.nick === msg.nick && msg.time - prev.time < GROUP_MS && dayKey(msg.time) === dayKey(prev.time);

export class MessageLog {
  /** hooks: nearTop(buffer), openNick(nick), react(msg, anchor), reactWith(msg, emoji), remove(msg), isMention(msg), nearBottom(). */
  constructor(container, jumpButton, hooks) {
    this.container = container;
    this.jumpButton = jumpButton;
    jumpButton.addEventListener('click', () => {
      this.jumpToLatest();
      container.focus();
    });
    this.frame = 0; // a pending requestAnimationFrame for live appends
    this.following = false;
    this.needsRefresh = false;
    this.lengthAtRender = 0;
    this.trimmedAtRender = 0;
    this.hooks = hooks;
    this.buffer = null;
    this.start = 0; // window [start, end) into buffer.messages
    this.end = 0;
    this.elements = new Map(); // message local id → element
    this.unreadFrom = null;
    this.markerEl = null;
    container.addEventListener('scroll', () => this.onScroll(), { passive: true });
    container.addEventListener('click', (event) => this.onClick(event));
  }

  atBottom() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 40 && this.end === this.buffer?.messages.length;
  }

  /** Shows a buffer from its newest message, with the "new messages" line before `unreadFrom`. */
  show(buffer, unreadFrom) {
    this.buffer = buffer;
    this.unreadFrom = unreadFrom;
    this.end = buffer.messages.length;
    this.start = Math.max(0, this.end - WINDOW);
    this.renderWindow();
    if (this.markerEl) {
      // Open at the first unread message, with some context above it.
      this.container.scrollTop = this.markerEl.offsetTop - this.container.clientHeight / 3;
    } else {
      this.scrollToBottom();
    }
    this.onScroll();
  }

  clearMarker() {
    this.markerEl?.remove();
    this.markerEl = null;
    this.unreadFrom = null;
  }

  scrollToBottom() {
    this.container.scrollTop = this.container.scrollHeight;
  }

  renderWindow() {
    this.lengthAtRender = this.buffer.messages.length;
    this.trimmedAtRender = this.buffer.trimmed;
    this.elements.clear();
    this.markerEl = null;
    this.container.replaceChildren(this.renderRange(this.start, this.end));
    this.noteStart();
  }

  /** "This is the start of #chan" above the oldest message, once history has no more. */
  noteStart() {
    const first = this.container.firstChild;
    const noted = first?.classList?.contains('log-start');
    if (this.start === 0 && this.buffer.historyExhausted && !noted) {
      this.container.prepend(el('p', 'log-start', `This is the start of ${this.buffer.name}.`));
    }
  }

  renderRange(from, to) {
    const fragment = document.createDocumentFragment();
    const messages = this.buffer.messages;
    for (let i = from; i < to; i++) {
      const msg = messages[i];
      const prev = messages[i - 1];
      if (!prev || dayKey(prev.time) !== dayKey(msg.time)) {
        const sep = el('div', 'day-separator');
        sep.setAttribute('role', 'separator');
        sep.append(el('span', '', formatDay(msg.time)));
        fragment.append(sep);
      }
      if (msg === this.unreadFrom) {
        this.markerEl = el('div', 'read-marker');
        this.markerEl.setAttribute('role', 'separator');
        this.markerEl.append(el('span', '', 'New messages'));
        fragment.append(this.markerEl);
      }
      fragment.append(this.messageElement(msg, prev));
    }
    return fragment;
  }

  messageElement(msg, prev) {
    const row = el('div', 'msg');
    this.elements.set(msg.id, row);
    this.fill(row, msg, prev);
    return row;
  }

  fill(row, msg, prev) {
    row.replaceChildren();
    row.className = `msg ${msg.kind}`;
    row.classList.toggle('self', msg.self);
    row.classList.toggle('pending', msg.pending);
    row.classList.toggle('failed', Boolean(msg.failed));
    row.classList.toggle('redacted', msg.redacted);
    row.classList.toggle('error', Boolean(msg.error));
    row.classList.toggle('info', Boolean(msg.info));
    row.classList.toggle('continuation', Boolean(isContinuation(msg, prev)));
    row.classList.toggle('mention', this.hooks.isMention(msg));
    if (msg.msgid) row.dataset.msgid = msg.msgid;
    else delete row.dataset.msgid;
    row.dataset.nick = msg.nick;
    row.dataset.id = String(msg.id);

    const time = el('time', '', formatTime(msg.time));
    time.dateTime = isoTime(msg.time);
    time.title = new Date(msg.time).toLocaleString();
    row.append(time);

    const nick = el(msg.kind === 'system' || msg.self ? 'span' : 'button', 'nick', msg.nick);
    if (nick.tagName === 'BUTTON') {
      nick.type = 'button';
      nick.dataset.openNick = msg.nick;
    }
    if (msg.nick) setNickColour(nick, msg.nick);
    const text = el('div', 'text');
    if (msg.kind === 'action') {
      // "* alice waves": the nick is part of the sentence.
      text.append('* ', nick, ' ');
    } else {
      row.append(nick);
    }
    if (msg.redacted) text.textContent = 'message deleted';
    else appendLinkified(text, msg.text);
    if (msg.pending) text.append(el('span', 'pending-label', ' (sending…)'));
    if (msg.failed) text.append(el('span', 'pending-label', ` (not sent: ${msg.failed})`));
    row.append(text);

    if (msg.reactions?.size) {
      const chips = el('div', 'reactions');
      for (const [emoji, who] of msg.reactions) {
        const chip = el('button', 'reaction', `${emoji} ${who.size}`);
        chip.type = 'button';
        chip.dataset.emoji = emoji;
        chip.setAttribute('aria-label', `${emoji} ${who.size}, react with ${emoji}`);
        chips.append(chip);
      }
      row.append(chips);
    }

    if (msg.kind !== 'system' && msg.msgid && !msg.redacted) {
      const actions = el('div', 'actions');
      actions.append(actionButton('react', 'react', 'Add reaction'));
      if (msg.self) actions.append(actionButton('delete', 'trash', 'Delete message'));
      row.append(actions);
    }
  }

  /** Messages were added to `buffer` (live). DOM work waits for the next frame, so a burst costs one layout. */
  appended(buffer, messages) {
    if (buffer !== this.buffer) return;
    const length = buffer.messages.length;
    if (messages.some((m, i) => buffer.messages[length - messages.length + i] !== m)) this.needsRefresh = true;
    if (this.frame) return;
    this.following = this.atBottomLoose();
    this.frame = requestAnimationFrame(() => this.flushAppended());
  }

  flushAppended() {
    this.frame = 0;
    if (!this.buffer) return;
    if (this.needsRefresh) {
      // Inserted before the end (clock skew, late echo): redraw the window in place.
      this.needsRefresh = false;
      this.refresh();
      return;
    }
    const shift = this.buffer.trimmed - this.trimmedAtRender;
    if (shift) {
      // The buffer dropped its oldest messages (the cap): indices moved.
      this.trimmedAtRender = this.buffer.trimmed;
      if (shift > this.start) {
        this.refresh();
        return;
      }
      this.start -= shift;
      this.end -= shift;
      this.lengthAtRender -= shift;
    }
    // Not following: the user reads older messages; the window catches up on scroll.
    if (!this.following || this.end !== this.lengthAtRender) {
      this.jumpButton.hidden = false;
      return;
    }
    const from = this.end;
    this.end = this.buffer.messages.length;
    this.lengthAtRender = this.end;
    this.container.append(this.renderRange(from, this.end));
    this.trimTop(false);
    this.scrollToBottom();
    this.hooks.nearBottom();
  }

  /** One message changed (echo, reaction, redaction): redraw only its row. */
  changed(buffer, msg) {
    if (buffer !== this.buffer) return;
    const row = this.elements.get(msg.id);
    if (!row) return;
    const index = buffer.messages.indexOf(msg);
    const stick = this.atBottom();
    this.fill(row, msg, buffer.messages[index - 1]);
    if (stick) this.scrollToBottom();
  }

  /** The message array changed in the middle (history merged): redraw the window, keeping the view still. */
  refresh() {
    const messages = this.buffer.messages;
    const wasBottom = this.atBottomLoose();
    const anchor = this.visibleAnchor();
    if (wasBottom) {
      this.end = messages.length;
      this.start = Math.max(0, this.end - Math.max(WINDOW, this.end - this.start));
    } else {
      // Indices are stale after an insert: find the first rendered message by its id.
      const firstId = Number(this.container.querySelector('.msg')?.dataset.id);
      const i = messages.findIndex((m) => m.id === firstId);
      this.start = i === -1 ? Math.max(0, messages.length - WINDOW) : i;
      this.end = Math.min(messages.length, this.start + Math.max(WINDOW, this.end - this.start));
    }
    this.renderWindow();
    if (wasBottom) this.scrollToBottom();
    else this.restoreAnchor(anchor);
  }

  /** History older than the window arrived at the front: render a page of it above what is shown. */
  prepended(buffer) {
    if (buffer !== this.buffer) return;
    const anchor = this.visibleAnchor();
    const messages = this.buffer.messages;
    const firstIdx = anchor ? messages.findIndex((m) => m.id === anchor.id) : 0;
    this.start = Math.max(0, firstIdx - PAGE);
    this.end = Math.min(messages.length, Math.max(this.start + WINDOW, firstIdx + 1));
    this.renderWindow();
    this.restoreAnchor(anchor);
  }

  /** At the bottom, with nothing newer left out (a pending frame will append what just arrived). */
  followsLatest() {
    return this.buffer !== null && this.atBottomLoose() && this.end === this.lengthAtRender;
  }

  atBottomLoose() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }

  /** The first message row visible at the top, with its offset from the top edge. */
  visibleAnchor() {
    const top = this.container.scrollTop;
    for (const row of this.container.querySelectorAll('.msg')) {
      if (row.offsetTop + row.offsetHeight > top) return { id: Number(row.dataset.id), offset: row.offsetTop - top };
    }
    return null;
  }

  restoreAnchor(anchor) {
    const row = anchor && this.elements.get(anchor.id);
    if (row) this.container.scrollTop = row.offsetTop - anchor.offset;
  }

  onScroll() {
    if (!this.buffer) return;
    const c = this.container;
    if (c.scrollTop < NEAR_EDGE_PX) {
      if (this.start > 0) this.growTop();
      else this.hooks.nearTop(this.buffer);
    } else if (c.scrollHeight - c.scrollTop - c.clientHeight < NEAR_EDGE_PX && this.end < this.buffer.messages.length
        && !this.frame) { // a pending frame appends what is new
      this.growBottom();
    }
    const bottom = this.atBottom();
    this.jumpButton.hidden = bottom;
    if (bottom) this.hooks.nearBottom();
  }

  jumpToLatest() {
    this.following = true; // a frame pending for live messages appends them too
    if (this.end < this.buffer.messages.length || this.start < this.buffer.messages.length - WINDOW) {
      this.end = this.buffer.messages.length;
      this.start = Math.max(0, this.end - WINDOW);
      this.renderWindow();
    }
    this.scrollToBottom();
  }

  growTop() {
    const from = Math.max(0, this.start - PAGE);
    const before = this.container.scrollHeight;
    this.container.prepend(this.renderRange(from, this.start));
    this.start = from;
    this.noteStart();
    this.container.scrollTop += this.container.scrollHeight - before;
    this.trimBottom();
  }

  growBottom() {
    const to = Math.min(this.buffer.messages.length, this.end + PAGE);
    this.container.append(this.renderRange(this.end, to));
    this.end = to;
    this.lengthAtRender = this.buffer.messages.length;
    this.trimTop();
  }

  /** Drops rows above the window when the DOM grows past MAX_DOM (keeping the view still unless told). */
  trimTop(keepPosition = true) {
    const excess = this.end - this.start - MAX_DOM;
    if (excess <= 0) return;
    const newStart = this.start + excess + (PAGE >> 1);
    const lastDropped = this.elements.get(this.buffer.messages[newStart - 1].id);
    const container = this.container;
    if (!lastDropped || !container.firstChild) return;
    const before = keepPosition ? container.scrollHeight : 0; // reading layout is what costs here
    const top = keepPosition ? container.scrollTop : 0;
    for (let i = this.start; i < newStart; i++) this.elements.delete(this.buffer.messages[i].id);
    // One range deletion instead of a node at a time: this runs on every burst of live messages.
    const range = document.createRange();
    range.setStartBefore(container.firstChild);
    range.setEndAfter(lastDropped);
    range.deleteContents();
    if (this.markerEl && !this.markerEl.isConnected) this.markerEl = null;
    this.start = newStart;
    if (keepPosition) container.scrollTop = top - (before - container.scrollHeight);
  }

  trimBottom() {
    const excess = this.end - this.start - MAX_DOM;
    if (excess <= 0) return;
    let drop = excess + (PAGE >> 1);
    while (drop > 0 && this.container.lastChild) {
      const node = this.container.lastChild;
      node.remove();
      if (node.classList.contains('msg')) {
        this.elements.delete(Number(node.dataset.id));
        drop--;
        this.end--;
        // A separator or marker right before belongs to the removed message.
        while (this.container.lastChild && !this.container.lastChild.classList.contains('msg')) {
          if (this.container.lastChild === this.markerEl) this.markerEl = null;
          this.container.lastChild.remove();
        }
      }
    }
  }

  onClick(event) {
    const button = event.target.closest('button');
    if (!button || !this.buffer) return;
    const row = button.closest('.msg');
    const msg = row && this.buffer.messages.find((m) => m.id === Number(row.dataset.id));
    if (button.dataset.openNick) this.hooks.openNick(button.dataset.openNick);
    else if (!msg) return;
    else if (button.classList.contains('react')) this.hooks.react(msg, button);
    else if (button.classList.contains('delete')) this.hooks.remove(msg);
    else if (button.classList.contains('reaction')) this.hooks.reactWith(msg, button.dataset.emoji);
  }

  clear() {
    this.buffer = null;
    this.jumpButton.hidden = true;
    this.elements.clear();
    this.container.replaceChildren();
  }
}
