// Video: premium members turn a prompt into a short looping video; everyone else sees what premium gives.
import { COLOURS, STYLES, VIDEO_RATIOS, api, followGeneration } from '../api.js';
import { busy, choices, clearErrors, field, formError, h, showError, announce, isVideoFile, safeMediaUrl, downloadName, extensionOf } from '../dom.js';
import { openViewer, quotaLine, statusBadge } from '../media.js';
import { promptField, ratioIcon } from './create.js';

const FIELDS = { invalid_prompt: 'prompt', invalid_style: 'style', invalid_colour: 'colour', invalid_aspect_ratio: 'aspect_ratio', invalid_seed: 'seed' };

/** A video that plays on request: animated WebP shows its poster until "Play"; MP4 uses <video controls>. */
export function videoPlayer(video) {
  const url = safeMediaUrl(video.url);
  const poster = safeMediaUrl(video.poster_url);
  if (url && isVideoFile(url)) {
    return h('video', { class: 'player-media', src: url, poster, controls: true, loop: true, playsinline: true, preload: 'metadata', 'aria-label': video.prompt });
  }
  const img = h('img', { class: 'player-media', src: poster || url, alt: video.prompt || 'Video' });
  const toggle = h('button', { type: 'button', class: 'play-toggle', 'aria-pressed': 'false' }, h('span', { class: 'play-icon', 'aria-hidden': 'true' }), h('span', { class: 'visually-hidden' }, 'Play'));
  let playing = false;
  const set = (on) => {
    playing = on;
    img.src = on ? url : (poster || url);
    toggle.setAttribute('aria-pressed', String(on));
    toggle.classList.toggle('playing', on);
    toggle.querySelector('.visually-hidden').textContent = on ? 'Pause' : 'Play';
  };
  toggle.addEventListener('click', () => set(!playing));
  // Without a separate poster the animation simply plays.
  if (!poster) return img;
  return h('div', { class: 'player' }, img, toggle);
}

function videoCard(video, onDeleted) {
  const el = h('li', { class: 'card video-card' },
    videoPlayer(video),
    h('div', { class: 'video-info' },
      h('p', { class: 'job-prompt' }, video.prompt),
      h('div', { class: 'button-row' },
        video.url ? h('a', { class: 'button secondary small', href: video.url, download: downloadName(video, extensionOf(video.url)) }, 'Download') : null,
        h('button', { type: 'button', class: 'button secondary small', onclick: () => openViewer(video, { type: 'video', onDeleted: () => { el.remove(); onDeleted(); } }) }, 'Details'))));
  return el;
}

export async function video({ root }) {
  const quota = quotaLine();
  const list = h('ul', { class: 'video-grid' });
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more');
  const listError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const listSection = h('section', { class: 'video-list', 'aria-labelledby': 'videos-title' },
    h('h2', { id: 'videos-title' }, 'Your videos'), list, listError, h('div', { class: 'load-more' }, more));
  const stops = new Set();
  let cursor = null;

  const head = h('div', { class: 'page-head' },
    h('div', null, h('h1', null, 'Video'), h('p', { class: 'muted' }, 'Turn a prompt into a short looping video.')), quota.el);
  const body = h('div', { class: 'video-layout' });
  root.append(h('section', { class: 'page' }, head, body, listSection));

  const profile = await quota.refresh();
  const premium = profile && profile.premium && profile.premium.active;
  // What the configured video model can make (Replicate's models differ: some take no ratio or seed).
  let options = { aspect_ratios: VIDEO_RATIOS, seed: true, model: '' };
  try { options = await api.get('/api/v1/videos/options'); } catch { /* the defaults above */ }
  const ratios = options.aspect_ratios && options.aspect_ratios.length ? options.aspect_ratios : VIDEO_RATIOS;
  const ratioList = ratios.length === 1 ? ratios[0] : `${ratios.slice(0, -1).join(', ')} or ${ratios[ratios.length - 1]}`;

  const emptyList = () => {
    if (list.children.length === 0) {
      list.replaceChildren();
      listSection.hidden = !premium;
      listError.hidden = true;
      if (premium) list.append(h('li', { class: 'empty-state compact' }, h('p', null, 'No videos yet — your first one appears here.')));
    }
  };

  async function loadVideos() {
    try {
      const query = new URLSearchParams({ limit: '12' });
      if (cursor) query.set('cursor', cursor);
      const page = await api.get(`/api/v1/videos?${query}`);
      list.querySelectorAll('.empty-state').forEach((el) => el.remove());
      list.append(...page.items.map((item) => videoCard(item, emptyList)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (page.items.length > 0) listSection.hidden = false;
      emptyList();
    } catch (error) {
      listError.textContent = error.message;
      listError.hidden = false;
    }
  }
  more.addEventListener('click', () => busy(more, loadVideos));

  if (!premium) {
    body.append(h('div', { class: 'card premium-pitch' },
      h('span', { class: 'badge premium' }, 'Premium'),
      h('h2', null, 'Video is part of Atelier Premium'),
      h('ul', { class: 'checks' },
        h('li', null, `Short looping videos from a prompt, in ${ratioList}`),
        h('li', null, 'The same ten styles and eight colour moods as images'),
        h('li', null, 'A monthly quota instead of a daily allowance'),
        h('li', null, 'Everything kept in your account, ready to download')),
      h('a', { class: 'button primary', href: '/account#plan' }, 'See plans on your account page')));
    listSection.hidden = true;
    await loadVideos();
    return () => {};
  }

  const form = h('form', { class: 'card stack', novalidate: true },
    promptField({ placeholder: 'Slow waves rolling onto a moonlit beach', hint: 'Describe the scene and its movement.' }),
    h('div', { class: 'two-up' },
      field({ label: 'Style', name: 'style', control: 'select', options: STYLES, value: 'none' }),
      field({ label: 'Colour', name: 'colour', control: 'select', options: COLOURS, value: 'auto' })),
    choices({ legend: 'Shape', name: 'aspect_ratio', value: ratios[0], className: 'ratios', options: ratios.map((r) => [r, r, ratioIcon(r)]) }),
    ratios.length === 1 ? h('p', { class: 'muted small-print' }, `The video model here makes ${ratios[0]} videos.`) : null,
    formError(),
    h('button', { type: 'submit', class: 'button primary large full' }, 'Make video'));
  const progress = h('div', { class: 'video-progress', hidden: true, 'aria-live': 'polite' });
  body.append(form, h('div', { class: 'video-side' }, progress, listSection));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const prompt = form.prompt.value.trim();
    if (!prompt) { showError(form, { code: 'invalid_prompt', message: 'Describe the video in 1 to 2000 characters.' }, FIELDS); return; }
    const request = { prompt, style: form.style.value, colour: form.colour.value, aspect_ratio: form.aspect_ratio.value };
    const badge = h('span', null, statusBadge('sending'));
    progress.replaceChildren(h('div', { class: 'card job' }, h('div', { class: 'job-info' }, badge, h('p', { class: 'job-prompt' }, prompt))));
    progress.hidden = false;
    const done = (item) => {
      progress.hidden = true;
      list.querySelectorAll('.empty-state').forEach((el) => el.remove());
      list.prepend(videoCard(item, emptyList));
      listSection.hidden = false;
      announce('Your video is ready.');
      quota.refresh();
    };
    const failed = (message) => {
      badge.replaceChildren(statusBadge('failed'));
      progress.querySelector('.job-info').append(h('p', { class: 'job-error', role: 'alert' }, message));
      quota.refresh();
    };
    try {
      const data = await busy(form.querySelector('[type=submit]'), () => api.post('/api/v1/videos', request), 'Making…');
      if (data.video) { done(data.video); return; }
      badge.replaceChildren(statusBadge(data.generation.status));
      const stop = followGeneration(data.generation.id, async (generation) => {
        badge.replaceChildren(statusBadge(generation.status));
        if (generation.status === 'succeeded') {
          stops.delete(stop);
          try { done(await api.get(`/api/v1/videos/${encodeURIComponent(generation.video_ids[0])}`)); } catch (error) { failed(error.message); }
        } else if (generation.status === 'failed' || generation.status === 'canceled') {
          stops.delete(stop);
          failed(generation.error || 'The video could not be made; your quota was refunded.');
        }
      }, (error) => failed(error.message));
      stops.add(stop);
    } catch (error) {
      progress.hidden = true;
      showError(form, error, FIELDS);
    }
  });

  await loadVideos();
  return () => stops.forEach((stop) => stop());
}
