#!/usr/bin/env node
'use strict';

// Smoke test of the peer: starts server.js on a free port, drives it with
// socket.io-client and exits 0 when every check passed, 1 otherwise.
//   node smoke.js [--parser json|msgpack]

const { spawn } = require('node:child_process');
const assert = require('node:assert/strict');
const path = require('node:path');
const { io } = require('socket.io-client');
const jwt = require('./lib/jwt');

const parser = process.argv.includes('--parser') ? process.argv[process.argv.indexOf('--parser') + 1] : 'json';
const SECRET = 'smoke-secret';
const token = (sub, extra = {}) => jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + 600, ...extra }, SECRET);

function startServer() {
  const child = spawn(
    process.execPath,
    [path.join(__dirname, 'server.js'), '--port', '0', '--parser', parser, '--jwt-secret', SECRET, '--rate-burst', '10'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /^listening on (\S+):(\d+)$/m.exec(out);
      if (m) resolve({ child, url: `http://${m[1]}:${m[2]}` });
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

let url;
const clients = [];

function connect(sub, auth = { token: token(sub, { name: sub.toUpperCase() }) }) {
  const socket = io(url, {
    transports: ['websocket'],
    auth,
    reconnection: false,
    ...(parser === 'msgpack' && { parser: require('socket.io-msgpack-parser') }),
  });
  clients.push(socket);
  const ready = new Promise((resolve, reject) => {
    socket.once('ready', resolve);
    socket.once('connect_error', reject);
  });
  return { socket, ready };
}

function next(socket, event, pred = () => true, ms = 2000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    function on(data) {
      if (!pred(data)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(data);
    }
    socket.on(event, on);
  });
}

function none(socket, event, ms = 200) {
  return new Promise((resolve, reject) => {
    const on = (data) => reject(new Error(`unexpected ${event}: ${JSON.stringify(data)}`));
    socket.on(event, on);
    setTimeout(() => {
      socket.off(event, on);
      resolve();
    }, ms);
  });
}

const call = (socket, event, payload = {}) => socket.timeout(2000).emitWithAck(event, payload);

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

let alice, alice2, bob, dm;

check('healthz', async () => {
  const res = await fetch(`${url}/healthz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
});

check('connect two users, ready', async () => {
  const a = connect('alice');
  const b = connect('bob');
  const [ra, rb] = await Promise.all([a.ready, b.ready]);
  assert.deepEqual(ra, { userId: 'alice', chats: [] });
  assert.equal(rb.userId, 'bob');
  alice = a.socket;
  bob = b.socket;
});

check('bad token -> connect_error UNAUTHORIZED', async () => {
  for (const auth of [{ token: 'not.a.jwt' }, { token: jwt.sign({ sub: 'eve', exp: 1 }, SECRET) }, {}]) {
    const { ready } = connect('eve', auth);
    const err = await ready.then(() => null, (e) => e);
    assert.ok(err, 'connected with a bad token');
    assert.equal(err.data?.code, 'UNAUTHORIZED');
  }
  const none = Buffer.from('{"alg":"none"}').toString('base64url');
  const body = Buffer.from(JSON.stringify({ sub: 'eve', exp: 9999999999 })).toString('base64url');
  const err = await connect('eve', { token: `${none}.${body}.` }).ready.then(() => null, (e) => e);
  assert.equal(err?.data?.code, 'UNAUTHORIZED');
});

check('direct chat: deterministic id, chat:new to both', async () => {
  const chatNew = next(bob, 'chat:new');
  const res = await call(alice, 'chat:create', { type: 'direct', members: ['bob'] });
  assert.equal(res.ok, true);
  dm = res.chat;
  assert.match(dm.id, /^dm:[0-9a-f]{40}$/);
  assert.deepEqual(dm.members, ['alice', 'bob']);
  assert.equal((await chatNew).id, dm.id);
  const again = await call(bob, 'chat:create', { type: 'direct', members: ['alice'] });
  assert.equal(again.chat.id, dm.id);
});

check('message:send -> message:new (not to sender) + message:confirmed (to all)', async () => {
  const gotNew = next(bob, 'message:new');
  const noEcho = none(alice, 'message:new');
  const confA = next(alice, 'message:confirmed');
  const confB = next(bob, 'message:confirmed');
  const ack = await call(alice, 'message:send', { roomId: dm.id, tempId: 't1', type: 'text', body: 'hello' });
  assert.deepEqual(ack, { ok: true, tempId: 't1', seq: 1 });
  const msg = await gotNew;
  assert.equal(msg.status, 'pending');
  assert.equal(msg.body, 'hello');
  assert.equal(msg.senderName, 'ALICE');
  assert.equal(msg.seq, 1);
  assert.ok(Number.isInteger(msg.ts));
  const [ca, cb] = await Promise.all([confA, confB, noEcho]);
  assert.deepEqual(ca, cb);
  assert.equal(ca.tempId, 't1');
  assert.match(ca.id, /^[0-9a-f]{24}$/);
});

check('duplicate tempId -> duplicate:true, no new fan-out, confirmation repeated', async () => {
  const noNew = none(bob, 'message:new');
  const conf = next(alice, 'message:confirmed');
  const ack = await call(alice, 'message:send', { roomId: dm.id, tempId: 't1', type: 'text', body: 'hello' });
  assert.deepEqual(ack, { ok: true, tempId: 't1', seq: 1, duplicate: true });
  assert.equal((await conf).seq, 1);
  await noNew;
});

check("the sender's other socket gets message:new", async () => {
  const a2 = connect('alice');
  const ready = await a2.ready;
  alice2 = a2.socket;
  assert.equal(ready.chats[0].id, dm.id);
  assert.equal(ready.chats[0].lastSeq, 1);
  const got = next(alice2, 'message:new');
  await call(alice, 'message:send', { roomId: dm.id, tempId: 't2', type: 'text', body: 'second', replyTo: 1 });
  assert.equal((await got).replyTo, 1);
});

check('room:join with sinceSeq, history:get, chats:list', async () => {
  const join = await call(bob, 'room:join', { roomId: dm.id, sinceSeq: 0 });
  assert.equal(join.ok, true);
  assert.equal(join.members, 2);
  assert.deepEqual(join.online.sort(), ['alice', 'bob']);
  assert.equal(join.lastSeq, 2);
  assert.deepEqual(join.missed.map((m) => [m.seq, m.status]), [[1, 'confirmed'], [2, 'confirmed']]);
  assert.equal(join.more, false);
  const hist = await call(bob, 'history:get', { roomId: dm.id, limit: 1 });
  assert.deepEqual([hist.messages.map((m) => m.seq), hist.more], [[2], true]);
  const list = await call(bob, 'chats:list', {});
  assert.equal(list.chats[0].unread, 2);
  assert.equal(list.chats[0].lastMessage.seq, 2);
});

check('typing reaches the other member, not the typist', async () => {
  const got = next(bob, 'typing');
  const notSelf = none(alice2, 'typing');
  assert.deepEqual(await call(alice, 'typing:start', { roomId: dm.id }), { ok: true });
  assert.deepEqual(await got, { roomId: dm.id, userId: 'alice', isTyping: true });
  await notSelf;
  const stop = next(bob, 'typing');
  await call(alice, 'typing:stop', { roomId: dm.id });
  assert.equal((await stop).isTyping, false);
});

check('group: chat:new, room:leave -> room:member-left', async () => {
  const chatNew = next(bob, 'chat:new');
  const res = await call(alice, 'chat:create', { type: 'group', members: ['bob', 'carol'], name: 'g' });
  assert.match(res.chat.id, /^g:[0-9a-f]{24}$/);
  assert.equal((await chatNew).id, res.chat.id);
  const left = next(alice, 'room:member-left');
  assert.deepEqual(await call(bob, 'room:leave', { roomId: res.chat.id }), { ok: true });
  assert.deepEqual(await left, { roomId: res.chat.id, userId: 'bob' });
  const after = await call(bob, 'message:send', { roomId: res.chat.id, tempId: 'x', type: 'text', body: 'b' });
  assert.equal(after.error.code, 'UNAUTHORIZED');
});

check('errors: INVALID_INPUT, NOT_FOUND, UNAUTHORIZED, PAYLOAD_TOO_LARGE, error event', async () => {
  const unknown = await call(alice, 'no:such:event', {});
  assert.deepEqual(unknown, { ok: false, error: { code: 'INVALID_INPUT', message: 'unknown event' } });
  assert.equal((await call(alice, 'message:send', { roomId: dm.id, tempId: 'y' })).error.code, 'INVALID_INPUT');
  assert.equal((await call(alice, 'message:send', 'str')).error.code, 'INVALID_INPUT');
  assert.equal((await call(alice, 'room:join', { roomId: 'nope' })).error.code, 'NOT_FOUND');
  assert.equal((await call(alice, 'room:join', { roomId: 'user:bob' })).error.code, 'UNAUTHORIZED');
  const big = { roomId: dm.id, tempId: 'big', type: 'text', body: 'x'.repeat(65537) };
  assert.equal((await call(alice, 'message:send', big)).error.code, 'PAYLOAD_TOO_LARGE');
  const evt = next(alice, 'error');
  alice.emit('no:such:event', {}); // without an ack: answered with the `error` event
  assert.equal((await evt).code, 'INVALID_INPUT');
  assert.ok(alice.connected, 'the connection stays open');
});

check('RATE_LIMITED after the burst (shared by the user\'s sockets)', async () => {
  // 2 sends so far; the burst is 10 (plus a little refill).
  const codes = [];
  for (let i = 0; i < 10; i++) {
    const s = i % 2 ? alice : alice2;
    const r = await call(s, 'message:send', { roomId: dm.id, tempId: `r${i}`, type: 'text', body: 'r' });
    codes.push(r.ok ? 'ok' : r.error.code);
  }
  assert.deepEqual(codes.slice(0, 8), Array(8).fill('ok'));
  assert.deepEqual(codes.slice(8), ['RATE_LIMITED', 'RATE_LIMITED']);
});

check('TOO_MANY_CONNECTIONS beyond 5 sockets per user', async () => {
  await Promise.all([connect('bob').ready, connect('bob').ready, connect('bob').ready, connect('bob').ready]);
  const err = await connect('bob').ready.then(() => null, (e) => e);
  assert.equal(err?.data?.code, 'TOO_MANY_CONNECTIONS');
});

async function main() {
  const server = await startServer();
  url = server.url;
  let failed = 0;
  for (const { name, fn } of checks) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${err.stack}`);
    }
  }
  for (const s of clients) s.disconnect();
  server.child.removeAllListeners('exit');
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) {
    failed++;
    console.log(`FAIL server exit status on SIGTERM: ${code}`);
  }
  console.log(`${checks.length - failed}/${checks.length} passed (parser ${parser})`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
