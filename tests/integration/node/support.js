'use strict';
// Helpers for the node integration tests: start/stop the real broker, mint tokens with
// `ringcast token`, recorded socket.io-client sockets, a python peer (../pypeer.py), and a
// main() wrapper that maps the outcome to exit 0 (pass), 1 (fail), 77 (skip) and never hangs.
// Mirrors tests/support/broker.py and clients.py; the contract is /work/shared/protocol.md.

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { spawn, execFileSync } = require('child_process');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PYTHON = '/usr/bin/python3';
const LISTEN_RE = /listening on 127\.0\.0\.1:(\d+)/;
const LOG_TAIL = 300;

function binPath() {
  return process.env.RINGCAST_BIN || path.join(REPO, 'zig-out', 'bin', 'ringcast');
}

function skip(reason) {
  console.log('SKIP: ' + reason);
  process.exit(77);
}

function requirePrereqs() {
  try {
    require.resolve('socket.io-client');
    require.resolve('socket.io-msgpack-parser');
  } catch (e) {
    skip('node_modules missing: run `npm install --no-audit --no-fund` in ' + __dirname);
  }
  const b = binPath();
  try {
    fs.accessSync(b, fs.constants.X_OK);
  } catch (e) {
    if (process.env.RINGCAST_REQUIRE_BIN === '1') {
      console.log('FAIL: broker binary ' + b + ' not found (RINGCAST_REQUIRE_BIN=1)');
      process.exit(1);
    }
    skip('broker binary ' + b + ' not found (build it or set RINGCAST_BIN)');
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms: ' + what)), ms);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

class Broker {
  constructor({ shards = 2, extra = [] } = {}) {
    this.shards = shards;
    this.extra = extra;
    this.secret = 'node-secret-' + Math.random().toString(16).slice(2);
    this.tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ringcast-node-'));
    this.store = 'sqlite:' + path.join(this.tmpdir, 'rc.db');
    this.bin = binPath();
    this.lines = [];
    this.proc = null;
    this.port = null;
    this.exitCode = undefined;
  }

  args() {
    return ['--port', '0', '--host', '127.0.0.1', '--jwt-secret', this.secret, '--store', this.store,
      '--shards', String(this.shards), ...this.extra];
  }

  start() {
    this.lines.push('### start: ' + this.bin + ' ' + this.args().join(' '));
    this.port = null;
    this.exitCode = undefined;
    const proc = spawn(this.bin, this.args(), { cwd: this.tmpdir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, sig) => {
      this.exitCode = code === null ? 'signal ' + sig : code;
      this.lines.push('### exit status ' + this.exitCode);
      resolve(this.exitCode);
    }));
    return withTimeout(new Promise((resolve, reject) => {
      proc.on('error', (e) => reject(new Error('cannot start ' + this.bin + ': ' + e.message)));
      for (const stream of [proc.stdout, proc.stderr]) {
        readline.createInterface({ input: stream }).on('line', (line) => {
          this.lines.push(line);
          const m = this.port === null && LISTEN_RE.exec(line);
          if (m) {
            this.port = Number(m[1]);
            resolve(this);
          }
        });
      }
      this.exited.then((code) => reject(new Error('broker exited with ' + code + ' before listening\n' + this.log())));
    }), 10000, "broker's 'listening on 127.0.0.1:PORT' line").catch((e) => {
      this.kill();
      throw new Error(e.message + '\n' + this.log());
    });
  }

  async stop(expectCode = 0) {
    if (!this.proc) return undefined;
    if (this.exitCode !== undefined) {
      if (expectCode !== null && this.exitCode !== expectCode) {
        throw new Error('broker died on its own with status ' + this.exitCode + '\n' + this.log());
      }
      return this.exitCode;
    }
    this.proc.kill('SIGTERM');
    let code;
    try {
      code = await withTimeout(this.exited, 10000, 'broker exit after SIGTERM');
    } catch (e) {
      this.kill();
      throw new Error('broker ignored SIGTERM for 10 s\n' + this.log());
    }
    if (expectCode !== null && code !== expectCode) {
      throw new Error('broker exit status ' + code + ', expected ' + expectCode + '\n' + this.log());
    }
    return code;
  }

  kill() {
    if (this.proc && this.exitCode === undefined) this.proc.kill('SIGKILL');
  }

  cleanup() {
    this.kill();
    try { fs.rmSync(this.tmpdir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
  }

  get url() { return 'http://127.0.0.1:' + this.port; }

  log() {
    const l = this.lines.slice(-LOG_TAIL);
    return '---- broker log (' + this.lines.length + ' lines) ----\n' + l.join('\n') + '\n---- end broker log ----';
  }

  // A JWT from `ringcast token`; secret overrides the broker's (for bad-signature tests).
  token(user, { role, ttl = 3600, name, secret } = {}) {
    const s = secret || this.secret;
    const args = ['token', user, '--jwt-secret', s, '--ttl', String(ttl)];
    if (role) args.push('--role', role);
    if (name) args.push('--name', name);
    const out = execFileSync(this.bin, args, {
      env: { ...process.env, RINGCAST_JWT_SECRET: s }, timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'],
    }).toString().trim().split('\n').pop().trim();
    if (out.split('.').length !== 3) throw new Error('`ringcast token` printed no JWT: ' + out);
    return out;
  }
}

// JSON with object keys sorted, so that comparisons ignore key order (JSON and msgpack
// peers need not agree on it).
function canon(x) {
  return JSON.stringify(x, (k, v) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.keys(v).sort().reduce((o, key) => { o[key] = v[key]; return o; }, {}) : v));
}

function matches(data, match) {
  if (match === undefined || match === null) return true;
  if (typeof match === 'function') {
    try { return !!match(data); } catch (e) { return false; }
  }
  if (!data || typeof data !== 'object') return false;
  return Object.keys(match).every((k) => canon(data[k]) === canon(match[k]));
}

// A socket.io-client socket whose every received event is recorded in arrival order.
class Client {
  constructor(url, token, { msgpack = false, label, opts = {} } = {}) {
    const { io } = require('socket.io-client');
    this.label = label || (msgpack ? 'node/msgpack' : 'node/json');
    this.events = [];
    this.waiters = [];
    const o = { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true, ...opts };
    if (msgpack) o.parser = require('socket.io-msgpack-parser');
    this.socket = io(url, o);
    this.socket.onAny((event, ...args) => this.record(event, args.length === 1 ? args[0] : args));
    this.socket.on('connect', () => this.record('connect', null));
    this.socket.on('connect_error', (err) => this.record('connect_error', err));
    this.socket.on('disconnect', (reason) => this.record('disconnect', reason));
  }

  record(name, data) {
    this.events.push([name, data]);
    for (const w of this.waiters.slice()) w();
  }

  waitFor(pred, timeout = 5000, what = 'condition') {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = pred(this.events);
        if (v) {
          this.waiters = this.waiters.filter((w) => w !== check);
          clearTimeout(t);
          resolve(v);
          return true;
        }
        return false;
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(this.label + ': timed out after ' + timeout + ' ms waiting for ' + what + '\n' + this.describe()));
      }, timeout);
      if (!check()) this.waiters.push(check);
    });
  }

  async waitEvent(name, match, timeout = 5000, n = 1) {
    const hits = await this.waitFor((evs) => {
      const h = evs.filter(([e, d]) => e === name && matches(d, match)).map(([, d]) => d);
      return h.length >= n ? h : null;
    }, timeout, n + ' x ' + name + ' matching ' + JSON.stringify(match));
    return hits[n - 1];
  }

  named(name, match) {
    return this.events.filter(([e, d]) => e === name && matches(d, match)).map(([, d]) => d);
  }

  async ready(timeout = 5000) {
    const r = await this.waitFor((evs) => evs.find(([e]) => e === 'ready' || e === 'connect_error'),
      timeout, 'ready');
    if (r[0] === 'connect_error') throw new Error(this.label + ': connect_error ' + r[1].message + ' ' + JSON.stringify(r[1].data));
    this.readyData = r[1];
    this.userId = r[1].userId;
    return r[1];
  }

  call(event, payload, timeout = 5000) {
    return withTimeout(this.socket.timeout(timeout).emitWithAck(event, payload), timeout + 1000,
      this.label + ' ack for ' + event);
  }

  async callOk(event, payload, timeout = 5000) {
    const ack = await this.call(event, payload, timeout);
    if (!ack || ack.ok !== true) throw new Error(this.label + ': ' + event + ' expected ok:true, got ' + JSON.stringify(ack));
    return ack;
  }

  describe(last = 25) {
    const lines = ['  ' + this.label + ' ' + (this.userId || '') + ' received ' + this.events.length + ' events'];
    for (const [n, d] of this.events.slice(-last)) {
      let s;
      try { s = d instanceof Error ? 'Error(' + d.message + ') ' + JSON.stringify(d.data) : JSON.stringify(d); } catch (e) { s = String(d); }
      lines.push('    ' + n + ' ' + (s && s.length > 300 ? s.slice(0, 300) + '...' : s));
    }
    return lines.join('\n');
  }

  close() {
    this.socket.close();
  }
}

// A python-socketio client in a child process (../pypeer.py), driven by JSON lines.
class PyPeer {
  constructor(label = 'python') {
    this.label = label;
    this.stderr = [];
    this.proc = spawn(PYTHON, [path.join(__dirname, '..', 'pypeer.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.pending = [];
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p.reject(new Error('python peer exited with ' + code + '\n' + this.stderr.join('\n')));
      resolve(code);
    }));
    this.proc.on('error', (e) => {
      for (const p of this.pending.splice(0)) p.reject(e);
    });
    readline.createInterface({ input: this.proc.stderr }).on('line', (l) => this.stderr.push(l));
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const p = this.pending.shift();
      if (!p) return;
      let r;
      try { r = JSON.parse(l); } catch (e) { p.reject(new Error('python peer said: ' + l)); return; }
      if (r.ok) p.resolve(r);
      else p.reject(new Error(this.label + ': ' + r.error + '\n' + (r.trace || '')));
    });
  }

  request(req, timeout = 15000) {
    return withTimeout(new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.proc.stdin.write(JSON.stringify(req) + '\n');
    }), timeout, this.label + ' ' + req.op);
  }

  async connect(url, token, serializer) {
    return (await this.request({ op: 'connect', url, token, serializer, mode: 'sync' })).ready;
  }

  async call(event, payload, timeout = 5) {
    return (await this.request({ op: 'call', event, payload, timeout })).ack;
  }

  async wait(event, match, timeout = 5) {
    return (await this.request({ op: 'wait', event, match, timeout })).data;
  }

  async events() {
    return (await this.request({ op: 'events' })).events;
  }

  async quit() {
    try {
      await this.request({ op: 'quit' }, 5000);
    } catch (e) { /* already gone */ }
    try { this.proc.stdin.end(); } catch (e) { /* already closed */ }
    await withTimeout(this.exited, 5000, 'python peer exit').catch(() => this.proc.kill('SIGKILL'));
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function eq(got, want, what) {
  const g = canon(got);
  const w = canon(want);
  if (g !== w) throw new Error(what + ': got ' + g + ', want ' + w);
}

// Runs cases in order; each case is [title, async fn]. Exit 0 if all pass, else 1.
// Brokers registered in ctx.brokers are stopped (exit 0 required) at the end.
async function main(name, makeCases, { budgetMs = 150000 } = {}) {
  requirePrereqs();
  const ctx = { brokers: [], clients: [], peers: [] };
  ctx.broker = async (opts) => {
    const b = new Broker(opts);
    ctx.brokers.push(b);
    return b.start();
  };
  ctx.client = (url, token, opts) => {
    const c = new Client(url, token, opts);
    ctx.clients.push(c);
    return c;
  };
  ctx.peer = (label) => {
    const p = new PyPeer(label);
    ctx.peers.push(p);
    return p;
  };
  const t0 = Date.now();
  const dumpAll = () => {
    for (const c of ctx.clients) console.log(c.describe());
    for (const p of ctx.peers) if (p.stderr.length) console.log('  python peer stderr:\n' + p.stderr.slice(-50).join('\n'));
    for (const b of ctx.brokers) console.log(b.log());
  };
  const watchdog = setTimeout(() => {
    console.log('FAIL: ' + name + ' exceeded its time budget of ' + budgetMs + ' ms');
    dumpAll();
    for (const b of ctx.brokers) b.kill();
    for (const p of ctx.peers) p.proc.kill('SIGKILL');
    process.exit(1);
  }, budgetMs);
  let failed = 0;
  let total = 0;
  try {
    const cases = await makeCases(ctx);
    for (const [title, fn] of cases) {
      total++;
      ctx.clients = [];
      ctx.peers = [];
      const t = Date.now();
      try {
        await fn();
        console.log('ok   ' + title + ' (' + ((Date.now() - t) / 1000).toFixed(1) + 's)');
      } catch (e) {
        failed++;
        // Logs first and the error last, so the tail the runner shows has the cause.
        console.log('---- FAIL ' + name + ' :: ' + title);
        dumpAll();
        console.log(e && e.stack ? e.stack : String(e));
        console.log('FAIL ' + title);
      } finally {
        for (const c of ctx.clients) c.close();
        for (const p of ctx.peers) await p.quit();
      }
    }
  } catch (e) {
    failed++;
    console.log('FAIL: ' + name + ' setup: ' + (e && e.stack ? e.stack : e));
    dumpAll();
  }
  for (const b of ctx.brokers) {
    try {
      await b.stop(0);
    } catch (e) {
      failed++;
      console.log('FAIL: broker shutdown: ' + e.message);
    }
    b.cleanup();
  }
  clearTimeout(watchdog);
  console.log(name + ': ' + total + ' cases, ' + failed + ' failed (' + ((Date.now() - t0) / 1000).toFixed(1) + 's)');
  process.exit(failed || total === 0 ? 1 : 0);
}

module.exports = { canon, Broker, Client, PyPeer, main, check, eq, sleep, withTimeout, matches, binPath, PYTHON };
