'use strict';

// HS256 JWT verification with node:crypto; no JWT library needed for one
// algorithm. Returns the user {id, name, role} or null.

const { createHmac, timingSafeEqual } = require('node:crypto');
const { isId } = require('./ids');

const ROLES = new Set(['user', 'admin', 'service']);
const NAME_MAX = 256;

function decodeJson(part) {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function verify(token, secret, nowSec = Math.floor(Date.now() / 1000)) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [head, body, signature] = parts;

  const header = decodeJson(head);
  if (!header || header.alg !== 'HS256') return null; // "none" and every other alg are refused

  const expected = createHmac('sha256', secret).update(`${head}.${body}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;

  const claims = decodeJson(body);
  if (!claims || !isId(claims.sub) || !Number.isInteger(claims.exp) || claims.exp <= nowSec) return null;
  if (claims.name !== undefined && (typeof claims.name !== 'string' || Buffer.byteLength(claims.name) > NAME_MAX)) {
    return null;
  }
  const role = claims.role ?? 'user';
  if (!ROLES.has(role)) return null;
  return { id: claims.sub, name: claims.name || claims.sub, role };
}

function sign(claims, secret) {
  const enc = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

module.exports = { verify, sign };
