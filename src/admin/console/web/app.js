/**
 * The console's entry point: finds out whether a session exists, shows sign-in or the
 * signed-in shell (navigation, who is signed in, sign-out), and routes `#/keys`, `#/users`,
 * `#/groups`, `#/secrets` and `#/audit` (with their filters in the hash, so a reload keeps them).
 * When the session ends — sign-out, idle timeout, a revoked key — everything the page
 * showed is removed before the sign-in screen comes back.
 */
import { configure, currentSession, forgetSession, signOut } from './api.js';
import { renderAudit } from './audit-page.js';
import { duration, h, localDateTime, replace } from './dom.js';
import { renderGroups } from './groups-page.js';
import { renderKeys } from './keys-page.js';
import { renderSecrets } from './secrets-page.js';
import { renderSignIn } from './sign-in.js';
import { renderUsers } from './users-page.js';
import { renderKeyDetail, renderTenant } from './usage-page.js';

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const bar = /** @type {HTMLElement} */ (document.getElementById('bar'));
const toastRegion = /** @type {HTMLElement} */ (document.getElementById('toast'));

/** @type {import('./api.js').SessionInfo | null} */
let session = null;
/** @type {number | undefined} */
let idleTimer;
/** @type {number | undefined} */
let toastTimer;
/** Local view of the idle deadline: every successful request slides it on the server too. */
let deadline = 0;

/** Short messages for screen readers and eyes ("Key revoked"). @param {string} message */
function toast(message) {
  // The region stays in the page (an announcement needs a live region that already exists); it is invisible when empty.
  replace(toastRegion, message);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => replace(toastRegion), 6000);
}

/**
 * What every page gets: where to render, its filters from the hash (and a way to update
 * them without a re-render), the session, and the status-message region.
 * @typedef {{ main: HTMLElement, params: URLSearchParams, setParams: (params: Record<string, string | undefined>) => void,
 *   info: import('./api.js').SessionInfo, toast: (message: string) => void }} PageContext
 */

/** @returns {import('./api.js').SessionInfo} */
function currentInfo() {
  if (session === null) throw new Error('not signed in');
  return session;
}

/** @typedef {{ page: string, params: URLSearchParams }} Route */

/** @returns {Route} */
function route() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : 'keys';
  const [page = 'keys', search = ''] = hash.split('?');
  return { page, params: new URLSearchParams(search) };
}

/**
 * Updates the hash without a re-render (filters typed on the page).
 * @param {string} page
 * @param {Record<string, string | undefined>} params
 */
function setRoute(page, params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  history.replaceState(null, '', `#/${page}${text ? `?${text}` : ''}`);
}

function slide() {
  if (session === null) return;
  deadline = Math.min(Date.now() + session.session.idleMs, Date.parse(session.session.endsAt));
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => endSession(`Your session ended after ${duration(session?.session.idleMs ?? 0)} without activity.`), Math.max(0, deadline - Date.now()) + 500);
  const until = document.getElementById('session-until');
  if (until) replace(until, `Session until ${localDateTime(new Date(deadline).toISOString())}`);
}

/** Drops everything shown and returns to sign-in. @param {string} notice */
function endSession(notice) {
  if (session === null) return;
  session = null;
  clearTimeout(idleTimer);
  forgetSession();
  for (const dialog of document.querySelectorAll('dialog')) dialog.remove();
  bar.hidden = true;
  replace(bar);
  showSignIn(notice);
}

/** @param {string} [notice] */
function showSignIn(notice) {
  document.title = 'Sign in · keygate console';
  renderSignIn(main, { notice, onSignedIn: start });
}

const PAGES = [
  { page: 'keys', label: 'API keys', platformOnly: false },
  { page: 'users', label: 'Users', platformOnly: false },
  { page: 'groups', label: 'Permission groups', platformOnly: false },
  { page: 'secrets', label: 'Upstream secrets', platformOnly: true },
  { page: 'audit', label: 'Audit log', platformOnly: false },
];

function renderBar() {
  const info = currentInfo();
  const nav = h(
    'nav',
    { 'aria-label': 'Console' },
    h(
      'ul',
      {},
      PAGES.filter((p) => !p.platformOnly || info.secrets.manage).map((p) => h('li', {}, h('a', { href: `#/${p.page}`, 'data-page': p.page }, p.label))),
    ),
  );
  const scope = info.scope.platform ? 'platform admin' : `tenant ${info.scope.tenant}`;
  const signOutButton = h('button', { type: 'button', class: 'btn secondary', onclick: () => void doSignOut() }, 'Sign out');
  replace(
    bar,
    h('a', { class: 'brand', href: '#/keys' }, 'keygate'),
    nav,
    h(
      'div',
      { class: 'who' },
      h('span', { class: 'who-name' }, info.key.name, ' ', h('span', { class: 'badge' }, scope)),
      h('span', { class: 'muted', id: 'session-until' }),
      signOutButton,
    ),
  );
  bar.hidden = false;
}

async function doSignOut() {
  try {
    await signOut();
  } finally {
    endSession('You are signed out.');
  }
}

/** @param {import('./api.js').SessionInfo} info */
function start(info) {
  session = info;
  configure({ csrfToken: info.csrfToken, onSessionEnd: (reason) => endSession(`Your session has ended: ${reason}`), onActivity: slide });
  renderBar();
  slide();
  render();
}

function render() {
  if (session === null) return;
  const { page, params } = route();
  for (const link of bar.querySelectorAll('nav a')) {
    if (link.getAttribute('data-page') === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  /** @type {PageContext} */
  const context = { main, params, setParams: (next) => setRoute(page, next), info: session, toast };
  switch (page) {
    case 'users':
      document.title = 'Users · keygate console';
      renderUsers(context);
      break;
    case 'groups':
      document.title = 'Permission groups · keygate console';
      renderGroups(context);
      break;
    case 'secrets':
      document.title = 'Upstream secrets · keygate console';
      renderSecrets(context);
      break;
    case 'audit':
      document.title = 'Audit log · keygate console';
      renderAudit(context);
      break;
    // A key's and a tenant's detail views, with their usage charts (usage-page.js).
    case 'key':
      document.title = 'API key · keygate console';
      renderKeyDetail(context);
      break;
    case 'tenant':
      document.title = 'Tenant · keygate console';
      renderTenant(context);
      break;
    default:
      document.title = 'API keys · keygate console';
      renderKeys(context);
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#/')) render();
});

document.querySelector('.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  (main.querySelector('h1') ?? main).focus();
});

try {
  const existing = await currentSession();
  if (existing) start(existing);
  else showSignIn();
} catch (error) {
  showSignIn(/** @type {Error} */ (error).message);
}
