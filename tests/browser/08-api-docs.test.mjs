// The API reference at /api/docs: Swagger UI served by the demo itself
// renders the invoices operations from /api/openapi.json under the page's
// Content-Security-Policy, with no console error (a CSP violation is one),
// no request to another origin, and "Try it out" reaching the API.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BASE_URL, expect, launchBrowser, newContext, newPage, screenshot } from './lib/helpers.mjs';

let browser;
let page;
const consoleErrors = []; // console errors and warnings, page errors
const requests = [];
const failed = []; // responses of 400 and more

before(async () => {
  browser = await launchBrowser();
  page = await newPage(await newContext(browser));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
  });
});

after(async () => {
  await browser?.close();
});

test('the reference renders the invoices operations', async () => {
  const res = await page.goto('/api/docs');
  assert.equal(res.status(), 200);
  const csp = res.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe/);
  await expect(page).toHaveTitle(/reference/);
  // Swagger UI names each operation block operations-<tag>-<operationId>.
  await expect(page.locator('#operations-invoices-list_invoices')).toContainText('List Invoices');
  for (const op of ['create', 'show', 'update', 'replace', 'delete', 'restore']) {
    await expect(page.locator(`#operations-invoices-${op}_invoice`)).toBeVisible();
  }
  await expect(page.locator('#operations-invoices-show_invoice')).toContainText('/invoices/{id}');
  await screenshot(page, 'api-docs.png');
});

test('an operation opens with its parameters, and "Try it out" reaches the API', async () => {
  const op = page.locator('#operations-invoices-list_invoices');
  await op.locator('.opblock-summary').first().click();
  await expect(op.locator('.parameters-container')).toContainText('search');
  await expect(op.locator('.parameters-container')).toContainText('page[size]');
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  // Anonymous: the API answers 401, and Swagger UI shows it.
  await expect(op.locator('.live-responses-table tbody .response-col_status').first()).toContainText('401');
  assert.ok(
    requests.some((u) => u.startsWith(`${BASE_URL}/api/invoices`)),
    `no request to /api/invoices in ${requests.join(' ')}`,
  );
});

test('no console error, no CSP violation, nothing from another origin', async () => {
  const csp = consoleErrors.filter((m) => /Content.Security.Policy|Refused to/i.test(m));
  assert.deepEqual(csp, []);
  // Errors, less the 401 "Try it out" asked for on purpose. (Swagger UI
  // itself warns "Could not find component: JsonSchema_string_date" for
  // formats it has no input for: warnings are not errors.)
  const errors = consoleErrors.filter(
    (m) => !m.startsWith('warning:') && !/status of 401/.test(m),
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(failed.filter((f) => !f.startsWith('401 ')), []);
  const foreign = requests.filter((u) => !u.startsWith(`${BASE_URL}/`) && !u.startsWith('data:'));
  assert.deepEqual(foreign, []);
});
