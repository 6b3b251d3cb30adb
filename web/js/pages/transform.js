// Transform: bring an image (drag and drop, the file picker, or one from the gallery), then upscale it ×2
// or ×4, or paint a mask over it and describe what to put there. The mask goes to the API as a black PNG
// with the painted areas white, at the image's natural size; the result opens beside the original.
import { api, followGeneration } from '../api.js';
import { busy, choices, clearErrors, field, formError, h, openDialog, showError, showFieldError, announce } from '../dom.js';
import { mediaElement, openViewer, quotaLine, statusBadge } from '../media.js';

const MAX_BYTES = 10 * 1024 * 1024 - 256 * 1024; // nginx takes 10 MiB per request, the mask included
const TYPES = ['image/png', 'image/jpeg', 'image/webp'];
const FIELDS = {
  unsupported_image: 'image', image_too_large: 'image', body_too_large: 'image', unsupported_media_type: 'image',
  invalid_scale: 'scale', result_too_large: 'scale', invalid_prompt: 'prompt', mask_size_mismatch: 'mask',
  invalid_mode: 'mode', not_found: 'image',
};

export function transform({ root, params }) {
  const quota = quotaLine();
  let source = null; // { file?, imageId?, url, width, height, name }
  let objectUrl = null;
  const stops = new Set();

  // ---- choosing the image
  const fileInput = h('input', { type: 'file', name: 'image', id: 'transform-file', accept: TYPES.join(','), class: 'visually-hidden' });
  const drop = h('div', { class: 'dropzone field-host' },
    fileInput,
    h('label', { for: 'transform-file', class: 'drop-label' },
      h('span', { class: 'drop-icon', 'aria-hidden': 'true' }),
      h('span', { class: 'drop-title' }, 'Drop an image here, or ', h('span', { class: 'link-text' }, 'choose a file')),
      h('span', { class: 'muted' }, 'PNG, JPEG or WebP, up to 10 MB and 40 megapixels.')),
    h('p', { class: 'field-error', hidden: true, 'data-for': 'image' }));
  const fromGallery = h('button', { type: 'button', class: 'button secondary' }, 'Choose from your gallery');
  const picker = h('div', { class: 'card picker stack' }, drop, h('div', { class: 'or-row' }, h('span', { class: 'muted' }, 'or'), fromGallery));

  // ---- the workspace
  const img = h('img', { class: 'stage-image', alt: 'The image to transform' });
  const canvas = h('canvas', { class: 'mask-canvas', hidden: true, 'aria-label': 'Mask: paint over the parts to repaint', role: 'img' });
  const stage = h('div', { class: 'stage' }, img, canvas);
  const sourceInfo = h('p', { class: 'muted source-info' });
  const change = h('button', { type: 'button', class: 'button secondary small' }, 'Choose another image');

  const modes = choices({ legend: 'What to do', name: 'mode', value: 'upscale', className: 'modes', options: [['upscale', 'Upscale'], ['inpaint', 'Repaint part (inpaint)']] });
  const scaleChoice = choices({ legend: 'Scale', name: 'scale', value: '2', options: [['2', '×2'], ['4', '×4']] });
  const scaleNote = h('p', { class: 'hint scale-note' });
  const upscalePanel = h('div', { class: 'panel stack' }, scaleChoice, scaleNote);

  const brush = h('input', { type: 'range', id: 'brush-size', name: 'brush', min: 4, max: 120, value: 36 });
  const brushValue = h('output', { for: 'brush-size', class: 'brush-value' }, '36 px');
  const undo = h('button', { type: 'button', class: 'button secondary small' }, 'Undo');
  const clear = h('button', { type: 'button', class: 'button secondary small' }, 'Clear');
  const inpaintPanel = h('div', { class: 'panel stack', hidden: true },
    h('div', { class: 'field-host mask-tools' },
      h('input', { type: 'hidden', name: 'mask' }),
      h('div', { class: 'brush-row' }, h('label', { for: 'brush-size' }, 'Brush size'), brush, brushValue),
      h('div', { class: 'button-row' }, undo, clear),
      h('p', { class: 'hint' }, 'Paint over the parts to repaint with a mouse, pen or finger. Painted areas are replaced; the rest is kept.'),
      h('p', { class: 'field-error', hidden: true, 'data-for': 'mask' })),
    field({ label: 'What should appear there?', name: 'prompt', control: 'textarea', rows: 3, maxlength: 2000, placeholder: 'A vase of sunflowers' }));

  const submit = h('button', { type: 'submit', class: 'button primary large full' }, 'Upscale');
  const form = h('form', { class: 'card stack transform-form', novalidate: true },
    modes, upscalePanel, inpaintPanel, formError(), submit);
  const workspace = h('div', { class: 'workspace', hidden: true },
    h('div', { class: 'card stage-card' },
      h('div', { class: 'section-head' }, sourceInfo, change),
      stage),
    form);

  const result = h('section', { class: 'result', hidden: true, 'aria-labelledby': 'result-title' });

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Transform'), h('p', { class: 'muted' }, 'Upscale an image, or paint over part of it and describe what goes there.')),
      quota.el),
    picker, workspace, result));
  quota.refresh();

  // ---- loading a source
  function reset() {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = null;
    strokes = [];
  }

  function useSource(next) {
    reset();
    source = next;
    if (next.file) { objectUrl = URL.createObjectURL(next.file); next.url = objectUrl; }
    img.onload = () => {
      source.width = img.naturalWidth;
      source.height = img.naturalHeight;
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      redraw();
      sourceInfo.textContent = `${source.name} · ${source.width} × ${source.height}`;
      updateScaleNote();
      picker.hidden = true;
      workspace.hidden = false;
      form.querySelector('input[name=mode]:checked').focus();
    };
    img.onerror = () => {
      showFieldError(drop, 'image', 'That file could not be read as an image. Use a PNG, JPEG or WebP.');
      picker.hidden = false;
      workspace.hidden = true;
    };
    img.src = next.url;
  }

  function takeFile(file) {
    clearErrors(drop);
    if (!file) return;
    if (!TYPES.includes(file.type)) { showFieldError(drop, 'image', `“${file.name}” is not a PNG, JPEG or WebP image.`); return; }
    if (file.size > MAX_BYTES) { showFieldError(drop, 'image', `“${file.name}” is ${(file.size / 1048576).toFixed(1)} MB; images can be at most 10 MB.`); return; }
    result.hidden = true;
    useSource({ file, name: file.name });
  }

  fileInput.addEventListener('change', () => { takeFile(fileInput.files[0]); fileInput.value = ''; });
  ['dragenter', 'dragover'].forEach((type) => drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add('dragging'); }));
  ['dragleave', 'drop'].forEach((type) => drop.addEventListener(type, () => drop.classList.remove('dragging')));
  drop.addEventListener('drop', (event) => { event.preventDefault(); takeFile(event.dataTransfer.files[0]); });
  change.addEventListener('click', () => {
    reset();
    workspace.hidden = true;
    picker.hidden = false;
    fileInput.focus();
  });

  async function useGalleryImage(id) {
    try {
      const image = await api.get(`/api/v1/images/${encodeURIComponent(id)}`);
      if (!image.url) throw new Error('That image has no file yet.');
      useSource({ imageId: image.id, url: image.url, name: image.prompt ? `“${image.prompt.slice(0, 60)}${image.prompt.length > 60 ? '…' : ''}”` : 'Gallery image' });
    } catch (error) {
      showFieldError(drop, 'image', error.message);
    }
  }

  fromGallery.addEventListener('click', async () => {
    const list = h('ul', { class: 'grid picker-grid' });
    const { dialog } = openDialog({ title: 'Choose an image', body: h('div', null, h('p', { class: 'muted' }, 'Your latest images:'), list), className: 'wide' });
    try {
      const page = await api.get('/api/v1/images?limit=30');
      if (page.items.length === 0) list.replaceWith(h('p', null, 'Your gallery is empty. ', h('a', { href: '/create' }, 'Make an image first.')));
      list.append(...page.items.filter((item) => item.url).map((item) => {
        const pick = h('button', { type: 'button', class: 'tile-button', 'aria-label': item.prompt || 'Image' }, mediaElement(item, { thumbnail: true, alt: '' }));
        pick.addEventListener('click', () => { dialog.close('picked'); useGalleryImage(item.id); });
        return h('li', { class: 'tile' }, pick);
      }));
      const first = list.querySelector('button');
      if (first) first.focus();
    } catch (error) {
      list.replaceWith(h('p', { class: 'error-text' }, error.message));
    }
  });

  if (params.get('image')) useGalleryImage(params.get('image'));

  // ---- mode and scale
  function mode() { return form.querySelector('input[name=mode]:checked').value; }
  function updateScaleNote() {
    const scale = Number(form.querySelector('input[name=scale]:checked').value);
    if (source && source.width) scaleNote.textContent = `${source.width} × ${source.height} → ${source.width * scale} × ${source.height * scale} pixels`;
  }
  form.addEventListener('change', (event) => {
    if (event.target.name === 'mode') {
      const inpaint = mode() === 'inpaint';
      upscalePanel.hidden = inpaint;
      inpaintPanel.hidden = !inpaint;
      canvas.hidden = !inpaint;
      submit.textContent = inpaint ? 'Repaint' : 'Upscale';
      clearErrors(form);
    }
    if (event.target.name === 'scale') updateScaleNote();
  });

  // ---- painting the mask: strokes kept in the image's own pixels, so export is exact at any display size
  let strokes = [];
  let current = null;
  const ctx = canvas.getContext('2d');
  function scaleFactor() {
    const rect = canvas.getBoundingClientRect();
    return rect.width > 0 ? canvas.width / rect.width : 1;
  }
  function point(event) {
    const rect = canvas.getBoundingClientRect();
    const k = canvas.width / rect.width;
    return [(event.clientX - rect.left) * k, (event.clientY - rect.top) * k];
  }
  function drawStroke(context, stroke, colour) {
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = stroke.size;
    context.lineCap = 'round';
    context.lineJoin = 'round';
    const [first, ...rest] = stroke.points;
    if (rest.length === 0) {
      context.beginPath();
      context.arc(first[0], first[1], stroke.size / 2, 0, Math.PI * 2);
      context.fill();
      return;
    }
    context.beginPath();
    context.moveTo(first[0], first[1]);
    rest.forEach(([x, y]) => context.lineTo(x, y));
    context.stroke();
  }
  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    strokes.forEach((stroke) => drawStroke(ctx, stroke, '#ff3d7f'));
    undo.disabled = strokes.length === 0;
    clear.disabled = strokes.length === 0;
  }
  canvas.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = { size: Number(brush.value) * scaleFactor(), points: [point(event)] };
    strokes.push(current);
    clearErrors(inpaintPanel);
    redraw();
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!current) return;
    current.points.push(point(event));
    redraw();
  });
  const end = () => { current = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  brush.addEventListener('input', () => { brushValue.textContent = `${brush.value} px`; });
  undo.addEventListener('click', () => { strokes.pop(); redraw(); announce(strokes.length ? 'Last stroke removed.' : 'Mask is empty.'); });
  clear.addEventListener('click', () => { strokes = []; redraw(); announce('Mask cleared.'); });
  redraw();

  function maskBlob() {
    const out = document.createElement('canvas');
    out.width = canvas.width;
    out.height = canvas.height;
    const context = out.getContext('2d');
    context.fillStyle = '#000';
    context.fillRect(0, 0, out.width, out.height);
    strokes.forEach((stroke) => drawStroke(context, stroke, '#fff'));
    return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  }

  // ---- sending
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!source) return;
    const data = new FormData();
    const chosen = mode();
    data.set('mode', chosen);
    if (chosen === 'upscale') {
      data.set('scale', form.querySelector('input[name=scale]:checked').value);
    } else {
      const prompt = form.prompt.value.trim();
      if (strokes.length === 0) { showError(form, { code: 'mask_size_mismatch', message: 'Paint over the part of the image to repaint first.' }, FIELDS); return; }
      if (!prompt) { showError(form, { code: 'invalid_prompt', message: 'Describe what to paint into the masked area.' }, FIELDS); return; }
      data.set('prompt', prompt);
      data.set('mask', await maskBlob(), 'mask.png');
    }
    if (source.imageId) data.set('image_id', source.imageId);
    else data.set('image', source.file, source.file.name);

    const original = { url: source.url, width: source.width, height: source.height, name: source.name };
    showResult(original, null, chosen);
    try {
      const answer = await busy(submit, () => api.upload('/api/v1/images/transform', data), chosen === 'upscale' ? 'Upscaling…' : 'Repainting…');
      if (answer.image) {
        finish(answer.image, original, chosen);
      } else {
        resultStatus.replaceChildren(statusBadge(answer.generation.status));
        const stop = followGeneration(answer.generation.id, async (generation) => {
          resultStatus.replaceChildren(statusBadge(generation.status));
          if (generation.status === 'succeeded') {
            stops.delete(stop);
            try { finish(await api.get(`/api/v1/images/${encodeURIComponent(generation.image_ids[0])}`), original, chosen); } catch (error) { failResult(error.message); }
          } else if (generation.status === 'failed' || generation.status === 'canceled') {
            stops.delete(stop);
            failResult(generation.error || 'The transform failed; your quota was refunded.');
            quota.refresh();
          }
        }, (error) => failResult(error.message));
        stops.add(stop);
      }
    } catch (error) {
      result.hidden = true;
      if (error.code === 'not_found' && source.imageId) {
        showError(form, { code: 'gone', message: 'That image is no longer in your gallery; choose another.' }, {});
      } else if (['unsupported_image', 'image_too_large', 'body_too_large', 'unsupported_media_type'].includes(error.code)) {
        showError(form, error, {});
      } else {
        showError(form, error, FIELDS);
      }
    }
  });

  let resultStatus = h('span');
  let resultFrame = h('div');
  function showResult(original, image, chosen) {
    resultStatus = h('span', { class: 'job-status' }, statusBadge('running'));
    resultFrame = h('figure', { class: 'compare-item result-item' },
      h('div', { class: 'compare-media pending' }, h('div', { class: 'shimmer', 'aria-hidden': 'true' })),
      h('figcaption', null, h('span', null, chosen === 'upscale' ? 'Upscaled' : 'Repainted'), resultStatus));
    result.replaceChildren(
      h('h2', { id: 'result-title' }, 'Result'),
      h('div', { class: 'compare' },
        h('figure', { class: 'compare-item' },
          h('div', { class: 'compare-media' }, h('img', { src: original.url, alt: 'Original image' })),
          h('figcaption', null, h('span', null, 'Original'), h('span', { class: 'muted' }, `${original.width} × ${original.height}`))),
        resultFrame));
    result.hidden = false;
    if (image) finish(image, original, chosen);
  }
  function finish(image, original, chosen) {
    resultStatus.replaceChildren(statusBadge('succeeded'));
    const open = h('button', { type: 'button', class: 'job-open', 'aria-label': 'Open the result full size' }, mediaElement(image, { alt: `${chosen === 'upscale' ? 'Upscaled' : 'Repainted'} image` }));
    open.addEventListener('click', () => openViewer(image));
    resultFrame.querySelector('.compare-media').replaceWith(h('div', { class: 'compare-media' }, open));
    resultFrame.append(h('div', { class: 'button-row' },
      h('p', { class: 'muted result-size' }, image.width && image.height ? `${image.width} × ${image.height}` : ''),
      h('a', { class: 'button secondary small', href: image.url, download: '' }, 'Download'),
      h('button', { type: 'button', class: 'button secondary small', onclick: () => { result.hidden = true; useGalleryImage(image.id); } }, 'Keep working on this')));
    // A file sent once is in the gallery now (as "uploaded"): later transforms name it instead of sending it again.
    if (source && source.file && image.source_image_id) { source.imageId = image.source_image_id; delete source.file; }
    announce('The result is ready, next to the original.');
    quota.refresh();
    result.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }
  function failResult(message) {
    resultStatus.replaceChildren(statusBadge('failed'));
    resultFrame.querySelector('.compare-media').replaceChildren(h('p', { class: 'job-error', role: 'alert' }, message));
  }

  return () => { stops.forEach((stop) => stop()); reset(); };
}
