'use strict';
// The official socket.io-client 4.8.4, with the default (JSON) parser and with
// socket.io-msgpack-parser 3.0.2, against the real broker:
//  - connect and `ready`;
//  - a direct chat with a python-socketio client (the other encoding), message:new and
//    message:confirmed both ways, no message:new on the sending socket;
//  - `retries: 2, ackTimeout: 3000`: an unknown event is acked (INVALID_INPUT) and the
//    client's queue does not stall (an emit without callback is acked too);
//  - CONNECT_ERROR for bad tokens: 'connect_error' with err.data.code === 'UNAUTHORIZED'.
// Contract: /work/shared/protocol.md sections 1-3, 5-8.

const { main, check, eq, withTimeout } = require('./support');

const HEX24 = /^[0-9a-f]{24}$/;

main('node_clients', async (ctx) => {
  const B = await ctx.broker({ shards: 2 });
  const cases = [];
  for (const msgpack of [false, true]) {
    const enc = msgpack ? 'msgpack' : 'json';
    const pyEnc = msgpack ? 'json' : 'msgpack';
    const uid = (n) => 'node-' + enc + '-' + n;

    cases.push(['connect + ready (' + enc + ')', async () => {
      const c = ctx.client(B.url, B.token(uid('ready'), { name: 'Node ' + enc }), { msgpack });
      const r = await c.ready();
      eq(r.userId, uid('ready'), 'ready.userId');
      check(Array.isArray(r.chats), 'ready.chats is not an array: ' + JSON.stringify(r));
      check(c.socket.connected && typeof c.socket.id === 'string' && c.socket.id !== '', 'socket not connected / no sid');
      const list = await c.callOk('chats:list', {});
      check(Array.isArray(list.chats), 'chats:list chats: ' + JSON.stringify(list));
    }]);

    cases.push(['direct chat node(' + enc + ') <-> python(' + pyEnc + ')', async () => {
      const un = uid('n');
      const up = uid('p');
      const n = ctx.client(B.url, B.token(un, { name: 'Nodey' }), { msgpack });
      await n.ready();
      const p = ctx.peer('python ' + pyEnc);
      const pr = await p.connect(B.url, B.token(up, { name: 'Pythonista' }), pyEnc);
      eq(pr.userId, up, 'python ready.userId');

      const chat = (await n.callOk('chat:create', { type: 'direct', members: [up] })).chat;
      eq(chat.type, 'direct', 'chat.type');
      eq([...chat.members].sort(), [un, up].sort(), 'chat.members');
      const room = chat.id;
      const cn = await p.wait('chat:new', { id: room });
      eq([...cn.members].sort(), [un, up].sort(), 'chat:new members at python');
      eq((await p.call('chat:create', { type: 'direct', members: [un] })).chat.id, room, 'same pair, same chat');

      // node -> python
      const body1 = 'from node \u00e9\u{1F600}';
      const ack1 = await n.callOk('message:send', { roomId: room, tempId: 'n1', type: 'text', body: body1 });
      eq([ack1.tempId, ack1.seq], ['n1', 1], 'node send ack');
      const m1 = await p.wait('message:new', { roomId: room, seq: 1 });
      eq([m1.senderId, m1.senderName, m1.body, m1.status, m1.tempId, m1.type],
        [un, 'Nodey', body1, 'pending', 'n1', 'text'], 'message:new at python');
      const c1p = await p.wait('message:confirmed', { roomId: room, seq: 1 });
      check(HEX24.test(c1p.id), 'confirmed id not 24 hex: ' + c1p.id);
      const c1n = await n.waitEvent('message:confirmed', { roomId: room, seq: 1 });
      eq(c1n, c1p, 'confirmation node vs python');
      eq(n.named('message:new', { roomId: room }), [], 'message:new on the sending node socket');
      const pev = (await p.events()).map(([e, d]) => e + ':' + (d && d.seq));
      check(pev.indexOf('message:new:1') < pev.indexOf('message:confirmed:1'),
        'python got confirmed before message:new: ' + pev.join(' '));

      // python -> node
      const ack2 = await p.call('message:send', { roomId: room, tempId: 'p1', type: 'text', body: 'from python', replyTo: 1 });
      eq([ack2.ok, ack2.seq, ack2.tempId], [true, 2, 'p1'], 'python send ack');
      const m2 = await n.waitEvent('message:new', { roomId: room, seq: 2 });
      eq([m2.senderId, m2.senderName, m2.body, m2.status, m2.replyTo], [up, 'Pythonista', 'from python', 'pending', 1],
        'message:new at node');
      const c2 = await n.waitEvent('message:confirmed', { roomId: room, seq: 2 });
      eq([c2.tempId, HEX24.test(c2.id)], ['p1', true], 'confirmation at node');
      eq(await p.wait('message:confirmed', { roomId: room, seq: 2 }), c2, 'confirmation python vs node');
      const pnew = (await p.events()).filter(([e, d]) => e === 'message:new' && d.seq === 2);
      eq(pnew, [], 'message:new on the sending python socket');

      // Both see the same history.
      const hn = await n.callOk('history:get', { roomId: room });
      const hp = await p.call('history:get', { roomId: room });
      eq(hn, hp, 'history node vs python');
      eq(hn.messages.map((m) => [m.seq, m.id]), [[1, c1n.id], [2, c2.id]], 'history seqs/ids');
    }]);

    cases.push(['retries:2 ackTimeout:3000, unknown event acked (' + enc + ')', async () => {
      const c = ctx.client(B.url, B.token(uid('retry')), { msgpack, opts: { retries: 2, ackTimeout: 3000 } });
      await c.ready();
      // With retries every emit goes out with an ack id, one at a time; an unacked one
      // would hold the queue for 3 x 3 s. 5 s bounds each step well below that.
      const unknown = await withTimeout(c.socket.emitWithAck('no:such:event', { x: 1 }), 5000,
        'ack for an unknown event (client queue stalled?)');
      eq(unknown.ok, false, 'unknown event ack ok');
      eq(unknown.error && unknown.error.code, 'INVALID_INPUT', 'unknown event error code');
      c.socket.emit('another:unknown', {}); // No callback, but still sent with an ack id.
      const list = await withTimeout(c.socket.emitWithAck('chats:list', {}), 5000,
        'chats:list after an emit without callback (client queue stalled?)');
      eq(list.ok, true, 'chats:list after unknown events');
      eq(c.named('error'), [], '`error` events for acked emits');
    }]);

    cases.push(['CONNECT_ERROR for bad tokens (' + enc + ')', async () => {
      const bad = [
        ['wrong secret', B.token(uid('bad'), { secret: 'not-the-secret' })],
        ['garbage', 'not-a-jwt'],
      ];
      for (const [what, token] of bad) {
        const c = ctx.client(B.url, token, { msgpack });
        const r = await c.waitFor((evs) => evs.find(([e]) => e === 'connect_error' || e === 'connect'),
          5000, 'connect_error (' + what + ')');
        eq(r[0], 'connect_error', what + ': outcome');
        const err = r[1];
        check(typeof err.message === 'string' && err.message !== '', what + ': connect_error without message');
        eq(err.data && err.data.code, 'UNAUTHORIZED', what + ': err.data.code');
        eq(c.named('ready'), [], what + ': ready after refusal');
      }
      const good = ctx.client(B.url, B.token(uid('after')), { msgpack });
      await good.ready();
    }]);
  }
  return cases;
});
