// What the browser tests stand on: the real chat-server binary on a free port, a
// plain IRC client on a real socket, and headless Chromium driven by Playwright.
//
// The server binary is `target/debug/chat-server` (built by `cargo build --bin
// chat-server`, which scripts/browser-tests.sh does), or $PALAVER_SERVER_BIN.
// Chromium is Debian's (/usr/bin/chromium), or $PALAVER_CHROMIUM. While working on
// the client, PALAVER_WEB_DIR=crates/server/web serves its files from disk
// (--web-dir) instead of those embedded at the last build.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { parse } from '../web/static/irc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
const serverBin = process.env.PALAVER_SERVER_BIN ?? path.join(repoRoot, 'target/debug/chat-server');
/** Where the tests leave their screenshots (copied to docs/ by hand when they change). */
export const screenshotDir = path.join(repoRoot, 'target/browser-screenshots');

/** How long any one awaited event may take before a test fails. */
export const TIMEOUT = 15_000;

/** Resolves when `predicate()` is truthy, polling cheap in-process state. */
async function until(predicate, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A chat-server process with a data directory of its own (so history, accounts
 * and read markers persist across `restart()`).
 */
export class Server {
  static async start(extraArgs = []) {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'palaver-web-'));
    const server = new Server(dataDir, extraArgs);
    await server.#spawn(0);
    return server;
  }

  constructor(dataDir, extraArgs) {
    this.dataDir = dataDir;
    this.extraArgs = extraArgs;
    this.port = 0;
    this.process = null;
    this.output = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  async #spawn(port) {
    const args = ['127.0.0.1', String(port), '--data-dir', path.join(this.dataDir, 'data'),
      '--log-level', 'warn', ...this.extraArgs];
    if (process.env.PALAVER_WEB_DIR) args.push('--web-dir', path.resolve(process.env.PALAVER_WEB_DIR));
    const child = spawn(serverBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    this.output = '';
    child.stdout.on('data', (chunk) => { this.output += chunk; });
    child.stderr.on('data', (chunk) => { this.output += chunk; });
    let exited = false;
    child.on('exit', () => { exited = true; });
    const match = await until(
      () => {
        if (exited) throw new Error(`chat-server exited: ${this.output}`);
        return this.output.match(/listening on 127\.0\.0\.1:(\d+)/);
      },
      'chat-server to listen',
    );
    this.port = Number(match[1]);
  }

  /** Stops the server (SIGTERM, as an operator would) and waits for the exit. */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** Stops the server and starts it again on the same port and data directory. */
  async restart() {
    await this.stop();
    await this.#spawn(this.port);
  }

  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A plain IRC client on a real TCP socket: the "any IRC client" of each test. */
export class IrcClient {
  static async connect(port, nick, caps = ['server-time', 'message-tags', 'echo-message']) {
    const client = new IrcClient(nick);
    await new Promise((resolve, reject) => {
      client.socket = net.connect(port, '127.0.0.1', resolve);
      client.socket.once('error', reject);
    });
    client.socket.setEncoding('utf8');
    client.socket.on('data', (chunk) => client.#receive(chunk));
    if (caps.length > 0) client.send(`CAP REQ :${caps.join(' ')}`);
    client.send(`NICK ${nick}`);
    client.send(`USER ${nick} 0 * :${nick}`);
    if (caps.length > 0) client.send('CAP END');
    await client.expect((m) => m.command === '001', 'the welcome');
    return client;
  }

  constructor(nick) {
    this.nick = nick;
    this.lines = [];
    this.pending = '';
    this.seen = 0;
  }

  #receive(chunk) {
    this.pending += chunk;
    let end;
    while ((end = this.pending.indexOf('\r\n')) !== -1) {
      const line = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const message = parse(line);
      if (message.command === 'PING') this.send(`PONG :${message.params[0] ?? ''}`);
      this.lines.push(message);
    }
  }

  send(line) {
    this.socket.write(`${line}\r\n`);
  }

  /** The next message (after those already expected) that matches. */
  async expect(predicate, what) {
    return until(() => {
      while (this.seen < this.lines.length) {
        const message = this.lines[this.seen++];
        if (predicate(message)) return message;
      }
      return null;
    }, `${this.nick} to receive ${what}`);
  }

  /** Joins `channel` and waits for the end of its NAMES. */
  async join(channel) {
    this.send(`JOIN ${channel}`);
    await this.expect((m) => m.command === '366' && m.params[1] === channel, `the JOIN of ${channel}`);
  }

  /** The next PRIVMSG with this text. */
  async expectPrivmsg(text) {
    return this.expect((m) => m.command === 'PRIVMSG' && m.params.at(-1) === text, `PRIVMSG ${text}`);
  }

  close() {
    this.socket.destroy();
  }
}

/** Debian's Chromium, headless, without any connection outside this machine. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.PALAVER_CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Desktop and phone viewports the tests (and the screenshots) use. */
export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

/**
 * A browser user: a context of its own (its own storage, like another person's
 * browser) with one page, failing the test on any script error or alert.
 */
export class BrowserUser {
  static async open(browser, server, options = DESKTOP) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const user = new BrowserUser(context, page, server);
    page.on('pageerror', (error) => user.errors.push(`page error: ${error.message}`));
    page.on('dialog', async (dialog) => {
      user.errors.push(`dialog: ${dialog.message()}`);
      await dialog.dismiss();
    });
    page.on('console', (message) => {
      // Chromium itself logs a refused WebSocket while the server is down (the
      // reconnect tests stop it on purpose); the page's own errors still count.
      const refused = /WebSocket connection to .* failed/.test(message.text());
      if (message.type() === 'error' && !refused) user.errors.push(`console error: ${message.text()}`);
    });
    await page.goto(server.url);
    return user;
  }

  constructor(context, page, server) {
    this.context = context;
    this.page = page;
    this.server = server;
    this.errors = [];
  }

  /** Fills the login form and waits until the lobby is open and connected. */
  async login({ nick, mode = 'guest', account = nick, password = '' }) {
    const page = this.page;
    await page.locator('#login-mode').selectOption(mode);
    await page.locator('#login-nick').fill(nick);
    if (mode !== 'guest') {
      await page.locator('#login-account').fill(account);
      await page.locator('#login-password').fill(password);
    }
    await page.locator('#login-submit').click();
    await this.waitConnected();
    // Attached, not visible: on a phone the buffer list is a closed drawer.
    await page.locator('[data-buffer="#lobby"]').waitFor({ state: 'attached', timeout: TIMEOUT });
    this.nick = nick;
  }

  async waitConnected() {
    await this.page.locator('#status[data-state="connected"]').waitFor({ timeout: TIMEOUT });
  }

  /** Types a line into the input and presses Enter. */
  async say(text) {
    const input = this.page.locator('#input');
    await input.fill(text);
    await input.press('Enter');
  }

  /** Opens a buffer from the buffer list. */
  async open(buffer) {
    await this.page.locator(`[data-buffer="${buffer}"]`).first().click();
    await this.page.locator(`[data-buffer="${buffer}"][aria-current="page"]`).waitFor({ timeout: TIMEOUT });
  }

  /** The message element showing exactly `text`, once it is there. */
  message(text) {
    return this.page.locator('#messages .msg:not(.system) .text', { hasText: text }).first();
  }

  async expectMessage(text, timeout = TIMEOUT) {
    await this.message(text).waitFor({ timeout });
  }

  async screenshot(name) {
    mkdirSync(screenshotDir, { recursive: true });
    // Transitions finished, so that a drawer is shown where it comes to rest.
    await this.page.screenshot({ path: path.join(screenshotDir, `${name}.png`), animations: 'disabled' });
  }

  async close() {
    await this.context.close();
  }
}
