/**
 * The one time a new key is shown: in a dialog with a copy button and the warning that it
 * cannot be shown again. When the dialog closes the key is removed from the DOM (the field
 * is emptied and the dialog discarded) and no reference to it is kept.
 */
import { button, openDialog } from './dialogs.js';
import { h, replace, uid } from './dom.js';

/**
 * @param {{ key: string, title: string, intro: string, onClose?: () => void }} options
 */
export function oneTimeKeyDialog(options) {
  const keyField = h('textarea', { readOnly: true, rows: '2', class: 'key-value', 'aria-label': 'The new API key', spellcheck: 'false', autocomplete: 'off', name: 'new-key' });
  keyField.value = options.key;
  const copied = h('p', { class: 'copied', role: 'status' });
  const warningId = uid('warning');
  const copy = button('Copy', {
    kind: 'primary',
    autofocus: true,
    async onclick() {
      try {
        await navigator.clipboard.writeText(keyField.value);
        replace(copied, 'Copied to the clipboard.');
      } catch {
        // Without the Clipboard API (a page not served over https or localhost): select it.
        keyField.focus();
        keyField.select();
        replace(copied, document.execCommand('copy') ? 'Copied to the clipboard.' : 'Copying failed: the key is selected, press Ctrl+C (⌘C) to copy it.');
      }
    },
  });
  const handle = openDialog({
    title: options.title,
    className: 'one-time',
    describedBy: warningId,
    body: [
      h('p', {}, options.intro),
      h('div', { class: 'key-box' }, keyField, copy),
      copied,
      h('p', { class: 'warning', id: warningId }, h('strong', {}, 'This is the only time this key is shown. '), 'keygate keeps only a hash of it and cannot show it again. If you lose it, rotate the key or create a new one.'),
    ],
    actions: [button('Done', { onclick: () => handle.close() })],
    onClose() {
      keyField.value = '';
      keyField.remove();
      options.onClose?.();
    },
  });
  return handle;
}
