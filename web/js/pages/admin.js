// The admin dashboard, for administrators only (the API re-checks every request): the users table with
// search, filters, sort and "Load more"; one user's detail with their standing, subscription, payments,
// usage, keys, sessions and generation history, and the actions on them (promote or demote, premium,
// quota override, log out everywhere, delete), each confirmed and each error shown beside its control;
// the jobs that are stuck, with a hand reconcile; the audit log; the service's figures.
//
//   /admin              users           /admin/user?id=…   one user
//   /admin/jobs         stuck jobs      /admin/audit       audit log       /admin/stats   figures
import { api, session } from '../api.js';
import {
  busy, clearErrors, confirmDialog, field, formError, formatDate, formatDateTime, h, openDialog, showError, toast,
} from '../dom.js';
import { formatMoney, usageChart } from './account.js';

const enc = encodeURIComponent;

const TABS = [['/admin', 'Users'], ['/admin/jobs', 'Stuck jobs'], ['/admin/audit', 'Audit log'], ['/admin/stats', 'Figures']];

export const ACTION_LABELS = {
  create_admin: 'Created admin',
  promote_admin: 'Made admin',
  demote_admin: 'Removed admin',
  grant_premium: 'Granted premium',
  revoke_premium: 'Revoked premium',
  set_quota_override: 'Set quota override',
  revoke_sessions: 'Logged out everywhere',
  delete_user: 'Deleted user',
  reconcile_generation: 'Reconciled a job',
};

// ---- the frame every admin page shares ------------------------------------------------------------------

function refusal(message) {
  return h('section', { class: 'page narrow admin-refusal' },
    h('h1', null, 'Administrators only'),
    h('p', { class: 'notice', role: 'alert' }, message || 'This page is for administrators. Your account cannot open it.'),
    h('p', null, h('a', { class: 'button secondary', href: '/create' }, 'Back to the studio')));
}

/**
 * The admin page frame: heading, section tabs and a body; null (with the refusal shown) for anyone who
 * is not an admin. `refuse(error)` replaces the page with the refusal when the API says 403.
 */
function frame(root, current, title, intro) {
  if (!session.user || !session.user.is_admin) {
    root.append(refusal());
    return null;
  }
  const body = h('div', { class: 'admin-body stack' });
  const page = h('section', { class: 'page admin' },
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, title), intro ? h('p', { class: 'muted' }, intro) : null)),
    h('nav', { class: 'admin-tabs', 'aria-label': 'Admin sections' },
      TABS.map(([path, text]) => h('a', { href: path, class: 'admin-tab', 'aria-current': path === current ? 'page' : null }, text))),
    body);
  root.append(page);
  const refuse = (error) => {
    if (error && error.status === 403 && error.code === 'admin_required') {
      page.replaceWith(refusal(error.message));
      return true;
    }
    return false;
  };
  return { page, body, refuse };
}

/** A table that becomes a list of labelled cards on a phone: every cell carries its column's label. */
function dataTable(columns, items, { caption, className } = {}) {
  const tbody = h('tbody');
  const table = h('table', { class: ['table', 'stacked', className] },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    tbody);
  const add = (list) => tbody.append(...list.map((item) => h('tr', null,
    columns.map((c) => h('td', { 'data-label': c.label, class: c.className }, c.cell(item))))));
  add(items);
  return { table: h('div', { class: 'table-wrap' }, table), tbody, add };
}

function badges(user) {
  return [
    user.is_admin ? h('span', { class: 'badge admin' }, 'Admin') : null,
    user.premium && user.premium.active ? h('span', { class: 'badge premium' }, 'Premium') : null,
    user.verified ? null : h('span', { class: 'badge warn' }, 'Unverified'),
  ].filter(Boolean);
}

function quotaText(quota) {
  if (!quota) return '—';
  return `${quota.used} of ${quota.limit} this ${quota.period}`;
}

function errorLine(error) {
  return h('p', { class: 'form-error', role: 'alert' }, error.message);
}

// ---- users -------------------------------------------------------------------------------------------------

const FLAG_FILTERS = [
  { name: 'premium', label: 'Premium', options: [['', 'Anyone'], ['true', 'Premium'], ['false', 'Not premium']] },
  { name: 'admin', label: 'Role', options: [['', 'Anyone'], ['true', 'Admins'], ['false', 'Not admins']] },
  { name: 'verified', label: 'Email', options: [['', 'Anyone'], ['true', 'Verified'], ['false', 'Unverified']] },
];

export async function admin({ root, params }) {
  const ui = frame(root, '/admin', 'Admin', 'Find an account to see its details and act on it.');
  if (!ui) return;
  const flag = (name) => (['true', 'false'].includes(params.get(name)) ? params.get(name) : '');
  const search = h('form', { class: 'card admin-search', role: 'search', 'aria-label': 'Search users', novalidate: true },
    field({ label: 'Email or username', name: 'q', type: 'search', value: params.get('q') || '', placeholder: 'Part of an email or a username', wide: true }),
    FLAG_FILTERS.map((f) => field({ label: f.label, name: f.name, control: 'select', options: f.options, value: flag(f.name) })),
    field({ label: 'Order', name: 'sort', control: 'select', options: [['created_desc', 'Newest first'], ['created_asc', 'Oldest first']], value: params.get('sort') === 'created_asc' ? 'created_asc' : 'created_desc' }),
    h('div', { class: 'search-actions' }, h('button', { type: 'submit', class: 'button primary' }, 'Search')),
    formError());
  const summary = h('p', { class: 'muted results-summary', role: 'status' });
  const results = h('div', { class: 'results-host' });
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more');
  const moreError = formError();
  ui.body.append(search,
    h('section', { class: 'card', 'aria-labelledby': 'users-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'users-title' }, 'Users'), summary),
      results, h('div', { class: 'load-more field-host' }, more, moreError)));

  const columns = [
    { label: 'User', className: 'wrap', cell: (u) => [h('a', { href: `/admin/user?id=${enc(u.id)}`, class: 'user-link' }, u.email), u.username ? h('span', { class: 'muted sub' }, `@${u.username}`) : null] },
    { label: 'Standing', cell: (u) => { const b = badges(u); return b.length ? b : h('span', { class: 'muted' }, 'Free'); } },
    { label: 'Quota', cell: (u) => quotaText(u.quota) },
    { label: 'Joined', cell: (u) => formatDate(u.created_at) },
    { label: 'Last login', cell: (u) => (u.last_login_at ? formatDateTime(u.last_login_at) : 'Never') },
  ];
  let cursor = null;
  let table = null;
  let shown = 0;
  let ticket = 0;

  function query() {
    const q = new URLSearchParams();
    const text = search.q.value.trim();
    if (text) q.set('q', text);
    FLAG_FILTERS.forEach((f) => { if (search[f.name].value) q.set(f.name, search[f.name].value); });
    if (search.sort.value !== 'created_desc') q.set('sort', search.sort.value);
    return q;
  }

  async function load(reset) {
    const mine = ++ticket;
    const q = query();
    if (reset) history.replaceState(null, '', `/admin${q.toString() ? `?${q}` : ''}`);
    q.set('limit', '25');
    if (!reset && cursor) q.set('cursor', cursor);
    clearErrors(search);
    moreError.hidden = true;
    let data;
    try {
      data = await api.get(`/api/v1/admin/users?${q}`);
    } catch (error) {
      if (mine !== ticket || ui.refuse(error)) return;
      if (reset) {
        showError(search, error, { invalid_filter: null, invalid_sort: 'sort' });
        results.replaceChildren();
        summary.textContent = '';
        more.hidden = true;
      } else {
        showError(more.parentElement, error, {});
      }
      return;
    }
    if (mine !== ticket) return;
    if (reset || !table) {
      shown = 0;
      table = dataTable(columns, [], { caption: 'Users', className: 'users-table' });
      results.replaceChildren(table.table);
    }
    table.add(data.items);
    shown += data.items.length;
    cursor = data.next_cursor || null;
    more.hidden = !cursor;
    if (shown === 0) results.replaceChildren(h('p', { class: 'muted empty-line' }, 'No users match.'));
    summary.textContent = `${shown} shown${cursor ? ', more to load' : ''}`;
  }

  search.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(search.querySelector('[type=submit]'), () => load(true));
  });
  search.addEventListener('change', (event) => { if (event.target.tagName === 'SELECT') load(true); });
  more.addEventListener('click', () => busy(more, () => load(false), 'Loading…'));
  await load(true);
}

// ---- one user --------------------------------------------------------------------------------------------

export async function adminUser({ root, params, navigate }) {
  const ui = frame(root, null, 'User', null);
  if (!ui) return;
  const id = params.get('id') || '';
  const heading = ui.page.querySelector('h1');
  const intro = h('p', { class: 'muted' }, h('a', { href: '/admin' }, '← All users'));
  heading.after(intro);
  if (!id) {
    ui.body.append(h('p', { class: 'notice' }, 'No user was chosen. Pick one from the users table.'));
    return;
  }

  async function fetchDetail(historyCursor) {
    const q = historyCursor ? `?history_cursor=${enc(historyCursor)}` : '';
    return api.get(`/api/v1/admin/users/${enc(id)}${q}`);
  }

  async function reload() {
    let detail;
    try {
      detail = await fetchDetail();
    } catch (error) {
      if (ui.refuse(error)) return;
      ui.body.replaceChildren(errorLine(error));
      return;
    }
    render(detail);
  }

  function render(detail) {
    const u = detail.user;
    heading.textContent = u.email;
    heading.classList.add('break');
    document.title = `${u.email} · Admin · Atelier`;
    const self = session.user && session.user.id === u.id;
    ui.body.replaceChildren(
      h('div', { class: 'user-badges' }, badges(u), self ? h('span', { class: 'badge' }, 'You') : null),
      h('div', { class: 'admin-grid' },
        profileCard(u, detail),
        actionsCard(u, self, detail.active_sessions),
        subscriptionCard(detail),
        usageCard(detail),
        keysCard(detail),
        historyCard(detail)));
  }

  // -- profile
  function profileCard(u, detail) {
    const facts = [
      ['Email', u.email],
      ['Username', u.username || '—'],
      ['User id', h('code', null, u.id)],
      ['Email verified', u.verified ? 'Yes' : 'No'],
      ['Role', u.is_admin ? 'Administrator' : 'Member'],
      ['Premium', u.premium.active ? `Until ${formatDateTime(u.premium.until)}` : (u.premium.until ? `Ended ${formatDateTime(u.premium.until)}` : 'No')],
      ['Quota', `${quotaText(u.quota)}; renews ${formatDateTime(u.quota.renews_at)}`],
      ['Active sessions', String(detail.active_sessions)],
      ['Joined', formatDateTime(u.created_at)],
      ['Last login', u.last_login_at ? formatDateTime(u.last_login_at) : 'Never'],
    ];
    return card('profile', 'Profile',
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      h('p', null, h('a', { href: `/admin/audit?user_id=${enc(u.id)}` }, 'Admin actions on this user')));
  }

  // -- actions
  function actionsCard(u, self, activeSessions) {
    const done = (message) => { toast(message); return reload(); };

    // Role
    const roleButton = h('button', { type: 'button', class: 'button secondary', name: 'role' }, u.is_admin ? 'Remove admin' : 'Make admin');
    const role = actionRow('Role', u.is_admin ? 'Administrator.' : 'Member, not an administrator.', roleButton);
    roleButton.addEventListener('click', async () => {
      clearErrors(role);
      if (u.is_admin) {
        const sure = await confirmDialog({ title: `Remove ${u.email} as admin?`, message: 'They lose the admin pages at once.', confirmLabel: 'Remove admin', danger: true });
        if (!sure) return;
        try {
          await busy(roleButton, () => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { is_admin: false }), 'Saving…');
          await done(`${u.email} is no longer an admin.`);
        } catch (error) { if (!ui.refuse(error)) showError(role, error, {}); }
        return;
      }
      const promoted = await passwordDialog({
        title: `Make ${u.email} an admin?`,
        message: 'Admins can see every account and act on it. Confirm with your own password.',
        confirmLabel: 'Make admin',
        submit: (password) => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { is_admin: true, password }),
      });
      if (promoted) await done(`${u.email} is now an admin.`);
    });

    // Premium
    const premiumForm = h('form', { class: 'inline-form compact', novalidate: true },
      field({ label: 'Premium until (end of that day)', name: 'premium_until', type: 'date', value: isoDay(addDays(new Date(), 30)), min: isoDay(new Date()), required: true }),
      h('button', { type: 'submit', class: 'button secondary' }, 'Grant premium'),
      u.premium.active ? h('button', { type: 'button', class: 'button secondary', name: 'revoke_premium' }, 'Revoke premium') : null,
      formError());
    const premium = actionBlock('Premium', u.premium.active
      ? `Premium until ${formatDateTime(u.premium.until)}. A new date replaces it.`
      : 'Not premium. A grant gives the monthly allowance and video without a subscription.', premiumForm);
    premiumForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(premiumForm);
      const value = premiumForm.premium_until.value;
      if (!value) { showError(premiumForm, { code: 'x', message: 'Choose the last day of premium.' }, { x: 'premium_until' }); return; }
      const until = endOfDay(value);
      if (until <= new Date()) { showError(premiumForm, { code: 'x', message: 'Choose a day that has not ended yet.' }, { x: 'premium_until' }); return; }
      const sure = await confirmDialog({ title: `Grant premium to ${u.email}?`, message: `Premium until the end of ${formatDate(until)}.`, confirmLabel: 'Grant premium' });
      if (!sure) return;
      try {
        await busy(premiumForm.querySelector('[type=submit]'), () => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { premium_until: until.toISOString().replace(/\.\d+Z$/, 'Z') }), 'Saving…');
        await done(`${u.email} is premium until ${formatDate(until)}.`);
      } catch (error) { if (!ui.refuse(error)) showError(premiumForm, error, { invalid_field: 'premium_until', invalid_json: 'premium_until' }); }
    });
    const revoke = premiumForm.querySelector('[name=revoke_premium]');
    if (revoke) {
      revoke.addEventListener('click', async () => {
        clearErrors(premiumForm);
        const sure = await confirmDialog({ title: `Revoke ${u.email}'s premium?`, message: 'Premium ends now. A paid subscription is not cancelled by this; its next payment grants premium again.', confirmLabel: 'Revoke premium', danger: true });
        if (!sure) return;
        try {
          await busy(revoke, () => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { premium_until: null }), 'Saving…');
          await done(`${u.email} is no longer premium.`);
        } catch (error) { if (!ui.refuse(error)) showError(premiumForm, error, {}); }
      });
    }

    // Quota override
    const quotaForm = h('form', { class: 'inline-form compact', novalidate: true },
      field({ label: `Images per ${u.quota.period}`, name: 'quota_override', type: 'number', min: 0, max: 100000000, step: 1, inputmode: 'numeric', value: String(u.quota.limit), required: true }),
      h('button', { type: 'submit', class: 'button secondary' }, 'Set limit'),
      h('button', { type: 'button', class: 'button secondary', name: 'clear_override' }, 'Use the plan’s limit'),
      formError());
    const quota = actionBlock('Quota', `${quotaText(u.quota)}. An override replaces the plan’s limit until it is removed.`, quotaForm);
    quotaForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(quotaForm);
      const raw = quotaForm.quota_override.value.trim();
      const value = Number(raw);
      if (raw === '' || !Number.isInteger(value) || value < 0 || value > 100000000) {
        showError(quotaForm, { code: 'x', message: 'Enter a whole number from 0 to 100000000.' }, { x: 'quota_override' });
        return;
      }
      const sure = await confirmDialog({ title: `Set ${u.email}'s limit to ${value}?`, message: `${value} image${value === 1 ? '' : 's'} per period instead of the plan’s limit, until the override is removed.`, confirmLabel: 'Set limit' });
      if (!sure) return;
      try {
        await busy(quotaForm.querySelector('[type=submit]'), () => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { quota_override: value }), 'Saving…');
        await done(`The limit is now ${value}.`);
      } catch (error) { if (!ui.refuse(error)) showError(quotaForm, error, { invalid_field: 'quota_override' }); }
    });
    const clear = quotaForm.querySelector('[name=clear_override]');
    clear.addEventListener('click', async () => {
      clearErrors(quotaForm);
      const sure = await confirmDialog({ title: 'Remove the quota override?', message: `${u.email} gets the plan’s own limit again.`, confirmLabel: 'Remove override' });
      if (!sure) return;
      try {
        await busy(clear, () => api.patch(`/api/v1/admin/users/${enc(u.id)}`, { quota_override: null }), 'Saving…');
        await done('The plan’s limit applies again.');
      } catch (error) { if (!ui.refuse(error)) showError(quotaForm, error, {}); }
    });

    // Sessions
    const sessionsText = (n) => `${n} active session${n === 1 ? '' : 's'}${self ? ', this one included' : ''}.`;
    const logout = h('button', { type: 'button', class: 'button secondary', name: 'revoke_sessions', disabled: activeSessions === 0 }, 'Log out everywhere');
    const sessions = actionRow('Sessions', sessionsText(activeSessions), logout);
    logout.addEventListener('click', async () => {
      clearErrors(sessions);
      const sure = await confirmDialog({ title: `Log ${u.email} out everywhere?`, message: self ? 'Every session of yours ends, this one too: you will need to log in again.' : 'Every browser session of theirs ends now. API keys keep working.', confirmLabel: 'Log out everywhere', danger: true });
      if (!sure) return;
      try {
        await busy(logout, () => api.delete(`/api/v1/admin/users/${enc(u.id)}/sessions`), 'Logging out…');
        const count = await api.get(`/api/v1/admin/users/${enc(u.id)}/sessions`);
        sessions.querySelector('.action-text').textContent = sessionsText(count.active_sessions);
        logout.disabled = count.active_sessions === 0;
        toast(`${u.email} is logged out everywhere.`);
      } catch (error) { if (!ui.refuse(error)) showError(sessions, error, {}); }
    });

    // Delete
    let removal;
    if (self) {
      removal = actionBlock('Delete', 'You cannot delete your own account here; use your account page.', null);
    } else {
      const remove = h('button', { type: 'button', class: 'button danger', name: 'delete_user' }, 'Delete user…');
      removal = actionRow('Delete', 'The account and everything it owns go for good.', remove);
      remove.addEventListener('click', async () => {
        if (await deleteDialog(u)) {
          toast(`${u.email} was deleted.`);
          navigate('/admin');
        }
      });
    }
    removal.classList.add('danger-line');
    return card('actions', 'Actions', role, premium, quota, sessions, removal);
  }

  // -- subscription and payments
  function subscriptionCard(detail) {
    const s = detail.subscription;
    const payments = detail.payments || [];
    const content = [];
    if (!s) {
      content.push(h('p', { class: 'muted' }, 'No subscription.'));
    } else {
      content.push(h('dl', { class: 'facts' },
        h('dt', null, 'Status'), h('dd', null, h('span', { class: ['status', `status-${s.status}`] }, s.status)),
        h('dt', null, 'Subscription'), h('dd', null, h('code', null, s.razorpay_subscription_id || s.id || '')),
        h('dt', null, 'Plan'), h('dd', null, s.plan_id || '—'),
        h('dt', null, 'Period'), h('dd', null, s.current_start || s.current_end ? `${formatDate(s.current_start) || '…'} – ${formatDate(s.current_end) || '…'}` : 'Not started'),
        h('dt', null, 'Renews'), h('dd', null, s.cancel_at_cycle_end ? 'No: cancelled at the end of the period' : 'Yes'),
        h('dt', null, 'Created'), h('dd', null, formatDateTime(s.created_at))));
    }
    content.push(h('h3', null, 'Payments'));
    content.push(payments.length === 0 ? h('p', { class: 'muted' }, 'No payments.') : dataTable([
      { label: 'Date', className: 'when', cell: (p) => formatDateTime(p.created_at) },
      { label: 'Amount', cell: (p) => formatMoney(p.amount, p.currency) },
      { label: 'Status', cell: (p) => p.status },
      { label: 'Payment', cell: (p) => h('code', null, p.razorpay_payment_id || p.id || '') },
    ], payments, { caption: 'Payments' }).table);
    return card('subscription', 'Subscription and payments', ...content);
  }

  // -- usage
  function usageCard(detail) {
    return card('usage', 'API calls, last 30 days', usageChart(detail.usage || []));
  }

  // -- API keys
  function keysCard(detail) {
    const keys = detail.api_keys || [];
    return card('keys', 'API keys', keys.length === 0 ? h('p', { class: 'muted' }, 'No API keys.') : dataTable([
      { label: 'Name', className: 'wrap', cell: (k) => k.name },
      { label: 'Key', cell: (k) => h('code', null, `${k.prefix}…`) },
      { label: 'Created', cell: (k) => formatDate(k.created_at) },
      { label: 'Last used', cell: (k) => (k.last_used_at ? formatDateTime(k.last_used_at) : 'Never') },
      { label: 'State', cell: (k) => (k.revoked ? h('span', { class: 'badge' }, `Revoked ${formatDate(k.revoked_at)}`) : h('span', { class: 'badge ok' }, 'Active')) },
    ], keys, { caption: 'API keys' }).table);
  }

  // -- generation history
  function historyCard(detail) {
    const section = card('history', 'History');
    section.classList.add('wide');
    const items = detail.history || [];
    if (items.length === 0) {
      section.append(h('p', { class: 'muted' }, 'No generations yet.'));
      return section;
    }
    const list = dataTable([
      { label: 'When', className: 'when', cell: (g) => formatDateTime(g.created_at) },
      { label: 'Task', cell: (g) => [g.task, h('span', { class: 'muted sub' }, g.model ? `${g.provider} · ${g.model}` : g.provider)] },
      { label: 'Status', cell: (g) => [h('span', { class: ['status', `status-${g.status}`] }, g.status), g.refunded ? h('span', { class: 'badge' }, 'refunded') : null] },
      { label: 'Prompt', className: 'prompt-cell', cell: (g) => promptText(g.prompt) },
      { label: 'Cost', cell: (g) => String(g.cost ?? '') },
      { label: 'Result', cell: (g) => [resultText(g), g.error ? h('span', { class: 'error-text sub' }, g.error) : null] },
    ], items, { caption: 'Generations, newest first', className: 'history-table' });
    let cursor = detail.history_next_cursor;
    const more = h('button', { type: 'button', class: 'button secondary', hidden: !cursor }, 'Load more');
    const host = h('div', { class: 'load-more field-host' }, more, formError());
    more.addEventListener('click', () => busy(more, async () => {
      clearErrors(host);
      try {
        const next = await fetchDetail(cursor);
        list.add(next.history || []);
        cursor = next.history_next_cursor;
        more.hidden = !cursor;
      } catch (error) { if (!ui.refuse(error)) showError(host, error, {}); }
    }, 'Loading…'));
    section.append(list.table, host);
    return section;
  }

  await reload();
}

/** A prompt (up to 2000 characters): the start, and the rest on request. */
function promptText(prompt) {
  if (!prompt) return h('span', { class: 'muted' }, '—');
  if (prompt.length <= 240) return prompt;
  return [`${prompt.slice(0, 240)}…`, h('details', { class: 'prompt-more' }, h('summary', null, 'The whole prompt'), h('p', null, prompt))];
}

function resultText(g) {
  const images = (g.image_ids || []).length;
  const videos = (g.video_ids || []).length;
  const parts = [];
  if (images) parts.push(`${images} image${images === 1 ? '' : 's'}`);
  if (videos) parts.push(`${videos} video${videos === 1 ? '' : 's'}`);
  return parts.length ? parts.join(', ') : (g.error ? '' : '—');
}

function card(id, title, ...content) {
  return h('section', { class: 'card admin-card stack', id: `user-${id}`, 'aria-labelledby': `user-${id}-title` },
    h('h2', { id: `user-${id}-title` }, title), ...content);
}

/** One action: its name, what it does now, its button, and its error line. */
function actionRow(title, text, button) {
  return h('div', { class: 'action field-host' },
    h('div', { class: 'action-head' },
      h('div', null, h('h3', null, title), h('p', { class: 'muted action-text' }, text)),
      button),
    formError());
}

function actionBlock(title, text, form) {
  return h('div', { class: 'action' }, h('h3', null, title), h('p', { class: 'muted action-text' }, text), form);
}

function addDays(date, days) {
  const d = new Date(date);
  d.setDate(d.getDate() + days);
  return d;
}

/** yyyy-mm-dd of a local date, as <input type=date> takes it. */
function isoDay(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The last second of a yyyy-mm-dd day in the admin's own time zone. */
function endOfDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d, 23, 59, 59);
}

/** Asks for the acting admin's password and runs `submit(password)`; true once it succeeded. */
function passwordDialog({ title, message, confirmLabel, submit }) {
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', null, message),
    field({ label: 'Your password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    formError(),
    h('div', { class: 'form-actions' },
      h('button', { type: 'button', class: 'button secondary', name: 'cancel' }, 'Cancel'),
      h('button', { type: 'submit', class: 'button primary' }, confirmLabel)));
  const { dialog, closed } = openDialog({ title, body: form, className: 'small' });
  let ok = false;
  form.cancel.addEventListener('click', () => dialog.close('cancel'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!form.password.value) { showError(form, { code: 'x', message: 'Enter your password to confirm.' }, { x: 'password' }); return; }
    try {
      await busy(form.querySelector('[type=submit]'), () => submit(form.password.value), 'Checking…');
      ok = true;
      dialog.close('ok');
    } catch (error) {
      showError(form, error, { reauthentication_required: 'password', invalid_credentials: 'password' });
    }
  });
  form.password.focus();
  return closed.then(() => ok);
}

/** Deleting a user: their email typed back and the admin's password. True once deleted. */
function deleteDialog(u) {
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', null, 'The account, its images, videos, API keys and sessions are deleted. This cannot be undone.'),
    field({ label: `Type ${u.email} to confirm`, name: 'confirm_email', type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', required: true }),
    field({ label: 'Your password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    formError(),
    h('div', { class: 'form-actions' },
      h('button', { type: 'button', class: 'button secondary', name: 'cancel' }, 'Cancel'),
      h('button', { type: 'submit', class: 'button danger' }, 'Delete user')));
  const { dialog, closed } = openDialog({ title: `Delete ${u.email}?`, body: form, className: 'small' });
  let ok = false;
  form.cancel.addEventListener('click', () => dialog.close('cancel'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!form.confirm_email.value.trim()) { showError(form, { code: 'x', message: 'Type the user’s email to confirm.' }, { x: 'confirm_email' }); return; }
    if (!form.password.value) { showError(form, { code: 'x', message: 'Enter your password to confirm.' }, { x: 'password' }); return; }
    try {
      await busy(form.querySelector('[type=submit]'), () => api.delete(`/api/v1/admin/users/${enc(u.id)}`, {
        confirm_email: form.confirm_email.value.trim(), password: form.password.value,
      }), 'Deleting…');
      ok = true;
      dialog.close('ok');
    } catch (error) {
      showError(form, error, { confirm_email_mismatch: 'confirm_email', reauthentication_required: 'password' });
    }
  });
  form.confirm_email.focus();
  return closed.then(() => ok);
}

// ---- stuck jobs --------------------------------------------------------------------------------------------

const WAITING_FOR = {
  webhook: 'Replicate’s webhook',
  copy: 'copying the finished result',
  throttled_start: 'a start (Replicate throttled it)',
  lost_create: 'a lost create answer',
  embedded: 'the embedded renderer (a crash mid-request?)',
};

const STEP_TEXT = {
  checked: 'Asked Replicate and applied its answer.',
  copied: 'Copied the finished result: the job succeeded.',
  copy_failed: 'Copying the result failed again; it is retried by the next maintenance run.',
  adopted: 'Found the prediction of the lost create answer and took it.',
  not_found: 'No prediction names this job yet; it waits for its timeout.',
  started: 'Started the throttled job at Replicate.',
  throttled: 'Replicate still throttles; the job stays queued.',
  timed_out: 'The job was past its timeout: stopped and refunded.',
  none: 'Nothing to do yet: the job is within its time.',
};

function ageText(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} days`;
}

const OLDER_THAN = [['', 'Longer than a job should take'], ['60', 'Open over a minute'], ['900', 'Open over 15 minutes'], ['3600', 'Open over an hour']];

/** Open generations older than a job of their kind should take, and reconciling one by hand. */
export async function adminJobs({ root, params }) {
  const ui = frame(root, '/admin/jobs', 'Stuck jobs',
    'Generations still open after longer than a job of their kind takes, with what the provider last said. Reconcile asks the provider now, as the maintenance run does.');
  if (!ui) return;
  const olderThan = OLDER_THAN.some(([v]) => v === params.get('older_than')) ? params.get('older_than') : '';
  const filter = h('form', { class: 'card admin-search', 'aria-label': 'Which jobs' },
    field({ label: 'Show', name: 'older_than', control: 'select', options: OLDER_THAN, value: olderThan }));
  const results = h('section', { class: 'card stuck-jobs', 'aria-label': 'Stuck jobs' }, h('p', { class: 'muted' }, 'Loading…'));
  ui.body.append(filter, results);
  filter.older_than.addEventListener('change', () => {
    const value = filter.older_than.value;
    history.replaceState(null, '', value ? `/admin/jobs?older_than=${enc(value)}` : '/admin/jobs');
    load();
  });
  const columns = [
    { label: 'Open for', className: 'when', cell: (j) => h('span', { title: formatDateTime(j.created_at) }, ageText(j.age_seconds)) },
    { label: 'User', className: 'wrap', cell: (j) => h('a', { href: `/admin/user?id=${enc(j.user.id)}` }, j.user.email) },
    { label: 'Job', className: 'wrap', cell: (j) => [h('strong', null, j.task), j.prompt ? h('span', { class: 'muted' }, ` ${j.prompt.length > 80 ? `${j.prompt.slice(0, 80)}…` : j.prompt}`) : null] },
    { label: 'Status', cell: (j) => h('span', { class: ['status', `status-${j.status}`] }, j.status) },
    { label: 'Provider said', className: 'wrap', cell: (j) => (j.provider === 'local' ? 'embedded renderer'
      : j.provider_status ? [h('span', { class: 'provider-status' }, j.provider_status), h('span', { class: 'muted' }, ` at ${formatDateTime(j.provider_checked_at)}`)]
        : h('span', { class: 'muted' }, 'nothing yet')) },
    { label: 'Waiting for', className: 'wrap', cell: (j) => [WAITING_FOR[j.waiting_for] || j.waiting_for,
      h('span', { class: 'muted' }, new Date(j.times_out_at) <= new Date()
        ? ' · past its timeout: the next maintenance run stops and refunds it'
        : ` · stopped and refunded at ${formatDateTime(j.times_out_at)} if still open`)] },
    { label: '', cell: (j) => {
      const run = h('button', { type: 'button', class: 'button secondary small', 'data-job': j.id }, 'Reconcile');
      run.addEventListener('click', () => busy(run, () => reconcile(j, run), 'Asking…'));
      return run;
    } },
  ];
  async function reconcile(job, run) {
    let answer;
    try {
      answer = await api.post(`/api/v1/admin/generations/${enc(job.id)}/reconcile`);
    } catch (error) {
      if (ui.refuse(error)) return;
      run.closest('td').append(errorLine(error));
      return;
    }
    toast(`${STEP_TEXT[answer.step] || answer.step} Status: ${answer.generation.status}.`, answer.generation.status === 'failed' ? 'error' : 'info');
    await load();
  }
  async function load() {
    const q = new URLSearchParams({ limit: '100' });
    if (filter.older_than.value) q.set('older_than', filter.older_than.value);
    let data;
    try {
      data = await api.get(`/api/v1/admin/generations/stuck?${q}`);
    } catch (error) {
      if (!ui.refuse(error)) results.replaceChildren(errorLine(error));
      return;
    }
    if (data.items.length === 0) {
      results.replaceChildren(h('p', { class: 'muted empty-stuck' }, 'No stuck job: every open generation is within its expected time.'));
      return;
    }
    const shown = data.total > data.items.length ? `The oldest ${data.items.length} of ${data.total} stuck jobs.` : `${data.total} stuck job${data.total === 1 ? '' : 's'}.`;
    results.replaceChildren(h('p', { class: 'muted' }, shown),
      dataTable(columns, data.items, { caption: 'Stuck jobs', className: 'stuck-table' }).table);
  }
  await load();
}

// ---- audit log ---------------------------------------------------------------------------------------------

function showValue(value) {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) return formatDateTime(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function describeChange(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  if (entry.action === 'delete_user') return 'Account deleted';
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return keys.map((k) => `${k.replace(/_/g, ' ')}: ${showValue(before[k])} → ${showValue(after[k])}`).join('; ');
}

export async function adminAudit({ root, params }) {
  const ui = frame(root, '/admin/audit', 'Audit log', 'Every admin action, newest first, from the admin pages and the operator command line.');
  if (!ui) return;
  const userID = params.get('user_id') || '';
  const filter = userID ? h('p', { class: 'notice' }, 'Showing the actions on one user. ', h('a', { href: '/admin/audit' }, 'Show all'), ' · ',
    h('a', { href: `/admin/user?id=${enc(userID)}` }, 'Open the user')) : null;
  const results = h('div', { class: 'results-host' }, h('p', { class: 'muted' }, 'Loading…'));
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more');
  const host = h('div', { class: 'load-more field-host' }, more, formError());
  ui.body.append(...[filter].filter(Boolean), h('section', { class: 'card', 'aria-label': 'Audit log entries' }, results, host));
  const columns = [
    { label: 'When', className: 'when', cell: (e) => formatDateTime(e.created_at) },
    { label: 'Admin', className: 'wrap', cell: (e) => (e.actor === 'cli' && !e.actor_id ? h('span', { class: 'badge' }, 'command line') : e.actor || '—') },
    { label: 'Action', cell: (e) => h('span', { class: 'audit-action', 'data-action': e.action }, ACTION_LABELS[e.action] || e.action) },
    { label: 'User', className: 'wrap', cell: (e) => (e.target_user_id && e.action !== 'delete_user'
      ? h('a', { href: `/admin/user?id=${enc(e.target_user_id)}` }, e.target_email || e.target_user_id)
      : e.target_email || '—') },
    { label: 'Change', className: 'change-cell', cell: (e) => describeChange(e) },
    { label: 'Request', cell: (e) => (e.request_id ? h('code', { class: 'request-id', title: e.request_id }, e.request_id.slice(0, 8)) : '—') },
  ];
  let cursor = null;
  let table = null;
  async function load() {
    const q = new URLSearchParams({ limit: '50' });
    if (cursor) q.set('cursor', cursor);
    if (userID) q.set('user_id', userID);
    clearErrors(host);
    let data;
    try {
      data = await api.get(`/api/v1/admin/audit?${q}`);
    } catch (error) {
      if (ui.refuse(error)) return;
      if (!table) results.replaceChildren(errorLine(error)); else showError(host, error, {});
      return;
    }
    if (!table) {
      if (data.items.length === 0) { results.replaceChildren(h('p', { class: 'muted' }, 'No admin actions yet.')); return; }
      table = dataTable(columns, [], { caption: 'Admin actions', className: 'audit-table' });
      results.replaceChildren(table.table);
    }
    table.add(data.items);
    cursor = data.next_cursor || null;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => busy(more, load, 'Loading…'));
  await load();
}

// ---- figures -----------------------------------------------------------------------------------------------

function stat(value, text) {
  return h('div', { class: 'stat' }, h('p', { class: 'big-number' }, value), h('p', { class: 'muted' }, text));
}

function byStatus(counts) {
  const entries = Object.entries(counts || {});
  if (entries.length === 0) return h('p', { class: 'muted' }, 'None.');
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return h('div', { class: 'stack' },
    h('p', { class: 'big-number' }, total.toLocaleString()),
    h('ul', { class: 'status-counts' }, entries.sort((a, b) => b[1] - a[1]).map(([status, n]) =>
      h('li', null, h('span', { class: ['status', `status-${status}`] }, status), ` ${n.toLocaleString()}`))));
}

export async function adminStats({ root }) {
  const ui = frame(root, '/admin/stats', 'Figures', 'The service at a glance.');
  if (!ui) return;
  let s;
  try {
    s = await api.get('/api/v1/admin/stats');
  } catch (error) {
    if (!ui.refuse(error)) ui.body.append(errorLine(error));
    return;
  }
  const n = (v) => Number(v || 0).toLocaleString();
  const amounts = Object.entries((s.payments_30_days && s.payments_30_days.amounts) || {});
  const group = (title, ...content) => h('section', { class: 'card stats-group', 'aria-label': title }, h('h2', null, title), ...content);
  ui.body.append(h('div', { class: 'stats-grid' },
    group('Users', h('div', { class: 'stats' },
      stat(n(s.users.total), 'Accounts'), stat(n(s.users.verified), 'Verified'),
      stat(n(s.users.premium), 'Premium now'), stat(n(s.users.admins), 'Admins'))),
    group('Money', h('div', { class: 'stats' },
      stat(n(s.active_subscriptions), 'Active subscriptions'),
      stat(n(s.payments_30_days && s.payments_30_days.count), 'Payments, 30 days'),
      amounts.length ? amounts.map(([currency, total]) => stat(formatMoney(total, currency), `Taken in ${currency}, 30 days`))
        : stat(formatMoney(0, 'INR'), 'Taken, 30 days'))),
    group('API', h('div', { class: 'stats' },
      stat(n(s.api_calls_today), 'API calls today'), stat(n(s.api_calls_30_days), 'API calls, 30 days'))),
    group('Generations today', byStatus(s.generations_today)),
    group('Generations, 7 days', byStatus(s.generations_7_days),
      h('p', { class: s.failed_generations_7_days ? 'error-text' : 'muted' }, `${n(s.failed_generations_7_days)} failed.`))));
  await webhookLog(ui.body);
}

/** The last webhook deliveries with their outcome, and what the server warns about them. */
async function webhookLog(body) {
  const section = h('section', { class: 'card webhook-log', 'aria-labelledby': 'webhooks-title' },
    h('h2', { id: 'webhooks-title' }, 'Webhooks'));
  body.append(section);
  let log;
  try {
    log = await api.get('/api/v1/admin/webhooks?limit=20');
  } catch (error) {
    section.append(errorLine(error));
    return;
  }
  for (const warning of log.warnings) section.append(h('p', { class: 'notice warning', role: 'status' }, warning));
  if (log.items.length === 0) {
    section.append(h('p', { class: 'muted' }, 'No webhook delivery in the last week.'));
    return;
  }
  const columns = [
    { label: 'When', className: 'when', cell: (d) => formatDateTime(d.received_at) },
    { label: 'From', cell: (d) => (d.provider === 'razorpay' ? 'Razorpay' : 'Replicate') },
    { label: 'Outcome', cell: (d) => h('span', { class: ['status', d.status < 300 ? 'status-succeeded' : 'status-failed'] }, d.outcome.replaceAll('_', ' ')) },
    { label: 'Answer', cell: (d) => String(d.status) },
  ];
  section.append(dataTable(columns, log.items, { caption: 'Recent webhook deliveries', className: 'webhook-table' }).table);
}
