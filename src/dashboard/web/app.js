// The dashboard's shell: sign-in, the router (#/pool, #/queue, #/accounts, #/jobs, #/jobs/ID,
// #/sim), and live redraws. A view is drawn again on every change the server reports (the change
// feed) and every 15 seconds besides, so a page is never stale for long even where the feed
// cannot get through; a redraw asked for while one is running is folded into one more.

import { ApiError, api, followChanges, setToken, token } from './api.js';
import { h, stopFollowers, views } from './views.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const whoLabel = document.getElementById('who');
const signOut = document.getElementById('sign-out');
const statusLine = document.getElementById('status');

let who = null;
let session = 0;  // a new one at every sign-in and sign-out: a draw of an older one is dropped
let feed = null;
let drawing = false;
let drawAgain = false;
let lastRoute = '';

function route() {
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const params = new URLSearchParams(query);
  let name = parts[0] || 'queue';
  if (name === 'jobs' && parts[1]) {
    name = 'job';
    let id = parts[1];
    try { id = decodeURIComponent(id); } catch { /* shown as given: the server says there is no such job */ }
    params.set('id', id);
  }
  return { name: views[name] ? name : 'queue', params, key: location.hash };
}

function navigate(hash) {
  if (location.hash === hash) draw(true); else location.hash = hash;
}

// A redraw the user did not ask for (a change, the timer) waits while the user is typing in the
// view, and never redraws a view that does not change with the pool (a report).
function liveDraw() {
  const active = document.activeElement;
  if (main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
    if (!active.dataset.redrawOnBlur) {
      active.dataset.redrawOnBlur = 'yes';
      active.addEventListener('blur', () => liveDraw(), { once: true });
    }
    return;
  }
  if (views[route().name].live === false && route().key === lastRoute) return;
  draw();
}

async function draw() {
  if (!who) return;
  if (drawing) { drawAgain = true; return; }
  drawing = true;
  const mine = session;
  try {
    do {
      drawAgain = false;
      const { name, params, key } = route();
      if (key !== lastRoute) stopFollowers();
      for (const link of nav.querySelectorAll('a')) {
        const current = link.getAttribute('href') === `#/${name === 'job' ? 'jobs' : name}`;
        if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
      }
      try {
        const view = await views[name](params, who, navigate, draw);
        if (mine !== session) return;  // signed out (or in again) meanwhile
        // Keep the reader's place: focus and scroll survive a redraw of the same view.
        const scroll = window.scrollY;
        const focused = document.activeElement?.name;
        main.replaceChildren(view);
        main.dataset.drawn = key || '#/';  // which route the view shows (tests wait for it)
        // For bench/dashboard_first_paint.sh: when the first view was drawn with its data.
        if (!performance.getEntriesByName('allot:view-drawn').length) performance.mark('allot:view-drawn');
        if (key === lastRoute) {
          window.scrollTo(0, scroll);
          if (focused) main.querySelector(`[name="${CSS.escape(focused)}"]`)?.focus();
        } else {
          main.focus({ preventScroll: true });
        }
        statusLine.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        if (mine !== session) return;
        if (error instanceof ApiError && error.status === 401) { leave('Your token is no longer valid: sign in again.'); return; }
        main.replaceChildren(h('section', {}, h('h1', {}, 'Could not load this view'), h('p', { class: 'error' }, error.message)));
        main.dataset.drawn = key || '#/';
        statusLine.textContent = `Error: ${error.message}`;
      }
      lastRoute = key;
    } while (drawAgain);
  } finally {
    drawing = false;
  }
}

function showSignIn(message = '') {
  nav.hidden = true;
  signOut.hidden = true;
  whoLabel.textContent = '';
  const error = h('p', { class: 'error', role: 'alert' }, message);
  const form = h('form', { class: 'sign-in', onsubmit: async (event) => {
    event.preventDefault();
    const value = new FormData(event.target).get('token').trim();
    setToken(value);
    try {
      await enter();
    } catch (failure) {
      setToken('');
      error.textContent = failure instanceof ApiError && failure.status === 401
        ? 'That token is not valid: check it and try again.' : failure.message;
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste an API token: an operator token (DATA/operator.token) sees the whole pool, a tenant token its own accounts.'),
  h('label', { for: 'token' }, 'Token'),
  h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true }),
  h('button', { type: 'submit' }, 'Sign in'),
  error);
  main.replaceChildren(form);
  form.querySelector('input').focus();
}

async function enter() {
  const me = await api('/v1/whoami');
  if (me.role !== 'operator' && me.role !== 'tenant') {
    throw new Error(`an ${me.role} token cannot sign in here: use an operator or tenant token`);
  }
  who = me;
  session += 1;
  nav.hidden = false;
  signOut.hidden = false;
  whoLabel.textContent = `${who.user} · ${who.role}${who.account ? ` · ${who.account}` : ''}`;
  feed?.abort();
  feed = new AbortController();
  followChanges(liveDraw, feed.signal);
  await draw();
}

function leave(message) {
  who = null;
  session += 1;
  feed?.abort();
  stopFollowers();
  setToken('');
  lastRoute = '';
  showSignIn(message);
}

signOut.addEventListener('click', () => leave('Signed out.'));
window.addEventListener('hashchange', () => draw());
setInterval(liveDraw, 15000);
// The skip link moves focus to the view; as a plain #main link it would change the route.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

if (token()) {
  enter().catch(() => leave('Sign in again.'));
} else {
  showSignIn();
}
