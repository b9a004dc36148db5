'use strict';

// The chat server: in-memory users and chats (the "SocketManager" of the
// background docs), Socket.IO rooms for delivery (`user:<id>` and one room
// per chat, named by the chat id), events and acks of protocol.md §5-§7.
// Messages are fanned out first and saved after; `message:confirmed`
// follows once MongoDB acknowledged the insert.

const jwt = require('./jwt');
const { Chat, RING_SIZE, encodedSize } = require('./chat');
const { isId, directChatId, newObjectId } = require('./ids');

const BODY_MAX = 65536;
const TEMP_ID_MAX = 64;
const NAME_MAX = 256;
const CREATE_MEMBERS_MAX = 10000;
const MISSED_MAX = 1000;
const REPLY_BYTES = 1 << 20;
const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 100;
const TYPING_MS = 5000;
const CHAT_TYPES = new Set(['direct', 'group', 'channel']);
const MESSAGE_TYPES = new Set(['text', 'image']);

// Events of protocol.md that ringcast's current build also answers with
// UNAVAILABLE; kept identical so that one harness sees one contract.
const NOT_AVAILABLE = new Set(['message:edit', 'message:delete', 'messages:read', 'presence:get']);

class ClientError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new ClientError(code, message);
};

const userRoom = (userId) => `user:${userId}`;

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

const authError = (message, code) => Object.assign(new Error(message), { data: { code } });

function optionalInt(p, key, min) {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isSafeInteger(v) || v < min) fail('INVALID_INPUT', `${key} must be an integer >= ${min}`);
  return v;
}

class Broker {
  constructor(io, { config, store }) {
    this.io = io;
    this.config = config;
    this.store = store;
    this.chats = new Map(); // chatId -> Chat
    this.userChats = new Map(); // userId -> Set<chatId>
    this.users = new Map(); // userId -> {sockets: Set<Socket>, tokens, refilledAt}
    this.typing = new Map(); // userId -> Map<chatId, Timeout>
    this.pendingWrites = 0;
    this.drained = null;

    this.handlers = new Map([
      ['chat:create', this.createChat],
      ['chats:list', this.listChats],
      ['room:join', this.joinRoom],
      ['room:leave', this.leaveRoom],
      ['message:send', this.sendMessage],
      ['typing:start', (socket, p) => this.setTyping(socket, p, true)],
      ['typing:stop', (socket, p) => this.setTyping(socket, p, false)],
      ['history:get', this.getHistory],
    ]);

    io.use((socket, next) => this.authenticate(socket, next));
    io.on('connection', (socket) => this.onConnection(socket));
  }

  // ---- state ---------------------------------------------------------------

  async load() {
    const rows = await this.store.loadChats();
    for (const { doc, lastSeq, liveBy } of rows) {
      const chat = this.addChat(
        new Chat({ id: doc._id, type: doc.type, name: doc.name, members: doc.members, createdAt: doc.createdAt.getTime() }),
      );
      chat.restore([], lastSeq, liveBy);
    }
    const withMessages = rows.filter((r) => r.lastSeq > 0);
    for (let i = 0; i < withMessages.length; i += 16) {
      await Promise.all(
        withMessages.slice(i, i + 16).map(async ({ doc, lastSeq, liveBy }) => {
          this.chats.get(doc._id).restore(await this.store.recentMessages(doc._id, RING_SIZE), lastSeq, liveBy);
        }),
      );
    }
    return rows.length;
  }

  addChat(chat) {
    this.chats.set(chat.id, chat);
    for (const userId of chat.members) this.chatsOf(userId, true).add(chat.id);
    return chat;
  }

  chatsOf(userId, create = false) {
    let set = this.userChats.get(userId);
    if (!set && create) this.userChats.set(userId, (set = new Set()));
    return set ?? new Set();
  }

  addMember(chat, userId) {
    chat.members.add(userId);
    this.chatsOf(userId, true).add(chat.id);
    this.store?.setMember(chat.id, userId, true).catch((err) => console.error(`chat ${chat.id}: ${err.message}`));
  }

  removeMember(chat, userId) {
    chat.members.delete(userId);
    this.chatsOf(userId).delete(chat.id);
    this.store?.setMember(chat.id, userId, false).catch((err) => console.error(`chat ${chat.id}: ${err.message}`));
  }

  chatViews(userId) {
    return [...this.chatsOf(userId)]
      .map((id) => this.chats.get(id))
      .sort((a, b) => b.lastActivity() - a.lastActivity())
      .map((chat) => chat.view(userId));
  }

  isOnline(userId) {
    return this.users.has(userId);
  }

  // The token bucket of protocol.md §8, shared by the user's sockets.
  takeToken(user) {
    const now = Date.now();
    const { rateLimit, rateBurst } = this.config;
    user.tokens = Math.min(rateBurst, user.tokens + ((now - user.refilledAt) * rateLimit) / 60000);
    user.refilledAt = now;
    if (user.tokens < 1) return false;
    user.tokens -= 1;
    return true;
  }

  // ---- connections -----------------------------------------------------------

  authenticate(socket, next) {
    const user = jwt.verify(socket.handshake.auth?.token, this.config.jwtSecret);
    let error = null;
    if (!user) error = authError('invalid or missing token', 'UNAUTHORIZED');
    else if ((this.users.get(user.id)?.sockets.size ?? 0) >= this.config.maxSocketsPerUser) {
      error = authError('too many connections for this user', 'TOO_MANY_CONNECTIONS');
    }
    if (!error) {
      socket.data.user = user;
      return next();
    }
    next(error);
    // Socket.IO sends CONNECT_ERROR on the next tick; close the connection
    // once it is written, as protocol.md §3 asks.
    process.nextTick(() => socket.conn.close());
  }

  onConnection(socket) {
    const { id: userId } = socket.data.user;
    let user = this.users.get(userId);
    if (!user) {
      user = { sockets: new Set(), tokens: this.config.rateBurst, refilledAt: Date.now() };
      this.users.set(userId, user);
    }
    user.sockets.add(socket);

    socket.join([userRoom(userId), ...this.chatsOf(userId)]);

    for (const [event, handler] of this.handlers) {
      socket.on(event, (...args) => this.dispatch(socket, handler, args));
    }
    // Unknown (or non-string) event names. Socket.IO calls catch-all
    // listeners at once but regular ones on the next tick; answering on the
    // next tick too keeps the acks in the order of the events.
    socket.onAny((event, ...args) => {
      if (typeof event === 'string' && this.handlers.has(event)) return;
      const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      const error =
        typeof event === 'string' && NOT_AVAILABLE.has(event)
          ? { code: 'UNAVAILABLE', message: 'this event is not available in this version' }
          : { code: 'INVALID_INPUT', message: 'unknown event' };
      process.nextTick(() => this.reply(socket, ack, { ok: false, error }));
    });
    socket.on('disconnect', () => this.onDisconnect(socket, user));

    socket.emit('ready', { userId, chats: this.chatViews(userId) });
  }

  onDisconnect(socket, user) {
    const { id: userId } = socket.data.user;
    user.sockets.delete(socket);
    if (user.sockets.size > 0) return;
    this.users.delete(userId);
    const typing = this.typing.get(userId);
    if (typing) for (const chatId of typing.keys()) this.stopTyping(userId, chatId);
  }

  // ---- dispatch ----------------------------------------------------------------

  dispatch(socket, handler, args) {
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    let result;
    try {
      if (!isPlainObject(args[0])) fail('INVALID_INPUT', 'the payload must be an object');
      result = handler.call(this, socket, args[0]);
    } catch (err) {
      return this.replyError(socket, ack, err);
    }
    if (result instanceof Promise) {
      result.then((r) => this.reply(socket, ack, r), (err) => this.replyError(socket, ack, err));
    } else {
      this.reply(socket, ack, result);
    }
  }

  reply(socket, ack, result) {
    if (ack) ack(result);
    else if (!result.ok) socket.emit('error', result.error);
  }

  replyError(socket, ack, err) {
    if (!(err instanceof ClientError)) console.error(err);
    const error =
      err instanceof ClientError ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: 'internal error' };
    this.reply(socket, ack, { ok: false, error });
  }

  // Field check of a roomId, then existence, then membership (§5 order).
  roomIdOf(p) {
    const { roomId } = p;
    if (!isId(roomId)) fail('INVALID_INPUT', 'roomId must be 1-128 characters of [A-Za-z0-9._:@-]');
    if (roomId.startsWith('user:')) fail('UNAUTHORIZED', 'user rooms cannot be named by clients');
    return roomId;
  }

  chatFor(roomId, userId, { channelJoin = false } = {}) {
    const chat = this.chats.get(roomId);
    if (!chat) fail('NOT_FOUND', 'unknown room');
    if (!chat.members.has(userId) && !(channelJoin && chat.type === 'channel')) {
      fail('UNAUTHORIZED', 'not a member of this room');
    }
    return chat;
  }

  // ---- chats -------------------------------------------------------------------

  async createChat(socket, p) {
    const creator = socket.data.user.id;
    const { type, members, name } = p;
    if (!CHAT_TYPES.has(type)) fail('INVALID_INPUT', 'type must be direct, group or channel');
    if (!Array.isArray(members) || members.length > CREATE_MEMBERS_MAX || !members.every(isId)) {
      fail('INVALID_INPUT', 'members must be an array of user ids');
    }
    if (name !== undefined && name !== null && (typeof name !== 'string' || Buffer.byteLength(name) > NAME_MAX)) {
      fail('INVALID_INPUT', 'name must be a string of at most 256 bytes');
    }
    const others = [...new Set(members)].filter((m) => m !== creator).sort();
    if (type === 'direct' && others.length !== 1) fail('INVALID_INPUT', 'a direct chat has exactly one other member');

    const id = type === 'direct' ? directChatId(creator, others[0]) : `${type === 'group' ? 'g' : 'c'}:${newObjectId()}`;
    const existing = this.chats.get(id);
    if (existing) return { ok: true, chat: existing.view(creator) }; // the same pair, the same chat

    const chat = this.addChat(new Chat({ id, type, name: name ?? '', members: [creator, ...others], createdAt: Date.now() }));
    if (this.store) {
      try {
        await this.store.insertChat(chat);
      } catch (err) {
        if (err.code !== 11000) {
          this.chats.delete(id);
          for (const m of chat.members) this.chatsOf(m).delete(id);
          console.error(`chat ${id}: ${err.message}`);
          fail('UNAVAILABLE', 'the chat could not be stored; try again');
        }
      }
    }
    const rooms = [...chat.members].map(userRoom);
    this.io.in(rooms).socketsJoin(id);
    const view = chat.view(creator);
    this.io.to(rooms).emit('chat:new', view);
    return { ok: true, chat: view };
  }

  listChats(socket) {
    return { ok: true, chats: this.chatViews(socket.data.user.id) };
  }

  // ---- rooms -------------------------------------------------------------------

  joinRoom(socket, p) {
    const roomId = this.roomIdOf(p);
    const sinceSeq = optionalInt(p, 'sinceSeq', 0);
    const userId = socket.data.user.id;
    const chat = this.chatFor(roomId, userId, { channelJoin: true });

    if (!chat.members.has(userId)) {
      // A channel: joining makes you a member, with all of your sockets.
      this.addMember(chat, userId);
      this.io.to(roomId).except(userRoom(userId)).emit('room:member-joined', { roomId, userId });
      this.io.in(userRoom(userId)).socketsJoin(roomId);
    }
    socket.join(roomId);

    const answer = (missed) => ({
      ok: true,
      roomId,
      members: chat.members.size,
      online: [...chat.members].filter((m) => this.isOnline(m)),
      lastSeq: chat.lastSeq,
      missed: missed.messages,
      more: missed.more,
    });
    if (sinceSeq === undefined || sinceSeq >= chat.lastSeq) return answer({ messages: [], more: false });
    const missed = this.read(chat, sinceSeq, chat.lastSeq + 1, MISSED_MAX);
    return missed instanceof Promise ? missed.then(answer) : answer(missed);
  }

  leaveRoom(socket, p) {
    const roomId = this.roomIdOf(p);
    const userId = socket.data.user.id;
    const chat = this.chatFor(roomId, userId);
    if (chat.type === 'direct') {
      socket.leave(roomId); // only this socket stops receiving
      return { ok: true };
    }
    this.stopTyping(userId, roomId);
    this.removeMember(chat, userId);
    this.io.in(userRoom(userId)).socketsLeave(roomId);
    this.io.to(roomId).emit('room:member-left', { roomId, userId });
    return { ok: true };
  }

  getHistory(socket, p) {
    const roomId = this.roomIdOf(p);
    const beforeSeq = optionalInt(p, 'beforeSeq', 1);
    const limit = Math.min(optionalInt(p, 'limit', 1) ?? HISTORY_DEFAULT, HISTORY_MAX);
    const chat = this.chatFor(roomId, socket.data.user.id);
    const hi = beforeSeq === undefined || beforeSeq > chat.lastSeq + 1 ? chat.lastSeq + 1 : beforeSeq;
    const answer = ({ messages, more }) => ({ ok: true, messages, more });
    const page = this.read(chat, 0, hi, limit);
    return page instanceof Promise ? page.then(answer) : answer(page);
  }

  // Messages with lo < seq < hi, newest first up to limit and 1 MiB, returned
  // ascending: from the ring, and from MongoDB for what is older than the ring.
  read(chat, lo, hi, limit) {
    const recent = chat.collect(lo, hi, limit, REPLY_BYTES);
    if (recent.more || recent.below <= lo + 1 || !this.store) return recent;
    return this.store
      .messagesBetween(chat.id, lo, recent.below, recent.limit, recent.bytes, encodedSize)
      .then((older) => ({ messages: older.messages.concat(recent.messages), more: older.more }))
      .catch((err) => {
        console.error(`history of ${chat.id}: ${err.message}`);
        fail('UNAVAILABLE', 'the store is unavailable; try again');
      });
  }

  // ---- messages ----------------------------------------------------------------

  sendMessage(socket, p) {
    const roomId = this.roomIdOf(p);
    const { tempId, type, body } = p;
    if (typeof tempId !== 'string' || tempId.length === 0 || Buffer.byteLength(tempId) > TEMP_ID_MAX || tempId.includes('\0')) {
      fail('INVALID_INPUT', 'tempId must be a string of 1-64 bytes');
    }
    if (!MESSAGE_TYPES.has(type)) fail('INVALID_INPUT', 'type must be "text" or "image"');
    if (typeof body !== 'string') fail('INVALID_INPUT', 'body must be a string');
    const replyTo = optionalInt(p, 'replyTo', 1);
    if (body.length > BODY_MAX / 3 && Buffer.byteLength(body) > BODY_MAX) {
      fail('PAYLOAD_TOO_LARGE', 'body is over 65536 bytes');
    }

    const sender = socket.data.user;
    const chat = this.chatFor(roomId, sender.id);
    if (replyTo !== undefined && replyTo > chat.lastSeq) {
      fail('INVALID_INPUT', 'replyTo must be the seq of an earlier message in this room');
    }

    const prior = chat.duplicateOf(sender.id, tempId);
    if (prior) {
      if (prior.id) {
        const { seq, id } = prior;
        queueMicrotask(() => socket.emit('message:confirmed', { roomId, seq, tempId, id }));
      }
      return { ok: true, tempId, seq: prior.seq, duplicate: true };
    }
    if (!this.takeToken(this.users.get(sender.id))) fail('RATE_LIMITED', 'too many messages; slow down');

    const msg = { roomId, seq: chat.lastSeq + 1, tempId, senderId: sender.id, senderName: sender.name, type, body };
    if (replyTo !== undefined) msg.replyTo = replyTo;
    msg.ts = Date.now();
    msg.status = 'pending';
    chat.push(msg);

    socket.to(roomId).emit('message:new', msg); // every member socket but this one
    this.save(chat, msg);
    return { ok: true, tempId, seq: msg.seq };
  }

  // Emit first, then save: the write starts after the fan-out and the ack.
  save(chat, msg) {
    if (!this.store) {
      // No store: "confirmed" right after the ack, with a fresh ObjectId.
      queueMicrotask(() => this.confirm(msg, newObjectId()));
      return;
    }
    this.pendingWrites++;
    this.store
      .insertMessage(msg)
      .then(
        (id) => this.confirm(msg, id),
        (err) => this.withdraw(chat, msg, err),
      )
      .finally(() => {
        if (--this.pendingWrites === 0) this.drained?.();
      });
  }

  confirm(msg, id) {
    msg.id = id;
    msg.status = 'confirmed';
    const { roomId, seq, tempId } = msg;
    this.io.to(roomId).emit('message:confirmed', { roomId, seq, tempId, id });
  }

  withdraw(chat, msg, err) {
    console.error(`message ${msg.roomId}#${msg.seq}: ${err.message}`);
    chat.withdraw(msg);
    const unreachable = /Mongo(ServerSelection|Network|NotConnected)/.test(err.name);
    const error = unreachable
      ? { code: 'UNAVAILABLE', message: 'the message could not be stored in time' }
      : { code: 'INTERNAL', message: 'the store refused the message' };
    const { roomId, seq, tempId } = msg;
    this.io.to(roomId).emit('message:failed', { roomId, seq, tempId, error });
  }

  // Resolves once every started message write has finished.
  flush() {
    if (this.pendingWrites === 0) return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }

  // ---- typing ------------------------------------------------------------------

  setTyping(socket, p, isTyping) {
    const roomId = this.roomIdOf(p);
    const userId = socket.data.user.id;
    this.chatFor(roomId, userId);
    if (!isTyping) {
      this.stopTyping(userId, roomId);
      return { ok: true };
    }
    let timers = this.typing.get(userId);
    if (!timers) this.typing.set(userId, (timers = new Map()));
    const timer = timers.get(roomId);
    if (timer) timer.refresh();
    else timers.set(roomId, setTimeout(() => this.stopTyping(userId, roomId), TYPING_MS).unref());
    this.emitTyping(roomId, userId, true);
    return { ok: true };
  }

  stopTyping(userId, roomId) {
    const timers = this.typing.get(userId);
    const timer = timers?.get(roomId);
    if (!timer) return;
    clearTimeout(timer);
    timers.delete(roomId);
    if (timers.size === 0) this.typing.delete(userId);
    this.emitTyping(roomId, userId, false);
  }

  emitTyping(roomId, userId, isTyping) {
    this.io.to(roomId).except(userRoom(userId)).emit('typing', { roomId, userId, isTyping });
  }
}

module.exports = { Broker };
