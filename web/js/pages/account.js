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
  const usageSection = sectionCard('usage', 'Usage', usage, h('p', { class: 'muted' }, 'API calls made with your keys. ', h('a', { href: '/keys' }, 'Manage your API keys')));

  // ---- password
  const passwordForm = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Current password', name: 'current', type: 'password', autocomplete: 'current-password', required: true }),
    field({ label: 'New password', name: 'new', type: 'password', autocomplete: 'new-password', required: true, hint: 'At least 8 characters and hard to guess. Your other devices are logged out; your API keys keep working.' }),
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

/** An amount in the currency's smallest unit (paise for INR), formatted for people. */
export function formatMoney(amount, currency = 'INR') {
  let format;
  try {
    format = new Intl.NumberFormat(undefined, { style: 'currency', currency: String(currency).toUpperCase() });
  } catch {
    return `${amount} ${currency}`;
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(Number(amount || 0) / 10 ** digits);
}

// Subscriptions in these states are live (paid for, or being retried); `created` is a Checkout that was
// never finished, which POST /subscription picks up again.
const LIVE = new Set(['authenticated', 'active', 'pending', 'halted', 'paused']);
const SUBSCRIPTION_STATES = {
  created: 'Checkout not finished', authenticated: 'Authorised, first payment pending', active: 'Active',
  pending: 'Payment being retried', halted: 'Halted: payments failed', paused: 'Paused', cancelled: 'Cancelled',
  completed: 'Completed', expired: 'Expired',
};
const NOT_CONFIGURED = 'Payments are not configured on this server, so premium cannot be bought here yet.';

async function loadSubscription(holder, profile) {
  let plans;
  let current;
  try {
    [plans, current] = await Promise.all([api.get('/api/v1/plans'), api.get('/api/v1/subscription')]);
  } catch (error) {
    holder.replaceChildren(error.unavailable ? unavailable('Subscribing online is') : h('p', { class: 'error-text' }, error.message));
    return;
  }
  renderSubscription(holder, profile, plans, current);
}

function renderSubscription(holder, profile, plans, current) {
  const sub = current.subscription;
  const planList = plans.plans || [];
  holder.replaceChildren();
  if (sub && LIVE.has(sub.status)) {
    const cancel = h('button', { type: 'button', class: 'button secondary' }, 'Cancel subscription');
    const host = h('div', { class: 'field-host' }, cancel, formError());
    const plan = planList.find((p) => p.id === sub.plan_id);
    holder.append(
      h('p', { class: 'subscription-state' }, h('strong', null, plan ? plan.name : 'Subscription'), ': ', SUBSCRIPTION_STATES[sub.status] || sub.status,
        sub.current_end ? `, current period ends ${formatDate(sub.current_end)}` : ''),
      sub.cancel_at_cycle_end
        ? h('p', { class: 'muted' }, 'Cancelled: it will not renew, and premium stays until the end of the period you paid for.')
        : host);
    cancel.addEventListener('click', async () => {
      clearErrors(host);
      const sure = await confirmDialog({ title: 'Cancel your subscription?', message: 'Premium stays active until the end of the period you paid for; it is not renewed after that.', confirmLabel: 'Cancel subscription', danger: true });
      if (!sure) return;
      try {
        const updated = await busy(cancel, () => api.post('/api/v1/subscription/cancel', {}), 'Cancelling…');
        toast('Your subscription will end at the end of this period.');
        renderSubscription(holder, profile, plans, updated);
      } catch (failure) {
        showError(host, failure, {});
      }
    });
  } else if (planList.length === 0) {
    holder.append(h('p', { class: 'muted' }, plans.payments_configured ? 'No plans are offered right now.' : NOT_CONFIGURED));
  } else {
    planList.forEach((plan) => {
      const subscribe = h('button', { type: 'button', class: 'button primary', disabled: !plans.payments_configured },
        sub && sub.status === 'created' ? 'Finish subscribing' : (current.premium.active ? 'Subscribe to renew' : 'Go Premium'));
      const host = h('div', { class: 'field-host' }, subscribe, formError());
      holder.append(h('div', { class: 'plan-offer' },
        h('div', null,
          h('p', { class: 'plan-name' }, plan.name),
          h('p', { class: 'muted' }, `${formatMoney(plan.price, plan.currency)} a ${plan.period}`,
            ` · ${plan.quota.toLocaleString()} images a ${plan.period}${plan.video ? ', and video' : ''}`)),
        host));
      if (!plans.payments_configured) holder.append(h('p', { class: 'notice' }, NOT_CONFIGURED));
      subscribe.addEventListener('click', () => startCheckout(subscribe, host, profile));
    });
  }
  const payments = current.payments || [];
  if (payments.length) {
    holder.append(h('details', { class: 'payments' },
      h('summary', null, `Payments (${payments.length})`),
      h('ul', { class: 'payment-list' }, payments.map((p) => h('li', null,
        h('span', null, formatDate(p.created_at)), h('span', null, formatMoney(p.amount, p.currency)), h('span', { class: 'muted' }, p.status))))));
  }
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

async function startCheckout(button, host, profile) {
  clearErrors(host);
  try {
    const created = await busy(button, () => api.post('/api/v1/subscription', {}), 'Starting…');
    await loadCheckoutScript();
    const checkout = new window.Razorpay({
      key: created.key_id,
      subscription_id: created.subscription_id,
      name: created.name,
      description: created.description,
      prefill: created.prefill || { email: profile.email },
      theme: { color: '#5646d6' },
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
          showError(host, error, {});
        }
      },
    });
    checkout.on('payment.failed', (response) => {
      showError(host, { message: (response.error && response.error.description) || 'The payment failed; nothing was charged.' }, {});
    });
    checkout.open();
  } catch (error) {
    showError(host, error.code === 'payments_not_configured' ? { message: NOT_CONFIGURED } : error, {});
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
    h('section', { class: 'card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Your keys'), list),
    webhooksCard()));

  async function load() {
    try {
      const data = await api.get('/api/v1/keys');
      const items = data.items || [];
      if (items.length === 0) { list.replaceChildren(h('p', { class: 'muted' }, 'You have no API keys yet.')); return; }
      // Live keys first, each group newest first (the API's order).
      const ordered = [...items.filter((k) => !k.revoked), ...items.filter((k) => k.revoked)];
      list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'table stacked keys-table' },
        h('caption', { class: 'visually-hidden' }, 'Your API keys'),
        h('thead', null, h('tr', null, ['Name', 'Key', 'Created', 'Last used', 'State'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, ordered.map((key) => {
          let state;
          if (key.revoked) {
            state = h('span', { class: 'badge' }, `Revoked ${formatDate(key.revoked_at)}`);
          } else {
            const revoke = h('button', { type: 'button', class: 'button danger small', 'aria-label': `Revoke ${key.name}` }, 'Revoke');
            const host = h('div', { class: 'field-host' }, revoke, formError());
            revoke.addEventListener('click', async () => {
              clearErrors(host);
              const sure = await confirmDialog({ title: `Revoke “${key.name}”?`, message: 'Programs using this key stop working at once. This cannot be undone.', confirmLabel: 'Revoke', danger: true });
              if (!sure) return;
              try {
                await busy(revoke, () => api.delete(`/api/v1/keys/${encodeURIComponent(key.id)}`), 'Revoking…');
                toast(`The key “${key.name}” was revoked.`);
                load();
              } catch (error) { showError(host, error, {}); }
            });
            state = host;
          }
          return h('tr', { class: key.revoked ? 'revoked' : null, dataset: { keyId: key.id } },
            h('td', { 'data-label': 'Name' }, key.name),
            h('td', { 'data-label': 'Key' }, h('code', null, `${key.prefix}…`)),
            h('td', { 'data-label': 'Created' }, formatDate(key.created_at)),
            h('td', { 'data-label': 'Last used' }, key.last_used_at ? formatDateTime(key.last_used_at) : 'Never'),
            h('td', { 'data-label': 'State', class: 'actions' }, state));
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

// ---- completion webhooks -------------------------------------------------------------------------------

const DELIVERY_LABELS = { pending: 'Retrying', delivered: 'Delivered', failed: 'Failed' };

/** The signing secret (revealed on demand, rotated with a confirmation) and the recent deliveries. */
function webhooksCard() {
  const secretSlot = h('div', { class: 'webhook-secret' }, h('p', { class: 'muted' }, 'Loading…'));
  const deliveries = h('div', { class: 'deliveries-list' }, h('p', { class: 'muted' }, 'Loading deliveries…'));
  const card = h('section', { class: 'card', 'aria-labelledby': 'webhooks-title', id: 'webhooks' },
    h('h2', { id: 'webhooks-title' }, 'Completion webhooks'),
    h('p', { class: 'muted' }, 'Add ', h('code', null, 'webhook_url'), ' to an image, transform or video request and Atelier POSTs the generation there when it ends, signed with this secret the ',
      h('a', { href: 'https://www.standardwebhooks.com/', rel: 'noopener', target: '_blank' }, 'Standard Webhooks'), ' way (',
      h('code', null, 'webhook-id'), ', ', h('code', null, 'webhook-timestamp'), ', ', h('code', null, 'webhook-signature'), '). Failed deliveries are retried for about a day.'),
    h('h3', null, 'Signing secret'), secretSlot,
    h('h3', null, 'Recent deliveries'), deliveries);

  function showSecretRow(data) {
    const input = h('input', { type: 'password', readonly: true, value: data.secret, class: 'secret', 'aria-label': 'Webhook signing secret', id: 'webhook-secret' });
    const reveal = h('button', { type: 'button', class: 'button secondary small' }, 'Show');
    reveal.addEventListener('click', () => {
      const hidden = input.type === 'password';
      input.type = hidden ? 'text' : 'password';
      reveal.textContent = hidden ? 'Hide' : 'Show';
    });
    const copy = h('button', { type: 'button', class: 'button secondary small' }, 'Copy');
    copy.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(data.secret); copy.textContent = 'Copied'; } catch { input.type = 'text'; input.select(); }
    });
    const rotate = h('button', { type: 'button', class: 'button danger small' }, 'Rotate');
    rotate.addEventListener('click', async () => {
      const sure = await confirmDialog({
        title: 'Rotate the signing secret?',
        message: 'Deliveries are signed with the new secret from now on, and with the old one as well for 24 hours, so your receiver can switch without losing any.',
        confirmLabel: 'Rotate',
      });
      if (!sure) return;
      try {
        showSecretRow(await busy(rotate, () => api.post('/api/v1/webhooks/secret/rotate'), 'Rotating…'));
        toast('A new signing secret is in use.');
      } catch (error) { toast(error.message, 'error'); }
    });
    const note = data.previous_valid_until
      ? h('p', { class: 'muted small-print' }, `The previous secret also signs deliveries until ${formatDateTime(data.previous_valid_until)}.`) : null;
    secretSlot.replaceChildren(h('div', { class: 'secret-row' }, input, reveal, copy, rotate), ...(note ? [note] : []));
  }

  async function loadDeliveries() {
    try {
      const { items } = await api.get('/api/v1/webhooks/deliveries?limit=20');
      if (items.length === 0) { deliveries.replaceChildren(h('p', { class: 'muted' }, 'No deliveries yet.')); return; }
      deliveries.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'table stacked deliveries-table' },
        h('caption', { class: 'visually-hidden' }, 'Recent webhook deliveries'),
        h('thead', null, h('tr', null, ['Event', 'URL', 'State', 'Attempts', 'Last answer', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((d) => {
          const again = h('button', { type: 'button', class: 'button secondary small', 'aria-label': `Redeliver ${d.event}` }, 'Redeliver');
          again.addEventListener('click', async () => {
            try {
              await busy(again, () => api.post(`/api/v1/webhooks/deliveries/${encodeURIComponent(d.id)}/redeliver`), 'Queuing…');
              toast('Queued: it is sent again within a minute.');
              loadDeliveries();
            } catch (error) { toast(error.message, 'error'); }
          });
          const answer = d.last_error || (d.last_status ? `HTTP ${d.last_status}` : '—');
          return h('tr', { dataset: { deliveryId: d.id } },
            h('td', { 'data-label': 'Event' }, d.event.replace('generation.', ''), h('br'), h('span', { class: 'muted small-print' }, formatDateTime(d.created_at))),
            h('td', { 'data-label': 'URL' }, h('code', { class: 'wrap' }, d.url)),
            h('td', { 'data-label': 'State' }, h('span', { class: `badge ${d.status}` }, DELIVERY_LABELS[d.status] || d.status),
              d.next_attempt_at ? h('span', { class: 'muted small-print' }, ` next ${formatDateTime(d.next_attempt_at)}`) : null),
            h('td', { 'data-label': 'Attempts' }, String(d.attempts)),
            h('td', { 'data-label': 'Last answer' }, answer),
            h('td', null, again));
        })))));
    } catch (error) {
      deliveries.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }

  api.get('/api/v1/webhooks/secret').then(showSecretRow, (error) => {
    secretSlot.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, error.message));
  });
  loadDeliveries();
  return card;
}
