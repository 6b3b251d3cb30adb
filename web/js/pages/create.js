// The studio: a prompt with style, colour and shape; prompt enhancement shown before it is used; the live
// status of each generation (queued → running → done or failed, with the reason); the quota left.
import { ASPECT_RATIOS, COLOURS, STYLES, api, followGeneration } from '../api.js';
import { busy, choices, clearErrors, field, formError, h, showError, announce } from '../dom.js';
import { mediaElement, openViewer, quotaLine, statusBadge, tile } from '../media.js';

const PROMPT_MAX = 2000;
const FIELDS = {
  invalid_prompt: 'prompt', invalid_style: 'style', invalid_colour: 'colour',
  invalid_aspect_ratio: 'aspect_ratio', invalid_seed: 'seed',
};

export function ratioIcon(ratio) {
  return h('span', { class: ['ratio-icon', `r-${ratio.replace(':', '-')}`], 'aria-hidden': 'true' });
}

/** The prompt box with its counter; shared with the video page. */
export function promptField({ label = 'Prompt', placeholder, hint } = {}) {
  const wrapper = field({
    label, name: 'prompt', control: 'textarea', rows: 4, maxlength: PROMPT_MAX, required: true,
    placeholder: placeholder || 'A lighthouse on a cliff at dusk, waves crashing, warm light in the windows',
    hint: hint || 'Describe the subject, the setting and the mood.',
  });
  const textarea = wrapper.querySelector('textarea');
  const counter = h('span', { class: 'counter', 'aria-hidden': 'true' }, `0 / ${PROMPT_MAX}`);
  textarea.addEventListener('input', () => { counter.textContent = `${textarea.value.length} / ${PROMPT_MAX}`; });
  const labelElement = wrapper.querySelector('label');
  const row = h('div', { class: 'label-row' });
  labelElement.replaceWith(row);
  row.append(labelElement, counter);
  wrapper.classList.add('prompt-field');
  return wrapper;
}

export function create({ root, params }) {
  const quota = quotaLine();
  const prompt = promptField();
  const enhanceButton = h('button', { type: 'button', class: 'button secondary small', name: 'enhance' }, h('span', { class: 'sparkle', 'aria-hidden': 'true' }), 'Enhance prompt');
  const suggestion = h('div', { class: 'suggestion', hidden: true, role: 'region', 'aria-label': 'Suggested prompt' });
  const form = h('form', { class: 'card create-form stack', novalidate: true },
    prompt,
    h('div', { class: 'enhance-row field-host' }, enhanceButton, h('p', { class: 'field-error', hidden: true, 'data-for': 'enhance' })),
    suggestion,
    h('div', { class: 'two-up' },
      field({ label: 'Style', name: 'style', control: 'select', options: STYLES, value: 'none' }),
      field({ label: 'Colour', name: 'colour', control: 'select', options: COLOURS, value: 'auto' })),
    choices({ legend: 'Shape', name: 'aspect_ratio', value: '1:1', className: 'ratios', options: ASPECT_RATIOS.map((r) => [r, r, ratioIcon(r)]) }),
    h('details', { class: 'advanced' },
      h('summary', null, 'Advanced'),
      field({ label: 'Seed', name: 'seed', type: 'number', min: 0, max: 4294967295, step: 1, inputmode: 'numeric', hint: 'The same prompt, settings and seed give the same image. Leave empty for a random one.' })),
    formError(),
    h('button', { type: 'submit', class: 'button primary large full' }, 'Generate'));

  const initial = params.get('prompt');
  if (initial) form.prompt.value = initial.slice(0, PROMPT_MAX);

  const jobs = h('ol', { class: 'jobs', 'aria-label': 'Generations in this session' });
  const recentGrid = h('ul', { class: 'grid small-grid' });
  const recent = h('section', { class: 'recent', hidden: true, 'aria-labelledby': 'recent-title' },
    h('div', { class: 'section-head' }, h('h2', { id: 'recent-title' }, 'Recently made'), h('a', { href: '/gallery' }, 'Open gallery')),
    recentGrid);
  const empty = h('div', { class: 'empty-state compact' },
    h('span', { class: 'empty-art', 'aria-hidden': 'true' }),
    h('p', null, 'Your images appear here as they are made.'),
    h('p', { class: 'muted' }, 'Tip: name a subject, a place, the light and a mood — or press “Enhance prompt” for help.'));

  root.append(h('section', { class: 'page studio' },
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Create'), h('p', { class: 'muted' }, 'Describe an image; Atelier makes it and keeps it in your gallery.')), quota.el),
    h('div', { class: 'studio-grid' },
      form,
      h('div', { class: 'results' }, h('h2', { class: 'visually-hidden' }, 'Results'), jobs, empty, recent))));

  quota.refresh();
  loadRecent();
  const stops = new Set();

  async function loadRecent() {
    try {
      const page = await api.get('/api/v1/images?limit=12');
      // Pictures already shown above as this session's results are not repeated.
      const shown = new Set([...jobs.querySelectorAll('[data-image-id]')].map((el) => el.dataset.imageId));
      const items = page.items.filter((item) => !shown.has(item.id)).slice(0, 6);
      recentGrid.replaceChildren(...items.map((item) => tile(item, { onDeleted: () => quota.refresh() })));
      recent.hidden = items.length === 0;
    } catch { recent.hidden = true; }
  }

  // ---- enhancement: shown as a suggestion, used only when the user says so
  enhanceButton.addEventListener('click', async () => {
    clearErrors(form);
    const text = form.prompt.value.trim();
    if (!text) { showError(form, { code: 'invalid_prompt', message: 'Write a prompt first; Atelier then suggests a richer one.' }, FIELDS); return; }
    try {
      const data = await busy(enhanceButton, () => api.post('/api/v1/prompts/enhance', { prompt: text, style: form.style.value }), 'Enhancing…');
      const use = h('button', { type: 'button', class: 'button primary small' }, 'Use this prompt');
      const keep = h('button', { type: 'button', class: 'button secondary small' }, 'Keep mine');
      suggestion.replaceChildren(
        h('p', { class: 'suggestion-label' }, 'Suggested prompt'),
        h('blockquote', { class: 'suggestion-text' }, data.prompt),
        h('div', { class: 'button-row' }, use, keep));
      suggestion.hidden = false;
      use.addEventListener('click', () => {
        form.prompt.value = data.prompt.slice(0, PROMPT_MAX);
        form.prompt.dispatchEvent(new Event('input'));
        suggestion.hidden = true;
        form.prompt.focus();
        announce('The suggested prompt is in the prompt box.');
      });
      keep.addEventListener('click', () => { suggestion.hidden = true; enhanceButton.focus(); });
      use.focus();
    } catch (error) {
      showError(form, error, { ...FIELDS, invalid_prompt: 'prompt', invalid_style: 'style', rate_limited: 'enhance', service_unavailable: 'enhance', network_error: 'enhance' });
    }
  });

  // ---- generation
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const text = form.prompt.value.trim();
    if (!text) { showError(form, { code: 'invalid_prompt', message: 'Describe the image you want in the prompt.' }, FIELDS); return; }
    const body = { prompt: text, style: form.style.value, colour: form.colour.value, aspect_ratio: form.aspect_ratio.value };
    const seedText = form.seed.value.trim();
    if (seedText !== '') {
      const seed = Number(seedText);
      if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) {
        form.querySelector('details.advanced').open = true;
        showError(form, { code: 'invalid_seed', message: 'The seed is a whole number from 0 to 4294967295.' }, FIELDS);
        return;
      }
      body.seed = seed;
    }
    const card = jobCard(body);
    jobs.prepend(card.el);
    empty.hidden = true;
    try {
      const data = await busy(form.querySelector('[type=submit]'), () => api.post('/api/v1/images', body), 'Generating…');
      if (data.image) {
        card.done(data.image);
      } else {
        card.update(data.generation);
        const stop = followGeneration(data.generation.id, async (generation) => {
          card.update(generation);
          if (generation.status === 'succeeded') {
            stops.delete(stop);
            try {
              const image = await api.get(`/api/v1/images/${encodeURIComponent(generation.image_ids[0])}`);
              card.done(image);
            } catch (error) { card.fail(error.message); }
            quota.refresh();
          } else if (generation.status === 'failed' || generation.status === 'canceled') {
            stops.delete(stop);
            quota.refresh();
          }
        }, (error) => card.fail(error.message));
        stops.add(stop);
      }
      quota.refresh();
      loadRecent();
    } catch (error) {
      card.el.remove();
      empty.hidden = jobs.children.length > 0;
      showError(form, error, FIELDS);
    }
  });

  return () => stops.forEach((stop) => stop());
}

function jobCard(body) {
  const ratio = body.aspect_ratio.replace(':', '-');
  const frame = h('div', { class: ['job-frame', `r-${ratio}`] }, h('div', { class: 'shimmer', 'aria-hidden': 'true' }));
  const badge = h('span', { class: 'job-status' }, statusBadge('sending'));
  const reason = h('p', { class: 'job-error', hidden: true, role: 'alert' });
  const actions = h('div', { class: 'job-actions' });
  const el = h('li', { class: 'job card' },
    frame,
    h('div', { class: 'job-info' },
      h('div', { class: 'job-top' }, badge),
      h('p', { class: 'job-prompt' }, body.prompt),
      reason, actions));
  return {
    el,
    update(generation) {
      badge.replaceChildren(statusBadge(generation.status));
      if (generation.status === 'failed' || generation.status === 'canceled') {
        this.fail(generation.error || (generation.status === 'canceled' ? 'The generation was canceled.' : 'The generation failed.'),
          generation.refunded);
      }
    },
    done(image) {
      el.dataset.imageId = image.id;
      badge.replaceChildren(statusBadge('succeeded'));
      const open = h('button', { type: 'button', class: 'job-open', 'aria-label': 'Open full size' }, mediaElement(image, { alt: image.prompt }));
      open.addEventListener('click', () => openViewer(image, { onDeleted: () => el.remove() }));
      frame.replaceChildren(open);
      frame.classList.add('loaded');
      actions.replaceChildren(
        h('a', { class: 'button secondary small', href: image.url, download: '' }, 'Download'),
        h('a', { class: 'button secondary small', href: `/transform?image=${encodeURIComponent(image.id)}` }, 'Upscale or repaint'));
      announce('Your image is ready.');
    },
    fail(message, refunded) {
      badge.replaceChildren(statusBadge('failed'));
      frame.replaceChildren(h('div', { class: 'job-failed', 'aria-hidden': 'true' }, '!'));
      reason.textContent = message + (refunded && !/refund/i.test(message) ? ' Your quota was refunded.' : '');
      reason.hidden = false;
    },
  };
}
