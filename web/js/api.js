// The API client: JSON in and out, the CSRF token held in memory only (never in storage), and one place
// that turns every failure into an ApiError carrying the API's own code and message.

export class ApiError extends Error {
  constructor(status, code, message, requestId = null, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }

  /** nginx's catch-all answers 404 not_found for endpoints that do not exist yet. */
  get unavailable() {
    return this.status === 404 && this.code === 'not_found';
  }
}

const state = { user: null, csrf: null, loaded: false };
const listeners = new Set();
let unauthorizedHandler = () => {};

export const session = {
  get user() { return state.user; },
  get signedIn() { return state.user !== null; },
  onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  /** Called with no arguments when an authenticated request answers 401. */
  onUnauthorized(fn) { unauthorizedHandler = fn; },
  set(user, csrf) {
    state.user = user;
    state.csrf = csrf ?? state.csrf;
    if (!user) state.csrf = null;
    listeners.forEach((fn) => fn(state.user));
  },
  update(fields) {
    if (!state.user) return;
    state.user = { ...state.user, ...fields };
    listeners.forEach((fn) => fn(state.user));
  },
  /** Asks the server who is signed in (after a reload the CSRF token is fetched again). */
  async load() {
    try {
      const data = await request('GET', '/api/v1/session', { auth: false });
      session.set(data.user, data.csrf_token);
    } catch (error) {
      if (error.status !== 401) throw error;
      session.set(null, null);
    } finally {
      state.loaded = true;
    }
    return state.user;
  },
};

/**
 * One API request. `json` is sent as a JSON body, `form` as multipart (FormData). With `auth` (the
 * default) a 401 sends the user to log in; pass `auth: false` where 401 is an answer to show (login).
 * Resolves to the parsed body (null for 204); rejects with ApiError.
 */
export async function request(method, path, { json, form, auth = true, retried = false } = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;

  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network_error', 'Atelier could not be reached. Check your connection and try again.');
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (response.ok) return data;

  const error = data && data.error ? data.error : {};
  const failure = new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || defaultMessage(response.status),
    error.request_id || response.headers.get('X-Request-Id'),
    parseRetryAfter(response.headers.get('Retry-After')),
  );
  // A session that was renewed elsewhere has a new CSRF token: fetch it once and try again.
  if (failure.code === 'csrf_failed' && !retried && state.user && path !== '/api/v1/session') {
    await session.load().catch(() => {});
    if (state.user) return request(method, path, { json, form, auth, retried: true });
  }
  if (failure.status === 401 && auth) {
    session.set(null, null);
    unauthorizedHandler();
  }
  throw failure;
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number.parseInt(value, 10);
  return Number.isFinite(seconds) ? seconds : null;
}

function defaultMessage(status) {
  if (status === 413) return 'That file is too large to send.';
  if (status === 429) return 'Too many requests; wait a moment and try again.';
  if (status >= 500) return 'Something went wrong on our side; please try again shortly.';
  return `The request failed (HTTP ${status}).`;
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, json, options = {}) => request('POST', path, { ...options, json: json ?? {} }),
  patch: (path, json, options = {}) => request('PATCH', path, { ...options, json }),
  delete: (path, json, options = {}) => request('DELETE', path, { ...options, json }),
  upload: (path, form, options = {}) => request('POST', path, { ...options, form }),
};

/**
 * Follows a generation until it ends (succeeded, failed or canceled), calling `onUpdate` with each
 * state. Returns a stop function; polling backs off gently and stops when the page goes away.
 */
export function followGeneration(id, onUpdate, onError) {
  let stopped = false;
  let delay = 1000;
  let timer = null;
  const terminal = new Set(['succeeded', 'failed', 'canceled']);
  async function tick() {
    if (stopped) return;
    try {
      const generation = await api.get(`/api/v1/generations/${encodeURIComponent(id)}`);
      if (stopped) return;
      onUpdate(generation);
      if (terminal.has(generation.status)) return;
    } catch (error) {
      if (stopped) return;
      if (error.status === 401 || error.status === 404) { onError(error); return; }
      // Transient trouble (a restart, a network blip): keep trying, a little slower.
    }
    delay = Math.min(delay * 1.25, 5000);
    timer = setTimeout(tick, delay);
  }
  timer = setTimeout(tick, 600);
  return () => { stopped = true; clearTimeout(timer); };
}

export const STYLES = [
  ['none', 'No particular style'], ['photographic', 'Photographic'], ['cinematic', 'Cinematic'],
  ['digital-art', 'Digital art'], ['anime', 'Anime'], ['watercolor', 'Watercolor'], ['oil-painting', 'Oil painting'],
  ['pixel-art', 'Pixel art'], ['sketch', 'Sketch'], ['3d-render', '3D render'],
];
export const COLOURS = [
  ['auto', 'Automatic'], ['warm', 'Warm'], ['cool', 'Cool'], ['pastel', 'Pastel'], ['vibrant', 'Vibrant'],
  ['monochrome', 'Monochrome'], ['earthy', 'Earthy'], ['neon', 'Neon'],
];
export const ASPECT_RATIOS = ['1:1', '16:9', '9:16', '4:3', '3:4', '3:2', '2:3', '21:9'];
export const VIDEO_RATIOS = ['16:9', '9:16', '1:1'];
