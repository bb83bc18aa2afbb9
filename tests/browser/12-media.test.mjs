// The media library in the panel, end to end, on a product of the demo:
// images uploaded through the upload field under the edit form, the
// gallery on the view page (the thumbnail appears once the conversion job
// ran), reordering with "Move up" / "Move down" (plain forms: also without
// JavaScript), removing one, and a text file named .png refused with a
// clear message and nothing attached.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { adminSession, clickAndLoad, eventually, expect, launchBrowser, texts } from './lib/helpers.mjs';
import { png } from './lib/files.mjs';

const STAMP = String(Date.now()).slice(-7);
const RED = `red-${STAMP}.png`;
const BLUE = `blue-${STAMP}.png`;

let browser;
let page;
let productId;

before(async () => {
  browser = await launchBrowser();
  ({ page } = await adminSession(browser));
});

after(async () => {
  await browser?.close();
});

const gallery = () => page.locator('section.media ul.gallery li');
/** The file names in the gallery, in its order. */
const galleryNames = async () =>
  (await texts(gallery().locator('span.muted'))).map((t) => t.split(' · ')[0]);
const itemOf = (name) => gallery().filter({ hasText: name });
const uploadForm = () => page.locator('section.media form', { has: page.locator('input[name=file]') });

/** Uploads `file` with the gallery's upload field on the current page. */
async function uploadFile(file) {
  await uploadForm().locator('input[name=file]').setInputFiles(file);
  await clickAndLoad(page, uploadForm().getByRole('button', { name: 'Upload' }));
}

test('images uploaded under the edit form show in the gallery, thumbnails once converted', async () => {
  await page.goto('/admin/products?sort=id');
  const href = await page.locator('table[data-list-table] tbody tr a[href*="/admin/products/"]').first().getAttribute('href');
  productId = href.match(/\/admin\/products\/(\d+)/)[1];

  await page.goto(`/admin/products/${productId}/edit`);
  await expect(page.locator('form.record-form')).toBeVisible();
  const before = (await galleryNames()).length;
  await expect(uploadForm().locator('input[name=file]')).toHaveAttribute('accept', 'image/png,image/jpeg,image/webp');

  await uploadFile({ name: RED, mimeType: 'image/png', buffer: png(480, 320, [200, 30, 30]) });
  await expect(page.locator('.flash-success')).toHaveText(`Uploaded ${RED}.`);
  await expect(page).toHaveURL(new RegExp(`/admin/products/${productId}/edit$`));
  await uploadFile({ name: BLUE, mimeType: 'image/png', buffer: png(320, 480, [30, 30, 200]) });
  await expect(page.locator('.flash-success')).toHaveText(`Uploaded ${BLUE}.`);

  // The view page: both, last uploaded last; thumbnails appear once the
  // conversion job ran (until then a link with the name).
  await page.goto(`/admin/products/${productId}`);
  assert.deepEqual((await galleryNames()).slice(before), [RED, BLUE]);
  await expect(itemOf(RED)).toContainText('image/png');
  await eventually(
    async () => {
      await page.reload();
      for (const name of [RED, BLUE]) {
        await expect(itemOf(name).locator('img'), { timeout: 0 }).toHaveCount(1);
      }
    },
    { timeout: 30_000, interval: 500 },
  );
  for (const name of [RED, BLUE]) {
    const img = itemOf(name).locator('img');
    await expect(img).toHaveAttribute('alt', name);
    await expect(img).toHaveAttribute('src', /thumb/);
    // The browser loaded it, at most 200 x 200 (the demo's `thumb`).
    await eventually(async () => {
      const [w, h] = await img.evaluate((i) => [i.naturalWidth, i.naturalHeight]);
      assert.ok(w > 0 && h > 0 && w <= 200 && h <= 200, `${name}: ${w}x${h}`);
    });
    // The full image behind the link.
    const full = await itemOf(name).locator('a').first().getAttribute('href');
    const res = await page.request.get(full);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()['content-type'], 'image/png');
  }
});

test('reordering with "Move up" and "Move down"', async () => {
  await page.goto(`/admin/products/${productId}`);
  const names = await galleryNames();
  const [i, j] = [names.indexOf(RED), names.indexOf(BLUE)];
  assert.equal(j, i + 1);
  // The first has no "Move up", the last no "Move down".
  await expect(gallery().first().getByRole('button', { name: /^Move up/ })).toHaveCount(0);
  await expect(gallery().last().getByRole('button', { name: /^Move down/ })).toHaveCount(0);

  await clickAndLoad(page, itemOf(BLUE).getByRole('button', { name: `Move up ${BLUE}` }));
  await expect(page.locator('.flash-success')).toHaveText(`Moved ${BLUE} up (now ${i + 1} of ${names.length}).`);
  await expect(page).toHaveURL(new RegExp(`/admin/products/${productId}$`));
  const swapped = [...names];
  [swapped[i], swapped[j]] = [BLUE, RED];
  assert.deepEqual(await galleryNames(), swapped);
});

test('reordering without JavaScript', async () => {
  const { context, page: nojs } = await adminSession(browser, { javaScriptEnabled: false });
  try {
    await nojs.goto(`/admin/products/${productId}/edit`);
    const item = nojs.locator('section.media ul.gallery li').filter({ hasText: BLUE });
    await clickAndLoad(nojs, item.getByRole('button', { name: `Move down ${BLUE}` }));
    await expect(nojs.locator('.flash-success')).toContainText(`Moved ${BLUE} down`);
    await expect(nojs).toHaveURL(new RegExp(`/admin/products/${productId}/edit$`));
    const names = (await texts(nojs.locator('section.media ul.gallery li span.muted'))).map((t) => t.split(' · ')[0]);
    assert.equal(names.indexOf(RED) + 1, names.indexOf(BLUE), names.join(', '));
  } finally {
    await context.close();
  }
});

test('removing one image', async () => {
  await page.goto(`/admin/products/${productId}`);
  const count = (await galleryNames()).length;
  const thumb = await itemOf(RED).locator('img').getAttribute('src');
  await clickAndLoad(page, itemOf(RED).getByRole('button', { name: 'Remove' }));
  await expect(page.locator('.flash-success')).toHaveText(`Removed ${RED}.`);
  await expect(gallery()).toHaveCount(count - 1);
  await expect(itemOf(RED)).toHaveCount(0);
  await expect(itemOf(BLUE)).toHaveCount(1);
  // Its files are gone too.
  const res = await page.request.get(thumb);
  assert.ok(res.status() >= 400, `the thumbnail still answers ${res.status()}`);
});

test('a text file named .png is refused with a clear message, nothing attached', async () => {
  await page.goto(`/admin/products/${productId}/edit`);
  const before = await galleryNames();
  await uploadFile({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('just some text, not an image\n') });
  await expect(page.locator('.flash-error')).toContainText(/image\/png|not an? (accepted|allowed)|type/i);
  await expect(page.locator('.flash-error')).toContainText('text/plain');
  assert.deepEqual(await galleryNames(), before);
  await expect(itemOf('notes.png')).toHaveCount(0);
});
