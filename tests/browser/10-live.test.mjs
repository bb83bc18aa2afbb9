// Live updates in the panel: the demo serves broadcasting, so `panel.js`
// subscribes the open list to its resource channel and the bell to the
// user's own channel. An invoice created in a second tab appears in the
// first tab's (filtered) list without a reload; marking an invoice as sent
// in the second tab makes the first tab's bell count up without a reload.
// With JavaScript off nothing of this runs (06-no-javascript covers the
// pages themselves).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { adminSession, clickAndLoad, eventually, expect, launchBrowser, newPage } from './lib/helpers.mjs';

const STAMP = String(Date.now()).slice(-7);
const NUMBER = `LIVE-${STAMP}`;

let browser;
let context;
let page; // the tab that watches
let other; // the tab that writes

before(async () => {
  browser = await launchBrowser();
  ({ context, page } = await adminSession(browser));
  other = await newPage(context);
  if (process.env.LIVE_DEBUG) {
    page.on('console', (m) => console.log('console:', m.type(), m.text()));
    page.on('websocket', (ws) => {
      console.log('ws open', ws.url());
      ws.on('framesent', (f) => console.log('ws >', f.payload));
      ws.on('framereceived', (f) => console.log('ws <', f.payload));
      ws.on('close', () => console.log('ws closed'));
    });
  }
});

after(async () => {
  await browser?.close();
});

/** Waits until `tab`'s live client has subscribed to `channel`. */
async function subscribed(tab, channel) {
  await tab.waitForResponse(
    (r) => r.url().endsWith('/broadcasting/auth') && r.request().postData()?.includes(encodeURIComponent(channel)),
    { timeout: 10_000 },
  );
  // The subscribe frame follows the auth answer at once.
  await tab.waitForTimeout(200);
}

test('the page carries the live key only for a signed-in user', async () => {
  await page.goto('/admin/');
  await expect(page.locator('meta[name="live-key"]')).toHaveCount(1);
  const anonymous = await browser.newContext();
  const login = await anonymous.newPage();
  await login.goto(new URL('/admin/login', page.url()).href);
  assert.equal(await login.locator('meta[name="live-key"]').count(), 0);
  await anonymous.close();
});

test('a record created elsewhere appears in an open list', async () => {
  const watching = subscribed(page, 'private-invoices');
  await page.goto(`/admin/invoices?search=${NUMBER}`);
  await watching;
  assert.ok(!(await page.locator('[data-list-region]').textContent()).includes(NUMBER));
  const before = page.url();

  await other.goto('/admin/invoices/new');
  const form = other.locator('form.record-form');
  await form.locator('#f-customer_id').fill('1');
  await form.locator('#f-number').fill(NUMBER);
  await form.locator('#f-status').selectOption('draft');
  await form.locator('#f-amount_cents').fill('12.34');
  await form.locator('#f-issued_on').fill('2025-07-01');
  await clickAndLoad(other, form.getByRole('button', { name: 'Create' }));
  await expect(other).toHaveURL(/\/admin\/invoices\/\d+$/);

  // The first tab was not reloaded: its list region was.
  await expect(page.locator('table[data-list-table] tbody')).toContainText(NUMBER, { timeout: 10_000 });
  assert.equal(page.url(), before);
});

test('the bell counts up when a notice arrives', async () => {
  const watching = subscribed(page, 'private-user.');
  await page.goto('/admin/');
  await watching;
  const count = async () => Number((await page.locator('[data-bell-count]').first().textContent()).trim());
  const start = await count();

  // Marking a draft as sent queues invoice_sent, whose notice goes to the
  // administrator (see 09-jobs).
  await other.goto('/admin/invoices?filter[status]=draft');
  const href = await other.locator('table[data-list-table] tbody tr a[href*="/admin/invoices/"]').first().getAttribute('href');
  const id = href.match(/\/admin\/invoices\/(\d+)/)[1];
  await other.goto(`/admin/invoices/${id}/edit`);
  await other.locator('#f-status').selectOption('sent');
  await clickAndLoad(other, other.locator('form.record-form').getByRole('button', { name: 'Save' }));
  await expect(other.locator('.flash-success')).toContainText('Saved');

  await eventually(async () => assert.ok((await count()) > start, `the bell still shows ${start}`), {
    timeout: 20_000,
    interval: 200,
  });
  await expect(page.locator('a.bell')).toHaveAttribute('aria-label', `${start + 1} unread notifications`);
});
