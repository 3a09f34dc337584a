// What survives a reload: nick, account and open channels in localStorage; the
// password only in sessionStorage (this tab), so closing the tab forgets it.

const LOCAL_KEY = 'palaver.session';
const PASSWORD_KEY = 'palaver.password';

function read(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

function write(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled (private mode): the session just is not remembered.
  }
}

/** { nick, mode, account, channels, password } or null when nothing usable is saved. */
export function loadSession() {
  const saved = read(localStorage, LOCAL_KEY);
  if (!saved?.nick) return null;
  const password = read(sessionStorage, PASSWORD_KEY);
  const needsPassword = saved.mode !== 'guest';
  return { ...saved, password, resumable: !needsPassword || Boolean(password) };
}

export function saveSession({ nick, mode, account, password, channels = [] }) {
  write(localStorage, LOCAL_KEY, { nick, mode, account: account || '', channels });
  if (password) write(sessionStorage, PASSWORD_KEY, password);
}

export function updateSession(changes) {
  const saved = read(localStorage, LOCAL_KEY);
  if (saved) write(localStorage, LOCAL_KEY, { ...saved, ...changes });
}

/** Log out: forget everything, password included. */
export function clearSession() {
  localStorage.removeItem(LOCAL_KEY);
  sessionStorage.removeItem(PASSWORD_KEY);
}
