// Imports and exports of invoices through the panel, end to end: a CSV
// uploaded on the imports page, its headings matched to fields (one mapping
// changed by hand), the preview of its first rows, a dry run (creates,
// updates, failures), the run, the batch in the list, the failed-rows file
// (the original columns plus the reason), the rollback (created invoices
// gone, the updated one as it was). An XLSX file written by the test goes
// the same way. Hostile files: HTML in cells is shown as text, an empty file
// and a PNG named .csv get a clear error. Exports from the list: a search
// and a filter, the visible columns only, and "export selected".

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { XSS, adminSession, clickAndLoad, eventually, expect, launchBrowser, texts } from './lib/helpers.mjs';
import { parseCsv, xlsx } from './lib/files.mjs';

const STAMP = String(Date.now()).slice(-7);
const NEW = [`IMP-${STAMP}-1`, `IMP-${STAMP}-2`];
const BAD = `IMP-${STAMP}-3`;
const UPDATED = 'INV-000150';
const HEADINGS = ['Customer ID', 'Number', 'Status', 'Amount cents', 'Issued on', 'Memo'];

let browser;
let page;

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

const csv = (rows) =>
  `${rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\r\n')}\r\n`;

/** Uploads `file` ({name, mimeType, buffer}) for invoices; leaves the page where the server sends it. */
async function upload(file) {
  await page.goto('/admin/imports');
  const form = page.locator('#import-upload');
  await form.locator('select[name=resource]').selectOption('invoices');
  await form.locator('input[name=file]').setInputFiles(file);
  await clickAndLoad(page, form.getByRole('button', { name: 'Upload and preview' }));
}

/** The mapping table: {heading: selected option value}. */
async function mapping() {
  const rows = page.locator('#import-mapping tbody tr');
  const out = {};
  for (let i = 0; i < (await rows.count()); i++) {
    const heading = (await rows.nth(i).locator('td').first().textContent()).trim();
    out[heading] = await rows.nth(i).locator('select').inputValue();
  }
  return out;
}

/** The invoice `number`'s id, from the list. */
async function invoiceId(number) {
  await page.goto(`/admin/invoices?search=${encodeURIComponent(number)}`);
  const link = page.locator('table[data-list-table] tbody td[data-col="number"] a', { hasText: number });
  await expect(link).toHaveCount(1);
  return (await link.getAttribute('href')).match(/\/admin\/invoices\/(\d+)/)[1];
}

/** The invoice's values in its edit form. */
async function editValues(id) {
  await page.goto(`/admin/invoices/${id}/edit`);
  const v = {};
  for (const f of ['customer_id', 'number', 'status', 'amount_cents', 'issued_on', 'notes']) {
    v[f] = await page.locator(`#f-${f}`).inputValue();
  }
  return v;
}

let original; // INV-000150 before the import
let updatedId;
let batchId;
let rows; // the CSV's rows, headings first

test('a CSV upload: headings matched, one mapping changed by hand, the first rows previewed', async () => {
  updatedId = await invoiceId(UPDATED);
  original = await editValues(updatedId);
  assert.equal(original.number, UPDATED);
  rows = [
    HEADINGS,
    ['1', NEW[0], 'draft', '12.50', '2025-05-01', 'first imported'],
    ['1', NEW[1], 'paid', '30.00', '2025-05-02', 'second imported'],
    [original.customer_id, UPDATED, original.status, '77.77', original.issued_on, 'updated by import'],
    ['1', BAD, 'bogus', '5.00', '2025-05-03', 'a bad status'],
  ];
  await upload({ name: `invoices-${STAMP}.csv`, mimeType: 'text/csv', buffer: Buffer.from(csv(rows)) });
  await expect(page).toHaveURL(/\/admin\/import-preview\/[A-Za-z0-9]+$/);
  await expect(page.locator('#import-preview')).toContainText(`invoices-${STAMP}.csv into Invoices (csv)`);

  // Automatic: every heading but "Memo" found its field.
  assert.deepEqual(await mapping(), {
    'Customer ID': 'Customer ID=customer_id',
    Number: 'Number=number',
    Status: 'Status=status',
    'Amount cents': 'Amount cents=amount_cents',
    'Issued on': 'Issued on=issued_on',
    Memo: 'Memo=',
  });
  // By hand: Memo feeds the notes.
  const memo = page.locator('#import-mapping tbody tr', { hasText: 'Memo' }).locator('select');
  await memo.selectOption('Memo=notes');
  // Rows whose number exists update that invoice (no key: every row is new).
  const key = page.locator('#import-preview select[name=key]');
  await expect(key).toHaveValue('');
  await key.selectOption('number');
  await clickAndLoad(page, page.getByRole('button', { name: 'Update the preview' }));
  await expect(page).toHaveURL(/[?&]map=Memo%3Dnotes/);
  await expect(page).toHaveURL(/[?&]key=number/);
  assert.equal((await mapping()).Memo, 'Memo=notes');
  await expect(key).toHaveValue('number');

  // The first rows, as read: the bad status flagged with its reason.
  const previewRows = page.locator('#import-rows tbody tr');
  await expect(previewRows).toHaveCount(4);
  assert.deepEqual(await texts(page.locator('#import-rows thead th')), ['Row', ...HEADINGS]);
  // Rows numbered by their line, as a spreadsheet shows them (the file has CRLF line ends).
  assert.deepEqual(await texts(previewRows.locator('td:first-child')), ['2', '3', '4', '5']);
  assert.deepEqual((await texts(previewRows.nth(0).locator('td'))).slice(1), rows[1]);
  const badStatus = previewRows.nth(3).locator('td').nth(3);
  await expect(badStatus).toHaveAttribute('class', /error/);
  await expect(badStatus).toContainText('bogus');
});

test('the dry run counts creates, updates and failures and writes nothing', async () => {
  await clickAndLoad(page, page.getByRole('button', { name: 'Dry run' }));
  await expect(page).toHaveURL(/\/admin\/import-preview\//);
  await expect(page.locator('.flash-success')).toContainText(/Dry run \d+: 2 created, 1 updated, 0 unchanged, 1 failed \(row 5 Status: must be one of: draft, sent, paid, void\)\./);
  // The mapping by hand and the key are still there for the run.
  assert.equal((await mapping()).Memo, 'Memo=notes');
  await expect(page.locator('#import-preview select[name=key]')).toHaveValue('number');
  const previewUrl = page.url();

  await page.goto(`/admin/invoices?search=IMP-${STAMP}`);
  await expect(page.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');
  assert.equal((await editValues(updatedId)).amount_cents, original.amount_cents);
  await page.goto(previewUrl);
});

test('the run: the batch in the list with its counts, the failed-rows file', async () => {
  await clickAndLoad(page, page.getByRole('button', { name: 'Import', exact: true }));
  await expect(page).toHaveURL(/\/admin\/imports$/);
  const flash = await page.locator('.flash-success').textContent();
  const m = flash.match(/Import (\d+)(?:: 2 created, 1 updated, 0 unchanged, 1 failed| runs in the background)/);
  assert.ok(m, `flash: ${flash}`);
  batchId = m[1];

  // Done (it may have run as a job): the row shows it.
  const row = page.locator(`#import-${batchId}`);
  await eventually(
    async () => {
      await page.reload();
      await expect(row.locator('td.status'), { timeout: 0 }).toHaveText('done');
    },
    { timeout: 30_000, interval: 500 },
  );
  const cells = await texts(row.locator('td'));
  assert.equal(cells[1], 'Invoices');
  assert.equal(cells[2], `invoices-${STAMP}.csv`);
  assert.match(cells[5], /^4( \/ 4)?$/, `progress: ${cells[5]}`);
  assert.deepEqual(cells.slice(6, 8), ['2', '1']);
  assert.match(cells[8], /^1 failed rows$/);

  // The failed rows: the original columns and the reason.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('link', { name: 'failed rows' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `import-${batchId}-failed.csv`);
  const failed = parseCsv(fs.readFileSync(await download.path(), 'utf8'));
  assert.equal(failed.length, 2, JSON.stringify(failed));
  assert.deepEqual(failed[0].slice(0, HEADINGS.length), HEADINGS);
  assert.equal(failed[0].length, HEADINGS.length + 1, 'one more column: the error');
  assert.deepEqual(failed[1].slice(0, HEADINGS.length), rows[4]);
  assert.match(failed[1][HEADINGS.length], /status/i);
  assert.match(failed[1][HEADINGS.length], /draft|one of/i);

  // The records are there.
  const created = await editValues(await invoiceId(NEW[0]));
  assert.deepEqual([created.status, created.amount_cents, created.notes], ['draft', '12.50', 'first imported']);
  const updated = await editValues(updatedId);
  assert.deepEqual([updated.amount_cents, updated.notes], ['77.77', 'updated by import']);
  await page.goto(`/admin/invoices?search=IMP-${STAMP}`);
  assert.deepEqual((await texts(page.locator('td[data-col="number"]'))).sort(), NEW);
});

test('the rollback removes the created invoices and restores the updated one', async () => {
  await page.goto('/admin/imports');
  const row = page.locator(`#import-${batchId}`);
  await clickAndLoad(page, row.getByRole('button', { name: 'Roll back' }));
  await expect(page.locator('.flash-success')).toHaveText(`Import ${batchId} rolled back: 2 removed, 1 restored.`);
  await expect(page.locator(`#import-${batchId} td.status`)).toHaveText('rolled_back');
  await expect(page.locator(`#import-${batchId}`).getByRole('button', { name: 'Roll back' })).toHaveCount(0);

  await page.goto(`/admin/invoices?search=IMP-${STAMP}&trashed=with`);
  await expect(page.locator('table[data-list-table] tbody')).toContainText('No Invoices found.');
  assert.deepEqual(await editValues(updatedId), original);
});

test('an XLSX file is previewed and imported the same way', async () => {
  const number = `IMPX-${STAMP}`;
  const book = xlsx([
    ['Customer ID', 'Number', 'Status', 'Amount cents', 'Issued on', 'Notes'],
    ['2', number, 'sent', '40.00', '2025-07-01', 'from a workbook'],
  ]);
  await upload({
    name: `invoices-${STAMP}.xlsx`,
    mimeType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    buffer: book,
  });
  await expect(page.locator('#import-preview')).toContainText(`invoices-${STAMP}.xlsx into Invoices (xlsx)`);
  assert.equal((await mapping()).Notes, 'Notes=notes');
  assert.deepEqual((await texts(page.locator('#import-rows tbody tr td'))).slice(1), [
    '2',
    number,
    'sent',
    '40.00',
    '2025-07-01',
    'from a workbook',
  ]);
  await clickAndLoad(page, page.getByRole('button', { name: 'Import', exact: true }));
  await expect(page.locator('.flash-success')).toContainText(/Import \d+: 1 created, 0 updated, 0 unchanged, 0 failed\./);
  const v = await editValues(await invoiceId(number));
  assert.deepEqual([v.customer_id, v.status, v.amount_cents, v.notes], ['2', 'sent', '40.00', 'from a workbook']);
});

test('HTML in cells is shown as text in the preview; nothing runs', async () => {
  const rowsXss = [
    ['Customer ID', 'Number', 'Status', XSS],
    ['1', XSS, 'draft', `<b>bold</b>${XSS}`],
  ];
  await upload({ name: 'xss.csv', mimeType: 'text/csv', buffer: Buffer.from(csv(rowsXss)) });
  await expect(page.locator('#import-preview')).toContainText('xss.csv into Invoices (csv)');
  await expect(page.locator('#import-rows tbody td').nth(2)).toHaveText(XSS);
  await expect(page.locator('#import-rows tbody td').nth(4)).toHaveText(`<b>bold</b>${XSS}`);
  await expect(page.locator('#import-mapping tbody td').nth(6)).toHaveText(XSS);
  assert.equal(await page.locator('#import-preview script, #import-preview img, #import-preview b').count(), 0);
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test('an empty file and a PNG named .csv get a clear error', async () => {
  await upload({ name: 'empty.csv', mimeType: 'text/csv', buffer: Buffer.alloc(0) });
  await expect(page.locator('main .flash-error, main .error')).toContainText('the file is empty');
  await expect(page.getByRole('button', { name: 'Import', exact: true })).toHaveCount(0);

  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  );
  await upload({ name: 'picture.csv', mimeType: 'text/csv', buffer: png });
  await expect(page.locator('main .flash-error, main .error')).toContainText(/not (a )?(CSV|UTF-8|text)|cannot be read|encoding/i);
  await expect(page.getByRole('button', { name: 'Import', exact: true })).toHaveCount(0);
  // Nothing was imported from either.
  await page.goto('/admin/imports');
  const files = await texts(page.locator('#imports tbody tr td:nth-child(3)'));
  assert.ok(!files.includes('picture.csv') && !files.includes('empty.csv'), files.join(', '));
});

// ------------------------------------------------------------------ export

const listRows = () => page.locator('table[data-list-table] tbody tr');
const bulkAction = () => page.locator('form[data-bulk-form] select[name=action]');

/** The visible column labels of the list (sort arrows dropped). */
async function visibleHeadings() {
  return page
    .locator('table[data-list-table] thead th[data-col]')
    .evaluateAll((ths) =>
      ths.filter((th) => !th.classList.contains('is-hidden')).map((th) => th.textContent.replace(/[▲▼]/g, '').trim()),
    );
}

/** Every number the list shows, following "Next". */
async function allNumbers() {
  const out = [];
  for (;;) {
    out.push(...(await texts(page.locator('table[data-list-table] tbody td[data-col="number"]'))));
    const next = page.locator('nav.pager a[rel=next]');
    if ((await next.count()) === 0) return out;
    await clickAndLoad(page, next);
  }
}

/** Submits the bulk form with `button`, answers the downloaded CSV's rows. */
async function exportWith(button) {
  await bulkAction().selectOption('export');
  await page.locator('form[data-bulk-form] select[name=format]').selectOption('csv');
  const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
  assert.match(download.suggestedFilename(), /\.csv$/);
  return parseCsv(fs.readFileSync(await download.path(), 'utf8'));
}

const columnToggle = (name) => page.locator(`[data-columns-form] input[data-col-toggle="${name}"]`);

test('export of a searched and filtered list: exactly its rows, the visible columns', async () => {
  const list = '/admin/invoices?search=INV-0002&filter[status]=paid&sort=number';
  await page.goto(list);
  const expected = await allNumbers();
  assert.ok(expected.length > 0, 'some paid invoices in INV-0002xx');
  assert.ok(expected.every((n) => n.startsWith('INV-0002')));

  // Hide a column (the list's column menu, saved with fetch): the export leaves it out.
  await page.goto(list);
  await page.locator('details.columns-menu summary').click();
  await expect(columnToggle('issued_on')).toBeChecked();
  await columnToggle('issued_on').uncheck();
  await expect(page.locator('table[data-list-table] thead th[data-col="issued_on"]')).toHaveAttribute('class', /is-hidden/);
  const headings = await visibleHeadings();
  assert.ok(!headings.includes('Issued on'), headings.join(', '));
  await page.locator('details.columns-menu summary').click(); // closes the menu
  try {
    const file = await exportWith(page.locator('form[data-bulk-form] button[data-scope-all]'));
    assert.deepEqual(file[0], headings);
    const numberCol = file[0].indexOf('Number');
    assert.ok(numberCol >= 0, file[0].join(', '));
    assert.deepEqual(
      file.slice(1).map((r) => r[numberCol]),
      expected,
      'the rows of the list, in its order',
    );
    const statusCol = file[0].indexOf('Status');
    assert.ok(file.slice(1).every((r) => r[statusCol] === 'paid'));
    // After a reload too (the preference was saved).
    await page.reload();
    assert.deepEqual(await visibleHeadings(), headings);
  } finally {
    await page.goto(list);
    await page.locator('details.columns-menu summary').click();
    await columnToggle('issued_on').check();
    await page.locator('details.columns-menu summary').click();
    await page.reload();
    assert.ok((await visibleHeadings()).includes('Issued on'), 'the column is back');
  }
});

test('"export selected": only the ticked rows', async () => {
  await page.goto('/admin/invoices?search=INV-00025&sort=number');
  await expect(listRows()).toHaveCount(10);
  const chosen = ['INV-000251', 'INV-000254', 'INV-000258'];
  for (const n of chosen) {
    await page
      .locator('table[data-list-table] tbody tr', {
        has: page.locator('td[data-col="number"]', { hasText: new RegExp(`^${n}$`) }),
      })
      .locator('input[data-row-check]')
      .check();
  }
  const file = await exportWith(page.getByRole('button', { name: 'Apply to selected' }));
  assert.deepEqual(file[0], await visibleHeadings());
  const numberCol = file[0].indexOf('Number');
  assert.deepEqual(file.slice(1).map((r) => r[numberCol]).sort(), chosen);
});
