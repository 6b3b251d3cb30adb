// Pieces shared by the studio pages: the quota line, the full-size viewer with download and delete,
// and the status badge of a generation.
import { COLOURS, STYLES, api } from './api.js';
import {
  KIND_LABELS, confirmDialog, downloadName, extensionOf, formatDateTime, formatWhen, h, isVideoFile, nextId, openDialog,
  safeMediaUrl, toast,
} from './dom.js';

/** "4 of 5 left today · renews at 00:00", from GET /profile. `refresh()` re-reads it; resolves to the profile. */
export function quotaLine() {
  const el = h('p', { class: 'quota', 'aria-live': 'polite' }, h('span', { class: 'quota-loading' }, 'Checking your quota…'));
  let profile = null;
  async function refresh() {
    try {
      profile = await api.get('/api/v1/profile');
    } catch (error) {
      if (error.status !== 401) el.replaceChildren(h('span', { class: 'error-text' }, error.message));
      return null;
    }
    const { used, limit, period, renews_at: renews } = profile.quota;
    const left = Math.max(0, limit - used);
    const when = period === 'day' ? 'today' : 'this month';
    el.replaceChildren(...[
      h('span', { class: 'meter', role: 'img', 'aria-label': `${used} of ${limit} used` },
        h('span', { class: ['meter-fill', meterClass(used, limit)] })),
      h('span', null, h('strong', { class: 'quota-left' }, String(left)), ` of ${limit} left ${when}`),
      h('span', { class: 'muted' }, ` · renews ${formatWhen(renews)}`),
      profile.premium && profile.premium.active ? h('span', { class: 'badge premium' }, 'Premium') : null,
    ].filter(Boolean));
    el.classList.toggle('exhausted', left === 0);
    return profile;
  }
  return { el, refresh, get profile() { return profile; } };
}

// The meter's width comes from a class (no inline styles under the CSP): steps of 10 %.
function meterClass(used, limit) {
  const pct = limit > 0 ? Math.min(100, Math.round((used / limit) * 10) * 10) : 100;
  return `w-${pct}`;
}

const STATUS_TEXT = {
  sending: 'Sending', queued: 'Queued', running: 'Running', succeeded: 'Done', failed: 'Failed', canceled: 'Canceled',
};

export function statusBadge(status) {
  return h('span', { class: ['status', `status-${status}`] },
    ['sending', 'queued', 'running'].includes(status) ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null,
    STATUS_TEXT[status] || status);
}

/** The media element for an image or a video. Videos that are animated WebP play in an <img>. */
export function mediaElement(item, { thumbnail = false, alt } = {}) {
  const text = alt ?? item.prompt ?? '';
  const url = safeMediaUrl(item.url);
  if (item.poster_url !== undefined || item.duration_seconds !== undefined) {
    if (url && isVideoFile(url)) {
      return h('video', { src: url, poster: safeMediaUrl(item.poster_url), controls: true, loop: true, playsinline: true, preload: 'metadata', 'aria-label': text });
    }
    return h('img', { src: (thumbnail ? safeMediaUrl(item.poster_url) : null) || url, alt: text, loading: 'lazy', decoding: 'async' });
  }
  const src = (thumbnail ? safeMediaUrl(item.thumbnail_url) : null) || url;
  return h('img', { src, alt: text, loading: 'lazy', decoding: 'async', width: item.width || null, height: item.height || null });
}

const PROVIDER_LABELS = { replicate: 'Replicate', openai: 'OpenAI', local: 'Atelier (embedded)' };

function describe(item) {
  const facts = [];
  if (item.kind) facts.push(['Kind', KIND_LABELS[item.kind] || item.kind]);
  if (item.width && item.height) facts.push(['Size', `${item.width} × ${item.height}`]);
  const name = (list, id) => (list.find(([value]) => value === id) || [id, id])[1];
  if (item.style && item.style !== 'none') facts.push(['Style', name(STYLES, item.style)]);
  if (item.colour && item.colour !== 'auto') facts.push(['Colour', name(COLOURS, item.colour)]);
  if (item.duration_seconds) facts.push(['Length', `${item.duration_seconds} s`]);
  if (item.seed !== null && item.seed !== undefined) facts.push(['Seed', String(item.seed)]);
  if (item.provider) facts.push(['Made by', `${PROVIDER_LABELS[item.provider] || item.provider}${item.model ? ` · ${item.model}` : ''}`]);
  if (item.created_at) facts.push(['Made', formatDateTime(item.created_at)]);
  return h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

// ---- share links ---------------------------------------------------------------------------------------

let sharesRead = null;

/** The user's live share links by the id of what they show (image or video), read once per page load. */
export function liveShares() {
  if (!sharesRead) {
    sharesRead = api.get('/api/v1/shares')
      .then((list) => new Map(list.items.map((link) => [link.image_id || link.video_id, link])))
      .catch(() => new Map());
  }
  return sharesRead;
}

function rememberShare(id, link) {
  liveShares().then((links) => { if (link) links.set(id, link); else links.delete(id); });
}

function shareBadge(link) {
  return h('span', { class: 'badge shared', title: 'Anyone with the link can see it' },
    `Shared · ${link.views} ${link.views === 1 ? 'view' : 'views'}`);
}

/** Share, copy the link, choose whether the page names you, stop sharing. `onChange(link|null)` follows it. */
function sharePanel(item, type, link, onChange) {
  const panel = h('section', { class: 'share-panel', 'aria-label': 'Sharing' });
  const set = (next) => { link = next; rememberShare(item.id, next); if (onChange) onChange(next); render(); };
  function nameChoice() {
    const id = nextId('share-name');
    const box = h('input', { type: 'checkbox', id, checked: Boolean(link && link.show_username) });
    return { box, label: h('label', { class: 'share-check', for: id }, box, ' Show my username on the page') };
  }
  function render() {
    const choice = nameChoice();
    if (!link) {
      const create = h('button', { type: 'button', class: 'button secondary' }, 'Create share link');
      create.addEventListener('click', async () => {
        create.disabled = true;
        try {
          set(await api.post('/api/v1/shares', { [`${type}_id`]: item.id, show_username: choice.box.checked }));
          toast(`Share link created: anyone with it can see this ${type}.`);
        } catch (error) {
          toast(error.message, 'error');
          create.disabled = false;
        }
      });
      panel.replaceChildren(h('h3', null, 'Share'),
        h('p', { class: 'muted' }, `A link anyone can open to see this ${type} and its prompt. You can stop it at any time.`),
        choice.label, h('div', { class: 'share-row' }, create));
      return;
    }
    const address = h('input', { type: 'text', class: 'share-url', readonly: true, value: link.url, 'aria-label': 'Share link' });
    address.addEventListener('focus', () => address.select());
    const copy = h('button', { type: 'button', class: 'button secondary' }, 'Copy link');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(link.url);
        toast('Link copied.');
      } catch {
        address.focus();
        toast('Select the link and copy it.');
      }
    });
    const stop = h('button', { type: 'button', class: 'button danger-outline' }, 'Stop sharing');
    stop.addEventListener('click', async () => {
      stop.disabled = true;
      try {
        await api.delete(`/api/v1/shares/${encodeURIComponent(link.id)}`);
        set(null);
        toast('Sharing stopped: the link no longer works.');
      } catch (error) {
        toast(error.message, 'error');
        stop.disabled = false;
      }
    });
    choice.box.addEventListener('change', async () => {
      try {
        set(await api.post('/api/v1/shares', { [`${type}_id`]: item.id, show_username: choice.box.checked }));
      } catch (error) {
        toast(error.message, 'error');
      }
    });
    panel.replaceChildren(h('h3', null, 'Shared'),
      h('p', { class: 'muted' }, `${link.views} ${link.views === 1 ? 'view' : 'views'} · anyone with the link can see it`),
      h('div', { class: 'share-row' }, address, copy), choice.label, h('div', { class: 'share-row' }, stop));
  }
  render();
  return panel;
}

/**
 * Opens an image or video full size, with download, transform, share and delete. `type` is 'image' or
 * 'video'; `onDeleted(item)` runs after a confirmed delete, `onShareChange(link|null)` after sharing changes.
 */
export function openViewer(item, { type = 'image', onDeleted, onShareChange } = {}) {
  const url = safeMediaUrl(item.url);
  const ext = extensionOf(url, type === 'video' ? 'webp' : 'webp');
  const download = url ? h('a', { class: 'button secondary', href: url, download: downloadName(item, ext) }, 'Download') : null;
  const original = url ? h('a', { class: 'button secondary', href: url, target: '_blank', rel: 'noopener' }, 'Open original') : null;
  const transform = type === 'image' && url ? h('a', { class: 'button secondary', href: `/transform?image=${encodeURIComponent(item.id)}` }, 'Upscale or repaint') : null;
  const remove = h('button', { type: 'button', class: 'button danger' }, 'Delete');
  const media = mediaElement(item);
  const share = h('div', { class: 'share-slot' });
  liveShares().then((links) => share.replaceChildren(sharePanel(item, type, links.get(item.id) || null, onShareChange)));
  const { dialog } = openDialog({
    title: type === 'video' ? 'Video' : (KIND_LABELS[item.kind] ? `${KIND_LABELS[item.kind]} image` : 'Image'),
    className: 'viewer',
    body: h('div', { class: 'viewer-body' },
      h('div', { class: 'viewer-media' }, media),
      h('div', { class: 'viewer-info' },
        item.prompt ? h('p', { class: 'viewer-prompt' }, item.prompt) : null,
        describe(item),
        share)),
    actions: [download, original, transform, remove],
  });
  remove.addEventListener('click', async () => {
    const sure = await confirmDialog({
      title: type === 'video' ? 'Delete this video?' : 'Delete this image?',
      message: 'It is removed from your gallery and its files are deleted. This cannot be undone.',
      confirmLabel: 'Delete', danger: true,
    });
    if (!sure) return;
    try {
      await api.delete(`/api/v1/${type === 'video' ? 'videos' : 'images'}/${encodeURIComponent(item.id)}`);
      rememberShare(item.id, null);  // its link went with it
      dialog.close('deleted');
      toast(type === 'video' ? 'Video deleted.' : 'Image deleted.');
      if (onDeleted) onDeleted(item);
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  return dialog;
}

/** A thumbnail tile that opens the viewer; `share` is the item's live link, shown as a badge. */
export function tile(item, { type = 'image', onDeleted, share = null } = {}) {
  const button = h('button', { type: 'button', class: 'tile-button', 'aria-label': `Open: ${item.prompt || 'image'}` },
    mediaElement(item, { thumbnail: true, alt: '' }));
  const li = h('li', { class: 'tile', dataset: { id: item.id } },
    button,
    h('div', { class: 'tile-caption' },
      item.kind && item.kind !== 'generated' ? h('span', { class: 'badge' }, KIND_LABELS[item.kind] || item.kind) : null,
      type === 'video' ? h('span', { class: 'badge' }, 'Video') : null,
      share ? shareBadge(share) : null,
      h('span', { class: 'tile-prompt' }, item.prompt || '')));
  button.addEventListener('click', () => openViewer(item, {
    type,
    onDeleted: (deleted) => { li.remove(); if (onDeleted) onDeleted(deleted); },
    onShareChange: (link) => {
      const caption = li.querySelector('.tile-caption');
      caption.querySelector('.badge.shared')?.remove();
      if (link) caption.insertBefore(shareBadge(link), caption.querySelector('.tile-prompt'));
    },
  }));
  return li;
}
