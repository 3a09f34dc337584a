// SASL SCRAM-SHA-256 client (RFC 5802 / RFC 7677) on WebCrypto, without channel binding.
// crypto.subtle exists only in secure contexts (https, localhost); callers check
// scramAvailable() and fall back to PLAIN otherwise.

const encoder = new TextEncoder();
const MAX_ITERATIONS = 1_000_000; // the server uses 4096 (RFC 7677's minimum)

export function scramAvailable() {
  return Boolean(globalThis.crypto?.subtle);
}

export function bytesToBase64(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function base64ToBytes(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export const utf8ToBase64 = (text) => bytesToBase64(encoder.encode(text));
export const base64ToUtf8 = (text) => new TextDecoder().decode(base64ToBytes(text));

export function randomNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return bytesToBase64(bytes);
}

// saslname escaping: ',' and '=' are the attribute separators.
const saslName = (name) => name.replace(/=/g, '=3D').replace(/,/g, '=2C');

function parseAttributes(message) {
  const attrs = {};
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) attrs[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return attrs;
}

async function hmac(keyBytes, text) {
  const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(text)));
}

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));

async function pbkdf2(password, salt, iterations) {
  const key = await crypto.subtle.importKey('raw', encoder.encode(password), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

/** One login exchange. Each step returns the next client message (a string). */
export class ScramClient {
  constructor(username, password, nonce = randomNonce()) {
    this.password = password;
    this.nonce = nonce;
    this.clientFirstBare = `n=${saslName(username)},r=${nonce}`;
    this.serverSignature = null;
  }

  clientFirst() {
    return `n,,${this.clientFirstBare}`;
  }

  async clientFinal(serverFirst) {
    const attrs = parseAttributes(serverFirst);
    const iterations = Number(attrs.i);
    // An upper bound too: a hostile server could otherwise make PBKDF2 run for minutes.
    if (!attrs.r?.startsWith(this.nonce) || !attrs.s || !(iterations > 0 && iterations <= MAX_ITERATIONS)) {
      throw new Error('Invalid SCRAM server challenge');
    }
    const salted = await pbkdf2(this.password, base64ToBytes(attrs.s), iterations);
    const clientKey = await hmac(salted, 'Client Key');
    const storedKey = await sha256(clientKey);
    const withoutProof = `c=biws,r=${attrs.r}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = await hmac(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ clientSignature[i]);
    this.serverSignature = bytesToBase64(await hmac(await hmac(salted, 'Server Key'), authMessage));
    return `${withoutProof},p=${bytesToBase64(proof)}`;
  }

  /** True when the server's final message proves it knows the password too. */
  verifyServerFinal(serverFinal) {
    return parseAttributes(serverFinal).v === this.serverSignature;
  }
}
