// The gallery: every image the user made or uploaded, newest first, in pages ("Load more"), filtered by kind
// and searched by the words of its prompt as the user types.
import { api } from '../api.js';
import { KIND_LABELS, h } from '../dom.js';
import { liveShares, tile } from '../media.js';

const FILTERS = [['', 'All'], ...Object.entries(KIND_LABELS)];
const PAGE = 24;

export function gallery({ root, params, navigate }) {
  let kind = params.get('kind') || '';
  if (!KIND_LABELS[kind]) kind = '';
  let q = (params.get('q') || '').slice(0, 200);
  let cursor = null;
  let loading = false;
  let run = 0;  // which search the grid shows; answers to an older one are dropped

  const grid = h('ul', { class: 'grid gallery-grid', 'aria-label': 'Images' });
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more');
  const status = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const empty = h('div', { class: 'empty-state', hidden: true });
  const filters = h('div', { class: 'filters', role: 'group', 'aria-label': 'Show' },
    FILTERS.map(([value, label]) => {
      const button = h('button', { type: 'button', class: 'chip', 'aria-pressed': String(value === kind), dataset: { kind: value } }, label);
      button.addEventListener('click', () => {
        if (value === kind) return;
        const next = new URLSearchParams();
        if (value) next.set('kind', value);
        if (q) next.set('q', q);
        navigate(next.toString() ? `/gallery?${next}` : '/gallery', { replace: true });
      });
      return button;
    }));

  const search = h('input', { type: 'search', name: 'q', value: q, maxlength: '200', autocomplete: 'off',
    placeholder: 'Words from a prompt, e.g. lighthouse', 'aria-label': 'Search your images by prompt' });
  const searchForm = h('form', { class: 'gallery-search', role: 'search' }, search);
  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => restart(search.value.trim()), 250);
  });
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(typing);
    restart(search.value.trim());
  });

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Gallery'), h('p', { class: 'muted' }, 'Everything you made or uploaded, kept until you delete it.')),
      h('a', { class: 'button primary', href: '/create' }, 'New image')),
    searchForm,
    filters,
    grid, empty, status,
    h('div', { class: 'load-more' }, more)));

  function showEmpty() {
    const none = grid.children.length === 0;
    empty.hidden = !none;
    if (!none) return;
    if (q) {
      empty.replaceChildren(h('p', null, `No image${kind ? ` of this kind` : ''} matches “${q}”.`),
        h('p', { class: 'muted' }, 'Every word must begin a word of the prompt; try fewer or shorter words.'));
      return;
    }
    empty.replaceChildren(
      h('span', { class: 'empty-art', 'aria-hidden': 'true' }),
      kind
        ? h('p', null, `No ${KIND_LABELS[kind].toLowerCase()} images yet.`)
        : h('p', { class: 'empty-title' }, 'Your gallery is waiting for its first picture.'),
      h('p', { class: 'muted' }, kind === 'upscaled' || kind === 'inpainted' || kind === 'uploaded'
        ? 'Upload a picture on the Transform page to upscale or repaint it.'
        : 'Describe anything — “a fox reading in a cosy library, watercolor” — and it appears here.'),
      h('a', { class: 'button primary', href: kind && kind !== 'generated' ? '/transform' : '/create' }, kind && kind !== 'generated' ? 'Transform an image' : 'Write your first prompt'));
  }

  /** A new search: the grid starts again from the newest match (the address keeps the search). */
  function restart(text) {
    if (text === q) return;
    q = text.slice(0, 200);
    const next = new URLSearchParams();
    if (kind) next.set('kind', kind);
    if (q) next.set('q', q);
    history.replaceState(null, '', next.toString() ? `/gallery?${next}` : '/gallery');
    run += 1;
    cursor = null;
    loading = false;
    grid.replaceChildren();
    more.hidden = true;
    load();
  }

  async function load() {
    if (loading) return;
    loading = true;
    const mine = run;
    more.disabled = true;
    more.setAttribute('aria-busy', 'true');
    status.hidden = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (kind) query.set('kind', kind);
      if (q) query.set('q', q);
      if (cursor) query.set('cursor', cursor);
      const [page, shares] = await Promise.all([api.get(`/api/v1/images?${query}`), liveShares()]);
      if (mine !== run) return;
      const first = grid.children.length;
      grid.append(...page.items.map((item) => tile(item, { onDeleted: showEmpty, share: shares.get(item.id) })));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      showEmpty();
      // Keyboard users who asked for more land on the first new picture.
      if (first > 0 && grid.children[first]) grid.children[first].querySelector('button').focus();
    } catch (error) {
      if (mine !== run) return;
      status.textContent = error.message;
      status.hidden = false;
    } finally {
      if (mine === run) loading = false;
      more.disabled = false;
      more.removeAttribute('aria-busy');
    }
  }
  more.addEventListener('click', load);
  load();
}
