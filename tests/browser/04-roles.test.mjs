// A role without `delete_invoice`: the administrator creates it in the role
// editor (the invoice row ticked, the deletes unticked), creates a user with
// it; that user (after setting up two-factor) sees no delete on invoices and
// is refused (403) when reaching for it directly.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  adminSession,
  clickAndLoad,
  expect,
  gotoConfirmed,
  launchBrowser,
  newContext,
  newPage,
  postForm,
  screenshot,
  signIn,
  submitBuiltForm,
  texts,
  userState,
  withPasswordConfirmation,
} from './lib/helpers.mjs';

const ROLE = 'clerk';
const CLERK = { name: 'Clara Clerk', email: 'clerk@example.com', password: 'clerk-pass-2026!' };
const GRANTED = [
  'view_any_invoice',
  'view_invoice',
  'create_invoice',
  'update_invoice',
  'restore_invoice',
  'export_invoice',
  'import_invoice',
  'view_any_customer',
  'view_customer',
];
const INVOICE = 5; // a seeded invoice

let browser;
let admin; // the administrator's page
let clerk; // the clerk's page

before(async () => {
  browser = await launchBrowser();
  ({ page: admin } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

const box = (page, perm) => page.locator(`form[data-role-grid] input[name=p][value="${perm}"]`);

test('the administrator creates a role in the role editor, without the invoice deletes', async () => {
  await gotoConfirmed(admin, '/admin/access/roles', ADMIN.password);
  await expect(admin.locator('main h1')).toHaveText('Roles');
  await withPasswordConfirmation(admin, ADMIN.password, async () => {
    await admin.locator('form.filters input[name=name]').fill(ROLE);
    await clickAndLoad(admin, admin.locator('form.filters').getByRole('button', { name: 'Create' }));
  });
  await expect(admin).toHaveURL(new RegExp(`/admin/access/roles/${ROLE}$`));
  await expect(admin.locator('.flash-success')).toHaveText(`Created role ${ROLE}.`);
  await expect(admin.locator('main h1')).toHaveText(`Role ${ROLE}`);
  await expect(admin.locator('form[data-role-grid] input[name=p]:checked')).toHaveCount(0);

  // The grid: "All" on the invoices row ticks its ten abilities ...
  const row = admin.locator('form[data-role-grid] tr[data-grid-row]', { has: admin.locator('th', { hasText: /^Invoices$/ }) });
  await row.locator('input[data-grid-all]').check();
  await expect(row.locator('input[name=p]:checked')).toHaveCount(10);
  // ... then the three deletes off again (the row's "All" is then mixed).
  for (const perm of ['delete_invoice', 'delete_any_invoice', 'force_delete_invoice']) await box(admin, perm).uncheck();
  assert.equal(await row.locator('input[data-grid-all]').evaluate((b) => b.indeterminate), true);
  await box(admin, 'view_any_customer').check();
  await box(admin, 'view_customer').check();
  assert.deepEqual(
    (await admin.locator('form[data-role-grid] input[name=p]:checked').evaluateAll((bs) => bs.map((b) => b.value))).sort(),
    [...GRANTED].sort(),
  );

  await withPasswordConfirmation(admin, ADMIN.password, async () => {
    if (!(await box(admin, 'view_invoice').isChecked())) throw new Error('the grid lost its ticks');
    await clickAndLoad(admin, admin.getByRole('button', { name: 'Save permissions' }));
  });
  await expect(admin.locator('.flash-success')).toBeVisible();
  // Stored: a fresh load shows the same ticks.
  await admin.reload();
  await expect(admin.locator('form[data-role-grid] p.muted').first()).toHaveText(`${GRANTED.length} permissions granted.`);
  for (const perm of GRANTED) await expect(box(admin, perm)).toBeChecked();
  for (const perm of ['delete_invoice', 'delete_any_invoice', 'force_delete_invoice', 'delete_customer']) {
    await expect(box(admin, perm)).toBeChecked(false);
  }
  await screenshot(admin, 'role-editor.png');
});

test('the administrator creates a user with that role', async () => {
  await gotoConfirmed(admin, '/admin/access/users/new', ADMIN.password);
  await expect(admin.locator('main h1')).toHaveText('New user');
  await admin.locator('#f-name').fill(CLERK.name);
  await admin.locator('#f-email').fill(CLERK.email);
  await admin.locator('#f-password').fill(CLERK.password);
  await clickAndLoad(admin, admin.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(admin).toHaveURL(/\/admin\/access\/users\/\d+$/);
  await expect(admin.locator('.flash-success')).toHaveText(`Created user ${CLERK.email}.`);
  await expect(admin.locator('main h1')).toHaveText(CLERK.name);

  await admin.locator(`input[name=roles][value="${ROLE}"]`).check();
  await clickAndLoad(admin, admin.locator('form.record-form').getByRole('button', { name: 'Save' }));
  await expect(admin.locator('.flash-success')).toHaveText('Saved.');
  await admin.reload();
  await expect(admin.locator(`input[name=roles][value="${ROLE}"]`)).toBeChecked();
  await expect(admin.locator('input[name=roles][value="super_admin"]')).toBeChecked(false);

  await gotoConfirmed(admin, '/admin/access/users', ADMIN.password);
  const row = admin.locator('table.data tbody tr', { hasText: CLERK.email });
  await expect(row).toContainText(CLERK.name);
  await expect(row.locator('td.bool').first()).toHaveText('No'); // no two-factor yet
});

test('the new user signs in, must set up two-factor, and sees invoices without any delete', async () => {
  const context = await newContext(browser);
  clerk = await newPage(context);
  await clerk.goto('/admin/invoices');
  await expect(clerk).toHaveURL(/\/admin\/login/);
  await signIn(clerk, CLERK.email, CLERK.password);
  assert.ok(userState(CLERK.email).secret, 'the clerk went through the two-factor setup');
  await expect(clerk).toHaveURL(/\/admin\/invoices$/); // the page asked for first
  await expect(clerk.locator('main h1')).toHaveText('Invoices');
  await expect(clerk.locator('details.user-menu summary')).toContainText(CLERK.name);

  // The list: rows with View and Edit, no Delete; no bulk delete.
  const rows = clerk.locator('table[data-list-table] tbody tr');
  await expect(rows).toHaveCount(25);
  await expect(rows.first().getByRole('link', { name: 'Edit' })).toBeVisible();
  await expect(clerk.locator('table[data-list-table] .row-actions').getByText('Delete')).toHaveCount(0);
  await expect(clerk.locator('table[data-list-table] a[href$="/delete"], [data-confirm-post]')).toHaveCount(0);
  const actions = await clerk.locator('form[data-bulk-form] select[name=action] option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(actions, ['export']);
  await expect(clerk.getByRole('link', { name: 'New Invoice' })).toBeVisible();

  // The view page: Edit, no Delete.
  await clerk.goto(`/admin/invoices/${INVOICE}`);
  await expect(clerk.locator('.page-head').getByRole('link', { name: 'Edit' })).toBeVisible();
  await expect(clerk.locator('.page-head').getByRole('link', { name: 'Delete' })).toHaveCount(0);
  await expect(clerk.locator('main a[href$="/delete"]')).toHaveCount(0);
  // The Access pages are not in the menu.
  assert.ok(!(await texts(clerk.locator('nav.sidebar a'))).some((t) => /Users|Roles/.test(t)));
});

test('reaching for delete directly is refused with a 403 page, and nothing is deleted', async () => {
  // GET the confirmation page.
  const res = await clerk.goto(`/admin/invoices/${INVOICE}/delete`);
  assert.equal(res.status(), 403);
  await expect(clerk.locator('.error-page .status')).toHaveText('403');
  await expect(clerk.locator('.error-page h1')).toHaveText('Forbidden');
  await expect(clerk.locator('.error-page')).toContainText('delete_invoice');

  // POST the delete from a form in the page (CSRF token and all).
  await clerk.goto(`/admin/invoices/${INVOICE}`);
  const posted = await submitBuiltForm(clerk, `/admin/invoices/${INVOICE}/delete`, [['confirmed', '1']]);
  assert.equal(posted.status(), 403);
  await expect(clerk.locator('.error-page h1')).toHaveText('Forbidden');

  // And the bulk delete and force delete, straight over HTTP.
  await clerk.goto('/admin/invoices');
  const bulk = await postForm(clerk, '/admin/invoices/bulk', [
    ['action', 'delete'],
    ['scope', 'selected'],
    ['ids', String(INVOICE)],
    ['ids', String(INVOICE + 1)],
    ['confirmed', '1'],
  ]);
  assert.equal(bulk.status(), 403);
  const all = await postForm(clerk, '/admin/invoices/bulk', [
    ['action', 'delete'],
    ['scope', 'all'],
    ['query', ''],
    ['confirmed', '1'],
  ]);
  assert.equal(all.status(), 403);
  const force = await postForm(clerk, `/admin/invoices/${INVOICE}/force-delete`, { confirmed: '1' });
  assert.equal(force.status(), 403);

  // Still there, for the clerk and for the administrator.
  await clerk.goto(`/admin/invoices/${INVOICE}`);
  await expect(clerk.locator('main h1')).toHaveText('INV-000005');
  await expect(clerk.locator('main h1 .badge')).toHaveCount(0);
  await admin.goto(`/admin/invoices/${INVOICE}`);
  await expect(admin.locator('main h1 .badge')).toHaveCount(0);
  assert.deepEqual(await texts(admin.locator('section.activity .event')), ['Created']);
  await admin.goto('/admin/invoices');
  await expect(admin.locator('nav.pager .count')).toHaveText(/of 300$/);
});

test('what the role allows still works: the clerk edits an invoice', async () => {
  await clerk.goto(`/admin/invoices/${INVOICE}/edit`);
  await clerk.locator('#f-notes').fill('Checked by the clerk');
  await clickAndLoad(clerk, clerk.locator('form.record-form').getByRole('button', { name: 'Save' }));
  await expect(clerk).toHaveURL(new RegExp(`/admin/invoices/${INVOICE}$`));
  await expect(clerk.locator('.flash-success')).toContainText('Saved INV-000005');
  const latest = clerk.locator('section.activity article.entry').first();
  await expect(latest.locator('.event')).toHaveText('Updated');
  await expect(latest.locator('header')).toContainText(`by ${CLERK.email}`);
  // And the Access pages answer 403 (after the password confirmation).
  await gotoConfirmed(clerk, '/admin/access/roles', CLERK.password);
  await expect(clerk.locator('.error-page h1')).toHaveText('Forbidden');
});
