// The admin dashboard: figures, a searchable users table with each user's detail and actions, and the
// audit log. Admins only; until the admin API is deployed the page says so.
import { api, session } from '../api.js';
import { busy, confirmDialog, field, formatDate, formatDateTime, h, openDialog, showError, formError, toast } from '../dom.js';

const STAT_LABELS = {
  users: 'Users', verified_users: 'Verified', premium_users: 'Premium', admins: 'Admins', images: 'Images', videos: 'Videos',
  generations_today: 'Generations today', active_subscriptions: 'Active subscriptions', signups_today: 'Sign-ups today',
};

function label(key) {
  return STAT_LABELS[key] || key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export async function admin({ root }) {
  const head = h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Admin'), h('p', { class: 'muted' }, 'Accounts, premium and the audit log.')));
  if (!session.user || !session.user.is_admin) {
    root.append(h('section', { class: 'page narrow' }, head, h('p', { class: 'notice' }, 'This page is for administrators.')));
    return;
  }
  const stats = h('div', { class: 'stats' });
  const search = h('form', { class: 'inline-form', role: 'search', novalidate: true },
    field({ label: 'Search users', name: 'q', type: 'search', placeholder: 'Email or username' }),
    h('button', { type: 'submit', class: 'button secondary' }, 'Search'));
  const users = h('div', { class: 'table-wrap' });
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more');
  const audit = h('div', { class: 'table-wrap' });
  root.append(h('section', { class: 'page' }, head, stats,
    h('section', { class: 'card', 'aria-labelledby': 'users-title' }, h('h2', { id: 'users-title' }, 'Users'), search, users, h('div', { class: 'load-more' }, more)),
    h('section', { class: 'card', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit log'), audit)));

  let unavailableShown = false;
  const unavailable = () => {
    if (unavailableShown) return;
    unavailableShown = true;
    root.querySelector('.page').replaceChildren(head, h('p', { class: 'notice' }, 'The admin dashboard is not available yet. It will appear here as soon as it is.'));
  };

  try {
    const data = await api.get('/api/v1/admin/stats');
    stats.replaceChildren(...Object.entries(data).filter(([, v]) => typeof v === 'number').map(([k, v]) =>
      h('div', { class: 'card stat' }, h('p', { class: 'big-number' }, v.toLocaleString()), h('p', { class: 'muted' }, label(k)))));
  } catch (error) {
    if (error.unavailable) { unavailable(); return; }
    stats.replaceChildren(h('p', { class: 'error-text' }, error.message));
  }

  let cursor = null;
  let rows = null;
  async function loadUsers(reset) {
    const query = new URLSearchParams({ limit: '50' });
    const q = search.q.value.trim();
    if (q) query.set('q', q);
    if (!reset && cursor) query.set('cursor', cursor);
    try {
      const data = await api.get(`/api/v1/admin/users?${query}`);
      const items = data.items || data.users || [];
      if (reset || !rows) {
        rows = h('tbody');
        users.replaceChildren(h('table', { class: 'table' },
          h('thead', null, h('tr', null, ['Email', 'Username', 'Status', 'Premium until', 'Joined'].map((t) => h('th', { scope: 'col' }, t)))), rows));
      }
      rows.append(...items.map(userRow));
      if (items.length === 0 && rows.children.length === 0) users.replaceChildren(h('p', { class: 'muted' }, 'No users match.'));
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
    } catch (error) {
      if (error.unavailable) { unavailable(); return; }
      users.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }
  function userRow(user) {
    const open = h('button', { type: 'button', class: 'link-button' }, user.email);
    open.addEventListener('click', () => userDetail(user.id, () => loadUsers(true)));
    const flags = [user.is_admin ? 'admin' : null, user.verified === false ? 'unverified' : null, user.premium && user.premium.active ? 'premium' : null].filter(Boolean);
    return h('tr', null,
      h('td', null, open),
      h('td', null, user.username || '—'),
      h('td', null, flags.map((f) => h('span', { class: 'badge' }, f))),
      h('td', null, user.premium && user.premium.until ? formatDate(user.premium.until) : '—'),
      h('td', null, user.created_at ? formatDate(user.created_at) : ''));
  }
  search.addEventListener('submit', (event) => { event.preventDefault(); loadUsers(true); });
  more.addEventListener('click', () => busy(more, () => loadUsers(false)));
  await loadUsers(true);
  if (unavailableShown) return;

  try {
    const data = await api.get('/api/v1/admin/audit?limit=50');
    const items = data.items || data.entries || [];
    audit.replaceChildren(items.length === 0 ? h('p', { class: 'muted' }, 'No admin actions yet.') : h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['When', 'Who', 'Action', 'Target'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, items.map((entry) => h('tr', null,
        h('td', null, formatDateTime(entry.created_at || entry.at)),
        h('td', null, entry.actor_email || entry.actor || ''),
        h('td', null, entry.action || ''),
        h('td', null, entry.target_email || entry.target || ''))))));
  } catch (error) {
    audit.replaceChildren(h('p', { class: error.unavailable ? 'notice' : 'error-text' }, error.unavailable ? 'The audit log is not available yet.' : error.message));
  }
}

async function userDetail(id, changed) {
  let user;
  try {
    user = await api.get(`/api/v1/admin/users/${encodeURIComponent(id)}`);
  } catch (error) { toast(error.message, 'error'); return; }
  const u = user.user || user;
  const error = formError();
  const act = async (button, work, done) => {
    try { await busy(button, work); toast(done); dialog.close('changed'); changed(); } catch (failure) { showError(body, failure, {}); }
  };
  const promote = h('button', { type: 'button', class: 'button secondary' }, u.is_admin ? 'Remove admin' : 'Make admin');
  promote.addEventListener('click', () => act(promote, () => api.post(`/api/v1/admin/users/${encodeURIComponent(u.id)}/${u.is_admin ? 'demote' : 'promote'}`, {}), 'Role changed.'));
  const premiumActive = u.premium && u.premium.active;
  const premium = h('button', { type: 'button', class: 'button secondary' }, premiumActive ? 'Revoke premium' : 'Grant 30 days of premium');
  premium.addEventListener('click', () => act(premium, () => premiumActive
    ? api.delete(`/api/v1/admin/users/${encodeURIComponent(u.id)}/premium`, {})
    : api.post(`/api/v1/admin/users/${encodeURIComponent(u.id)}/premium`, { days: 30 }), 'Premium changed.'));
  const remove = h('button', { type: 'button', class: 'button danger' }, 'Delete user');
  remove.addEventListener('click', async () => {
    if (!await confirmDialog({ title: `Delete ${u.email}?`, message: 'The account and everything it owns are deleted. This cannot be undone.', confirmLabel: 'Delete', danger: true })) return;
    act(remove, () => api.delete(`/api/v1/admin/users/${encodeURIComponent(u.id)}`, {}), 'User deleted.');
  });
  const facts = [
    ['Email', u.email], ['Username', u.username || '—'], ['Verified', u.verified ? 'Yes' : 'No'], ['Admin', u.is_admin ? 'Yes' : 'No'],
    ['Premium', premiumActive ? `until ${formatDate(u.premium.until)}` : 'No'],
    u.quota ? ['Quota', `${u.quota.used} of ${u.quota.limit} this ${u.quota.period}`] : null,
    ['Joined', formatDateTime(u.created_at)],
  ].filter(Boolean);
  const prompts = user.recent_prompts || user.prompts || [];
  const body = h('div', { class: 'stack' },
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
    prompts.length ? h('div', null, h('h3', null, 'Recent prompts'), h('ul', { class: 'prompt-list' }, prompts.slice(0, 10).map((p) => h('li', null, typeof p === 'string' ? p : p.prompt)))) : null,
    h('div', { class: 'button-row' }, promote, premium, remove), error);
  const { dialog } = openDialog({ title: u.email, body });
}
