// The browser client end to end: headless Chromium on the page the real
// chat-server serves, next to plain IRC clients on real sockets.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, afterEach, before, test } from 'node:test';

import { BrowserUser, DESKTOP, IrcClient, PHONE, Server, TIMEOUT, launchBrowser } from './harness.mjs';

const require = createRequire(import.meta.url);

let browser;
/** What each test opened, closed after it whatever happened. */
let opened = [];
const track = (thing) => {
  opened.push(thing);
  return thing;
};

before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});
afterEach(async () => {
  for (const thing of opened.reverse()) await thing.close();
  opened = [];
});

const startServer = async (args) => track(await Server.start(args));
const openUser = async (server, options) => track(await BrowserUser.open(browser, server, options));
const connectIrc = async (server, nick) => track(await IrcClient.connect(server.port, nick));

/** No script error, alert or console error happened in these pages. */
function assertNoErrors(...users) {
  for (const user of users) assert.deepEqual(user.errors, [], `errors in ${user.nick}'s page`);
}

test('two browser users and an IRC client chat in #lobby', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const bob = await openUser(server);
  await bob.login({ nick: 'bob' });
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');

  await alice.say('hello from the browser');
  await bob.expectMessage('hello from the browser');
  const heard = await carol.expectPrivmsg('hello from the browser');
  assert.equal(heard.source.split('!')[0], 'alice');
  assert.equal(heard.params[0], '#lobby');

  carol.send('PRIVMSG #lobby :hello from IRC');
  await alice.expectMessage('hello from IRC');
  await bob.expectMessage('hello from IRC');
  const line = bob.page.locator('#messages .msg', { hasText: 'hello from IRC' }).first();
  assert.equal(await line.getAttribute('data-nick'), 'carol');
  assert.match(await line.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);

  await bob.say('/me waves');
  await carol.expectPrivmsg('\x01ACTION waves\x01');

  // The nick list shows who is in the channel.
  await alice.page.locator('#members [data-nick="carol"]').waitFor({ timeout: TIMEOUT });
  await alice.page.locator('#members [data-nick="bob"]').waitFor({ timeout: TIMEOUT });
  await alice.screenshot('desktop');
  assertNoErrors(alice, bob);
});

test('private messages open a buffer with a mention count', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const dave = await connectIrc(server, 'dave');

  dave.send('PRIVMSG alice :are you there?');
  const buffer = alice.page.locator('[data-buffer="dave"]');
  await buffer.waitFor({ timeout: TIMEOUT });
  await buffer.locator('.mentions', { hasText: '1' }).waitFor({ timeout: TIMEOUT });

  await alice.open('dave');
  await alice.expectMessage('are you there?');
  await alice.say('yes, here');
  const reply = await dave.expectPrivmsg('yes, here');
  assert.equal(reply.params[0], 'dave');

  await alice.say('/msg dave a second line');
  await dave.expectPrivmsg('a second line');
  assertNoErrors(alice);
});

test('history is shown again after a reload', async () => {
  const server = await startServer();
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  for (let i = 1; i <= 30; i++) carol.send(`PRIVMSG #lobby :earlier message ${i}`);
  // The last one committed before anybody opens the page.
  carol.send('PING :sync');
  await carol.expect((m) => m.command === 'PONG', 'the PONG');

  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  await alice.expectMessage('earlier message 30');
  await alice.say('said before the reload');
  await carol.expectPrivmsg('said before the reload');

  const started = Date.now();
  await alice.page.reload();
  // A saved session reconnects on its own, without the login form.
  await alice.waitConnected();
  await alice.expectMessage('said before the reload');
  const shown = Date.now() - started;
  console.log(`# reload to history shown: ${shown} ms`);
  await alice.expectMessage('earlier message 30');
  const copies = await alice.page.locator('#messages .msg .text', { hasText: 'said before the reload' }).count();
  assert.equal(copies, 1, 'each message once');
  assertNoErrors(alice);
});

test('reading on one device clears the unread count on the other', async () => {
  const server = await startServer();
  const phone = await openUser(server);
  await phone.login({ nick: 'erin', mode: 'register', account: 'erin', password: 'correct-horse-battery' });
  const laptop = await openUser(server);
  await laptop.login({ nick: 'erin2', mode: 'login', account: 'erin', password: 'correct-horse-battery' });
  for (const device of [phone, laptop]) {
    await device.say('/join #side');
    await device.page.locator('[data-buffer="#side"][aria-current="page"]').waitFor({ timeout: TIMEOUT });
    await device.open('#lobby');
  }

  const frank = await connectIrc(server, 'frank');
  await frank.join('#side');
  frank.send('PRIVMSG #side :news for erin');
  for (const device of [phone, laptop]) {
    await device.page.locator('[data-buffer="#side"] .unread', { hasText: '1' }).waitFor({ timeout: TIMEOUT });
  }

  await laptop.open('#side');
  await laptop.expectMessage('news for erin');
  // The laptop's read marker reaches the phone through the server.
  await phone.page.waitForFunction(
    () => (document.querySelector('[data-buffer="#side"] .unread')?.textContent ?? '').trim() === '',
    null,
    { timeout: TIMEOUT },
  );
  assertNoErrors(phone, laptop);
});

test('the client reconnects after a server restart and sends what was typed meanwhile', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  await alice.say('before the restart');

  await server.stop();
  await alice.page.locator('#status[data-state="disconnected"]').waitFor({ timeout: TIMEOUT });
  await alice.say('typed while the server was down');

  await server.restart();
  await alice.waitConnected();
  // The queued line is sent once the client is back in the channel, and shown once.
  await alice.page.locator('#messages .msg .text', { hasText: 'typed while the server was down' })
    .first().waitFor({ timeout: TIMEOUT });
  const copies = await alice.page.locator('#messages .msg .text', { hasText: 'typed while the server was down' }).count();
  assert.equal(copies, 1);
  assert.equal(await alice.page.locator('#messages .msg .text', { hasText: 'before the restart' }).count(), 1);
  assertNoErrors(alice);
});

test('a nick in use is taken back as soon as it is free', async () => {
  // Often the nick's holder is the user's own previous connection, not yet timed
  // out after a network change; here a plain IRC client plays that part.
  const server = await startServer();
  const ghost = await connectIrc(server, 'alice');
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const self = alice.page.locator('#self-nick');
  assert.equal(await self.textContent(), 'alice_');
  ghost.send('QUIT :gone');
  await alice.page.locator('#self-nick', { hasText: /^alice$/ }).waitFor({ timeout: TIMEOUT });
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  await alice.say('my own nick again');
  const heard = await carol.expectPrivmsg('my own nick again');
  assert.equal(heard.source.split('!')[0], 'alice');
  assertNoErrors(alice);
});

test('markup from the network is shown as text, never run', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const mallory = await connectIrc(server, 'mallory');
  const evil = '<img src=x onerror=alert(1)>';
  const channel = '#<img/src=x/onerror=alert(2)>';
  // mallory opens a channel of its own (and so may set its topic), then alice joins.
  await mallory.join('#den');
  mallory.send(`TOPIC #den :${evil}`);
  await mallory.expect((m) => m.command === 'TOPIC', 'the topic change');
  await alice.say('/join #den');
  await alice.page.locator('#topic', { hasText: evil }).waitFor({ timeout: TIMEOUT });
  mallory.send(`PRIVMSG #den :${evil}`);
  mallory.send(`PRIVMSG alice :<script>alert(3)</script>`);
  mallory.send(`PRIVMSG #den :<a href="javascript:alert(4)">click</a> javascript:alert(5)`);
  await alice.expectMessage(evil);
  await alice.expectMessage('click');
  await alice.page.locator('[data-buffer="mallory"]').waitFor({ timeout: TIMEOUT });
  await alice.say(`/join ${channel}`);
  await alice.page.locator(`[data-buffer="${channel}"]`).waitFor({ timeout: TIMEOUT });
  await alice.open('#den');
  await alice.expectMessage(evil);

  const page = alice.page;
  assert.equal(await page.locator('#messages img, #topic img, #buffers img').count(), 0);
  assert.equal(await page.locator('script:not([src])').count(), 0);
  assert.equal(await page.locator('a[href^="javascript:"]').count(), 0);
  const text = await alice.message(evil).textContent();
  assert.ok(text.includes(evil), text);
  assertNoErrors(alice);
});

test('links open safely in a new tab', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  carol.send('PRIVMSG #lobby :see https://example.org/page?x=1 for details');
  const link = alice.page.locator('#messages a[href="https://example.org/page?x=1"]');
  await link.waitFor({ timeout: TIMEOUT });
  assert.equal(await link.getAttribute('target'), '_blank');
  assert.match(await link.getAttribute('rel'), /noopener/);
  assertNoErrors(alice);
});

test('reactions, deleting, typing and multi-line paste reach other clients', async () => {
  const server = await startServer();
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const carol = await IrcClient.connect(server.port, 'carol', [
    'server-time', 'message-tags', 'echo-message', 'batch', 'draft/multiline', 'draft/message-redaction',
  ]);
  track(carol);
  await carol.join('#lobby');
  const page = alice.page;

  // Typing is announced with the +typing client tag, and shown for others' typing.
  await page.locator('#input').pressSequentially('hel');
  const typing = await carol.expect((m) => m.command === 'TAGMSG' && m.tags['+typing'] === 'active', 'typing');
  assert.equal(typing.params[0], '#lobby');
  carol.send('@+typing=active TAGMSG #lobby');
  await page.locator('#typing', { hasText: 'carol' }).waitFor({ timeout: TIMEOUT });
  await page.locator('#input').fill('');

  // A reaction to carol's message goes out as a TAGMSG replying to its msgid.
  carol.send('PRIVMSG #lobby :react to me');
  const echoed = await carol.expectPrivmsg('react to me');
  const row = page.locator('#messages .msg', { hasText: 'react to me' }).first();
  await row.waitFor({ timeout: TIMEOUT });
  await row.hover();
  await row.locator('button.react').click();
  await page.locator('#reaction-picker button').first().click();
  const reaction = await carol.expect((m) => m.command === 'TAGMSG' && m.tags['+draft/react'], 'the reaction');
  assert.equal(reaction.tags['+draft/reply'], echoed.tags.msgid);
  await row.locator('.reactions .reaction', { hasText: '1' }).waitFor({ timeout: TIMEOUT });

  // Deleting one's own message: REDACT, and the line goes from carol's view too.
  await alice.say('a message to take back');
  const mine = await carol.expectPrivmsg('a message to take back');
  const own = page.locator('#messages .msg', { hasText: 'a message to take back' }).first();
  await own.hover();
  await own.locator('button.delete').click();
  const redact = await carol.expect((m) => m.command === 'REDACT', 'the REDACT');
  assert.deepEqual(redact.params.slice(0, 2), ['#lobby', mine.tags.msgid]);

  // Three pasted lines arrive as one multiline batch.
  await page.locator('#input').fill('first line\nsecond line\nthird line');
  await page.locator('#input').press('Enter');
  const opened = await carol.expect((m) => m.command === 'BATCH' && m.params[1] === 'draft/multiline', 'a multiline batch');
  const lines = [];
  for (let i = 0; i < 3; i++) {
    const line = await carol.expect((m) => m.command === 'PRIVMSG' && m.tags.batch === opened.params[0].slice(1), 'a batch line');
    lines.push(line.params[1]);
  }
  assert.deepEqual(lines, ['first line', 'second line', 'third line']);
  assertNoErrors(alice);
});

test('browsing channels, switching buffers and the unread count in the title', async () => {
  const server = await startServer();
  const dave = await connectIrc(server, 'dave');
  await dave.join('#rust');
  dave.send('TOPIC #rust :all about crabs');
  await dave.join('#python');
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const page = alice.page;

  await page.locator('#browse-channels').click();
  await page.locator('dialog#channel-list [data-channel="#python"]').waitFor({ timeout: TIMEOUT });
  await page.locator('#channel-search').fill('crab');
  await page.locator('dialog#channel-list [data-channel="#python"]').waitFor({ state: 'detached', timeout: TIMEOUT });
  await page.locator('dialog#channel-list [data-channel="#rust"]').click();
  await page.locator('[data-buffer="#rust"][aria-current="page"]').waitFor({ timeout: TIMEOUT });
  await page.locator('#topic', { hasText: 'all about crabs' }).waitFor({ timeout: TIMEOUT });
  await page.locator('#members [data-nick="dave"]').waitFor({ timeout: TIMEOUT });

  // Tab completes a nick of the channel.
  await page.locator('#input').fill('da');
  await page.locator('#input').press('Tab');
  assert.match(await page.locator('#input').inputValue(), /^dave[:,] ?/);
  await page.locator('#input').fill('');

  // Alt+Up goes back to #lobby; a message in #rust then counts as unread, in the title too.
  await page.locator('#input').press('Alt+ArrowUp');
  await page.locator('[data-buffer="#lobby"][aria-current="page"]').waitFor({ timeout: TIMEOUT });
  dave.send('PRIVMSG #rust :while you were away');
  await page.locator('[data-buffer="#rust"] .unread', { hasText: '1' }).waitFor({ timeout: TIMEOUT });
  await page.waitForFunction(() => /^\(1\)/.test(document.title), null, { timeout: TIMEOUT });
  assertNoErrors(alice);
});

test('a phone-sized screen shows the chat and the drawers', async () => {
  const server = await startServer();
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  carol.send('PRIVMSG #lobby :hello phone');
  carol.send('PING :sync');
  await carol.expect((m) => m.command === 'PONG', 'the PONG');
  const alice = await openUser(server, PHONE);
  await alice.login({ nick: 'alice' });
  await alice.expectMessage('hello phone');
  const page = alice.page;
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  assert.ok(await page.locator('#input').isVisible());
  await alice.screenshot('phone');

  await page.locator('#toggle-buffers').click();
  await page.locator('[data-buffer="#lobby"]').waitFor({ state: 'visible', timeout: TIMEOUT });
  await alice.screenshot('phone-buffers');
  await page.keyboard.press('Escape');
  await page.locator('#toggle-members').click();
  await page.locator('#members [data-nick="carol"]').waitFor({ state: 'visible', timeout: TIMEOUT });
  assertNoErrors(alice);
});

test('a channel with 10,000 messages keeps the page small', async () => {
  const server = await startServer(['--no-flood-limit']);
  const alice = await openUser(server);
  await alice.login({ nick: 'alice' });
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  // In chunks, each echoed back before the next, so that no connection's send
  // queue fills faster than a browser reads.
  for (let start = 1; start <= 10_000; start += 500) {
    const chunk = [];
    for (let i = start; i < start + 500; i++) chunk.push(`PRIVMSG #lobby :flood line ${i}\r\n`);
    carol.socket.write(chunk.join(''));
    await carol.expectPrivmsg(`flood line ${start + 499}`);
  }
  // A generous deadline: a loaded 2-core CI machine takes seconds to draw 10,000
  // lines; what this test checks is the page size and that it still answers.
  await alice.expectMessage('flood line 10000', 60_000);
  const rendered = await alice.page.locator('#messages .msg').count();
  assert.ok(rendered <= 1000, `${rendered} message elements in the page`);
  // Still responsive: a line typed now goes out and comes back.
  await alice.say('still here');
  await carol.expectPrivmsg('still here');
  assertNoErrors(alice);
});

test('no serious accessibility violations (axe-core)', async () => {
  const server = await startServer();
  const carol = await connectIrc(server, 'carol');
  await carol.join('#lobby');
  carol.send('PRIVMSG #lobby :hello');
  // axe is injected as a script, which the page's CSP would (rightly) refuse.
  const context = track(await browser.newContext({ ...DESKTOP, bypassCSP: true }));
  const page = await context.newPage();
  await page.goto(server.url);
  const audit = async (where) => {
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
    const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(
      serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`),
      [],
      `serious violations on ${where}`,
    );
  };
  await page.locator('#login').waitFor({ timeout: TIMEOUT });
  await audit('the login form');
  await page.locator('#login-nick').fill('alice');
  await page.locator('#login-submit').click();
  await page.locator('#messages .msg .text', { hasText: 'hello' }).first().waitFor({ timeout: TIMEOUT });
  await audit('the chat view');
  for (const scheme of ['dark', 'light']) {
    await page.emulateMedia({ colorScheme: scheme });
    await audit(`the chat view, ${scheme} theme`);
  }
});
