// Shared by the pusher-js tests (`pusher.test.mjs`, `two-nodes.test.mjs`):
// a pusher-js client on a node of the platform, waiting for an event, and
// a publish call signed with Node's own crypto (an implementation
// independent of the server's). The Rust test passes the host, the
// application's key, id and secret in the environment.
import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import Pusher from 'pusher-js';

const env = process.env;
const clients = [];

test.after(() => clients.forEach((c) => c.disconnect()));

// The base URL of the node on `port`.
export function base(port) {
  return `http://${env.PUSHER_HOST}:${port}`;
}

// A pusher-js client of the node on `port`, authorised with API `token`;
// disconnected after the file's tests.
export function client(port, token) {
  const p = new Pusher(env.PUSHER_KEY, {
    cluster: 'local',
    wsHost: env.PUSHER_HOST,
    wsPort: Number(port),
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: `${base(port)}/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${token}` },
    },
  });
  clients.push(p);
  return p;
}

// The next `event` on `emitter` (a channel or a connection), or a failure
// after `ms`.
export function waitFor(emitter, event, ms = 5000) {
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

// Resolves once `p` is connected.
export function connected(p) {
  if (p.connection.state === 'connected') return Promise.resolve();
  return waitFor(p.connection, 'connected');
}

// POST /apps/{id}/events on the node on `port`, signed as the Pusher HTTP
// API says; asserts a 200.
export async function publish(port, channel, name, data) {
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
  const res = await fetch(`${base(port)}${path}?${query}&auth_signature=${sig}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}
