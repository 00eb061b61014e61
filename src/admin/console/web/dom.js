/**
 * Building the page without HTML strings: every element is created with `h()` and every
 * piece of text is a text node, so a key name like `<img onerror=…>` is only ever text. The
 * Content-Security-Policy enforces this (Trusted Types with no policy: innerHTML throws).
 * Also: dates and durations as people read them.
 */

/**
 * @typedef {string | number | boolean | null | undefined | ((event: any) => void)} PropValue
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/** Properties set on the element itself rather than as attributes. */
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'indeterminate', 'readOnly', 'required']);

/**
 * `h('button', { class: 'danger', onclick: revoke, 'aria-label': 'Revoke ci-bot' }, 'Revoke')`.
 * `on*` props become listeners; true/false attributes are present/absent; null is skipped.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, PropValue>} [props]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) /** @type {any} */ (el)[name] = value;
    else el.setAttribute(name === 'className' ? 'class' : name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} parent
 * @param {(Child | Child[])[]} children
 */
export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(typeof child === 'number' ? String(child) : child);
  }
}

/**
 * Replaces everything inside `parent`.
 * @param {Element} parent
 * @param {...(Child | Child[])} children
 */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

let counter = 0;
/** A document-unique id for label/aria wiring. @param {string} prefix */
export const uid = (prefix) => `${prefix}-${++counter}`;

/**
 * A labelled form control: `<div class="field"><label for>…</label>control<p hint></div>`.
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** @type {[Intl.RelativeTimeFormatUnit, number, number][]} unit, its length and where the next one takes over, in seconds */
const STEPS = [
  ['second', 1, 60],
  ['minute', 60, 3600],
  ['hour', 3600, 86_400],
  ['day', 86_400, 86_400 * 30],
  ['month', 86_400 * 30, 86_400 * 365],
  ['year', 86_400 * 365, Infinity],
];

/** "in 3 days", "5 minutes ago". @param {number} ms @param {number} [now] */
export function fromNow(ms, now = Date.now()) {
  const seconds = Math.round((ms - now) / 1000);
  const step = STEPS.find(([, , limit]) => Math.abs(seconds) < limit) ?? STEPS[STEPS.length - 1];
  const [unit, size] = /** @type {[Intl.RelativeTimeFormatUnit, number, number]} */ (step);
  return relative.format(Math.round(seconds / size), unit);
}

/**
 * A `<time>` showing the local date and time, with the relative form and ISO in its title.
 * @param {string | null} iso
 * @param {string} [empty] what to show for null
 */
export function time(iso, empty = '—') {
  if (iso === null) return h('span', { class: 'muted' }, empty);
  const ms = Date.parse(iso);
  return h('time', { datetime: iso, title: `${fromNow(ms)} (${iso})` }, dateTime.format(ms));
}

/** "15 minutes", "8 hours". @param {number} ms */
export function duration(ms) {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} minute${minutes === 1 ? '' : 's'}`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} hours`;
  return `${Math.round(hours / 24)} days`;
}

/** @param {string} iso */
export const localDateTime = (iso) => dateTime.format(Date.parse(iso));
