// Bulk actions on invoices (a soft-delete resource): tick rows, bulk delete
// (confirmed in a dialog), list the deleted ones, restore them in bulk; the
// audit trail of a restored invoice shows both, tagged `bulk`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ADMIN, adminSession, clickAndLoad, eventually, expect, launchBrowser, texts } from './lib/helpers.mjs';

let browser;
let page;
// INV-000040 .. INV-000049: ten invoices of the seed.
const SEARCH = 'INV-00004';
const CHOSEN = ['INV-000041', 'INV-000042', 'INV-000043'];

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

const rows = () => page.locator('table[data-list-table] tbody tr');
const numbers = () => texts(page.locator('table[data-list-table] tbody td[data-col="number"]'));
const rowOf = (number) =>
  page.locator('table[data-list-table] tbody tr', {
    has: page.locator('td[data-col="number"]', { hasText: new RegExp(`^${number}$`) }),
  });
const bulkAction = () => page.locator('form[data-bulk-form] select[name=action]');
const optionValues = async () => (await bulkAction().locator('option').evaluateAll((os) => os.map((o) => o.value)));

test('bulk delete of three ticked rows', async () => {
  await page.goto(`/admin/invoices?search=${SEARCH}&sort=number`);
  await expect(rows()).toHaveCount(10);
  assert.deepEqual(await numbers(), Array.from({ length: 10 }, (_, i) => `INV-00004${i}`));
  assert.deepEqual(await optionValues(), ['delete', 'force_delete', 'export']);

  for (const n of CHOSEN) await rowOf(n).locator('input[data-row-check]').check();
  await expect(page.locator('input[data-row-check]:checked')).toHaveCount(3);
  // Some rows ticked: the "select page" box is indeterminate.
  assert.equal(await page.locator('input[data-select-page]').evaluate((b) => b.indeterminate), true);

  await bulkAction().selectOption('delete');
  page.dialogs.length = 0;
  await clickAndLoad(page, page.getByRole('button', { name: 'Apply to selected' }));
  assert.deepEqual(page.dialogs, [{ type: 'confirm', message: 'Delete 3 selected records?' }]);
  await expect(page.locator('.flash-success')).toHaveText('Deleted 3 Invoices.');
  // Back on the same list (search and sort kept), without them.
  await expect(page).toHaveURL(/search=INV-00004/);
  await expect(rows()).toHaveCount(7);
  const left = await numbers();
  for (const n of CHOSEN) assert.ok(!left.includes(n), `${n} is gone from the list`);
});

test('the deleted rows are listed under "Only deleted" and restored in bulk', async () => {
  await page.locator('form.filters select[name=trashed]').selectOption('only');
  await expect(page).toHaveURL(/trashed=only/);
  await eventually(async () => assert.deepEqual(await numbers(), CHOSEN));
  for (const n of CHOSEN) await expect(rowOf(n)).toHaveAttribute('class', /is-deleted/);
  // Deleted rows offer restore (and no second delete).
  assert.deepEqual(await optionValues(), ['restore', 'force_delete', 'export']);
  await expect(rowOf(CHOSEN[0]).getByRole('button', { name: 'Restore' })).toBeVisible();
  await expect(rowOf(CHOSEN[0]).getByRole('link', { name: 'Edit' })).toHaveCount(0);

  // Select the whole page with the header box.
  await page.locator('input[data-select-page]').check();
  await expect(page.locator('input[data-row-check]:checked')).toHaveCount(3);
  await expect(page.locator('[data-select-all-banner]')).toBeVisible();
  await bulkAction().selectOption('restore');
  page.dialogs.length = 0;
  await clickAndLoad(page, page.getByRole('button', { name: 'Apply to selected' }));
  assert.deepEqual(page.dialogs, [], 'restore needs no confirmation');
  await expect(page.locator('.flash-success')).toHaveText('Restored 3 Invoices.');
  await expect(page.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');

  await page.goto(`/admin/invoices?search=${SEARCH}&sort=number`);
  await expect(rows()).toHaveCount(10);
  await expect(page.locator('table[data-list-table] tbody tr.is-deleted')).toHaveCount(0);
});

test('the audit trail of a restored invoice shows the bulk delete and the restore', async () => {
  await clickAndLoad(page, rowOf(CHOSEN[1]).locator('td[data-col="number"] a'));
  await expect(page.locator('main h1')).toHaveText(CHOSEN[1]);
  await expect(page.locator('main h1 .badge')).toHaveCount(0);
  const entries = page.locator('section.activity article.entry');
  await expect(entries).toHaveCount(3);
  assert.deepEqual(await texts(entries.locator('.event')), ['Restored', 'Deleted', 'Created']);
  // The bulk delete is tagged `bulk`. (The bulk restore is not: it restores
  // record by record, without the tag; see the report of this suite.)
  await expect(entries.nth(1).locator('.tag')).toContainText('bulk');
  await expect(entries.nth(0).locator('header')).toContainText(`by ${ADMIN.email}`);
});
