// Rules the browser client's source keeps, checked on the files themselves:
// network text reaches the page only as text, and nothing needs the CSP loosened.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../web');
const scripts = readdirSync(path.join(web, 'static'))
  .filter((name) => name.endsWith('.js'))
  .map((name) => ({ name, text: readFileSync(path.join(web, 'static', name), 'utf8') }));

test('no script writes markup: text goes in as text nodes', () => {
  assert.ok(scripts.length > 0);
  const sinks = /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|createContextualFragment|\beval\s*\(|new Function\s*\(/;
  for (const { name, text } of scripts) {
    const line = text.split('\n').findIndex((l) => sinks.test(l));
    assert.equal(line, -1, `${name}:${line + 1} writes markup or evaluates code`);
  }
});

test('the page has no inline script, style or event handler (the CSP forbids them)', () => {
  const page = readFileSync(path.join(web, 'index.html'), 'utf8');
  assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)[^>]*>/i, 'inline <script>');
  assert.doesNotMatch(page, /<style/i, 'inline <style>');
  assert.doesNotMatch(page, /\sstyle=/i, 'style attribute');
  assert.doesNotMatch(page, /\son[a-z]+=/i, 'event handler attribute');
  assert.doesNotMatch(page, /(src|href)="(https?:)?\/\//i, 'a request to another site');
});

test('no request leaves the server: no absolute URL is fetched or loaded', () => {
  for (const { name, text } of scripts) {
    assert.doesNotMatch(text, /(fetch|import)\s*\(\s*['"`]https?:/, `${name} loads from another site`);
    assert.doesNotMatch(text, /^import .* from ['"]https?:/m, `${name} imports from another site`);
  }
});
