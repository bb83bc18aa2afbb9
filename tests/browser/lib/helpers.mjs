// Shared helpers of the browser tests: the browser, contexts, a small
// expect(), sign-in with two-factor authentication, and screenshots.
//
// The tests run against a demo that run.sh starts; it passes:
//   PLATFORM_E2E_BASE_URL        http://127.0.0.1:PORT
//   PLATFORM_E2E_ADMIN_PASSWORD  the administrator's password
//   PLATFORM_E2E_STATE_DIR       a directory the test files share (two-factor
//                                secrets, recovery codes, the admin's cookies)
// and, optionally, UPDATE_SCREENSHOTS=1 to rewrite book/src/images/*.png.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { STEP_SECONDS, codeForStep, currentStep } from './totp.mjs';

export { sleep };

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..', '..');
export const IMAGES_DIR = path.join(ROOT, 'book', 'src', 'images');

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with tests/browser/run.sh`);
  return v;
}

export const BASE_URL = required('PLATFORM_E2E_BASE_URL').replace(/\/+$/, '');
export const STATE_DIR = required('PLATFORM_E2E_STATE_DIR');
export const ADMIN = {
  email: process.env.PLATFORM_E2E_ADMIN_EMAIL || 'admin@example.com',
  password: required('PLATFORM_E2E_ADMIN_PASSWORD'),
};
export const CHROMIUM = process.env.PLATFORM_E2E_CHROMIUM || '/usr/bin/chromium';
export const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';

/** The XSS payload of the escaping tests. */
export const XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">';

// ------------------------------------------------------------------ browser

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--disable-features=Translate,MediaRouter,OptimizationHints',
  '--hide-scrollbars',
  '--font-render-hinting=none',
];

/** Debian's Chromium, headless. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 60_000,
  });
}

/**
 * A fresh browser context (its own cookies) on the demo: 1280x800, light
 * theme, UTC, en-US. `javaScriptEnabled: false` for the no-JS checks;
 * `storageState` to start signed in.
 */
export async function newContext(browser, { javaScriptEnabled = true, storageState } = {}) {
  const context = await browser.newContext({
    baseURL: BASE_URL,
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    locale: 'en-US',
    timezoneId: 'UTC',
    javaScriptEnabled,
    storageState,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(30_000);
  return context;
}

/**
 * A new page that records every JavaScript dialog (alert, confirm, prompt)
 * in `page.dialogs` and accepts it (the panel's delete confirmations are
 * `window.confirm`).
 */
export async function newPage(context) {
  const page = await context.newPage();
  page.dialogs = [];
  page.on('dialog', async (d) => {
    page.dialogs.push({ type: d.type(), message: d.message() });
    await d.accept().catch(() => {});
  });
  return page;
}

// ------------------------------------------------------------------ expect

/** Retries `fn` (an async assertion) until it passes or `timeout` ms pass. */
export async function eventually(fn, { timeout = 10_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
    }
    await sleep(interval);
  }
}

function asRegExp(expected) {
  if (expected instanceof RegExp) return expected;
  return new RegExp(String(expected).replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

const norm = (s) => (s ?? '').replace(/\s+/g, ' ').trim();

/**
 * A small web-first expect() over playwright-core locators and pages: every
 * check retries until it holds (10 s by default).
 */
export function expect(target, { timeout = 10_000 } = {}) {
  const retry = (fn) => eventually(fn, { timeout });
  const isPage = typeof target.goto === 'function';
  return {
    // pages
    toHaveURL: (re) =>
      retry(() => assert.match(target.url(), asRegExp(re), `URL ${target.url()} does not match ${re}`)),
    toHaveTitle: (re) => retry(async () => assert.match(await target.title(), asRegExp(re))),
    // locators
    toBeVisible: () => retry(async () => assert.ok(await target.first().isVisible(), `${target} is not visible`)),
    toBeHidden: () =>
      retry(async () => {
        const n = await target.count();
        for (let i = 0; i < n; i++) {
          assert.ok(!(await target.nth(i).isVisible()), `${target} is visible`);
        }
      }),
    toHaveCount: (n) =>
      retry(async () => assert.equal(await target.count(), n, `${target}: expected ${n} elements`)),
    /** Text (whitespace collapsed) equal to a string, or matching a RegExp. */
    toHaveText: (expected) =>
      retry(async () => {
        const text = norm(isPage ? await target.locator('body').innerText() : await target.first().textContent());
        if (expected instanceof RegExp) assert.match(text, expected);
        else assert.equal(text, norm(expected));
      }),
    toContainText: (expected) =>
      retry(async () => {
        const text = norm(isPage ? await target.locator('body').innerText() : await target.first().textContent());
        assert.match(text, asRegExp(expected));
      }),
    toHaveValue: (expected) =>
      retry(async () => assert.equal(await target.first().inputValue(), expected)),
    toHaveAttribute: (name, expected) =>
      retry(async () => {
        const v = await target.first().getAttribute(name);
        if (expected instanceof RegExp) assert.match(v ?? '', expected);
        else assert.equal(v, expected);
      }),
    toBeChecked: (checked = true) =>
      retry(async () => assert.equal(await target.first().isChecked(), checked, `${target} checked`)),
  };
}

/** The whitespace-collapsed texts of every element of `locator`. */
export async function texts(locator) {
  return (await locator.allTextContents()).map(norm);
}

// ------------------------------------------------------------------ shared state

const STATE_FILE = () => path.join(STATE_DIR, 'state.json');

/** The state the test files share (users' secrets, codes, pacing). */
export function loadState() {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE(), 'utf8'));
  } catch {
    return { users: {}, buckets: {} };
  }
}

function saveState(state) {
  fs.mkdirSync(STATE_DIR, { recursive: true });
  const tmp = `${STATE_FILE()}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, STATE_FILE());
}

/** Reads, changes and writes the shared state. */
export function updateState(fn) {
  const state = loadState();
  const out = fn(state);
  saveState(state);
  return out;
}

/** What the suite knows of a user (two-factor secret, recovery codes). */
export function userState(email) {
  return loadState().users[email.toLowerCase()] ?? {};
}

export function setUserState(email, patch) {
  updateState((s) => {
    const k = email.toLowerCase();
    s.users[k] = { ...(s.users[k] ?? {}), ...patch };
  });
}

/**
 * Keeps the suite under the server's sign-in throttles (GCRA, `perMinute`
 * attempts per minute with a burst of as many): waits when the next attempt
 * on `key` would be refused. Counts every attempt, failed or not.
 */
export async function pace(key, perMinute) {
  const interval = 60_000 / perMinute;
  const tolerance = 60_000 - interval;
  const tat = Math.max(loadState().buckets?.[key] ?? 0, Date.now());
  const wait = tat - tolerance - Date.now();
  if (wait > 0) {
    process.stderr.write(`# pacing ${key}: waiting ${Math.ceil(wait / 1000)} s for the throttle\n`);
    await sleep(wait + 500);
  }
  updateState((s) => {
    s.buckets ??= {};
    s.buckets[key] = Math.max(s.buckets[key] ?? 0, Date.now()) + interval + 250;
  });
}

// ------------------------------------------------------------------ sign-in

/** The submit button of a form. */
export function submitOf(form) {
  return form.locator('button[type=submit], input[type=submit], button:not([type])').first();
}

/** Clicks and waits for the page it leads to to load. */
export async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
}

/** Submits the password form; leaves the page where the server sends it. */
export async function submitPassword(page, email, password) {
  await pace(`login:${email.toLowerCase()}`, 5);
  await pace('login-ip', 30);
  if (!new URL(page.url()).pathname.endsWith('/admin/login')) await page.goto('/admin/login');
  const form = page.locator('#login-form');
  await form.locator('input[name=email]').fill(email);
  await form.locator('input[name=password]').fill(password);
  await clickAndLoad(page, submitOf(form));
}

/**
 * On `/admin/two-factor/setup`: reads the secret, enters its current code,
 * keeps the recovery codes and the secret in the shared state. Returns
 * `{ secret, codes, step }`; leaves the page on the recovery codes.
 */
export async function completeTwoFactorSetup(page, email) {
  await expect(page).toHaveURL(/\/admin\/two-factor\/setup/);
  const secret = norm(await page.locator('#two-factor-secret').textContent()).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{16,}=*$/, `#two-factor-secret is not base32: ${secret}`);
  const step = await freshStep(email);
  await pace(`2fa:${email.toLowerCase()}`, 5);
  const form = page.locator('#two-factor-setup-form');
  await form.locator('input[name=code]').fill(codeForStep(secret, step));
  await clickAndLoad(page, submitOf(form));
  await expect(page.locator('#recovery-codes li')).toHaveCount(8);
  const codes = await texts(page.locator('#recovery-codes li'));
  setUserState(email, { secret, recovery: codes, usedRecovery: [], lastStep: step });
  return { secret, codes, step };
}

/**
 * A time step whose code the server has not seen from this user: waits for
 * the next 30 s step when the current one was used (replay protection).
 */
export async function freshStep(email) {
  const last = userState(email).lastStep ?? -1;
  let step = currentStep();
  if (step <= last) {
    const wait = (last + 1) * STEP_SECONDS * 1000 - Date.now() + 200;
    process.stderr.write(`# ${email}: waiting ${Math.ceil(wait / 1000)} s for the next TOTP step\n`);
    await sleep(Math.max(wait, 0));
    step = currentStep();
  }
  return step;
}

/** On `/admin/two-factor-challenge`: enters a fresh TOTP code. */
export async function passChallenge(page, email) {
  await expect(page).toHaveURL(/\/admin\/two-factor-challenge/);
  const { secret } = userState(email);
  assert.ok(secret, `no two-factor secret known for ${email}`);
  const step = await freshStep(email);
  await pace(`2fa:${email.toLowerCase()}`, 5);
  const form = page.locator('#two-factor-form');
  await form.locator('input[name=code]').fill(codeForStep(secret, step));
  await clickAndLoad(page, submitOf(form));
  setUserState(email, { lastStep: step });
}

/** On the challenge page: opens "use a recovery code" and submits `code`. */
export async function submitRecoveryCode(page, email, code) {
  await expect(page).toHaveURL(/\/admin\/two-factor-challenge/);
  const details = page.locator('details#use-recovery-code');
  if (!(await details.evaluate((d) => d.open).catch(() => false))) {
    await details.locator('summary').click();
  }
  await pace(`2fa:${email.toLowerCase()}`, 5);
  const form = page.locator('#recovery-form');
  await form.locator('input[name=recovery_code]').fill(code);
  await clickAndLoad(page, submitOf(form));
}

/**
 * Signs in completely: password, then the two-factor setup (first time) or
 * the challenge. Ends on the page the server sends the user to.
 */
export async function signIn(page, email, password) {
  await submitPassword(page, email, password);
  const url = page.url();
  if (/\/admin\/two-factor\/setup/.test(url)) {
    await completeTwoFactorSetup(page, email);
    await clickAndLoad(page, page.locator('a#continue'));
  } else if (/\/admin\/two-factor-challenge/.test(url)) {
    await passChallenge(page, email);
  } else {
    throw new Error(`after the password, expected the two-factor step, got ${url}`);
  }
  await expect(page).toHaveURL(/\/admin(\/|$)/);
  assert.doesNotMatch(page.url(), /\/admin\/(login|two-factor)/, `still signing in at ${page.url()}`);
}

/** Signs out with the user menu. */
export async function signOut(page) {
  const menu = page.locator('details.user-menu');
  await menu.locator('summary').click();
  await clickAndLoad(page, menu.getByRole('button', { name: 'Sign out' }));
}

const ADMIN_STORAGE = () => path.join(STATE_DIR, 'admin-storage.json');

/** Saves the context's cookies as the admin's session for later test files. */
export async function saveAdminSession(context) {
  await context.storageState({ path: ADMIN_STORAGE() });
}

/**
 * A context and page signed in as the administrator: the session the
 * sign-in tests saved, or a new sign-in (setting up two-factor when the
 * account has none yet).
 */
export async function adminSession(browser, opts = {}) {
  const storage = fs.existsSync(ADMIN_STORAGE()) ? ADMIN_STORAGE() : undefined;
  const context = await newContext(browser, { ...opts, storageState: storage });
  const page = await newPage(context);
  await page.goto('/admin/');
  if (/\/admin\/(login|two-factor)/.test(page.url())) {
    if (!/\/admin\/login/.test(page.url())) await page.goto('/admin/login');
    await signIn(page, ADMIN.email, ADMIN.password);
    await saveAdminSession(context);
  }
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  return { context, page };
}

/**
 * Runs `action` (which submits a form under `/admin/access/`); when the
 * server asks for the password first, confirms it and runs `action` again
 * on the page it returns to.
 */
export async function withPasswordConfirmation(page, password, action) {
  await action();
  if (/\/admin\/confirm-password/.test(page.url())) {
    const form = page.locator('#confirm-password-form');
    await form.locator('input[name=password]').fill(password);
    await clickAndLoad(page, submitOf(form));
    assert.doesNotMatch(page.url(), /\/admin\/confirm-password/, 'the password was not accepted');
    await action();
  }
}

/** Goes to `url`, confirming the password when the server asks for it. */
export async function gotoConfirmed(page, url, password) {
  const res = await page.goto(url);
  if (/\/admin\/confirm-password/.test(page.url())) {
    const form = page.locator('#confirm-password-form');
    await form.locator('input[name=password]').fill(password);
    await clickAndLoad(page, submitOf(form));
    if (!page.url().endsWith(url)) return page.goto(url);
  }
  return res;
}

/** The page's CSRF token (the `csrf-token` meta). */
export function csrfToken(page) {
  return page.locator('meta[name="csrf-token"]').getAttribute('content');
}

/**
 * POSTs an urlencoded form (`fields`: an object, or [name, value] pairs for
 * repeated names) with the page's cookies and CSRF token; no redirects
 * followed.
 */
export async function postForm(page, url, fields = {}) {
  const body = new URLSearchParams([['_csrf', await csrfToken(page)]]);
  for (const [k, v] of Array.isArray(fields) ? fields : Object.entries(fields)) body.append(k, v);
  return page.request.post(url, {
    data: body.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    maxRedirects: 0,
    failOnStatusCode: false,
  });
}

/**
 * Submits a form built in the page (a real browser navigation, as a
 * hand-made form on another page would), and waits for the answer.
 */
export async function submitBuiltForm(page, action, fields = []) {
  const csrf = await csrfToken(page);
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        for (const [name, value] of fields) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
      },
      { action, fields: [['_csrf', csrf], ...fields] },
    ),
  ]);
  return response;
}

// ------------------------------------------------------------------ screenshots

/**
 * Writes `book/src/images/<name>` (1280x800) when UPDATE_SCREENSHOTS=1;
 * otherwise nothing, so CI leaves the tree alone.
 */
export async function screenshot(page, name) {
  if (!UPDATE_SCREENSHOTS) return;
  fs.mkdirSync(IMAGES_DIR, { recursive: true });
  await page.evaluate(() => document.fonts?.ready).catch(() => {});
  await page.screenshot({
    path: path.join(IMAGES_DIR, name),
    fullPage: false,
    animations: 'disabled',
    caret: 'hide',
  });
}
