// IRC wire format: parsing and serialising lines with IRCv3 message tags.
// Pure functions only, so Node's test runner can import this module as it is.

const TAG_UNESCAPES = { ':': ';', s: ' ', '\\': '\\', r: '\r', n: '\n' };
const TAG_ESCAPES = { ';': '\\:', ' ': '\\s', '\\': '\\\\', '\r': '\\r', '\n': '\\n' };

export function unescapeTagValue(value) {
  // A backslash before any other character drops the backslash; a lone trailing one is dropped.
  return value.replace(/\\(.?)/gs, (_, c) => TAG_UNESCAPES[c] ?? c);
}

export function escapeTagValue(value) {
  return value.replace(/[; \\\r\n]/g, (c) => TAG_ESCAPES[c]);
}

/** Parses one line (without CRLF) into { tags, source, command, params }. */
export function parse(line) {
  let pos = 0;
  const tags = {};
  let source = null;
  const skipSpaces = () => {
    while (line[pos] === ' ') pos++;
  };
  const word = () => {
    const end = line.indexOf(' ', pos);
    const w = end === -1 ? line.slice(pos) : line.slice(pos, end);
    pos = end === -1 ? line.length : end;
    return w;
  };

  skipSpaces();
  if (line[pos] === '@') {
    pos++;
    for (const item of word().split(';')) {
      if (!item) continue;
      const eq = item.indexOf('=');
      if (eq === -1) tags[item] = '';
      else tags[item.slice(0, eq)] = unescapeTagValue(item.slice(eq + 1));
    }
    skipSpaces();
  }
  if (line[pos] === ':') {
    pos++;
    source = word();
    skipSpaces();
  }
  const command = word();
  const params = [];
  for (;;) {
    skipSpaces();
    if (pos >= line.length) break;
    if (line[pos] === ':') {
      params.push(line.slice(pos + 1));
      break;
    }
    params.push(word());
  }
  return { tags, source, command, params };
}

/** Serialises { tags?, source?, command, params? } into one line (without CRLF). */
export function serialize({ tags = {}, source = null, command, params = [] }) {
  let line = '';
  const tagItems = Object.entries(tags).map(([k, v]) =>
    v === '' || v === true || v == null ? k : `${k}=${escapeTagValue(String(v))}`,
  );
  if (tagItems.length) line += `@${tagItems.join(';')} `;
  if (source) line += `:${source} `;
  line += command;
  params.forEach((p, i) => {
    const last = i === params.length - 1;
    line += last && (p === '' || p.includes(' ') || p.startsWith(':')) ? ` :${p}` : ` ${p}`;
  });
  return line;
}

/** Splits `nick!user@host` into its parts; a server name has only `nick` set to it. */
export function parseSource(source) {
  if (!source) return { nick: '', user: '', host: '' };
  const bang = source.indexOf('!');
  const at = source.indexOf('@', bang + 1);
  if (bang === -1) {
    return at === -1 ? { nick: source, user: '', host: '' } : { nick: source.slice(0, at), user: '', host: source.slice(at + 1) };
  }
  return {
    nick: source.slice(0, bang),
    user: at === -1 ? source.slice(bang + 1) : source.slice(bang + 1, at),
    host: at === -1 ? '' : source.slice(at + 1),
  };
}

/** RFC 1459 case mapping (the server's CASEMAPPING): A-Z[]\~ fold to a-z{}|^. */
export function casefold(name) {
  return name.replace(/[A-Z[\]\\~]/g, (c) => {
    switch (c) {
      case '[': return '{';
      case ']': return '}';
      case '\\': return '|';
      case '~': return '^';
      default: return c.toLowerCase();
    }
  });
}

export function isChannel(name, chantypes = '#') {
  return name.length > 0 && chantypes.includes(name[0]);
}

/** CTCP: `\x01ACTION text\x01` → { command: 'ACTION', text }; null for plain text. */
export function parseCtcp(text) {
  if (!text.startsWith('\x01')) return null;
  const body = text.slice(1, text.endsWith('\x01') && text.length > 1 ? -1 : undefined);
  const space = body.indexOf(' ');
  return space === -1
    ? { command: body.toUpperCase(), text: '' }
    : { command: body.slice(0, space).toUpperCase(), text: body.slice(space + 1) };
}

/** Parses a CAP LS/NEW list (`a b=c`) into a Map of name → value ('' when none). */
export function parseCaps(list) {
  const caps = new Map();
  for (const item of list.split(' ')) {
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq === -1) caps.set(item, '');
    else caps.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return caps;
}

/** Parses a cap value such as `max-bytes=4096,max-lines=32` into an object. */
export function parseCapValue(value) {
  const out = {};
  for (const item of value.split(',')) {
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq === -1) out[item] = '';
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Byte length of a string as UTF-8 (the unit IRC limits are counted in). */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}
