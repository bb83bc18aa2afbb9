// The panel without JavaScript (a context with javaScriptEnabled: false):
// sign-in with two-factor, the invoice list's search, sort and paging as
// plain GET forms and links, delete through the confirmation page, restore
// with the view page's form, sign-out.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  clickAndLoad,
  expect,
  launchBrowser,
  newContext,
  newPage,
  signIn,
  signOut,
  texts,
} from './lib/helpers.mjs';

let browser;
let page;

before(async () => {
  browser = await launchBrowser();
  const context = await newContext(browser, { javaScriptEnabled: false });
  page = await newPage(context);
});

after(async () => {
  await browser?.close();
});

const rows = () => page.locator('table[data-list-table] tbody tr');
const column = (col) => page.locator(`table[data-list-table] tbody td[data-col="${col}"]`);

test('JavaScript is really off in this context', async () => {
  // evaluate() still works with JavaScript off (it is the test's, not the
  // page's), so ask a page's own script.
  await page.setContent('<noscript><p id="off">off</p></noscript><script>document.write("<p id=on>on</p>")</script>');
  await expect(page.locator('#on')).toHaveCount(0);
});

test('sign-in with the password and a TOTP code works without JavaScript', async () => {
  await page.goto('/admin/invoices');
  await expect(page).toHaveURL(/\/admin\/login\?next=/);
  await signIn(page, ADMIN.email, ADMIN.password);
  await expect(page).toHaveURL(/\/admin\/invoices$/);
  await expect(page.locator('main h1')).toHaveText('Invoices');
});

test('the invoice list: search with the Apply button, sort and page with links', async () => {
  const search = page.locator('form.filters input[name=search]');
  await search.fill('INV-0002');
  await clickAndLoad(page, page.locator('form.filters').getByRole('button', { name: 'Apply' }));
  await expect(page).toHaveURL(/[?&]search=INV-0002(&|$)/);
  await expect(search).toHaveValue('INV-0002');
  await expect(rows()).toHaveCount(25);
  for (const n of await texts(column('number'))) assert.match(n, /^INV-0002\d\d$/);
  await expect(page.locator('nav.pager .count')).toHaveText('1–25 of 100');

  // Sort by number, descending (two clicks, two page loads).
  await clickAndLoad(page, page.locator('th[data-col="number"] a'));
  await clickAndLoad(page, page.locator('th[data-col="number"] a'));
  await expect(page.locator('th[data-col="number"]')).toHaveAttribute('aria-sort', 'descending');
  const desc = await texts(column('number'));
  assert.equal(desc[0], 'INV-000299');
  assert.deepEqual(desc, [...desc].sort().reverse());

  // Next page and back, keeping search and sort.
  await clickAndLoad(page, page.locator('nav.pager a[rel=next]'));
  await expect(page.locator('nav.pager .count')).toHaveText('26–50 of 100');
  await expect(page).toHaveURL(/search=INV-0002/);
  assert.equal((await texts(column('number')))[0], 'INV-000274');
  await clickAndLoad(page, page.locator('nav.pager a[rel=prev]'));
  await expect(page.locator('nav.pager .count')).toHaveText('1–25 of 100');
  assert.deepEqual(await texts(column('number')), desc);

  // A filter with the Apply button.
  await page.locator('form.filters select[name="filter[status]"]').selectOption('draft');
  await clickAndLoad(page, page.locator('form.filters').getByRole('button', { name: 'Apply' }));
  const statuses = new Set(await texts(column('status')));
  assert.deepEqual([...statuses], ['draft']);
});

test('delete through the confirmation page, restore with the view page form', async () => {
  await page.goto('/admin/invoices?search=INV-000200');
  await expect(rows()).toHaveCount(1);
  await clickAndLoad(page, rows().first().getByRole('link', { name: 'Delete' }));
  await expect(page).toHaveURL(/\/admin\/invoices\/200\/delete$/);
  await expect(page.locator('main h1')).toHaveText('Delete INV-000200?');
  await clickAndLoad(page, page.locator('main form').getByRole('button', { name: 'Delete' }));
  await expect(page.locator('.flash-success')).toHaveText('Deleted Invoice 200.');
  assert.deepEqual(page.dialogs, []);

  await page.goto('/admin/invoices/200');
  await expect(page.locator('main h1 .badge')).toHaveText('Deleted');
  await clickAndLoad(page, page.locator('.page-head').getByRole('button', { name: 'Restore' }));
  await expect(page.locator('.flash-success')).toHaveText('Restored INV-000200.');
  await expect(page.locator('main h1 .badge')).toHaveCount(0);
  const events = await texts(page.locator('section.activity .event'));
  assert.deepEqual(events.slice(0, 2), ['Restored', 'Deleted']);
});

test('sign-out from the user menu without JavaScript', async () => {
  await signOut(page);
  await expect(page).toHaveURL(/\/admin\/login/);
  await page.goto('/admin/');
  await expect(page).toHaveURL(/\/admin\/login/);
});
