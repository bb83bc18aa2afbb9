// Invoices as the administrator: create (a validation error first), edit,
// the activity log of the edit, delete (soft), then search, sort, filter
// and keyset paging on the seeded list.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  adminSession,
  clickAndLoad,
  eventually,
  expect,
  launchBrowser,
  screenshot,
  texts,
} from './lib/helpers.mjs';

let browser;
let page;
const NUMBER = `E2E-${String(Date.now()).slice(-8)}`;
let invoiceId;

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

const cell = (row, col) => row.locator(`td[data-col="${col}"]`);
const rows = () => page.locator('table[data-list-table] tbody tr');
const column = (col) => page.locator(`table[data-list-table] tbody td[data-col="${col}"]`);
const money = (s) => Number(s.replace(/,/g, ''));

test('create: a bad amount is refused with a message on the field, the fixed form saves', async () => {
  await page.goto('/admin/invoices');
  await expect(page.locator('main h1')).toHaveText('Invoices');
  await clickAndLoad(page, page.getByRole('link', { name: 'New Invoice' }));
  await expect(page).toHaveURL(/\/admin\/invoices\/new$/);
  await expect(page.locator('main h1')).toHaveText('New Invoice');

  const form = page.locator('form.record-form');
  await form.locator('#f-customer_id').fill('1');
  await form.locator('#f-number').fill(NUMBER);
  await form.locator('#f-status').selectOption('draft');
  await form.locator('#f-amount_cents').fill('12.345'); // three decimals: invalid
  await form.locator('#f-issued_on').fill('2025-03-14');
  await form.locator('#f-notes').fill('Created by the browser suite');
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/admin/invoices')),
    clickAndLoad(page, form.getByRole('button', { name: 'Create' })),
  ]);
  assert.equal(res.status(), 422);

  const amount = page.locator('.field', { has: page.locator('#f-amount_cents') });
  await expect(amount).toHaveAttribute('class', /has-error/);
  await expect(amount.locator('.error')).toContainText(/amount/i);
  // Only the amount is in error, and what was typed is kept.
  await expect(page.locator('.field.has-error')).toHaveCount(1);
  await expect(page.locator('#f-number')).toHaveValue(NUMBER);
  await expect(page.locator('#f-amount_cents')).toHaveValue('12.345');
  await expect(page.locator('#f-status')).toHaveValue('draft');
  await expect(page.locator('#f-notes')).toHaveValue('Created by the browser suite');
  await screenshot(page, 'invoice-form.png');

  // Nothing was saved (looked up in another tab, the form stays as it is).
  const other = await page.context().newPage();
  await other.goto(`/admin/invoices?search=${NUMBER}`);
  await expect(other.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');
  await other.close();

  await page.locator('#f-amount_cents').fill('1234.5');
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(page).toHaveURL(/\/admin\/invoices\/\d+$/);
  invoiceId = page.url().match(/\/admin\/invoices\/(\d+)$/)[1];
  await expect(page.locator('.flash-success')).toContainText(`Created Invoice ${NUMBER}`);
  await expect(page.locator('main h1')).toHaveText(NUMBER);
  const field = (label) => page.locator('dl.record .pair', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd');
  await expect(field('Amount')).toHaveText('1,234.50');
  await expect(field('Status')).toHaveText('draft');
  await expect(field('Issued on')).toHaveText('2025-03-14');
  await expect(page.locator('section.activity article.entry')).toHaveCount(1);
  await expect(page.locator('section.activity article.entry .event').first()).toHaveText('Created');
});

test('edit: the change is saved and the view page shows its audit entry with the changed fields', async () => {
  await page.goto(`/admin/invoices/${invoiceId}`);
  await clickAndLoad(page, page.locator('.page-head').getByRole('link', { name: 'Edit' }));
  await expect(page).toHaveURL(new RegExp(`/admin/invoices/${invoiceId}/edit$`));
  await expect(page.locator('main h1')).toHaveText(`Edit ${NUMBER}`);
  await expect(page.locator('#f-amount_cents')).toHaveValue('1234.50');
  await page.locator('#f-status').selectOption('sent');
  await page.locator('#f-amount_cents').fill('1,500');
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Save' }));
  await expect(page).toHaveURL(new RegExp(`/admin/invoices/${invoiceId}$`));
  await expect(page.locator('.flash-success')).toContainText(`Saved ${NUMBER}`);

  const entries = page.locator('section.activity article.entry');
  await expect(entries).toHaveCount(2);
  const latest = entries.first();
  await expect(latest.locator('.event')).toHaveText('Updated');
  await expect(latest.locator('header')).toContainText(`by ${ADMIN.email}`);
  await expect(latest.locator('header')).toContainText('from 127.0.0.1');
  const change = (label) => latest.locator('table.diff tbody tr', { has: page.locator('th', { hasText: new RegExp(`^${label}$`) }) });
  await expect(change('Status').locator('td.old')).toHaveText('draft');
  await expect(change('Status').locator('td.new')).toHaveText('sent');
  await expect(change('Amount').locator('td.old')).toHaveText('1,234.50');
  await expect(change('Amount').locator('td.new')).toHaveText('1,500.00');
  // Only what changed (updated_at is not audited).
  assert.deepEqual((await texts(latest.locator('table.diff tbody th'))).sort(), ['Amount', 'Status']);
  await expect(entries.nth(1).locator('.event')).toHaveText('Created');
  await screenshot(page, 'invoice-view.png');

  // The list shows the saved values.
  await page.goto(`/admin/invoices?search=${NUMBER}`);
  await expect(rows()).toHaveCount(1);
  await expect(cell(rows().first(), 'status')).toHaveText('sent');
  await expect(cell(rows().first(), 'amount_cents')).toHaveText('1,500.00');
});

test('delete: confirmed in a dialog, soft-deleted, audited, shown under "Only deleted"', async () => {
  await page.goto(`/admin/invoices/${invoiceId}`);
  page.dialogs.length = 0;
  await clickAndLoad(page, page.locator('.page-head').getByRole('link', { name: 'Delete' }));
  assert.deepEqual(page.dialogs, [{ type: 'confirm', message: `Delete ${NUMBER}?` }]);
  await expect(page).toHaveURL(/\/admin\/invoices$/);
  await expect(page.locator('.flash-success')).toHaveText(`Deleted Invoice ${invoiceId}.`);

  await page.goto(`/admin/invoices?search=${NUMBER}`);
  await expect(page.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');
  await page.goto(`/admin/invoices?search=${NUMBER}&trashed=only`);
  await expect(rows()).toHaveCount(1);
  await expect(rows().first()).toHaveAttribute('class', /is-deleted/);

  await page.goto(`/admin/invoices/${invoiceId}`);
  await expect(page.locator('main h1 .badge')).toHaveText('Deleted');
  await expect(page.locator('section.activity article.entry .event').first()).toHaveText('Deleted');
  await expect(page.locator('.page-head').getByRole('link', { name: 'Edit' })).toHaveCount(0);
  await expect(page.locator('.page-head').getByRole('button', { name: 'Restore' })).toBeVisible();
});

test('list: search narrows the rows (partial refresh, URL kept in sync)', async () => {
  await page.goto('/admin/invoices');
  await expect(page.locator('nav.pager .count')).toHaveText(/^1–25 of [\d,]+$/);
  await screenshot(page, 'invoices-list.png');
  await page.locator('form.filters input[name=search]').fill('INV-000123');
  await expect(rows()).toHaveCount(1);
  await expect(cell(rows().first(), 'number')).toHaveText('INV-000123');
  await expect(page.locator('nav.pager .count')).toHaveText('1–1 of 1');
  await expect(page).toHaveURL(/[?&]search=INV-000123/);
  // A search matching nothing.
  await page.locator('form.filters input[name=search]').fill('no-such-invoice-zzz');
  await expect(page.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');
});

test('list: sorting by a column, both directions', async () => {
  await page.goto('/admin/invoices');
  const header = page.locator('th[data-col="amount_cents"]');
  await header.locator('a').click();
  await expect(header).toHaveAttribute('aria-sort', 'ascending');
  await expect(page).toHaveURL(/[?&]sort=amount_cents(&|$)/);
  const asc = (await texts(column('amount_cents'))).map(money);
  assert.equal(asc.length, 25);
  assert.deepEqual(asc, [...asc].sort((a, b) => a - b));

  await header.locator('a').click();
  await expect(header).toHaveAttribute('aria-sort', 'descending');
  await expect(page).toHaveURL(/[?&]sort=-amount_cents(&|$)/);
  const desc = (await texts(column('amount_cents'))).map(money);
  assert.deepEqual(desc, [...desc].sort((a, b) => b - a));
  assert.ok(desc[0] > asc[24], 'the largest amounts come first');

  // Number, a text column.
  await page.locator('th[data-col="number"] a').click();
  await expect(page.locator('th[data-col="number"]')).toHaveAttribute('aria-sort', 'ascending');
  const numbers = await texts(column('number'));
  assert.deepEqual(numbers, [...numbers].sort());
});

test('list: filter by status (and search together)', async () => {
  await page.goto('/admin/invoices');
  await page.locator('form.filters select[name="filter[status]"]').selectOption('paid');
  await expect(page).toHaveURL(/filter%5Bstatus%5D=paid|filter\[status\]=paid/);
  await eventuallyAll('status', 'paid');
  const count = await page.locator('nav.pager .count').textContent();
  const total = Number(count.match(/of ([\d,]+)/)[1].replace(/,/g, ''));
  assert.ok(total > 25 && total < 300, `paid invoices: ${total}`);

  await page.locator('form.filters select[name="filter[status]"]').selectOption('void');
  await eventuallyAll('status', 'void');
  // Filter and search together, from a full page load of the URL.
  await page.goto('/admin/invoices?filter%5Bstatus%5D=void&search=INV-0001');
  await expect(page.locator('form.filters select[name="filter[status]"]')).toHaveValue('void');
  await expect(page.locator('form.filters input[name=search]')).toHaveValue('INV-0001');
  await eventuallyAll('status', 'void');
  for (const n of await texts(column('number'))) assert.match(n, /^INV-0001\d\d$/);
  // Reset goes back to everything.
  await clickAndLoad(page, page.getByRole('link', { name: 'Reset' }));
  await expect(page).toHaveURL(/\/admin\/invoices$/);
  await expect(page.locator('form.filters select[name="filter[status]"]')).toHaveValue('');
  await expect(page.locator('nav.pager .count')).toHaveText(/^1–25 of [\d,]+$/);
});

async function eventuallyAll(col, value) {
  await expect(column(col).first()).toHaveText(value);
  await eventually(async () => {
    const values = await texts(column(col));
    assert.ok(values.length > 0);
    assert.deepEqual([...new Set(values)], [value]);
  });
}

test('list: next page and back (keyset paging)', async () => {
  await page.goto('/admin/invoices?sort=id');
  const first = await texts(column('id'));
  assert.equal(first.length, 25);
  await expect(page.locator('nav.pager .count')).toHaveText(/^1–25 of [\d,]+$/);
  const of = (await page.locator('nav.pager .count').textContent()).match(/of [\d,]+/)[0];
  await expect(page.getByRole('link', { name: 'Previous' })).toHaveCount(0);

  await page.locator('nav.pager a[rel=next]').click();
  await expect(page.locator('nav.pager .count')).toHaveText(`26–50 ${of}`);
  await expect(page).toHaveURL(/page%5Bn%5D=2|page\[n\]=2/);
  const second = await texts(column('id'));
  assert.equal(second.length, 25);
  assert.ok(Number(second[0]) > Number(first[24]), 'page 2 continues after page 1');

  await page.locator('nav.pager a[rel=next]').click();
  await expect(page.locator('nav.pager .count')).toHaveText(`51–75 ${of}`);
  await page.locator('nav.pager a[rel=prev]').click();
  await expect(page.locator('nav.pager .count')).toHaveText(`26–50 ${of}`);
  assert.deepEqual(await texts(column('id')), second);
  await page.locator('nav.pager a[rel=prev]').click();
  await expect(page.locator('nav.pager .count')).toHaveText(`1–25 ${of}`);
  assert.deepEqual(await texts(column('id')), first);

  // The browser's back button too (history entries of the partial refresh).
  await page.locator('nav.pager a[rel=next]').click();
  await expect(page.locator('nav.pager .count')).toHaveText(`26–50 ${of}`);
  await page.goBack();
  await expect(page.locator('nav.pager .count')).toHaveText(`1–25 ${of}`);
});

test('the dashboard counts the invoices and lists the activity of this file', async () => {
  await clickAndLoad(page, page.locator('nav.sidebar').getByRole('link', { name: 'Dashboard' }));
  await expect(page.locator('main h1')).toHaveText('Dashboard');
  const invoices = page.locator('.widget ul.counts li', { hasText: 'Invoices' });
  await expect(invoices.locator('.n')).toHaveText('300');
  const activity = page.locator('.widget table.data tbody tr');
  await expect(activity.first()).toContainText(ADMIN.email);
  const recent = (await texts(activity)).join('\n');
  for (const event of [/Deleted\s+Invoice/i, /Updated\s+Invoice/i, /Created\s+Invoice/i]) assert.match(recent, event);
  await screenshot(page, 'dashboard.png');
});
