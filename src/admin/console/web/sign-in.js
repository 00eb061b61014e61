/**
 * The sign-in screen: an admin key is typed (or pasted) once and exchanged for a session.
 * The field is emptied before the request leaves, and the key is kept in no variable,
 * storage or cookie: only the HttpOnly session cookie the server sets remains.
 */
import { ApiError, signIn } from './api.js';
import { field, h, replace } from './dom.js';

/** @type {Record<string, string>} */
const MESSAGES = {
  invalid_key: 'That key is not valid. Check that you copied all of it.',
  key_revoked: 'That key has been revoked.',
  key_expired: 'That key has expired.',
  forbidden: 'That key cannot manage keys. Sign in with a platform admin key (role admin on the system tenant) or a key with the keys:manage permission.',
  missing_credentials: 'Enter an admin key.',
  auth_unavailable: 'keygate cannot reach its key store right now. Try again in a moment.',
};

/**
 * @param {HTMLElement} main
 * @param {{ notice?: string, onSignedIn: (session: import('./api.js').SessionInfo) => void }} options
 */
export function renderSignIn(main, options) {
  const input = h('input', {
    type: 'password',
    name: 'key',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    'aria-required': 'true',
  });
  const error = h('p', { class: 'error', role: 'alert', hidden: true, tabindex: '-1' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card sign-in', 'aria-labelledby': 'sign-in-title', novalidate: true },
    h('h1', { id: 'sign-in-title', tabindex: '-1' }, 'Sign in to keygate'),
    options.notice ? h('p', { class: 'notice', role: 'status' }, options.notice) : null,
    field('Admin key', input, 'A platform admin key (role admin on the system tenant) or a key with the keys:manage permission. It is sent once to start a session and is not stored in this browser.'),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    input.value = '';
    if (key === '') {
      show(MESSAGES.missing_credentials ?? '');
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      options.onSignedIn(await signIn(key));
    } catch (e) {
      const failure = e instanceof ApiError ? e : new ApiError(0, 'error', String(e));
      show(MESSAGES[failure.code] ?? failure.detail);
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
  /** @param {string} message */
  function show(message) {
    replace(error, message);
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
  replace(main, form);
  input.focus();
}
