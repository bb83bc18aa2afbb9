// The real pusher-js against two nodes of the platform that share channels
// and presence over Redis, started by the Rust test
// `tests/tests/broadcasting_redis.rs` (pusher_js_across_two_nodes). Ada
// connects to node A, Bob to node B; node B edits the invoice's notes
// every 300 ms (a resource event that starts on node B).
import test from 'node:test';
import assert from 'node:assert/strict';
import { client, publish, waitFor } from './client.mjs';

const env = process.env;

test('presence spans the nodes: members, member_added, member_removed', async () => {
  const name = `presence-invoices.${env.INVOICE_ID}`;
  const ada = client(env.PORT_A, env.ADA_TOKEN);
  const ch = ada.subscribe(name);
  const members = await waitFor(ch, 'pusher:subscription_succeeded');
  assert.equal(members.count, 1);

  const added = waitFor(ch, 'pusher:member_added');
  const bob = client(env.PORT_B, env.BOB_TOKEN);
  const bobCh = bob.subscribe(name);
  const bobMembers = await waitFor(bobCh, 'pusher:subscription_succeeded');
  assert.equal(bobMembers.count, 2);
  assert.equal((await added).id, env.BOB_ID);

  const removed = waitFor(ch, 'pusher:member_removed');
  bob.disconnect();
  assert.equal((await removed).id, env.BOB_ID);
  assert.equal(ch.members.count, 1);
});

test('a publish call on node B reaches a private subscriber on node A', async () => {
  const mine = `private-user.${env.ADA_ID}`;
  const ada = client(env.PORT_A, env.ADA_TOKEN);
  const ch = ada.subscribe(mine);
  await waitFor(ch, 'pusher:subscription_succeeded');
  const got = waitFor(ch, 'note');
  await publish(env.PORT_B, mine, 'note', { from: 'B' });
  assert.deepEqual(await got, { from: 'B' });
});

test("a resource event committed on node B reaches node A's subscriber", async () => {
  const ada = client(env.PORT_A, env.ADA_TOKEN);
  const ch = ada.subscribe(`private-invoices.${env.INVOICE_ID}`);
  await waitFor(ch, 'pusher:subscription_succeeded');
  const e = await waitFor(ch, 'invoice.updated');
  assert.equal(e.record_id, env.INVOICE_ID);
  assert.match(e.changes.notes.new, /^edit \d+$/);
});
