// Unit tests for the browser client's pure modules: node --test crates/server/web-tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parse, serialize, escapeTagValue, unescapeTagValue, parseSource, casefold, parseCtcp, parseCaps, parseCapValue,
} from '../web/static/irc.js';
import { ScramClient, utf8ToBase64, base64ToUtf8 } from '../web/static/scram.js';
import { splitLinks, nickHue, mentions } from '../web/static/text.js';

// CC0 vectors from crates/proto/tests/data (msg-split.yaml, msg-join.yaml), converted to JSON.
const vectors = JSON.parse(readFileSync(new URL('./parser-vectors.json', import.meta.url), 'utf8'));

test('parser vectors: msg-split', () => {
  for (const { input, atoms } of vectors.split) {
    const msg = parse(input);
    assert.equal(msg.command, atoms.verb, input);
    assert.deepEqual(msg.params, atoms.params ?? [], input);
    assert.equal(msg.source, atoms.source ?? null, input);
    assert.deepEqual(msg.tags, atoms.tags ?? {}, input);
  }
});

test('parser vectors: msg-join', () => {
  for (const { desc, atoms, matches } of vectors.join) {
    const line = serialize({ tags: atoms.tags, source: atoms.source, command: atoms.verb, params: atoms.params });
    if (atoms.tags && Object.keys(atoms.tags).length > 1) {
      // Tag order is free: compare the parsed result instead of the bytes.
      assert.ok(matches.some((m) => JSON.stringify(parse(m)) === JSON.stringify(parse(line))), desc);
    } else {
      assert.ok(matches.includes(line), `${desc}: ${line}`);
    }
  }
});

test('tag values round-trip through escaping', () => {
  const raw = 'a;b c\\d\r\ne';
  assert.equal(escapeTagValue(raw), 'a\\:b\\sc\\\\d\\r\\ne');
  assert.equal(unescapeTagValue(escapeTagValue(raw)), raw);
  assert.equal(unescapeTagValue('x\\'), 'x');
  assert.equal(unescapeTagValue('\\b'), 'b');
  const line = serialize({ tags: { '+draft/react': '👍', '+draft/reply': 'id 1' }, command: 'TAGMSG', params: ['#a'] });
  assert.equal(line, '@+draft/react=👍;+draft/reply=id\\s1 TAGMSG #a');
  assert.deepEqual(parse(line).tags, { '+draft/react': '👍', '+draft/reply': 'id 1' });
});

test('serialize puts a colon only on a trailing parameter that needs one', () => {
  assert.equal(serialize({ command: 'PRIVMSG', params: ['#a', 'hi'] }), 'PRIVMSG #a hi');
  assert.equal(serialize({ command: 'PRIVMSG', params: ['#a', 'hi there'] }), 'PRIVMSG #a :hi there');
  assert.equal(serialize({ command: 'PRIVMSG', params: ['#a', ':)'] }), 'PRIVMSG #a ::)');
  assert.equal(serialize({ command: 'QUIT', params: [''] }), 'QUIT :');
});

test('sources, case mapping, CTCP and caps', () => {
  assert.deepEqual(parseSource('alice!~a@127.0.0.1'), { nick: 'alice', user: '~a', host: '127.0.0.1' });
  assert.deepEqual(parseSource('palaver.local'), { nick: 'palaver.local', user: '', host: '' });
  assert.equal(casefold('Nick[A]\\~'), 'nick{a}|^');
  assert.deepEqual(parseCtcp('\x01ACTION waves\x01'), { command: 'ACTION', text: 'waves' });
  assert.equal(parseCtcp('hello'), null);
  const caps = parseCaps('sasl=PLAIN,SCRAM-SHA-256 echo-message draft/multiline=max-bytes=4096,max-lines=32');
  assert.equal(caps.get('sasl'), 'PLAIN,SCRAM-SHA-256');
  assert.equal(caps.get('echo-message'), '');
  assert.deepEqual(parseCapValue(caps.get('draft/multiline')), { 'max-bytes': '4096', 'max-lines': '32' });
});

test('SCRAM-SHA-256 matches the RFC 7677 example', async () => {
  const client = new ScramClient('user', 'pencil', 'rOprNGfwEbeRWgbNEkqO');
  assert.equal(client.clientFirst(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  const final = await client.clientFinal(
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  );
  assert.equal(final, 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
  assert.ok(client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
  assert.ok(!client.verifyServerFinal('v=AAAA'));
});

test('SCRAM escapes the user name and refuses a foreign nonce', async () => {
  assert.equal(new ScramClient('a,b=c', 'p', 'N').clientFirst(), 'n,,n=a=2Cb=3Dc,r=N');
  await assert.rejects(new ScramClient('u', 'p', 'N').clientFinal('r=X,s=AAAA,i=4096'));
  assert.equal(base64ToUtf8(utf8ToBase64('\0zoë\0pw')), '\0zoë\0pw');
});

test('links: only http(s), trailing punctuation left out', () => {
  assert.deepEqual(splitLinks('see https://a.example/x?y=1. ok'), [
    { text: 'see ' }, { text: 'https://a.example/x?y=1', href: 'https://a.example/x?y=1' }, { text: '. ok' },
  ]);
  assert.deepEqual(splitLinks('javascript:alert(1) ftp://x'), [{ text: 'javascript:alert(1) ftp://x' }]);
  assert.deepEqual(splitLinks('(https://en.wikipedia.org/wiki/A_(b))'), [
    { text: '(' }, { text: 'https://en.wikipedia.org/wiki/A_(b)', href: 'https://en.wikipedia.org/wiki/A_(b)' }, { text: ')' },
  ]);
  assert.deepEqual(splitLinks('<img src=x onerror=alert(1)>'), [{ text: '<img src=x onerror=alert(1)>' }]);
});

test('nick colours are stable and case-insensitive', () => {
  assert.equal(nickHue('alice'), nickHue('alice'));
  assert.equal(nickHue('Alice'), nickHue('alice'));
  assert.ok(nickHue('alice') >= 0 && nickHue('alice') < 360);
  assert.notEqual(nickHue('alice'), nickHue('bob'));
});

test('mentions match whole nicks only', () => {
  assert.ok(mentions('hey alice!', 'alice'));
  assert.ok(mentions('Alice: hi', 'alice'));
  assert.ok(!mentions('malice', 'alice'));
  assert.ok(mentions('ping [bot]', '[bot]'));
});

test('long lines split at spaces within the byte limit', async () => {
  const { splitByBytes } = await import('../web/static/client.js');
  assert.deepEqual(splitByBytes('short'), ['short']);
  const words = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
  const pieces = splitByBytes(words, 100);
  assert.equal(pieces.join(''), words);
  for (const p of pieces) assert.ok(new TextEncoder().encode(p).length <= 100);
  // Multi-byte characters are never cut in half.
  const emoji = '😀'.repeat(60);
  const parts = splitByBytes(emoji, 50);
  assert.equal(parts.join(''), emoji);
  for (const p of parts) assert.ok(new TextEncoder().encode(p).length <= 50 && !p.includes('\uFFFD'));
});

test('buffers merge history without duplicates and count unread after the marker', async () => {
  const { Buffer, makeMessage } = await import('../web/static/state.js');
  const buffer = new Buffer('#lobby', 0);
  const m = (msgid, time, text, extra = {}) => makeMessage({ msgid, time, nick: 'bob', text, ...extra });
  buffer.insert([m('a', 1000, 'one'), m('b', 2000, 'two')]);
  buffer.insert([m('b', 2000, 'two'), m('c', 3000, 'hey alice'), m('z', 500, 'older')]);
  assert.deepEqual(buffer.messages.map((x) => x.msgid), ['z', 'a', 'b', 'c']);
  buffer.readMarker = 1500;
  buffer.recount('alice');
  assert.equal(buffer.unread, 2);
  assert.equal(buffer.mentions, 1);
  assert.equal(buffer.firstUnread().msgid, 'b');
  buffer.insert([m('d', 4000, 'mine', { self: true })]);
  buffer.recount('alice');
  assert.equal(buffer.unread, 2, 'own messages are never unread');
  buffer.redact('c');
  buffer.recount('alice');
  assert.equal(buffer.mentions, 0);
  // A reaction that arrives before its message is applied when the message does.
  buffer.addReaction('e', '👍', 'carol');
  buffer.insert([m('e', 5000, 'late')]);
  assert.equal(buffer.msgids.get('e').reactions.get('👍').size, 1);
});

test('members sort ops, voiced, then the rest', async () => {
  const { Buffer } = await import('../web/static/state.js');
  const buffer = new Buffer('#c', 0);
  buffer.setMember('zed', '@');
  buffer.setMember('amy');
  buffer.setMember('Bob', '+');
  buffer.setMember('carl', '+@');
  assert.deepEqual(buffer.sortedMembers().map((x) => `${x.prefixes[0] ?? ''}${x.nick}`), ['@carl', '@zed', '+Bob', 'amy']);
  buffer.setMemberMode('amy', '+', true);
  buffer.setMemberMode('zed', '@', false);
  assert.deepEqual(buffer.sortedMembers().map((x) => `${x.prefixes[0] ?? ''}${x.nick}`), ['@carl', '+amy', '+Bob', 'zed']);
});

test('slash commands turn into client calls or raw lines', async () => {
  const { runCommand } = await import('../web/static/commands.js');
  const calls = [];
  const lobby = { name: '#lobby', isChannel: true, topic: '' };
  const client = {
    conn: { connected: true, sendRaw: (line) => calls.push(['raw', line]) },
    buffers: { get: (name) => (name === '#lobby' ? lobby : null) },
    join: (...a) => calls.push(['join', ...a]),
    part: (b, reason) => calls.push(['part', b.name, reason]),
    send: (...a) => calls.push(['send', ...a]),
    say: (b, text, opts) => calls.push(['say', b.name, text, opts]),
    openQuery: (nick) => ({ name: nick, isChannel: false }),
    system: (text) => calls.push(['system', text]),
    close: (b) => calls.push(['close', b.name]),
  };
  const ui = { quit: (r) => calls.push(['quit', r]), openChannelList: (f) => calls.push(['list', f]), showHelp: () => calls.push(['help']) };
  const run = (text) => runCommand(text, { client, buffer: lobby, ui });
  assert.equal(run('hello'), false);
  assert.equal(run('//not a command'), false);
  run('/join rust');
  run('/join #secret key');
  run('/part bye now');
  run('/msg bob hi there');
  run('/me waves');
  run('/away');
  run('/away lunch');
  run('/mode #lobby +o bob');
  run('/list py');
  run('/quit');
  assert.deepEqual(calls, [
    ['join', '#rust', undefined],
    ['join', '#secret', 'key'],
    ['part', '#lobby', 'bye now'],
    ['say', 'bob', 'hi there', undefined],
    ['say', '#lobby', 'waves', { action: true }],
    ['send', 'AWAY'],
    ['send', 'AWAY', 'lunch'],
    ['raw', 'MODE #lobby +o bob'],
    ['list', 'py'],
    ['quit', 'Leaving'],
  ]);
});

test('a buffer keeps at most MAX_MESSAGES, dropping the oldest', async () => {
  const { Buffer, makeMessage, MAX_MESSAGES } = await import('../web/static/state.js');
  const buffer = new Buffer('#big', 0);
  const extra = 50;
  for (let i = 0; i < MAX_MESSAGES + extra; i++) buffer.insert([makeMessage({ msgid: `m${i}`, time: i + 1, text: `line ${i}` })]);
  assert.equal(buffer.messages.length, MAX_MESSAGES);
  assert.equal(buffer.trimmed, extra);
  assert.equal(buffer.messages[0].msgid, `m${extra}`);
  assert.ok(!buffer.msgids.has('m0'));
});
