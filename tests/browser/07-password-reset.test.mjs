// Password reset by mail, end to end through a real SMTP server: the demo
// runs with PLATFORM_MAIL_URL pointing at the capture server .ci/run starts
// (aiosmtpd, writing a Maildir); a user asks for a link on "Forgot your
// password?", the mail arrives, the link sets a new password once, the old
// password and the used link stop working, and the new password signs in
// (on to the mandatory two-factor set-up).
//
// Needs PLATFORM_E2E_MAILDIR (run.sh passes PLATFORM_TEST_SMTP_MAILDIR);
// without it the file skips with the reason, and under CI it fails.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  BASE_URL,
  adminSession,
  clickAndLoad,
  eventually,
  expect,
  gotoConfirmed,
  launchBrowser,
  newContext,
  newPage,
  pace,
  signIn,
  submitOf,
  submitPassword,
} from './lib/helpers.mjs';

const MAILDIR = process.env.PLATFORM_E2E_MAILDIR || '';
const SKIP = MAILDIR ? false : 'PLATFORM_E2E_MAILDIR is not set (no SMTP capture server; .ci/run starts one)';
if (SKIP && process.env.CI === 'true') throw new Error(`under CI: ${SKIP}`);

const USER = { name: 'Rita Reset', email: 'reset@example.com', password: 'first-pass-2026!' };
const NEW_PASSWORD = 'second-pass-2026!';

let browser;
let page; // the user's page (not signed in)

before(async () => {
  if (SKIP) return;
  browser = await launchBrowser();
  const { page: admin } = await adminSession(browser);
  await gotoConfirmed(admin, '/admin/access/users/new', ADMIN.password);
  await admin.locator('#f-name').fill(USER.name);
  await admin.locator('#f-email').fill(USER.email);
  await admin.locator('#f-password').fill(USER.password);
  await clickAndLoad(admin, admin.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(admin.locator('.flash-success')).toHaveText(`Created user ${USER.email}.`);
  page = await newPage(await newContext(browser));
});

after(async () => {
  await browser?.close();
});

/** Decodes a MIME body part: quoted-printable or base64 as its headers say. */
function decodePart(headers, body) {
  const enc = /content-transfer-encoding:\s*([\w-]+)/i.exec(headers)?.[1]?.toLowerCase();
  if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (enc === 'quoted-printable') {
    const bytes = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

/** The texts of the captured mails to `to` (Maildir `new/`), oldest first. */
function mailsTo(to) {
  const dir = path.join(MAILDIR, 'new');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs)
    .map((f) => fs.readFileSync(f, 'utf8').replace(/\r\n/g, '\n'))
    .filter((m) => new RegExp(`^To: .*${to.replace(/[.]/g, '\\.')}`, 'mi').test(m.split('\n\n')[0]))
    .map((m) => {
      const at = m.indexOf('\n\n');
      return { headers: m.slice(0, at), text: decodePart(m.slice(0, at), m.slice(at + 2)) };
    });
}

let link;

test('"Forgot your password?" mails a reset link through the SMTP server', { skip: SKIP }, async () => {
  const before = mailsTo(USER.email).length;
  await page.goto('/admin/login');
  await clickAndLoad(page, page.getByRole('link', { name: /forgot/i }));
  await expect(page).toHaveURL(/\/admin\/forgot-password$/);
  await pace(`reset:${USER.email}`, 5);
  await pace('login-ip', 30);
  const form = page.locator('#forgot-password-form');
  await form.locator('input[name=email]').fill(USER.email);
  await clickAndLoad(page, submitOf(form));
  await expect(page.locator('.flash-success')).toHaveText(/If an account with that address exists/);

  // An unknown address gets the same answer and no mail.
  await pace('login-ip', 30);
  await form.locator('input[name=email]').fill('nobody@example.com');
  await clickAndLoad(page, submitOf(form));
  await expect(page.locator('.flash-success')).toHaveText(/If an account with that address exists/);

  const mail = await eventually(
    () => mailsTo(USER.email)[before] ?? assert.fail(`no mail to ${USER.email} in ${MAILDIR}/new yet`),
    { timeout: 20_000 },
  );
  assert.match(mail.headers, /^Subject: Reset your password$/m);
  link = new RegExp(`${BASE_URL.replace(/[.]/g, '\\.')}/admin/reset-password/[A-Za-z0-9_%-]+`).exec(mail.text)?.[0];
  assert.ok(link, `no reset link in the mail:\n${mail.text}`);
  assert.equal(mailsTo('nobody@example.com').length, 0, 'a mail went to an unknown address');
});

test('the link sets a new password once; the old password and the used link stop working', { skip: SKIP }, async () => {
  await page.goto(link);
  await expect(page.locator('main h1')).toHaveText('Choose a new password');
  const form = page.locator('#reset-password-form');
  // Mismatched confirmation: the form again, the link not used up.
  await form.locator('input[name=password]').fill(NEW_PASSWORD);
  await form.locator('input[name=password_confirmation]').fill(`${NEW_PASSWORD}x`);
  await clickAndLoad(page, submitOf(form));
  await expect(page.locator('.field.has-error .error')).toHaveText('The passwords do not match.');
  await form.locator('input[name=password]').fill(NEW_PASSWORD);
  await form.locator('input[name=password_confirmation]').fill(NEW_PASSWORD);
  await clickAndLoad(page, submitOf(form));
  await expect(page).toHaveURL(/\/admin\/login$/);
  await expect(page.locator('.flash-success')).toHaveText('Your password has been reset. Sign in with the new one.');

  // The used link: refused, with the way to a new one.
  await page.goto(link);
  const again = page.locator('#reset-password-form');
  await again.locator('input[name=password]').fill('third-pass-2026!');
  await again.locator('input[name=password_confirmation]').fill('third-pass-2026!');
  await clickAndLoad(page, submitOf(again));
  await expect(page.locator('.flash-error')).toContainText('Ask for a new link.');

  // The old password: refused.
  await submitPassword(page, USER.email, USER.password);
  await expect(page).toHaveURL(/\/admin\/login/);
  await expect(page.locator('.flash-error')).toBeVisible();
});

test('the new password signs in, on to the two-factor set-up', { skip: SKIP }, async () => {
  await signIn(page, USER.email, NEW_PASSWORD);
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  await expect(page.locator('details.user-menu summary')).toContainText(USER.name);
});
