// The public pages: the landing page, sign-up, email confirmation, login and password reset.
import { api, session } from '../api.js';
import { busy, clearErrors, field, formError, h, showError, toast } from '../dom.js';

const RESEND_SECONDS = 60;
// When the last code was asked for, per address, for this tab only (not a secret: just a timer).
const lastSent = new Map();

function safeNext(value) {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\') ? value : null;
}

const ACCOUNT_FIELDS = {
  invalid_email: 'email',
  invalid_username: 'username',
  username_taken: 'username',
  password_too_short: 'password',
  password_too_long: 'password',
  password_too_common: 'password',
  invalid_password: 'password',
  invalid_code: 'code',
  code_locked: 'code',
  too_many_attempts: 'code',
};

function authCard(title, intro, ...content) {
  return h('section', { class: 'page auth' },
    h('div', { class: 'card auth-card' },
      h('h1', null, title),
      intro ? h('p', { class: 'muted' }, intro) : null,
      ...content));
}

export function landing({ root }) {
  const signedIn = session.signedIn;
  const cta = signedIn
    ? [h('a', { class: 'button primary large', href: '/create' }, 'Open the studio'), h('a', { class: 'button secondary large', href: '/gallery' }, 'Your gallery')]
    : [h('a', { class: 'button primary large', href: '/register' }, 'Start creating, free'), h('a', { class: 'button secondary large', href: '/login' }, 'Log in')];
  const feature = (icon, title, text) => h('li', { class: 'feature card' },
    h('span', { class: ['feature-icon', `icon-${icon}`], 'aria-hidden': 'true' }),
    h('h3', null, title), h('p', null, text));
  root.append(
    h('section', { class: 'hero' },
      h('div', { class: 'hero-text' },
        h('p', { class: 'eyebrow' }, 'Your AI image studio'),
        h('h1', null, 'Describe it. ', h('span', { class: 'gradient-text' }, 'Atelier makes it.')),
        h('p', { class: 'lede' }, 'Turn a sentence into an image in the style and colours you choose. Upscale a photo, repaint part of it, or make a short video — and keep everything you make in one gallery.'),
        h('div', { class: 'hero-actions' }, cta),
        !signedIn ? h('p', { class: 'muted small-print' }, 'Free accounts get a daily allowance. No card needed.') : null),
      h('div', { class: 'hero-art', 'aria-hidden': 'true' },
        h('div', { class: 'art art-1' }), h('div', { class: 'art art-2' }), h('div', { class: 'art art-3' }), h('div', { class: 'art art-4' }))),
    h('section', { class: 'features', 'aria-labelledby': 'features-title' },
      h('h2', { id: 'features-title' }, 'Everything in one place'),
      h('ul', { class: 'feature-grid' },
        feature('create', 'Generate', 'Ten styles, eight colour moods and eight shapes, from square to cinema-wide. Let Atelier enhance your prompt, and see the suggestion before you use it.'),
        feature('gallery', 'Keep', 'Every image is stored in your own gallery — not a link that expires an hour later. Download, filter and delete whenever you like.'),
        feature('transform', 'Transform', 'Upscale an image two or four times, or paint over a part of it and describe what should appear there.'),
        feature('video', 'Video', 'Premium members turn a prompt into a short looping video, with a larger monthly quota.'),
        feature('api', 'API', 'Programs use the same features with API keys you create and revoke yourself.'),
        feature('safe', 'Yours', 'Your quota is only charged for work that succeeds. Delete your account and everything in it at any time.'))),
  );
}

export function register({ root, navigate }) {
  const form = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true }),
    field({ label: 'Username (optional)', name: 'username', autocomplete: 'username', hint: '3 to 32 letters, digits, dots, dashes or underscores.', maxlength: 32 }),
    field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, hint: 'At least 8 characters and hard to guess; common passwords are refused.' }),
    formError(),
    h('button', { class: 'button primary full', type: 'submit' }, 'Create account'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const email = form.email.value.trim();
    const body = { email, password: form.password.value };
    if (form.username.value.trim()) body.username = form.username.value.trim();
    if (!email) { showError(form, { code: 'invalid_email', message: 'Enter your email address.' }, ACCOUNT_FIELDS); return; }
    try {
      await busy(form.querySelector('[type=submit]'), () => api.post('/api/v1/register', body, { auth: false }), 'Creating…');
      lastSent.set(email.toLowerCase(), Date.now());
      navigate(`/verify?email=${encodeURIComponent(email)}`);
    } catch (error) {
      showError(form, error, ACCOUNT_FIELDS);
    }
  });
  root.append(authCard('Create your account', 'We will email you a 6-digit code to confirm the address.', form,
    h('p', { class: 'switch' }, 'Already have an account? ', h('a', { href: '/login' }, 'Log in'))));
}

/** A button that counts down before it can be pressed again. Returns { start(seconds), stop() }. */
function cooldownButton(button, label) {
  let timer = null;
  const stop = () => { clearInterval(timer); timer = null; button.disabled = false; button.textContent = label; };
  const start = (seconds) => {
    clearInterval(timer);
    let left = Math.max(1, Math.ceil(seconds));
    const tick = () => {
      if (left <= 0) { stop(); return; }
      button.disabled = true;
      button.textContent = `${label} in ${left} s`;
      left -= 1;
    };
    tick();
    timer = setInterval(tick, 1000);
  };
  return { start, stop };
}

export function verify({ root, params, navigate }) {
  const email = params.get('email') || '';
  const form = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true, value: email }),
    field({ label: '6-digit code', name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', pattern: '[0-9]{6}', maxlength: 6, required: true, class: 'code-input' }),
    formError(),
    h('button', { class: 'button primary full', type: 'submit' }, 'Confirm'));
  const resend = h('button', { type: 'button', class: 'button secondary', name: 'resend' }, 'Send a new code');
  const resendHost = h('div', { class: 'field-host resend' }, resend, h('p', { class: 'field-error', hidden: true }), h('p', { class: 'hint resend-note', hidden: true }));
  const cooldown = cooldownButton(resend, 'Send a new code');
  const sent = lastSent.get(email.toLowerCase());
  if (sent && Date.now() - sent < RESEND_SECONDS * 1000) cooldown.start(RESEND_SECONDS - (Date.now() - sent) / 1000);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const code = form.code.value.replace(/\s+/g, '');
    if (!/^\d{6}$/.test(code)) { showError(form, { code: 'invalid_code', message: 'Enter the 6 digits from the email.' }, ACCOUNT_FIELDS); return; }
    try {
      const data = await busy(form.querySelector('[type=submit]'),
        () => api.post('/api/v1/verify-otp', { email: form.email.value.trim(), code }, { auth: false }), 'Confirming…');
      session.set(data.user, data.csrf_token);
      toast('Your email is confirmed. Welcome to Atelier!');
      navigate('/create', { replace: true });
    } catch (error) {
      showError(form, error, ACCOUNT_FIELDS);
    }
  });
  resend.addEventListener('click', async () => {
    clearErrors(resendHost);
    const address = form.email.value.trim();
    if (!address) { showError(form, { code: 'invalid_email', message: 'Enter your email address first.' }, ACCOUNT_FIELDS); return; }
    const note = resendHost.querySelector('.resend-note');
    try {
      resend.disabled = true;
      await api.post('/api/v1/register/resend', { email: address }, { auth: false });
      lastSent.set(address.toLowerCase(), Date.now());
      note.textContent = 'A new code is on its way. Codes from earlier emails no longer work.';
      note.hidden = false;
      cooldown.start(RESEND_SECONDS);
    } catch (error) {
      resend.disabled = false;
      if (error.code === 'resend_cooldown' && error.retryAfter) cooldown.start(error.retryAfter);
      showError(resendHost, error, { resend_cooldown: 'resend', too_many_codes: 'resend', rate_limited: 'resend', invalid_email: 'resend' });
    }
  });
  root.append(authCard('Confirm your email',
    email ? `We sent a 6-digit code to ${email}. It is valid for a limited time.` : 'Enter the address you signed up with and the 6-digit code we emailed you.',
    form,
    h('div', { class: 'resend-row' }, h('p', { class: 'muted' }, 'No email? Check your spam folder, or'), resendHost)));
  (email ? form.code : form.email).setAttribute('autofocus', '');
}

export function login({ root, params, navigate }) {
  const next = safeNext(params.get('next'));
  const form = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true, value: params.get('email') || '' }),
    field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    h('p', { class: 'forgot-link' }, h('a', { href: '/forgot' }, 'Forgot your password?')),
    formError(),
    h('button', { class: 'button primary full', type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const email = form.email.value.trim();
    try {
      const data = await busy(form.querySelector('[type=submit]'),
        () => api.post('/api/v1/login', { email, password: form.password.value }, { auth: false }), 'Logging in…');
      session.set(data.user, data.csrf_token);
      navigate(next || '/create', { replace: true });
    } catch (error) {
      if (error.code === 'email_not_verified') {
        const line = form.querySelector('.form-error');
        line.replaceChildren(error.message, ' ', h('a', { href: `/verify?email=${encodeURIComponent(email)}` }, 'Enter your code'));
        line.hidden = false;
        return;
      }
      showError(form, error, { ...ACCOUNT_FIELDS, invalid_credentials: 'password' });
    }
  });
  root.append(authCard('Log in', next ? 'Log in to continue where you were.' : 'Welcome back.', form,
    h('p', { class: 'switch' }, 'New to Atelier? ', h('a', { href: '/register' }, 'Create an account'))));
}

export function forgot({ root, params, navigate }) {
  const ask = h('form', { class: 'stack', novalidate: true },
    field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true, value: params.get('email') || '' }),
    formError(),
    h('button', { class: 'button primary full', type: 'submit' }, 'Email me a reset code'));
  const reset = h('form', { class: 'stack', novalidate: true, hidden: true },
    field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true }),
    field({ label: 'Reset code', name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: 6, required: true, class: 'code-input' }),
    field({ label: 'New password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, hint: 'At least 8 characters and hard to guess; common passwords are refused.' }),
    formError(),
    h('button', { class: 'button primary full', type: 'submit' }, 'Set new password'));
  const note = h('p', { class: 'notice', hidden: true, role: 'status' });
  const haveCode = h('button', { type: 'button', class: 'link-button' }, 'I already have a code');

  const showReset = (email) => {
    reset.email.value = email;
    reset.hidden = false;
    ask.hidden = true;
    haveCode.hidden = true;
    reset.code.focus();
  };
  haveCode.addEventListener('click', () => showReset(ask.email.value.trim()));
  ask.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(ask);
    const email = ask.email.value.trim();
    try {
      const data = await busy(ask.querySelector('[type=submit]'), () => api.post('/api/v1/password/forgot', { email }, { auth: false }), 'Sending…');
      note.textContent = data && data.message ? data.message : 'If an account uses this address, a reset code is on its way.';
      note.hidden = false;
      showReset(email);
    } catch (error) {
      if (error.code === 'resend_cooldown') {
        showError(ask, error, {});
        haveCode.hidden = false;
        return;
      }
      showError(ask, error, ACCOUNT_FIELDS);
    }
  });
  reset.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(reset);
    const email = reset.email.value.trim();
    try {
      await busy(reset.querySelector('[type=submit]'), () => api.post('/api/v1/password/reset', {
        email, code: reset.code.value.replace(/\s+/g, ''), password: reset.password.value,
      }, { auth: false }), 'Saving…');
      toast('Your password is changed. Log in with the new one.');
      navigate(`/login?email=${encodeURIComponent(email)}`, { replace: true });
    } catch (error) {
      showError(reset, error, ACCOUNT_FIELDS);
    }
  });
  root.append(authCard('Reset your password', 'We email you a code; enter it with a new password. Every device you were logged in on is logged out, and your API keys are revoked.',
    note, ask, reset, h('p', { class: 'switch' }, haveCode, ' · ', h('a', { href: '/login' }, 'Back to log in'))));
}
