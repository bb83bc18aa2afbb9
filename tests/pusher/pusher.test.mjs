// The real pusher-js (from npm, its Node build) against the platform's
// broadcasting server, started by the Rust test
// `tests/tests/broadcasting.rs` (pusher_js_connects_and_receives), which
// passes the address, the application and two users' API tokens in the
// environment and broadcasts `tick` on `server-ticks` every 100 ms.
//
// Publish calls are signed with Node's own crypto (see client.mjs).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as shared from './client.mjs';

const env = process.env;
const { waitFor, connected } = shared;
const client = (token) => shared.client(env.PUSHER_PORT, token);
const publish = (channel, name, data) => shared.publish(env.PUSHER_PORT, channel, name, data);

test('connects with a socket id', async () => {
  const p = client(env.ADA_TOKEN);
  await connected(p);
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
});

test('public channel: a server broadcast and a signed publish call arrive', async () => {
  const p = client(env.ADA_TOKEN);
  const ticks = p.subscribe('server-ticks');
  await waitFor(ticks, 'pusher:subscription_succeeded');
  const tick = await waitFor(ticks, 'tick');
  assert.equal(typeof tick.n, 'number');

  const news = p.subscribe('news');
  await waitFor(news, 'pusher:subscription_succeeded');
  const got = waitFor(news, 'headline');
  await publish('news', 'headline', { title: 'hello' });
  assert.deepEqual(await got, { title: 'hello' });
});

test('private channel: the owner subscribes, another user is refused', async () => {
  const mine = `private-user.${env.ADA_ID}`;
  const ada = client(env.ADA_TOKEN);
  const ch = ada.subscribe(mine);
  await waitFor(ch, 'pusher:subscription_succeeded');
  const got = waitFor(ch, 'note');
  await publish(mine, 'note', { secret: 1 });
  assert.deepEqual(await got, { secret: 1 });

  const bob = client(env.BOB_TOKEN);
  const refused = await waitFor(bob.subscribe(mine), 'pusher:subscription_error');
  assert.equal(refused.status, 403);
});

test('presence channel: members, member_added and member_removed', async () => {
  const name = `presence-invoices.${env.INVOICE_ID}`;
  const ada = client(env.ADA_TOKEN);
  const ch = ada.subscribe(name);
  const members = await waitFor(ch, 'pusher:subscription_succeeded');
  assert.equal(members.count, 1);
  assert.equal(members.me.id, env.ADA_ID);
  assert.equal(members.me.info.name, 'Ada');

  const added = waitFor(ch, 'pusher:member_added');
  const bob = client(env.BOB_TOKEN);
  const bobCh = bob.subscribe(name);
  const bobMembers = await waitFor(bobCh, 'pusher:subscription_succeeded');
  assert.equal(bobMembers.count, 2);
  const member = await added;
  assert.equal(member.id, env.BOB_ID);
  assert.equal(member.info.name, 'Bob');
  assert.equal(ch.members.count, 2);

  const removed = waitFor(ch, 'pusher:member_removed');
  bob.disconnect();
  assert.equal((await removed).id, env.BOB_ID);
  assert.equal(ch.members.count, 1);
});

test('resource events: a committed change arrives on the record channel', async () => {
  // The Rust side edits the invoice's notes every 300 ms; Ada holds
  // view_pii, so her authorisation carries a signed channel_data.
  const name = `private-invoices.${env.INVOICE_ID}`;
  const ada = client(env.ADA_TOKEN);
  const ch = ada.subscribe(name);
  await waitFor(ch, 'pusher:subscription_succeeded');
  const e = await waitFor(ch, 'invoice.updated');
  assert.equal(e.resource, 'invoice');
  assert.equal(e.event, 'updated');
  assert.equal(e.record_id, env.INVOICE_ID);
  assert.match(e.changes.notes.new, /^edit \d+$/);
  assert.equal(e.changes.iban, undefined);
});
