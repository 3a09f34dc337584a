// Times the browser client from navigation to "history shown", for
// docs/PERFORMANCE.md (a measurement, not a test: nothing here asserts a time).
//
//   PALAVER_SERVER_BIN=target/release/chat-server node crates/server/web-tests/measure.mjs [runs]
//
// A channel gets 100 messages of history from a plain IRC client; then, per run:
// - first visit: a new browser profile (empty cache) opens the page: time until the
//   page is ready (DOMContentLoaded, the modules run), and the bytes it fetched;
// - login: a guest nick submitted until the newest history message is on screen
//   (connect, register, join, CHATHISTORY, render);
// - reload: the same page reloads (cached assets, saved session, automatic
//   reconnect) until that message is on screen again.
// Prints one JSON line with the times in milliseconds.

import { DESKTOP, IrcClient, Server, launchBrowser } from './harness.mjs';

const runs = Number(process.argv[2] ?? 10);
const server = await Server.start(['--no-flood-limit']);
const browser = await launchBrowser();
const writer = await IrcClient.connect(server.port, 'writer');
await writer.join('#lobby');
for (let i = 1; i <= 100; i++) writer.send(`PRIVMSG #lobby :history line ${i} ${'x'.repeat(40)}`);
await writer.expectPrivmsg(`history line 100 ${'x'.repeat(40)}`);

// Times are taken inside the page (performance.now(), whose origin is the start
// of the navigation), checked on every animation frame, so neither Playwright's
// own latency nor its polling interval counts.
const shown = (page) => page.waitForFunction(
  () => [...document.querySelectorAll('#messages .msg .text')]
    .some((node) => node.textContent.startsWith('history line 100 ')) && performance.now(),
  null,
  { polling: 'raf' },
).then((handle) => handle.jsonValue());

const formReady = [];
const loginToHistory = [];
const reload = [];
let transferred = 0;
for (let run = 0; run < runs; run++) {
  const context = await browser.newContext(DESKTOP);
  const page = await context.newPage();
  await page.goto(server.url);
  await page.locator('#login-nick').waitFor();
  formReady.push(await page.evaluate(() => {
    const entry = performance.getEntriesByType('navigation')[0];
    return entry.domContentLoadedEventEnd;
  }));
  transferred = await page.evaluate(() =>
    performance.getEntriesByType('resource')
      .concat(performance.getEntriesByType('navigation'))
      .reduce((sum, entry) => sum + (entry.transferSize ?? 0), 0));
  await page.locator('#login-nick').fill(`reader${run}`);
  await page.evaluate(() => {
    document.getElementById('login').addEventListener('submit', () => {
      globalThis.submittedAt = performance.now();
    }, { capture: true });
  });
  await page.locator('#login-submit').click();
  const at = await shown(page);
  loginToHistory.push(at - await page.evaluate(() => globalThis.submittedAt));
  await page.reload();
  reload.push(await shown(page));
  await context.close();
}

const summary = (times) => {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return { median_ms: at(0.5), min_ms: Math.round(sorted[0]), max_ms: Math.round(sorted.at(-1)) };
};
console.log(JSON.stringify({
  runs,
  first_visit_page_ready: summary(formReady),
  login_to_history_shown: summary(loginToHistory),
  reload_to_history_shown: summary(reload),
  first_visit_bytes_transferred: transferred,
}));
writer.close();
await browser.close();
await server.close();
