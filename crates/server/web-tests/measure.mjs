// Times the browser client from navigation to "history shown", for
// docs/PERFORMANCE.md (a measurement, not a test: nothing here asserts a time).
//
//   PALAVER_SERVER_BIN=target/release/chat-server node crates/server/web-tests/measure.mjs [runs]
//
// A channel gets 100 messages of history from a plain IRC client; then, per run:
// - first visit: a new browser profile (empty cache) opens the page, logs in as a
//   guest, and waits for the newest history message;
// - reload: the same page reloads (cached assets, saved session, automatic
//   reconnect) and waits for the same message.
// Prints one JSON line with the times in milliseconds and the bytes transferred.

import { BrowserUser, DESKTOP, IrcClient, Server, launchBrowser } from './harness.mjs';

const runs = Number(process.argv[2] ?? 10);
const server = await Server.start(['--no-flood-limit']);
const browser = await launchBrowser();
const writer = await IrcClient.connect(server.port, 'writer');
await writer.join('#lobby');
for (let i = 1; i <= 100; i++) writer.send(`PRIVMSG #lobby :history line ${i} ${'x'.repeat(40)}`);
await writer.expectPrivmsg(`history line 100 ${'x'.repeat(40)}`);

const firstVisit = [];
const reload = [];
let transferred = 0;
for (let run = 0; run < runs; run++) {
  const context = await browser.newContext(DESKTOP);
  const user = new BrowserUser(context, await context.newPage(), server);
  const started = performance.now();
  await user.page.goto(server.url);
  await user.page.locator('#login-nick').fill(`reader${run}`);
  await user.page.locator('#login-submit').click();
  await user.message('history line 100').waitFor();
  firstVisit.push(performance.now() - started);
  if (run === 0) {
    transferred = await user.page.evaluate(() =>
      performance.getEntriesByType('resource')
        .concat(performance.getEntriesByType('navigation'))
        .reduce((sum, entry) => sum + (entry.transferSize ?? 0), 0));
  }
  const again = performance.now();
  await user.page.reload();
  await user.message('history line 100').waitFor();
  reload.push(performance.now() - again);
  await user.close();
}

const summary = (times) => {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return { median_ms: at(0.5), min_ms: Math.round(sorted[0]), max_ms: Math.round(sorted.at(-1)) };
};
console.log(JSON.stringify({
  runs,
  first_visit_to_history: summary(firstVisit),
  reload_to_history: summary(reload),
  first_visit_bytes_transferred: transferred,
}));
writer.close();
await browser.close();
await server.close();
