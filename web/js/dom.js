// Small DOM helpers. Content is always set as text or built as elements, never parsed from HTML, so
// prompts and names from the API cannot inject markup. No inline styles anywhere (the CSP forbids them):
// looks come from classes in styles.css.

let uid = 0;
export const nextId = (prefix = 'f') => `${prefix}-${++uid}`;

function build(el, attrs, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'selected') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);
}

/** A labelled control with its hint and its error line (filled by showFieldError). */
export function field({ label, name, type = 'text', hint, control, options, wide, ...attrs }) {
  const id = attrs.id || nextId(name);
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const described = [hintId, errorId].filter(Boolean).join(' ');
  let input;
  if (control === 'textarea') {
    input = h('textarea', { id, name, 'aria-describedby': described, ...attrs });
  } else if (control === 'select') {
    input = h('select', { id, name, 'aria-describedby': described, ...attrs },
      options.map(([value, text]) => h('option', { value }, text)));
    if (attrs.value !== undefined) input.value = attrs.value;
  } else {
    input = h('input', { id, name, type, 'aria-describedby': described, ...attrs });
  }
  return h('div', { class: ['field', wide && 'wide'] },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
}

/** A group of radio buttons shown as segmented choices. */
export function choices({ legend, name, options, value, hint, className = '' }) {
  const id = nextId(name);
  return h('fieldset', { class: ['choices', className], 'aria-describedby': `${id}-error` },
    h('legend', null, legend),
    h('div', { class: 'choice-row' },
      options.map(([optionValue, text, extra]) => {
        const inputId = nextId(`${name}-opt`);
        return h('span', { class: 'choice' },
          h('input', { type: 'radio', id: inputId, name, value: optionValue, checked: optionValue === value }),
          h('label', { for: inputId }, extra || null, h('span', null, text)));
      })),
    hint ? h('p', { class: 'hint' }, hint) : null,
    h('p', { class: 'field-error', id: `${id}-error`, hidden: true, 'data-for': name }));
}

/** The error line next to a form's buttons. */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

export function clearErrors(root) {
  root.querySelectorAll('.field-error, .form-error').forEach((el) => { el.hidden = true; el.textContent = ''; });
  root.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
}

/** Shows `message` under the control named `name` in `root`; false when there is no such control. */
export function showFieldError(root, name, message) {
  const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!control) return false;
  const holder = control.closest('.field, .choices, .field-host');
  const line = holder && (holder.querySelector(`.field-error[data-for="${CSS.escape(name)}"]`) || holder.querySelector('.field-error'));
  if (!line) return false;
  line.textContent = message;
  line.hidden = false;
  line.setAttribute('role', 'alert');
  control.setAttribute('aria-invalid', 'true');
  return true;
}

/**
 * Shows an API error next to the control that caused it: `fields` maps error codes to control names;
 * a message naming a field ('prompt') finds it too; anything else goes to the form's error line.
 */
export function showError(root, error, fields = {}) {
  const message = error.message || String(error);
  let name = fields[error.code];
  if (!name) {
    const named = /'([a-z_]+)'/.exec(message);
    if (named && root.querySelector(`[name="${named[1]}"]`)) name = named[1];
  }
  if (name && showFieldError(root, name, message)) {
    const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
    if (control && control.type !== 'radio' && typeof control.focus === 'function') control.focus();
    return;
  }
  const line = root.querySelector('.form-error');
  if (line) {
    line.textContent = message;
    line.hidden = false;
  } else {
    toast(message, 'error');
  }
}

/** Runs `work` with the button disabled and marked busy, whatever happens. */
export async function busy(button, work, label) {
  const before = [...button.childNodes];
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (label) button.replaceChildren(...before);
  }
}

export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

export function toast(text, kind = 'info') {
  const holder = document.getElementById('toasts');
  if (!holder) return;
  const item = h('div', { class: ['toast', `toast-${kind}`], role: kind === 'error' ? 'alert' : 'status' }, text);
  holder.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** A modal dialog (native <dialog>: focus is trapped and Escape closes it). Resolves when it closes. */
export function openDialog({ title, body, actions = [], className = '', labelledBy }) {
  const titleId = nextId('dialog-title');
  const dialog = h('dialog', { class: ['dialog', className], 'aria-labelledby': labelledBy || titleId });
  const close = h('button', { type: 'button', class: 'icon-button dialog-close', 'aria-label': 'Close' }, '×');
  // (Element.append would write a null as the text "null": dialogs without actions append nothing.)
  dialog.append(
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title), close),
    h('div', { class: 'dialog-body' }, body),
    ...(actions.length ? [h('div', { class: 'dialog-actions' }, actions)] : []),
  );
  document.body.append(dialog);
  const closed = new Promise((resolve) => {
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue); });
  });
  close.addEventListener('click', () => dialog.close('cancel'));
  dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close('cancel'); });
  dialog.showModal();
  return { dialog, closed, close: (value) => dialog.close(value) };
}

/** Asks to confirm something; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  const cancel = h('button', { type: 'button', class: 'button secondary' }, 'Cancel');
  const ok = h('button', { type: 'button', class: ['button', danger ? 'danger' : 'primary'] }, confirmLabel);
  const { dialog, closed } = openDialog({ title, body: h('p', null, message), actions: [cancel, ok], className: 'small' });
  cancel.addEventListener('click', () => dialog.close('cancel'));
  ok.addEventListener('click', () => dialog.close('ok'));
  cancel.focus();
  return closed.then((value) => value === 'ok');
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

export function formatDate(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : dateFormat.format(date);
}
export function formatDateTime(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : dateTimeFormat.format(date);
}
/** "at 14:00" today, or the date and time otherwise. */
export function formatWhen(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  const now = new Date();
  return date.toDateString() === now.toDateString() ? `at ${timeFormat.format(date)}` : `on ${dateTimeFormat.format(date)}`;
}

export function timeElement(value, text) {
  return h('time', { datetime: value }, text ?? formatDateTime(value));
}

/** Media URLs from the API are our own paths; anything else is not shown. */
export function safeMediaUrl(url) {
  return typeof url === 'string' && url.startsWith('/') && !url.startsWith('//') ? url : null;
}

export function isVideoFile(url) {
  return /\.(mp4|webm|mov)(\?|$)/i.test(url || '');
}

export function downloadName(item, ext) {
  const words = (item.prompt || 'atelier').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  return `${words || 'atelier'}-${String(item.id).slice(0, 8)}.${ext}`;
}

export function extensionOf(url, fallback = 'webp') {
  const match = /\.([a-z0-9]+)(\?|$)/i.exec(url || '');
  return match ? match[1].toLowerCase() : fallback;
}

export const KIND_LABELS = { generated: 'Generated', upscaled: 'Upscaled', inpainted: 'Inpainted', uploaded: 'Uploaded' };
