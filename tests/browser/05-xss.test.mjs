// Escaping: a customer name and invoice notes holding a script and an
// <img onerror> are shown as text on the list, view, edit, search and
// dashboard pages; nothing runs (window.__xss stays undefined) and no dialog
// opens. Also a payload reflected from the query string.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { XSS, adminSession, clickAndLoad, eventually, expect, launchBrowser } from './lib/helpers.mjs';

let browser;
let page;
let customerId;
let invoiceId;
const RUN = String(Date.now()).slice(-8);
const NUMBER = `XSS-${RUN}`;
const EMAIL = `xss-${RUN}@example.com`;

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
});

after(async () => {
  await browser?.close();
});

/** Nothing of the payload ran, and it made no elements. */
async function assertInert(where) {
  assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', `window.__xss set on ${where}`);
  assert.deepEqual(page.dialogs, [], `a dialog opened on ${where}`);
  assert.equal(await page.locator('img[src="x"]').count(), 0, `an <img src=x> element on ${where}`);
  const scripts = await page.locator('script').evaluateAll((ss) => ss.filter((s) => s.textContent.includes('__xss')).length);
  assert.equal(scripts, 0, `a <script> with the payload on ${where}`);
}

test('a customer and an invoice with the payload are created through the forms', async () => {
  page.dialogs.length = 0;
  await page.goto('/admin/customers/new');
  await page.locator('#f-name').fill(XSS);
  await page.locator('#f-email').fill(EMAIL);
  await page.locator('#f-country').fill('DE');
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(page).toHaveURL(/\/admin\/customers\/\d+$/);
  customerId = page.url().match(/(\d+)$/)[1];
  // The flash message names it: as text.
  await expect(page.locator('.flash-success')).toContainText(XSS);
  await assertInert('the customer view page');

  await page.goto('/admin/invoices/new');
  await page.locator('#f-customer_id').fill(customerId);
  await page.locator('#f-number').fill(NUMBER);
  await page.locator('#f-status').selectOption('draft');
  await page.locator('#f-amount_cents').fill('10');
  await page.locator('#f-issued_on').fill('2025-01-02');
  await page.locator('#f-notes').fill(XSS);
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(page).toHaveURL(/\/admin\/invoices\/\d+$/);
  invoiceId = page.url().match(/(\d+)$/)[1];
  await assertInert('the invoice view page');
});

test('list pages show the payload as text', async () => {
  await page.goto(`/admin/customers?search=${EMAIL}`);
  const name = page.locator('table[data-list-table] tbody td[data-col="name"]');
  await expect(name).toHaveCount(1);
  assert.equal(await name.textContent(), XSS);
  assert.equal(await name.locator('a').textContent(), XSS);
  await assertInert('the customers list');

  await page.goto(`/admin/invoices?search=${NUMBER}`);
  const row = page.locator('table[data-list-table] tbody tr');
  await expect(row).toHaveCount(1);
  assert.equal(await row.locator('td[data-col="customer_id"]').textContent(), XSS);
  assert.equal(await row.locator('td[data-col="notes"]').textContent(), XSS); // a hidden column
  await assertInert('the invoices list');

  // The notes column shown (column toggle), still text.
  await page.locator('details.columns-menu summary').click();
  await page.locator('input[data-col-toggle="notes"]').check();
  await expect(row.locator('td[data-col="notes"]')).toBeVisible();
  await expect(row.locator('td[data-col="notes"]')).toHaveText(XSS);
  await page.locator('input[data-col-toggle="notes"]').uncheck();
  await assertInert('the invoices list with the notes column');
});

test('view and edit pages show the payload as text', async () => {
  await page.goto(`/admin/customers/${customerId}`);
  await expect(page.locator('main h1')).toHaveText(XSS);
  const nameDd = page.locator('dl.record .pair', { has: page.locator('dt', { hasText: /^Name$/ }) }).locator('dd');
  assert.equal(await nameDd.textContent(), XSS);
  await assertInert('the customer view page');

  await page.goto(`/admin/invoices/${invoiceId}`);
  const dd = (label) => page.locator('dl.record .pair', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd');
  assert.equal(await dd('Notes').textContent(), XSS);
  assert.equal(await dd('Customer').textContent(), XSS);
  const notesChange = page.locator('section.activity table.diff tr', { has: page.locator('th', { hasText: /^Notes$/ }) });
  assert.equal(await notesChange.locator('td.new').textContent(), XSS);
  await assertInert('the invoice view page');

  await page.goto(`/admin/invoices/${invoiceId}/edit`);
  await expect(page.locator('#f-notes')).toHaveValue(XSS);
  await expect(page.locator('.picker-title')).toHaveText(XSS);
  await assertInert('the invoice edit form');
  await page.goto(`/admin/customers/${customerId}/edit`);
  await expect(page.locator('#f-name')).toHaveValue(XSS);
  await assertInert('the customer edit form');
});

test('search, the dashboard and a payload in the query string stay inert', async () => {
  await page.goto(`/admin/search?q=${encodeURIComponent(EMAIL)}`);
  await expect(page.locator('main')).toContainText(XSS);
  await assertInert('the global search');

  await page.goto('/admin/');
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  await assertInert('the dashboard');

  await page.goto(`/admin/invoices?search=${encodeURIComponent(XSS)}`);
  await expect(page.locator('form.filters input[name=search]')).toHaveValue(XSS);
  // It finds the invoice whose notes are the payload.
  await expect(page.locator('table[data-list-table] tbody td[data-col="number"]', { hasText: NUMBER })).toHaveCount(1);
  await assertInert('the invoices list searched for the payload');

  const res = await page.goto(`/admin/invoices?sort=${encodeURIComponent(XSS)}&filter%5Bstatus%5D=${encodeURIComponent(XSS)}`);
  assert.ok(res.status() < 500, `status ${res.status()}`);
  await assertInert('the invoices list with the payload as sort and filter');

  // The global search box in the header.
  await page.locator('form.global-search input[name=q]').fill(XSS);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.locator('form.global-search input[name=q]').press('Enter')]);
  await expect(page).toHaveURL(/\/admin\/search\?q=/);
  await expect(page.locator('form.global-search input[name=q]')).toHaveValue(XSS);
  await assertInert('the global search for the payload');
  assert.deepEqual(page.errors, [], 'no script errors');
});

test('control: the same checks do catch the payload when it is not escaped', async () => {
  const other = await page.context().newPage();
  try {
    await other.setContent(`<!doctype html><p>${XSS}</p>`);
    await eventually(async () => assert.ok([1, 2].includes(await other.evaluate(() => window.__xss))));
    assert.equal(await other.locator('img[src="x"]').count(), 1);
  } finally {
    await other.close();
  }
});
