// Sign-in of the administrator: the password form, the mandatory two-factor
// setup (secret read from the page, code computed here), the recovery codes,
// sign-out, the TOTP challenge (with replay protection) and recovery codes
// (single use). Runs first: the demo's admin has no two-factor yet.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  clickAndLoad,
  completeTwoFactorSetup,
  expect,
  launchBrowser,
  newContext,
  newPage,
  pace,
  passChallenge,
  saveAdminSession,
  screenshot,
  setUserState,
  signOut,
  submitOf,
  submitPassword,
  submitRecoveryCode,
  texts,
  userState,
} from './lib/helpers.mjs';
import { codeForStep, currentStep } from './lib/totp.mjs';

let browser;
let context; // the admin's main session across the tests of this file
let page;

before(async () => {
  browser = await launchBrowser();
  context = await newContext(browser);
  page = await newPage(context);
});

after(async () => {
  await browser?.close();
});

test('a page of the panel sends a signed-out visitor to the sign-in form', async () => {
  const res = await page.goto('/admin/invoices?status=paid');
  assert.equal(res.status(), 200);
  await expect(page).toHaveURL(/\/admin\/login\?next=%2Fadmin%2Finvoices/);
  await expect(page.locator('#login-form')).toBeVisible();
  await expect(page.locator('#login-form input[name=email]')).toBeVisible();
  await expect(page.locator('#login-form input[name=password]')).toHaveAttribute('type', 'password');
  // No panel navigation for a signed-out visitor.
  await expect(page.locator('nav.sidebar')).toHaveCount(0);
  await page.goto('/admin/login');
  await screenshot(page, 'login.png');
});

test('a wrong password is refused with the generic message', async () => {
  await submitPassword(page, ADMIN.email, `${ADMIN.password}-wrong`);
  await expect(page).toHaveURL(/\/admin\/login/);
  await expect(page.locator('.flash-error')).toHaveText('These credentials do not match our records.');
  // The e-mail is kept, the password is not.
  await expect(page.locator('#login-form input[name=email]')).toHaveValue(ADMIN.email);
  await expect(page.locator('#login-form input[name=password]')).toHaveValue('');
  await page.goto('/admin/');
  await expect(page).toHaveURL(/\/admin\/login/);
});

test('first sign-in: two-factor setup with a computed code, recovery codes, dashboard', async () => {
  await submitPassword(page, ADMIN.email, ADMIN.password);
  await expect(page).toHaveURL(/\/admin\/two-factor\/setup/);
  await expect(page.locator('#two-factor-qr svg')).toBeVisible();
  const secret = (await page.locator('#two-factor-secret').textContent()).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{16,}=*$/);
  await screenshot(page, 'two-factor-setup.png');

  // Mandatory: every other page sends the half-signed-in user back here.
  for (const path of ['/admin/', '/admin/invoices', '/admin/access/users']) {
    await page.goto(path);
    await expect(page).toHaveURL(/\/admin\/two-factor\/setup/);
  }
  const reloaded = (await page.locator('#two-factor-secret').textContent()).replace(/\s+/g, '');
  assert.equal(reloaded, secret, 'the pending secret is kept across page loads');

  // A wrong code: the page again with an error, and the same secret.
  const step = currentStep();
  const good = new Set([step - 1, step, step + 1].map((s) => codeForStep(secret, s)));
  const wrong = ['000000', '111111', '222222'].find((c) => !good.has(c));
  await pace(`2fa:${ADMIN.email}`, 5); // every attempt counts against the server's throttle
  const form = page.locator('#two-factor-setup-form');
  await form.locator('input[name=code]').fill(wrong);
  await clickAndLoad(page, submitOf(form));
  await expect(page).toHaveURL(/\/admin\/two-factor\/setup/);
  await expect(page.locator('.field-error')).toBeVisible();
  const after = (await page.locator('#two-factor-secret').textContent()).replace(/\s+/g, '');
  assert.equal(after, secret, 'no new secret is issued for a failed code');

  // The right code.
  const { codes } = await completeTwoFactorSetup(page, ADMIN.email);
  assert.equal(codes.length, 8);
  assert.equal(new Set(codes).size, 8, 'the recovery codes are distinct');
  for (const c of codes) assert.match(c, /^[A-Za-z0-9]{10}-[A-Za-z0-9]{10}$/);

  await clickAndLoad(page, page.locator('a#continue'));
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  await expect(page.locator('details.user-menu summary')).toContainText('Administrator');
  await expect(page.locator('nav.sidebar')).toContainText('Invoices');

  // The users page shows two-factor on for the admin now.
  await page.goto('/admin/access/users');
  if (/confirm-password/.test(page.url())) {
    const f = page.locator('#confirm-password-form');
    await f.locator('input[name=password]').fill(ADMIN.password);
    await clickAndLoad(page, submitOf(f));
  }
  const row = page.locator('table.data tbody tr', { hasText: ADMIN.email });
  await expect(row.locator('td.bool').first()).toHaveText('Yes');
});

test('sign out, then sign in with the TOTP challenge (a replayed code is refused)', async () => {
  await page.goto('/admin/');
  await signOut(page);
  await expect(page).toHaveURL(/\/admin\/login/);
  await page.goto('/admin/invoices');
  await expect(page).toHaveURL(/\/admin\/login/);

  await submitPassword(page, ADMIN.email, ADMIN.password);
  await expect(page).toHaveURL(/\/admin\/two-factor-challenge/);
  await expect(page.locator('#two-factor-form input[name=code]')).toBeVisible();
  // Nothing of the panel before the second factor.
  await page.goto('/admin/invoices');
  assert.doesNotMatch(page.url(), /\/admin\/invoices/);

  // The code used for the setup again (same or previous step): refused.
  await page.goto('/admin/two-factor-challenge');
  const { secret, lastStep } = userState(ADMIN.email);
  await pace(`2fa:${ADMIN.email}`, 5);
  const form = page.locator('#two-factor-form');
  await form.locator('input[name=code]').fill(codeForStep(secret, lastStep));
  await clickAndLoad(page, submitOf(form));
  await expect(page).toHaveURL(/\/admin\/two-factor-challenge/);
  await expect(page.locator('.flash-error, .field-error').first()).toBeVisible();

  // A code of a step not used yet (waits for the next 30 s step if needed);
  // then the page asked for before signing in.
  await passChallenge(page, ADMIN.email);
  await expect(page).toHaveURL(/\/admin\/invoices$/);
  await expect(page.locator('main h1')).toHaveText('Invoices');
  await page.goto('/admin/');
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  await saveAdminSession(context);
});

test('a recovery code signs in once, and is refused the second time', async () => {
  const { recovery } = userState(ADMIN.email);
  const code = recovery[0];
  const ctx = await newContext(browser);
  try {
    const p = await newPage(ctx);
    await submitPassword(p, ADMIN.email, ADMIN.password);
    await submitRecoveryCode(p, ADMIN.email, code);
    await expect(p.locator('main h1')).toHaveText('Dashboard');
    setUserState(ADMIN.email, { usedRecovery: [code] });
    await signOut(p);
    await expect(p).toHaveURL(/\/admin\/login/);

    await submitPassword(p, ADMIN.email, ADMIN.password);
    await submitRecoveryCode(p, ADMIN.email, code);
    await expect(p).toHaveURL(/\/admin\/two-factor-challenge/);
    const error = p.locator('details#use-recovery-code .flash-error, .flash-error, .field-error').first();
    await expect(error).toBeVisible();
    assert.doesNotMatch(await error.textContent(), /too many/i, 'refused as used, not throttled');
    await p.goto('/admin/');
    assert.doesNotMatch(p.url(), /\/admin\/?$/, 'still not signed in');
  } finally {
    await ctx.close();
  }
  // The main session is unaffected.
  await page.goto('/admin/');
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  assert.equal((await texts(page.locator('main h1')))[0], 'Dashboard');
});
