'use strict';

const { createHash } = require('node:crypto');
const { ObjectId } = require('mongodb');

const ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;

const isId = (value) => typeof value === 'string' && ID_RE.test(value);

// A direct chat's id is a function of the pair (the same as ringcast's:
// "dm:" + the first 20 bytes of SHA-256(lower NUL higher), in hex), so the
// same pair always gets the same chat.
function directChatId(a, b) {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return `dm:${createHash('sha256').update(`${lo}\0${hi}`).digest('hex').slice(0, 40)}`;
}

const newObjectId = () => new ObjectId().toHexString();

module.exports = { isId, directChatId, newObjectId, ObjectId };
