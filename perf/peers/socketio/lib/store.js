'use strict';

// MongoDB persistence with the official driver, in the collections and
// document shapes of protocol.md §11. One insertOne per message, started
// after the fan-out (emit first, then save); the driver's connection pool
// runs them concurrently.

const { MongoClient, ObjectId } = require('mongodb');

const dbNameOf = (uri) => /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(uri)?.[1] || 'ringcast';

// A stored document as the message clients see.
function messageOf(doc) {
  const m = {
    roomId: doc.roomId,
    seq: doc.seq,
    id: doc._id.toHexString(),
    tempId: doc.tempId,
    senderId: doc.senderId,
    senderName: doc.senderName,
    type: doc.type,
    body: doc.deleted ? '' : doc.body,
    ts: doc.ts.getTime(),
    status: 'confirmed',
  };
  if (doc.replyTo) m.replyTo = doc.replyTo;
  if (doc.editedAt) m.editedAt = doc.editedAt.getTime();
  if (doc.deleted) m.deleted = true;
  return m;
}

class MongoStore {
  constructor(uri, { deadlineMs }) {
    // serverSelectionTimeoutMS bounds how long a write waits for a reachable
    // primary: it plays the role of ringcast's confirm deadline.
    this.client = new MongoClient(uri, { serverSelectionTimeoutMS: deadlineMs, ignoreUndefined: true });
    this.dbName = dbNameOf(uri);
    this.healthy = false;
    this.client.on('topologyDescriptionChanged', ({ newDescription }) => {
      this.healthy = newDescription.hasDataBearingServers;
    });
  }

  async open() {
    await this.client.connect();
    const db = this.client.db(this.dbName);
    this.messages = db.collection('messages');
    this.chats = db.collection('chats');
    await Promise.all([
      this.messages.createIndex({ roomId: 1, seq: 1 }, { unique: true }),
      this.messages.createIndex({ senderId: 1, tempId: 1 }, { unique: true }),
      this.chats.createIndex({ members: 1 }),
    ]);
    this.healthy = true;
  }

  close() {
    return this.client.close();
  }

  // Every chat document, with the lastSeq and per-sender live-message counts
  // derived from the messages collection.
  async loadChats() {
    const stats = new Map(); // roomId -> {lastSeq, liveBy: Map}
    const grouped = this.messages.aggregate([
      {
        $group: {
          _id: { roomId: '$roomId', senderId: '$senderId' },
          lastSeq: { $max: '$seq' },
          live: { $sum: { $cond: [{ $eq: ['$deleted', true] }, 0, 1] } },
        },
      },
    ]);
    for await (const g of grouped) {
      const s = stats.get(g._id.roomId) ?? { lastSeq: 0, liveBy: new Map() };
      s.lastSeq = Math.max(s.lastSeq, g.lastSeq);
      s.liveBy.set(g._id.senderId, g.live);
      stats.set(g._id.roomId, s);
    }
    const chats = [];
    for await (const doc of this.chats.find()) {
      chats.push({ doc, ...(stats.get(doc._id) ?? { lastSeq: 0, liveBy: new Map() }) });
    }
    return chats;
  }

  // The newest `limit` messages of a room, ascending.
  async recentMessages(roomId, limit) {
    const docs = await this.messages.find({ roomId }).sort({ seq: -1 }).limit(limit).toArray();
    return docs.reverse().map(messageOf);
  }

  // Resolves to the new message's id (24 hex digits).
  async insertMessage(m) {
    const doc = {
      _id: new ObjectId(),
      roomId: m.roomId,
      seq: m.seq,
      senderId: m.senderId,
      senderName: m.senderName,
      tempId: m.tempId,
      type: m.type,
      body: m.body,
      replyTo: m.replyTo,
      ts: new Date(m.ts),
    };
    await this.messages.insertOne(doc);
    return doc._id.toHexString();
  }

  // The newest messages with lo < seq < hi, at most `limit` and `maxBytes`
  // (at least one), ascending; more: whether older ones were left out.
  async messagesBetween(roomId, lo, hi, limit, maxBytes, sizeOf) {
    const docs = await this.messages
      .find({ roomId, seq: { $gt: lo, $lt: hi } })
      .sort({ seq: -1 })
      .limit(limit + 1)
      .toArray();
    const out = [];
    let bytes = 0;
    for (const doc of docs) {
      const m = messageOf(doc);
      const size = sizeOf(m);
      if (out.length === limit || (out.length > 0 && bytes + size > maxBytes)) return { messages: out.reverse(), more: true };
      out.push(m);
      bytes += size;
    }
    return { messages: out.reverse(), more: false };
  }

  insertChat(chat) {
    return this.chats.insertOne({
      _id: chat.id,
      type: chat.type,
      name: chat.name,
      members: [...chat.members],
      createdAt: new Date(chat.createdAt),
      lastSeq: 0,
    });
  }

  setMember(chatId, userId, isMember) {
    const update = isMember ? { $addToSet: { members: userId } } : { $pull: { members: userId } };
    return this.chats.updateOne({ _id: chatId }, update);
  }
}

module.exports = { MongoStore };
