// Account (profile, plan and subscription, usage, password, deletion) and API keys. Parts whose API is
// not deployed yet (nginx answers 404 not_found) say so instead of failing.
import { api, session } from '../api.js';
import {
  busy, clearErrors, confirmDialog, field, formError, formatDate, formatDateTime, h, openDialog, showError, svg, toast,
} from '../dom.js';

const PASSWORD_FIELDS = {
  password_too_short: 'new', password_too_long: 'new', password_too_common: 'new', invalid_password: 'new', invalid_credentials: 'current',
};

function unavailable(what) {
  return h('p', { class: 'notice' }, `${what} not available yet. It will appear here as soon as it is ready.`);
}

function sectionCard(id, title, ...content) {
  return h('section', { class: 'card account-section', id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...content);
}

export async function account({ root, navigate }) {
  let profile;
  try {
    profile = await api.get('/api/v1/profile');
  } catch (error) {
    root.append(h('section', { class: 'page narrow' }, h('h1', null, 'Account'), h('p', { class: 'form-error', role: 'alert' }, error.message)));
    return;
  }

  // ---- profile
  const usernameForm = h('form', { class: 'inline-form', novalidate: true },
    field({ label: 'Username', name: 'username', autocomplete: 'username', value: profile.username || '', maxlength: 32, hint: '3 to 32 letters, digits, dots, dashes or underscores.' }),
    h('button', { type: 'submit', class: 'button primary' }, 'Save'),
    formError());
  usernameForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(usernameForm);
    try {
      const updated = await busy(usernameForm.querySelector('[type=submit]'), () => api.patch('/api/v1/profile', { username: usernameForm.username.value.trim() }), 'Saving…');
      session.update({ username: updated.username });
      toast('Username saved.');
    } catch (error) {
      showError(usernameForm, error, { invalid_username: 'username', username_taken: 'username', invalid_field: 'username' });
    }
  });
  const profileSection = sectionCard('profile', 'Profile',
    h('dl', { class: 'facts' },
      h('dt', null, 'Email'), h('dd', null, profile.email),
      h('dt', null, 'Member since'), h('dd', null, formatDate(profile.created_at)),
      profile.is_admin ? [h('dt', null, 'Role'), h('dd', null, 'Administrator')] : null),
    usernameForm);

  // ---- plan, quota and subscription
  const { used, limit, period, renews_at: renews } = profile.quota;
  const premium = profile.premium || { active: false, until: null };
  const planBody = h('div', { class: 'stack' },
    h('div', { class: 'plan-row' },
      h('div', null,
        h('p', { class: 'plan-name' }, premium.active ? 'Premium' : 'Free', premium.active ? h('span', { class: 'badge premium' }, 'Active') : null),
        h('p', { class: 'muted' }, premium.active && premium.until
          ? `Premium until ${formatDate(premium.until)}.`
          : (premium.until ? `Premium ended on ${formatDate(premium.until)}.` : 'A daily allowance of images, with upscaling and repainting.'))),
      h('div', { class: 'quota-box' },
        h('p', { class: 'big-number' }, String(Math.max(0, limit - used)), h('span', { class: 'muted' }, ` / ${limit}`)),
        h('p', { class: 'muted' }, `left ${period === 'day' ? 'today' : 'this month'}, renews ${formatDateTime(renews)}`))));
  const subscription = h('div', { class: 'subscription stack' }, h('p', { class: 'muted' }, 'Checking your subscription…'));
  planBody.append(subscription);
  const planSection = sectionCard('plan', 'Plan and subscription', planBody);

  // ---- usage
  const usage = h('div', { class: 'usage' }, h('p', { class: 'muted' }, 'Loading usage…'));
  const usageSection = sectionCard('usage', 'Usage', usage);

  // ---- password
  const passwordForm = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Current password', name: 'current', type: 'password', autocomplete: 'current-password', required: true }),
    field({ label: 'New password', name: 'new', type: 'password', autocomplete: 'new-password', required: true, hint: 'At least 8 characters and hard to guess. Your other devices are logged out.' }),
    formError(),
    h('div', null, h('button', { type: 'submit', class: 'button primary' }, 'Change password')));
  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(passwordForm);
    try {
      await busy(passwordForm.querySelector('[type=submit]'), () => api.post('/api/v1/profile/password', {
        current: passwordForm.current.value, new: passwordForm.new.value,
      }), 'Saving…');
      passwordForm.reset();
      toast('Password changed. Other devices were logged out.');
    } catch (error) {
      showError(passwordForm, error, PASSWORD_FIELDS);
    }
  });
  const passwordSection = sectionCard('password', 'Password', passwordForm);

  // ---- delete account
  const deleteForm = h('form', { class: 'stack', novalidate: true },
    h('p', null, 'Deleting your account removes your images, videos, API keys and subscription data for good. This cannot be undone.'),
    field({ label: 'Your password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    formError(),
    h('div', null, h('button', { type: 'submit', class: 'button danger' }, 'Delete my account')));
  deleteForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(deleteForm);
    if (!deleteForm.password.value) { showError(deleteForm, { code: 'x', message: 'Enter your password to confirm.' }, { x: 'password' }); return; }
    const sure = await confirmDialog({ title: 'Delete your account?', message: `The account ${profile.email} and everything in it will be deleted now.`, confirmLabel: 'Delete everything', danger: true });
    if (!sure) return;
    try {
      await busy(deleteForm.querySelector('[type=submit]'), () => api.delete('/api/v1/profile', { password: deleteForm.password.value }), 'Deleting…');
      session.set(null, null);
      toast('Your account was deleted. Goodbye!');
      navigate('/', { replace: true });
    } catch (error) {
      showError(deleteForm, error, { invalid_credentials: 'password' });
    }
  });
  const dangerSection = sectionCard('delete', 'Delete account', deleteForm);
  dangerSection.classList.add('danger-zone');

  root.append(h('section', { class: 'page account' },
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Account'), h('p', { class: 'muted' }, profile.email))),
    h('div', { class: 'account-grid' }, profileSection, planSection, usageSection, passwordSection, dangerSection)));

  loadSubscription(subscription, profile);
  loadUsage(usage);
}

// ---- subscription (Razorpay Checkout) --------------------------------------------------------------

async function loadSubscription(holder, profile) {
  let plans;
  let current;
  try {
    [plans, current] = await Promise.all([api.get('/api/v1/plans'), api.get('/api/v1/subscription')]);
  } catch (error) {
    holder.replaceChildren(error.unavailable ? unavailable('Subscribing online is') : h('p', { class: 'error-text' }, error.message));
    return;
  }
  const sub = current && (current.subscription !== undefined ? current.subscription : current);
  const planList = Array.isArray(plans) ? plans : (plans && (plans.items || plans.plans)) || [];
  holder.replaceChildren();
  if (sub && sub.status && !['cancelled', 'canceled', 'expired', 'completed'].includes(sub.status)) {
    const end = sub.current_period_end || sub.current_end || sub.ends_at || sub.period_end;
    const cancel = h('button', { type: 'button', class: 'button secondary' }, 'Cancel subscription');
    const error = formError();
    holder.append(
      h('p', null, `Subscription: ${sub.status}`, end ? ` · current period ends ${formatDate(end)}` : ''),
      sub.cancel_at_period_end ? h('p', { class: 'muted' }, 'It will not renew; premium stays until the end of the period.') : h('div', { class: 'field-host' }, cancel, error));
    cancel.addEventListener('click', async () => {
      const sure = await confirmDialog({ title: 'Cancel your subscription?', message: 'Premium stays active until the end of the period you paid for; it is not renewed after that.', confirmLabel: 'Cancel subscription', danger: true });
      if (!sure) return;
      try {
        await busy(cancel, () => api.post('/api/v1/subscription/cancel', {}));
        toast('Your subscription will end at the end of this period.');
        loadSubscription(holder, profile);
      } catch (failure) {
        showError(holder, failure, {});
      }
    });
    return;
  }
  if (planList.length === 0) {
    holder.append(h('p', { class: 'muted' }, 'No plans are offered right now.'));
    return;
  }
  planList.forEach((plan) => {
    const subscribe = h('button', { type: 'button', class: 'button primary' }, profile.premium.active ? 'Subscribe to renew' : 'Go Premium');
    const error = formError();
    const price = plan.amount !== undefined ? new Intl.NumberFormat(undefined, { style: 'currency', currency: plan.currency || 'INR' }).format(plan.amount / 100) : '';
    holder.append(h('div', { class: 'plan-offer' },
      h('div', null,
        h('p', { class: 'plan-name' }, plan.name || 'Premium'),
        h('p', { class: 'muted' }, [price, plan.period || plan.interval ? `per ${plan.period || plan.interval}` : ''].filter(Boolean).join(' '),
          plan.monthly_quota || plan.quota ? ` · ${plan.monthly_quota || plan.quota} credits a month, and video` : '')),
      h('div', { class: 'field-host' }, subscribe, error)));
    subscribe.addEventListener('click', () => startCheckout(plan, subscribe, holder, profile));
  });
}

function loadCheckoutScript() {
  if (window.Razorpay) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = 'https://checkout.razorpay.com/v1/checkout.js';
    script.onload = () => resolve();
    script.onerror = () => reject(new Error('The payment window could not be loaded. Check your connection or blockers and try again.'));
    document.head.append(script);
  });
}

async function startCheckout(plan, button, holder, profile) {
  clearErrors(holder);
  try {
    const created = await busy(button, () => api.post('/api/v1/subscription', { plan_id: plan.id }), 'Starting…');
    await loadCheckoutScript();
    const checkout = new window.Razorpay({
      key: created.key_id || created.key,
      subscription_id: created.subscription_id || created.id,
      name: 'Atelier',
      description: plan.name || 'Atelier Premium',
      prefill: { email: profile.email },
      theme: { color: '#6a5af9' },
      handler: async (response) => {
        try {
          await api.post('/api/v1/subscription/verify', {
            razorpay_payment_id: response.razorpay_payment_id,
            razorpay_subscription_id: response.razorpay_subscription_id,
            razorpay_signature: response.razorpay_signature,
          });
          toast('Welcome to Premium! Your payment is confirmed.');
          location.reload();
        } catch (error) {
          showError(holder, error, {});
        }
      },
    });
    checkout.on('payment.failed', (response) => {
      showError(holder, { message: (response.error && response.error.description) || 'The payment failed; nothing was charged.' }, {});
    });
    checkout.open();
  } catch (error) {
    showError(holder, error, {});
  }
}

// ---- usage chart (inline SVG) ----------------------------------------------------------------------

async function loadUsage(holder) {
  let data;
  try {
    data = await api.get('/api/v1/usage');
  } catch (error) {
    holder.replaceChildren(error.unavailable ? unavailable('The usage chart is') : h('p', { class: 'error-text' }, error.message));
    return;
  }
  const days = (data && data.days) || [];
  holder.replaceChildren(usageChart(days));
}

export function usageChart(days) {
  if (days.length === 0) return h('p', { class: 'muted' }, 'No API calls in this period yet.');
  const width = 600;
  const height = 180;
  const pad = { top: 12, right: 8, bottom: 24, left: 32 };
  const max = Math.max(1, ...days.map((d) => d.count));
  const step = (width - pad.left - pad.right) / days.length;
  const bar = Math.max(2, step * 0.7);
  const y = (value) => pad.top + (height - pad.top - pad.bottom) * (1 - value / max);
  const total = days.reduce((sum, d) => sum + d.count, 0);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `API calls per day: ${total} in ${days.length} days, at most ${max} in a day` },
    svg('line', { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: 'axis' }),
    svg('text', { x: pad.left - 6, y: y(max) + 4, class: 'tick', 'text-anchor': 'end' }, String(max)),
    svg('text', { x: pad.left - 6, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '0'),
    days.map((d, i) => svg('rect', { x: pad.left + i * step + (step - bar) / 2, y: y(d.count), width: bar, height: Math.max(0, y(0) - y(d.count)), rx: 2, class: 'bar' },
      svg('title', null, `${d.day}: ${d.count}`))),
    [0, days.length - 1].map((i) => svg('text', { x: pad.left + i * step + step / 2, y: height - 6, class: 'tick', 'text-anchor': i === 0 ? 'start' : 'end' }, days[i].day)));
  const table = h('table', { class: 'visually-hidden' },
    h('caption', null, 'API calls per day'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col' }, 'Calls'))),
    h('tbody', null, days.map((d) => h('tr', null, h('td', null, d.day), h('td', null, String(d.count))))));
  return h('div', null, h('p', { class: 'muted' }, `${total} API call${total === 1 ? '' : 's'} in the last ${days.length} days.`), chart, table);
}

// ---- API keys ----------------------------------------------------------------------------------------

export async function keys({ root }) {
  const list = h('div', { class: 'keys-list' }, h('p', { class: 'muted' }, 'Loading your keys…'));
  const form = h('form', { class: 'inline-form', novalidate: true },
    field({ label: 'New key name', name: 'name', maxlength: 64, placeholder: 'e.g. My render script', required: true }),
    h('button', { type: 'submit', class: 'button primary' }, 'Create key'),
    formError());
  const createCard = h('section', { class: 'card', 'aria-labelledby': 'new-key-title' }, h('h2', { id: 'new-key-title' }, 'Create a key'), form);
  root.append(h('section', { class: 'page narrow-wide' },
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'API keys'),
      h('p', { class: 'muted' }, 'Programs use Atelier with a key: send it as ', h('code', null, 'Authorization: Bearer <key>'), '. Calls count against your own quota.'))),
    createCard,
    h('section', { class: 'card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Your keys'), list)));

  async function load() {
    try {
      const data = await api.get('/api/v1/keys');
      const items = Array.isArray(data) ? data : data.items || data.keys || [];
      if (items.length === 0) { list.replaceChildren(h('p', { class: 'muted' }, 'You have no API keys yet.')); return; }
      list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Name', 'Key', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((key) => {
          const revoke = h('button', { type: 'button', class: 'button danger small' }, 'Revoke');
          revoke.addEventListener('click', async () => {
            const sure = await confirmDialog({ title: `Revoke “${key.name}”?`, message: 'Programs using this key stop working at once. This cannot be undone.', confirmLabel: 'Revoke', danger: true });
            if (!sure) return;
            try {
              await api.delete(`/api/v1/keys/${encodeURIComponent(key.id)}`);
              toast('Key revoked.');
              load();
            } catch (error) { toast(error.message, 'error'); }
          });
          return h('tr', null,
            h('td', null, key.name),
            h('td', null, h('code', null, `${key.prefix || ''}…`)),
            h('td', null, key.created_at ? formatDate(key.created_at) : ''),
            h('td', null, key.last_used_at ? formatDateTime(key.last_used_at) : 'Never'),
            h('td', { class: 'actions' }, revoke));
        })))));
    } catch (error) {
      if (error.unavailable) {
        createCard.hidden = true;
        list.replaceChildren(unavailable('API keys are'));
        return;
      }
      list.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const name = form.name.value.trim();
    if (!name) { showError(form, { code: 'invalid_name', message: 'Give the key a name, so you know where it is used.' }, { invalid_name: 'name' }); return; }
    try {
      const key = await busy(form.querySelector('[type=submit]'), () => api.post('/api/v1/keys', { name }), 'Creating…');
      form.reset();
      showSecret(key);
      load();
    } catch (error) {
      showError(form, error, { invalid_name: 'name', too_many_keys: 'name' });
    }
  });

  load();
}

function showSecret(key) {
  const secret = h('input', { type: 'text', readonly: true, value: key.secret, class: 'secret', 'aria-label': 'The new API key', id: 'new-secret' });
  const copy = h('button', { type: 'button', class: 'button primary' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(key.secret);
      copy.textContent = 'Copied';
    } catch {
      secret.select();
      copy.textContent = 'Press Ctrl+C to copy';
    }
  });
  const { dialog } = openDialog({
    title: `Your key “${key.name}”`,
    body: h('div', { class: 'stack' },
      h('p', null, 'Copy it now: this is the only time it is shown. Store it like a password.'),
      h('div', { class: 'secret-row' }, secret, copy)),
    actions: [h('button', { type: 'button', class: 'button secondary', onclick: () => dialog.close('done') }, 'Done')],
  });
  secret.select();
}
