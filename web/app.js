// Atelier's browser app: one HTML shell, a small client-side router over the History API, and one module
// per area under /js/pages/. nginx answers every unknown path with index.html, so any page survives a reload.
import { api, session } from './js/api.js';
import { announce, h, toast } from './js/dom.js';

const routes = {
  '/': { module: 'auth', page: 'landing', title: 'Generate, transform and keep AI images' },
  '/register': { module: 'auth', page: 'register', title: 'Create your account', guest: true },
  '/verify': { module: 'auth', page: 'verify', title: 'Confirm your email', guest: true },
  '/login': { module: 'auth', page: 'login', title: 'Log in', guest: true },
  '/forgot': { module: 'auth', page: 'forgot', title: 'Reset your password', guest: true },
  '/reset': { module: 'auth', page: 'forgot', title: 'Reset your password', guest: true },
  '/create': { module: 'create', page: 'create', title: 'Create', auth: true },
  '/gallery': { module: 'gallery', page: 'gallery', title: 'Gallery', auth: true },
  '/transform': { module: 'transform', page: 'transform', title: 'Transform', auth: true },
  '/video': { module: 'video', page: 'video', title: 'Video', auth: true },
  '/keys': { module: 'account', page: 'keys', title: 'API keys', auth: true },
  '/account': { module: 'account', page: 'account', title: 'Account', auth: true },
  '/admin': { module: 'admin', page: 'admin', title: 'Admin', auth: true },
  '/admin/user': { module: 'admin', page: 'adminUser', title: 'User · Admin', auth: true },
  '/admin/jobs': { module: 'admin', page: 'adminJobs', title: 'Stuck jobs · Admin', auth: true },
  '/admin/audit': { module: 'admin', page: 'adminAudit', title: 'Audit log · Admin', auth: true },
  '/admin/stats': { module: 'admin', page: 'adminStats', title: 'Figures · Admin', auth: true },
};

const main = document.getElementById('main');
const nav = document.getElementById('site-nav');
const menuToggle = document.querySelector('.menu-toggle');
let cleanup = null;
let renderCount = 0;

/** The path to come back to after logging in: only our own paths. */
export function safeNext(value) {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\') ? value : null;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function currentPath() {
  const path = location.pathname.replace(/\/+$/, '');
  return path === '' ? '/' : path;
}

function sendToLogin() {
  const here = location.pathname + location.search;
  if (currentPath() === '/login') return;
  navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
}

async function render() {
  const ticket = ++renderCount;
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup never blocks the next page */ } cleanup = null; }
  closeMenu();
  document.querySelectorAll('dialog[open]').forEach((dialog) => dialog.close('navigate'));
  const path = currentPath();
  const route = routes[path];
  const params = new URLSearchParams(location.search);

  if (route && route.auth && !session.signedIn) { sendToLogin(); return; }
  if (route && route.guest && session.signedIn) {
    navigate(safeNext(params.get('next')) || '/create', { replace: true });
    return;
  }
  updateNav(path);

  const container = h('div', { class: 'page-host' });
  let title = 'Page not found';
  try {
    if (!route) {
      container.append(notFound());
    } else {
      const module = await import(`./js/pages/${route.module}.js`);
      if (ticket !== renderCount) return;
      title = route.title;
      cleanup = (await module[route.page]({ root: container, params, navigate, path })) || null;
    }
  } catch (error) {
    console.error(error);
    container.replaceChildren(h('section', { class: 'page narrow' },
      h('h1', null, 'Something went wrong'),
      h('p', null, error && error.message ? error.message : 'This page could not be shown.'),
      h('p', null, h('a', { href: '/' }, 'Back to the start'))));
  }
  if (ticket !== renderCount) return;
  main.replaceChildren(container);
  document.title = `${title} · Atelier`;
  // Move focus to the new page's heading so keyboard and screen-reader users start at the top.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
  announce(title);
}

function notFound() {
  return h('section', { class: 'page narrow center' },
    h('h1', null, 'Page not found'),
    h('p', null, 'There is nothing at this address.'),
    h('p', null, h('a', { class: 'button primary', href: session.signedIn ? '/create' : '/' }, session.signedIn ? 'Go to the studio' : 'Go to the start')));
}

function link(path, text, current) {
  const here = current === path || (path === '/admin' && current.startsWith('/admin/'));
  return h('a', { href: path, class: 'nav-link', 'aria-current': here ? 'page' : null }, text);
}

function updateNav(path = currentPath()) {
  const user = session.user;
  menuToggle.hidden = false;
  if (!user) {
    nav.replaceChildren(
      h('div', { class: 'nav-links' }),
      h('div', { class: 'nav-account' },
        link('/login', 'Log in', path),
        h('a', { href: '/register', class: 'button primary small' }, 'Sign up')));
    return;
  }
  const logout = h('button', { type: 'button', class: 'button secondary small' }, 'Log out');
  logout.addEventListener('click', async () => {
    try {
      await api.post('/api/v1/logout', null, { auth: false });
    } catch (error) {
      if (error.status !== 401) { toast(error.message, 'error'); return; }
    }
    session.set(null, null);
    navigate('/');
    toast('You are logged out.');
  });
  nav.replaceChildren(
    h('div', { class: 'nav-links' },
      link('/create', 'Create', path),
      link('/gallery', 'Gallery', path),
      link('/transform', 'Transform', path),
      link('/video', 'Video', path),
      link('/keys', 'API keys', path),
      user.is_admin ? link('/admin', 'Admin', path) : null),
    h('div', { class: 'nav-account' },
      h('a', { href: '/account', class: 'nav-link account-link', 'aria-current': path === '/account' ? 'page' : null },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, (user.username || user.email || '?').slice(0, 1).toUpperCase()),
        h('span', { class: 'account-name' }, user.username || 'Account')),
      logout));
}

function closeMenu() {
  document.body.classList.remove('menu-open');
  menuToggle.setAttribute('aria-expanded', 'false');
}

menuToggle.addEventListener('click', () => {
  const open = !document.body.classList.contains('menu-open');
  document.body.classList.toggle('menu-open', open);
  menuToggle.setAttribute('aria-expanded', String(open));
});

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && document.body.classList.contains('menu-open')) {
    closeMenu();
    menuToggle.focus();
  }
});

// Same-origin links are handled here; downloads, new tabs, modified clicks and media go to the browser.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest('a[href]');
  if (!anchor || anchor.target || anchor.hasAttribute('download')) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/media/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);
session.onUnauthorized(() => {
  toast('Please log in to continue.');
  sendToLogin();
});
session.onChange(() => updateNav());

async function start() {
  try {
    await session.load();
  } catch (error) {
    toast(error.message, 'error');
  }
  await render();
}

start();
