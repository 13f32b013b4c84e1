// The API as the dashboard calls it: every request carries the token given at sign-in (kept for
// this browser tab only), and a failed one throws an ApiError with the server's own message.

const kTokenKey = 'allot.token';

export function token() { return sessionStorage.getItem(kTokenKey) || ''; }
export function setToken(value) {
  if (value) sessionStorage.setItem(kTokenKey, value); else sessionStorage.removeItem(kTokenKey);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!response.ok) {
    throw new ApiError(response.status, doc?.code || 'error', doc?.message || text || response.statusText);
  }
  return doc;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Follows the server's change feed (GET /v1/events, Server-Sent Events framing) and calls
// onChange after each change. EventSource cannot send the Authorization header, so the feed is
// read with fetch: each reply is one event and the next request names the id it has, which the
// server holds until the next change. Bursts are coalesced: at most four calls a second. When
// the feed fails (a restart, a network error) it tries again every two seconds; the views also
// refresh on a timer, so a page never stays stale for long without it. A hidden tab lets go of
// the feed (a browser keeps six connections to a server, and each waiting request holds one)
// and catches up when it is shown again.
export function followChanges(onChange, signal) {
  let after = '';
  const shown = () => new Promise((resolve) => {
    if (!document.hidden) { resolve(); return; }
    document.addEventListener('visibilitychange', function wait() {
      if (document.hidden) return;
      document.removeEventListener('visibilitychange', wait);
      resolve();
    });
  });
  (async () => {
    while (!signal.aborted) {
      if (document.hidden) {
        await shown();
        if (signal.aborted) return;
        onChange();
      }
      try {
        const query = after ? `?timeout=25&after=${after}` : '?timeout=0';
        const response = await fetch(`/v1/events${query}`, {
          headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store', signal,
        });
        if (!response.ok) { await sleep(2000); continue; }
        const id = /^id: *(\d+)$/m.exec(await response.text())?.[1];
        if (id && after && id !== after) onChange();
        if (id) after = id;
        await sleep(250);
      } catch {
        if (signal.aborted) return;
        await sleep(2000);
      }
    }
  })();
}
