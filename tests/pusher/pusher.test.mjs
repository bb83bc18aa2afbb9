// The real pusher-js (from npm, its Node build) against the platform's
// broadcasting server, started by the Rust test
// `tests/tests/broadcasting.rs` (pusher_js_connects_and_receives), which
// passes the address, the application and two users' API tokens in the
// environment and broadcasts `tick` on `server-ticks` every 100 ms.
//
// Publish calls are signed here with Node's own crypto (an implementation
// independent of the server's).
import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import Pusher from 'pusher-js';

const env = process.env;
const base = `http://${env.PUSHER_HOST}:${env.PUSHER_PORT}`;
const clients = [];

function client(token) {
  const p = new Pusher(env.PUSHER_KEY, {
    cluster: 'local',
    wsHost: env.PUSHER_HOST,
    wsPort: Number(env.PUSHER_PORT),
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: `${base}/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${token}` },
    },
  });
  clients.push(p);
  return p;
}

function waitFor(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const handler = (data) => {
      clearTimeout(timer);
      emitter.unbind(event, handler);
      resolve(data);
    };
    emitter.bind(event, handler);
  });
}

function connected(p) {
  if (p.connection.state === 'connected') return Promise.resolve();
  return waitFor(p.connection, 'connected');
}

// POST /apps/{id}/events, signed as the Pusher HTTP API says.
async function publish(channel, name, data) {
  const body = JSON.stringify({ name, data: JSON.stringify(data), channels: [channel] });
  const path = `/apps/${env.PUSHER_APP_ID}/events`;
  const params = {
    auth_key: env.PUSHER_KEY,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: crypto.createHash('md5').update(body).digest('hex'),
  };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const sig = crypto.createHmac('sha256', env.PUSHER_SECRET).update(`POST\n${path}\n${query}`).digest('hex');
  const res = await fetch(`${base}${path}?${query}&auth_signature=${sig}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}

test.after(() => clients.forEach((c) => c.disconnect()));

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
