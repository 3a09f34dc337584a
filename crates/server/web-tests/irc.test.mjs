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
