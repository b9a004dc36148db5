'use strict';

// In-memory state of one chat (= one Socket.IO room): members, the per-room
// sequence, the ring of recent messages, the (senderId, tempId) dedup index
// and the counts behind `unread`. The message objects in the ring are the
// very objects fanned out as `message:new`; confirmation updates them.

const RING_SIZE = 1000;

// Encoded size of a message, estimated (exact JSON length would cost a
// stringify per message read): fixed keys and numbers plus the strings.
const MESSAGE_OVERHEAD = 160;
const encodedSize = (m) =>
  MESSAGE_OVERHEAD + m.roomId.length + m.tempId.length + m.senderId.length +
  Buffer.byteLength(m.senderName) + Buffer.byteLength(m.body);

const dedupKey = (senderId, tempId) => `${senderId}\0${tempId}`;

class Chat {
  constructor({ id, type, name = '', members, createdAt, lastSeq = 0 }) {
    this.id = id;
    this.type = type;
    this.name = name;
    this.members = new Set(members); // insertion order: creator first
    this.createdAt = createdAt;
    this.lastSeq = lastSeq;
    this.ring = new Array(RING_SIZE);
    this.oldest = lastSeq + 1; // lowest seq held in the ring; oldest > lastSeq: ring empty
    this.dedup = new Map(); // dedupKey -> message, for the messages in the ring
    this.live = 0; // messages neither failed nor deleted ...
    this.liveBy = new Map(); // ... and how many of them each sender sent
  }

  // The message with this seq, while it is in the ring and not withdrawn.
  // (The ring may have holes after a restart: a withdrawn seq is never stored.)
  at(seq) {
    if (seq < this.oldest || seq > this.lastSeq) return undefined;
    const m = this.ring[seq % RING_SIZE];
    return m !== undefined && m.seq === seq && m.status !== 'failed' ? m : undefined;
  }

  duplicateOf(senderId, tempId) {
    return this.dedup.get(dedupKey(senderId, tempId));
  }

  // Appends a message with seq = lastSeq + 1 (or, while loading, the next
  // stored seq), evicting the oldest when the ring is full.
  push(msg) {
    const { seq } = msg;
    if (this.oldest > this.lastSeq) this.oldest = seq;
    if (seq - this.oldest >= RING_SIZE) {
      const evicted = this.ring[seq % RING_SIZE];
      if (evicted !== undefined) {
        const key = dedupKey(evicted.senderId, evicted.tempId);
        if (this.dedup.get(key) === evicted) this.dedup.delete(key);
      }
      this.oldest = seq - RING_SIZE + 1;
    }
    this.ring[seq % RING_SIZE] = msg;
    this.lastSeq = seq;
    if (msg.status !== 'failed') this.dedup.set(dedupKey(msg.senderId, msg.tempId), msg);
    if (!msg.deleted) this.count(msg.senderId, 1);
    return msg;
  }

  // At startup: the newest stored messages (ascending) into the ring, and the
  // counts of the whole stored history.
  restore(messages, lastSeq, liveBy) {
    for (const m of messages) this.push(m);
    this.lastSeq = lastSeq;
    if (messages.length === 0) this.oldest = lastSeq + 1;
    this.liveBy = new Map(liveBy);
    this.live = 0;
    for (const n of this.liveBy.values()) this.live += n;
  }

  // A message the store refused: withdrawn from reads, and its tempId may be
  // sent again.
  withdraw(msg) {
    msg.status = 'failed';
    const key = dedupKey(msg.senderId, msg.tempId);
    if (this.dedup.get(key) === msg) this.dedup.delete(key);
    if (!msg.deleted) this.count(msg.senderId, -1);
  }

  count(senderId, delta) {
    this.live += delta;
    this.liveBy.set(senderId, (this.liveBy.get(senderId) ?? 0) + delta);
  }

  // Read markers are not implemented (messages:read answers UNAVAILABLE, as
  // in ringcast's current build), so unread = live messages from others.
  unreadFor(userId) {
    return this.live - (this.liveBy.get(userId) ?? 0);
  }

  lastMessage() {
    for (let seq = this.lastSeq; seq >= this.oldest; seq--) {
      const m = this.at(seq);
      if (m) return m;
    }
    return undefined;
  }

  lastActivity() {
    return this.lastMessage()?.ts ?? this.createdAt;
  }

  view(userId) {
    const chat = {
      id: this.id,
      type: this.type,
      name: this.name,
      members: [...this.members],
      createdAt: this.createdAt,
      lastSeq: this.lastSeq,
      unread: this.unreadFor(userId),
    };
    const last = this.lastMessage();
    if (last) chat.lastMessage = last;
    return chat;
  }

  // The newest messages with lo < seq < hi held in the ring, at most `limit`
  // and `maxBytes` (at least one), ascending. `more` is true when the answer
  // was cut; `below` is the lowest seq not searched (older ones may be in the
  // store when below > lo + 1).
  collect(lo, hi, limit, maxBytes) {
    const out = [];
    let bytes = 0;
    let seq = Math.min(hi - 1, this.lastSeq);
    const bottom = Math.max(lo + 1, this.oldest);
    for (; seq >= bottom; seq--) {
      const m = this.at(seq);
      if (!m) continue;
      const size = encodedSize(m);
      if (out.length === limit || (out.length > 0 && bytes + size > maxBytes)) {
        return { messages: out.reverse(), more: true, below: seq + 1, limit: 0, bytes: 0 };
      }
      out.push(m);
      bytes += size;
    }
    return {
      messages: out.reverse(),
      more: false,
      below: Math.min(seq + 1, hi),
      limit: limit - out.length,
      bytes: Math.max(0, maxBytes - bytes),
    };
  }
}

module.exports = { Chat, RING_SIZE, encodedSize };
