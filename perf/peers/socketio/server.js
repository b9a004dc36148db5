#!/usr/bin/env node
'use strict';

// ringcast's Node.js peer: a Socket.IO 4.8 server (built-in in-memory
// adapter) speaking the events of protocol.md, with optional MongoDB
// persistence. See README.md.

const http = require('node:http');
const { Server } = require('socket.io');
const config = require('./lib/config');
const { Broker } = require('./lib/broker');
const { MongoStore } = require('./lib/store');

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function main() {
  let cfg;
  try {
    cfg = config.parse(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof config.ConfigError)) throw err;
    console.error(`ringcast-peer-socketio: ${err.message}`);
    process.exit(2);
  }
  if (cfg.help) {
    console.log(config.USAGE);
    return;
  }

  let store = null;
  if (cfg.mongo) {
    store = new MongoStore(cfg.mongo, { deadlineMs: cfg.confirmDeadlineMs });
    await store.open();
  }

  const httpServer = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      if (store && !store.healthy) return sendJson(res, 503, { status: 'degraded', reason: 'store unreachable' });
      return sendJson(res, 200, { status: 'ok' });
    }
    sendJson(res, 404, { error: 'not found' });
  });

  const io = new Server(httpServer, {
    transports: ['websocket'],
    pingInterval: cfg.pingIntervalMs,
    pingTimeout: cfg.pingTimeoutMs,
    maxHttpBufferSize: cfg.maxPayload,
    connectTimeout: 10000, // a session not connected to "/" within 10 s is closed
    serveClient: false,
    // One parser for the whole server (Socket.IO has no per-connection choice).
    ...(cfg.parser === 'msgpack' && { parser: require('socket.io-msgpack-parser') }),
  });

  const broker = new Broker(io, { config: cfg, store });
  if (store) {
    const n = await broker.load();
    console.log(`loaded ${n} chats from MongoDB`);
  }

  httpServer.listen(cfg.port, cfg.host, () => {
    const { address, port } = httpServer.address();
    console.log(`parser ${cfg.parser}, store ${store ? 'mongodb' : 'none (instant confirms)'}`);
    console.log(`listening on ${address}:${port}`);
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await new Promise((resolve) => io.close(resolve)); // closes the sockets and the HTTP server
    await broker.flush();
    await store?.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`ringcast-peer-socketio: ${err.message}`);
  process.exit(1);
});
