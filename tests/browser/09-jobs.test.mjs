// Jobs and the queue dashboard, end to end: the administrator marks an
// invoice as sent, the demo's outbox subscriber queues `invoice_sent` on
// their behalf, a worker of `serve` runs it and the bell shows "Invoice N
// sent"; the dashboard shows the queue's figures and the run; an invoice of
// 0.00 makes the job fail on every attempt (a poison job) until it is in the
// failed list with its error; "Retry" from the dashboard queues it again and
// it fails again; a user without `view_jobs` is refused the page and its
// actions.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ADMIN,
  adminSession,
  clickAndLoad,
  eventually,
  expect,
  gotoConfirmed,
  launchBrowser,
  newContext,
  newPage,
  postForm,
  screenshot,
  signIn,
  texts,
} from './lib/helpers.mjs';

const STAMP = String(Date.now()).slice(-7);
const ZERO_NUMBER = `ZERO-${STAMP}`;
const JOBLESS = { name: 'Jo Jobless', email: `jobless-${STAMP}@example.com`, password: 'jobless-pass-2026!' };

let browser;
let page; // the administrator's

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

/** The bell's unread count on the current page. */
async function bellCount() {
  return Number((await page.locator('[data-bell-count]').first().textContent()).trim());
}

/** Sets the status of invoice `id` in the panel's edit form. */
async function setStatus(id, status) {
  await page.goto(`/admin/invoices/${id}/edit`);
  await page.locator('#f-status').selectOption(status);
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Save' }));
  await expect(page).toHaveURL(new RegExp(`/admin/invoices/${id}$`));
  await expect(page.locator('.flash-success')).toContainText('Saved');
}

/** The cells of the queue row `queue` of the dashboard, by column title. */
async function queueRow(queue) {
  const heads = await texts(page.locator('#jobs-queues thead th'));
  const cells = await texts(page.locator(`#jobs-queues tbody tr[data-queue="${queue}"] td`));
  return Object.fromEntries(heads.map((h, i) => [h, cells[i]]));
}

/** The failed-list row of the job for invoice `id`, if any. */
const failedRow = (id) =>
  page.locator('#jobs-failed tbody tr', { hasText: new RegExp(`"invoice_id":\\s*${id}\\b`) });

/** The recent runs of the job for invoice `id`. */
const recentRuns = (id) =>
  page.locator('#jobs-recent tbody tr', { hasText: new RegExp(`"invoice_id":\\s*${id}\\b`) });

let sentId;
let sentNumber;

test('marking an invoice as sent runs invoice_sent and the bell shows the notice', async () => {
  // A seeded draft.
  await page.goto('/admin/invoices?filter[status]=draft');
  const first = page.locator('table[data-list-table] tbody tr').first();
  await expect(first.locator('td[data-col="status"]')).toHaveText('draft');
  const href = await first.locator('a[href*="/admin/invoices/"]').first().getAttribute('href');
  sentId = href.match(/\/admin\/invoices\/(\d+)/)[1];
  await page.goto(`/admin/invoices/${sentId}`);
  sentNumber = (await page.locator('main h1').textContent()).trim();
  const before = await bellCount();

  await setStatus(sentId, 'sent');

  // The job runs in the demo's workers: the bell counts one more.
  await eventually(
    async () => {
      await page.reload();
      assert.ok((await bellCount()) > before, `the bell still shows ${before}`);
    },
    { timeout: 20_000, interval: 500 },
  );
  await clickAndLoad(page, page.locator('a.bell'));
  await expect(page).toHaveURL(/\/admin\/notifications$/);
  const notice = page.locator('article.notification', { hasText: `Invoice ${sentNumber} sent` });
  await expect(notice).toHaveCount(1);
  await expect(notice.locator('a')).toHaveAttribute('href', `/admin/invoices/${sentId}`);
  await expect(notice).toContainText(`${sentNumber} was marked as sent`);
});

test('the dashboard shows the queue figures and the run', async () => {
  await page.goto('/admin/jobs');
  await expect(page.locator('main h1')).toHaveText('Jobs');
  await expect(page.locator('#jobs-dashboard')).toContainText('Back end: sqlite');
  const q = await queueRow('default');
  assert.ok(Number(q.Done) >= 1, `done on default: ${JSON.stringify(q)}`);
  assert.ok(Number(q['Jobs/hour']) >= 1, `throughput on default: ${JSON.stringify(q)}`);
  assert.match(q['Runtime p50/p95/p99 (ms)'], /^\d+ \/ \d+ \/ \d+$/);
  const all = await queueRow('all');
  assert.ok(Number(all['Jobs/hour']) >= Number(q['Jobs/hour']));
  const run = recentRuns(sentId).first();
  await expect(run).toContainText('invoice_sent');
  await expect(run.locator('td').nth(3)).toHaveText('done');
  // The dashboard widget on the home page shows the same totals.
  await page.goto('/admin');
  await expect(page.locator('main')).toContainText('Jobs');
});

let zeroId;
let failedAttemptsBefore;

test('an invoice of 0.00 makes the job fail after its attempts, with its error', async () => {
  await page.goto('/admin/invoices/new');
  const form = page.locator('form.record-form');
  await form.locator('#f-customer_id').fill('1');
  await form.locator('#f-number').fill(ZERO_NUMBER);
  await form.locator('#f-status').selectOption('draft');
  await form.locator('#f-amount_cents').fill('0.00');
  await form.locator('#f-issued_on').fill('2025-06-01');
  await clickAndLoad(page, form.getByRole('button', { name: 'Create' }));
  await expect(page).toHaveURL(/\/admin\/invoices\/\d+$/);
  zeroId = page.url().match(/\/admin\/invoices\/(\d+)$/)[1];

  await setStatus(zeroId, 'sent');

  // Three attempts (1 s, then 2 s of backoff), then the failed list.
  await page.goto('/admin/jobs');
  await eventually(
    async () => {
      await page.reload();
      await expect(failedRow(zeroId), { timeout: 0 }).toHaveCount(1);
    },
    { timeout: 30_000, interval: 500 },
  );
  const row = failedRow(zeroId);
  const cells = await texts(row.locator('td'));
  assert.equal(cells[1], 'default');
  assert.equal(cells[2], 'invoice_sent');
  assert.equal(cells[3], '3', 'failed after its three attempts');
  assert.equal(cells[4], `invoice ${ZERO_NUMBER} has an amount of 0.00: nothing to send`);
  assert.ok(Number((await queueRow('default')).Failed) >= 1);
  // The runs before: two retried, the last failed, each with the error.
  const runs = recentRuns(zeroId);
  failedAttemptsBefore = await runs.count();
  assert.equal(failedAttemptsBefore, 3);
  assert.deepEqual((await texts(runs.locator('td:nth-child(4)'))).sort(), ['failed', 'retrying', 'retrying']);
  await screenshot(page, 'jobs-dashboard.png');
  // No notice for it.
  await page.goto('/admin/notifications');
  await expect(page.locator('article.notification', { hasText: ZERO_NUMBER })).toHaveCount(0);
});

test('"Retry" on the failed job queues it again, and it fails again', async () => {
  await page.goto('/admin/jobs');
  const row = failedRow(zeroId);
  const jobId = await row.getAttribute('data-job');
  await clickAndLoad(page, row.getByRole('button', { name: 'Retry' }));
  await expect(page).toHaveURL(/\/admin\/jobs$/);
  await expect(page.locator('.flash-success')).toHaveText(`Job ${jobId} queued again.`);
  // Three more runs, then back in the failed list (same job id).
  await eventually(
    async () => {
      await page.reload();
      assert.equal(await recentRuns(zeroId).count(), failedAttemptsBefore + 3);
      await expect(page.locator(`#jobs-failed tbody tr[data-job="${jobId}"]`), { timeout: 0 }).toHaveCount(1);
    },
    { timeout: 30_000, interval: 500 },
  );
  await expect(page.locator(`#jobs-failed tbody tr[data-job="${jobId}"]`)).toContainText('has an amount of 0.00');
  // Retrying a job that is not in the failed list says so.
  const res = await postForm(page, '/admin/jobs/actions/retry/no-such-job');
  assert.ok(res.status() >= 300 && res.status() < 400, `${res.status()}`);
  await page.goto('/admin/jobs');
  await expect(page.locator('.flash-error')).toContainText('no-such-job');
});

test('a user without view_jobs is refused the dashboard and its actions', async () => {
  // The administrator creates a user with no role.
  await gotoConfirmed(page, '/admin/access/users/new', ADMIN.password);
  await page.locator('#f-name').fill(JOBLESS.name);
  await page.locator('#f-email').fill(JOBLESS.email);
  await page.locator('#f-password').fill(JOBLESS.password);
  await clickAndLoad(page, page.locator('form.record-form').getByRole('button', { name: 'Create' }));
  await expect(page.locator('.flash-success')).toHaveText(`Created user ${JOBLESS.email}.`);

  const context = await newContext(browser);
  const other = await newPage(context);
  await other.goto('/admin/login');
  await signIn(other, JOBLESS.email, JOBLESS.password);
  assert.ok(!(await texts(other.locator('nav.sidebar a'))).some((t) => /^Jobs$/.test(t)), 'Jobs is not in the menu');
  const res = await other.goto('/admin/jobs');
  assert.equal(res.status(), 403);
  await expect(other.locator('main')).toContainText('view_jobs');
  for (const action of ['retry-all', 'retry/x', 'forget/x']) {
    const r = await postForm(other, `/admin/jobs/actions/${action}`);
    assert.equal(r.status(), 403, action);
  }
  // The failed job is still there (nothing was retried or forgotten).
  await page.goto('/admin/jobs');
  await expect(failedRow(zeroId)).toHaveCount(1);
  await context.close();
});
