// Pure text helpers: link splitting, nick colours, mentions, time formatting.

const LINK = /\bhttps?:\/\/[^\s<>"']+/gi;
// Punctuation that usually ends a sentence rather than a URL.
const TRAILING = '.,;:!?)]}';

/**
 * Splits text into [{ text }, { text, href }] parts; only http(s) URLs become links.
 * A closing bracket stays in the URL when the URL also contains its opening one.
 */
export function splitLinks(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let url = match[0];
    // A backwards scan, not a `[…]+$` regexp: that one is quadratic on a long run of
    // punctuation not at the end, which anyone can send.
    let end = url.length;
    while (end > 0 && TRAILING.includes(url[end - 1])) end--;
    if (end < url.length) {
      if (url[end] === ')' && url.includes('(')) end++;
      url = url.slice(0, end);
    }
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: url, href: url });
    last = match.index + url.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** A stable hue (0-359) for a nick, so each person keeps one colour everywhere. */
export function nickHue(nick) {
  let hash = 2166136261;
  for (const c of nick.toLowerCase()) {
    hash ^= c.codePointAt(0);
    hash = Math.imul(hash, 16777619);
  }
  return (hash >>> 0) % 360;
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let mentionPattern = { nick: null, regexp: null }; // one nick at a time: compile once

/** True when `text` names `nick` as a word (case-insensitive). */
export function mentions(text, nick) {
  if (!nick) return false;
  if (mentionPattern.nick !== nick) {
    mentionPattern = { nick, regexp: new RegExp(`(^|[^\\w-])${escapeRegExp(nick)}($|[^\\w-])`, 'i') };
  }
  return mentionPattern.regexp.test(text);
}

const pad = (n) => String(n).padStart(2, '0');

/** HH:MM in local time. */
export const formatTime = (ms) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

/** A local calendar-day key, to tell when a day separator is needed. */
export const dayKey = (ms) => {
  const d = new Date(ms);
  return d.getFullYear() * 10000 + d.getMonth() * 100 + d.getDate();
};

export function formatDay(ms, now = Date.now()) {
  if (dayKey(ms) === dayKey(now)) return 'Today';
  if (dayKey(ms) === dayKey(now - 86400000)) return 'Yesterday';
  return new Date(ms).toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

/** Server timestamps as the server writes them: YYYY-MM-DDThh:mm:ss.sssZ. */
export const isoTime = (ms) => new Date(ms).toISOString();
