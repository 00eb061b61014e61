/**
 * Modal dialogs on the native `<dialog>`: showModal() makes the rest of the page inert
 * and traps focus; focus goes to the first field (or the element marked `data-autofocus`),
 * Escape closes, and on close the dialog leaves the DOM and focus returns to what opened it.
 */
import { field, h, replace, uid } from './dom.js';

/**
 * @typedef {{ dialog: HTMLDialogElement, form: HTMLFormElement, error: HTMLElement, close: () => void,
 *   busy: (on: boolean) => void, fail: (message: string, fieldName?: string) => void }} DialogHandle
 */

/**
 * @param {{ title: string, body: (Node | string | null | false)[], actions: HTMLElement[], className?: string,
 *   onSubmit?: (handle: DialogHandle) => void | Promise<void>, onClose?: () => void, describedBy?: string }} options
 * @returns {DialogHandle}
 */
export function openDialog(options) {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uid('dialog-title');
  const error = h('p', { class: 'error', role: 'alert', hidden: true, tabindex: '-1' });
  const form = h('form', { method: 'dialog', novalidate: true }, h('h2', { id: titleId }, options.title), ...options.body, error, h('div', { class: 'actions' }, ...options.actions));
  const dialog = h('dialog', { 'aria-labelledby': titleId, class: options.className ?? null, 'aria-describedby': options.describedBy ?? null }, form);
  /** @type {DialogHandle} */
  const handle = {
    dialog,
    form,
    error,
    close: () => dialog.close(),
    busy(on) {
      for (const el of form.querySelectorAll('button, input, select, textarea')) {
        if (on) el.setAttribute('data-was-disabled', String(/** @type {HTMLButtonElement} */ (el).disabled));
        /** @type {HTMLButtonElement} */ (el).disabled = on ? true : el.getAttribute('data-was-disabled') === 'true';
      }
      form.setAttribute('aria-busy', String(on));
    },
    fail(message, fieldName) {
      replace(error, message);
      error.hidden = false;
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      const culprit = fieldName ? form.querySelector(`[name="${CSS.escape(fieldName)}"]`) : null;
      if (culprit instanceof HTMLElement) {
        culprit.setAttribute('aria-invalid', 'true');
        culprit.focus();
      } else error.focus();
    },
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!options.onSubmit) return dialog.close();
    if (!form.checkValidity()) {
      const invalid = form.querySelector(':invalid');
      handle.fail(invalid instanceof HTMLInputElement ? `${labelOf(invalid)}: ${invalid.validationMessage}` : 'Check the highlighted field.', invalid instanceof HTMLInputElement ? invalid.name : undefined);
      return;
    }
    Promise.resolve(options.onSubmit(handle)).catch((/** @type {Error} */ e) => handle.fail(e.message));
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    options.onClose?.();
    if (opener?.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = form.querySelector('[data-autofocus]') ?? form.querySelector('input:not([readonly]):not([type=hidden]), select, textarea:not([readonly])');
  if (first instanceof HTMLElement) first.focus();
  return handle;
}

/** @param {HTMLElement} control */
function labelOf(control) {
  return control.id ? (document.querySelector(`label[for="${CSS.escape(control.id)}"]`)?.textContent ?? control.getAttribute('name') ?? '') : '';
}

/**
 * @param {string} label
 * @param {{ kind?: 'primary' | 'danger' | 'secondary', type?: 'submit' | 'button', onclick?: (event: MouseEvent) => void, autofocus?: boolean, disabled?: boolean }} [options]
 */
export function button(label, options = {}) {
  return h(
    'button',
    { type: options.type ?? 'button', class: `btn ${options.kind ?? 'secondary'}`, onclick: options.onclick, 'data-autofocus': options.autofocus ?? false, disabled: options.disabled ?? false },
    label,
  );
}

/**
 * Asks for confirmation. With `typed`, the confirm button stays disabled until that exact
 * text is typed. Resolves true when confirmed. Cancel has the focus first (safe default).
 * @param {{ title: string, message: (Node | string)[], confirmLabel: string, danger?: boolean, typed?: string,
 *   action: () => Promise<void> }} options
 * @returns {Promise<boolean>}
 */
export function confirmDialog(options) {
  return new Promise((resolve) => {
    let done = false;
    const confirm = button(options.confirmLabel, { kind: options.danger ? 'danger' : 'primary', type: 'submit', disabled: options.typed !== undefined });
    const cancel = button('Cancel', { onclick: () => handle.close(), autofocus: options.typed === undefined });
    /** @type {Node[]} */
    const body = options.message.map((m) => (typeof m === 'string' ? h('p', {}, m) : m));
    if (options.typed !== undefined) {
      const expected = options.typed;
      const input = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', 'data-autofocus': true, oninput: () => (confirm.disabled = input.value !== expected) });
      body.push(field(`Type ${expected} to confirm`, input));
    }
    const handle = openDialog({
      title: options.title,
      body,
      actions: [cancel, confirm],
      className: options.danger ? 'danger-dialog' : undefined,
      async onSubmit(dialog) {
        dialog.busy(true);
        try {
          await options.action();
          done = true;
          dialog.close();
        } catch (error) {
          dialog.busy(false);
          if (options.typed !== undefined) confirm.disabled = false;
          dialog.fail(/** @type {Error} */ (error).message);
        }
      },
      onClose: () => resolve(done),
    });
  });
}
